"""Serving models: both stages trained on every rating, for what people are shown.

The notebooks train on 75% of the ratings so their test numbers are honest; the web app and
`python -m lib recommend` should use all of them. `train_serving` trains stage 1 and stage 2
on the whole ratings file, with the settings validation chooses there (the same held-out 10%
of each user's ratings that the notebooks' runs use, then a refit on everything), and writes
them to ``models/<dataset>/serving/`` with their manifests and the t-SNE map of the stage-2
movie vectors that the web app draws (`artifacts.save_map`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from lib import artifacts, stages
from lib import config as C
from lib import distributed as D
from lib.ids import IdMap

log = logging.getLogger(__name__)


@dataclass
class Served:
    folder: Path
    seconds: dict
    summary: str


def train_serving(dataset, root: Path | str | None = None, *, seed: int = C.SEED,
                  search_budget: float = C.SEARCH_BUDGET, user_tower: str = C.USER_TOWER,
                  sequential: bool = True, progress: bool = True) -> Served | None:
    """Train both stages on every rating of `dataset` and write the serving models; with
    `sequential`, also the sequential model (`lib.sequential`, from the stage-1 vectors,
    epochs chosen on each user's latest movie; it then reads every user's whole history)
    for the "next for you" lists.

    Stage 2's choices (tower, settings) are saved in ``models/<dataset>/choices.json`` like
    the notebooks' ones, so training again on the same ratings does not search again.

    On a cluster (`lib.distributed`), every worker trains stage 1 (seconds; the chief's
    vectors start stage 2 on all of them) and its share of stage 2's ranking model; then
    the workers other than the chief return None, and the chief alone trains the rating
    and sequential models and writes everything.
    """
    from lib import plots
    ids = IdMap.from_dataset(dataset)
    clock = time.perf_counter()
    s1 = stages.run_stage1(dataset, ids, seed=seed, progress=progress)
    seconds = {"stage 1": time.perf_counter() - clock}
    clock = time.perf_counter()
    s2 = stages.run_stage2(dataset, ids, dataset.ratings, s1.movie_vectors, seed=seed,
                           user_tower=user_tower, search_budget=search_budget,
                           choices=artifacts.choices_path(dataset.name, root),
                           progress=progress)
    seconds["stage 2"] = time.perf_counter() - clock
    if not D.is_chief():  # its share of the ranking model is trained; the chief writes
        return None
    clock = time.perf_counter()
    coords = plots.reduce_2d(s2.movie_vectors(), "tsne", seed=seed)
    seconds["map"] = time.perf_counter() - clock
    artifacts.save_stage1(s1, ids, dataset, root, serving=True)
    artifacts.save_stage2(s2, ids, dataset, split=artifacts.SERVING, root=root)
    artifacts.save_map(dataset.name, ids.movie_ids(range(ids.n_movies)), coords, root)
    lines = [s1.summary(), s2.summary()]
    if sequential:
        from lib import sequential as S
        clock = time.perf_counter()
        seq = S.fit_sequential(dataset.ratings, ids, movie_init=s1.movie_vectors, seed=seed,
                               progress=progress)
        seconds["sequential"] = time.perf_counter() - clock
        artifacts.save_sequential(seq, ids, dataset, split=artifacts.SERVING, root=root)
        lines.append(seq.summary())
    else:  # an older one would answer beside models it was not trained with
        artifacts.remove_sequential(dataset.name, root, serving=True)
    return Served(artifacts.serving_dir(dataset.name, root), seconds, "\n".join(lines))
