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


ML100K_ITEMS = [
    "1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join("0001110000000000000"),
    "2|GoldenEye (1995)|01-Jan-1995||http://x|" + "|".join("0110000000000000100"),
]
ML100K_USERS = ["1|24|M|technician|85711", "2|53|F|other|94043"]
ML100K_RATINGS = ["1\t1\t5\t874965758", "2\t2\t3\t876893171", "2\t1\t4\t876893119"]
LATEST_MOVIES = ["movieId,title,genres", "1,Toy Story (1995),Adventure|Animation|Comedy",
                 '2,"American President, The (1995)",Comedy|Drama|Romance']
LATEST_RATINGS = ["userId,movieId,rating,timestamp", "1,1,4.5,964982703",
                  "1,2,0.5,964981247", "2,1,3.0,964982224"]


def write_ml100k(folder: Path) -> Path:
    write_lines(folder / "u.item", ML100K_ITEMS)
    write_lines(folder / "u.user", ML100K_USERS)
    write_lines(folder / "u.data", ML100K_RATINGS)
    return folder


def write_latest(folder: Path) -> Path:
    write_lines(folder / "movies.csv", LATEST_MOVIES, encoding="utf-8")
    write_lines(folder / "ratings.csv", LATEST_RATINGS, encoding="utf-8")
    return folder


def save_untrained_models(dataset, root: Path, seed: int = 1, sequential: bool = False):
    """Stage 1 and stage 2 models (and with `sequential` notebook 06's model) built, not
    trained, and saved as the notebooks save them: for tests of files and answers, where
    the weights do not matter."""
    import pandas as pd

    from lib import artifacts, stages
    from lib import models as M
    from lib.ids import IdMap
    ids = IdMap.from_dataset(dataset)
    model = M.build_movie_genre_model(ids.n_movies, ids.n_genres, 8, seed=seed)
    s1 = stages.Stage1(model, M.embeddings(model, "movie_embedding"),
                       M.embeddings(model, "genre_embedding"), pd.DataFrame(),
                       {"precision": 0.5}, 0.0, {"dim": 8, "seed": seed})
    artifacts.save_stage1(s1, ids, dataset, root)
    ranking = M.build_ranking_model(ids.n_users, ids.n_movies, 8, movie_init=s1.movie_vectors,
                                    init="stage1", seed=seed)
    rating = M.build_rating_model(ids.n_users, ids.n_movies, 8, global_mean=3.5,
                                  movie_init=s1.movie_vectors, seed=seed)
    settings = {"init": "stage1", "dim": 8, "seed": seed, "k": 10,
                "stage1_vectors": artifacts.vectors_sha256(s1.movie_vectors)}
    s2 = stages.Stage2(ranking, rating, pd.DataFrame(), pd.DataFrame(), {}, None, "stage1",
                       {}, settings)
    artifacts.save_stage2(s2, ids, dataset, split="per-item 0.75 seed 1",
                          metrics={"ndcg@10": 0.25}, root=root)
    if sequential:
        from lib import sequential as S
        table = S.by_user(dataset.ratings, ids, 10)
        model = S.build_sequential_model(ids.n_movies, 8, max_len=10, seed=seed)
        fitted = S.Sequential(model, pd.DataFrame({"loss": [0.0]}), {"seed": seed}, table)
        artifacts.save_sequential(fitted, ids, dataset, split="leave-last-1", root=root)
    return ids, s1, s2


# Titles the web tests look for: one that must show as text, one found without its accents.
SCRIPT_TITLE = "<script>window.pwned = 1</script> Ghost (1987)"
ACCENT_TITLE = "Crème Brûlée Conspiracy, The (1995)"


@pytest.fixture(scope="session")
def served_tiny(tmp_path_factory):
    """Serving models (`python -m lib train`) on the tiny synthetic data, two of its titles
    replaced: movie 2 by one holding a script tag, movie 4 by an accented one. Returns
    ``(dataset, models root)``."""
    from lib import data
    from lib.serving import train_serving
    root = tmp_path_factory.mktemp("served")
    ds = data.load_dataset("synthetic-tiny", root / "data")
    movies = (Path(ds.path) / "movies.dat").read_bytes().decode("latin-1").splitlines()
    for i, line in enumerate(movies):
        movie_id, _, genres = line.split("::")
        title = {"2": SCRIPT_TITLE, "4": ACCENT_TITLE}.get(movie_id)
        if title:
            movies[i] = f"{movie_id}::{title}::{genres}"
    write_lines(Path(ds.path) / "movies.dat", movies)
    ds = data.load_dataset("synthetic-tiny", root / "data", generate=False)
    train_serving(ds, root / "models", search_budget=0, user_tower="free", progress=False)
    return ds, root / "models"
