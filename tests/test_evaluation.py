"""Splits, metrics and baselines, on frames small enough to check by hand."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from lib import config as C
from lib import evaluation as ev
from lib.data import DataError
from lib.ids import IdMap


def _ratings(n_users=30, n_movies=40, per_user=12, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(u, m, float(rng.integers(1, 6)), 1000 + 10 * u + i)
            for u in range(1, n_users + 1)
            for i, m in enumerate(sorted(rng.choice(np.arange(1, n_movies + 1), per_user,
                                                    replace=False)))]
    return pd.DataFrame(rows, columns=C.RATING_COLUMNS)


@pytest.mark.parametrize("method", ["per-item", "per-user", "last"])
def test_no_test_rating_reaches_training(method):
    r = _ratings()
    split = ev.make_split(r, method, seed=5)
    both = split.train.merge(split.test, on=[C.USER_COL, C.MOVIE_COL])
    assert len(both) == 0
    assert len(split.train) + len(split.test) == len(r)
    assert len(split.test) > 0


def test_stratified_split_takes_round_of_ratio_per_group():
    r = _ratings()
    split = ev.split_stratified(r, by="item", ratio=0.75, seed=42)
    n = r.groupby(C.MOVIE_COL).size()
    n_train = split.train.groupby(C.MOVIE_COL).size().reindex(n.index, fill_value=0)
    # Python's round, half to even: a movie with 2 ratings keeps round(1.5) = 2 in training.
    assert (n_train == np.round(0.75 * n)).all()
    again = ev.split_stratified(r, by="item", ratio=0.75, seed=42)
    pd.testing.assert_frame_equal(split.test, again.test)  # same seed, same split
    other = ev.split_stratified(r, by="item", ratio=0.75, seed=43)
    assert not split.test.equals(other.test)


def test_leave_last_out_holds_out_each_users_latest():
    r = _ratings()
    split = ev.split_last(r)
    latest = r.loc[r.groupby(C.USER_COL)[C.TIMESTAMP_COL].idxmax()]
    assert set(map(tuple, split.test[[C.USER_COL, C.MOVIE_COL]].to_numpy())) == \
        set(map(tuple, latest[[C.USER_COL, C.MOVIE_COL]].to_numpy()))


def test_split_from_files_checks_header_and_overlap(tmp_path):
    r = _ratings()
    r.iloc[:300].to_csv(tmp_path / "train.csv", index=False)
    r.iloc[300:].to_csv(tmp_path / "test.csv", index=False)
    split = ev.split_from_files(tmp_path)
    assert (len(split.train), len(split.test)) == (300, len(r) - 300)
    r.iloc[290:].to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(DataError, match="10 .user, movie. pairs are in both"):
        ev.split_from_files(tmp_path)
    r.rename(columns={"movie_id": "item"}).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(DataError, match="test.csv line 1: header lacks movie_id"):
        ev.split_from_files(tmp_path)


def test_ranking_metrics_by_hand():
    # 3 users, 6 movies, k = 3.
    # user 0: relevant {0, 2}, recs [0, 1, 2] -> hits [1, 0, 1]
    # user 1: relevant {5}, recs [5, -1, -1] (only one candidate) -> hits [1, 0, 0]
    # user 2: relevant {4}, recs [0, 1, 2] -> no hit
    relevant = sp.csr_matrix(np.array([[1, 0, 1, 0, 0, 0],
                                       [0, 0, 0, 0, 0, 1],
                                       [0, 0, 0, 0, 1, 0]], dtype=np.float32))
    recs = np.array([[0, 1, 2], [5, -1, -1], [0, 1, 2]])
    m = ev.ranking_metrics(recs, relevant, np.arange(3), 3)
    d = [1 / math.log2(i + 2) for i in range(3)]  # 1, 0.631, 0.5
    ndcg0 = (d[0] + d[2]) / (d[0] + d[1])         # ideal: both relevant first
    assert m["precision@3"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert m["recall@3"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["ndcg@3"] == pytest.approx((ndcg0 + 1 + 0) / 3)
    assert m["map@3"] == pytest.approx(((1 + 2 / 3) / 2 + 1 + 0) / 3)
    assert m["hit_rate@3"] == pytest.approx(2 / 3)
    assert m["mrr@3"] == pytest.approx((1 + 1 + 0) / 3)
    assert all(0 <= v <= 1 for k, v in m.items() if k != "users_evaluated")


def test_users_without_relevant_movies_are_skipped_and_fewer_than_k_is_fine():
    relevant = sp.csr_matrix(np.array([[0, 0, 0], [0, 1, 0]], dtype=np.float32))
    recs = np.array([[0, 1], [1, 0]])
    m = ev.ranking_metrics(recs, relevant, np.arange(2), 2)
    assert m["users_evaluated"] == 1
    # One relevant movie, ranked first: ideal DCG is 1 (min(|R|, k) = 1 position).
    assert m["ndcg@2"] == pytest.approx(1.0) and m["precision@2"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no user has a relevant test movie"):
        ev.ranking_metrics(recs[:1], relevant, np.array([0]), 2)
    with pytest.raises(ValueError, match="recs has 2 rows for 1 users"):
        ev.ranking_metrics(recs, relevant, np.array([0]), 2)


def test_top_k_excludes_training_and_pads():
    scores = np.array([[0.9, 0.8, 0.1, 0.5]])
    exclude = sp.csr_matrix(np.array([[1, 0, 0, 1]], dtype=np.float32))
    np.testing.assert_array_equal(ev.top_k(scores, 3, exclude), [[1, 2, -1]])
    np.testing.assert_array_equal(ev.top_k(scores, 6), [[0, 1, 3, 2, -1, -1]])


# 2992 columns are 176 blocks of 17 exactly; 3000, 3001 and 3037 leave 8, 9 and 11 after them
@pytest.mark.parametrize("n_movies", [2992, 3000, 3001, 3037])
def test_top_k_by_blocks_equals_a_stable_sort(n_movies):
    # Wide enough rows for the two-pass top k (block maxima first); ties, -inf, a row
    # of all-equal scores and one with fewer finite scores than k.
    rng = np.random.default_rng(4)
    scores = rng.normal(size=(40, n_movies)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.3] = -np.inf
    scores[:, 100:400] = 2.5  # ties across many blocks, above almost everything
    scores[5] = 1.0
    scores[6] = -np.inf
    scores[6, [2990, 7, 1500]] = [1.0, 1.0, 3.0]
    scores[7, 50] = np.inf  # the best there is
    want = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    want[np.take_along_axis(scores, want, axis=1) == -np.inf] = -1
    got = ev.top_k(scores, 10)
    np.testing.assert_array_equal(got, want)
    assert list(got[6, :3]) == [1500, 7, 2990] and (got[6, 3:] == -1).all()
    assert got[7, 0] == 50
    assert ev.top_k(scores, 0).shape == (40, 0)


def test_rating_metrics_and_shapes():
    m = ev.rating_metrics([3.0, 4.0, 5.0], [4.0, 4.0, 3.0])
    assert m["rmse"] == pytest.approx(math.sqrt((1 + 0 + 4) / 3))
    assert m["mae"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        ev.rating_metrics(np.zeros((3, 1)), np.zeros(3))


def test_baselines_popularity_and_ease():
    # Movies 0 and 1 always go together; movie 2 is the most rated.
    x = sp.csr_matrix(np.array([[1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 1, 1], [1, 0, 1, 0],
                                [0, 0, 1, 0]], dtype=np.float32))
    pop = ev.popularity_scores(x)(np.array([4]))
    assert pop.argmax() == 2
    ease = ev.ease_scores(x, l2=0.5)(np.array([3]))  # user 3 has movies 0 and 2
    # EASE: movie 1 (always with movie 0) must outrank movie 3 (seen only with 2).
    assert ease[0, 1] > ease[0, 3]
    ids = IdMap([1, 2], [10, 20], ["Drama"])
    train = pd.DataFrame({C.USER_COL: [1, 1, 2], C.MOVIE_COL: [10, 20, 10],
                          C.RATING_COL: [5.0, 3.0, 4.0]})
    predict = ev.bias_baseline(train, ids, l2=0.0, iters=50)
    np.testing.assert_allclose(predict(np.array([0, 0, 1]), np.array([0, 1, 0])),
                               [5.0, 3.0, 4.0], atol=1e-6)  # no regularisation: exact fit


def test_count_leaks_and_hits_by_popularity():
    train = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32))
    assert ev.count_leaks(np.array([[1, 2], [3, 1]]), train, np.arange(2)) == 1
    assert ev.count_leaks(np.array([[2, 3], [0, 2]]), train, np.arange(2)) == 0
    test = sp.csr_matrix(np.array([[0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float32))
    table = ev.hits_by_popularity(np.array([[2, 1], [0, 2]]), test, np.arange(2), train,
                                  bins=(0, 1, np.inf))
    # Both test movies (2 and 3) have 0 training ratings: one of the two is recommended.
    assert table["test ratings"].iloc[0] == 2
    assert table["share in top-k"].iloc[0] == pytest.approx(0.5)


def test_recommend_all_gives_the_lists_of_top_k():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(50, 40)).astype(np.float32)
    seen = rng.random((50, 40)) < 0.3
    seen[7] = True  # a user who has seen everything: all -1
    train = sp.csr_matrix(seen, dtype=np.float32)
    users = np.arange(50)
    got = ev.recommend_all(lambda rows: scores[rows].copy(), train, users, 45, batch=16)
    np.testing.assert_array_equal(got, ev.top_k(scores, 45, exclude=train))
    assert (got[7] == -1).all()
