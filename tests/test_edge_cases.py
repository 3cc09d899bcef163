"""Edge cases of the loaders, metrics, splits, ids, synthetic data, engine and download,
each pinned by a tiny input and its expected value.

Found by breaking the code on purpose (one small change at a time: a comparison flipped,
a check removed, a normaliser swapped): each test here fails on a change that every other
test let through.
"""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import ML1M_MOVIES, ML1M_RATINGS, ML1M_USERS, write_lines, write_ml1m

from lib import config as C
from lib import evaluation as ev
from lib.data import load_dataset, read_release
from lib.ids import IdMap


def _kinds(folder, name="ml-1m"):
    return [(p.path.name, p.line, p.kind) for p in read_release(folder / name, name)[1]]


# --- data.py ---------------------------------------------------------------------------

def test_rating_below_scale(tmp_path):
    write_ml1m(tmp_path / "ml-1m", ratings=ML1M_RATINGS[:1] + ["1::3::0::978302109"]
               + ML1M_RATINGS[2:])
    assert _kinds(tmp_path) == [("ratings.dat", 2, "rating outside scale")]


def test_too_many_fields(tmp_path):
    write_ml1m(tmp_path / "ml-1m", ratings=ML1M_RATINGS[:2] + ["1::4::4::978301968::9"]
               + ML1M_RATINGS[3:])
    assert _kinds(tmp_path) == [("ratings.dat", 3, "wrong field count")]


def test_too_many_fields_fast_path():
    from lib.data import _read_fast, _Table
    spec = _Table("::", (("u", "id"), ("m", "id"), ("r", "id"), ("t", "id")), "latin-1")
    assert _read_fast(b"1::1::5::9\n1::2::4::9::7\n", spec) is None
    assert _read_fast(b"1::1::5::9::7\n2::2::4::9::7\n", spec) is None  # every line 5 fields


def test_non_ascii_digit_id(tmp_path):
    write_ml1m(tmp_path / "ml-1m", ratings=ML1M_RATINGS[:1] + ["1::\u00b2::3::978302109"]
               + ML1M_RATINGS[2:])
    assert _kinds(tmp_path) == [("ratings.dat", 2, "not a number")]


def test_negative_id(tmp_path):
    write_ml1m(tmp_path / "ml-1m", ratings=["-1::1::5::978300760"] + ML1M_RATINGS[1:])
    assert _kinds(tmp_path) == [("ratings.dat", 1, "not a number")]


def test_nan_rating_csv(tmp_path):
    folder = tmp_path / "ml-latest-small"
    write_lines(folder / "movies.csv", ["movieId,title,genres", "1,Toy Story (1995),Comedy"],
                encoding="utf-8")
    write_lines(folder / "ratings.csv", ["userId,movieId,rating,timestamp",
                                         "1,1,inf,964982703"], encoding="utf-8")
    assert _kinds(tmp_path, "ml-latest-small") == [("ratings.csv", 2, "not a number")]


def test_crlf_movies_and_users(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    for f in ("movies.dat", "users.dat"):
        (folder / f).write_bytes((folder / f).read_bytes().replace(b"\n", b"\r\n"))
    ds = load_dataset("ml-1m", tmp_path)
    assert ds.movies.set_index(C.MOVIE_COL)[C.GENRES_COL][4] == ["Action", "Adventure", "Sci-Fi"]
    assert ds.users.set_index(C.USER_COL).loc[1, C.ZIP_COL] == "48067"


def test_lone_cr_inside_a_line(tmp_path):
    write_ml1m(tmp_path / "ml-1m", movies=["1::Toy Story (1995)::Comedy\r7"] + ML1M_MOVIES[1:])
    ds, problems = read_release(tmp_path / "ml-1m", "ml-1m")
    assert [(p.line, p.kind) for p in problems] == [(1, "unknown genre")]
    assert 7 not in set(ds.movies[C.MOVIE_COL]) and ds.reports["movies"].reconciles


def test_year_with_trailing_space(tmp_path):
    write_ml1m(tmp_path / "ml-1m", movies=ML1M_MOVIES[:3] + ["5::Noir Night (1950) ::Film-Noir"])
    ds = load_dataset("ml-1m", tmp_path)
    assert ds.movies[C.YEAR_COL].tolist() == [1995, 1995, 1979, 1950]


def test_empty_genre_field(tmp_path):
    write_ml1m(tmp_path / "ml-1m", movies=ML1M_MOVIES[:3] + ["5::Noir Night (1950)::"])
    ds = load_dataset("ml-1m", tmp_path)
    assert ds.movies.set_index(C.MOVIE_COL)[C.GENRES_COL][5] == []


def test_no_final_newline(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    (folder / "ratings.dat").write_bytes("\n".join(ML1M_RATINGS).encode("latin-1"))
    ds = load_dataset("ml-1m", tmp_path)
    assert ds.reports["ratings"].lines == 6 and ds.reports["ratings"].reconciles


def test_line_with_two_problems_counts_once_under_the_first(tmp_path):
    write_ml1m(tmp_path / "ml-1m", ratings=ML1M_RATINGS + ["9::2::3::1"])
    ds = load_dataset("ml-1m", tmp_path, on_bad_lines="skip")
    assert ds.reports["ratings"].skipped == {"unknown movie": 1}
    assert ds.reports["ratings"].reconciles


def test_other_files_are_not_charged(tmp_path):
    write_ml1m(tmp_path / "ml-1m", ratings=ML1M_RATINGS + ["9::1::2::978302999"])
    ds = load_dataset("ml-1m", tmp_path, on_bad_lines="skip")
    assert ds.reports["movies"].skipped == {} and ds.reports["users"].skipped == {}
    assert all(r.reconciles for r in ds.reports.values())


# --- evaluation.py ---------------------------------------------------------------------

def test_more_relevant_than_k():
    relevant = sp.csr_matrix(np.array([[1, 1, 1, 0]], dtype=np.float32))
    m = ev.ranking_metrics(np.array([[0, 1]]), relevant, np.arange(1), 2)
    assert m["recall@2"] == pytest.approx(2 / 3)
    assert m["map@2"] == pytest.approx((1 + 1) / 3)


def test_coverage_and_novelty():
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 0],
                                    [1, 0, 0, 0]], dtype=np.float32))
    relevant = sp.csr_matrix(np.array([[0, 0, 1, 1], [0, 1, 0, 1], [0, 1, 1, 0],
                                       [0, 1, 1, 0]], dtype=np.float32))
    recs = np.array([[2, -1], [1, -1], [1, 2], [1, 2]])
    m = ev.ranking_metrics(recs, relevant, np.arange(4), 2, train=train)
    assert m["coverage@2"] == pytest.approx(2 / 3)  # 2 of the 3 movies rated in training
    assert m["novelty@2"] == pytest.approx(2.0)     # each shown movie: 1 of 4 users


def test_per_user_method_is_per_user():
    rng = np.random.default_rng(0)
    r = pd.DataFrame({C.USER_COL: np.repeat(np.arange(1, 11), 8),
                      C.MOVIE_COL: np.tile(np.arange(1, 9), 10),
                      C.RATING_COL: rng.integers(1, 6, 80).astype(float),
                      C.TIMESTAMP_COL: np.arange(80)})
    a = ev.make_split(r, "per-user", seed=3)
    b = ev.split_stratified(r, by="user", ratio=0.75, seed=3)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert a.method.startswith("per-user")


def test_leave_last_ties_and_short_users():
    r = pd.DataFrame({C.USER_COL: [1, 1, 1, 2], C.MOVIE_COL: [10, 20, 30, 10],
                      C.RATING_COL: [5.0, 4.0, 3.0, 2.0], C.TIMESTAMP_COL: [1, 5, 5, 9]})
    split = ev.split_last(r)
    assert split.test[[C.USER_COL, C.MOVIE_COL]].values.tolist() == [[1, 30]]
    assert len(split.train) == 3  # user 2, with one rating, stays in training


def test_ease_diagonal_is_zero():
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 0, 0]],
                               dtype=np.float32))
    s = ev.ease_scores(x, l2=1.0)(np.array([3]))  # user 3 has only movie 0
    assert s[0, 0] == 0.0


def test_bias_regularisation_shrinks_user_bias():
    ids = IdMap([1, 2], [10], ["Drama"])
    train = pd.DataFrame({C.USER_COL: [1, 2], C.MOVIE_COL: [10, 10],
                          C.RATING_COL: [5.0, 1.0]})
    predict = ev.bias_baseline(train, ids, l2=1.0, iters=5)
    np.testing.assert_allclose(predict(np.array([0, 1]), np.array([0, 0])), [4.0, 2.0])


def test_count_leaks_maps_rows_to_users():
    train = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 1]], dtype=np.float32))
    assert ev.count_leaks(np.array([[2], [0]]), train, np.array([1, 0])) == 2
    assert ev.count_leaks(np.array([[0, 1]]), train, np.array([0])) == 1


# --- ids.py ----------------------------------------------------------------------------

def test_negative_row():
    with pytest.raises(IndexError, match="movie row out of range"):
        IdMap([1], [10, 20], ["A"]).movie_ids([-1])


def test_users_without_ratings_have_rows(tmp_path):
    write_ml1m(tmp_path / "ml-1m", users=ML1M_USERS + ["3::M::25::4::12345"])
    ids = IdMap.from_dataset(load_dataset("ml-1m", tmp_path))
    assert ids.n_users == 3 and ids.user_rows(3) == 2


def test_rows_follow_id_order(tmp_path):
    write_ml1m(tmp_path / "ml-1m", movies=ML1M_MOVIES[::-1])
    ids = IdMap.from_dataset(load_dataset("ml-1m", tmp_path))
    np.testing.assert_array_equal(ids.movie_rows([1, 3, 4, 5]), [0, 1, 2, 3])


def test_save_load_keeps_genres(tmp_path):
    IdMap([5, 1], [7, 3], ["A", "B"]).save(tmp_path / "ids.json")
    again = IdMap.load(tmp_path / "ids.json")
    assert again.n_genres == 2 and again.genre_rows(["B"]).tolist() == [1]


# --- synthetic.py ----------------------------------------------------------------------

def test_women_favour_romance_more():
    from lib.synthetic import generate
    data = generate("tiny")
    fav = data["truth"]["favourite_genres"]
    female = (data["users"][C.GENDER_COL] == "F").to_numpy()
    romance = C.GENRES_ML1M.index("Romance")
    assert fav[female, romance].mean() > fav[~female, romance].mean() + 0.1


def test_scale_grows_max_movie_id_as_sqrt():
    from lib.synthetic import generate
    assert generate("tiny", scale=4, seed=1)["movies"][C.MOVIE_COL].max() <= 840


def test_every_genre_has_a_single_genre_movie():
    from lib.synthetic import generate
    g = generate("tiny")["truth"]["movie_genres"]
    assert (g[g.sum(axis=1) == 1].any(axis=0)).all()


def test_timestamps_end_with_ml1m():
    from lib.synthetic import TIME_SPANS, generate
    assert generate("tiny", scale=4)["ratings"][C.TIMESTAMP_COL].max() <= TIME_SPANS["ml-1m"][1]


def test_taste_follows_favourite_genres():
    from lib.synthetic import generate
    t = generate("tiny")["truth"]
    centre = (t["favourite_genres"] @ t["genre_vectors"]) / \
        t["favourite_genres"].sum(axis=1, keepdims=True)
    cos = np.sum(centre * t["user_taste"], axis=1) / (
        np.linalg.norm(centre, axis=1) * np.linalg.norm(t["user_taste"], axis=1))
    assert np.median(cos) > 0.5


# --- recommend.py ----------------------------------------------------------------------

def _engine():
    from lib.recommend import Engine
    genres = ["Comedy", "Horror", "Romance"]
    ids = IdMap([1, 2], [1, 2, 3, 4, 5, 6], genres)
    movies = pd.DataFrame({C.MOVIE_COL: [1, 2, 3, 4, 5, 6],
                           C.TITLE_COL: [f"M{i}" for i in range(1, 7)],
                           C.GENRES_COL: [["Comedy"], ["Comedy"], ["Horror"], ["Horror"],
                                          ["Romance"], ["Romance"]]})
    s1_genres = np.eye(3, dtype=np.float32) * 3
    s1_movies = np.repeat(np.eye(3, dtype=np.float32) * 2, 2, axis=0)
    s1_movies += np.array([[0.1, 0, 0], [0, 0.1, 0], [0, 0.1, 0], [0, 0, 0.1],
                           [0.1, 0, 0], [0, 0, 0.1]], dtype=np.float32)
    movie_vectors = s1_movies @ np.array([[1, 0], [0, 1], [-1, -1]], dtype=np.float32)
    bias = np.zeros(6, dtype=np.float32)
    users = np.array([[0, 1], [1, 0]], dtype=np.float32)  # user 1 likes horror, 2 comedy
    rated = sp.csr_matrix(np.array([[0, 0, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]],
                                   dtype=np.float32))
    return Engine(users, movie_vectors, bias, ids, movies, rated, s1_movies, s1_genres)


def test_similar_excludes_the_movie_itself():
    e = _engine()
    out = e.similar(3, k=1)
    assert out[C.MOVIE_COL].tolist() == [4]


def test_new_movie_vector_follows_its_genres():
    e = _engine()
    horror, comedy = e.add_movie(["Horror"]), e.add_movie(["Comedy"])
    assert e.new_movie_rank(horror, 1) < e.new_movie_rank(comedy, 1)
    assert e.new_movie_rank(comedy, 2) < e.new_movie_rank(horror, 2)


def test_new_movie_rank_is_its_place_in_recommend():
    e = _engine()
    new = e.add_movie(["Horror"])
    for user in (1, 2):
        top = e.recommend(user, k=100)
        assert e.new_movie_rank(new, user) == top[C.MOVIE_COL].tolist().index(new) + 1


def test_strong_prior_keeps_fold_in_near_start():
    from lib.recommend import fold_in_user
    rng = np.random.default_rng(0)
    v = rng.normal(size=(20, 4))
    start = np.zeros(4)
    u = fold_in_user(v, np.zeros(20), np.array([0, 1]), start, l2=1e4)
    assert np.linalg.norm(u - start) < 0.5


# --- download.py -----------------------------------------------------------------------

def _zip(path, members, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _release_members(tmp_path):
    src = write_ml1m(tmp_path / "src" / "ml-1m")
    return {f"ml-1m/{f.name}": f.read_bytes() for f in sorted(src.iterdir())}


def test_path_traversal_is_refused(tmp_path):
    from lib.download import DownloadError, install_zip
    members = _release_members(tmp_path)
    members["ml-1m/../../evil.txt"] = b"x"
    z = _zip(tmp_path / "evil.zip", members)
    with pytest.raises(DownloadError, match="unsafe path"):
        install_zip(z, "ml-1m", tmp_path / "data", md5=None)


def test_corrupt_member_is_named(tmp_path):
    from lib.download import DownloadError, install_zip
    z = _zip(tmp_path / "r.zip", _release_members(tmp_path), zipfile.ZIP_STORED)
    raw = bytearray(z.read_bytes())
    i = raw.index(b"978300760")
    raw[i] = ord("8")
    z.write_bytes(bytes(raw))
    with pytest.raises(DownloadError, match="corrupt inside the zip"):
        install_zip(z, "ml-1m", tmp_path / "data", md5=None)


def test_short_body_is_reported(tmp_path, monkeypatch):
    from lib import download as D

    class Fake(io.BytesIO):
        headers = {"Content-Length": "1000"}

        def __enter__(self):
            return self

    monkeypatch.setattr(D.urllib.request, "urlopen", lambda url, timeout: Fake(b"x" * 10))
    with pytest.raises(D.DownloadError, match="connection cut"):
        D._fetch("http://example.invalid/ml-1m.zip", tmp_path / "z", 1.0, False)


def test_every_line_one_field_too_many(tmp_path):
    write_ml1m(tmp_path / "ml-1m", ratings=[line + "::0" for line in ML1M_RATINGS])
    assert {k for _, _, k in _kinds(tmp_path)} == {"wrong field count"}


def test_skip_drops_exactly_the_bad_line(tmp_path):
    write_ml1m(tmp_path / "ml-1m", ratings=ML1M_RATINGS[:1] + ["1::3::6::978302109"]
               + ML1M_RATINGS[2:])
    ds = load_dataset("ml-1m", tmp_path, on_bad_lines="skip")
    pairs = set(map(tuple, ds.ratings[[C.USER_COL, C.MOVIE_COL]].to_numpy().tolist()))
    assert pairs == {(1, 1), (1, 4), (2, 1), (2, 3), (2, 4)}


def test_fold_in_moves_towards_the_liked_movie():
    from lib.recommend import fold_in_user
    v = 2 * np.eye(3)
    u = fold_in_user(v, np.zeros(3), np.array([0]), np.zeros(3))
    assert u[0] > u[1] + 0.5 and u[0] > u[2] + 0.5


def test_fold_in_reaches_the_maximum_of_its_objective():
    """Newton's method must stop at the maximum: the gradient of the training objective
    over the user vector, (sum of liked vectors - n * E_p[v]) / n - l2 (u - start) / n,
    vanishes there, and no nearby vector scores higher."""
    from lib.recommend import fold_in_user
    rng = np.random.default_rng(3)
    v, b = rng.normal(scale=2.0, size=(300, 8)), rng.normal(size=300)
    start, liked, l2 = rng.normal(size=8), np.array([4, 17, 120, 250]), 0.5
    u = fold_in_user(v, b, liked, start, l2=l2).astype(np.float64)

    def objective(x):
        logits = v @ x + b
        lse = logits.max() + np.log(np.exp(logits - logits.max()).sum())
        return (logits[liked].sum() - 4 * lse) / 4 - l2 * ((x - start) ** 2).sum() / 8

    p = np.exp(v @ u + b - (v @ u + b).max())
    p /= p.sum()
    grad = (v[liked].sum(axis=0) - 4 * (p @ v)) / 4 - l2 * (u - start) / 4
    assert np.linalg.norm(grad) < 1e-4  # float32 rounding of the result
    assert all(objective(u) >= objective(u + 1e-2 * rng.normal(size=8)) for _ in range(20))
    with pytest.raises(ValueError, match="at least one liked movie"):
        fold_in_user(v, b, np.array([], np.int64), start)
    with pytest.raises(ValueError, match="l2 must be > 0"):
        fold_in_user(v, b, liked, start, l2=0)
