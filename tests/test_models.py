"""Stage 1 and stage 2 models: outputs against numpy, initialisation, seeds, recovery,
save and load. All on the tiny synthetic dataset."""
from __future__ import annotations

import numpy as np
import pytest

from lib import artifacts, stages
from lib import evaluation as ev
from lib import models as M
from lib.data import load_dataset
from lib.ids import IdMap
from lib.synthetic import load_truth


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    ds = load_dataset("synthetic-tiny", folder)
    return ds, IdMap.from_dataset(ds)


@pytest.fixture(scope="module")
def stage1(tiny):
    ds, ids = tiny
    return stages.run_stage1(ds, ids, dim=32, epochs=30, progress=False)


def test_stage1_output_is_sigmoid_of_dot_product(stage1):
    movies, genres = np.array([0, 5, 17], np.int32), np.array([3, 0, 7], np.int32)
    out = np.asarray(stage1.model.predict_on_batch({"movie": movies, "genre": genres})).ravel()
    logits = (stage1.movie_vectors[movies] * stage1.genre_vectors[genres]).sum(axis=1)
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-logits)), rtol=1e-5)


def test_stage1_recovers_movie_genres_far_above_chance(stage1):
    # Chance is about 1.6 genres of 18 (~0.09); the learned vectors must place each
    # movie's own genres first for nearly every movie.
    assert stage1.recovery["precision"] > 0.9
    assert stage1.recovery["chance_precision"] < 0.15
    assert stage1.recovery["auc"] > 0.98


def test_same_seed_same_embeddings(tiny):
    ds, ids = tiny
    a = stages.run_stage1(ds, ids, dim=8, epochs=3, seed=3, progress=False)
    b = stages.run_stage1(ds, ids, dim=8, epochs=3, seed=3, progress=False)
    c = stages.run_stage1(ds, ids, dim=8, epochs=3, seed=4, progress=False)
    np.testing.assert_array_equal(a.movie_vectors, b.movie_vectors)
    assert not np.allclose(a.movie_vectors, c.movie_vectors)


def test_same_seed_same_stage2_run(tiny, stage1):
    """Same run, same numbers: the split inside stage 2, dropout, shuffling and both
    models' initialisation all follow the one seed."""
    ds, ids = tiny
    split = ev.split_stratified(ds.ratings, "item", 0.75, 42)

    def run(seed):
        return stages.run_stage2(ds, ids, split.train, stage1.movie_vectors, dim=32,
                                 epochs=4, seed=seed, progress=False)

    a, b, c = run(5), run(5), run(6)
    for model in ("ranking", "rating"):
        wa, wb = getattr(a, model).get_weights(), getattr(b, model).get_weights()
        assert len(wa) == len(wb) > 0
        for x, y in zip(wa, wb, strict=True):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.ranking_history["loss"], b.ranking_history["loss"])
    assert not np.allclose(a.movie_vectors(), c.movie_vectors())


def test_pairs_are_balanced_and_negatives_are_wrong_genres(tiny):
    ds, ids = tiny
    genres = stages.movie_genres(ds, ids)
    pos, neg = M.movie_genre_pairs(genres, seed=0)
    assert len(pos) == len(neg) == genres.sum()
    assert genres[pos[:, 0], pos[:, 1]].all() and not genres[neg[:, 0], neg[:, 1]].any()
    np.testing.assert_array_equal(pos[:, 0], neg[:, 0])  # one negative per positive, same movie


def test_stage2_starts_from_the_stage1_vectors(tiny, stage1):
    ds, ids = tiny
    model = M.build_ranking_model(ids.n_users, ids.n_movies, 32, movie_init=stage1.movie_vectors)
    table = np.asarray(model.get_layer("movie_embedding").embeddings)
    # The same vectors, only rescaled to the spread of a fresh initialisation.
    scale = stage1.movie_vectors.std() / table.std()
    np.testing.assert_allclose(table * scale, stage1.movie_vectors, rtol=1e-5, atol=1e-7)
    frozen = M.build_ranking_model(ids.n_users, ids.n_movies, 32, movie_init=stage1.movie_vectors,
                                   init="frozen")
    before = np.asarray(frozen.get_layer("movie_embedding").embeddings).copy()
    M.train_ranking_model(frozen, ev.interactions(ds.ratings, ids), {}, epochs=2, progress=False)
    after = np.asarray(frozen.get_layer("movie_embedding").embeddings)
    np.testing.assert_array_equal(before, after)
    with pytest.raises(ValueError, match=r"needs stage-1 movie vectors of shape \(400, 32\)"):
        M.build_ranking_model(ids.n_users, ids.n_movies, 32, movie_init=None, init="stage1")


def test_ranking_model_output_equals_numpy(tiny, stage1):
    ds, ids = tiny
    features = M.side_features(ds.users, ids)
    sizes = {k: int(v.max()) + 1 for k, v in features.items()}
    model = M.build_ranking_model(ids.n_users, ids.n_movies, 32, movie_init=stage1.movie_vectors,
                                  side_sizes=sizes)
    M.train_ranking_model(model, ev.interactions(ds.ratings, ids), features, epochs=1,
                          progress=False)
    users = np.array([0, 7, 299], np.int32)
    keras_out = np.asarray(model({"user": users, **{k: v[users] for k, v in features.items()}},
                                 training=False))
    w = {layer.name: layer for layer in model.layers}
    vec = np.asarray(w["user_embedding"].embeddings)[users]
    for name, codes in features.items():
        vec = vec + np.asarray(w[f"{name}_embedding"].embeddings)[codes[users]]
    table = w["movie_embedding"]
    expected = vec @ np.asarray(table.embeddings).T + np.asarray(table.bias)
    np.testing.assert_allclose(keras_out, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(M.ranking_scores(model, features)(users), expected, rtol=1e-4,
                               atol=1e-5)


def test_rating_model_output_equals_numpy(tiny, stage1):
    ds, ids = tiny
    model = M.build_rating_model(ids.n_users, ids.n_movies, 32, global_mean=3.5,
                                 movie_init=stage1.movie_vectors)
    M.train_rating_model(model, ds.ratings, ids, {}, validation=None, epochs=1, progress=False)
    frame = ds.ratings.iloc[[0, 10, 500]]
    got = M.predict_ratings(model, frame, ids, {}, scale=(-np.inf, np.inf))
    u, m = ids.user_rows(frame["user_id"].to_numpy()), ids.movie_rows(frame["movie_id"].to_numpy())
    w = {layer.name: layer for layer in model.layers}
    expected = (3.5 + np.asarray(w["user_bias"].embeddings)[u, 0]
                + np.asarray(w["movie_bias"].embeddings)[m, 0]
                + (np.asarray(w["user_embedding"].embeddings)[u]
                   * np.asarray(w["movie_embedding"].embeddings)[m]).sum(axis=1))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.fixture(scope="module")
def trained(tiny, stage1):
    ds, ids = tiny
    split = ev.split_stratified(ds.ratings, "item", 0.75, 42)
    s2 = stages.run_stage2(ds, ids, split.train, stage1.movie_vectors, dim=32, epochs=40,
                           progress=False)
    return split, s2


def test_stage2_recovers_planted_favourite_genres(tiny, trained):
    ds, ids = tiny
    split, s2 = trained
    truth = load_truth(ds.path)
    rows = ids.user_rows(truth["user_ids"])
    vectors = s2.user_vectors()[rows]
    table = np.asarray(s2.ranking.get_layer("movie_embedding").embeddings)
    planted = ev.planted_genre_recovery(vectors, table, stages.movie_genres(ds, ids),
                                        truth["favourite_genres"])
    # Chance ~0.14 (2-3 favourites of 18); the user vectors must point at the planted ones.
    assert planted["chance"] < 0.16
    assert planted["precision"] > 2.5 * planted["chance"]


def test_stage2_beats_popularity_on_the_test_split(tiny, trained):
    ds, ids = tiny
    split, s2 = trained
    train, test = ev.interactions(split.train, ids), ev.interactions(split.test, ids)
    model, _, _ = ev.evaluate_ranking(s2.scores(), train, test, 10)
    popular, _, _ = ev.evaluate_ranking(ev.popularity_scores(train), train, test, 10)
    assert model["ndcg@10"] > popular["ndcg@10"] + 0.02


def test_save_and_load_give_the_same_predictions(tiny, trained, tmp_path):
    ds, ids = tiny
    split, s2 = trained
    artifacts.save_stage2(s2, ids, ds, split=split.method, root=tmp_path)
    loaded = artifacts.load_stage2(ds, split.method, root=tmp_path)
    users = np.arange(20)
    np.testing.assert_array_equal(loaded.scores()(users), s2.scores()(users))
    assert loaded.settings == s2.settings
    frame = split.test.iloc[:100]
    np.testing.assert_array_equal(M.predict_ratings(loaded.rating, frame, ids, loaded.features),
                                  M.predict_ratings(s2.rating, frame, ids, s2.features))


def test_sampled_softmax_training_learns_and_is_chosen_for_large_catalogues(tiny, stage1,
                                                                            monkeypatch):
    """Above `config.FULL_SOFTMAX_MAX_CELLS` users x movies, stage 2 trains with the
    sampled softmax; it must still learn what the ratings say (beat popularity)."""
    from lib import config as C
    ds, ids = tiny
    split = ev.split_stratified(ds.ratings, "item", 0.75, 42)
    monkeypatch.setattr(C, "FULL_SOFTMAX_MAX_CELLS", ids.n_users * ids.n_movies - 1)
    s2 = stages.run_stage2(ds, ids, split.train, stage1.movie_vectors, dim=32, epochs=40,
                           rating=False, progress=False)
    assert s2.settings["loss"] == "sampled"
    train, test = ev.interactions(split.train, ids), ev.interactions(split.test, ids)
    model, _, _ = ev.evaluate_ranking(s2.scores(), train, test, 10)
    popular, _, _ = ev.evaluate_ranking(ev.popularity_scores(train), train, test, 10)
    assert model["ndcg@10"] > popular["ndcg@10"] + 0.02
    full = stages.run_stage2(ds, ids, split.train, stage1.movie_vectors, dim=32, epochs=2,
                             rating=False, loss="full", progress=False)
    assert full.settings["loss"] == "full"  # a parameter overrides the choice


def test_ease_is_skipped_above_its_size_with_a_reason(tiny, trained, monkeypatch, caplog):
    from lib import config as C
    ds, ids = tiny
    split, s2 = trained
    monkeypatch.setattr(C, "EASE_MAX_MOVIES", ids.n_movies - 1)
    table, recs, _, _ = stages.evaluate_all(ds, ids, split, None, stage2=s2, progress=False)
    assert "EASE" not in table.index and "EASE" not in recs
    assert {"stage 2 (ours)", "most popular"} <= set(table.index)
    assert any("EASE skipped" in r.message and "EASE_MAX_MOVIES" in r.message
               for r in caplog.records)


def test_validation_uses_a_seeded_sample_of_users_above_its_size(tiny, stage1, monkeypatch):
    from lib import config as C
    ds, ids = tiny
    split = ev.split_stratified(ds.ratings, "item", 0.75, 42)
    monkeypatch.setattr(C, "VALIDATION_MAX_USERS", 50)
    runs = [stages.run_stage2(ds, ids, split.train, stage1.movie_vectors, dim=32, epochs=2,
                              rating=False, progress=False) for _ in range(2)]
    assert runs[0].settings["validation_users"] == 50
    assert runs[0].settings["refit"] is False  # "auto": no refit when validation is sampled
    assert "no refit" in runs[0].summary()
    np.testing.assert_array_equal(runs[0].ranking_history["validation"],
                                  runs[1].ranking_history["validation"])


def test_ranking_batches_shrink_for_small_datasets():
    from lib import config as C
    assert stages.ranking_batch(162_541) == C.RANKING_BATCH_USERS
    assert stages.ranking_batch(943) == 236  # ML-100K: four updates an epoch
    assert stages.ranking_batch(3) == 1


def test_lazy_adam_updates_only_the_rows_of_a_sparse_gradient_as_adam_would():
    import keras
    import tensorflow as tf
    rng = np.random.default_rng(0)
    start = rng.normal(size=(5, 3)).astype(np.float32)
    var = keras.Variable(start.copy())
    opt = M.LazyAdam(0.1)
    opt.build([var])
    m, v, w = np.zeros_like(start), np.zeros_like(start), start.copy()
    for t, rows in enumerate(([0, 2, 2], [4], [0, 2]), start=1):  # row 2 twice: summed
        values = rng.normal(size=(len(rows), 3)).astype(np.float32)
        before = np.asarray(var).copy()
        opt.apply_gradients([(tf.IndexedSlices(tf.constant(values), tf.constant(rows),
                                               tf.constant([5, 3])), var)])
        if t == 2:  # rows 0 and 2 have momentum from step 1; dense Adam would move them
            np.testing.assert_array_equal(np.asarray(var)[[0, 2]], before[[0, 2]])
        g = np.zeros_like(start)
        np.add.at(g, rows, values)
        hit = np.unique(rows)
        m[hit] = 0.9 * m[hit] + 0.1 * g[hit]
        v[hit] = 0.999 * v[hit] + 0.001 * g[hit] ** 2
        w[hit] -= 0.1 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t) * m[hit] / (
            np.sqrt(v[hit]) + 1e-7)
    np.testing.assert_allclose(np.asarray(var), w, atol=1e-6)
    with pytest.raises(ValueError, match="amsgrad"):
        M.LazyAdam(0.1, amsgrad=True)
    dense = keras.Variable(start.copy())  # dense gradients: Keras' Adam
    ref = keras.Variable(start.copy())
    lazy, adam = M.LazyAdam(0.1), keras.optimizers.Adam(0.1)
    lazy.build([dense])
    adam.build([ref])
    grad = tf.constant(rng.normal(size=(5, 3)).astype(np.float32))
    lazy.apply_gradients([(grad, dense)])
    adam.apply_gradients([(grad, ref)])
    np.testing.assert_array_equal(np.asarray(dense), np.asarray(ref))


def test_above_the_validation_size_only_sampled_users_hold_out_ratings(tiny, monkeypatch):
    from lib import config as C
    ds, ids = tiny
    monkeypatch.setattr(C, "VALIDATION_MAX_USERS", 40)
    inner, sampled = stages._validation_split(ds.ratings, 0.1, 7)
    assert sampled and inner.test[C.USER_COL].nunique() == 40
    assert len(inner.train) + len(inner.test) == len(ds.ratings)
    kept = inner.train.merge(inner.test, on=[C.USER_COL, C.MOVIE_COL])
    assert kept.empty  # no rating on both sides
    again, _ = stages._validation_split(ds.ratings, 0.1, 7)
    assert again.test.equals(inner.test)
    monkeypatch.setattr(C, "VALIDATION_MAX_USERS", ids.n_users)
    _, sampled = stages._validation_split(ds.ratings, 0.1, 7)
    assert not sampled


def test_patience_counts_updates_when_an_epoch_makes_few(tiny):
    """A validation score that never improves stops training after the patience: 8
    epochs, or `config.PATIENCE_STEPS` updates when that is more epochs."""
    from lib import config as C
    ds, ids = tiny
    train = ev.interactions(ds.ratings, ids)
    active = int((np.diff(train.indptr) > 0).sum())
    for batch in (active // 2 + 1, 8):
        steps = -(-active // batch)
        model = M.build_ranking_model(ids.n_users, ids.n_movies, 8, init="random")
        history = M.train_ranking_model(model, train, {}, epochs=500, batch_users=batch,
                                        validation=lambda m: 0.0, progress=False)
        assert len(history) == 1 + max(8, -(-C.PATIENCE_STEPS // steps)), (batch, steps)
