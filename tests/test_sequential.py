"""The self-attention model over each user's history (`lib.sequential`): causal, and able
to learn an order that a model of the same movies without their order cannot."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from lib import artifacts, data, stages
from lib import config as C
from lib import evaluation as ev
from lib import sequential as S
from lib.errors import ArtifactError
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
    # windows of max_len + 1: the input is the first max_len, the target the movie after
    inputs, targets, weights = S.next_targets(seqs)
    assert inputs.tolist() == [[0, 1, 2], [0, 0, 0]]
    assert targets[0, 1:].tolist() == [1, 2] and weights.tolist() == [[0, 1, 1], [0] * 3]


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

    def hit_rate(seqs, **loss):
        model = S.build_sequential_model(n_movies, 16, max_len=max_len, blocks=1, heads=2,
                                         dropout=0.0, seed=3)
        S.train_sequential_model(model, seqs, epochs=30, batch_size=64, learning_rate=5e-3,
                                 **loss)
        top = S.next_scores(model, train).argmax(axis=1)
        return float(np.mean(top == truth))

    ordered, control = hit_rate(train), hit_rate(shuffled)
    assert ordered > 0.9, ordered
    assert control < 0.3, control
    # the sampled softmax of large catalogues (8 negatives of 40 movies a batch) learns it too
    sampled = hit_rate(train, loss="sampled", negatives=8)
    assert sampled > 0.9, sampled


def _layer_norm(x, gamma, beta):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-6) * gamma + beta


def _numpy_forward(model, seqs, blocks):
    """The model's logits written out in numpy from its weights (no Keras call)."""
    w = {layer.name: layer.get_weights() for layer in model.layers}
    table, positions = w["movie_table"]
    dim = table.shape[1]
    real = (seqs != 0)[:, :, None]
    x = (table[seqs] * np.sqrt(dim) + positions[None]) * real
    n = seqs.shape[1]
    # causal, and never a padding key (rows of padding queries end up zeroed anyway)
    allowed = np.tril(np.ones((n, n), bool))[None] & (seqs != 0)[:, None, :]
    for b in range(blocks):
        h = _layer_norm(x, *w[f"block{b}_norm1"])
        qk, qb, kk, kb, vk, vb, ok, ob = w[f"block{b}_attention"]
        q = np.einsum("utd,dhk->uthk", h, qk) + qb
        k = np.einsum("utd,dhk->uthk", h, kk) + kb
        v = np.einsum("utd,dhk->uthk", h, vk) + vb
        logits = np.einsum("uthk,ushk->uhts", q / np.sqrt(qk.shape[-1]), k)
        logits = np.where(allowed[:, None], logits, -1e9)
        att = np.exp(logits - logits.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        out = np.einsum("uhts,ushk->uthk", att, v)
        x = x + np.einsum("uthk,hkd->utd", out, ok) + ob
        h = _layer_norm(x, *w[f"block{b}_norm2"])
        k1, b1 = w[f"block{b}_ffn1"]
        k2, b2 = w[f"block{b}_ffn2"]
        x = (x + np.maximum(h @ k1 + b1, 0) @ k2 + b2) * real
    x = _layer_norm(x, *w["final_norm"])
    return x @ table[1:].T


def test_the_keras_model_computes_what_its_numpy_transcription_does():
    model = S.build_sequential_model(12, 8, max_len=6, blocks=2, heads=2, dropout=0.3)
    rng = np.random.default_rng(4)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    seqs = np.array([[0, 0, 3, 7, 1, 12], [5, 6, 7, 8, 9, 10], [0, 0, 0, 0, 0, 2]], np.int32)
    keras_out = np.asarray(model(seqs, training=False))
    np.testing.assert_allclose(keras_out, _numpy_forward(model, seqs, 2), rtol=2e-4, atol=2e-4)
    # and `next_scores` is the last position of those logits
    np.testing.assert_allclose(S.next_scores(model, seqs), keras_out[:, -1], rtol=1e-5,
                               atol=1e-5)


def test_no_position_attends_to_padding():
    model = S.build_sequential_model(12, 8, max_len=6, blocks=2, heads=2, dropout=0.0)
    seqs = np.array([[0, 0, 0, 0, 3, 7], [0, 0, 5, 6, 7, 8]], np.int32)
    weights = S.attention(model, seqs)  # (users, blocks, positions) for the last position
    np.testing.assert_allclose(weights[0, :, :4], 0, atol=1e-6)
    np.testing.assert_allclose(weights[1, :, :2], 0, atol=1e-6)
    np.testing.assert_allclose(weights.sum(axis=2), 1, rtol=1e-5)


def test_target_ranks_count_only_unseen_movies_and_ties_against_the_target():
    scores = np.array([[5.0, 4.0, 3.0, 3.0, 1.0]])
    seen = sp.csr_matrix(np.array([[1, 0, 0, 1, 0]]))  # movie 0 seen; 3 is the target
    # unseen and not below the target's 3.0: movies 1 (4.0) and 2 (3.0, a tie)
    assert S.target_ranks(scores, np.array([3]), seen, np.array([0])).tolist() == [2]


@pytest.fixture(scope="module")
def tiny_last():
    ds = data.load_dataset("synthetic-tiny")
    ids = IdMap.from_dataset(ds)
    split = ev.split_last(ds.ratings)
    stage1 = stages.run_stage1(ds, ids, dim=16, progress=False)
    return ds, ids, split, stage1


def test_on_planted_drift_it_beats_stage2_and_its_shuffled_control(tiny_last):
    """The synthetic users' tastes drift from one favourite genre to another, so their
    latest movie is told by the movies just before it. On the leave-last split, epochs of
    every model chosen on the second-to-last movie: the sequential model above stage 2
    and above the same model trained on shuffled histories. Measured (16-d, 20 movies
    read): nDCG@10 sequential 0.366, shuffled 0.172, stage 2 0.231."""
    ds, ids, split, stage1 = tiny_last
    train, test = ev.interactions(split.train, ids), ev.interactions(split.test, ids)

    def ndcg(scores):
        return ev.evaluate_ranking(scores, train, test)[0]["ndcg@10"]

    def seq(order):
        return S.fit_sequential(split.train, ids, movie_init=stage1.movie_vectors, dim=16,
                                max_len=20, order=order, progress=False)

    ordered, control = seq("time"), seq("shuffled")
    s2 = stages.run_stage2(ds, ids, split.train, stage1.movie_vectors, dim=16, rating=False,
                           validation=stages.validation_for(split), progress=False)
    assert s2.settings["validation"] == "last"
    ours, shuffled, stage2 = ndcg(ordered.scores()), ndcg(control.scores()), ndcg(s2.scores())
    assert ours > stage2 + 0.05, (ours, stage2)
    assert ours > shuffled + 0.05, (ours, shuffled)
    assert ordered.settings["stop"] == "patience" and ordered.settings["epochs"] >= 2


def test_saved_and_loaded_it_scores_the_same(tiny_last, tmp_path):
    ds, ids, split, stage1 = tiny_last
    fitted = S.fit_sequential(split.train, ids, dim=16, max_len=10, epochs=2,
                              progress=False)
    artifacts.save_sequential(fitted, ids, ds, split=split.method, root=tmp_path)
    loaded = artifacts.load_sequential(ds, tmp_path, ids=ids)
    rows = np.arange(ids.n_users)
    np.testing.assert_array_equal(fitted.scores()(rows), loaded.scores()(rows))
    assert loaded.settings == fitted.settings
    other = IdMap(ids.user_ids(np.arange(5)), ids.movie_ids(np.arange(ids.n_movies)),
                  ids.genre_names(np.arange(ids.n_genres)))
    with pytest.raises(ArtifactError, match="other user or movie ids"):
        artifacts.load_sequential(ds, tmp_path, ids=other)


def test_the_same_seed_gives_the_same_model(tiny_last):
    ds, ids, split, _ = tiny_last
    a, b = (S.fit_sequential(split.train, ids, dim=16, max_len=10, epochs=3, progress=False)
            for _ in range(2))
    np.testing.assert_array_equal(a.history["loss"], b.history["loss"])
    rows = np.arange(20)
    np.testing.assert_array_equal(a.scores()(rows), b.scores()(rows))


def test_bad_settings_are_refused_with_the_parameter_named():
    with pytest.raises(ValueError, match="divisible by heads"):
        S.build_sequential_model(10, 15, heads=2)
    with pytest.raises(ValueError, match="movie_init has shape"):
        S.build_sequential_model(10, 8, movie_init=np.zeros((9, 8)))
    ratings = pd.DataFrame({C.USER_COL: [1], C.MOVIE_COL: [1], C.RATING_COL: [4.0],
                            C.TIMESTAMP_COL: [1]})
    with pytest.raises(ValueError, match="order must be"):
        S.fit_sequential(ratings, IdMap([1], [1], ["Drama"]), order="random")
