"""The recommendation engine on trained vectors: top-k for a user, similar movies, a new
user from a few liked movies, a new movie from its genres, and explanations.

Scores come from the stage-2 ranking model: ``score(user, movie) = u . v_movie + b_movie``.
Everything crosses between MovieLens ids and rows through the id map.
"""
from __future__ import annotations

import functools
import logging
import threading
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lib import config as C
from lib import evaluation as ev

log = logging.getLogger(__name__)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def similar_movies(vectors: np.ndarray, ids, movies: pd.DataFrame, movie_id: int,
                   k: int = C.DEFAULT_K) -> pd.DataFrame:
    """The k movies whose vectors are closest (cosine) to `movie_id`'s, itself excluded.

    Raises:
        UnknownIdError: `movie_id` is not in the id map.
    """
    top, sims = _nearest(_unit(vectors), ids.movie_rows(movie_id), k)
    out = movies.set_index(C.MOVIE_COL).loc[ids.movie_ids(top), [C.TITLE_COL, C.GENRES_COL]]
    out.insert(0, "similarity", sims.round(3))
    return out.reset_index()


def _nearest(unit: np.ndarray, row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the k unit vectors closest to row `row` (itself excluded, ties to the
    lower row) and their cosines."""
    sims = unit @ unit[row]
    sims[row] = -np.inf
    top = ev.top_k(sims[None, :], min(k, len(sims) - 1))[0]
    return top, sims[top]


def demographic_vectors(tables: dict, codes: dict[str, np.ndarray]) -> np.ndarray:
    """User vectors from demographics alone, as the ranking model composes them: the mean
    learnt user vector plus, per demographic input, the embedding row of each user's code
    (`codes[name]`, one per user; an input missing from `codes` adds its mean row).
    `tables` is `models.side_tables`."""
    n = len(next(iter(codes.values()))) if codes else 1
    out = np.repeat(tables["user_mean"][None].astype(np.float32), n, axis=0)
    for name, part in tables["features"].items():
        out += part["vectors"][codes[name]] if name in codes else part["mean"]
    return out


def fold_in_user(movie_vectors: np.ndarray, movie_bias: np.ndarray, liked_rows: np.ndarray,
                 start: np.ndarray, *, l2: float = 1.0, steps: int = 50,
                 tol: float = 1e-6) -> np.ndarray:
    """A vector for a user the model has never seen, from movies they like, without
    retraining: the softmax objective of training, maximised over the user vector alone
    (movie table fixed), from `start` (the mean user, or their demographic vector), with
    an L2 pull of strength `l2` towards `start`.

    The objective is concave, so Newton's method with a backtracking line search finds
    its maximum in a few steps (at most `steps`; it stops when a step moves the vector by
    less than `tol`). Each step is a handful of matrix products, so the time goes to
    BLAS with the GIL released: under 8 concurrent web requests 200 steps of Adam spent
    most of their time waiting for the GIL between small numpy calls (p50 574 ms at
    ML-1M size, against 29 ms alone).
    """
    liked_rows = np.asarray(liked_rows, np.int64)
    n = len(liked_rows)
    if n < 1:
        raise ValueError("give at least one liked movie")
    if not l2 > 0:
        raise ValueError(f"l2 must be > 0 (the pull that keeps the problem bounded), not {l2}")
    start = np.asarray(start, np.float64)
    # float64 (no copy when the engine passes its float64 tables)
    table, bias = np.asarray(movie_vectors, np.float64), np.asarray(movie_bias, np.float64)
    table32 = np.asarray(movie_vectors, np.float32)
    target = table[liked_rows].sum(axis=0)
    liked_bias = bias[liked_rows].sum()

    def value(u, logits):
        top = logits.max()
        lse = top + np.log(np.exp(logits - top).sum())
        return (target @ u + liked_bias - n * lse) / n - l2 * np.sum((u - start) ** 2) / (2 * n)

    u = start.copy()
    logits = table @ u + bias
    now = value(u, logits)
    for _ in range(steps):
        p = np.exp(logits - logits.max())
        p /= p.sum()
        mean = p @ table
        grad = (target - n * mean) / n - l2 * (u - start) / n
        # minus the Hessian: the covariance of the movie vectors under p, plus the pull;
        # in float32 (half the time of the step's one big product): it only steers the
        # step, the float64 gradient decides where the steps stop.
        cov = ((table32.T * p.astype(np.float32)) @ table32).astype(np.float64) \
            - np.outer(mean, mean)
        step = np.linalg.solve(cov + (l2 / n) * np.eye(len(u)), grad)
        scale = 1.0
        while True:  # backtracking: a step is taken only when it does not lower f
            trial = u + scale * step
            trial_logits = table @ trial + bias
            trial_value = value(trial, trial_logits)
            if trial_value >= now or scale < 1e-4:
                break
            scale /= 2
        if trial_value < now:  # no step up found: u is the maximum to rounding
            break
        moved = np.linalg.norm(trial - u)
        u, logits, now = trial, trial_logits, trial_value
        if moved < tol * (1 + np.linalg.norm(u)):
            break
    return u.astype(np.float32)


def fold_in_movie(genre_vectors: np.ndarray, genre_rows: np.ndarray, *, l2: float = 0.01,
                  steps: int = 300, learning_rate: float = 0.5) -> np.ndarray:
    """A stage-1 vector for a new movie from its genres: the stage-1 objective (sigmoid
    of movie . genre, its genres against the others) over the new movie's vector alone."""
    y = np.zeros(len(genre_vectors))
    y[genre_rows] = 1.0
    v = np.zeros(genre_vectors.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(genre_vectors @ v)))
        v += learning_rate * (genre_vectors.T @ (y - p) / len(y) - l2 * v)
    return v.astype(np.float32)


class Engine:
    """Top-k, similar movies, cold start and explanations on one dataset's saved models.

    Args:
        user_vectors, movie_vectors, movie_bias: the stage-2 ranking model's tables.
        ids: the id map saved with the models.
        movies: the movies frame (titles, genres).
        rated: users x movies matrix of what each user rated (never recommended back).
        stage1_movies, stage1_genres: stage-1 vectors, for new movies from genres.
        history: for a history tower, ``{"vectors": its movie table, "base": the mean
            user's own part}``: a new user's vector is then computed as for anyone.
    """

    def __init__(self, user_vectors, movie_vectors, movie_bias, ids, movies: pd.DataFrame,
                 rated: sp.csr_matrix, stage1_movies=None, stage1_genres=None,
                 history: dict | None = None, demographics: dict | None = None):
        self.user_vectors, self.movie_vectors = user_vectors, movie_vectors
        self.movie_bias, self.ids, self.rated = movie_bias, ids, rated
        self.movies = movies.set_index(C.MOVIE_COL)
        self.stage1_movies, self.stage1_genres = stage1_movies, stage1_genres
        self.history = history
        self.demographics = demographics  # `models.side_tables`, or None
        self.new_movies: dict[int, dict] = {}
        self.manifest: dict | None = None
        self.serving = False
        self.ratings: pd.DataFrame | None = None  # the stars, where the dataset has them
        self.sequential = None  # a `sequential.Sequential` over the same ids, or None
        self._sequential_where: tuple | None = None  # (dataset, root, serving) to load it
        self._sequential_lock = threading.Lock()

    @classmethod
    def load(cls, dataset, root: Path | str | None = None, *,
             serving: bool | None = None) -> Engine:
        """From the models saved for `dataset` (``models/<dataset>/``, or under `root`),
        checked against its files; every rating of `dataset` counts as already seen (saved
        with the models, valid because the ratings file's checksum matches). Reads numpy
        arrays only: no TensorFlow. `dataset` may be a `data.Catalogue`.

        `serving`: the models `python -m lib train` wrote from every rating (True), the
        notebooks' models trained on a split (False), or None: the serving models when
        they exist. `models_used()` says which.

        Raises:
            ArtifactError: no models, incomplete ones, or models trained on other data.
        """
        from lib import artifacts
        if serving is None:
            serving = artifacts.has_serving(dataset.name, root)
        t = artifacts.load_tables(dataset, root, serving=serving)
        engine = cls(t["user_vectors"], t["movie_vectors"], t["movie_bias"], t["ids"],
                     dataset.movies, t["seen"], t["stage1_movies"], t["stage1_genres"],
                     t["history"], t["demographics"])
        engine.manifest, engine.serving = t["manifest"], serving
        engine.ratings = getattr(dataset, "ratings", None)
        if artifacts.has_sequential(dataset.name, root, serving=serving):
            engine._sequential_where = (dataset, root, serving)  # loaded on first use
        return engine

    def models_used(self) -> str:
        """Which models answer: the serving ones (every rating) or a notebook's (a split)."""
        if self.manifest is None:
            return "models in memory"
        from lib import artifacts
        kind = ("serving models, trained on every rating" if self.serving else
                f"the notebooks' models, trained on the {self.manifest.get('split')} split "
                f"(`python -m lib train` makes serving models from every rating)")
        return f"{kind}; {artifacts.summary(self.manifest)}"

    @classmethod
    def from_stage2(cls, stage2, ids, dataset, stage1_movies=None,
                    stage1_genres=None) -> Engine:
        """From a stage-2 result in memory (`stages.Stage2`); every rating of `dataset`
        counts as already seen."""
        history = None if stage2.history is None else {
            "vectors": stage2.history_vectors(), "base": stage2.new_user_base()}
        return cls(stage2.user_vectors(), stage2.movie_vectors(), stage2.movie_bias(), ids,
                   dataset.movies, ev.interactions(dataset.ratings, ids), stage1_movies,
                   stage1_genres, history, stage2.demographics(dataset, ids))

    def seen(self, user_row: int) -> np.ndarray:
        """The movie rows a user has already seen: every movie they rated. The one rule
        for what is never recommended back to a known user."""
        return self.rated[user_row].indices

    # --- scoring ---
    def _table(self):
        if not self.new_movies:
            return self.movie_vectors, self.movie_bias
        extra = list(self.new_movies.values())
        return (np.vstack([self.movie_vectors] + [e["vector"][None] for e in extra]),
                np.concatenate([self.movie_bias, [e["bias"] for e in extra]]))

    def _vector(self, movie_id: int) -> np.ndarray:
        """The stage-2 vector of a known movie or of one added with `add_movie`."""
        if movie_id in self.new_movies:
            return self.new_movies[movie_id]["vector"]
        return self.movie_vectors[self.ids.movie_rows(movie_id)]

    def _frame(self, rows: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
        n_known, added = self.ids.n_movies, list(self.new_movies)
        known = self._by_row
        movie_ids = [int(known["ids"][r]) if r < n_known else added[r - n_known] for r in rows]
        titles = [known["titles"][r] if r < n_known else
                  self.new_movies[added[r - n_known]]["title"] for r in rows]
        genres = [known["genres"][r] if r < n_known else
                  self.new_movies[added[r - n_known]]["genres"] for r in rows]
        return pd.DataFrame({"rank": np.arange(1, len(rows) + 1), C.MOVIE_COL: movie_ids,
                             C.TITLE_COL: titles, C.GENRES_COL: genres,
                             "score": np.round(scores, 4)})

    @functools.cached_property
    def _by_row(self) -> dict[str, np.ndarray]:
        """Movie ids, titles and genres in the models' row order (lists are built from
        these, not from frame lookups: a web answer is a few milliseconds)."""
        ids = self.ids.movie_ids(np.arange(self.ids.n_movies))
        frame = self.movies.loc[ids]
        return {"ids": ids, "titles": frame[C.TITLE_COL].to_numpy(),
                "genres": frame[C.GENRES_COL].to_numpy()}

    def _top(self, user_vector: np.ndarray, exclude_rows: np.ndarray, k: int) -> pd.DataFrame:
        if k < 1:
            raise ValueError("k must be at least 1")
        table, bias = self._table()
        scores = table @ user_vector + bias
        scores[exclude_rows] = -np.inf
        # At most the whole catalogue: k is a length here, never an allocation.
        top = ev.top_k(scores[None, :], min(k, len(scores)))[0]  # -1 past the unrated
        top = top[top >= 0]
        return self._frame(top, scores[top])

    def recommend(self, user_id: int, k: int = C.DEFAULT_K) -> pd.DataFrame:
        """Top-k movies for a known user, never one they rated. Asking for more movies
        than the user has not rated returns all of those, ranked.

        Raises:
            UnknownIdError: `user_id` is not in the id map.
        """
        row = self.ids.user_rows(user_id)
        return self._top(self.user_vectors[row], self.seen(row), k)

    @property
    def has_next(self) -> bool:
        """Whether a sequential model answers `next_for` (saved beside these models)."""
        return self.sequential is not None or self._sequential_where is not None

    def _next_model(self):
        with self._sequential_lock:  # TensorFlow is imported once, by one thread
            if self.sequential is None and self._sequential_where is not None:
                from lib import artifacts, sequential
                from lib.errors import ArtifactError
                dataset, root, serving = self._sequential_where
                try:
                    loaded = artifacts.load_sequential(dataset, root, serving=serving,
                                                       ids=self.ids)
                except ArtifactError as exc:  # optional: the rest answers without it
                    log.warning("no 'next for you' lists: %s", exc)
                    self._sequential_where = None
                    return None
                sequential.next_scores(loaded.model, loaded.seqs[:1])  # traced now
                self.sequential = loaded
        return self.sequential

    def next_for(self, user_id: int, k: int = C.DEFAULT_K) -> pd.DataFrame:
        """What a known user may watch next: the sequential model's top k after their
        movies in time order (as saved with it), never one they rated; ``after`` names
        the movies of their history its last position attended to most.

        Raises:
            UnknownIdError: `user_id` is not in the id map.
            LookupError: no sequential model was saved beside these models.
        """
        from lib import sequential
        row = self.ids.user_rows(user_id)
        model = self._next_model()
        if model is None:
            raise LookupError("no sequential model: notebook 06 or `python -m lib train` "
                              "writes one")
        if k < 1:
            raise ValueError("k must be at least 1")
        seq = model.seqs[[row]]
        scores = sequential.next_scores(model.model, seq)[0]
        scores[self.seen(row)] = -np.inf
        top = ev.top_k(scores[None, :], min(k, len(scores)))[0]
        top = top[top >= 0]
        out = self._frame(top, scores[top])
        weights = sequential.attention(model.model, seq)[0, -1]
        order = [i for i in np.argsort(-weights, kind="stable") if seq[0, i] != sequential.PAD]
        out.attrs["after"] = self._frame(seq[0, order[:2]].astype(int) - 1, weights[order[:2]])
        return out

    def similar(self, movie_id: int, k: int = C.DEFAULT_K) -> pd.DataFrame:
        """Movies closest to `movie_id` in the stage-2 movie table (cosine)."""
        top, sims = _nearest(self.unit_vectors, self.ids.movie_rows(movie_id), k)
        return pd.DataFrame({C.MOVIE_COL: self._by_row["ids"][top],
                             "similarity": sims.round(3),
                             C.TITLE_COL: self._by_row["titles"][top],
                             C.GENRES_COL: self._by_row["genres"][top]})

    def new_user(self, liked: list[int] = (), k: int = C.DEFAULT_K, *,
                 gender: str | None = None, age: str | None = None,
                 occupation: str | None = None) -> pd.DataFrame:
        """Recommendations for someone new (no retraining), from movies they like, from
        their gender / age group / occupation (labels as the release names them: ``F``,
        ``25-34``, ``programmer``), or both; the liked movies are excluded. With a history
        tower their vector is what the model computes for anyone from their movies
        (`new_user_vector`); otherwise it is folded in from the liked movies
        (`fold_in_user`), starting from the mean user or, with demographics, from the
        vector the model gives those demographics.

        Raises:
            ValueError: nothing given, a label the release does not have, or demographics
                for models that have no demographic inputs.
        """
        rows = self.ids.movie_rows(list(liked)) if len(liked) else []
        start = self.demographic_vector(gender=gender, age=age, occupation=occupation)
        if start is None and not len(rows):
            raise ValueError("give at least one liked movie id, or a gender, age group or "
                             "occupation")
        vector = start if not len(rows) else self.new_user_vector(rows, start)
        return self._top(vector, np.asarray(rows, dtype=np.int64), k)

    def demographic_vector(self, *, gender=None, age=None, occupation=None):
        """The user vector the model gives these demographics (inputs not given count as
        their mean over users), or None when none is given."""
        given = {C.GENDER_COL: gender, C.AGE_LABEL_COL: age, C.OCCUPATION_COL: occupation}
        given = {k: v for k, v in given.items() if v is not None}
        if not given:
            return None
        if self.demographics is None:
            raise ValueError("these models have no demographic inputs for new users "
                             "(trained without them, or saved before their tables were "
                             "stored); give liked movies instead, or retrain with "
                             "SIDE_FEATURES = True in notebook 03")
        unknown = set(given) - set(self.demographics["features"])
        if unknown:
            raise ValueError(f"these models have no {', '.join(sorted(unknown))} input")
        codes = {}
        for name, label in given.items():
            labels = self.demographics["features"][name]["labels"]
            wanted = str(label).strip().lower()
            matches = [i for i, lab in enumerate(labels) if lab.lower() == wanted]
            if not matches:
                word = {C.AGE_LABEL_COL: "age group"}.get(name, name)
                ages = list(C.AGE_LABELS.values())  # youngest first, not alphabetical
                shown = sorted(labels, key=lambda x: (ages.index(x) if x in ages
                                                      else len(ages), x))
                raise ValueError(f"unknown {word} {str(label).strip()!r}: choose one of "
                                 f"{', '.join(shown)}")
            codes[name] = np.array([matches[0]])
        return demographic_vectors(self.demographics, codes)[0]

    def new_user_vector(self, liked_rows, start: np.ndarray | None = None) -> np.ndarray:
        """The vector of someone new from the rows of the movies they like; `start` is
        the vector their demographics give (`demographic_vector`), else the mean user."""
        if len(liked_rows) == 0:
            raise ValueError("give at least one liked movie id")
        liked_rows = np.unique(np.asarray(liked_rows, dtype=np.int64))
        if self.history is not None:
            base = self.history["base"] if start is None else start
            return (base + self.history["vectors"][liked_rows].sum(axis=0)
                    / np.sqrt(len(liked_rows))).astype(np.float32)
        table, bias, mean_user = self._fold_in_tables
        return fold_in_user(table, bias, liked_rows, mean_user if start is None else start)

    @functools.cached_property
    def _fold_in_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The movie table and biases in float64 and the mean user: what a fold-in reads."""
        return (self.movie_vectors.astype(np.float64), self.movie_bias.astype(np.float64),
                self.user_vectors.mean(axis=0))

    def add_movie(self, genres: list[str], title: str = "New movie",
                  neighbours: int = C.NEW_MOVIE_NEIGHBOURS) -> int:
        """Give a movie unknown to the models a vector from its genres and make it
        recommendable; returns its new id (above every MovieLens id).

        Its stage-1 vector is folded in from the genre vectors (`fold_in_movie`); its
        stage-2 vector and bias are the means of those of the `neighbours` known movies
        whose stage-1 vectors are closest to it (cosine; at most a tenth of the
        catalogue). On synthetic-tiny, a new horror
        movie against a new cartoon: how many more places the horror movie gains with the
        20 biggest horror fans than with the 20 smallest (medians), free tower 17.0 (a
        least-squares map from stage-1 to stage-2 vectors: 17.5), history tower 39.5
        (least squares: -51.0, the wrong way).
        """
        if self.stage1_genres is None:
            raise RuntimeError("no stage-1 vectors beside the stage-2 models: run notebooks "
                               "02 and 03 (`python -m lib run --only 02 --only 03`)")
        if not genres:
            raise ValueError("give at least one genre")
        if neighbours < 1:
            raise ValueError(f"neighbours must be at least 1, not {neighbours!r}")
        v1 = fold_in_movie(self.stage1_genres, self.ids.genre_rows(list(genres)))
        sims = _unit(self.stage1_movies) @ _unit(v1[None])[0]
        # At most a tenth of the catalogue: a mean over most movies would say no genre.
        near = np.argsort(-sims, kind="stable")[:min(neighbours, max(1, len(sims) // 10))]
        mapped = np.append(self.movie_vectors[near].mean(axis=0), self.movie_bias[near].mean())
        new_id = int(max(self.ids.movie_ids(np.arange(self.ids.n_movies)).max(),
                         *self.new_movies, 0)) + 1
        self.new_movies[new_id] = {"vector": mapped[:-1].astype(np.float32),
                                   "bias": float(mapped[-1]), "title": title,
                                   "genres": list(genres)}
        return new_id

    def new_movie_rank(self, movie_id: int, user_id: int) -> int:
        """Where an added movie ranks among the movies `user_id` has not rated (1 = top)."""
        if movie_id not in self.new_movies:
            raise KeyError(f"movie {movie_id} was not added with add_movie")
        table, bias = self._table()
        row = self.ids.user_rows(user_id)
        scores = table @ self.user_vectors[row] + bias
        scores[self.seen(row)] = -np.inf
        new_row = self.ids.n_movies + list(self.new_movies).index(movie_id)
        mine = scores[new_row]
        # Ties go to the lower row, as in `recommend`'s stable order.
        return int((scores > mine).sum() + (scores[:new_row] == mine).sum()) + 1

    def new_movie_ranks(self, movie_id: int, user_ids) -> list[int]:
        """`new_movie_rank` for each of `user_ids`."""
        return [self.new_movie_rank(movie_id, int(u)) for u in user_ids]

    def with_reasons(self, top: pd.DataFrame, user_id: int, n: int = 2) -> pd.DataFrame:
        """`top` (a list from `recommend`) with a column naming, for each movie, the
        user's `n` rated movies that explain it (`reasons`)."""
        why = self.reasons(top[C.MOVIE_COL].tolist(), user_id=user_id, n=n)
        return top.assign(**{"because you rated": [", ".join(t for _, t in w) for w in why]})

    def explain(self, user_id: int, movie_id: int, n: int = 3) -> pd.DataFrame:
        """The user's rated movies most like `movie_id` (cosine in the stage-2 table):
        the ratings that pull the recommendation most."""
        return self._explained(self._reason_rows(user_id=user_id), movie_id, n)

    def explain_liked(self, liked: list[int], movie_id: int, n: int = 2) -> pd.DataFrame:
        """`explain` for someone new: which of their `liked` movies are most like
        `movie_id` (a movie given twice counts once)."""
        return self._explained(self._reason_rows(liked=liked), movie_id, n)

    def reasons(self, movie_ids, *, user_id: int | None = None, liked=None,
                n: int = 2) -> list[list[tuple[int, str]]]:
        """For each of `movie_ids`, the `n` movies behind it as ``(id, title)``: of those
        `user_id` rated (`explain`) or of `liked` (`explain_liked`); one product for the
        whole list (what the web app shows beside every recommendation)."""
        rows = self._reason_rows(user_id=user_id, liked=liked)
        best, _ = self._closest(rows, [int(m) for m in movie_ids], n)
        mids, titles = self._by_row["ids"][rows].tolist(), self._by_row["titles"][rows]
        return [[(mids[i], titles[i]) for i in column] for column in best]

    def _reason_rows(self, *, user_id: int | None = None, liked=None) -> np.ndarray:
        """The movie rows reasons are drawn from: what the user rated, or the liked ones."""
        if (user_id is None) == (liked is None):
            raise ValueError("give user_id or liked")
        if user_id is not None:
            return self.seen(self.ids.user_rows(user_id))
        return np.unique(np.asarray(self.ids.movie_rows(list(liked)), np.int64))

    def _closest(self, rows: np.ndarray, movie_ids: list[int],
                 n: int) -> tuple[np.ndarray, np.ndarray]:
        """For each movie, the positions in `rows` of the `n` most alike (cosine, ties to
        the earlier row) and all the cosines (rows x movies)."""
        if len(rows) == 0 or len(movie_ids) == 0:
            return np.zeros((len(movie_ids), 0), np.int64), np.zeros((len(rows), 0))
        if any(m in self.new_movies for m in movie_ids):
            targets = _unit(np.stack([self._vector(m) for m in movie_ids]))
        else:  # one id lookup for the whole list
            targets = self.unit_vectors[self.ids.movie_rows(movie_ids)]
        sims = self.unit_vectors[rows] @ targets.T
        return np.argsort(-sims, axis=0, kind="stable")[:n].T, sims

    def _explained(self, rows: np.ndarray, movie_id: int, n: int) -> pd.DataFrame:
        best, sims = self._closest(rows, [int(movie_id)], n)
        if best.shape[1] == 0:
            return pd.DataFrame(columns=[C.MOVIE_COL, C.TITLE_COL, "similarity"])
        picked = rows[best[0]]
        return pd.DataFrame({C.MOVIE_COL: self._by_row["ids"][picked],
                             C.TITLE_COL: self._by_row["titles"][picked],
                             "similarity": sims[best[0], 0].round(3)})

    def prepare(self) -> Engine:
        """Build every cache now (unit vectors, row lookups, title keys, fold-in tables,
        ratings by user), so that threads answering requests only read the engine."""
        self.search("warm up")
        self.unit_vectors, self._by_row, self._fold_in_tables  # noqa: B018
        if self.ratings is not None:
            self._ratings_by_user  # noqa: B018
        self._next_model()
        return self

    @functools.cached_property
    def unit_vectors(self) -> np.ndarray:
        """The stage-2 movie table scaled to unit length (cosine = dot product)."""
        return _unit(self.movie_vectors)

    # --- looking things up, for people ---
    def search(self, query: str, limit: int = 10) -> pd.DataFrame:
        """Movies whose titles contain every word of `query` as the start of a word,
        ignoring case and accents ("miserables" finds "Misérables, Les"); the most rated
        first. An empty query finds nothing."""
        words = title_key(query).split()[:MAX_QUERY_WORDS]
        if not words or limit < 1:
            return self.movies.iloc[:0][[C.TITLE_COL, C.GENRES_COL]].reset_index()
        keys = self._title_keys
        hit = np.ones(len(keys), bool)
        for word in words:  # " " + word: the start of a word in the padded key
            hit &= keys.str.contains(" " + word, regex=False).to_numpy()
        found = self.movies.index[hit]
        order = np.argsort(-self._popularity.reindex(found).to_numpy(), kind="stable")
        out = self.movies.loc[found[order[:limit]], [C.TITLE_COL, C.YEAR_COL, C.GENRES_COL]]
        return out.assign(ratings=self._popularity.reindex(out.index).to_numpy()).reset_index()

    @functools.cached_property
    def _title_keys(self) -> pd.Series:
        return self.movies[C.TITLE_COL].map(lambda t: " " + " ".join(title_key(t).split()))

    @functools.cached_property
    def _popularity(self) -> pd.Series:
        counts = np.asarray(self.rated.sum(axis=0)).ravel()[:self.ids.n_movies]
        known = pd.Series(counts, index=self.ids.movie_ids(np.arange(self.ids.n_movies)))
        return known.reindex(self.movies.index, fill_value=0)

    def rated_by(self, user_id: int) -> pd.DataFrame:
        """What a known user rated, with the stars: best first, then the latest first.

        Raises:
            UnknownIdError: `user_id` is not in the id map.
            RuntimeError: the engine was loaded without the ratings (a `Catalogue`).
        """
        self.ids.user_rows(user_id)
        if self.ratings is None:
            raise RuntimeError("the engine was loaded from the movies alone: load it from "
                               "the dataset (`load_dataset`) to show ratings")
        mine = self._ratings_by_user.get(user_id)
        rows = self.ratings.iloc[mine] if mine is not None else self.ratings.iloc[:0]
        rows = rows.sort_values([C.RATING_COL, C.TIMESTAMP_COL], ascending=False,
                                kind="stable")
        mids = rows[C.MOVIE_COL].to_numpy()
        return pd.DataFrame({C.MOVIE_COL: mids,
                             C.TITLE_COL: self.movies.loc[mids, C.TITLE_COL].to_numpy(),
                             C.RATING_COL: rows[C.RATING_COL].to_numpy()})

    @functools.cached_property
    def _ratings_by_user(self) -> dict:
        return self.ratings.groupby(C.USER_COL, sort=False).indices

    def genre_scores(self, movie_id: int) -> pd.DataFrame:
        """How strongly the stage-1 vector of `movie_id` says each genre (the stage-1
        model's probability, sigmoid of movie . genre), highest first."""
        if self.stage1_movies is None:
            raise RuntimeError("no stage-1 vectors beside the stage-2 models")
        logits = self.stage1_genres @ self.stage1_movies[self.ids.movie_rows(movie_id)]
        order = np.argsort(-logits, kind="stable")
        return pd.DataFrame({"genre": self.ids.genre_names(order),
                             "probability": (1 / (1 + np.exp(-logits[order]))).round(3)})


MAX_QUERY_WORDS = 20  # a title search reads at most this many words of the query


def title_key(text: str) -> str:
    """A title for matching: accents dropped, lower case, letters and digits only."""
    plain = unicodedata.normalize("NFKD", str(text))
    plain = "".join(c for c in plain if not unicodedata.combining(c)).casefold()
    return "".join(c if c.isalnum() else " " for c in plain)
