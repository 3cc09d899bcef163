"""The id map: the only crossing between MovieLens ids and embedding rows."""
from __future__ import annotations

import numpy as np
import pytest

from lib.data import load_dataset
from lib.ids import IdMap, UnknownIdError


def test_round_trip_and_gaps(ml1m_dir):
    ids = IdMap.from_dataset(load_dataset("ml-1m", ml1m_dir))
    # Movie ids 1, 3, 4, 5 (2 is a gap) become rows 0..3, unrated movie 5 included.
    assert ids.n_movies == 4 and ids.n_users == 2 and ids.n_genres == 18
    np.testing.assert_array_equal(ids.movie_rows([1, 3, 4, 5]), [0, 1, 2, 3])
    np.testing.assert_array_equal(ids.movie_ids([3, 0]), [5, 1])
    assert ids.movie_rows(4) == 2  # a scalar stays a scalar
    assert ids.genre_rows(["Action", "Western"]).tolist() == [0, 17]


def test_unknown_ids_are_named():
    ids = IdMap([1, 2], [10, 20, 30], ["Drama"])
    with pytest.raises(UnknownIdError, match="unknown movie ids: 2, 99"):
        ids.movie_rows([10, 2, 99])
    with pytest.raises(IndexError, match="movie row out of range 0..2"):
        ids.movie_ids([3])


def test_save_load(tmp_path):
    ids = IdMap([5, 1], [7, 3], ["A", "B"])
    ids.save(tmp_path / "ids.json")
    again = IdMap.load(tmp_path / "ids.json")
    assert again == ids
    assert again.user_rows(1) == 1 and again.movie_ids([0]).tolist() == [7]
