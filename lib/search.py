"""Training settings chosen on validation: a small coordinate search within a time budget.

Each trial is a full training run that stops on its own patience; the search only decides
which runs to make. From the starting settings it walks the axes in order, trying each
other value of one axis with every other setting at the best found so far, and keeps a
value when validation prefers it. Before a trial it checks the clock: when the seconds
spent plus those of the longest trial so far would pass the budget, the trial is skipped
and recorded as such, so the budget bounds the search and never a training run (a trial
longer than any before can still overrun it by the difference).

A grid this small is cheaper than a library search (KerasTuner and Optuna would both
wrap the project's own trainers the same way, and an 8-trial budget is below what their
samplers need to beat a fixed order).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from lib import distributed as D

log = logging.getLogger(__name__)


def coordinate_search(train: Callable[[dict], tuple[float, object]], start: dict,
                      axes: dict[str, tuple], *, budget: float, maximise: bool = True,
                      first: tuple[float, object, float] | None = None, name: str = "search",
                      describe: Callable[[object], dict] | None = None,
                      on_every_worker: bool = True) -> tuple[dict, object, list[dict]]:
    """Search `axes` around `start` within `budget` seconds.

    Args:
        train: ``train(settings) -> (validation score, result)``, one full training run.
        start: the settings of the first trial (every axis must have a value there).
        axes: setting -> the other values to try, in order.
        budget: seconds for the whole search (the first trial included); 0 tries nothing
            beyond `start`. A trial is made while the seconds spent plus those of the
            longest trial so far stay within it.
        maximise: whether a higher score is better (nDCG) or a lower one (RMSE).
        first: ``(score, result, seconds)`` of `start` when it was already trained.
        describe: more columns for a trial from its result (e.g. epochs and why it
            stopped).
        on_every_worker: on a cluster (`lib.distributed`), whether every worker runs this
            search (their clocks are then the chief's) or the chief alone.

    Returns:
        ``(best settings, best result, trials)``: one dict per trial in order, with its
        settings, ``score`` (None when skipped), ``seconds`` and ``status`` (``"best"`` for
        the one kept, ``"tried"``, or ``"skipped"`` when the budget would have been
        passed): plain values, saved as they are in settings and manifests.
    """
    missing = sorted(set(axes) - set(start))
    if missing:
        raise ValueError(f"{name}: the starting settings lack {missing}")
    if budget < 0:
        raise ValueError(f"{name}: budget must be >= 0 seconds, not {budget!r}")
    clock = time.perf_counter()
    if first is None:
        score, result = train(dict(start))
        first = (score, result, time.perf_counter() - clock)
    score, result, seconds = first
    # On a cluster every worker must skip the same trials: the chief's clock decides
    # (unless only the chief runs this search).
    agreed = D.chief_value if on_every_worker else float
    seconds = agreed(seconds)
    def about(result):
        return describe(result) if describe is not None else {}

    trials = [{**start, "score": score, "seconds": seconds, "status": "tried", **about(result)}]
    best, best_score, best_result, best_row = dict(start), score, result, 0
    spent = seconds
    for axis, values in axes.items():
        for value in values:
            if value == best[axis]:
                continue
            candidate = {**best, axis: value}
            longest = max(t["seconds"] for t in trials if t["status"] != "skipped")
            if budget <= 0 or spent + longest > budget:
                trials.append({**candidate, "score": None, "seconds": 0.0,
                               "status": "skipped"})
                continue
            clock = time.perf_counter()
            score, result = train(dict(candidate))
            took = agreed(time.perf_counter() - clock)
            spent += took
            trials.append({**candidate, "score": score, "seconds": took, "status": "tried",
                           **about(result)})
            log.info("%s: %s -> %.4f (%.1f s)", name,
                     ", ".join(f"{a} {candidate[a]:g}" for a in axes), score, took)
            if (score > best_score) if maximise else (score < best_score):
                best, best_score, best_result = candidate, score, result
                best_row = len(trials) - 1
    trials[best_row]["status"] = "best"
    return best, best_result, trials
