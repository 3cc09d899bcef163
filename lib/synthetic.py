"""A built-in dataset in the exact MovieLens 1M format, with planted structure.

MovieLens cannot be downloaded everywhere (and never in CI), so the project carries a
generator. Its files match ML-1M byte for byte in format: ``::`` separators, latin-1 with
accented titles, movie ids with gaps, some movies nobody rated, all 18 genres, every age
and occupation code, timestamps from 2000 to 2003. Its ratings come from a known model, so
that what the embeddings learn can be checked against the truth written beside the files
(``truth.npz``):

- each movie has 1-3 genres (ML-1M's genre frequencies) and a latent vector near the mean
  of its genres' vectors;
- each user prefers 2-3 genres (tilted by gender and age) and has a taste vector near the
  mean of those genres' vectors;
- which movies a user rates follows a long-tailed popularity times their affinity;
- the star rating follows affinity, movie quality and user bias, cut at ML-1M's rating
  frequencies;
- tastes drift: each user's ratings come in an order that moves from one of their
  favourite genres to another (``drift_from`` to ``drift_to``), so the next movie is
  better told by the latest ones than by all of them (what a sequential model can learn
  and a model of the same movies without their order cannot).

Same seed, same bytes.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from lib import config as C

SIZES = {
    # ML-1M's own counts: 3,883 movies with ids up to 3,952, of which 3,706 rated.
    "ml-1m": {"users": 6_040, "movies": 3_883, "max_movie_id": 3_952, "rated": 3_706,
              "ratings": 1_000_209},
    "tiny": {"users": 300, "movies": 400, "max_movie_id": 420, "rated": 380,
             "ratings": 24_000},
    # ML-25M's counts (its README), written in its CSV format.
    "ml-25m": {"users": 162_541, "movies": 62_423, "max_movie_id": 209_171, "rated": 59_047,
               "ratings": 25_000_095},
}
FORMATS = C.SYNTHETIC_FORMATS
MIN_RATINGS_PER_USER = 20  # as in ML-1M and ML-25M
# First and last rating of each format's release: ML-1M 2000-04-25 to 2003-02-28,
# ML-25M 1995-01-09 to 2019-11-21.
TIME_SPANS = {"ml-1m": (956_703_932, 1_046_454_590), "ml-25m": (789_652_009, 1_574_327_703)}
LATENT_DIM = 8
# Number of ML-1M movies in each genre of `config.GENRES_ML1M`.
GENRE_COUNTS = np.array([503, 283, 105, 251, 1200, 211, 127, 1603, 68, 44, 343, 114, 106,
                         471, 276, 492, 143, 68], dtype=float)
# ML-1M's share of each star, 1 to 5.
STAR_SHARES = np.array([0.0562, 0.1075, 0.2612, 0.3489, 0.2263])
# Half stars 0.5 to 5 for the CSV format, shares close to ML-25M's (4 the most common,
# then 3, 5 and 3.5).
HALF_STAR_SHARES = np.array([0.0157, 0.0311, 0.0160, 0.0663, 0.0505, 0.1960, 0.1263,
                             0.2659, 0.0877, 0.1445])
# The CSV releases spell one genre "Children", add IMAX, and list some movies with no genre.
IMAX_COUNT = 195.0
NO_GENRE_SHARE = 0.05
# Above this many users x movies, who rated what is drawn from candidates (`_draw_sampled`)
# instead of from every movie (`_draw_exact`): ML-25M is 1e10 cells.
EXACT_DRAW_MAX_CELLS = 1e9
# Raised when a change of the generator changes its bytes: a folder written by another
# version is written again (`is_current`).
VERSION = 2
# Spread of the noise added to the drift key of each rating (the key itself spans about
# 4 between the two genres' movies): the order is strong, not strict.
DRIFT_NOISE = 1.0
AGE_SHARES = np.array([222, 1103, 2096, 1193, 550, 496, 380], dtype=float)

_WORDS = ["Night", "River", "Summer", "Stranger", "Kingdom", "Garden", "Heart", "Storm",
          "Shadow", "City", "Dream", "Journey", "Secret", "Island", "Fire", "Winter",
          "Road", "Mirror", "Harbor", "Ghost", "Moon", "Desert", "Empire", "Song",
          "Letter", "Train", "Bridge", "Angel", "Wolf", "Silence", "Café", "Señor",
          "Amélie", "Noël", "Misérables", "Björn", "Garçon", "Élan", "Müller", "Ægir"]
_ADJECTIVES = ["Last", "Lost", "Golden", "Silent", "Wild", "Little", "Broken", "Hidden",
               "Long", "Dark", "Sweet", "Crazy", "Blue", "Eternal", "Forgotten", "Brave"]


def _counts(cfg: dict, scale: float) -> dict:
    if scale == 1:
        return dict(cfg)
    movies = int(round(cfg["movies"] * np.sqrt(scale)))
    return {"users": int(round(cfg["users"] * scale)), "movies": movies,
            "max_movie_id": int(round(cfg["max_movie_id"] * np.sqrt(scale))),
            "rated": int(round(cfg["rated"] * np.sqrt(scale))),
            "ratings": int(round(cfg["ratings"] * scale))}


def _per_user_counts(rng, n_users: int, total: int, cap: int) -> np.ndarray:
    """At least 20 ratings each, long-tailed, summing exactly to `total`."""
    extra_total = total - MIN_RATINGS_PER_USER * n_users
    if extra_total < 0 or total > n_users * cap:
        raise ValueError("cannot fit that many ratings to that many users and movies")
    weights = rng.lognormal(mean=0.0, sigma=1.1, size=n_users) * (rng.random(n_users) < 0.9)
    extra = np.zeros(n_users, dtype=np.int64)
    room = np.full(n_users, cap - MIN_RATINGS_PER_USER, dtype=np.int64)
    remaining = extra_total
    while remaining > 0:
        open_ = room > extra
        share = weights * open_ / (weights * open_).sum() * remaining
        add = np.minimum(np.floor(share).astype(np.int64), room - extra)
        if add.sum() == 0:  # hand out the last few one at a time, heaviest first
            order = np.argsort(-(weights * open_), kind="stable")[:remaining]
            add = np.zeros_like(extra)
            add[order] = 1
        extra += add
        remaining = extra_total - int(extra.sum())
    return MIN_RATINGS_PER_USER + extra


def _pick_genres(rng, log_weights: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Boolean (n_items, n_genres): k[i] distinct genres for item i, drawn by weight."""
    log_weights = np.broadcast_to(log_weights, (len(k), log_weights.shape[-1]))
    keys = log_weights + rng.gumbel(size=log_weights.shape)
    order = np.argsort(-keys, axis=1)[:, :k.max()]
    chosen = np.zeros(log_weights.shape, dtype=bool)
    chosen[np.repeat(np.arange(len(k)), k), order[np.arange(k.max())[None, :] < k[:, None]]] = True
    return chosen


def _titles(rng, n: int, years: np.ndarray) -> list[str]:
    titles = []
    for i in range(n):
        a, b = rng.choice(_WORDS, 2, replace=False)
        pattern = rng.integers(0, 6)
        if pattern == 0:
            t = f"{rng.choice(_ADJECTIVES)} {a}, The"
        elif pattern == 1:
            t = f"{a} of the {b}"
        elif pattern == 2:
            t = f"{a}: The {rng.choice(_ADJECTIVES)} {b}"
        elif pattern == 3:
            t = f"{rng.choice(_ADJECTIVES)} {a}"
        elif pattern == 4:
            t = f"{a} and {b}"
        else:
            t = f"{a} {b} {rng.integers(2, 4) * 'I'}"
        titles.append(f"{t} ({years[i]})")
    return titles


def _genre_names(fmt: str) -> list[str]:
    if fmt == "ml-1m":
        return list(C.GENRES_ML1M)
    return [("Children" if g == "Children's" else g) for g in C.GENRES_ML1M] + ["IMAX"]


def _draw_exact(rng, log_pop: np.ndarray, affinity_rows, users: np.ndarray,
                per_user: np.ndarray):
    """Each user's movies: the top `per_user[u]` of ``log_pop + 2 affinity + Gumbel`` over
    every movie (sampling without replacement in proportion to popularity x
    ``exp(2 affinity)``). Returns (user, movie, affinity) per rating, by user."""
    users_out, movies_out, affinity_out = [], [], []
    n_movies = len(log_pop)
    chunk = max(1, int(4e6 // n_movies))
    for start in range(0, len(users), chunk):
        rows = users[start:start + chunk]
        affinity = affinity_rows(rows)
        keys = log_pop[None, :] + 2.0 * affinity + rng.gumbel(size=affinity.shape)
        counts = per_user[rows]
        k_max = int(counts.max())
        top = np.argpartition(-keys, k_max - 1, axis=1)[:, :k_max]
        top_keys = np.take_along_axis(keys, top, axis=1)
        top = np.take_along_axis(top, np.argsort(-top_keys, axis=1, kind="stable"), axis=1)
        keep = np.arange(k_max)[None, :] < counts[:, None]
        users_out.append(np.repeat(rows, counts))
        movies_out.append(top[keep])
        affinity_out.append(np.take_along_axis(affinity, top, axis=1)[keep])
    return (np.concatenate(users_out), np.concatenate(movies_out),
            np.concatenate(affinity_out))


def _draw_sampled(rng, log_pop: np.ndarray, affinity_rows, affinity_pairs,
                  per_user: np.ndarray):
    """`_draw_exact` for catalogues too large to score every movie for every user.

    Each user draws candidates from a flattened popularity (``popularity ** 0.5``), four
    times as many as they will rate plus 50; the Gumbel top-k runs over the distinct
    candidates with keys corrected by the proposal (``keys - log proposal``), which
    approximates the exact draw. Users with too few distinct candidates take the exact one.
    """
    rated = np.flatnonzero(np.isfinite(log_pop))
    log_prop = 0.5 * log_pop[rated]
    prop = np.exp(log_prop - log_prop.max())
    prop /= prop.sum()
    log_prop = np.log(prop)
    n_users, n_movies = len(per_user), len(log_pop)
    users_out, movies_out, affinity_out, short = [], [], [], []
    n_cand = 4 * per_user + 50
    bounds = np.searchsorted(np.cumsum(n_cand), np.arange(4e6, n_cand.sum() + 4e6, 4e6))
    start = 0
    for stop in np.unique(np.minimum(bounds + 1, n_users)):
        users = np.arange(start, stop)
        start = stop
        counts = per_user[users]
        cand_user = np.repeat(users, n_cand[users])
        pick = rng.choice(len(rated), size=len(cand_user), p=prop)
        cand = rated[pick]
        aff = affinity_pairs(cand_user, cand)
        keys = log_pop[cand] + 2.0 * aff - log_prop[pick] + rng.gumbel(size=len(cand))
        # Distinct (user, movie) pairs, each with its highest key; then by user, key down.
        code = cand_user.astype(np.int64) * n_movies + cand
        order = np.lexsort((-keys, code))
        sel = order[np.r_[True, code[order][1:] != code[order][:-1]]]
        sel = sel[np.lexsort((-keys[sel], cand_user[sel]))]
        su = cand_user[sel]
        begins = np.searchsorted(su, users)
        distinct = np.diff(np.r_[begins, len(su)])
        enough = distinct >= counts
        rank = np.arange(len(su)) - begins[su - users[0]]
        take = sel[(rank < per_user[su]) & enough[su - users[0]]]
        users_out.append(cand_user[take])
        movies_out.append(cand[take])
        affinity_out.append(aff[take])
        short.extend(users[~enough])
    if short:
        u, m, a = _draw_exact(rng, log_pop, affinity_rows, np.array(short), per_user)
        users_out.append(u)
        movies_out.append(m)
        affinity_out.append(a)
    user_idx = np.concatenate(users_out)
    order = np.argsort(user_idx, kind="stable")
    return (user_idx[order], np.concatenate(movies_out)[order],
            np.concatenate(affinity_out)[order])


def generate(size: str = "ml-1m", *, scale: float = 1.0, seed: int = C.SEED) -> dict:
    """Make the synthetic release in memory.

    Args:
        size: ``"ml-1m"`` for MovieLens 1M's exact counts, ``"ml-25m"`` for MovieLens
            25M's (in its CSV format: half stars, no users file, "Children", IMAX, some
            movies with no genres listed), ``"tiny"`` for tests.
        scale: multiplies users and ratings (movies by its square root), for benchmarks.
        seed: fixes every draw.

    Returns:
        A dict of DataFrames ``ratings``, ``movies``, ``users`` (the release's columns;
        ``users`` is None for the CSV format) and ``truth`` (arrays of the planted
        structure, as saved in ``truth.npz``).
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}")
    fmt = FORMATS[size]
    n = _counts(SIZES[size], scale)
    rng = np.random.default_rng(seed)
    names = _genre_names(fmt)
    n_genres = len(names)
    genre_counts = GENRE_COUNTS if fmt == "ml-1m" else np.append(GENRE_COUNTS, IMAX_COUNT)

    # Movies: ids with gaps, 1-3 genres each (every genre used), latent vectors.
    movie_ids = np.sort(rng.choice(np.arange(1, n["max_movie_id"] + 1), n["movies"],
                                   replace=False))
    k = rng.choice([1, 2, 3], size=n["movies"], p=[0.5, 0.35, 0.15])
    movie_genres = _pick_genres(rng, np.log(genre_counts), k)
    movie_genres[np.arange(n_genres), :] = np.eye(n_genres, dtype=bool)  # all appear
    genre_vectors = rng.normal(size=(n_genres, LATENT_DIM))
    movie_latent = (movie_genres @ genre_vectors) / movie_genres.sum(1, keepdims=True)
    movie_latent += 0.5 * rng.normal(size=movie_latent.shape)
    quality = rng.normal(0, 0.5, size=n["movies"])
    last_year = 2000 if fmt == "ml-1m" else 2019
    years = np.clip(np.round(last_year - rng.exponential(12, size=n["movies"])), 1919,
                    last_year)
    years = years.astype(int)

    # Which movies anyone rated, and a long-tailed popularity among them.
    rated = np.sort(rng.choice(n["movies"], n["rated"], replace=False))
    popularity = np.zeros(n["movies"])
    popularity[rated] = (rng.permutation(n["rated"]) + 10.0) ** -1.6

    # Users: demographics, favourite genres tilted by them, taste vectors.
    gender = np.where(rng.random(n["users"]) < 0.28, "F", "M")
    age_codes = np.array(sorted(C.AGE_LABELS))
    age = age_codes[rng.choice(len(age_codes), n["users"], p=AGE_SHARES / AGE_SHARES.sum())]
    age[:len(age_codes)] = age_codes  # every code appears
    occupation = rng.integers(0, len(C.OCCUPATION_LABELS), size=n["users"])
    occupation[:len(C.OCCUPATION_LABELS)] = np.arange(len(C.OCCUPATION_LABELS))
    g = {name: i for i, name in enumerate(C.GENRES_ML1M)}  # the first 18, same order
    tilt = np.zeros((n["users"], n_genres))
    female = gender == "F"
    for name in ("Romance", "Drama", "Musical"):
        tilt[female, g[name]] += 1.0
    for name in ("Action", "Sci-Fi", "War", "Western"):
        tilt[~female, g[name]] += 0.7
    for name in ("Animation", "Children's", "Comedy"):
        tilt[age <= 18, g[name]] += 1.0
    for name in ("Film-Noir", "Documentary", "War"):
        tilt[age >= 50, g[name]] += 1.0
    fav_k = rng.choice([2, 3], size=n["users"])
    favourite = _pick_genres(rng, 0.5 * np.log(genre_counts) + tilt, fav_k)
    taste = (favourite @ genre_vectors) / fav_k[:, None]
    taste += 0.5 * rng.normal(size=taste.shape)
    user_bias = rng.normal(0, 0.4, size=n["users"])

    # Who rated what: popularity x affinity, without replacement (Gumbel top-k per user).
    per_user = _per_user_counts(rng, n["users"], n["ratings"], int(0.6 * n["rated"]))
    log_pop = np.full(n["movies"], -np.inf)
    log_pop[rated] = np.log(popularity[rated])
    movie_genres_f = movie_genres.astype(np.float32)
    genre_bits = (movie_genres.astype(np.int64) << np.arange(n_genres)).sum(axis=1)
    favourite_bits = (favourite.astype(np.int64) << np.arange(n_genres)).sum(axis=1)

    def affinity_rows(users):  # (len(users), movies)
        return ((taste[users] @ movie_latent.T) / LATENT_DIM
                + (favourite[users].astype(np.float32) @ movie_genres_f.T > 0) * 1.0)

    def affinity_pairs(users, movies):  # one value per (user, movie) pair
        dot = np.einsum("ij,ij->i", taste[users], movie_latent[movies]) / LATENT_DIM
        return dot + ((favourite_bits[users] & genre_bits[movies]) != 0)

    if n["users"] * n["movies"] <= EXACT_DRAW_MAX_CELLS:
        user_idx, movie_idx, affinity = _draw_exact(rng, log_pop, affinity_rows,
                                                    np.arange(n["users"]), per_user)
    else:
        user_idx, movie_idx, affinity = _draw_sampled(rng, log_pop, affinity_rows,
                                                      affinity_pairs, per_user)

    # Every rated movie gets at least one rating: give each one nobody drew to a user in
    # place of one of that user's movies that others rated too.
    rating_count = np.bincount(movie_idx, minlength=n["movies"])
    for m in rated[rating_count[rated] == 0]:
        while True:
            j = int(rng.integers(len(movie_idx)))
            if rating_count[movie_idx[j]] > 1:
                break
        rating_count[movie_idx[j]] -= 1
        movie_idx[j] = m
        rating_count[m] += 1
        affinity[j] = (taste[user_idx[j]] @ movie_latent[m]) / LATENT_DIM + \
            float((favourite[user_idx[j]] & movie_genres[m]).any())

    # Stars: affinity, quality and bias plus noise, cut at the release's star frequencies.
    z = affinity + quality[movie_idx] + user_bias[user_idx] + rng.normal(0, 0.7, len(affinity))
    shares = STAR_SHARES if fmt == "ml-1m" else HALF_STAR_SHARES
    cuts = np.quantile(z, np.cumsum(shares)[:-1])
    stars = 1 + np.searchsorted(cuts, z)
    if fmt != "ml-1m":
        stars = stars / 2.0

    # Timestamps: each user starts somewhere in the release's span (most near its start)
    # and rates over the following weeks.
    first, last = TIME_SPANS[fmt]
    start_time = first + (rng.beta(0.6, 2.0, size=n["users"]) * (last - first)).astype(np.int64)
    times = start_time[user_idx] + rng.exponential(30 * 86_400, size=len(user_idx)).astype(np.int64)
    times = np.minimum(times, last)
    drift_from, drift_to = _drift(seed, favourite)
    times = _drift_times(seed, user_idx, times, movie_latent[movie_idx],
                         genre_vectors[drift_to] - genre_vectors[drift_from])

    order = np.lexsort((times, user_idx))
    user_ids = np.arange(1, n["users"] + 1)
    ratings = pd.DataFrame({
        C.USER_COL: user_ids[user_idx[order]], C.MOVIE_COL: movie_ids[movie_idx[order]],
        C.RATING_COL: stars[order], C.TIMESTAMP_COL: times[order]})
    genre_names = np.array(names, dtype=object)
    titles = _titles(rng, n["movies"], years)
    listed = movie_genres
    if fmt != "ml-1m":
        # Some movies have no genres listed (their planted genres still shape the ratings).
        listed = movie_genres.copy()
        hidden = rng.random(n["movies"]) < NO_GENRE_SHARE
        hidden[:n_genres] = False  # keep every genre listed at least once
        listed[hidden] = False
    movies = pd.DataFrame({
        C.MOVIE_COL: movie_ids, C.TITLE_COL: titles,
        C.GENRES_COL: ["|".join(genre_names[row]) or C.NO_GENRES for row in listed]})
    users = None
    if fmt == "ml-1m":
        zips = np.char.zfill(rng.integers(0, 100_000, n["users"]).astype(str), 5)
        long_zip = rng.random(n["users"]) < 0.01
        zips = np.where(long_zip, np.char.add(np.char.add(zips, "-"), np.char.zfill(
            rng.integers(0, 10_000, n["users"]).astype(str), 4)), zips)
        users = pd.DataFrame({C.USER_COL: user_ids, C.GENDER_COL: gender, C.AGE_COL: age,
                              C.OCCUPATION_COL: occupation, C.ZIP_COL: zips})
    truth = {"user_ids": user_ids, "movie_ids": movie_ids, "genres": np.array(names),
             "favourite_genres": favourite, "user_taste": taste, "user_bias": user_bias,
             "movie_genres": movie_genres, "movie_latent": movie_latent,
             "movie_quality": quality, "genre_vectors": genre_vectors,
             "popularity": popularity, "drift_from": drift_from, "drift_to": drift_to,
             "version": np.array(VERSION)}
    return {"ratings": ratings, "movies": movies, "users": users, "truth": truth}


def _drift(seed: int, favourite: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each user's drift: from one favourite genre to another, both drawn at random."""
    rng = np.random.default_rng([seed, 1])  # its own stream: the other draws keep their bytes
    keys = np.where(favourite, rng.random(favourite.shape), -1.0)
    ranked = np.argsort(-keys, axis=1)
    return ranked[:, 0], ranked[:, 1]


def _drift_times(seed: int, user_idx: np.ndarray, times: np.ndarray, latent: np.ndarray,
                 directions: np.ndarray) -> np.ndarray:
    """The same timestamps per user, handed out in the order of a drift key: the rated
    movie's latent vector along the user's drift direction, plus noise."""
    rng = np.random.default_rng([seed, 2])
    unit = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    key = np.einsum("ij,ij->i", latent, unit[user_idx])
    key += rng.normal(0, DRIFT_NOISE, len(key))
    by_key = np.lexsort((key, user_idx))
    by_time = np.lexsort((times, user_idx))
    out = np.empty_like(times)
    out[by_key] = times[by_time]
    return out


def _dat(df: pd.DataFrame) -> bytes:
    """Rows joined by '::' as ML-1M writes them, encoded latin-1."""
    buf = io.StringIO()
    df.to_csv(buf, sep="\x1f", header=False, index=False, lineterminator="\n")
    return buf.getvalue().replace("\x1f", "::").encode("latin-1")


def _csv(df: pd.DataFrame, header: list[str]) -> bytes:
    """Rows as the CSV releases write them: a header, commas, fields with commas quoted,
    UTF-8."""
    buf = io.StringIO()
    df.to_csv(buf, header=header, index=False, lineterminator="\n")
    return buf.getvalue().encode("utf-8")


def _files(data: dict, fmt: str) -> dict[str, bytes]:
    if fmt == "ml-1m":
        return {"movies.dat": _dat(data["movies"]), "users.dat": _dat(data["users"]),
                "ratings.dat": _dat(data["ratings"])}
    ratings = data["ratings"]
    return {"movies.csv": _csv(data["movies"], ["movieId", "title", "genres"]),
            "ratings.csv": b"".join(
                _csv(ratings.iloc[i:i + 2_000_000], ["userId", "movieId", "rating",
                                                     "timestamp"] if i == 0 else False)
                for i in range(0, len(ratings), 2_000_000))}


def write_synthetic(out: Path | str, size: str = "ml-1m", *, scale: float = 1.0,
                    seed: int = C.SEED) -> Path:
    """Write the release's files and truth.npz into `out`: ratings.dat, movies.dat,
    users.dat (ML-1M format) or ratings.csv, movies.csv (ML-25M format, size "ml-25m").

    The files are written under temporary names and renamed at the end, ratings last, so
    an interrupted run never leaves a folder that looks complete.

    Returns:
        The folder written.
    """
    out = Path(out)
    if not scale > 0:
        raise ValueError(f"scale must be above 0, got {scale}")
    fmt = FORMATS.get(size)
    data = generate(size, scale=scale, seed=seed)  # before any folder is made
    parts = _files(data, fmt)
    out.mkdir(parents=True, exist_ok=True)
    for name, payload in parts.items():
        (out / f".{name}.part").write_bytes(payload)
    with open(out / ".truth.npz.part", "wb") as fh:
        np.savez_compressed(fh, **data["truth"])
    (out / "README.txt").write_text(
        f"Synthetic data in the MovieLens {fmt[3:].upper()} format, made by `python -m lib "
        f"data synthetic` (size={size}, scale={scale}, seed={seed}).\nIt is not MovieLens: "
        "the ratings come from a planted model whose truth is in truth.npz.\n",
        encoding="utf-8")
    ratings = C.RELEASES[fmt]["ratings"]
    for name in ["truth.npz", *(p for p in parts if p != ratings), ratings]:
        (out / f".{name}.part").replace(out / name)
    return out


def is_current(folder: Path | str) -> bool:
    """Whether `folder` holds a release written by this version of the generator."""
    try:
        with np.load(Path(folder) / "truth.npz", allow_pickle=False) as npz:
            return "version" in npz.files and int(npz["version"]) == VERSION
    except (OSError, ValueError):
        return False


def load_truth(folder: Path | str) -> dict[str, np.ndarray]:
    """The planted structure written beside a synthetic dataset."""
    with np.load(Path(folder) / "truth.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
