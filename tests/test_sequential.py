"""The self-attention model over each user's history (`lib.sequential`): causal, and able
to learn an order that a model of the same movies without their order cannot."""
from __future__ import annotations

import numpy as np
import pandas as pd

from lib import config as C
from lib import sequential as S
from lib.ids import IdMap


def test_a_position_sees_only_the_movies_before_it():
    model = S.build_sequential_model(30, 16, max_len=8, blocks=2, heads=2, dropout=0.0)
    rng = np.random.default_rng(0)
    seqs = rng.integers(1, 31, size=(4, 8)).astype(np.int32)
    changed = seqs.copy()
    changed[:, 5:] = rng.integers(1, 31, size=(4, 3))  # only positions 5, 6, 7
    a, b = np.asarray(model(seqs)), np.asarray(model(changed))
    np.testing.assert_allclose(a[:, :5], b[:, :5], rtol=1e-5, atol=1e-6)
    assert not np.allclose(a[:, 5:], b[:, 5:])
    assert a.shape == (4, 8, 30)


def test_histories_are_time_ordered_left_padded_rows_plus_one():
    ratings = pd.DataFrame({C.USER_COL: [7, 7, 7, 9], C.MOVIE_COL: [30, 10, 20, 10],
                            C.RATING_COL: [5, 4, 3, 2], C.TIMESTAMP_COL: [3, 1, 2, 5]})
    ids = IdMap([7, 9], [10, 20, 30], ["Drama"])
    users, seqs = S.histories(ratings, ids, max_len=4)
    assert users.tolist() == [0, 1]
    # user 7: movies 10, 20, 30 in time order are rows 0, 1, 2 -> 1, 2, 3
    assert seqs.tolist() == [[0, 1, 2, 3], [0, 0, 0, 1]]
    inputs, targets, weights = S.next_targets(seqs)
    assert inputs.tolist() == [[0, 0, 1, 2], [0, 0, 0, 0]]
    assert targets[0, 2:].tolist() == [1, 2] and weights.tolist() == [[0, 0, 1, 1], [0] * 4]


def test_it_learns_a_planted_order_that_shuffled_histories_do_not_teach():
    """Each user walks a chain: after movie m comes movie m + 1 (mod 40), from a random
    start. Trained on such histories, the model's top pick after a history is its next
    movie almost always; trained on the same histories shuffled (same movies, order gone)
    it cannot know which movie comes next. Measured: 0.97 ordered, 0.00 shuffled (the
    control learns to name movies of the history itself, never the next one)."""
    rng = np.random.default_rng(1)
    n_movies, max_len = 40, 12
    starts = rng.integers(0, n_movies, size=400)
    chains = (starts[:, None] + np.arange(max_len + 1)[None, :]) % n_movies + 1
    train, truth = chains[:, :max_len].astype(np.int32), chains[:, max_len] - 1
    shuffled = np.array([rng.permutation(row) for row in train], np.int32)

    def hit_rate(seqs):
        model = S.build_sequential_model(n_movies, 16, max_len=max_len, blocks=1, heads=2,
                                         dropout=0.0, seed=3)
        S.train_sequential_model(model, seqs, epochs=30, batch_size=64, learning_rate=5e-3)
        top = S.next_scores(model, train).argmax(axis=1)
        return float(np.mean(top == truth))

    ordered, control = hit_rate(train), hit_rate(shuffled)
    assert ordered > 0.9, ordered
    assert control < 0.3, control
