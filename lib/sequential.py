"""What to watch next: a self-attention model over each user's movies in time order.

SASRec's architecture (Kang & McAuley, 2018) trained as in SASRec+ (Klenitskiy & Vasilev,
RecSys 2023): at every position of a user's history the model scores every movie as the
next one, with a softmax over all movies. Keras layers only: a movie table (row 0 is
padding; it can start from the stage-1 vectors), learned positions, causal multi-head
self-attention blocks with layer norm, dropout and a feed-forward part, and the movie table
again as the output layer.

Histories are rows of movie rows + 1 (0 pads on the left), the latest movie last.
"""
from __future__ import annotations

import keras
import numpy as np
import pandas as pd
from keras import layers, ops

from lib import config as C

PAD = 0


def histories(ratings: pd.DataFrame, ids, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Each user's latest `max_len` movies in time order (ties by movie id), as movie
    rows + 1, left-padded with 0. Returns ``(user rows, histories)``."""
    frame = ratings.assign(_user=ids.user_rows(ratings[C.USER_COL].to_numpy()),
                           _movie=ids.movie_rows(ratings[C.MOVIE_COL].to_numpy()) + 1)
    frame = frame.sort_values(["_user", C.TIMESTAMP_COL, C.MOVIE_COL], kind="stable")
    users = frame["_user"].to_numpy()
    movies = frame["_movie"].to_numpy()
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    out = np.zeros((len(starts), max_len), np.int32)
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        seq = movies[max(a, b - max_len):b]
        out[i, max_len - len(seq):] = seq
    return users[starts], out


@keras.saving.register_keras_serializable(package="movielens")
class PositionalMovies(layers.Layer):
    """Movie vectors (the shared table, row 0 padding) plus learned position vectors."""

    def __init__(self, n_movies: int, dim: int, max_len: int, seed: int = C.SEED, **kwargs):
        super().__init__(**kwargs)
        self.n_movies, self.dim, self.max_len, self.seed = n_movies, dim, max_len, seed

    def build(self, input_shape):
        init = keras.initializers.RandomNormal(stddev=0.05, seed=self.seed)
        self.movies = self.add_weight(shape=(self.n_movies + 1, self.dim), name="movies",
                                      initializer=init)
        self.positions = self.add_weight(shape=(self.max_len, self.dim), name="positions",
                                         initializer=keras.initializers.RandomNormal(
                                             stddev=0.05, seed=self.seed + 1))

    def call(self, history):
        x = ops.take(self.movies, history, axis=0) * (self.dim ** 0.5)
        return x + self.positions[None, :, :]

    def get_config(self):
        return {**super().get_config(), "n_movies": self.n_movies, "dim": self.dim,
                "max_len": self.max_len, "seed": self.seed}


@keras.saving.register_keras_serializable(package="movielens")
class MovieLogits(layers.Layer):
    """Scores of every movie (padding excluded) from a sequence of vectors, through the
    transposed movie table of `PositionalMovies`."""

    def __init__(self, table: PositionalMovies, **kwargs):
        super().__init__(**kwargs)
        self.table = table

    def call(self, h):
        return ops.matmul(h, ops.transpose(self.table.movies[1:]))


def build_sequential_model(n_movies: int, dim: int = C.EMBEDDING_DIM, *, max_len: int = 50,
                           blocks: int = 2, heads: int = 2, dropout: float = 0.2,
                           movie_init: np.ndarray | None = None,
                           seed: int = C.SEED) -> keras.Model:
    """Histories (users, max_len) -> logits (users, max_len, n_movies): at position t the
    scores of the movie that comes after the first t + 1 movies.

    Args:
        movie_init: stage-1 movie vectors (n_movies, dim) to start the movie table from,
            scaled to the spread of the random start (the padding row stays random); None
            starts it at random.
    """
    history = keras.Input(shape=(max_len,), dtype="int32", name="history")
    embed = PositionalMovies(n_movies, dim, max_len, seed=seed, name="movie_positions")
    x = layers.Dropout(dropout, seed=seed)(embed(history))
    real = ops.cast(ops.not_equal(history, PAD), "float32")[:, :, None]
    x = x * real
    for b in range(blocks):
        h = layers.LayerNormalization(epsilon=1e-6, name=f"block{b}_norm1")(x)
        h = layers.MultiHeadAttention(heads, dim // heads, dropout=dropout, seed=seed + b,
                                      name=f"block{b}_attention")(h, h, use_causal_mask=True)
        x = x + layers.Dropout(dropout, seed=seed + b)(h)
        h = layers.LayerNormalization(epsilon=1e-6, name=f"block{b}_norm2")(x)
        h = layers.Dense(dim, activation="relu", name=f"block{b}_ffn1")(h)
        h = layers.Dense(dim, name=f"block{b}_ffn2")(h)
        x = (x + layers.Dropout(dropout, seed=seed + b)(h)) * real
    x = layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    logits = MovieLogits(embed, name="movie_logits")(x)
    model = keras.Model(history, logits, name="sequential")
    if movie_init is not None:
        table = keras.ops.convert_to_numpy(embed.movies).copy()
        # scaled to the random start's spread, so that √dim means the same for both
        movie_init = np.asarray(movie_init, np.float32)
        table[1:] = movie_init * (0.05 / max(float(movie_init.std()), 1e-12))
        embed.movies.assign(table)
    return model


def next_targets(seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs, next-movie targets (movie rows) and weights for training: at position t the
    target is the movie at t + 1; positions whose input or target is padding weigh 0."""
    inputs = np.concatenate([np.zeros((len(seqs), 1), seqs.dtype), seqs[:, :-1]], axis=1)
    weights = ((inputs != PAD) & (seqs != PAD)).astype(np.float32)
    targets = np.maximum(seqs - 1, 0)
    return inputs, targets, weights


def train_sequential_model(model: keras.Model, seqs: np.ndarray, *, epochs: int = 20,
                           batch_size: int = 128, learning_rate: float = 1e-3,
                           seed: int = C.SEED) -> pd.DataFrame:
    """Softmax over all movies at every position (the SASRec+ recipe), Adam, shuffled
    batches; `seqs` as from `histories`. Returns one row per epoch (loss)."""
    keras.utils.set_random_seed(seed)
    inputs, targets, weights = next_targets(seqs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(inputs, targets, sample_weight=weights, epochs=epochs,
                        batch_size=batch_size, shuffle=True, verbose=0)
    return pd.DataFrame(history.history).rename_axis("epoch")


def next_scores(model: keras.Model, seqs: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Scores of every movie as the next one after each history (users, n_movies)."""
    return np.asarray(model.predict(seqs, batch_size=batch_size, verbose=0))[:, -1, :]
