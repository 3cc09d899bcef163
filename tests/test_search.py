"""The settings search: which runs it makes, what it keeps, how the budget bounds it."""
from __future__ import annotations

import pandas as pd
import pytest

from lib import search

AXES = {"l2": (0.03, 0.3), "lr": (1e-3, 1e-2)}
START = {"l2": 0.1, "lr": 3e-3}


def _search(*args, **kwargs):
    best, result, trials = search.coordinate_search(*args, **kwargs)
    return best, result, pd.DataFrame(trials)


def _bowl(best_l2, best_lr):
    """A validation score that peaks at (best_l2, best_lr); records every call."""
    calls = []

    def train(opts):
        calls.append(dict(opts))
        score = -abs(opts["l2"] - best_l2) - abs(opts["lr"] - best_lr) * 10
        return score, f"model {opts['l2']:g}/{opts['lr']:g}"
    return train, calls


def test_each_axis_moves_from_the_best_so_far():
    train, calls = _bowl(0.3, 1e-2)
    best, result, trials = _search(train, START, AXES, budget=1e9)
    assert best == {"l2": 0.3, "lr": 1e-2} and result == "model 0.3/0.01"
    # l2 tried at the start's lr; lr then tried at the better l2 (0.3), not the start's.
    assert calls == [START, {"l2": 0.03, "lr": 3e-3}, {"l2": 0.3, "lr": 3e-3},
                     {"l2": 0.3, "lr": 1e-3}, {"l2": 0.3, "lr": 1e-2}]
    assert list(trials["status"]) == ["tried"] * 4 + ["best"]


def test_lower_is_better_when_minimising_and_the_start_can_win():
    train, _ = _bowl(0.03, 1e-3)
    best, _, _ = _search(lambda o: (-train(o)[0], None), START, AXES,
                                          budget=1e9, maximise=False)
    assert best == {"l2": 0.03, "lr": 1e-3}
    train, _ = _bowl(0.1, 3e-3)
    best, result, trials = _search(train, START, AXES, budget=1e9)
    assert best == START and result == "model 0.1/0.003"
    assert trials["status"].iloc[0] == "best" and (trials["status"] == "best").sum() == 1


def test_the_budget_skips_trials_it_cannot_afford(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(search.time, "perf_counter", lambda: now[0])
    train, calls = _bowl(0.3, 1e-2)

    def slow(opts):  # every run takes 10 s of the fake clock
        now[0] += 10.0
        return train(opts)

    # 10 s spent on the start, the longest trial took 10 s: with 25 s one more fits.
    best, _, trials = _search(slow, START, AXES, budget=25)
    assert calls == [START, {"l2": 0.03, "lr": 3e-3}]
    assert list(trials["status"]) == ["best", "tried", "skipped", "skipped", "skipped"]
    assert list(trials["seconds"]) == [10.0, 10.0, 0.0, 0.0, 0.0]
    # A first run given with its seconds counts against the budget the same way.
    train, calls = _bowl(0.3, 1e-2)
    _search(slow, START, AXES, budget=25, first=(-1.0, "given", 20.0))
    assert calls == []
    # A zero budget trains the start only.
    train, calls = _bowl(0.3, 1e-2)
    best, _, trials = _search(train, START, AXES, budget=0)
    assert calls == [START] and best == START
    assert list(trials["status"]) == ["best"] + ["skipped"] * 4


def test_bad_arguments_are_named():
    train, _ = _bowl(0.1, 3e-3)
    with pytest.raises(ValueError, match=r"lack \['lr'\]"):
        _search(train, {"l2": 0.1}, AXES, budget=1)
    with pytest.raises(ValueError, match="budget must be >= 0"):
        _search(train, START, AXES, budget=-1)
