"""Paths, column names, genre names, release facts and the default seed.

Every other module takes its defaults from here; this module imports nothing from `lib`.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJ_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("DATA_DIR", PROJ_ROOT / "data"))
MODELS_DIR = Path(os.environ.get("MODELS_DIR", PROJ_ROOT / "models"))
FIGURES_DIR = Path(os.environ.get("FIGURES_DIR", PROJ_ROOT / "figures"))
RUNS_DIR = Path(os.environ.get("RUNS_DIR", PROJ_ROOT / "runs"))
NOTEBOOKS_DIR = PROJ_ROOT / "notebooks"

SEED = 42
DEFAULT_K = 10
EMBEDDING_DIM = 64  # stage 1 and stage 2 share it, so stage 2 can start from stage 1
# The ranking model's softmax runs over all movies while users x movies is at most this
# (ML-1M: 2.2e7); above it, over a sample of SAMPLED_NEGATIVES movies per batch.
FULL_SOFTMAX_MAX_CELLS = 200_000_000
SAMPLED_NEGATIVES = 1024
# The ranking model's batches: users per step and Adam's learning rate. 256 users make
# 16x fewer steps an epoch than 16 did; on ML-100K (benchmark split, model seeds 42-44)
# test nDCG@10 went from 0.4740 (16 users, 1e-3) to 0.4827. Smaller datasets take smaller
# batches, so that an epoch is at least RANKING_MIN_STEPS updates.
RANKING_BATCH_USERS = 256
RANKING_MIN_STEPS = 4
RANKING_LEARNING_RATE = 3e-3
# Weight decay on each user vector once per (user, positive) pair of the batch (ALS-WR's
# weighted lambda): the same strength at any batch size and number of users.
RANKING_L2_PAIR = 0.1
# Stage 1 and the rating model take `models.LazyAdam` (only the rows of a batch updated)
# when their tables hold more rows than this (movies; users + movies); Keras' Adam, which
# decays every row's moments every step, below it (ML-100K RMSE 0.912 against 0.916 lazy,
# at the same speed up to ML-1M's 9,746 rows; at 10x ML-1M's 97,460 rows a dense rating
# step took 62 ms against 20 ms lazy, for 4,096 ratings).
LAZY_MIN_ROWS = 20_000
# The ranking model's history tower (`models.HistoryEncoder`) drops each movie of a user's
# input with one of these probabilities in training; validation picks one, or the free
# tower. A coarse grid (each candidate is a full training run): on ML-100K's benchmark
# split validation nDCG@10 was 0.169 / 0.173 / 0.174 at 0.5 / 0.7 / 0.9, free 0.173.
HISTORY_DROPOUTS = (0.5, 0.7, 0.9)
# Early stopping waits at least this many updates without a better validation score
# (with 4 updates an epoch, 8 epochs of patience stopped some ML-100K runs in the flat
# start, at half the final nDCG).
PATIENCE_STEPS = 128
# The settings search of stage 2 (`lib.search.coordinate_search`, on the validation part):
# from the defaults above, each other value of one setting at a time, in this order, with
# the rest at the best so far; SEARCH_BUDGET seconds per model bound how many of these runs
# are made (each one stops on patience). A factor of ~3 either side of each default.
RANKING_SEARCH = {"l2_pair": (0.03, 0.3), "learning_rate": (1e-3, 1e-2),
                  "dropout": (0.25, 0.75)}
RATING_SEARCH = {"l2": (0.03, 0.3), "learning_rate": (1e-3, 1e-2)}
SEARCH_BUDGET = 120.0
# Training on several workers (`lib.distributed`): each collective (a step's all-reduce, a
# shared validation score) fails after this many seconds without every worker, so a hung
# worker stops the others. Generous: a worker also waits there while the chief scores
# validation (a worker that dies is noticed within seconds by its closed connection).
COLLECTIVE_TIMEOUT = 600.0
# Per-epoch checkpoints of `python -m lib train` (`lib.checkpoints`), one folder per job
# under RUNS_DIR, removed once the models are written.
CHECKPOINTS_DIR = RUNS_DIR / "checkpoints"
# How the ranking model makes user vectors where a command or notebook does not say
# (`stages.run_stage2`'s user_tower): "auto" lets validation pick.
USER_TOWER = "auto"
# A new movie's stage-2 vector and bias: the means over this many known movies nearest to
# its folded-in stage-1 vector (`recommend.Engine.add_movie`).
NEW_MOVIE_NEIGHBOURS = 10
# The sequential model (`lib.sequential`): each user's latest SEQUENCE_MAX_LEN movies,
# SASRec's 2 blocks and dropout 0.2 (its ML-1M setting; Kang & McAuley read 200 movies,
# the full-quality setting: a softmax over all movies at every position costs ~4x more
# per epoch at 200 than at 50), Adam 1e-3, batches of 128 users, epochs chosen on each
# user's second-to-last movie with SEQUENCE_PATIENCE epochs of patience.
SEQUENCE_MAX_LEN = 50
SEQUENCE_BLOCKS = 2
SEQUENCE_HEADS = 2
SEQUENCE_DROPOUT = 0.2
SEQUENCE_LEARNING_RATE = 1e-3
SEQUENCE_BATCH = 128
SEQUENCE_PATIENCE = 5
SEQUENCE_MAX_EPOCHS = 200
# Above this many movies the sequential model's softmax runs over a sample of
# SAMPLED_NEGATIVES movies per batch (ML-25M: 59,047 movies x 50 positions x 162,541 users
# would be 4.8e11 logits an epoch).
SEQUENCE_FULL_MAX_MOVIES = 20_000
# The most epochs stage 2 may run; early stopping on validation ends every run before.
MAX_EPOCHS = 400
# EASE inverts a dense movies x movies matrix (float64): 20,000 movies is 3.2 GB and a few
# minutes on two cores; above it (ML-25M: 62,423 movies, 31 GB) EASE is skipped.
EASE_MAX_MOVIES = 20_000
# EASE's L2 strength is chosen from these on the validation part (its paper used 500 on
# ML-20M, 1000 on Netflix, 200 on the Million Song Dataset).
EASE_L2S = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)
# Validation during stage-2 training scores the held-out ratings of at most this many
# users (a seeded sample; all of them below it), so an epoch's check stays seconds long.
VALIDATION_MAX_USERS = 10_000
DEFAULT_DATASET = "auto"
# Genres with fewer movies than this are left out of genre-similarity figures and maps
# (ML-100K's "unknown" has 2): their vectors rest on too few movies to mean anything.
MIN_GENRE_MOVIES = 10
# Set (to "1") by the papermill runner: no progress bars, figures inline as PNG only.
HEADLESS_ENV = "MOVIELENS_HEADLESS"

# One schema for every release.
USER_COL = "user_id"
MOVIE_COL = "movie_id"
RATING_COL = "rating"
TIMESTAMP_COL = "timestamp"
TITLE_COL = "title"
YEAR_COL = "year"
GENRES_COL = "genres"
GENDER_COL = "gender"
AGE_COL = "age"
OCCUPATION_COL = "occupation"
ZIP_COL = "zip"
AGE_LABEL_COL = "age_label"
OCCUPATION_LABEL_COL = "occupation_label"

RATING_COLUMNS = [USER_COL, MOVIE_COL, RATING_COL, TIMESTAMP_COL]
MOVIE_COLUMNS = [MOVIE_COL, TITLE_COL, YEAR_COL, GENRES_COL]
USER_COLUMNS = [USER_COL, GENDER_COL, AGE_COL, OCCUPATION_COL, ZIP_COL,
                AGE_LABEL_COL, OCCUPATION_LABEL_COL]

# The 18 genres of MovieLens 1M, in the order of its README.
GENRES_ML1M = [
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
]
# MovieLens 100K adds "unknown" in front; the CSV releases spell one genre differently,
# add IMAX, and mark genre-less movies "(no genres listed)".
GENRES_ML100K = ["unknown"] + GENRES_ML1M
NO_GENRES = "(no genres listed)"

# MovieLens 1M age codes and occupation codes, with the labels of its README.
AGE_LABELS = {1: "Under 18", 18: "18-24", 25: "25-34", 35: "35-44", 45: "45-49",
              50: "50-55", 56: "56+"}
OCCUPATION_LABELS = {
    0: "other or not specified", 1: "academic/educator", 2: "artist",
    3: "clerical/admin", 4: "college/grad student", 5: "customer service",
    6: "doctor/health care", 7: "executive/managerial", 8: "farmer", 9: "homemaker",
    10: "K-12 student", 11: "lawyer", 12: "programmer", 13: "retired",
    14: "sales/marketing", 15: "scientist", 16: "self-employed",
    17: "technician/engineer", 18: "tradesman/craftsman", 19: "unemployed", 20: "writer",
}
GENDERS = ["F", "M"]

# Facts of each release: its files, rating scale, and the counts its README publishes.
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"
RELEASES = {
    "ml-1m": {
        "format": "dat", "ratings": "ratings.dat", "movies": "movies.dat",
        "users": "users.dat", "scale": (1.0, 5.0, 1.0),
        # md5 published by GroupLens beside the zip.
        "md5": "c4d9eecfca2ab87c1945afe126590906",
        "counts": {"ratings": 1_000_209, "users": 6_040, "movies": 3_883,
                   "rated_movies": 3_706},
    },
    "ml-100k": {
        "format": "100k", "ratings": "u.data", "movies": "u.item", "users": "u.user",
        "scale": (1.0, 5.0, 1.0), "md5": None,
        "counts": {"ratings": 100_000, "users": 943, "movies": 1_682,
                   "rated_movies": 1_682},
    },
    "ml-latest-small": {
        "format": "csv", "ratings": "ratings.csv", "movies": "movies.csv", "users": None,
        "scale": (0.5, 5.0, 0.5), "md5": None,
        # A snapshot: the current one differs; a difference is only a warning.
        "counts": {"ratings": 100_836, "users": 610, "movies": 9_742},
    },
    "ml-25m": {
        "format": "csv", "ratings": "ratings.csv", "movies": "movies.csv", "users": None,
        "scale": (0.5, 5.0, 0.5), "md5": None,
        "counts": {"ratings": 25_000_095, "users": 162_541, "movies": 62_423},
    },
    "ml-32m": {
        "format": "csv", "ratings": "ratings.csv", "movies": "movies.csv", "users": None,
        "scale": (0.5, 5.0, 0.5), "md5": None,
        "counts": {"ratings": 32_000_204, "users": 200_948, "movies": 87_585},
    },
}
# Built-in synthetic data (name -> size): `synthetic` has ML-1M's counts and format,
# `synthetic-tiny` the same format for tests and quick looks, `synthetic-25m` ML-25M's
# counts and CSV format, for the scale benchmark.
SYNTHETIC_SIZES = {"synthetic": "ml-1m", "synthetic-tiny": "tiny", "synthetic-25m": "ml-25m"}
# The release whose file format each size is written in.
SYNTHETIC_FORMATS = {"ml-1m": "ml-1m", "tiny": "ml-1m", "ml-25m": "ml-25m"}
DATASETS = ["auto", *RELEASES, *SYNTHETIC_SIZES]


# Published results on ML-100K (Microsoft Recommenders benchmark: 75/25 per item, seed 42,
# k = 10, training items removed, every test rating relevant).
PUBLISHED_ML100K = {
    "BiVAE": {"map@10": 0.146, "ndcg@10": 0.475, "precision@10": 0.412, "recall@10": 0.219},
    "BPR": {"map@10": 0.132, "ndcg@10": 0.442, "precision@10": 0.388, "recall@10": 0.213},
    "LightGCN": {"map@10": 0.089, "ndcg@10": 0.420, "precision@10": 0.380, "recall@10": 0.144},
    "NCF": {"map@10": 0.108, "ndcg@10": 0.396, "precision@10": 0.347, "recall@10": 0.181},
    "SAR": {"map@10": 0.111, "ndcg@10": 0.382, "precision@10": 0.331, "recall@10": 0.176},
    "SVD": {"map@10": 0.013, "ndcg@10": 0.096, "precision@10": 0.091, "recall@10": 0.033,
            "rmse": 0.939},
}

# Published results on ML-1M with chronological leave-last-out and full ranking (every
# movie the user has not rated): SASRec trained with a softmax over all movies ("SASRec+")
# and with one negative per position, as reported by Klenitskiy & Vasilev (RecSys 2023).
PUBLISHED_SASREC_ML1M = {
    "SASRec+ (full softmax)": {"hit_rate@10": 0.315, "ndcg@10": 0.182},
    "SASRec (one negative per position)": {"hit_rate@10": 0.250, "ndcg@10": 0.134},
}


def headless() -> bool:
    """True when the notebooks run under the papermill runner (or nbval), not a person."""
    return os.environ.get(HEADLESS_ENV) == "1"


def shown(path: Path | str) -> str:
    """A path as people should see it: relative to the project when inside it."""
    path = Path(path).resolve()
    try:
        return path.relative_to(PROJ_ROOT).as_posix()
    except ValueError:
        return str(path)


def release_info(name: str) -> dict:
    """Facts of a release by name; a synthetic dataset has those of the release whose
    format it is written in, without published counts."""
    if name in SYNTHETIC_SIZES:
        fmt = SYNTHETIC_FORMATS[SYNTHETIC_SIZES[name]]
        return {**RELEASES[fmt], "md5": None, "counts": None}
    if name not in RELEASES:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return RELEASES[name]
