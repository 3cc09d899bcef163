"""Keras builders and training for the two stages.

Stage 1 (`build_movie_genre_model`): a movie vector and a genre vector, their dot
product, a sigmoid; trained on which movie has which genre against sampled genres it lacks.

Stage 2: user preferences from ratings, the movie table starting from the stage-1 vectors
(``"stage1"``, fine-tuned), kept ``"frozen"`` at them, or ``"random"`` for comparison.
Two models share that design:

- `build_ranking_model` for top-k: a user vector (its own embedding plus optional gender,
  age and occupation embeddings) scored against every movie, trained with a softmax over
  all movies. The softmax is computed once per *user* over all of the user's training
  movies (a multinomial likelihood), which equals the sum of per-rating softmax losses
  but costs one score row per user instead of one per rating.
- `build_rating_model` for stars (RMSE): global mean + user bias + movie bias + dot product.
"""
from __future__ import annotations

import logging
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402
from tqdm import tqdm  # noqa: E402

from lib import checkpoints as CK  # noqa: E402
from lib import config as C  # noqa: E402
from lib import distributed as D  # noqa: E402
from lib import losses as L  # noqa: E402

log = logging.getLogger(__name__)
INIT_MODES = ("stage1", "frozen", "random")
SIDE_FEATURES = (C.GENDER_COL, C.AGE_LABEL_COL, C.OCCUPATION_COL)
_INIT_STD = 0.05


def seed_everything(seed: int = C.SEED) -> None:
    """One seed for Python, numpy, TensorFlow and Keras; deterministic TF kernels."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# --- stage 1: movie-genre ---------------------------------------------------------------

def build_movie_genre_model(n_movies: int, n_genres: int, dim: int = C.EMBEDDING_DIM, *,
                            learning_rate: float = 0.01, seed: int = C.SEED) -> keras.Model:
    """Movie and genre embeddings whose dot product, through a sigmoid, says whether the
    movie has the genre. Layers ``movie_embedding`` and ``genre_embedding``."""
    movie = keras.Input(shape=(), dtype="int32", name="movie")
    genre = keras.Input(shape=(), dtype="int32", name="genre")
    init = keras.initializers.RandomNormal(stddev=_INIT_STD, seed=seed)
    mv = layers.Embedding(n_movies, dim, embeddings_initializer=init, name="movie_embedding")(movie)
    gv = layers.Embedding(n_genres, dim, embeddings_initializer=keras.initializers.RandomNormal(
        stddev=_INIT_STD, seed=seed + 1), name="genre_embedding")(genre)
    logit = layers.Dot(axes=1, name="dot")([mv, gv])
    prob = layers.Activation("sigmoid", name="probability")(logit)
    model = keras.Model({"movie": movie, "genre": genre}, prob, name="movie_genre")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="binary_crossentropy",
                  metrics=["binary_accuracy", keras.metrics.AUC(name="auc")])
    return model


def movie_genre_pairs(genre_matrix: np.ndarray, seed: int = C.SEED,
                      negatives_per_positive: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(movie_row, genre_row) pairs: every genre a movie has, and as many sampled genres
    it lacks (uniformly among them) per positive.

    Returns:
        ``positive_pairs``, ``negative_pairs``: int32 arrays of shape (n, 2).
    """
    rng = np.random.default_rng(seed)
    movies, genres = np.nonzero(genre_matrix)
    positives = np.stack([movies, genres], axis=1).astype(np.int32)
    movies = np.repeat(movies, negatives_per_positive)
    # Uniform over the genres a movie lacks: random keys, positives pushed to the end.
    keys = rng.random((len(movies), genre_matrix.shape[1])) + genre_matrix[movies]
    negatives = np.stack([movies, keys.argmin(axis=1)], axis=1).astype(np.int32)
    return positives, negatives


def _balanced_epoch(genre_matrix: np.ndarray, batch_size: int, seed: int):
    """One epoch of pairs laid out so that every batch of `batch_size` is half positives,
    half negatives (negatives drawn anew for each epoch's seed)."""
    pos, neg = movie_genre_pairs(genre_matrix, seed)
    order = np.random.default_rng(seed + 10_000).permutation(len(pos))
    pos, neg = pos[order], neg[order]
    half = batch_size // 2
    blocks, labels = [], []
    for i in range(0, len(pos), half):
        blocks += [pos[i:i + half], neg[i:i + half]]
        labels += [np.ones(len(pos[i:i + half])), np.zeros(len(neg[i:i + half]))]
    pairs = np.concatenate(blocks)
    return ({"movie": pairs[:, 0], "genre": pairs[:, 1]},
            np.concatenate(labels).astype(np.float32))


def train_movie_genre_model(model: keras.Model, genre_matrix: np.ndarray, *, epochs: int = 40,
                            batch_size: int = 512, seed: int = C.SEED,
                            progress: bool = True) -> keras.callbacks.History:
    """Fit stage 1 on balanced batches (half the genres movies have, half they lack),
    negatives redrawn every epoch: binary cross-entropy of sigmoid(movie . genre), the
    model's own computation, with the optimizer it was compiled with (a fresh `LazyAdam`
    at its learning rate for large catalogues, below).

    Each epoch is one compiled TensorFlow loop over its batches (Keras' `fit` costs a few
    milliseconds of Python a step: 40 epochs at ML-25M's 62,423 movies took 11 minutes);
    above `config.LAZY_MIN_ROWS` movies the table's rows are updated lazily
    (`LazyAdam`), not the whole table every step. Returns the per-epoch loss, binary
    accuracy and AUC, as `fit` would, and seconds (the first epoch's include tracing)."""
    movie_layer = model.get_layer("movie_embedding")
    genre_layer = model.get_layer("genre_embedding")
    optimizer = model.optimizer
    if len(genre_matrix) > C.LAZY_MIN_ROWS:
        optimizer = LazyAdam(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
    optimizer.build(model.trainable_variables)
    accuracy = keras.metrics.BinaryAccuracy(name="binary_accuracy")
    auc = keras.metrics.AUC(name="auc")
    bce = keras.losses.BinaryCrossentropy(reduction="sum")

    def step(movies, genres, labels):
        with tf.GradientTape() as tape:
            mv, gv = movie_layer(movies), genre_layer(genres)
            prob = tf.sigmoid(tf.reduce_sum(mv * gv, axis=1, keepdims=True))
            value = bce(labels[:, None], prob)  # Keras' losses average the last axis
            mean = value / tf.cast(tf.shape(labels)[0], tf.float32)
        grads = tape.gradient(mean, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        accuracy.update_state(labels, prob)
        auc.update_state(labels, prob)
        return value

    @tf.function
    def run_epoch(movies, genres, labels):
        n = tf.shape(labels)[0]
        total = tf.constant(0.0)
        for i in tf.range((n + batch_size - 1) // batch_size):
            part = slice(i * batch_size, (i + 1) * batch_size)
            total += step(movies[part], genres[part], labels[part])
        return total / tf.cast(n, tf.float32)

    history = keras.callbacks.History()
    history.history = {"loss": [], "binary_accuracy": [], "auc": [], "seconds": []}
    for epoch in tqdm(range(epochs), desc="stage 1", disable=not progress or C.headless()):
        start = time.perf_counter()
        x, y = _balanced_epoch(genre_matrix, batch_size, seed + epoch)
        accuracy.reset_state()
        auc.reset_state()
        loss = run_epoch(tf.constant(x["movie"], tf.int32), tf.constant(x["genre"], tf.int32),
                         tf.constant(y))
        for key, value in (("loss", loss), ("binary_accuracy", accuracy.result()),
                           ("auc", auc.result()), ("seconds", time.perf_counter() - start)):
            history.history[key].append(float(value))
    return history


def layer_table(model: keras.Model) -> pd.DataFrame:
    """The model's layers as a plain table (Keras' own summary prints terminal colour
    codes into notebooks)."""
    rows = [{"layer": layer.name, "type": type(layer).__name__,
             "parameters": int(sum(np.prod(w.shape) for w in layer.weights))}
            for layer in model.layers]
    return pd.DataFrame(rows).set_index("layer")


def embeddings(model: keras.Model, layer: str = "movie_embedding") -> np.ndarray:
    """A layer's embedding table, by layer name, as numpy."""
    return np.asarray(model.get_layer(layer).embeddings)


def genre_recovery(movie_vectors: np.ndarray, genre_vectors: np.ndarray,
                   genre_matrix: np.ndarray) -> dict[str, float]:
    """How well the vectors hold each movie's genres.

    For a movie with n genres, its n genres with the largest dot product are its predicted
    genres: ``precision`` is the share of them that are right (chance: n/18 on average);
    ``auc`` is the probability that a genre the movie has scores above one it lacks.
    """
    scores = movie_vectors @ genre_vectors.T
    has = genre_matrix.astype(bool)
    n = has.sum(axis=1)
    rows = n > 0
    order = np.argsort(-scores[rows], axis=1)
    ranked_has = np.take_along_axis(has[rows], order, axis=1)
    hits = (ranked_has & (np.arange(has.shape[1])[None, :] < n[rows, None])).sum(axis=1)
    ranks = np.argsort(np.argsort(scores[rows], axis=1), axis=1)  # 0 = lowest
    pos_rank_sum = (ranks * has[rows]).sum(axis=1)
    n_pos, n_neg = n[rows], has.shape[1] - n[rows]
    auc = (pos_rank_sum - n_pos * (n_pos - 1) / 2) / (n_pos * n_neg)
    chance = float(np.mean(n[rows] / has.shape[1]))
    return {"precision": float(np.mean(hits / n[rows])), "auc": float(np.mean(auc)),
            "chance_precision": chance}


# --- stage 2: user-movie ----------------------------------------------------------------

@keras.saving.register_keras_serializable(package="lib")
class Embedding(layers.Embedding):
    """Keras' `Embedding` that gathers its rows straight from the variable.

    Keras' own reads the whole table into a tensor first; once an optimizer has updated
    a few rows in place (`LazyAdam`), TensorFlow copies the table on every such read: at
    ML-25M's 162,541 users that copy made a rating step 3x slower (51 ms against 16 ms
    for 4,096 ratings)."""

    def call(self, inputs):
        return tf.gather(self.embeddings.value, inputs)


@keras.saving.register_keras_serializable(package="lib")
class AllMovieScores(layers.Layer):
    """Scores user vectors against every movie: ``u @ E.T + b``. Holds the movie table
    ``embeddings`` (n_movies, dim) and the movie biases; the table can be frozen."""

    def __init__(self, n_movies: int, dim: int, freeze_table: bool = False,
                 seed: int = C.SEED, **kwargs):
        super().__init__(**kwargs)
        self.n_movies, self.dim, self.freeze_table, self.seed = n_movies, dim, freeze_table, seed

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.n_movies, self.dim), name="embeddings",
            initializer=keras.initializers.RandomNormal(stddev=_INIT_STD, seed=self.seed),
            trainable=not self.freeze_table)
        self.bias = self.add_weight(shape=(self.n_movies,), name="bias", initializer="zeros")

    def call(self, user_vectors):
        return ops.matmul(user_vectors, ops.transpose(self.embeddings)) + self.bias

    def get_config(self):
        return {**super().get_config(), "n_movies": self.n_movies, "dim": self.dim,
                "freeze_table": self.freeze_table, "seed": self.seed}


USER_TOWERS = ("free", "history")


@keras.saving.register_keras_serializable(package="lib")
class HistoryEncoder(layers.Layer):
    """A user's rated movies as a vector: the sum of their rows of its own movie table
    ``embeddings`` (n_movies, dim) over the square root of how many there are (as in FISM
    and the YouTube candidate model). In training each movie of the input is dropped with
    probability `dropout`, so the model learns to predict a user's other movies from some
    of them (the denoising of Mult-DAE) rather than to copy its input.

    Input: (users, n_movies) 0/1, the movies each user rated in training.
    """

    def __init__(self, n_movies: int, dim: int, dropout: float = 0.5, seed: int = C.SEED,
                 **kwargs):
        super().__init__(**kwargs)
        self.n_movies, self.dim, self.dropout, self.seed = n_movies, dim, dropout, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.n_movies, self.dim), name="embeddings",
            initializer=keras.initializers.RandomNormal(stddev=_INIT_STD, seed=self.seed))

    def call(self, history, training=None):
        if training and self.dropout:
            keep = keras.random.uniform(ops.shape(history), seed=self.seed_generator)
            history = history * ops.cast(keep >= self.dropout, history.dtype)
        n = ops.sum(history, axis=1, keepdims=True)
        return ops.matmul(history, self.embeddings) / ops.sqrt(ops.maximum(n, 1.0))

    def get_config(self):
        return {**super().get_config(), "n_movies": self.n_movies, "dim": self.dim,
                "dropout": self.dropout, "seed": self.seed}


def history_part(model: keras.Model, history: sp.csr_matrix | None,
                 users: np.ndarray) -> np.ndarray | None:
    """What the model's `HistoryEncoder` adds to the vectors of `users` given their rated
    movies `history` (users x movies, 0/1), in numpy; None for a model without one."""
    if not any(lyr.name == "history_encoder" for lyr in model.layers):
        return None
    if history is None:
        raise ValueError("this ranking model builds user vectors from the movies each user "
                         "rated: pass `history` (the users x movies training matrix)")
    rows = history[users]
    n = np.sqrt(np.maximum(np.asarray(rows.sum(axis=1), np.float32), 1.0))
    return np.asarray(rows @ np.asarray(model.get_layer("history_encoder").embeddings)) / n


def side_features(users: pd.DataFrame | None, ids) -> dict[str, np.ndarray]:
    """Gender, age group and occupation of every user, as int32 codes in user-row order.

    Returns an empty dict when the release has no user file.
    """
    return _side_codes(users, ids)[0]


def side_vocabulary(users: pd.DataFrame | None, ids) -> dict[str, list[str]]:
    """The label of every code of `side_features`, per input: what a person types (``F``,
    ``25-34``, ``programmer``), the same on every release, where ML-1M and ML-100K number
    ages and occupations differently. Saved with the models."""
    return _side_codes(users, ids)[1]


def _side_codes(users, ids):
    if users is None:
        return {}, {}
    frame = users.set_index(C.USER_COL).loc[ids.user_ids(np.arange(ids.n_users))]
    codes, labels = {}, {}
    for col in SIDE_FEATURES:
        values = frame[col]
        categories = sorted(values.unique())
        codes[col] = values.map({v: i for i, v in enumerate(categories)}).to_numpy(np.int32)
        if col == C.OCCUPATION_COL and C.OCCUPATION_LABEL_COL in frame:
            names = frame.drop_duplicates(col).set_index(col)[C.OCCUPATION_LABEL_COL]
            labels[col] = [str(names[c]) for c in categories]
        else:
            labels[col] = [str(c) for c in categories]
    return codes, labels


def side_tables(model: keras.Model, features: dict[str, np.ndarray],
                vocabulary: dict[str, list[str]], users: np.ndarray | None = None
                ) -> dict | None:
    """What a new user's vector is built from when the model has demographic inputs
    (`recommend.demographic_vectors`), None when it has none: the mean learnt user vector
    without them (``user_mean``) and, per input, its labels, its embedding table and the
    mean over users of the rows they take (what an input nobody gave adds). Means over the
    user rows `users` (default all: every user of a model trained on everyone)."""
    names = {lyr.name for lyr in model.layers}
    rows = slice(None) if users is None else np.asarray(users)
    tables = {}
    for name, codes in features.items():
        if f"{name}_embedding" in names:
            table = np.asarray(model.get_layer(f"{name}_embedding").embeddings)
            tables[name] = {"labels": list(vocabulary[name]), "vectors": table,
                            "mean": table[codes[rows]].mean(axis=0)}
    if not tables:
        return None
    learnt = np.asarray(model.get_layer("user_embedding").embeddings)[rows]
    return {"user_mean": learnt.mean(axis=0), "features": tables}


def _user_tower(n_users: int, dim: int, side_sizes: dict[str, int], l2_user: float, seed: int,
                per_example: bool = False):
    """User vector: its embedding (+ side embeddings). L2 on the whole table, or with
    `per_example` on the vectors of each batch (classic matrix-factorisation weight decay)."""
    user = keras.Input(shape=(), dtype="int32", name="user")
    inputs = {"user": user}
    reg = keras.regularizers.L2(l2_user) if l2_user else None
    vector = Embedding(
        n_users, dim, name="user_embedding",
        embeddings_initializer=keras.initializers.RandomNormal(stddev=_INIT_STD, seed=seed),
        embeddings_regularizer=None if per_example else reg,
        activity_regularizer=reg if per_example else None)(user)
    for i, (name, size) in enumerate(sorted(side_sizes.items())):
        inputs[name] = keras.Input(shape=(), dtype="int32", name=name)
        side = Embedding(size, dim, name=f"{name}_embedding",
                         embeddings_initializer=keras.initializers.RandomNormal(
                             stddev=_INIT_STD, seed=seed + 10 + i))(inputs[name])
        vector = layers.Add(name=f"add_{name}")([vector, side])
    return inputs, vector


def _scaled(vectors: np.ndarray) -> np.ndarray:
    """Stage-1 vectors rescaled to the spread of a fresh initialisation, so the optimiser
    starts on the same footing whatever the initialisation."""
    return (vectors / (vectors.std() + 1e-12) * _INIT_STD).astype(np.float32)


def build_ranking_model(n_users: int, n_movies: int, dim: int = C.EMBEDDING_DIM, *,
                        movie_init: np.ndarray | None = None, init: str = "stage1",
                        side_sizes: dict[str, int] | None = None, dropout: float = 0.5,
                        l2_user: float = 0.0, user_tower: str = "free",
                        history_dropout: float = 0.5, seed: int = C.SEED) -> keras.Model:
    """User tower -> dropout -> scores for all movies (logits), for top-k ranking.

    Args:
        movie_init: stage-1 movie vectors (n_movies, dim); required unless init="random".
        init: ``"stage1"`` starts from them and fine-tunes, ``"frozen"`` keeps them,
            ``"random"`` ignores them (the comparison).
        side_sizes: category counts of side inputs (gender, age_label, occupation).
        dropout: on the user vector (`stages.run_stage2` turns it off for a history
            tower, whose input dropout regularises it).
        l2_user: L2 on the whole user table (off by default: the trainer's `l2_pair`
            regularises the rows of each batch instead).
        user_tower: ``"free"``, a learnt vector per user (plus side inputs), or
            ``"history"``, that plus a `HistoryEncoder` of the movies the user rated
            (input ``history``), with `history_dropout`; a new user's vector is then
            computed from their movies exactly, as for anyone.

    Layers: ``user_embedding``, ``<side>_embedding``, ``movie_embedding`` (an
    `AllMovieScores` holding the movie table and biases).
    """
    if init not in INIT_MODES:
        raise ValueError(f"init must be one of {INIT_MODES}")
    if user_tower not in USER_TOWERS:
        raise ValueError(f"user_tower must be one of {USER_TOWERS}, not {user_tower!r}")
    inputs, vector = _user_tower(n_users, dim, side_sizes or {}, l2_user, seed)
    if user_tower == "history":
        inputs["history"] = keras.Input(shape=(n_movies,), name="history")
        encoded = HistoryEncoder(n_movies, dim, history_dropout, seed=seed + 2,
                                 name="history_encoder")(inputs["history"])
        vector = layers.Add(name="add_history")([vector, encoded])
    vector = layers.Dropout(dropout, seed=seed, name="user_dropout")(vector)
    scores = AllMovieScores(n_movies, dim, freeze_table=init == "frozen", seed=seed + 1,
                            name="movie_embedding")(vector)
    model = keras.Model(inputs, scores, name=f"ranking_{init}")
    _set_movie_table(model, movie_init, init, n_movies, dim)
    return model


def _set_movie_table(model, movie_init, init, n_movies, dim):
    """Start the movie table (layer ``movie_embedding``) from the stage-1 vectors."""
    if init == "random":
        return
    if movie_init is None or movie_init.shape != (n_movies, dim):
        raise ValueError(f"init={init!r} needs stage-1 movie vectors of shape "
                         f"({n_movies}, {dim}), got "
                         f"{None if movie_init is None else movie_init.shape}")
    model.get_layer("movie_embedding").embeddings.assign(_scaled(movie_init))


def own_user_vectors(model: keras.Model, features: dict[str, np.ndarray],
                     users: np.ndarray | None = None) -> np.ndarray:
    """The part of user vectors the model learnt per user: embedding plus side inputs
    (all of the vector for a free tower; without the encoded movies for a history one)."""
    n = model.get_layer("user_embedding").input_dim
    users = np.arange(n, dtype=np.int32) if users is None else np.asarray(users, np.int32)
    vec = np.asarray(model.get_layer("user_embedding").embeddings)[users]
    for name, codes in features.items():
        layer = f"{name}_embedding"
        if any(lyr.name == layer for lyr in model.layers):
            vec = vec + np.asarray(model.get_layer(layer).embeddings)[codes[users]]
    return vec


def user_vectors(model: keras.Model, features: dict[str, np.ndarray],
                 users: np.ndarray | None = None,
                 history: sp.csr_matrix | None = None) -> np.ndarray:
    """User vectors as the model sees them at inference (`own_user_vectors`, plus the
    encoded `history` for a history tower)."""
    n = model.get_layer("user_embedding").input_dim
    users = np.arange(n, dtype=np.int32) if users is None else np.asarray(users, np.int32)
    vec = own_user_vectors(model, features, users)
    extra = history_part(model, history, users)
    return vec if extra is None else vec + extra


def ranking_scores(model: keras.Model, features: dict[str, np.ndarray],
                   history: sp.csr_matrix | None = None):
    """``score(user_rows) -> (len, n_movies)`` logits, computed in numpy from the weights
    as they are now (read once: train again, ask for a new scorer)."""
    table = model.get_layer("movie_embedding")
    emb, bias = np.asarray(table.embeddings), np.asarray(table.bias)
    own = own_user_vectors(model, features)  # read once, not the whole table per batch

    def score(rows):
        vec = own[rows]
        extra = history_part(model, history, rows)
        out = (vec if extra is None else vec + extra) @ emb.T
        out += bias  # in place: a second (users, movies) array costs as much as the product
        return out

    return score


@keras.saving.register_keras_serializable(package="lib")
class LazyAdam(keras.optimizers.Adam):
    """Adam that, for a gradient of a few rows of a table (what `tf.gather` gives), updates
    only those rows and their moments, like TensorFlow 1's LazyAdamOptimizer: a step costs
    the rows it touches, not the table (162,541 users x 64 at ML-25M). Dense gradients
    take Keras' Adam unchanged."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("LazyAdam has no amsgrad variant")

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        t = tf.cast(self.iterations + 1, dtype)
        b1, b2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(b2, t)) / (1 - tf.pow(b1, t))
        rows, where = tf.unique(gradient.indices)
        g = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), where,
                                         tf.shape(rows)[0])
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        m_rows = b1 * tf.gather(m.value, rows) + (1 - b1) * g
        v_rows = b2 * tf.gather(v.value, rows) + (1 - b2) * tf.square(g)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(
            alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))


def _ragged(matrix: sp.csr_matrix) -> tf.RaggedTensor:
    return tf.RaggedTensor.from_row_splits(tf.constant(matrix.indices, tf.int32),
                                           tf.constant(matrix.indptr, tf.int64))


def train_ranking_model(model: keras.Model, train: sp.csr_matrix,
                        features: dict[str, np.ndarray], *, epochs: int = C.MAX_EPOCHS,
                        batch_users: int = C.RANKING_BATCH_USERS,
                        learning_rate: float = C.RANKING_LEARNING_RATE,
                        validation=None, patience: int = 8, seed: int = C.SEED,
                        progress: bool = True, loss: str = "full",
                        negatives: int = C.SAMPLED_NEGATIVES,
                        l2_pair: float = C.RANKING_L2_PAIR) -> pd.DataFrame:
    """Fit the ranking model, a batch of users per step, one softmax row per user.

    The whole epoch is one compiled TensorFlow loop. With the full softmax each step builds
    its batch's multi-hot targets from the training matrix on the fly (no users x movies
    array); the sampled softmax needs no targets at all, so memory stays flat at any scale.

    Args:
        train: users x movies 0/1 training matrix (rows and columns from the id map).
        features: side inputs from `side_features` (only those the model has are used).
        validation: optional ``(fn)`` taking the model and returning a score to maximise
            (e.g. NDCG@10 on held-out ratings); with it, training stops after `patience`
            epochs without improvement, or `config.PATIENCE_STEPS` updates if that is more
            epochs (small datasets make few updates an epoch), and the best weights are
            restored.
        loss: ``"full"``, the softmax over all movies, or ``"sampled"``, over each
            positive and `negatives` movies drawn by popularity per batch, corrected for
            the sampling (`lib.losses.sampled_softmax`), for catalogues where users x
            movies scores per epoch cost too much.
        l2_pair: weight decay on the user embedding rows of the batch, once per
            (user, positive) pair, like the loss: ``l2_pair * sum_u n_u |e_u|^2 / sum_u
            n_u`` (the weighted-lambda regularisation of ALS-WR), so its strength does not
            depend on the batch size or on how many users the table holds, and the user
            table's gradient stays sparse.

    Returns:
        One row per epoch: loss, seconds, examples (ratings) per second, validation score.
    """
    n_movies = train.shape[1]
    if loss not in ("full", "sampled"):
        raise ValueError(f"loss must be 'full' or 'sampled', not {loss!r}")
    cluster = D.active()
    # On a cluster the model must have been built inside `distributed.scope()`.
    strategy = tf.distribute.get_strategy() if cluster is None else cluster.strategy
    shares = strategy.num_replicas_in_sync  # workers, each one replica (one CPU device)
    with D.scope():
        optimizer = LazyAdam(learning_rate)
        optimizer.build(model.trainable_variables)
    rows = _ragged(train)
    positives = tf.constant(np.diff(train.indptr), tf.float32)
    feats = {k: tf.constant(v) for k, v in features.items() if k in model.input}
    with_history = "history" in model.input
    table = model.get_layer("movie_embedding")
    user_table = model.get_layer("user_embedding").embeddings
    users_only = keras.Model(model.inputs, table.input)  # the user tower, dropout included
    log_q = tf.constant(L.sampling_log_q(np.asarray(train.sum(axis=0)).ravel(), negatives))

    def step(users, step_number):
        # Every worker gets the same global batch and takes its share of the users; its
        # loss is its share of the global batch's mean over (user, positive) pairs, so the
        # all-reduced (summed) gradient is the gradient one process would compute.
        pairs = tf.reduce_sum(tf.gather(positives, users))
        everyone = users
        if shares > 1:
            users = users[tf.distribute.get_replica_context().replica_id_in_sync_group::shares]
        batch = tf.gather(rows, users)
        idx = tf.stack([tf.cast(batch.value_rowids(), tf.int32), batch.flat_values], axis=1)
        inputs = {"user": users, **{k: tf.gather(v, users) for k, v in feats.items()}}
        if loss == "full" or with_history:  # the batch's multi-hot rows
            target = tf.scatter_nd(idx, tf.ones(tf.shape(idx)[0]),
                                   [tf.shape(users)[0], n_movies])
        if with_history:  # the movies each user rated are both input and target
            inputs["history"] = target
        with tf.GradientTape() as tape:
            u = users_only(inputs, training=True)
            if loss == "full":
                value = L.full_softmax(table(u), target, pairs)
            else:  # the same negatives on every worker: keyed by (seed, step)
                sample = L.draw_negatives(log_q, negatives, tf.stack([seed, step_number]))
                value = L.sampled_softmax(u, table.embeddings.value, table.bias.value,
                                          idx[:, 0], idx[:, 1], sample, log_q, pairs)
            total = value + tf.add_n(model.losses) / shares if model.losses else value
            if l2_pair:
                # On the learnt rows (sparse gradient) or, with a history tower, on the
                # whole vector, whose encoded part is shared by every user.
                own = u if with_history else tf.gather(user_table.value, users)
                n_pos = tf.cast(batch.row_lengths(), tf.float32)
                sq = tf.reduce_sum(tf.square(own), axis=1)
                total += l2_pair * tf.reduce_sum(n_pos * sq) / pairs
        grads = tape.gradient(total, model.trainable_variables)
        if shares == 1:
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return value, []
        # A table's gradient touches a few rows, a different number on each worker, and a
        # collective keeps the shape it first had: the user rows are summed on the global
        # batch's places (batch_users of them), every other table whole; then each update
        # takes the rows the global batch touched, as one process would (lazy updates).
        n_everyone = tf.shape(everyone)[0]
        order = tf.argsort(everyone)
        movies = tf.unique(tf.concat([tf.gather(rows, everyone).flat_values, sample
                                      if loss == "sampled" else tf.zeros([0], tf.int32)], 0))[0]
        touched = {id(table.embeddings): movies, id(table.bias): movies}
        for k, v in feats.items():
            touched[id(model.get_layer(f"{k}_embedding").embeddings)] = tf.unique(
                tf.gather(v, everyone))[0]
        dense = []
        for g, var in zip(grads, model.trainable_variables, strict=True):
            if var is user_table and isinstance(g, tf.IndexedSlices):
                where = tf.gather(order, tf.searchsorted(tf.gather(everyone, order), g.indices))
                dense.append(tf.math.unsorted_segment_sum(g.values, where, batch_users))
            else:
                dense.append(tf.convert_to_tensor(g))
        summed = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, dense)
        out = []
        for g, var, total in zip(grads, model.trainable_variables, summed, strict=True):
            if var is user_table and isinstance(g, tf.IndexedSlices):
                out.append(tf.IndexedSlices(total[:n_everyone], everyone))
            elif isinstance(g, tf.IndexedSlices) and id(var) in touched:
                out.append(tf.IndexedSlices(tf.gather(total, touched[id(var)]),
                                            touched[id(var)]))
            else:
                out.append(total)
        return value, out

    @tf.function
    def run_epoch(order, first_step):
        # The whole epoch is one graph: no Python between batches; one step at a time, so
        # every worker runs its all-reduces in the same order.
        n_batches = (tf.shape(order)[0] + batch_users - 1) // batch_users

        def one_step(i, total):
            value, grads = strategy.run(step, args=(
                order[i * batch_users:(i + 1) * batch_users], first_step + i))
            if shares > 1:  # the summed gradients, applied once per worker
                optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return i + 1, total + value

        _, total = tf.while_loop(lambda i, _: i < n_batches, one_step,
                                 (tf.constant(0), tf.constant(0.0)), parallel_iterations=1)
        return total / tf.cast(n_batches, tf.float32)

    active = np.flatnonzero(np.diff(train.indptr) > 0).astype(np.int32)
    steps_per_epoch = max(1, -(-len(active) // batch_users))
    patience = max(patience, -(-C.PATIENCE_STEPS // steps_per_epoch))
    orders = EpochOrders(active, seed)

    def epoch_row(epoch):
        start = time.perf_counter()
        mean_loss = float(run_epoch(tf.constant(orders(epoch)),
                                    tf.constant(epoch * steps_per_epoch + 1, tf.int32)))
        if cluster is not None:  # each worker's share of the mean
            mean_loss = cluster.total(mean_loss)
        seconds = time.perf_counter() - start
        return {"loss": mean_loss, "seconds": seconds,
                "ratings_per_second": train.nnz / seconds}

    score = None
    if validation is not None:  # scored by the chief, the same score on every worker
        def score():
            return D.chief_value(float(validation(model)) if D.is_chief() else None)
    store = CK.next_fit(lambda: CK.fingerprint_of(  # hashed only inside a checkpointed job
        train, model=model.name, weights=[list(w.shape) for w in model.weights],
        epochs=epochs, batch_users=batch_users, learning_rate=learning_rate,
        patience=patience, seed=seed, loss=loss, negatives=negatives, l2_pair=l2_pair,
        validation=validation is not None, workers=shares))
    return _fit_epochs(model, epoch_row, score, "validation", epochs=epochs,
                       patience=patience, min_delta=0.0, maximise=True,
                       desc="stage 2 (ranking)", progress=progress, store=store,
                       variables=model.variables + optimizer.variables)


class EpochOrders:
    """The shuffled order of epoch e (`__call__(e)`), the same whether a run started at
    epoch 0 or resumed at e: the orders of the epochs before are drawn and dropped."""

    def __init__(self, items, seed: int):
        self.items, self.rng, self.drawn = items, np.random.default_rng(seed), 0

    def __call__(self, epoch: int) -> np.ndarray:
        while self.drawn < epoch:
            self.rng.permutation(self.items)
            self.drawn += 1
        self.drawn += 1
        return self.rng.permutation(self.items)


def _fit_epochs(model: keras.Model, epoch_row, score, name: str, *, epochs: int,
                patience: int, min_delta: float, maximise: bool, desc: str,
                progress: bool, store=None, variables=()) -> pd.DataFrame:
    """The epoch loop both stage-2 trainers share, with Keras' early-stopping rule.

    `epoch_row(epoch)` trains epoch `epoch` (from 0) and returns its numbers; `score()` (or
    None) is the validation score, recorded as column `name`. Patience counts the epochs
    since the score last gained more than `min_delta`; the weights kept are those of the
    first best score (what the refit's epoch count, ``idxmax``/``idxmin``, also picks).
    With a `store` (`checkpoints.Fit`), `variables` (model and optimizer) and the
    early-stopping state are saved after every epoch, and a run saved before resumes
    after its last saved epoch (or, finished, returns at once).
    """
    sign = 1.0 if maximise else -1.0
    history, reference, best, best_weights, waited = [], -np.inf, -np.inf, None, 0
    state = store.restore(list(variables)) if store is not None else None
    if state is not None:
        history, waited = state["history"], state["waited"]
        reference, best, best_weights = state["reference"], state["best"], state["best_weights"]
        if state.get("done"):
            return _history_frame(history, state["stop"], desc, epochs, name)
    done = len(history)
    stopped = score is not None and waited >= patience
    bar = tqdm(range(done, epochs if not stopped else done), desc=desc, initial=done,
               total=epochs, disable=not progress or C.headless())
    for epoch in bar:
        row = {"epoch": epoch + 1, **epoch_row(epoch)}
        if score is not None:
            row[name] = score()
            value = sign * row[name]
            if value > reference + min_delta:
                reference, waited = value, 0
            else:
                waited += 1
            if value > best:
                best, best_weights = value, model.get_weights()
        history.append(row)
        bar.set_postfix({k: round(v, 4) for k, v in row.items()
                         if k in ("loss", "rmse", name)})
        if store is not None:
            store.save(list(variables), {"epoch": epoch + 1, "history": history,
                                         "waited": waited, "reference": reference,
                                         "best": best, "best_weights": best_weights})
        if score is not None and waited >= patience:
            break
    if best_weights is not None:
        model.set_weights(best_weights)
    # Why it ended: "patience" (validation stopped improving: converged), "cap" (the
    # epoch limit came first, while validation may still improve), "epochs" (no
    # validation: a fixed count, e.g. the refit).
    stop = "epochs" if score is None else "patience" if waited >= patience else "cap"
    if store is not None:
        store.save(list(variables), {"epoch": len(history), "history": history,
                                     "waited": waited, "reference": reference, "best": best,
                                     "best_weights": None, "done": True, "stop": stop},
                   done=True)
    return _history_frame(history, stop, desc, epochs, name)


def _history_frame(history: list[dict], stop: str, desc: str, epochs: int,
                   name: str) -> pd.DataFrame:
    frame = pd.DataFrame(history)
    frame.attrs["stop"] = stop
    if stop == "cap":
        log.warning("%s: stopped at the %d-epoch cap while %s was still improving within "
                    "its patience; raise `epochs` for a converged run", desc, epochs, name)
    return frame


def build_rating_model(n_users: int, n_movies: int, dim: int = C.EMBEDDING_DIM, *,
                       global_mean: float, movie_init: np.ndarray | None = None,
                       init: str = "stage1", side_sizes: dict[str, int] | None = None,
                       l2: float = 0.1, learning_rate: float = 3e-3,
                       seed: int = C.SEED) -> keras.Model:
    """Predicted stars = global mean + user bias + movie bias + user . movie.

    Layers ``user_embedding``, ``movie_embedding`` (a plain `Embedding`), ``user_bias``,
    ``movie_bias``; `init` as in `build_ranking_model`. `l2` is weight decay on the vectors
    and biases of each batch (mean over the batch), as in classic matrix factorisation;
    0.1 was best of 0.01-0.3 on ML-100K's validation ratings. Compiled with `LazyAdam`
    above `config.LAZY_MIN_ROWS` users + movies, Keras' Adam below.
    """
    if init not in INIT_MODES:
        raise ValueError(f"init must be one of {INIT_MODES}")
    inputs, uv = _user_tower(n_users, dim, side_sizes or {}, l2, seed, per_example=True)
    movie = keras.Input(shape=(), dtype="int32", name="movie")
    inputs["movie"] = movie
    reg = keras.regularizers.L2(l2) if l2 else None
    table = Embedding(n_movies, dim, name="movie_embedding",
                      embeddings_initializer=keras.initializers.RandomNormal(
                          stddev=_INIT_STD, seed=seed + 1),
                      activity_regularizer=reg, trainable=init != "frozen")
    mv = table(movie)
    dot = layers.Dot(axes=1, name="dot")([uv, mv])
    ub = layers.Flatten(name="user_bias_flat")(Embedding(
        n_users, 1, embeddings_initializer="zeros", activity_regularizer=reg,
        name="user_bias")(inputs["user"]))
    mb = layers.Flatten(name="movie_bias_flat")(Embedding(
        n_movies, 1, embeddings_initializer="zeros", activity_regularizer=reg,
        name="movie_bias")(movie))
    total = layers.Add(name="sum")([layers.Reshape((1,), name="dot_col")(dot), ub, mb])
    stars = layers.Rescaling(1.0, offset=float(global_mean), name="stars")(total)
    model = keras.Model(inputs, layers.Flatten(name="rating")(stars), name=f"rating_{init}")
    _set_movie_table(model, movie_init, init, n_movies, dim)
    lazy = n_users + n_movies > C.LAZY_MIN_ROWS
    model.compile(optimizer=(LazyAdam if lazy else keras.optimizers.Adam)(learning_rate),
                  loss="mse",
                  metrics=[keras.metrics.RootMeanSquaredError(name="rmse")])
    return model


def rating_inputs(frame: pd.DataFrame, ids, features: dict[str, np.ndarray],
                  model: keras.Model | None = None) -> dict[str, np.ndarray]:
    """int32 input arrays for the rating model from a ratings frame (ids -> rows here)."""
    users = ids.user_rows(frame[C.USER_COL].to_numpy())
    out = {"user": users, "movie": ids.movie_rows(frame[C.MOVIE_COL].to_numpy())}
    for k, v in features.items():
        if model is None or k in model.input:
            out[k] = v[users]
    return out


def train_rating_model(model: keras.Model, train: pd.DataFrame, ids,
                       features: dict[str, np.ndarray], *, validation: pd.DataFrame | None,
                       epochs: int = 30, batch_size: int = 4096, patience: int = 3,
                       seed: int = C.SEED, progress: bool = True) -> pd.DataFrame:
    """Fit the rating model with the optimizer it was compiled with, in shuffled batches.

    Like the ranking trainer, one compiled TensorFlow graph runs a whole epoch (no Python
    and no input pipeline between batches; Keras `fit` spent most of its time there). With
    `validation`, training stops once validation RMSE has gained less than 0.0005 for
    `patience` epochs, and the weights of the epoch with the lowest validation RMSE are
    restored.

    Returns:
        One row per epoch: ``loss`` (mean squared error plus the L2 terms), ``rmse`` on
        the training batches, ``val_rmse``, ``seconds``.
    """
    x = {k: tf.constant(v) for k, v in rating_inputs(train, ids, features, model).items()}
    y = tf.constant(train[C.RATING_COL].to_numpy(np.float32))
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)

    @tf.function
    def run_epoch(order):
        n_batches = (tf.shape(order)[0] + batch_size - 1) // batch_size
        total_loss, total_sq = tf.constant(0.0), tf.constant(0.0)
        for i in tf.range(n_batches):
            rows = order[i * batch_size:(i + 1) * batch_size]
            target = tf.gather(y, rows)
            with tf.GradientTape() as tape:
                pred = tf.reshape(model({k: tf.gather(v, rows) for k, v in x.items()},
                                        training=True), [-1])
                sq = tf.reduce_sum(tf.square(pred - target))
                value = sq / tf.cast(tf.shape(rows)[0], tf.float32)
                if model.losses:
                    value += tf.add_n(model.losses)
            grads = tape.gradient(value, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            total_loss += value
            total_sq += sq
        return total_loss / tf.cast(n_batches, tf.float32), total_sq

    n = len(train)
    orders = EpochOrders(np.arange(n, dtype=np.int32), seed)

    def epoch_row(epoch):
        start = time.perf_counter()
        loss, sq = run_epoch(tf.constant(orders(epoch)))
        return {"loss": float(loss), "rmse": float(np.sqrt(sq / n)),
                "seconds": time.perf_counter() - start}

    def val_rmse():
        pred = predict_ratings(model, validation, ids, features, scale=(-np.inf, np.inf))
        actual = validation[C.RATING_COL].to_numpy(np.float32)
        return float(np.sqrt(np.mean((pred - actual) ** 2)))

    return _fit_epochs(model, epoch_row, None if validation is None else val_rmse,
                       "val_rmse", epochs=epochs, patience=patience, min_delta=5e-4,
                       maximise=False, desc="stage 2 (rating)", progress=progress)


def predict_ratings(model: keras.Model, frame: pd.DataFrame, ids,
                    features: dict[str, np.ndarray], scale=(1.0, 5.0)) -> np.ndarray:
    """Predicted stars for the (user, movie) pairs of `frame`, clipped to the scale."""
    x = rating_inputs(frame, ids, features, model)
    # Direct calls in chunks: no per-model tf.function to trace (and warn about).
    pred = [np.asarray(model({k: v[i:i + 65536] for k, v in x.items()}, training=False))
            for i in range(0, len(frame), 65536)]
    pred = np.concatenate(pred).reshape(-1) if pred else np.zeros(0, np.float32)
    return np.clip(pred, scale[0], scale[1])
