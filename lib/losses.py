"""The ranking model's losses: the softmax over all movies, and its sampled version for
large catalogues.

Both take a batch of users and, for each, the movies they rated (their positives); both
are the mean over (user, positive) pairs of ``-log p(positive | user)``.

The sampled softmax follows Yi et al., "Sampling-bias-corrected neural modeling for large
corpus item recommendations" (RecSys 2019): the softmax of a (user, positive) pair runs over
that positive and a sample of negatives shared by the whole batch, drawn by popularity;
every logit is corrected by the log of its movie's expected count in the sample
(``log(S q_j)``), so the sampled softmax estimates the full one without favouring what is
drawn often; a sampled movie that is one of the user's own positives (an accidental hit) is
left out of that user's softmax. Negatives come from a stateless generator keyed by
``(seed, step)``, so several workers draw the same ones.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf


def full_softmax(logits: tf.Tensor, target: tf.Tensor, pairs: tf.Tensor | None = None
                 ) -> tf.Tensor:
    """Mean over (user, positive) pairs of ``-log softmax(logits)[positive]``.

    Args:
        logits: (users, movies) scores.
        target: (users, movies) 0/1, the users' positives.
        pairs: what to divide the sum by instead of the batch's pairs: those of the global
            batch when each worker scores its share of it.
    """
    if pairs is None:
        pairs = tf.reduce_sum(target)
    return -tf.reduce_sum(target * tf.nn.log_softmax(logits)) / pairs


def sampling_log_q(counts: np.ndarray, n_samples: int) -> np.ndarray:
    """``log(S q_j)`` for popularity sampling (``q_j`` proportional to the movie's training
    ratings); movies never rated are never drawn (and are no one's positive)."""
    counts = np.asarray(counts, dtype=np.float64)
    q = counts / counts.sum()
    return np.log(np.maximum(n_samples * q, 1e-30)).astype(np.float32)


def draw_negatives(log_q: tf.Tensor, n_samples: int, seed: tf.Tensor) -> tf.Tensor:
    """`n_samples` movie rows drawn with replacement by popularity, the same for the same
    ``seed`` (a pair of int32: the run's seed and the step) on every worker."""
    return tf.cast(tf.random.stateless_categorical(log_q[None, :], n_samples, seed)[0],
                   tf.int32)


def accidental_hits(pos_rows: tf.Tensor, pos_items: tf.Tensor, negatives: tf.Tensor,
                    n_users: tf.Tensor, n_movies: tf.Tensor) -> tf.Tensor:
    """(users, S) booleans: whether negative j is one of user b's own positives.

    Found by a sorted search over (row, movie) keys, so no (users x movies) array is built
    whatever the catalogue.
    """
    n = tf.cast(n_movies, tf.int64)
    keys = tf.sort(tf.cast(pos_rows, tf.int64) * n + tf.cast(pos_items, tf.int64))
    keys = tf.concat([keys, [tf.int64.max]], 0)  # a sentinel: every search lands inside
    asked = (tf.range(tf.cast(n_users, tf.int64))[:, None] * n
             + tf.cast(negatives, tf.int64)[None, :])
    flat = tf.reshape(asked, [-1])
    found = tf.gather(keys, tf.searchsorted(keys, flat, out_type=tf.int64)) == flat
    return tf.reshape(found, tf.shape(asked))


def sampled_softmax(user_vectors: tf.Tensor, table: tf.Tensor, bias: tf.Tensor,
                    pos_rows: tf.Tensor, pos_items: tf.Tensor, negatives: tf.Tensor,
                    log_q: tf.Tensor, pairs: tf.Tensor | None = None) -> tf.Tensor:
    """Mean over (user, positive) pairs of the corrected sampled-softmax loss.

    Args:
        user_vectors: (users, dim) of the batch.
        table, bias: the movie table (movies, dim) and biases (movies,).
        pos_rows, pos_items: one entry per (user, positive) pair: the user's row in the
            batch and the movie; they also tell the accidental hits (`accidental_hits`).
        negatives: (S,) movie rows shared by the batch.
        log_q: (movies,) ``log(S q_j)`` of the sampling (`sampling_log_q`).
        pairs: what to divide the sum by instead of the batch's pairs (`full_softmax`).
    """
    pos_logit = (tf.reduce_sum(tf.gather(user_vectors, pos_rows) * tf.gather(table, pos_items),
                               axis=-1)
                 + tf.gather(bias, pos_items) - tf.gather(log_q, pos_items))
    neg_logit = (tf.matmul(user_vectors, tf.gather(table, negatives), transpose_b=True)
                 + tf.gather(bias, negatives) - tf.gather(log_q, negatives))
    hit = accidental_hits(pos_rows, pos_items, negatives, tf.shape(user_vectors)[0],
                          tf.shape(table)[0])
    neg_logit = tf.where(hit, tf.constant(-np.inf, neg_logit.dtype), neg_logit)
    neg_lse = tf.reduce_logsumexp(neg_logit, axis=1)  # per user; -inf if all were hits
    per_pair = tf.reduce_logsumexp(
        tf.stack([pos_logit, tf.gather(neg_lse, pos_rows)], axis=1), axis=1) - pos_logit
    if pairs is None:
        return tf.reduce_mean(per_pair)
    return tf.reduce_sum(per_pair) / pairs
