"""Loaders and validation, on fixture files in the exact release formats."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ML1M_MOVIES, ML1M_RATINGS, ML1M_USERS, write_lines, write_ml1m

from lib import config as C
from lib.data import DataError, _read_fast, _read_slow, _Table, load_dataset, read_release


def test_ml1m_schema_and_values(ml1m_dir):
    ds = load_dataset("ml-1m", ml1m_dir)
    assert list(ds.ratings.columns) == C.RATING_COLUMNS
    assert list(ds.movies.columns) == C.MOVIE_COLUMNS
    assert list(ds.users.columns) == C.USER_COLUMNS
    assert ds.genres == C.GENRES_ML1M
    # latin-1 title survives; ':' inside a title does not split it.
    titles = ds.movies.set_index(C.MOVIE_COL)[C.TITLE_COL]
    assert titles[3] == "Misérables, Les (1995)"
    assert titles[4] == "Star Trek: The Motion Picture (1979)"
    assert ds.movies.set_index(C.MOVIE_COL)[C.GENRES_COL][4] == ["Action", "Adventure", "Sci-Fi"]
    assert ds.movies[C.YEAR_COL].tolist() == [1995, 1995, 1979, 1950]
    user2 = ds.users.set_index(C.USER_COL).loc[2]
    assert (user2[C.AGE_LABEL_COL], user2[C.OCCUPATION_LABEL_COL]) == ("56+", "self-employed")
    assert user2[C.ZIP_COL] == "70072-1234"  # zip codes stay strings
    assert ds.users.set_index(C.USER_COL).loc[1, C.ZIP_COL] == "48067"
    # 6 ratings, 2 users, 4 movies of which 3 rated (movie 5 nobody rated).
    assert ds.counts() == {"ratings": 6, "users": 2, "movies": 4, "rated_movies": 3,
                           "genres": 18, "users_in_file": 2}
    assert ds.ratings[C.RATING_COL].sum() == 5 + 3 + 4 + 2 + 5 + 1
    assert all(r.reconciles for r in ds.reports.values())


def test_fast_and_slow_readers_agree(tmp_path):
    lines = [f"{u}::{m}::{(u * m) % 5 + 1}::{978300000 + u * 7 + m}"
             for u in range(1, 40) for m in range(1, 30)]
    path = write_lines(tmp_path / "ratings.dat", lines)
    spec = _Table("::", (("u", "id"), ("m", "id"), ("r", "id"), ("t", "id")), "latin-1")
    fast = _read_fast(path.read_bytes(), spec)
    slow, problems = _read_slow(path, path.read_bytes(), spec)
    assert fast is not None and problems == []
    pd.testing.assert_frame_equal(fast, slow)


def _problems(folder, name="ml-1m"):
    return read_release(folder / name, name)[1]


@pytest.mark.parametrize("file, lines, line, kind, words", [
    ("ratings.dat", ML1M_RATINGS[:2] + ["1::4::4"] + ML1M_RATINGS[3:], 3,
     "wrong field count", "expected 4 fields separated by '::', got 3"),
    ("ratings.dat", ML1M_RATINGS[:4] + ["2::x3::5::978299026"] + ML1M_RATINGS[5:], 5,
     "not a number", "movie_id 'x3' is not a whole number"),
    ("ratings.dat", ML1M_RATINGS[:1] + ["1::3::6::978302109"] + ML1M_RATINGS[2:], 2,
     "rating outside scale", "rating 6 is not one of 1, 2, ..., 5"),
    ("ratings.dat", ML1M_RATINGS + ["1::3::2::978302999"], 7,
     "duplicate rating", "user 1 rated movie 3 already on line 2"),
    ("ratings.dat", ML1M_RATINGS + ["1::2::2::978302999"], 7,
     "unknown movie", "movie 2 is not in the movies file"),
    ("ratings.dat", ML1M_RATINGS + ["9::1::2::978302999"], 7,
     "unknown user", "user 9 is not in the users file"),
    ("ratings.dat", ML1M_RATINGS[:3] + [""] + ML1M_RATINGS[3:], 4, "empty line", ""),
    ("movies.dat", ML1M_MOVIES + ["7::Nowhere (1990)::Drama|Cartoon"], 5,
     "unknown genre", "'Cartoon' is not one of the 18 genres"),
    ("movies.dat", ML1M_MOVIES + ["1::Toy Story again (1995)::Comedy"], 5,
     "duplicate movie", "movie 1 is listed more than once"),
    ("users.dat", ML1M_USERS + ["1::M::25::4::12345"], 3,
     "duplicate user", "user 1 is listed more than once"),
    ("users.dat", ML1M_USERS + ["3::M::30::4::12345"], 3,
     "bad value", "age code 30 is not one of [1, 18, 25, 35, 45, 50, 56]"),
    ("users.dat", ML1M_USERS + ["3::X::25::4::12345"], 3,
     "bad value", "gender 'X' is not one of ['F', 'M']"),
    ("users.dat", ML1M_USERS + ["3::M::25::21::12345"], 3,
     "bad value", "occupation code 21 is not one of"),
])
def test_each_problem_is_named_with_file_and_line(tmp_path, file, lines, line, kind, words):
    write_ml1m(tmp_path / "ml-1m")
    write_lines(tmp_path / "ml-1m" / file, lines)
    problems = _problems(tmp_path)
    assert len(problems) == 1, problems
    p = problems[0]
    assert (p.path.name, p.line, p.kind) == (file, line, kind)
    assert words in p.detail
    with pytest.raises(DataError) as info:
        load_dataset("ml-1m", tmp_path)
    message = str(info.value)
    assert f"ml-1m/{file} line {line}: {kind}" in message
    assert "on_bad_lines='skip'" in message  # the message says what to do


def test_skip_counts_and_reconciles(tmp_path):
    ratings = ML1M_RATINGS + ["1::4::4", "9::1::2::978302999", "1::3::6::1", "", "1::1::3::1"]
    write_ml1m(tmp_path / "ml-1m", ratings=ratings)
    ds = load_dataset("ml-1m", tmp_path, on_bad_lines="skip")
    report = ds.reports["ratings"]
    # 11 lines: 6 good, then one each of: field count, unknown user, scale, empty, duplicate.
    assert report.lines == 11 and report.loaded == 6
    assert report.skipped == {"wrong field count": 1, "unknown user": 1,
                              "rating outside scale": 1, "empty line": 1,
                              "duplicate rating": 1}
    assert report.reconciles
    assert len(ds.ratings) == 6


def test_missing_files_say_how_to_get_them(tmp_path):
    (tmp_path / "ml-1m").mkdir()
    with pytest.raises(DataError, match=r"missing ratings.dat, movies.dat, users.dat[\s\S]*"
                                        r"python -m lib data download ml-1m"):
        load_dataset("ml-1m", tmp_path)


def test_windows_line_endings_are_read(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    raw = (folder / "ratings.dat").read_bytes().replace(b"\n", b"\r\n")
    (folder / "ratings.dat").write_bytes(raw)
    assert len(load_dataset("ml-1m", tmp_path).ratings) == len(ML1M_RATINGS)


def test_ml100k_format(tmp_path):
    folder = tmp_path / "ml-100k"
    flags = ["0"] * 19
    toy = flags.copy()
    toy[3] = toy[4] = toy[5] = "1"  # Animation, Children's, Comedy (after 'unknown')
    unknown = flags.copy()
    unknown[0] = "1"
    write_lines(folder / "u.item", [
        "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|"
        + "|".join(toy),
        "2|Café Lumière (2003)|01-Jan-2003||http://x|" + "|".join(unknown)])
    write_lines(folder / "u.user", ["1|24|M|technician|85711", "2|53|F|other|94043"])
    write_lines(folder / "u.data", ["1\t1\t5\t874965758", "2\t2\t3\t876893171",
                                    "2\t1\t4\t876893119"])
    ds = load_dataset("ml-100k", tmp_path)
    assert ds.genres == C.GENRES_ML100K
    movies = ds.movies.set_index(C.MOVIE_COL)
    assert movies.loc[1, C.GENRES_COL] == ["Animation", "Children's", "Comedy"]
    assert movies.loc[2, C.GENRES_COL] == ["unknown"]
    assert movies.loc[2, C.TITLE_COL] == "Café Lumière (2003)"
    users = ds.users.set_index(C.USER_COL)
    assert users.loc[1, C.AGE_LABEL_COL] == "18-24" and users.loc[2, C.AGE_LABEL_COL] == "50-55"
    assert users.loc[1, C.OCCUPATION_LABEL_COL] == "technician"
    assert ds.counts()["ratings"] == 3


def test_csv_release_half_stars_and_undecodable_bytes(tmp_path):
    folder = tmp_path / "ml-latest-small"
    write_lines(folder / "movies.csv", [
        "movieId,title,genres", "1,Toy Story (1995),Adventure|Animation|Children|Comedy",
        '2,"American President, The (1995)",Comedy|Drama|Romance',
        "3,Nothing at All (2001),(no genres listed)"], encoding="utf-8")
    write_lines(folder / "ratings.csv", [
        "userId,movieId,rating,timestamp", "1,1,4.5,964982703", "1,2,0.5,964981247",
        "2,3,3.0,964982224"], encoding="utf-8")
    ds = load_dataset("ml-latest-small", tmp_path)
    assert ds.users is None
    assert ds.ratings[C.RATING_COL].tolist() == [4.5, 0.5, 3.0]
    movies = ds.movies.set_index(C.MOVIE_COL)
    assert movies.loc[2, C.TITLE_COL] == "American President, The (1995)"
    assert movies.loc[3, C.GENRES_COL] == []
    assert "Children" in ds.genres  # the CSV releases spell it without "'s"
    # A quarter star is off the half-star scale; a latin-1 byte in a UTF-8 file is named.
    write_lines(folder / "ratings.csv", ["userId,movieId,rating,timestamp",
                                         "1,1,4.25,964982703"], encoding="utf-8")
    (folder / "movies.csv").write_bytes((folder / "movies.csv").read_bytes()
                                        + "4,Amélie (2001),Comedy\n".encode("latin-1"))
    problems = _problems(tmp_path, "ml-latest-small")
    assert [(p.path.name, p.line, p.kind) for p in problems] == [
        ("movies.csv", 5, "undecodable bytes"), ("ratings.csv", 2, "rating outside scale")]
    assert "not valid utf-8" in problems[0].detail


def test_validate_command_exit_codes(ml1m_dir):
    cmd = [sys.executable, "-m", "lib", "data", "validate", "--dataset", "ml-1m",
           "--data-dir", str(ml1m_dir)]
    ok = subprocess.run(cmd, capture_output=True, text=True)
    assert ok.returncode == 0 and "ratings: 6" in ok.stdout
    write_lines(ml1m_dir / "ml-1m" / "ratings.dat", ML1M_RATINGS + ["1::1::9::1"])
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "ratings.dat line 7: rating outside scale" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_real_scale_ratings_fast_path_matches_rows(tmp_path):
    """The fast path is taken for a clean ML-1M-format file and keeps line numbers."""
    lines = [f"{1 + i % 50}::{1 + i // 50}::{1 + i % 5}::{978300000 + i}" for i in range(5000)]
    path = write_lines(tmp_path / "r.dat", lines)
    spec = _Table("::", (("u", "id"), ("m", "id"), ("r", "id"), ("t", "id")), "latin-1")
    df = _read_fast(path.read_bytes(), spec)
    assert df is not None
    np.testing.assert_array_equal(df["_line"].to_numpy(), np.arange(1, 5001))
    assert df["t"].iloc[-1] == 978300000 + 4999


def test_auto_prefers_ml1m_then_falls_back_to_synthetic(ml1m_dir, tmp_path, monkeypatch,
                                                        caplog):
    from lib import download
    from lib.data import resolve_dataset
    assert resolve_dataset("auto", ml1m_dir) == ("ml-1m", ml1m_dir)
    monkeypatch.setattr(download, "release_urls", lambda name: ["http://127.0.0.1:9/x.zip"])
    empty = tmp_path / "empty"
    # Synthetic data goes to the project's data/, never into the user's folder.
    assert resolve_dataset("auto", empty) == ("synthetic", None)
    assert "USING SYNTHETIC DATA" in caplog.text
    assert resolve_dataset("ml-100k", empty) == ("ml-100k", empty)
    with pytest.raises(ValueError, match="unknown dataset 'ml-2m'"):
        resolve_dataset("ml-2m", empty)
