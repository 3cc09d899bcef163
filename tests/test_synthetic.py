"""The built-in dataset: exact ML-1M format and counts, planted structure, same bytes."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from lib import config as C
from lib.data import load_dataset
from lib.synthetic import generate, load_truth, write_synthetic


def _digest(folder):
    return {f: hashlib.md5((folder / f).read_bytes()).hexdigest()
            for f in ("ratings.dat", "movies.dat", "users.dat", "truth.npz")}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = _digest(write_synthetic(tmp_path / "a", "tiny", seed=7))
    b = _digest(write_synthetic(tmp_path / "b", "tiny", seed=7))
    c = _digest(write_synthetic(tmp_path / "c", "tiny", seed=8))
    assert a == b
    assert a["ratings.dat"] != c["ratings.dat"]


@pytest.fixture(scope="module")
def ml1m_sized(tmp_path_factory):
    parent = tmp_path_factory.mktemp("syn")
    write_synthetic(parent / "synthetic", "ml-1m")
    return parent


def test_ml1m_size_has_ml1m_counts_and_format(ml1m_sized):
    ds = load_dataset("synthetic", ml1m_sized)
    assert ds.counts() == {"ratings": 1_000_209, "users": 6_040, "movies": 3_883,
                           "rated_movies": 3_706, "genres": 18, "users_in_file": 6_040}
    assert ds.ratings.groupby(C.USER_COL).size().min() >= 20
    ids = ds.movies[C.MOVIE_COL]
    assert ids.max() <= 3952 and ids.max() - ids.min() + 1 > len(ids)  # gaps in the ids
    assert set(ds.users[C.AGE_COL]) == set(C.AGE_LABELS)
    assert set(ds.users[C.OCCUPATION_COL]) == set(C.OCCUPATION_LABELS)
    assert {g for gs in ds.movies[C.GENRES_COL] for g in gs} == set(C.GENRES_ML1M)
    assert ds.movies[C.GENRES_COL].map(len).between(1, 3).all()
    t = ds.ratings[C.TIMESTAMP_COL]
    assert t.min() >= 946_684_800 and t.max() < 1_072_915_200  # within 2000-2003
    raw = (ml1m_sized / "synthetic" / "movies.dat").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # latin-1 accents, as in ML-1M
    assert "é" in raw.decode("latin-1")
    # Star shares close to ML-1M's (5.6%, 10.8%, 26.1%, 34.9%, 22.6%).
    shares = ds.ratings[C.RATING_COL].value_counts(normalize=True).sort_index().to_numpy()
    np.testing.assert_allclose(shares, [0.0562, 0.1075, 0.2612, 0.3489, 0.2263], atol=0.002)


def test_planted_preferences_show_in_the_ratings(ml1m_sized):
    """Users rate movies of their favourite genres higher and more often than others."""
    ds = load_dataset("synthetic", ml1m_sized)
    truth = load_truth(ml1m_sized / "synthetic")
    fav = truth["favourite_genres"]            # (users, genres), users in id order 1..n
    genres_of = truth["movie_genres"]          # (movies, genres), movies in id order
    u = ds.ratings[C.USER_COL].to_numpy() - 1
    m = np.searchsorted(truth["movie_ids"], ds.ratings[C.MOVIE_COL].to_numpy())
    liked = (fav[u] & genres_of[m]).any(axis=1)
    r = ds.ratings[C.RATING_COL].to_numpy()
    assert r[liked].mean() - r[~liked].mean() > 0.4
    # Share of a user's ratings in favourite genres, against the share of such movies.
    base = (fav.astype(float) @ genres_of.T.astype(float) > 0).mean()
    assert liked.mean() > base + 0.1


def test_tastes_drift_from_one_favourite_genre_to_another(ml1m_sized):
    """The planted order: a user's first movies are mostly of their ``drift_from`` genre,
    their last ones of their ``drift_to`` genre (both among their favourites)."""
    ds = load_dataset("synthetic", ml1m_sized)
    truth = load_truth(ml1m_sized / "synthetic")
    frm, to = truth["drift_from"], truth["drift_to"]
    users = np.arange(len(frm))
    favourite = truth["favourite_genres"]
    assert favourite[users, frm].all() and favourite[users, to].all()
    assert (frm != to).all()
    ordered = ds.ratings.sort_values([C.USER_COL, C.TIMESTAMP_COL], kind="stable")
    genres_of = truth["movie_genres"]

    def shares(part):
        u = part[C.USER_COL].to_numpy() - 1
        m = np.searchsorted(truth["movie_ids"], part[C.MOVIE_COL].to_numpy())
        return genres_of[m, frm[u]].mean(), genres_of[m, to[u]].mean()

    first_from, first_to = shares(ordered.groupby(C.USER_COL).head(5))
    last_from, last_to = shares(ordered.groupby(C.USER_COL).tail(5))
    assert first_from > 3 * first_to and last_to > 3 * last_from, (first_from, first_to,
                                                                  last_from, last_to)


def test_a_folder_from_another_generator_version_is_written_again(tmp_path):
    folder = write_synthetic(tmp_path / "synthetic-tiny", "tiny")
    np.savez(folder / "truth.npz", version=np.array(1))  # as an older generator left it
    load_dataset("synthetic-tiny", tmp_path)
    assert int(load_truth(folder)["version"]) == 2 and "drift_to" in load_truth(folder)


def test_scale_grows_users_and_ratings():
    small = generate("tiny", seed=1)
    big = generate("tiny", scale=4, seed=1)
    assert len(big["users"]) == 4 * len(small["users"])
    assert len(big["ratings"]) == 4 * len(small["ratings"])
    assert len(big["movies"]) == 2 * len(small["movies"])  # movies grow as sqrt(scale)


def test_ml25m_format_round_trips_through_the_ml25m_loader(tmp_path):
    """The ML-25M-format writer at a tiny scale, read back by the `ml-25m` reader: CSV
    with a header, half stars, quoted titles, "(no genres listed)", no users file."""
    from lib import synthetic
    from lib.data import read_release
    made = synthetic.generate("ml-25m", scale=0.002)
    folder = write_synthetic(tmp_path / "ml-25m", "ml-25m", scale=0.002)
    assert sorted(p.name for p in folder.iterdir()) == ["README.txt", "movies.csv",
                                                       "ratings.csv", "truth.npz"]
    assert (folder / "ratings.csv").read_text().startswith("userId,movieId,rating,timestamp\n")
    ds, problems = read_release(folder, "ml-25m")
    assert problems == [] and ds.users is None
    expected = made["ratings"]
    for col in C.RATING_COLUMNS:
        np.testing.assert_array_equal(ds.ratings[col].to_numpy(), expected[col].to_numpy())
    assert set(np.unique(ds.ratings[C.RATING_COL])) == set(np.arange(1, 11) / 2)
    assert ds.movies[C.TITLE_COL].tolist() == made["movies"][C.TITLE_COL].tolist()
    assert ds.movies[C.TITLE_COL].str.contains(",").any()  # quoted in the file
    listed = made["movies"][C.GENRES_COL]
    assert (listed == C.NO_GENRES).any()
    assert ds.movies[C.GENRES_COL].map(len).eq(0).sum() == (listed == C.NO_GENRES).sum()
    assert {"Children", "IMAX"} <= set(ds.genres) and "Children's" not in ds.genres
    t = ds.ratings[C.TIMESTAMP_COL]
    assert t.min() >= 789_652_009 and t.max() <= 1_574_327_703  # 1995-01-09 to 2019-11-21
    assert ds.ratings.groupby(C.USER_COL).size().min() >= 20


def test_large_catalogues_draw_from_candidates_with_the_same_planted_structure(monkeypatch):
    """The candidate draw used above `EXACT_DRAW_MAX_CELLS` keeps the exact counts and the
    planted preference: users rate movies of their favourite genres more often."""
    from lib import synthetic
    monkeypatch.setattr(synthetic, "EXACT_DRAW_MAX_CELLS", 0)
    made = synthetic.generate("ml-25m", scale=0.002)
    r, truth = made["ratings"], made["truth"]
    n = synthetic._counts(synthetic.SIZES["ml-25m"], 0.002)
    assert len(r) == n["ratings"] and r[C.USER_COL].nunique() == n["users"]
    assert r[C.MOVIE_COL].nunique() == n["rated"]
    assert not r.duplicated([C.USER_COL, C.MOVIE_COL]).any()
    rows = np.searchsorted(truth["movie_ids"], r[C.MOVIE_COL])
    liked = (truth["favourite_genres"][r[C.USER_COL] - 1] & truth["movie_genres"][rows]).any(1)
    # Share of ratings on a favourite genre, against the share of movies that are one.
    base = (truth["favourite_genres"].astype(int) @ truth["movie_genres"].T.astype(int)
            > 0).mean()
    assert liked.mean() > base + 0.2
