"""The ranking losses against numpy written out by hand."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from lib import losses


def test_full_softmax_is_the_mean_negative_log_likelihood_of_each_positive():
    logits = np.array([[1.0, 2.0, 0.0], [0.5, 0.5, 3.0]], np.float32)
    target = np.array([[1, 1, 0], [0, 0, 1]], np.float32)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -(np.log(p[0, 0]) + np.log(p[0, 1]) + np.log(p[1, 2])) / 3
    assert float(losses.full_softmax(tf.constant(logits), tf.constant(target))) == \
        pytest.approx(expected, rel=1e-6)


def test_sampled_softmax_corrects_by_log_q_and_drops_accidental_hits():
    # 2 users, 4 movies, dim 2. User 0 rated movies 0 and 1; user 1 rated movie 2.
    u = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    table = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 2.0], [0.5, 0.5]], np.float32)
    bias = np.array([0.1, 0.0, -0.1, 0.2], np.float32)
    target = np.array([[1, 1, 0, 0], [0, 0, 1, 0]], np.float32)
    pos_rows, pos_items = np.array([0, 0, 1]), np.array([0, 1, 2])
    negatives = np.array([1, 3, 3])  # movie 1 is an accidental hit for user 0
    log_q = np.log(3 * np.array([0.4, 0.3, 0.2, 0.1])).astype(np.float32)
    got = float(losses.sampled_softmax(*map(tf.constant, (u, table, bias)),
                                       tf.constant(pos_rows, tf.int32),
                                       tf.constant(pos_items, tf.int32),
                                       tf.constant(negatives, tf.int32), tf.constant(log_q)))

    def logit(user, movie):  # u . v + b - log(S q)
        return u[user] @ table[movie] + bias[movie] - log_q[movie]

    terms = []
    for user, movie in zip(pos_rows, pos_items, strict=True):
        others = [logit(user, j) for j in negatives if target[user, j] == 0]
        # user 0: movie 1 is dropped from its negatives (it is one of its positives), so
        # its softmax runs over the positive and movie 3 twice; user 1 over all three.
        assert len(others) == (2 if user == 0 else 3)
        every = [logit(user, movie), *others]
        terms.append(-logit(user, movie) + np.log(np.sum(np.exp(every))))
    assert got == pytest.approx(np.mean(terms), rel=1e-5)


def test_accidental_hits_are_the_negatives_among_each_users_positives():
    rng = np.random.default_rng(0)
    target = rng.random((5, 30)) < 0.3
    target[3] = False  # a user with no positives in the batch
    rows, items = np.nonzero(target)
    order = rng.permutation(len(rows))  # pairs in any order
    negatives = rng.integers(0, 30, 50)
    got = losses.accidental_hits(tf.constant(rows[order], tf.int32),
                                 tf.constant(items[order], tf.int32),
                                 tf.constant(negatives, tf.int32), 5, 30)
    np.testing.assert_array_equal(got.numpy(), target[:, negatives])
    none = losses.accidental_hits(tf.zeros([0], tf.int32), tf.zeros([0], tf.int32),
                                  tf.constant(negatives, tf.int32), 2, 30)
    assert not none.numpy().any()


def test_negatives_are_drawn_by_popularity_and_the_same_for_the_same_step():
    counts = np.array([0, 10, 30, 60])
    log_q = tf.constant(losses.sampling_log_q(counts, 20_000))
    a = losses.draw_negatives(log_q, 20_000, tf.constant([7, 3]))
    b = losses.draw_negatives(log_q, 20_000, tf.constant([7, 3]))
    c = losses.draw_negatives(log_q, 20_000, tf.constant([7, 4]))
    np.testing.assert_array_equal(a, b)  # what every worker draws at step 3
    assert not np.array_equal(a, c)
    share = np.bincount(a.numpy(), minlength=4) / 20_000
    np.testing.assert_allclose(share, [0, 0.1, 0.3, 0.6], atol=0.015)  # never an unrated one
