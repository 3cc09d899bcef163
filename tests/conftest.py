"""Fixtures that write tiny releases in the exact MovieLens formats."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

ML100K_DIR = Path(os.environ.get("ML100K_DIR", Path(__file__).resolve().parents[2] /
                                 "shared" / "datasets" / "ml-100k"))

# Three movies (one latin-1 title with an accent, one with ':' in its title), id gaps,
# movie 5 unrated; two users; six ratings.
ML1M_MOVIES = [
    "1::Toy Story (1995)::Animation|Children's|Comedy",
    "3::Misérables, Les (1995)::Drama|Musical",
    "4::Star Trek: The Motion Picture (1979)::Action|Adventure|Sci-Fi",
    "5::Noir Night (1950)::Film-Noir",
]
ML1M_USERS = [
    "1::F::1::10::48067",
    "2::M::56::16::70072-1234",
]
ML1M_RATINGS = [
    "1::1::5::978300760",
    "1::3::3::978302109",
    "1::4::4::978301968",
    "2::1::2::978298413",
    "2::3::5::978299026",
    "2::4::1::978299620",
]


def write_lines(path: Path, lines: list[str], encoding: str = "latin-1") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def write_ml1m(folder: Path, ratings=None, movies=None, users=None) -> Path:
    write_lines(folder / "movies.dat", ML1M_MOVIES if movies is None else movies)
    write_lines(folder / "users.dat", ML1M_USERS if users is None else users)
    write_lines(folder / "ratings.dat", ML1M_RATINGS if ratings is None else ratings)
    return folder


@pytest.fixture
def ml1m_dir(tmp_path) -> Path:
    """A parent data folder holding a valid tiny `ml-1m/`."""
    write_ml1m(tmp_path / "ml-1m")
    return tmp_path
