"""Per-epoch checkpoints, so a training job that was stopped (a worker died, the machine
rebooted) resumes from its last finished epoch instead of starting over.

A job (`python -m lib train`) is a fixed sequence of training runs (stage 2's towers,
settings trials, refit), so the n-th run of a job is the same run when the job starts
again; each gets a folder ``fit-NNN`` under the job's folder, which every worker keeps on
its own disk (``worker-I``), so no shared file system is needed. After each epoch a run
writes ``epoch-NNNN/`` (its model and optimizer variables, the early-stopping state and
the best weights so far), a whole folder renamed into place (`lib.atomic`), keeping the
last two; a finished run keeps only ``done/``. On a restart the workers agree on the
latest epoch all of them hold, so one that died while saving does not split them.
Checkpoints live under ``runs/``, never ``models/``, and the job removes them once its
models are written.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

from lib import atomic
from lib import config as C
from lib import distributed as D
from lib.errors import ArtifactError

log = logging.getLogger(__name__)
_DONE = 10 ** 6  # a finished run counts as the latest epoch of all
_ACTIVE: Job | None = None


def job_key(**identity) -> str:
    """A short name for a job from what makes it the same job (data, seed, settings)."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class Job:
    """The checkpoints of one job on this worker; `fit()` hands out the next run's."""

    def __init__(self, name: str, root: Path | str | None = None):
        index = 0 if D.active() is None else D.active().index
        self.root = Path(root or C.CHECKPOINTS_DIR) / name
        self.folder = self.root / f"worker-{index}"
        self.count = 0

    def fit(self, fingerprint: dict) -> Fit:
        store = Fit(self.folder / f"fit-{self.count:03d}", fingerprint)
        self.count += 1
        return store

    def remove(self) -> None:
        """Drop this worker's checkpoints (the job's models are written)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.root.is_dir() and not any(self.root.iterdir()):
            self.root.rmdir()


def start(name: str, root: Path | str | None = None) -> Job:
    """Checkpoint every training run from now on under job `name` (see the module)."""
    global _ACTIVE
    _ACTIVE = Job(name, root)
    return _ACTIVE


def stop() -> None:
    global _ACTIVE
    _ACTIVE = None


def next_fit(fingerprint) -> Fit | None:
    """The checkpoints of the next training run of the active job, or None (then
    `fingerprint`, a function returning the run's identity, is not called)."""
    return None if _ACTIVE is None else _ACTIVE.fit(fingerprint())


def fingerprint_of(matrix, **settings) -> dict:
    """What identifies a training run: its training matrix and its settings."""
    digest = hashlib.sha256()
    for part in (matrix.indptr, matrix.indices):
        digest.update(np.ascontiguousarray(part).tobytes())
    return {"shape": list(matrix.shape), "nnz": int(matrix.nnz),
            "ratings_sha256": digest.hexdigest(), **settings}


class Fit:
    """One training run's epoch checkpoints on this worker."""

    def __init__(self, folder: Path, fingerprint: dict):
        self.folder = folder
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))

    def _saved(self) -> dict[int, Path]:
        if not self.folder.is_dir():
            return {}
        out = {}
        for path in self.folder.iterdir():
            if path.name == "done":
                out[_DONE] = path
            elif path.name.startswith("epoch-") and path.name[6:].isdigit():
                out[int(path.name[6:])] = path
        return out

    def restore(self, variables: list) -> dict | None:
        """Load the latest epoch every worker holds into `variables` and return its state
        (``epoch``, ``history``, ``waited``, ``reference``, ``best``, ``best_weights``,
        ``done``), or None to start from the first epoch.

        Raises:
            ArtifactError: the checkpoint was written by a run with other settings or data.
        """
        saved = self._saved()
        latest = max(saved, default=-1)
        cluster = D.active()
        if cluster is not None:  # one that died while saving may lag one epoch behind
            latest = int(cluster.smallest(latest))
            if not cluster.smallest(1.0 if latest in saved or latest < 0 else 0.0):
                latest = -1
        if latest < 0:
            return None
        where = saved[latest]
        state = json.loads((where / "state.json").read_text())
        if state["fingerprint"] != self.fingerprint:
            changed = sorted(k for k in set(state["fingerprint"]) | set(self.fingerprint)
                             if state["fingerprint"].get(k) != self.fingerprint.get(k))
            raise ArtifactError(f"{C.shown(where)} was saved by a training run with other "
                                f"{', '.join(changed)}; remove {C.shown(self.folder.parent)} "
                                f"to start this job over")
        _checkpoint(variables).read(str(where / "variables")).assert_consumed()
        with np.load(where / "best.npz") as best:
            state["best_weights"] = [best[f"w{i}"] for i in range(len(best.files))] or None
        log.info("resuming %s from %s", self.folder.name,
                 "its finished run" if latest == _DONE else f"epoch {latest}")
        return state

    def save(self, variables: list, state: dict, done: bool = False) -> None:
        """Write the state after an epoch (or, with `done`, the finished run)."""
        saved = self._saved()
        name = "done" if done else f"epoch-{state['epoch']:04d}"
        best = state.get("best_weights") or []
        with atomic.staged_folder(self.folder / name) as tmp:
            _checkpoint(variables).write(str(tmp / "variables"))
            np.savez(tmp / "best.npz", **{f"w{i}": w for i, w in enumerate(best)})
            meta = {k: v for k, v in state.items() if k != "best_weights"}
            (tmp / "state.json").write_text(json.dumps(
                {**meta, "fingerprint": self.fingerprint}, default=float))
        keep = {_DONE} if done else set(sorted(saved)[-1:]) | {state["epoch"]}
        for epoch, path in saved.items():
            if epoch not in keep:
                shutil.rmtree(path, ignore_errors=True)


def _checkpoint(variables: list) -> tf.train.Checkpoint:
    return tf.train.Checkpoint(**{f"v{i:04d}": getattr(v, "value", v)
                                  for i, v in enumerate(variables)})
