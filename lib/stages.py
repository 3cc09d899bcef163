"""The two stages end to end: a dataset in, trained models and saved artefacts out.

Notebooks 02 and 03 (and the `MovieRecommender` facade, the evaluation command and the
benchmark) call these, so every path trains the same way.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lib import artifacts, atomic, search
from lib import config as C
from lib import distributed as D
from lib import evaluation as ev
from lib import models as M
from lib.artifacts import vectors_sha256
from lib.data import Dataset, genre_matrix
from lib.ids import IdMap
from lib.recommend import demographic_vectors

log = logging.getLogger(__name__)


def movie_genres(dataset: Dataset, ids: IdMap) -> np.ndarray:
    """Boolean (movie rows, genre rows) matrix in id-map order."""
    movies = dataset.movies.set_index(C.MOVIE_COL).loc[ids.movie_ids(np.arange(ids.n_movies))]
    return genre_matrix(movies.reset_index(), list(ids.genre_names(np.arange(ids.n_genres))))


# --- stage 1 ---------------------------------------------------------------------------

@dataclass
class Stage1:
    model: object
    movie_vectors: np.ndarray
    genre_vectors: np.ndarray
    history: pd.DataFrame
    recovery: dict
    seconds: float
    settings: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line for a notebook: what was trained, how long it took."""
        return (f"stage 1: {len(self.history)} epochs in {self.seconds:.1f} s, final loss "
                f"{self.history['loss'].iloc[-1]:.4f}, genre recovery precision "
                f"{self.recovery['precision']:.3f} "
                f"(chance {self.recovery['chance_precision']:.3f})")


def run_stage1(dataset: Dataset, ids: IdMap, *, dim: int = C.EMBEDDING_DIM,
               epochs: int = 40, batch_size: int = 512, seed: int = C.SEED,
               progress: bool = True) -> Stage1:
    """Train movie and genre vectors on which movie has which genre."""
    M.seed_everything(seed)
    genres = movie_genres(dataset, ids)
    model = M.build_movie_genre_model(ids.n_movies, ids.n_genres, dim, seed=seed)
    start = time.perf_counter()
    hist = M.train_movie_genre_model(model, genres, epochs=epochs, batch_size=batch_size,
                                     seed=seed, progress=progress)
    seconds = time.perf_counter() - start
    movie_vectors = M.embeddings(model, "movie_embedding")
    genre_vectors = M.embeddings(model, "genre_embedding")
    history = pd.DataFrame(hist.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    settings = {"dim": dim, "epochs": epochs, "batch_size": batch_size, "seed": seed}
    return Stage1(model, movie_vectors, genre_vectors, history,
                  M.genre_recovery(movie_vectors, genre_vectors, genres), seconds, settings)


# --- stage 2 ---------------------------------------------------------------------------

VALIDATIONS = ("random", "last")


def _validation_split(train: pd.DataFrame, val_ratio: float, seed: int,
                      method: str = "random") -> tuple[ev.Split, bool]:
    """Validation ratings held out of `train`: `val_ratio` of each user's ratings at
    random (``"random"``) or each user's latest one (``"last"``, for a chronological
    split: the second-to-last of the whole history), for every user or, above
    `config.VALIDATION_MAX_USERS` users, for a seeded sample of them; and whether sampled."""
    if method not in VALIDATIONS:
        raise ValueError(f"validation must be one of {VALIDATIONS}, not {method!r}")

    def held(part):
        if method == "last":
            return ev.split_last(part)
        return ev.split_stratified(part, by="user", ratio=1 - val_ratio, seed=seed)

    users = train[C.USER_COL].to_numpy()
    every = np.unique(users)
    if len(every) <= C.VALIDATION_MAX_USERS:
        return held(train), False
    chosen = ev.sample_users(every, C.VALIDATION_MAX_USERS, seed)
    mine = np.isin(users, chosen)
    part = held(train[mine])
    rest = pd.concat([train[~mine], part.train], ignore_index=True)
    return ev.Split(rest, part.test, f"{part.method}, {len(chosen):,} users"), True


def validation_for(split: ev.Split) -> str:
    """How stage 2 holds out validation ratings for a test split: the latest training
    rating of each user for a chronological split, so that the epochs of every model
    compared on it are chosen on the second-to-last movie; at random otherwise."""
    return "last" if split.method.startswith("leave-last") else "random"


def ranking_batch(n_users: int) -> int:
    """Users per step of the ranking model: `config.RANKING_BATCH_USERS`, or fewer so that
    an epoch over `n_users` users (those with training ratings) makes at least
    `config.RANKING_MIN_STEPS` updates (ML-100K: 236)."""
    return int(min(C.RANKING_BATCH_USERS, max(1, -(-n_users // C.RANKING_MIN_STEPS))))


def side_label(with_side: bool) -> str:
    """How settings and summaries name a rating model's inputs."""
    return "with demographics" if with_side else "without demographics"


def tower_label(tower: str, history_dropout: float, with_side: bool = False) -> str:
    """How settings and summaries name a user tower: ``free``, ``history 0.7``, ``free +
    demographics``."""
    name = "free" if tower == "free" else f"history {history_dropout:g}"
    return f"{name} + demographics" if with_side else name


@dataclass
class Stage2:
    ranking: object
    rating: object
    ranking_history: pd.DataFrame
    rating_history: pd.DataFrame
    features: dict
    validation: ev.Split
    init: str
    seconds: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    # users x movies 0/1 of the training ratings: the input of a history tower (None for
    # a free one).
    history: object = None

    def scores(self):
        """``score(user_rows)`` for all movies, from the ranking model."""
        return M.ranking_scores(self.ranking, self.features, self.history)

    def movie_vectors(self) -> np.ndarray:
        """The ranking model's movie table (movie rows x dim)."""
        return np.asarray(self.ranking.get_layer("movie_embedding").embeddings)

    def movie_bias(self) -> np.ndarray:
        return np.asarray(self.ranking.get_layer("movie_embedding").bias)

    def user_vectors(self) -> np.ndarray:
        """Every user's vector as the ranking model scores it (side inputs included)."""
        return M.user_vectors(self.ranking, self.features, history=self.history)

    def history_vectors(self) -> np.ndarray | None:
        """The history tower's own movie table (movie rows x dim), or None."""
        if self.history is None:
            return None
        return np.asarray(self.ranking.get_layer("history_encoder").embeddings)

    def new_user_base(self) -> np.ndarray:
        """The mean over users of what their vector holds beside their encoded movies
        (learnt vector and side inputs): a new user's vector is this plus the encoding of
        the movies they give."""
        return M.own_user_vectors(self.ranking, self.features).mean(axis=0)

    def _tower_label(self) -> str:
        return tower_label(self.settings.get("user_tower", "free"),
                           self.settings.get("history_dropout", 0.0),
                           bool(self.settings.get("side")))

    def _refit_words(self) -> str:
        return " with the refit" if self.settings.get("refit") else \
            " (best validation epoch kept, no refit)"

    def demographics(self, dataset: Dataset, ids: IdMap) -> dict | None:
        """The ranking model's demographic inputs, for new users (`models.side_tables`)."""
        return M.side_tables(self.ranking, self.features,
                             M.side_vocabulary(getattr(dataset, "users", None), ids))

    def summary(self) -> str:
        """One line per model for a notebook: epochs chosen on validation, time taken."""
        s = self.settings
        towers = s.get("tower_validation", {})
        mine = self._tower_label()
        others = ", ".join(f"{t} {v:.4f}" for t, v in towers.items() if t != mine)
        lines = [f"ranking model ({self.init}, {mine} tower): "
                 f"{s['ranking_epochs']} epochs chosen on validation (best nDCG@{s['k']} "
                 f"{self.ranking_history['validation'].max():.4f}"
                 f"{'; ' + others if others else ''}), "
                 f"{self.seconds['ranking']:.1f} s{self._refit_words()}"]
        if self.rating is not None:
            other = ", ".join(f"{t} {v:.4f}" for t, v in
                              (s.get("rating_validation") or {}).items()
                              if t != side_label(bool(s.get("rating_side"))))
            lines.append(f"rating model ({side_label(bool(s.get('rating_side')))}): "
                         f"{s['rating_epochs']} epochs chosen on validation "
                         f"(best RMSE {self.rating_history['val_rmse'].min():.4f}"
                         f"{'; ' + other if other else ''}), "
                         f"{self.seconds['rating']:.1f} s{self._refit_words()}")
        for model, key, chosen in (("ranking", "ranking_search", s),
                                   ("rating", "rating_search", s.get("rating_settings"))):
            trials = pd.DataFrame(s.get(key) or [])
            if len(trials) > 1:
                names = [c for c in trials.columns
                         if c not in ("score", "seconds", "status", "epochs", "stop")]
                tried = trials[trials["status"] != "skipped"]
                lines.append(f"{model} settings chosen on validation: " + ", ".join(
                    f"{n} {chosen[n]:g}" for n in names) + f" ({len(tried)} of {len(trials)} "
                    f"runs within the {s['search_budget']:g} s budget, "
                    f"{tried['seconds'].sum():.0f} s"
                    + (f"; {(tried['stop'] == 'cap').sum()} stopped at the epoch cap"
                       if "stop" in tried and (tried["stop"] == "cap").any() else "") + ")")
        return "\n".join(lines)


def _stopped(result) -> dict:
    """What a search trial records of its run: epochs trained and why it stopped."""
    history = result[1]
    return {"epochs": len(history), "stop": history.attrs["stop"]}


def run_stage2(dataset: Dataset, ids: IdMap, train: pd.DataFrame, movie_vectors: np.ndarray,
               *, init: str = "stage1", dim: int = C.EMBEDDING_DIM, side: bool | str = False,
               epochs: int = C.MAX_EPOCHS, val_ratio: float = 0.1, k: int = C.DEFAULT_K,
               seed: int = C.SEED, rating: bool = True, refit: bool | str = "auto",
               loss: str = "auto", batch_users: int | None = None,
               learning_rate: float = C.RANKING_LEARNING_RATE,
               l2_user: float = 0.0, l2_pair: float = C.RANKING_L2_PAIR, patience: int = 8,
               negatives: int = C.SAMPLED_NEGATIVES, user_tower: str = "free",
               history_dropout: float | str = "auto", choices: Path | str | None = None,
               dropout: float = 0.5, rating_learning_rate: float = 3e-3,
               rating_l2: float = 0.1, search_budget: float = 0.0,
               validation: str = "random", progress: bool = True) -> Stage2:
    """Train the ranking model (and the rating model) on `train`.

    `user_tower` is how the ranking model makes a user's vector (`models.USER_TOWERS`):
    ``"free"`` (a learnt vector), ``"history"`` (that plus an encoding of the movies they
    rated, each dropped in training with probability `history_dropout`) or ``"auto"``:
    the free tower and the history tower at each of `config.HISTORY_DROPOUTS` (with
    ``history_dropout="auto"``) are trained and validation nDCG keeps the best; every
    candidate's score is recorded in the settings (``tower_validation``). ``"free"`` is
    this function's default (one training, for tests and quick runs); the notebooks,
    `python -m lib evaluate` and `python -m lib train` take `config.USER_TOWER`
    (``"auto"``): on ML-100K over three splits and seeds validation chose a history tower
    in 9 of 9 runs (benchmark split, seed 42: test nDCG@10 0.4890 against 0.4829 for the
    free tower; with the settings search as well, mean of seeds 42-44: 0.4893 against
    0.4812).
    A new movie folded in from its genres (`Engine.add_movie`) gains more places with fans
    of those genres with either tower. With `choices`
    (a file, `artifacts.choices_path`), the choice is saved there and a rerun on the same
    training ratings with the same settings takes it without searching again.

    `side` adds gender, age and occupation embeddings to the user vectors of both models
    (where the release has them); ``"auto"`` trains each model with and without them and
    keeps what validation prefers (nDCG for ranking, RMSE for rating), each model on its
    own, recorded in the settings (``side``, ``rating_side``, ``rating_validation``).

    `loss` is the ranking model's softmax: ``"full"`` (over all movies), ``"sampled"``
    (`lib.losses.sampled_softmax`) or ``"auto"``: sampled when users x movies is above
    `config.FULL_SOFTMAX_MAX_CELLS`. `batch_users` defaults to `ranking_batch`.

    A share `val_ratio` of each user's training ratings (with ``validation="last"``: each
    user's latest one, `validation_for` a chronological split) is held out to choose the
    number of epochs (early stopping on NDCG@k for the ranking model, RMSE for the rating model).
    Above `config.VALIDATION_MAX_USERS` users, only a seeded sample of that many users
    gives ratings to validation. With `refit` the models are then trained again, same
    seed, on all of `train` for that many epochs, so no training rating is wasted; without
    it they keep the weights of their best validation epoch. ``"auto"`` refits when every
    user gave validation ratings, and not when a sample did (the held-out ratings are then
    a small share of the training ratings: 0.6% at ML-25M size, for half the time). Test
    ratings are never seen either way.

    With a `search_budget` (seconds, per model), the learning rate, the L2 strength and
    the dropout of the chosen tower's ranking model, and the learning rate and L2 of the
    rating model, are then chosen on the same validation ratings by a coordinate search
    over `config.RANKING_SEARCH` and `config.RATING_SEARCH` (`lib.search`), starting from
    the given values; every trial stops on patience, the budget only limits how many are
    made (the towers' runs before it and the refit after it are not counted). The trials
    are recorded in the settings (``ranking_search``, ``rating_search``)
    and, with `choices`, saved with the rest of the choice. 0 (the default here; the
    notebooks and `python -m lib evaluate` pass `config.SEARCH_BUDGET`) trains the given
    settings only.
    """
    inner, sampled = _validation_split(train, val_ratio, seed, validation)
    if refit == "auto":
        refit = not sampled
    fit_rows = ev.interactions(inner.train, ids)
    val_rows = ev.interactions(inner.test, ids)
    users = np.flatnonzero(np.diff(val_rows.indptr) > 0)
    if side not in (True, False, "auto"):
        raise ValueError(f"side must be True, False or 'auto', not {side!r}")
    # Every model takes from `features` only the inputs it has.
    features = M.side_features(dataset.users, ids) if side else {}
    sides = (False, True) if side == "auto" and features else (bool(features),)

    def sizes(with_side):
        return {name: int(v.max()) + 1 for name, v in features.items()} if with_side else {}

    def val_ndcg(model):
        # A history tower reads the training part only: validation movies stay unseen.
        recs = ev.recommend_all(M.ranking_scores(model, features, fit_rows), fit_rows, users, k)
        return ev.ranking_metrics(recs, val_rows, users, k)[f"ndcg@{k}"]

    if user_tower != "auto" and user_tower not in M.USER_TOWERS:
        raise ValueError(f"user_tower must be 'auto' or one of {M.USER_TOWERS}, "
                         f"not {user_tower!r}")
    towers = M.USER_TOWERS if user_tower == "auto" else (user_tower,)
    if history_dropout != "auto" and not (isinstance(history_dropout, (int, float))
                                          and 0 <= history_dropout < 1):
        raise ValueError(f"history_dropout must be 'auto' or a probability in [0, 1), "
                         f"not {history_dropout!r}")
    drops = C.HISTORY_DROPOUTS if history_dropout == "auto" else (float(history_dropout),)
    candidates = {tower_label(t, d, s): (t, d, s) for s in sides
                  for t in towers for d in (drops if t == "history" else (0.0,))}

    def new_ranking(tower, drop, with_side, dropout):
        M.seed_everything(seed)
        with D.scope():  # on a cluster, its variables are mirrored on every worker
            return M.build_ranking_model(ids.n_users, ids.n_movies, dim, movie_init=movie_vectors,
                                         init=init, side_sizes=sizes(with_side),
                                         l2_user=l2_user, dropout=dropout, user_tower=tower,
                                         history_dropout=drop, seed=seed)

    if batch_users is None:
        batch_users = ranking_batch(int(train[C.USER_COL].nunique()))
    if loss == "auto":
        loss = "sampled" if ids.n_users * ids.n_movies > C.FULL_SOFTMAX_MAX_CELLS else "full"
    if search_budget < 0:
        raise ValueError(f"search_budget must be >= 0 seconds, not {search_budget!r}")
    settings = {"init": init, "dim": dim, "side": side, "max_epochs": epochs, "loss": loss,
                "validation_users": len(users), "validation_ratings": len(inner.test),
                "val_ratio": val_ratio, "validation": validation, "k": k, "seed": seed,
                "refit": refit,
                "batch_users": batch_users, "l2_user": l2_user, "patience": patience,
                "search_budget": search_budget,
                "stage1_vectors": None if init == "random" else vectors_sha256(movie_vectors)}
    start = time.perf_counter()
    fit = {"seed": seed, "loss": loss, "batch_users": batch_users, "negatives": negatives,
           "progress": progress}
    ranking_start = {"learning_rate": learning_rate, "l2_pair": l2_pair, "dropout": dropout}
    rating_start = {"learning_rate": rating_learning_rate, "l2": rating_l2}
    key = saved = None
    if choices is not None and (len(candidates) > 1 or len(sides) > 1 or search_budget > 0):
        key = artifacts.choice_key(train, candidates=sorted(candidates), **{
            n: settings[n] for n in ("init", "dim", "side", "max_epochs", "loss", "val_ratio",
                                     "validation", "k", "seed", "batch_users", "l2_user",
                                     "patience",
                                     "search_budget")}, negatives=negatives,
            ranking_start=ranking_start, rating_start=rating_start, rating=rating,
            ranking_axes=C.RANKING_SEARCH, rating_axes=C.RATING_SEARCH,
            stage1_vectors=settings["stage1_vectors"])
        saved = artifacts.load_choice(choices, key)
    reused = saved is not None and saved.get("chosen") in candidates
    cluster = D.active()
    if cluster is not None:
        cluster.same(float(reused), "whether the saved choices hold this choice")
        # The rating model trains with its own loop on one machine: the chief's.
        rating = rating and cluster.chief
    if reused:
        log.info("stage 2: the settings chosen before on these ratings (%s), from %s",
                 saved["chosen"], C.shown(choices))
        settings["tower_validation"] = saved["validation"]
        settings["choice"] = "reused"
        candidates = {saved["chosen"]: candidates[saved["chosen"]]}
        ranking_start = {**ranking_start, **saved.get("ranking_settings", {})}

    def fit_ranking(label, opts):
        tower, drop, with_side = candidates[label]
        model = new_ranking(tower, drop, with_side, opts["dropout"])
        history = M.train_ranking_model(
            model, fit_rows, features, epochs=epochs, validation=val_ndcg, patience=patience,
            learning_rate=opts["learning_rate"], l2_pair=opts["l2_pair"], **fit)
        return float(history["validation"].max()), (model, history)

    # First the user towers (and demographic inputs) at the starting settings...
    scores, chosen, first = {}, None, None  # only the best candidate's model is kept
    for label, (tower, _, _) in candidates.items():
        clock = time.perf_counter()
        opts = {**ranking_start,
                "dropout": 0.0 if tower == "history" else ranking_start["dropout"]}
        scores[label], result = fit_ranking(label, opts)
        if len(candidates) > 1:
            log.info("%s tower: validation nDCG@%d %.4f", label, k, scores[label])
        if chosen is None or scores[label] > scores[chosen]:
            chosen, first = label, (scores[label], result, time.perf_counter() - clock, opts)
    if not reused:
        settings["tower_validation"] = scores
        settings["choice"] = "searched" if len(candidates) > 1 else "given"
    tower, drop, with_side = candidates[chosen]
    # ...then learning rate, L2 and dropout for the chosen tower, within the budget (a
    # history tower has no dropout on its vector: its input dropout was searched above).
    axes = {a: v for a, v in C.RANKING_SEARCH.items() if not (a == "dropout" and
                                                              tower == "history")}
    budget = 0.0 if reused else search_budget
    ranking_opts, (ranking, ranking_history), trials = search.coordinate_search(
        lambda opts: fit_ranking(chosen, opts), first[3], axes, budget=budget,
        first=first[:3], name="stage 2 ranking settings", describe=_stopped)
    settings["ranking_search"] = saved.get("ranking_trials") if reused else trials
    settings.update(ranking_opts)
    settings["user_tower"], settings["history_dropout"] = tower, drop
    settings["side"] = with_side
    settings["ranking_stop"] = ranking_history.attrs["stop"]
    best = settings["ranking_epochs"] = int(ranking_history["validation"].idxmax()) + 1
    everything = ev.interactions(train, ids) if refit or tower == "history" else None
    if refit:
        ranking = new_ranking(tower, drop, with_side, ranking_opts["dropout"])
        M.train_ranking_model(ranking, everything, features, epochs=best,
                              learning_rate=ranking_opts["learning_rate"],
                              l2_pair=ranking_opts["l2_pair"], **fit)
    seconds = {"ranking": time.perf_counter() - start}
    rating_model, rating_history = None, pd.DataFrame()
    rating_sides = sides
    if reused and saved.get("rating_settings") is not None:
        rating_start = {**rating_start, **saved["rating_settings"]}
        if len(sides) > 1 and saved.get("rating_side") is not None:
            rating_sides = (bool(saved["rating_side"]),)
            settings["rating_validation"] = saved.get("rating_validation")
    if rating:
        def new_rating(frame, with_side, opts):
            M.seed_everything(seed)
            return M.build_rating_model(
                ids.n_users, ids.n_movies, dim, global_mean=float(frame[C.RATING_COL].mean()),
                movie_init=movie_vectors, init=init, side_sizes=sizes(with_side), seed=seed,
                l2=opts["l2"], learning_rate=opts["learning_rate"])

        def fit_rating(with_side, opts):
            model = new_rating(inner.train, with_side, opts)
            history = M.train_rating_model(model, inner.train, ids, features,
                                           validation=inner.test, epochs=epochs, seed=seed,
                                           progress=progress)
            return float(history["val_rmse"].min()), (model, history)

        start = time.perf_counter()
        rmse, rating_side, first = {}, None, None
        for with_side in rating_sides:
            clock = time.perf_counter()
            rmse[side_label(with_side)], result = fit_rating(with_side, rating_start)
            if rating_side is None or rmse[side_label(with_side)] < rmse[side_label(rating_side)]:
                rating_side = with_side
                first = (rmse[side_label(with_side)], result, time.perf_counter() - clock)
        if len(rating_sides) > 1:
            settings["rating_validation"] = rmse
        rating_opts, (rating_model, rating_history), trials = search.coordinate_search(
            lambda opts: fit_rating(rating_side, opts), rating_start, C.RATING_SEARCH,
            budget=0.0 if reused else search_budget, maximise=False, first=first,
            name="stage 2 rating settings", describe=_stopped, on_every_worker=False)
        settings["rating_search"] = saved.get("rating_trials") if reused else trials
        settings["rating_side"] = rating_side
        settings["rating_settings"] = rating_opts
        settings["rating_stop"] = rating_history.attrs["stop"]
        best = settings["rating_epochs"] = int(rating_history["val_rmse"].idxmin()) + 1
        if refit:
            rating_model = new_rating(train, rating_side, rating_opts)
            M.train_rating_model(rating_model, train, ids, features, validation=None,
                                 epochs=best, seed=seed, progress=progress)
        seconds["rating"] = time.perf_counter() - start
    if key is not None and not reused and D.is_chief():  # made only when something is searched
        artifacts.save_choice(choices, key, {
            "chosen": chosen, "validation": scores, "ranking_settings": ranking_opts,
            "ranking_trials": settings["ranking_search"],
            "rating_side": settings.get("rating_side"),
            "rating_validation": settings.get("rating_validation"),
            "rating_settings": settings.get("rating_settings"),
            "rating_trials": settings.get("rating_search")})
    return Stage2(ranking, rating_model, ranking_history, rating_history, features, inner,
                  init, seconds, settings, everything if tower == "history" else None)


# --- models and baselines side by side ------------------------------------------------

def evaluate_all(dataset: Dataset, ids: IdMap, split: ev.Split, movie_vectors: np.ndarray, *,
                 k: int = C.DEFAULT_K, stage2: Stage2 | None = None,
                 ease_l2: float | str = "auto", seed: int = C.SEED,
                 user_tower: str = C.USER_TOWER,
                 side: bool | str = False, search_budget: float = 0.0,
                 sequential: tuple[str, ...] | dict | None = None,
                 sequential_max_len: int = C.SEQUENCE_MAX_LEN, progress: bool = True):
    """Train (or take) the stage-2 models and the baselines on one split; score them all.

    On a chronological split the sequential model (`lib.sequential`) joins them, in the
    `sequential` variants (`SEQUENTIAL_VARIANTS`; default ``("stage1",)`` there, none on
    a random split), or given trained (``{row name: sequential.Sequential}``): its epochs,
    like stage 2's and EASE's settings, are chosen on each user's latest training movie
    (`validation_for`).

    EASE's ``ease_l2`` is chosen, with ``"auto"``, from `config.EASE_L2S` on the same
    validation part that stage 2 chose its epochs and tower on (`choose_ease_l2`), so
    both are tuned alike; the row records the chosen value.

    Returns:
        ``(table, recs, users, scorers)``: one row of metrics per model; each model's
        top-k movie rows for the evaluated users; those users' rows; each model's
        ``score(user_rows)``.
    """
    start = time.perf_counter()
    if stage2 is None:
        stage2 = run_stage2(dataset, ids, split.train, movie_vectors, seed=seed,
                            user_tower=user_tower, side=side, search_budget=search_budget,
                            validation=validation_for(split), progress=progress)
    seconds = {"stage 2 (ours)": time.perf_counter() - start}
    train = ev.interactions(split.train, ids)
    test = ev.interactions(split.test, ids)
    scorers = {"stage 2 (ours)": stage2.scores()}
    ease_chosen = None
    if ids.n_movies <= C.EASE_MAX_MOVIES:
        start = time.perf_counter()
        if ease_l2 == "auto":
            inner = (stage2.validation if stage2.validation is not None
                     else _validation_split(split.train, stage2.settings.get("val_ratio", 0.1),
                                            stage2.settings.get("seed", seed),
                                            stage2.settings.get("validation", "random"))[0])
            ease_l2, _ = choose_ease_l2(inner, ids, k)
        ease_chosen = float(ease_l2)
        scorers["EASE"] = ev.ease_scores(train, ease_chosen)
        seconds["EASE"] = time.perf_counter() - start
    else:
        log.warning("EASE skipped: %s movies is above config.EASE_MAX_MOVIES (%s); its "
                    "dense movies x movies inverse would need %.0f GB", f"{ids.n_movies:,}",
                    f"{C.EASE_MAX_MOVIES:,}", ids.n_movies ** 2 * 8 / 1e9)
    scorers["most popular"] = ev.popularity_scores(train)
    seconds["most popular"] = 0.0
    rows, recs, users = {}, {}, None
    actual = split.test[C.RATING_COL].to_numpy()
    for name, fn in scorers.items():
        metrics, recs[name], users = ev.evaluate_ranking(fn, train, test, k)
        rows[name] = {**metrics, "train seconds": seconds[name]}
    if ease_chosen is not None:
        rows["EASE"]["l2"] = ease_chosen
    # What validation chose ("ended at cap": 1 when the run hit its epoch cap, not patience)
    ours, settings = rows["stage 2 (ours)"], stage2.settings
    ours["chosen: ranking epochs"] = settings.get("ranking_epochs")
    ours["chosen: ended at cap"] = float(settings.get("ranking_stop") == "cap")
    ours["chosen: history tower"] = float(settings.get("user_tower") == "history")
    if settings.get("user_tower") == "history":
        ours["chosen: history dropout"] = settings.get("history_dropout")
    ours["chosen: demographics (ranking)"] = float(bool(settings.get("side")))
    for name in C.RANKING_SEARCH:
        ours[f"chosen: {name} (ranking)"] = settings.get(name)
    if stage2.rating is not None:
        pred = M.predict_ratings(stage2.rating, split.test, ids, stage2.features,
                                 dataset.scale[:2])
        ours.update(ev.rating_metrics(pred, actual))
        ours["chosen: rating epochs"] = settings.get("rating_epochs")
        ours["chosen: demographics (rating)"] = float(bool(settings.get("rating_side")))
        for name, value in settings.get("rating_settings", {}).items():
            ours[f"chosen: {name} (rating)"] = value
    if sequential is None:
        sequential = ("stage1",) if validation_for(split) == "last" else ()
    trained = sequential if isinstance(sequential, dict) else dict(
        fit_sequential_variant(split.train, ids, movie_vectors, variant,
                               max_len=sequential_max_len, k=k, seed=seed, progress=progress)
        for variant in sequential)
    for name, fitted in trained.items():
        metrics, recs[name], _ = ev.evaluate_ranking(fitted.scores(), train, test, k)
        scorers[name] = fitted.scores()
        rows[name] = {**metrics, "train seconds": fitted.settings["seconds"],
                      "chosen: epochs (sequential)": fitted.settings["epochs"],
                      "chosen: ended at cap": float(fitted.settings["stop"] == "cap")}
    bias = ev.bias_baseline(split.train, ids)
    pred = np.clip(bias(ids.user_rows(split.test[C.USER_COL].to_numpy()),
                        ids.movie_rows(split.test[C.MOVIE_COL].to_numpy())), *dataset.scale[:2])
    rows["mean + biases"] = ev.rating_metrics(pred, actual)
    return pd.DataFrame(rows).T, recs, users, scorers


# How `evaluate_all` and notebook 06 name the sequential model's variants: its table's
# start and whether each user's order is kept (the control destroys it).
SEQUENTIAL_VARIANTS = {"stage1": ("sequential (ours)", "stage1", "time"),
                       "random": ("sequential, random start", "random", "time"),
                       "shuffled": ("sequential, shuffled order", "stage1", "shuffled")}


def fit_sequential_variant(train: pd.DataFrame, ids: IdMap, movie_vectors: np.ndarray,
                           variant: str, **options):
    """One of `SEQUENTIAL_VARIANTS` trained with `sequential.fit_sequential`; returns
    ``(row name, sequential.Sequential)``."""
    from lib import sequential as S
    if variant not in SEQUENTIAL_VARIANTS:
        raise ValueError(f"sequential variant must be one of {list(SEQUENTIAL_VARIANTS)}, "
                         f"not {variant!r}")
    name, start, order = SEQUENTIAL_VARIANTS[variant]
    return name, S.fit_sequential(train, ids, order=order, **options,
                                  movie_init=movie_vectors if start == "stage1" else None)


def demographic_cold_start(dataset: Dataset, ids: IdMap, movie_vectors: np.ndarray, *,
                           share: float = 0.2, k: int = C.DEFAULT_K, seed: int = C.SEED,
                           progress: bool = False) -> pd.DataFrame:
    """New users known only by their gender, age group and occupation: a seeded `share`
    of the users is withheld from training entirely; the ranking model, with demographic
    inputs, is trained on the others' ratings; each withheld user gets the vector their
    demographics give (the mean learnt user vector of the training users plus the three
    embeddings, `recommend.demographic_vectors`: what `Engine.new_user` computes) and is
    scored on all their ratings,
    beside the most popular movies of the training users.

    Raises:
        ValueError: the release has no user file, or `share` is not in (0, 1).
    """
    if dataset.users is None:
        raise ValueError(f"{dataset.name} has no user file: no demographics to start from")
    if not 0 < share < 1:
        raise ValueError(f"share must be between 0 and 1 (exclusive), not {share!r}")
    everyone = np.sort(dataset.ratings[C.USER_COL].unique())
    withheld = np.sort(np.random.default_rng(seed).choice(
        everyone, max(1, round(share * len(everyone))), replace=False))
    out = dataset.ratings[C.USER_COL].isin(withheld).to_numpy()
    train = dataset.ratings[~out]
    s2 = run_stage2(dataset, ids, train, movie_vectors, side=True, rating=False, seed=seed,
                    progress=progress)
    rows = ids.user_rows(withheld)
    known = ids.user_rows(train[C.USER_COL].unique())  # the mean over trained users only
    tables = M.side_tables(s2.ranking, s2.features,
                           M.side_vocabulary(dataset.users, ids), users=known)
    vectors = demographic_vectors(tables, {n: c[rows] for n, c in s2.features.items()})
    table = s2.ranking.get_layer("movie_embedding")
    emb, bias = np.asarray(table.embeddings), np.asarray(table.bias)
    relevant = ev.interactions(dataset.ratings[out], ids)
    nothing_seen = sp.csr_matrix(relevant.shape, dtype=np.float32)
    position = {r: i for i, r in enumerate(rows)}
    scorers = {"stage 2 with demographics (ours)":
               lambda r: vectors[[position[x] for x in r]] @ emb.T + bias,
               "most popular": ev.popularity_scores(ev.interactions(train, ids))}
    table_rows = {}
    for name, fn in scorers.items():
        recs = ev.recommend_all(fn, nothing_seen, rows, k)
        table_rows[name] = ev.ranking_metrics(recs, relevant, rows, k)
    frame = pd.DataFrame(table_rows).T
    frame.attrs.update(users=len(rows), withheld=withheld.tolist(), ratings=int(out.sum()),
                       ranking_epochs=s2.settings["ranking_epochs"])
    return frame


def choose_ease_l2(validation: ev.Split, ids: IdMap, k: int = C.DEFAULT_K,
                   grid: tuple[float, ...] = C.EASE_L2S) -> tuple[float, dict]:
    """EASE's L2 strength with the best validation nDCG@k (EASE fitted on the validation
    split's training part); and every candidate's score. The grid is walked in increasing
    order and the walk stops after two values in a row below the best so far: on the
    validation parts of ML-100K's three splits and the ML-1M-sized synthetic data's (seed
    42) every curve over `config.EASE_L2S` had one peak, so the walk chooses what the whole
    grid does, with up to 4 fewer fits (~3 s each at ML-1M size)."""
    fit = ev.interactions(validation.train, ids)
    held = ev.interactions(validation.test, ids)
    gram = ev.ease_gram(fit)
    scores: dict[float, float] = {}
    for l2 in sorted(grid):
        scores[float(l2)] = ev.evaluate_ranking(ev.ease_scores(fit, l2, gram), fit, held,
                                                k)[0][f"ndcg@{k}"]
        best_at = list(scores).index(max(scores, key=scores.get))
        if len(scores) - 1 - best_at >= 2:
            break
    best = max(scores, key=scores.get)
    log.info("EASE: l2 %g chosen on validation (nDCG@%d %s)", best, k,
             ", ".join(f"{a:g}: {b:.4f}" for a, b in scores.items()))
    return best, scores


def write_recs(recs: np.ndarray, users: np.ndarray, scores_fn, ids: IdMap, path: Path) -> Path:
    """``user_id,movie_id,rank,score`` for every evaluated user (rank 1 best)."""
    # The score of every listed movie, user batch by user batch (-1 padding gathers
    # column 0 and is dropped below).
    score = np.concatenate([
        np.take_along_axis(scores_fn(users[i:i + 2048]), np.maximum(recs[i:i + 2048], 0), axis=1)
        for i in range(0, len(users), 2048)])
    rows, ranks = np.nonzero(recs >= 0)
    frame = pd.DataFrame({C.USER_COL: ids.user_ids(users[rows]),
                          C.MOVIE_COL: ids.movie_ids(recs[rows, ranks]), "rank": ranks + 1,
                          "score": np.round(score[rows, ranks], 6)})
    with atomic.replacing(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def write_evaluation(out: Path, dataset: Dataset, split: ev.Split, table: pd.DataFrame,
                     recs: dict, users: np.ndarray, scorers: dict, ids: IdMap,
                     k: int) -> list[Path]:
    """What `python -m lib evaluate` leaves for others to re-score: ``metrics.json``
    (measured results, and apart from them the published ones where they apply), each
    model's lists as ``recs_<model>.csv``, and the split as ``train.csv`` / ``test.csv``
    (the format ``--split-dir`` reads). Every file is written atomically."""
    import json
    out = Path(out)
    written = []
    for model, top in recs.items():
        slug = model.split(" (")[0].replace(",", "").replace(" ", "_")
        written.append(write_recs(top, users, scorers[model], ids, out / f"recs_{slug}.csv"))
    for name, frame in (("train", split.train), ("test", split.test)):
        with atomic.replacing(out / f"{name}.csv") as tmp:
            frame[C.RATING_COLUMNS].to_csv(tmp, index=False)
        written.append(out / f"{name}.csv")
    report = {"dataset": dataset.name, "split": split.method, "k": k,
              "synthetic": dataset.synthetic, "train_ratings": len(split.train),
              "test_ratings": len(split.test),
              "measured": json.loads(table.to_json(orient="index"))}
    if dataset.name == "ml-100k" and k == 10 and split.method == "per-item 0.75 seed 42":
        report["published"] = C.PUBLISHED_ML100K
        report["published_source"] = ("Microsoft Recommenders benchmark on ML-100K "
                                      "(75/25 per item, seed 42, k = 10)")
    atomic.write_text(out / "metrics.json", json.dumps(report, indent=2))
    return [out / "metrics.json", *written]


def summarise_runs(runs: dict, k: int, dataset: str) -> tuple[pd.DataFrame, str]:
    """Means and standard deviations over seeds of `evaluate_all` tables, per split and
    model. `runs` maps ``(split, seed)`` to a table. Returns the long table (split, model,
    metric, mean, sd, seeds) and a Markdown table of the ranking metrics and RMSE, with the
    settings validation chose (epochs, EASE's L2) per seed."""
    metrics = [f"ndcg@{k}", f"hit_rate@{k}", f"mrr@{k}", f"precision@{k}", f"recall@{k}",
               f"map@{k}", "rmse"]
    chosen = [c for c in pd.concat(list(runs.values())).columns
              if c.startswith("chosen: ")] + ["l2"]
    rows = []
    for (split, seed), table in runs.items():
        for model, values in table.iterrows():
            rows += [{"split": split, "seed": seed, "model": model, "metric": m,
                      "value": values[m]} for m in metrics + chosen
                     if m in table.columns and pd.notna(values[m])]
    long = pd.DataFrame(rows)
    summary = (long[long["metric"].isin(metrics)]
               .groupby(["split", "model", "metric"], sort=False)["value"]
               .agg(mean="mean", sd="std", seeds="count").reset_index())
    seeds = sorted({seed for _, seed in runs})
    lines = [f"{dataset}, k = {k}: mean ± sd over seeds {', '.join(map(str, seeds))}", "",
             "| split | model | " + " | ".join(metrics) + " | chosen on validation, per seed |",
             "|---" * (len(metrics) + 3) + "|"]
    for (split, model), part in summary.groupby(["split", "model"], sort=False):
        cells = []
        for m in metrics:
            row = part[part["metric"] == m]
            if row.empty:
                cells.append("")
            elif pd.isna(row["sd"].iloc[0]):  # one seed: no spread to show
                cells.append(f"{row['mean'].iloc[0]:.4f}")
            else:
                cells.append(f"{row['mean'].iloc[0]:.4f} ± {row['sd'].iloc[0]:.4f}")
        picked = long[(long["split"] == split) & (long["model"] == model)
                      & long["metric"].isin(chosen)]
        settings = "; ".join(f"{m.removeprefix('chosen: ')}: " + "/".join(
                                 f"{v:g}" for v in grp["value"])
                             for m, grp in picked.groupby("metric", sort=False))
        lines.append(f"| {split} | {model} | " + " | ".join(cells) + f" | {settings} |")
    return summary, "\n".join(lines) + "\n"


# --- questions the notebooks ask of a trained stage 2 -------------------------------

def compare_inits(dataset: Dataset, ids: IdMap, split: ev.Split, movie_vectors: np.ndarray,
                  base: Stage2, *, inits: tuple[str, ...] = M.INIT_MODES,
                  k: int = C.DEFAULT_K, seed: int = C.SEED, progress: bool = False
                  ) -> pd.DataFrame:
    """Does starting from stage 1 help? The ranking model trained from each way of
    starting the movie table (`base` is reused for its own), same split, seed and
    protocol; test metrics, and how often test ratings of movies with fewer than 10
    training ratings reach the top k.
    """
    train = ev.interactions(split.train, ids)
    test = ev.interactions(split.test, ids)
    rows = {}
    for init in dict.fromkeys([base.init, *inits]):
        result = base if init == base.init else run_stage2(
            dataset, ids, split.train, movie_vectors, init=init, dim=base.settings["dim"],
            side=base.settings["side"], epochs=base.settings["max_epochs"],
            val_ratio=base.settings["val_ratio"], k=k, seed=seed, rating=False,
            validation=base.settings.get("validation", "random"),
            refit=base.settings["refit"], user_tower=base.settings.get("user_tower", "free"),
            history_dropout=base.settings.get("history_dropout", 0.5), progress=progress,
            **{n: base.settings[n] for n in C.RANKING_SEARCH if n in base.settings})
        metrics, top, users = ev.evaluate_ranking(result.scores(), train, test, k)
        few = ev.hits_by_popularity(top, test, users, train)["share in top-k"].iloc[0]
        rows[init] = {f"ndcg@{k}": metrics[f"ndcg@{k}"], f"recall@{k}": metrics[f"recall@{k}"],
                      f"top-{k} share, movies < 10 train ratings": few,
                      "epochs (ranking)": result.settings["ranking_epochs"]}
    return pd.DataFrame(rows).T


def planted_check(dataset: Dataset, ids: IdMap, stage2: Stage2) -> dict[str, float]:
    """On synthetic data, whether the user vectors hold each user's planted favourite
    genres (`evaluation.planted_genre_recovery`); empty on real data, which has no truth."""
    if not dataset.synthetic:
        return {}
    from lib.synthetic import load_truth
    truth = load_truth(dataset.path)
    rows = ids.user_rows(truth["user_ids"])
    # The truth's genre columns in the dataset's genre order (the CSV format lists them
    # in another order).
    columns = [list(truth["genres"]).index(g) for g in ids.genre_names(np.arange(ids.n_genres))]
    return ev.planted_genre_recovery(stage2.user_vectors()[rows], stage2.movie_vectors(),
                                     movie_genres(dataset, ids),
                                     truth["favourite_genres"][:, columns])
