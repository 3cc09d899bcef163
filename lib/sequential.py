"""What to watch next: a self-attention model over each user's movies in time order.

SASRec's architecture (Kang & McAuley, 2018) trained as in SASRec+ (Klenitskiy & Vasilev,
RecSys 2023): at every position of a user's history the model scores every movie as the
next one, with a softmax over all movies. Keras layers only: a movie table (row 0 is
padding; it can start from the stage-1 vectors), learned positions, causal multi-head
self-attention blocks with layer norm, dropout and a feed-forward part, and the movie table
again as the output layer.

Histories are rows of movie rows + 1 (0 pads on the left), the latest movie last.

The protocol (`fit_sequential`) is SASRec's: each user's latest training movie is held
out to choose the epochs (validation), the model trains on the movies before it, and at
test time reads the whole training history, validation movie included.
"""
from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd
import scipy.sparse as sp
from keras import layers, ops

from lib import config as C
from lib import evaluation as ev

log = logging.getLogger(__name__)
PAD = 0
# Built once per model: its encoder and that encoder's compiled last-position function.
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def histories(ratings: pd.DataFrame, ids, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Each user's latest `max_len` movies in time order (ties in file order, as
    `evaluation.split_last` breaks them), as movie rows + 1, left-padded with 0. Returns
    ``(user rows, histories)``."""
    order = _time_order(ratings)
    users = ids.user_rows(ratings[C.USER_COL].to_numpy()[order])
    movies = ids.movie_rows(ratings[C.MOVIE_COL].to_numpy()[order]) + 1
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    out = np.zeros((len(starts), max_len), np.int32)
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        seq = movies[max(a, b - max_len):b]
        out[i, max_len - len(seq):] = seq
    return users[starts], out


def by_user(ratings: pd.DataFrame, ids, max_len: int) -> np.ndarray:
    """`histories` as one row per user row of `ids` (all padding for users without
    ratings): what a model reads for a user, looked up by row."""
    users, seqs = histories(ratings, ids, max_len)
    out = np.zeros((ids.n_users, max_len), np.int32)
    out[users] = seqs
    return out


def _time_order(ratings: pd.DataFrame) -> np.ndarray:
    """Row order by user, then time, ties in file order (`evaluation.split_last`'s rule)."""
    return np.lexsort((np.arange(len(ratings)), ratings[C.TIMESTAMP_COL].to_numpy(),
                       ratings[C.USER_COL].to_numpy()))


def shuffled_before_latest(ratings: pd.DataFrame, seed: int = C.SEED) -> pd.DataFrame:
    """The same ratings with each user's movies before their latest one in a random
    order (their timestamps handed out at random among them; the latest stays last):
    order and recency destroyed, the movies and the validation movie kept (the control
    of a sequential model)."""
    rng = np.random.default_rng(seed)
    order = _time_order(ratings)
    users = ratings[C.USER_COL].to_numpy()[order]
    times = ratings[C.TIMESTAMP_COL].to_numpy()[order].astype(np.int64)
    latest = np.r_[users[1:] != users[:-1], True]
    key = np.where(latest, 2.0, rng.random(len(order)))  # the latest sorts last
    by_key = np.lexsort((key, users))
    out = np.empty_like(times)
    out[by_key] = np.arange(len(times))  # a rank within the sorted frame: strictly ordered
    new_times = np.empty_like(times)
    new_times[order] = out
    return ratings.assign(**{C.TIMESTAMP_COL: new_times})


@keras.saving.register_keras_serializable(package="movielens")
class MovieTable(layers.Layer):
    """The movie table (row 0 padding) with learned position vectors. Called on a
    history it gives the scaled movie vectors plus positions; called with
    ``logits=True`` on vectors it scores every movie (padding excluded) through the
    transposed table: the input and output tables are one (tied)."""

    def __init__(self, n_movies: int, dim: int, max_len: int, seed: int = C.SEED, **kwargs):
        super().__init__(**kwargs)
        self.n_movies, self.dim, self.max_len, self.seed = n_movies, dim, max_len, seed
        self.movies = self.add_weight(
            shape=(n_movies + 1, dim), name="movies",
            initializer=keras.initializers.RandomNormal(stddev=0.05, seed=seed))
        self.positions = self.add_weight(
            shape=(max_len, dim), name="positions",
            initializer=keras.initializers.RandomNormal(stddev=0.05, seed=seed + 1))

    def call(self, inputs, logits=False):
        if logits:
            return ops.matmul(inputs, ops.transpose(self.movies[1:]))
        x = ops.take(self.movies, inputs, axis=0) * (self.dim ** 0.5)
        return x + self.positions[None, -ops.shape(inputs)[1]:, :]

    def get_config(self):
        return {**super().get_config(), "n_movies": self.n_movies, "dim": self.dim,
                "max_len": self.max_len, "seed": self.seed}


def _encode(layer, history, *, blocks: int, training=None, attention: bool = False):
    """The forward pass up to the final norm, from the model's layers (`layer(name)`):
    one definition for the Keras model and for reading its attention. With `attention`
    also the attention weights of every block (users, heads, max_len, max_len)."""
    keys = ops.not_equal(history, PAD)
    real = ops.cast(keys, "float32")[:, :, None]
    # a position attends to the real movies up to itself (the causal mask is added by the
    # layer): never to padding
    allowed = ops.logical_and(keys[:, None, :], ops.ones_like(keys)[:, :, None])
    x = layer("input_dropout")(layer("movie_table")(history), training=training) * real
    weights = []
    for b in range(blocks):
        h = layer(f"block{b}_norm1")(x)
        out = layer(f"block{b}_attention")(h, h, attention_mask=allowed, use_causal_mask=True,
                                           training=training,
                                           return_attention_scores=attention)
        if attention:
            out, w = out
            weights.append(w)
        x = x + layer(f"block{b}_dropout1")(out, training=training)
        h = layer(f"block{b}_ffn2")(layer(f"block{b}_ffn1")(layer(f"block{b}_norm2")(x)))
        x = (x + layer(f"block{b}_dropout2")(h, training=training)) * real
    x = layer("final_norm")(x)
    return (x, weights) if attention else x


def build_sequential_model(n_movies: int, dim: int = C.EMBEDDING_DIM, *,
                           max_len: int = C.SEQUENCE_MAX_LEN,
                           blocks: int = C.SEQUENCE_BLOCKS, heads: int = C.SEQUENCE_HEADS,
                           dropout: float = C.SEQUENCE_DROPOUT,
                           movie_init: np.ndarray | None = None,
                           seed: int = C.SEED) -> keras.Model:
    """Histories (users, max_len) -> logits (users, max_len, n_movies): at position t the
    scores of the movie that comes after the first t + 1 movies.

    Args:
        n_movies: movies in the catalogue (the table has one more row, for padding).
        dim: vector size; `heads` must divide it.
        max_len: movies read per user.
        blocks, heads, dropout: self-attention blocks, heads per block, dropout rate.
        movie_init: stage-1 movie vectors (n_movies, dim) to start the movie table from,
            scaled to the spread of the random start (so that the √dim scaling means the
            same for both; the padding row stays random); None starts it at random.
        seed: fixes every initialisation and dropout mask.

    Raises:
        ValueError: `dim` not divisible by `heads`, or `movie_init` of the wrong shape.
    """
    if dim % heads:
        raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
    if movie_init is not None and np.shape(movie_init) != (n_movies, dim):
        raise ValueError(f"movie_init has shape {np.shape(movie_init)}, expected "
                         f"({n_movies}, {dim}): the stage-1 vectors of the same movies")
    made = {"movie_table": MovieTable(n_movies, dim, max_len, seed=seed, name="movie_table"),
            "input_dropout": layers.Dropout(dropout, seed=seed, name="input_dropout"),
            "final_norm": layers.LayerNormalization(epsilon=1e-6, name="final_norm")}
    for b in range(blocks):
        made.update({
            f"block{b}_norm1": layers.LayerNormalization(epsilon=1e-6, name=f"block{b}_norm1"),
            f"block{b}_attention": layers.MultiHeadAttention(
                heads, dim // heads, dropout=dropout, seed=seed + b,
                name=f"block{b}_attention"),
            f"block{b}_dropout1": layers.Dropout(dropout, seed=seed + 10 + b,
                                                 name=f"block{b}_dropout1"),
            f"block{b}_norm2": layers.LayerNormalization(epsilon=1e-6, name=f"block{b}_norm2"),
            f"block{b}_ffn1": layers.Dense(dim, activation="relu", name=f"block{b}_ffn1"),
            f"block{b}_ffn2": layers.Dense(dim, name=f"block{b}_ffn2"),
            f"block{b}_dropout2": layers.Dropout(dropout, seed=seed + 20 + b,
                                                 name=f"block{b}_dropout2")})
    history = keras.Input(shape=(max_len,), dtype="int32", name="history")
    x = _encode(made.__getitem__, history, blocks=blocks)
    logits = made["movie_table"](x, logits=True)
    model = keras.Model(history, logits, name="sequential")
    if movie_init is not None:
        table = keras.ops.convert_to_numpy(made["movie_table"].movies).copy()
        movie_init = np.asarray(movie_init, np.float32)
        table[1:] = movie_init * (0.05 / max(float(movie_init.std()), 1e-12))
        made["movie_table"].movies.assign(table)
    return model


def blocks_of(model: keras.Model) -> int:
    """How many self-attention blocks a model built here has."""
    return sum(layer.name.endswith("_attention") for layer in model.layers)


def next_targets(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs, next-movie targets (movie rows) and weights for training from windows of
    max_len + 1 movies: the input is the first max_len, the target at each position the
    movie after it; positions whose input or target is padding weigh 0."""
    inputs, after = windows[:, :-1], windows[:, 1:]
    weights = ((inputs != PAD) & (after != PAD)).astype(np.float32)
    return inputs, np.maximum(after - 1, 0), weights


class Steps:
    """Compiled training steps: the movies' logits made at the positions that have a
    target only (padding skipped), a softmax cross-entropy there, Adam.

    ``loss="full"`` takes the softmax over all movies (SASRec+); ``"sampled"`` over each
    position's target and `negatives` movies drawn by popularity for the whole batch,
    corrected by their sampling probability (`losses.sampled_softmax`, as stage 2 does
    for large catalogues); ``"auto"``: sampled above `config.SEQUENCE_FULL_MAX_MOVIES`
    movies. Half the time of Keras `fit` with per-position sample weights at ML-1M size
    (`python -m lib bench --group train`).

    Args:
        counts: training ratings per movie, for the sampled softmax's popularity.
    """

    def __init__(self, model: keras.Model, learning_rate: float, *, loss: str = "auto",
                 counts: np.ndarray | None = None, negatives: int = C.SAMPLED_NEGATIVES,
                 seed: int = C.SEED):
        import tensorflow as tf

        from lib import losses
        self.model, self.encode = model, encoder(model)
        self.table = model.get_layer("movie_table").movies
        n_movies = int(self.table.shape[0]) - 1
        if loss == "auto":
            loss = "sampled" if n_movies > C.SEQUENCE_FULL_MAX_MOVIES else "full"
        if loss not in ("full", "sampled"):
            raise ValueError(f"loss must be 'full', 'sampled' or 'auto', not {loss!r}")
        self.loss = loss
        self.optimizer = keras.optimizers.Adam(learning_rate)
        self.optimizer.build(model.trainable_variables)
        counts = np.ones(n_movies) if counts is None else np.asarray(counts, float) + 1e-3
        log_q = tf.constant(losses.sampling_log_q(counts, negatives))
        zeros = tf.zeros(n_movies)
        self.calls = tf.Variable([seed, 0], dtype=tf.int32, trainable=False)

        def objective(h, y):
            movies = self.table[1:]
            if loss == "full":
                return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    y, tf.matmul(h, movies, transpose_b=True)))
            # the same negatives for the same seed and step
            drawn = losses.draw_negatives(log_q, negatives, self.calls.assign_add([0, 1]))
            return losses.sampled_softmax(h, movies, zeros, tf.range(tf.shape(h)[0]), y,
                                          drawn, log_q)

        n = model.input_shape[1]  # one trace for every batch size

        @tf.function(input_signature=[tf.TensorSpec([None, n], tf.int32),
                                      tf.TensorSpec([None, n], tf.int32),
                                      tf.TensorSpec([None, n], tf.float32)])
        def step(x, y, w):
            with tf.GradientTape() as tape:
                keep = w > 0
                h = tf.boolean_mask(self.encode(x, training=True), keep)
                loss_value = objective(h, tf.boolean_mask(y, keep))
            variables = model.trainable_variables
            grads = tape.gradient(loss_value, variables)
            self.optimizer.apply_gradients(zip(grads, variables, strict=True))
            return loss_value, tf.reduce_sum(tf.cast(keep, "float32"))

        self.step = step

    def epoch(self, windows: np.ndarray, batch_size: int, rng) -> float:
        """One pass over `windows` (max_len + 1 movies each, `next_targets`) in shuffled
        batches; the mean loss per target."""
        inputs, targets, weights = next_targets(np.asarray(windows, np.int32))
        order = rng.permutation(len(windows))
        total = count = 0.0
        for at in range(0, len(order), batch_size):
            rows = order[at:at + batch_size]
            if not weights[rows].any():
                continue
            loss, n = self.step(inputs[rows], targets[rows], weights[rows])
            total, count = total + float(loss) * float(n), count + float(n)
        return total / max(count, 1.0)


def train_sequential_model(model: keras.Model, seqs: np.ndarray, *, epochs: int = 20,
                           batch_size: int = C.SEQUENCE_BATCH,
                           learning_rate: float = C.SEQUENCE_LEARNING_RATE,
                           loss: str = "auto", negatives: int = C.SAMPLED_NEGATIVES,
                           seed: int = C.SEED) -> pd.DataFrame:
    """A fixed number of epochs (the SASRec+ recipe: softmax over all movies at every
    position, Adam, shuffled batches; `loss` and `negatives` as in `Steps`); `seqs` as
    from `histories`: of max_len movies, every position but the first is trained; of
    max_len + 1 (`next_targets`), every one. Returns one row per epoch (loss).
    `fit_sequential` chooses the epochs on validation instead."""
    keras.utils.set_random_seed(seed)
    if seqs.shape[1] == model.input_shape[1]:
        seqs = np.concatenate([np.zeros((len(seqs), 1), seqs.dtype), seqs], axis=1)
    counts = np.bincount(seqs[seqs != PAD] - 1, minlength=model.output_shape[-1])
    steps = Steps(model, learning_rate, loss=loss, counts=counts, negatives=negatives,
                  seed=seed)
    rng = np.random.default_rng(seed)
    losses = [steps.epoch(seqs, batch_size, rng) for _ in range(epochs)]
    return pd.DataFrame({"loss": losses}).rename_axis("epoch")


def encoder(model: keras.Model) -> keras.Model:
    """The model up to its last vector per position (users, max_len, dim); one per model
    (kept while the model lives)."""
    return _cached(model)[0]


def _cached(model: keras.Model):
    """The model's encoder and its compiled last-position function (a third of the eager
    call's time at ML-1M size), made once; neither holds the model itself, so the entry
    goes when the model does."""
    if model not in _CACHE:
        import tensorflow as tf
        encode = keras.Model(model.input, model.get_layer("final_norm").output)

        @tf.function(input_signature=[tf.TensorSpec([None, encode.input_shape[1]], tf.int32)])
        def forward(x):
            return encode(x, training=False)[:, -1, :]
        _CACHE[model] = (encode, forward)
    return _CACHE[model]


def next_scores(model: keras.Model, seqs: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Scores of every movie as the next one after each history (users, n_movies): the
    last position's vector times the movie table (the other positions' logits are never
    made), in compiled batches."""
    forward = _cached(model)[1]
    last = np.zeros((len(seqs), model.get_layer("movie_table").dim), np.float32)
    for at in range(0, len(seqs), batch_size):
        last[at:at + batch_size] = forward(np.asarray(seqs[at:at + batch_size],
                                                      np.int32)).numpy()
    table = keras.ops.convert_to_numpy(model.get_layer("movie_table").movies)[1:]
    return last @ table.T


def keep_last(seqs: np.ndarray, n: int) -> np.ndarray:
    """The same histories with all but their latest `n` movies turned to padding."""
    out = seqs.copy()
    out[:, :max(0, seqs.shape[1] - n)] = PAD
    return out


def attention(model: keras.Model, seqs: np.ndarray) -> np.ndarray:
    """How much the last position attended to each position of the history, per block,
    averaged over heads: (users, blocks, max_len); padding positions get 0."""
    _, weights = _encode(model.get_layer, ops.convert_to_tensor(seqs),
                         blocks=blocks_of(model), training=False, attention=True)
    return np.stack([np.asarray(w)[:, :, -1, :].mean(axis=1) for w in weights], axis=1)


def target_ranks(scores: np.ndarray, targets: np.ndarray, seen: sp.csr_matrix,
                 rows: np.ndarray) -> np.ndarray:
    """0-based rank of each user's target movie among the movies they have not seen
    (`seen[rows]`, the target itself excepted); ties count against the target."""
    scores = np.array(scores, np.float32)
    at = np.arange(len(rows))
    own = scores[at, targets].copy()
    coo = seen[rows].tocoo()
    scores[coo.row, coo.col] = -np.inf
    scores[at, targets] = -np.inf
    return (scores >= own[:, None]).sum(axis=1)


@dataclass
class Sequential:
    """A trained sequential model with how it was chosen and what it reads."""

    model: keras.Model
    history: pd.DataFrame  # one row per epoch: loss, validation nDCG@k and HR@k, seconds
    settings: dict
    seqs: np.ndarray = field(repr=False)  # every user's whole training history, by row
    manifest: dict | None = field(default=None, repr=False)  # when loaded from models/

    def scores(self):
        """``score(user_rows)`` for `evaluation.evaluate_ranking`: every movie as the next
        one after the user's whole training history."""
        return lambda rows: next_scores(self.model, self.seqs[np.asarray(rows)])

    def reading(self, ratings: pd.DataFrame, ids) -> Sequential:
        """The same model reading each user's movies of `ratings` (e.g. all of them, for
        the engine's "next" lists) instead of the training histories."""
        return Sequential(self.model, self.history, self.settings,
                          by_user(ratings, ids, self.seqs.shape[1]), self.manifest)

    def summary(self) -> str:
        """One line for a notebook: epochs chosen, the validation score, the time."""
        s = self.settings
        return (f"sequential ({s['start']} start, {s['max_len']} movies read, "
                f"{'shuffled order' if s['shuffled'] else 'time order'}): "
                f"{s['epochs']} epochs chosen on validation (best nDCG@{s['k']} "
                f"{s['validation_ndcg']:.4f}, stopped by {s['stop']}), "
                f"{s['seconds']:.0f} s, {s['epoch_seconds']:.2f} s an epoch")


def fit_sequential(train: pd.DataFrame, ids, *, movie_init: np.ndarray | None = None,
                   max_len: int = C.SEQUENCE_MAX_LEN, dim: int = C.EMBEDDING_DIM,
                   blocks: int = C.SEQUENCE_BLOCKS, heads: int = C.SEQUENCE_HEADS,
                   dropout: float = C.SEQUENCE_DROPOUT,
                   learning_rate: float = C.SEQUENCE_LEARNING_RATE,
                   batch_size: int = C.SEQUENCE_BATCH, epochs: int = C.SEQUENCE_MAX_EPOCHS,
                   patience: int = C.SEQUENCE_PATIENCE, budget: float | None = None,
                   order: str = "time", loss: str = "auto", k: int = C.DEFAULT_K,
                   seed: int = C.SEED, progress: bool = True) -> Sequential:
    """Train the sequential model on `train` with the epochs chosen on validation.

    Each user's latest training movie is held out: the model trains on the movies before
    it, and after every epoch scores it after them (full ranking over the movies the user
    has not rated, nDCG@k); the best epoch's weights are kept, and training stops after
    `patience` epochs without a better score (and at least `config.PATIENCE_STEPS` updates,
    stage 2's rule: small data makes few updates an epoch, and its validation score can sit
    flat for a while before it climbs), at `epochs`, or (with a `budget` in seconds)
    when another epoch would pass it. The returned model reads each user's whole training
    history, validation movie included, as SASRec does (no refit).

    Args:
        train: training ratings (with timestamps).
        ids: the dataset's `IdMap`.
        movie_init: stage-1 movie vectors to start from (None: random).
        order: ``"time"``, or ``"shuffled"`` for the control: all of each user's movies
            before their validation movie shuffled (`shuffled_before_latest`: order and
            recency destroyed, same movies, same validation movie); the test input stays
            in time order.
        budget: seconds for the epochs (None: no limit).
        loss: the softmax over all movies or a sampled one (`Steps`).

    Raises:
        ValueError: bad `order`, `max_len` < 2, `patience` or `epochs` < 1, or no user with
            two training movies.
    """
    if order not in ("time", "shuffled"):
        raise ValueError(f"order must be 'time' or 'shuffled', got {order!r}")
    if max_len < 2 or patience < 1 or epochs < 1:
        raise ValueError(f"max_len must be at least 2, patience and epochs at least 1 "
                         f"(got {max_len}, {patience}, {epochs})")
    keras.utils.set_random_seed(seed)
    # Each user's latest training movie is the validation target; the max_len + 1 movies
    # before it make the training window (inputs and targets), its last max_len the
    # validation input. The control shuffles the movies before the target, not the target.
    fit_on = shuffled_before_latest(train, seed) if order == "shuffled" else train
    users, long = histories(fit_on, ids, max_len + 2)
    before, target = long[:, :-1], long[:, -1]
    has_val = (target != PAD) & (before[:, -1] != PAD)
    if not has_val.any():
        raise ValueError("no user has two training movies: the sequential model needs each "
                         "user's latest movie for validation and one before it to read")
    fit_seqs = before
    val_input, val_target, val_rows = before[has_val, 1:], target[has_val] - 1, users[has_val]
    seen = ev.interactions(train, ids)
    full = by_user(train, ids, max_len)  # the test input: time order, latest included
    model = build_sequential_model(ids.n_movies, dim, max_len=max_len, blocks=blocks,
                                   heads=heads, dropout=dropout, movie_init=movie_init,
                                   seed=seed)
    counts = np.bincount(fit_seqs[fit_seqs != PAD] - 1, minlength=ids.n_movies)
    steps = Steps(model, learning_rate, loss=loss, counts=counts, seed=seed)
    rng = np.random.default_rng(seed)
    steps_per_epoch = -(-len(fit_seqs) // batch_size)
    wait = max(patience, -(-C.PATIENCE_STEPS // steps_per_epoch))
    rows, best, best_weights, stop = [], -1.0, None, "cap"
    start = time.perf_counter()
    for epoch in range(epochs):
        tick = time.perf_counter()
        epoch_loss = steps.epoch(fit_seqs, batch_size, rng)
        ranks = target_ranks(next_scores(model, val_input),
                             val_target, seen, val_rows)
        ndcg = float(np.mean(np.where(ranks < k, 1 / np.log2(ranks + 2), 0)))
        rows.append({"loss": epoch_loss, "validation": ndcg,
                     f"validation hr@{k}": float(np.mean(ranks < k)),
                     "seconds": time.perf_counter() - tick})
        if progress:
            log.info("sequential epoch %d: loss %.4f, validation nDCG@%d %.4f (%.1f s)",
                     epoch + 1, rows[-1]["loss"], k, ndcg, rows[-1]["seconds"])
        if ndcg > best:
            best, best_weights = ndcg, model.get_weights()
        elif epoch + 1 - int(np.argmax([r["validation"] for r in rows])) - 1 >= wait:
            stop = "patience"
            break
        spent = time.perf_counter() - start
        # the latest epoch is the guess for the next one (the first also traced the steps)
        if budget is not None and spent + rows[-1]["seconds"] > budget:
            stop = "budget"
            break
    model.set_weights(best_weights)
    history = pd.DataFrame(rows).rename_axis("epoch")
    settings = {"start": "random" if movie_init is None else "stage 1", "order": order,
                "shuffled": order == "shuffled", "max_len": max_len, "dim": dim,
                "blocks": blocks, "heads": heads, "dropout": dropout,
                "learning_rate": learning_rate, "batch_size": batch_size, "seed": seed,
                "loss": steps.loss,
                "k": k, "epochs": int(history["validation"].idxmax()) + 1,
                "epochs_run": len(history), "stop": stop, "validation_ndcg": best,
                "patience_epochs": wait,
                "validation_users": int(has_val.sum()),
                "seconds": time.perf_counter() - start,
                "epoch_seconds": float(history["seconds"].median())}
    return Sequential(model, history, settings, full)

