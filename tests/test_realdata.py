"""Opt-in checks on the real MovieLens 100K files (`make test-real`)."""
from __future__ import annotations

import hashlib

import pytest
from conftest import ML100K_DIR

from lib import config as C
from lib.data import load_dataset

pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(not (ML100K_DIR / "u.data").is_file(),
                                 reason=f"no MovieLens 100K files in {ML100K_DIR}")]


def test_files_are_the_genuine_release():
    md5 = {f: hashlib.md5((ML100K_DIR / f).read_bytes()).hexdigest()
           for f in ("u.data", "u.item", "u.user")}
    assert md5 == {"u.data": "6e47046882bad158b0efbb84cd5cb987",
                   "u.item": "c9e7f390115d79079537301d5204f3f7",
                   "u.user": "1b53539edc13caad0282c8500608a319"}


def test_ml100k_loader_reproduces_published_counts():
    ds = load_dataset("ml-100k", ML100K_DIR.parent)
    assert ds.counts() == {"ratings": 100_000, "users": 943, "movies": 1_682,
                           "rated_movies": 1_682, "genres": 19, "users_in_file": 943}
    stars = ds.ratings[C.RATING_COL].value_counts().sort_index().tolist()
    assert stars == [6110, 11370, 27145, 34174, 21201]
    assert all(r.reconciles and not r.skipped for r in ds.reports.values())
    titles = ds.movies.set_index(C.MOVIE_COL)[C.TITLE_COL]
    assert titles[1] == "Toy Story (1995)"
