"""The recommendation engine and its command line, on models trained on tiny data."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lib import artifacts, data, stages
from lib import config as C
from lib import evaluation as ev
from lib.data import load_dataset
from lib.ids import IdMap, UnknownIdError
from lib.recommend import Engine


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Stages 1 and 2 trained on synthetic-tiny and saved as the notebooks save them."""
    root = tmp_path_factory.mktemp("engine")
    ds = load_dataset("synthetic-tiny", root / "data")
    ids = IdMap.from_dataset(ds)
    s1 = stages.run_stage1(ds, ids, dim=32, epochs=30, progress=False)
    split = ev.split_stratified(ds.ratings, "item", 0.75, C.SEED)
    s2 = stages.run_stage2(ds, ids, split.train, s1.movie_vectors, dim=32, epochs=30,
                           progress=False)
    artifacts.save_stage1(s1, ids, ds, root / "models")
    artifacts.save_stage2(s2, ids, ds, split=split.method, root=root / "models")
    return root, ds, ids, Engine.load(ds, root / "models")


@pytest.fixture(autouse=True)
def _forget_added_movies(saved):
    """Movies a test adds with `add_movie` stay in that test."""
    yield
    saved[3].new_movies.clear()


def test_recommend_excludes_rated_and_ranks_by_score(saved):
    _, ds, ids, engine = saved
    top = engine.recommend(1, k=10)
    assert list(top["rank"]) == list(range(1, 11))
    assert np.all(np.diff(top["score"]) <= 0)
    rated = set(ds.ratings.query("user_id == 1")["movie_id"])
    assert not rated & set(top["movie_id"])


def test_k_larger_than_the_catalogue_returns_every_unrated_movie(saved):
    _, ds, ids, engine = saved
    top = engine.recommend(1, k=10_000)
    n_rated = ds.ratings.query("user_id == 1")["movie_id"].nunique()
    assert len(top) == ids.n_movies - n_rated
    with pytest.raises(ValueError, match="k must be at least 1"):
        engine.recommend(1, k=0)


def test_unknown_ids_and_empty_likes_are_clear_errors(saved):
    _, _, _, engine = saved
    with pytest.raises(UnknownIdError, match="unknown user id: 99999"):
        engine.recommend(99_999)
    with pytest.raises(UnknownIdError, match="unknown movie id: 99999"):
        engine.similar(99_999)
    with pytest.raises(ValueError, match="at least one liked movie"):
        engine.new_user([])


def test_new_user_from_liked_movies_leans_to_their_genres(saved):
    _, ds, ids, engine = saved
    genres = ds.movies.set_index("movie_id")["genres"]
    horror = [m for m in genres.index if genres[m] == ["Horror"]][:3]
    assert len(horror) == 3
    fresh = engine.new_user(horror, k=10)
    assert not set(horror) & set(fresh["movie_id"])
    share = np.mean(["Horror" in g for g in fresh["genres"]])
    base = np.mean(["Horror" in g for g in genres])
    assert share > 2 * base  # horror fans get more horror than the catalogue has


def test_new_movie_from_genres_is_recommendable(saved):
    _, ds, ids, engine = saved
    new_id = engine.add_movie(["Horror"], title="New horror (2026)")
    assert new_id > ds.movies["movie_id"].max()
    top = engine.recommend(1, k=ids.n_movies + 1)
    assert new_id in set(top["movie_id"])
    ranks = {u: engine.new_movie_rank(new_id, u) for u in (1, 2, 3)}
    assert all(1 <= r <= ids.n_movies for r in ranks.values())


def test_a_new_movie_ranks_higher_for_fans_of_its_genres(saved):
    """A new movie's vector comes from its genres: against a new movie of other genres,
    a new horror movie must gain more places with the users who rate horror most than
    with those who rate it least (both lists from the same fold-in, so the level of the
    movies' biases cancels)."""
    _, ds, ids, engine = saved
    horror = engine.add_movie(["Horror"], title="New horror (2026)")
    other = engine.add_movie(["Children's", "Animation"], title="New cartoon (2026)")
    fans, others = data.genre_fans(ds, "Horror", n=20)

    def gain(users):  # places the horror movie stands above the cartoon, per user
        return np.array(engine.new_movie_ranks(other, users)) - \
            np.array(engine.new_movie_ranks(horror, users))

    # Measured on this fixture: a median gain of 138.5 places for fans, 120.5 for others;
    # with the genre vector zeroed both new movies get one vector and every gain is 0.
    assert np.median(gain(fans)) > np.median(gain(others))


def test_an_added_movie_can_be_explained_and_recommended(saved):
    _, ds, ids, engine = saved
    new_id = engine.add_movie(["Horror"], title="New horror (2026)")
    top = engine.recommend(1, k=ids.n_movies + 1)
    assert new_id in set(top["movie_id"])
    why = engine.explain(1, new_id, n=2)  # the user's rated movies closest to it
    assert len(why) == 2
    assert set(why["movie_id"]) <= set(ds.ratings.query("user_id == 1")["movie_id"])
    reasons = engine.with_reasons(top[top["movie_id"] == new_id], 1)
    assert reasons["because you rated"].iloc[0] == ", ".join(why["title"])


def test_genre_fans_are_the_users_with_the_largest_share():
    ds = type("D", (), {})()
    ds.movies = pd.DataFrame({"movie_id": [1, 2, 3], "genres": [["Horror"], ["Drama"], []]})
    # user 1: 2/2 horror, user 2: 1/3, user 3: 0/2
    ds.ratings = pd.DataFrame({"user_id": [1, 1, 2, 2, 2, 3, 3],
                               "movie_id": [1, 1, 1, 2, 3, 2, 3]})
    fans, others = data.genre_fans(ds, "Horror", n=1)
    assert list(fans) == [1] and list(others) == [3]


def test_reasons_name_rated_movies(saved):
    _, ds, _, engine = saved
    top = engine.with_reasons(engine.recommend(3, k=4), 3, n=2)
    titles = set(ds.movies.set_index("movie_id").loc[
        ds.ratings.query("user_id == 3")["movie_id"], "title"])
    for reason in top["because you rated"]:
        assert any(t in reason for t in titles)


def test_explanations_come_from_the_users_ratings(saved):
    _, ds, ids, engine = saved
    movie = int(engine.recommend(2, k=1)["movie_id"].iloc[0])
    why = engine.explain(2, movie, n=3)
    assert len(why) == 3
    assert set(why["movie_id"]) <= set(ds.ratings.query("user_id == 2")["movie_id"])
    assert np.all(np.diff(why["similarity"]) <= 0)


def test_recommend_command(saved):
    root, ds, _, _ = saved
    env = {**os.environ, "MODELS_DIR": str(root / "models")}
    base = [sys.executable, "-m", "lib", "recommend", "--dataset", "synthetic-tiny",
            "--data-dir", str(root / "data")]
    ok = subprocess.run(base + ["--user", "1", "--k", "3"], capture_output=True, text=True,
                        env=env, cwd=C.PROJ_ROOT)
    assert ok.returncode == 0, ok.stderr
    title = ds.movies.set_index("movie_id")["title"]
    assert "top 3 for user 1" in ok.stdout
    assert sum(t in ok.stdout for t in title) >= 3  # prints titles
    liked = ",".join(map(str, ds.movies["movie_id"].iloc[:3]))
    assert subprocess.run(base + ["--liked", liked], capture_output=True, text=True, env=env,
                          cwd=C.PROJ_ROOT).returncode == 0
    bad = subprocess.run(base + ["--similar", "99999"], capture_output=True, text=True,
                         env=env, cwd=C.PROJ_ROOT)
    assert bad.returncode == 1 and "unknown movie id: 99999" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_evaluate_command_writes_metrics_and_recs(tmp_path):
    env = {**os.environ, "MODELS_DIR": str(tmp_path / "models")}
    out = tmp_path / "eval"
    proc = subprocess.run([sys.executable, "-m", "lib", "evaluate", "--dataset", "synthetic-tiny",
                           "--data-dir", str(tmp_path / "data"), "--split", "per-user",
                           "--k", "5", "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=C.PROJ_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # A log, not a terminal: no progress-bar updates in it (each epoch used to add a line).
    assert "\r" not in proc.stderr and "it/s" not in proc.stderr
    assert len(proc.stderr) < 5_000
    import json

    import pandas as pd
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["measured"]) == {"stage 2 (ours)", "EASE", "most popular",
                                       "mean + biases"}
    assert "published" not in report  # only for ML-100K's benchmark split, and apart
    # The split it scored, in the format --split-dir reads back.
    again = ev.split_from_files(out)
    assert len(again.train) == report["train_ratings"] and len(again.test) == \
        report["test_ratings"]
    recs = pd.read_csv(out / "recs_stage_2.csv")
    assert list(recs.columns) == ["user_id", "movie_id", "rank", "score"]
    assert recs["rank"].between(1, 5).all()
    split = ev.split_stratified(load_dataset("synthetic-tiny", tmp_path / "data").ratings,
                                "user", 0.75, C.SEED)
    leaked = recs.merge(split.train, on=["user_id", "movie_id"])
    assert len(leaked) == 0  # no training movie in any written list


def test_reasons_for_many_movies_at_once_are_those_of_explain(saved):
    """`Engine.reasons` (one product for a whole list, what the web app shows) names the
    same movies, in the same order, as `explain` and `explain_liked` one movie at a time."""
    _, ds, ids, engine = saved
    top = engine.recommend(1, k=6)["movie_id"].tolist()
    for movie_id, pairs in zip(top, engine.reasons(top, user_id=1, n=3), strict=True):
        one = engine.explain(1, movie_id, n=3)
        assert [m for m, _ in pairs] == one["movie_id"].tolist()
        assert [t for _, t in pairs] == one["title"].tolist()
    liked = [1, 2, 3]
    fresh = engine.new_user(liked, k=4)["movie_id"].tolist()
    for movie_id, pairs in zip(fresh, engine.reasons(fresh, liked=liked), strict=True):
        assert [m for m, _ in pairs] == engine.explain_liked(liked, movie_id)["movie_id"].tolist()
    with pytest.raises(ValueError, match="give user_id or liked"):
        engine.reasons(top)
