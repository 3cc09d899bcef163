"""The one crossing between MovieLens ids and the contiguous row indices models use."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lib import config as C
from lib.errors import UnknownIdError


class _Axis:
    """One id <-> index mapping, backed by a pandas Index (a hash table)."""

    def __init__(self, name: str, ids):
        self.name = name
        self.numeric = not (len(ids) and isinstance(ids[0], str))
        self.index = pd.Index(np.asarray(ids, dtype=np.int64 if self.numeric else object))
        if not self.index.is_unique:
            raise ValueError(f"{name} ids are not unique")

    def __len__(self) -> int:
        return len(self.index)

    def rows(self, ids) -> np.ndarray:
        scalar = np.ndim(ids) == 0
        try:
            values = np.atleast_1d(np.asarray(ids, dtype=np.int64 if self.numeric else object))
        except (TypeError, ValueError):
            raise UnknownIdError(f"{self.name} ids must be "
                                 f"{'whole numbers' if self.numeric else 'names'}, "
                                 f"got {ids!r}") from None
        rows = self.index.get_indexer(values)
        if (rows < 0).any():
            unknown = values[rows < 0]
            shown = ", ".join(map(str, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
            raise UnknownIdError(f"unknown {self.name} id{'s' * (len(unknown) > 1)}: "
                                 f"{shown} (known ids: {len(self)} of them, e.g. "
                                 f"{', '.join(map(str, self.index[:3]))})")
        rows = rows.astype(np.int32)
        return rows[0] if scalar else rows

    def ids(self, rows) -> np.ndarray:
        rows = np.asarray(rows)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"{self.name} row out of range 0..{len(self) - 1}")
        return self.index.to_numpy()[rows]


class IdMap:
    """Maps user ids, movie ids and genre names to row indices 0..n-1 and back.

    Saved beside every model (``ids.json``); code crosses between ids and rows only here.
    """

    def __init__(self, user_ids, movie_ids, genres):
        self.users = _Axis("user", np.asarray(user_ids, dtype=np.int64))
        self.movies = _Axis("movie", np.asarray(movie_ids, dtype=np.int64))
        self.genres = _Axis("genre", np.array([str(g) for g in genres], dtype=object))

    @classmethod
    def from_dataset(cls, dataset) -> IdMap:
        """Every user of the users file (or of the ratings) and every movie of the movies
        file, rated or not, in increasing id order."""
        users = dataset.users[C.USER_COL] if dataset.users is not None \
            else dataset.ratings[C.USER_COL]
        return cls(np.sort(users.unique()), np.sort(dataset.movies[C.MOVIE_COL].unique()),
                   dataset.genres)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_movies(self) -> int:
        return len(self.movies)

    @property
    def n_genres(self) -> int:
        return len(self.genres)

    def user_rows(self, ids) -> np.ndarray:
        return self.users.rows(ids)

    def movie_rows(self, ids) -> np.ndarray:
        return self.movies.rows(ids)

    def genre_rows(self, names) -> np.ndarray:
        return self.genres.rows(names)

    def user_ids(self, rows) -> np.ndarray:
        return self.users.ids(rows)

    def movie_ids(self, rows) -> np.ndarray:
        return self.movies.ids(rows)

    def genre_names(self, rows) -> np.ndarray:
        return self.genres.ids(rows)

    def to_json(self) -> dict:
        return {"users": self.users.index.tolist(), "movies": self.movies.index.tolist(),
                "genres": self.genres.index.tolist()}

    def save(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(self.to_json()), encoding="utf-8")

    @classmethod
    def load(cls, path: Path | str) -> IdMap:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(d["users"], d["movies"], d["genres"])

    def __eq__(self, other) -> bool:
        return isinstance(other, IdMap) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"IdMap({self.n_users} users, {self.n_movies} movies, {self.n_genres} genres)"
