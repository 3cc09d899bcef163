"""The ranking model's user towers (free, history), the choice between them on validation,
the stopping rule every stage-2 run reports, and EASE's strength chosen the same way.
All on the tiny synthetic dataset."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from lib import artifacts, stages
from lib import config as C
from lib import evaluation as ev
from lib import models as M
from lib.data import load_dataset
from lib.ids import IdMap
from lib.recommend import Engine


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    ds = load_dataset("synthetic-tiny", tmp_path_factory.mktemp("data"))
    ids = IdMap.from_dataset(ds)
    split = ev.split_stratified(ds.ratings, "item", 0.75, 42)
    return ds, ids, split, stages.run_stage1(ds, ids, dim=16, epochs=20, progress=False)


@pytest.fixture(scope="module")
def history_run(tiny):
    ds, ids, split, s1 = tiny
    vectors = s1.movie_vectors
    return stages.run_stage2(ds, ids, split.train, vectors, dim=16,
                             user_tower="history", history_dropout=0.5, rating=False,
                             progress=False)


def test_history_scores_in_numpy_equal_the_keras_model(tiny, history_run):
    """The engine scores in numpy (`history_part`); it must be what the Keras model
    computes from the same rated movies."""
    ds, ids, split, _ = tiny
    s2 = history_run
    users = np.array([0, 7, 150], np.int32)
    dense = s2.history[users].toarray().astype(np.float32)
    keras_out = np.asarray(s2.ranking({"user": users, "history": dense}, training=False))
    np.testing.assert_allclose(s2.scores()(users), keras_out, rtol=1e-4, atol=1e-5)
    # and the history matters: other movies, other scores
    other = np.asarray(s2.ranking({"user": users, "history": dense[::-1]}, training=False))
    assert not np.allclose(keras_out, other)


def test_a_new_user_with_a_known_users_movies_gets_that_users_encoding(tiny, history_run):
    """With a history tower, a new user's vector is the model's own function of their
    movies: the mean user's learnt part plus the encoding of the movies given."""
    ds, ids, split, _ = tiny
    s2 = history_run
    engine = Engine.from_stage2(s2, ids, ds)
    row = 3
    liked = s2.history[row].indices
    encoded = M.history_part(s2.ranking, s2.history, np.array([row]))[0]
    np.testing.assert_allclose(engine.new_user_vector(liked), s2.new_user_base() + encoded,
                               rtol=1e-5, atol=1e-6)
    top = engine.new_user(list(ids.movie_ids(liked[:3])), k=5)
    assert len(top) == 5 and not set(top["movie_id"]) & set(ids.movie_ids(liked[:3]))


def test_a_history_tower_saves_and_loads_with_its_inputs(tiny, history_run, tmp_path):
    ds, ids, split, _ = tiny
    s2 = history_run
    artifacts.save_stage2(s2, ids, ds, split=split.method, root=tmp_path)
    loaded = artifacts.load_stage2(ds, split.method, root=tmp_path)
    users = np.arange(30)
    np.testing.assert_array_equal(loaded.scores()(users), s2.scores()(users))
    artifacts.save_stage1(tiny[3], ids, ds, root=tmp_path)
    tables = artifacts.load_tables(ds, tmp_path)
    np.testing.assert_allclose(tables["history"]["vectors"], s2.history_vectors())
    with pytest.raises(ValueError, match="pass `history`"):
        M.ranking_scores(s2.ranking, {})(users)


def test_validation_chooses_the_tower_and_a_rerun_reuses_the_choice(tiny, tmp_path, caplog):
    ds, ids, split, s1 = tiny
    vectors = s1.movie_vectors
    choices = artifacts.choices_path(ds.name, tmp_path)

    def run():
        return stages.run_stage2(ds, ids, split.train, vectors, dim=16, epochs=12,
                                 rating=False, user_tower="auto", choices=choices,
                                 progress=False)

    first = run()
    scores = first.settings["tower_validation"]
    assert set(scores) == {"free", *(f"history {d:g}" for d in C.HISTORY_DROPOUTS)}
    assert first.settings["choice"] == "searched"
    assert first._tower_label() == max(scores, key=scores.get)
    assert first.ranking_history["validation"].max() == scores[first._tower_label()]
    with caplog.at_level(logging.INFO, logger="lib.stages"):
        second = run()
    assert second.settings["choice"] == "reused"
    assert "chosen before on these ratings" in caplog.text
    assert second.settings["tower_validation"] == scores
    for a, b in zip(first.ranking.get_weights(), second.ranking.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # other training ratings: searched again
    other = stages.run_stage2(ds, ids, split.train.iloc[10:], vectors, dim=16, epochs=2,
                              rating=False, user_tower="auto", choices=choices,
                              progress=False)
    assert other.settings["choice"] == "searched"


def test_validation_chooses_demographics_for_each_model_and_a_rerun_reuses_it(tiny, tmp_path,
                                                                            monkeypatch):
    """side="auto": the ranking and the rating model are each trained with and without
    the gender/age/occupation inputs, each keeps what its own validation score prefers,
    and a rerun takes both choices without training the other variants."""
    ds, ids, split, s1 = tiny
    choices = artifacts.choices_path(ds.name, tmp_path)

    def run():
        return stages.run_stage2(ds, ids, split.train, s1.movie_vectors, dim=16, epochs=6,
                                 side="auto", choices=choices, progress=False)

    first = run()
    towers, rmse = first.settings["tower_validation"], first.settings["rating_validation"]
    assert set(towers) == {"free", "free + demographics"}
    assert set(rmse) == {"without demographics", "with demographics"}
    assert first.settings["side"] == (towers["free + demographics"] > towers["free"])
    assert first.settings["rating_side"] == (rmse["with demographics"]
                                             < rmse["without demographics"])
    has_side = {lyr.name for lyr in first.ranking.layers} >= {"gender_embedding"}
    assert has_side == first.settings["side"]
    assert ("gender" in first.rating.input) == first.settings["rating_side"]
    second = run()
    assert second.settings["choice"] == "reused"
    assert (second.settings["side"], second.settings["rating_side"]) == \
        (first.settings["side"], first.settings["rating_side"])
    assert second.settings["rating_validation"] == rmse
    assert "rating model (" in second.summary()
    # A choice saved by a run without the rating model: the rerun that has one searches
    # the rating model's inputs once, saves them, and the next rerun reuses them.
    other = artifacts.choices_path(ds.name, tmp_path / "other")
    stages.run_stage2(ds, ids, split.train, s1.movie_vectors, dim=16, epochs=6, side="auto",
                      choices=other, rating=False, progress=False)
    calls = []
    real = M.train_rating_model
    monkeypatch.setattr(M, "train_rating_model", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    for _ in range(2):
        stages.run_stage2(ds, ids, split.train, s1.movie_vectors, dim=16, epochs=6,
                          side="auto", choices=other, progress=False)
    assert len(calls) == 3 + 2  # both variants and the refit; then the chosen one and its refit
    with pytest.raises(ValueError, match="side must be True, False or 'auto'"):
        stages.run_stage2(ds, ids, split.train, s1.movie_vectors, dim=16, side="yes")


def test_bad_tower_settings_are_refused(tiny):
    ds, ids, split, s1 = tiny
    vectors = s1.movie_vectors
    with pytest.raises(ValueError, match="user_tower must be"):
        stages.run_stage2(ds, ids, split.train, vectors, dim=16, user_tower="deep")
    with pytest.raises(ValueError, match=r"history_dropout must be .* \[0, 1\)"):
        stages.run_stage2(ds, ids, split.train, vectors, dim=16, history_dropout=1.0)


def _fake_run(scores, epochs, patience=3):
    model = M.build_ranking_model(5, 4, 2, init="random")
    it = iter(scores or [])
    return M._fit_epochs(model, lambda epoch: {"loss": 0.0}, None if scores is None else
                         (lambda: next(it)), "validation", epochs=epochs, patience=patience,
                         min_delta=0.0, maximise=True, desc="test", progress=False)


def test_the_history_says_why_a_run_stopped(caplog):
    """Patience: stops `patience` epochs after the best; the cap: says so, with a warning
    (a run still improving at its cap is not converged); no validation: fixed epochs."""
    h = _fake_run([0.1, 0.3, 0.2, 0.2, 0.2, 0.9], epochs=10)
    assert len(h) == 5 and h.attrs["stop"] == "patience"
    with caplog.at_level(logging.WARNING, logger="lib.models"):
        h = _fake_run([0.1, 0.2, 0.3, 0.4], epochs=4)
    assert len(h) == 4 and h.attrs["stop"] == "cap"
    assert "stopped at the 4-epoch cap" in caplog.text
    assert _fake_run(None, epochs=2).attrs["stop"] == "epochs"


def test_no_stage2_run_on_the_tiny_data_ends_at_its_cap(history_run):
    """The default cap (`config.MAX_EPOCHS`) is far above what early stopping needs."""
    assert history_run.settings["ranking_stop"] == "patience"
    assert len(history_run.ranking_history) < C.MAX_EPOCHS


def test_ease_strength_is_chosen_on_validation(tiny):
    ds, ids, split, _ = tiny
    inner, _ = stages._validation_split(split.train, 0.1, 42)
    best, scores = stages.choose_ease_l2(inner, ids, grid=(1.0, 30.0, 1e6))
    assert set(scores) == {1.0, 30.0, 1e6} and scores[best] == max(scores.values())
    assert len(set(scores.values())) > 1  # the strength matters on this data
    s2 = stages.Stage2(None, None, pd.DataFrame(), pd.DataFrame(), {}, inner, "stage1",
                       settings={"seed": 42})
    s2.scores = lambda: ev.popularity_scores(ev.interactions(split.train, ids))
    table, *_ = stages.evaluate_all(ds, ids, split, None, stage2=s2, progress=False)
    assert table.loc["EASE", "l2"] in C.EASE_L2S


@pytest.fixture(scope="module")
def side_run(tiny):
    ds, ids, split, s1 = tiny
    return stages.run_stage2(ds, ids, split.train, s1.movie_vectors, dim=16, epochs=6,
                             side=True, rating=False, progress=False)


def test_a_new_user_from_demographics_alone_or_with_liked_movies(tiny, side_run, tmp_path):
    """The vector a new user's gender/age/occupation give is the model's own: the mean
    learnt user vector plus the embeddings of those labels (the mean row for an input not
    given); saved and loaded with the models; labels as the release names them."""
    ds, ids, _, s1 = tiny
    engine = Engine.from_stage2(side_run, ids, ds)
    m = side_run.ranking
    # What Keras computes for a known user is their learnt vector plus their demographics'
    # rows: the demographic part the engine gives their labels, for its mean learnt vector.
    import keras
    tower = keras.Model(m.inputs, m.get_layer("movie_embedding").input)
    row = 11
    inputs = {"user": np.array([row], np.int32), **{
        name: codes[[row]] for name, codes in side_run.features.items()}}
    keras_vector = np.asarray(tower(inputs, training=False))[0]
    learnt = np.asarray(m.get_layer("user_embedding").embeddings)
    vocab = M.side_vocabulary(ds.users, ids)
    labels = {key: vocab[col][side_run.features[col][row]] for key, col in (
        ("gender", C.GENDER_COL), ("age", C.AGE_LABEL_COL), ("occupation", C.OCCUPATION_COL))}
    np.testing.assert_allclose(
        engine.demographic_vector(**labels) - learnt.mean(axis=0), keras_vector - learnt[row],
        rtol=1e-5, atol=1e-6)
    codes = M.side_vocabulary(ds.users, ids)
    want = np.asarray(m.get_layer("user_embedding").embeddings).mean(axis=0)
    want = want + np.asarray(m.get_layer("gender_embedding").embeddings)[
        codes[C.GENDER_COL].index("F")]
    want = want + np.asarray(m.get_layer("age_label_embedding").embeddings)[
        codes[C.AGE_LABEL_COL].index("25-34")]
    occ = np.asarray(m.get_layer("occupation_embedding").embeddings)
    want = want + occ[side_run.features[C.OCCUPATION_COL]].mean(axis=0)  # not given
    np.testing.assert_allclose(engine.demographic_vector(gender="f", age="25-34"), want,
                               rtol=1e-5, atol=1e-6)
    alone = engine.new_user(gender="F", age="25-34", k=5)
    assert len(alone) == 5
    liked = list(ids.movie_ids(np.arange(3)))
    both = engine.new_user(liked, k=5, gender="F", age="25-34")
    assert not set(both["movie_id"]) & set(liked)
    artifacts.save_stage1(s1, ids, ds, tmp_path)
    artifacts.save_stage2(side_run, ids, ds, split="test", root=tmp_path)
    loaded = Engine.load(ds, tmp_path)
    np.testing.assert_allclose(loaded.demographic_vector(gender="F", age="25-34"), want,
                               rtol=1e-5, atol=1e-6)
    pd.testing.assert_frame_equal(loaded.new_user(gender="F", age="25-34", k=5), alone)
    with pytest.raises(ValueError, match="unknown age group '26': choose one of Under 18"):
        engine.new_user(age="26")
    with pytest.raises(ValueError, match="give at least one liked movie id, or a gender"):
        engine.new_user()
    del engine.demographics["features"][C.OCCUPATION_COL]
    with pytest.raises(ValueError, match="these models have no occupation input"):
        engine.new_user(occupation="writer")


def test_demographics_without_such_inputs_say_so(tiny, history_run):
    ds, ids, _, _ = tiny
    engine = Engine.from_stage2(history_run, ids, ds)
    assert engine.demographics is None
    with pytest.raises(ValueError, match="these models have no demographic inputs"):
        engine.new_user(gender="F")


def test_withheld_users_are_never_trained_on_and_scored_on_all_their_ratings(tiny,
                                                                             monkeypatch):
    ds, ids, _, s1 = tiny
    seen = {}
    real = stages.run_stage2

    def spy(dataset, ids_, train, *args, **kwargs):
        seen["train"], seen["side"] = train, kwargs.get("side")
        return real(dataset, ids_, train, *args, **{**kwargs, "dim": 16, "epochs": 4})

    monkeypatch.setattr(stages, "run_stage2", spy)
    frame = stages.demographic_cold_start(ds, ids, s1.movie_vectors, share=0.2, seed=3)
    withheld = frame.attrs["withheld"]
    n_users = ds.ratings[C.USER_COL].nunique()
    assert len(withheld) == round(0.2 * n_users) and seen["side"] is True
    assert not seen["train"][C.USER_COL].isin(withheld).any()
    assert len(seen["train"]) + frame.attrs["ratings"] == len(ds.ratings)
    assert list(frame.index) == ["stage 2 with demographics (ours)", "most popular"]
    assert frame["ndcg@10"].between(0, 1).all() and frame["ndcg@10"].min() > 0
    again = stages.demographic_cold_start(ds, ids, s1.movie_vectors, share=0.2, seed=3)
    pd.testing.assert_frame_equal(frame, again)  # one seed fixes it all
    with pytest.raises(ValueError, match="share must be between 0 and 1"):
        stages.demographic_cold_start(ds, ids, s1.movie_vectors, share=1.5)


def test_the_settings_search_is_made_on_validation_and_reused(tiny, tmp_path, monkeypatch):
    """search_budget: learning rate, L2 and dropout of the ranking model and learning rate
    and L2 of the rating model are chosen on validation scores, the chosen settings are
    the ones the returned models were trained with, and a rerun reuses them with one
    training per model (counted)."""
    ds, ids, split, s1 = tiny
    monkeypatch.setattr(C, "RANKING_SEARCH", {"l2_pair": (0.01,), "learning_rate": (1e-2,),
                                              "dropout": (0.1,)})
    monkeypatch.setattr(C, "RATING_SEARCH", {"l2": (0.01,)})
    choices = artifacts.choices_path(ds.name, tmp_path)
    trainings = {"ranking": [], "rating": []}
    ranking_fit, rating_fit = M.train_ranking_model, M.train_rating_model

    def count_ranking(model, *args, **kwargs):
        if kwargs.get("validation") is not None:
            trainings["ranking"].append((kwargs["learning_rate"], kwargs["l2_pair"],
                                         model.get_layer("user_dropout").rate))
        return ranking_fit(model, *args, **kwargs)

    def count_rating(model, *args, **kwargs):
        if kwargs.get("validation") is not None:
            trainings["rating"].append(
                float(model.get_layer("user_bias").activity_regularizer.l2))
        return rating_fit(model, *args, **kwargs)

    monkeypatch.setattr(M, "train_ranking_model", count_ranking)
    monkeypatch.setattr(M, "train_rating_model", count_rating)

    def run():
        return stages.run_stage2(ds, ids, split.train, s1.movie_vectors, dim=16, epochs=6,
                                 choices=choices, search_budget=1e6, progress=False)

    first = run()
    trials = pd.DataFrame(first.settings["ranking_search"])
    assert len(trials) == 4 and len(trainings["ranking"]) == 4
    # each trial says how long it ran and why it stopped (the cap is visible, never hidden)
    assert set(trials["stop"]) <= {"patience", "cap"} and (trials["epochs"] >= 1).all()
    kept = trials.loc[trials["status"] == "best"].iloc[0]
    assert kept["score"] == trials["score"].max()
    assert kept["score"] == first.ranking_history["validation"].max()
    chosen = (first.settings["learning_rate"], first.settings["l2_pair"],
              first.settings["dropout"])
    assert chosen == (kept["learning_rate"], kept["l2_pair"], kept["dropout"])
    assert chosen in trainings["ranking"]
    rating = pd.DataFrame(first.settings["rating_search"])
    assert len(rating) == 2
    np.testing.assert_allclose(trainings["rating"], [0.1, 0.01])
    best_rating = rating.loc[rating["status"] == "best"].iloc[0]
    assert best_rating["score"] == rating["score"].min()
    assert first.settings["rating_settings"]["l2"] == best_rating["l2"]
    for key in ("ranking", "rating"):
        trainings[key].clear()
    second = run()
    assert second.settings["choice"] == "reused"
    assert trainings["ranking"] == [chosen]  # every chosen setting, dropout included
    assert len(trainings["rating"]) == 1
    assert second.settings["rating_settings"] == first.settings["rating_settings"]
