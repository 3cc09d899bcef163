"""Training beyond one machine: `tf.distribute.MultiWorkerMirroredStrategy`, one process
per machine, the cluster named by the standard ``TF_CONFIG``.

Every worker holds the whole model (mirrored variables) and the whole training matrix;
each step, every worker takes its share of the same global batch of users and the
gradients are summed across workers (all-reduce), so all of them apply the same update.
What must be decided once is decided by the chief (worker 0) and shared: validation
scores, hence early stopping and the settings search, and the seconds the search budget
counts. Only the chief writes models. Without ``TF_CONFIG`` (or ``--workers``) nothing
here is active and training runs in one process as always.

`Cluster.start` must run before TensorFlow runs any operation in the process (the
strategy configures the runtime's collectives), which is why `python -m lib train`
calls it first.

Keras 3's ``model.fit`` fails under this strategy (keras-team/keras#20585) and Keras 3's
own ``keras.distribution`` is JAX-only; the ranking trainer (`models.train_ranking_model`)
is the project's own compiled loop and runs its steps under ``strategy.run``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re

import tensorflow as tf

from lib import config as C
from lib.errors import ClusterError, UsageError

log = logging.getLogger(__name__)
# The few eager all-reduces of scalars (`Cluster._reduce`) cost nothing worth a warning.
logging.getLogger("tensorflow").addFilter(
    lambda record: "eagerly has significant overhead" not in record.getMessage())
_ADDRESS = re.compile(r"^[A-Za-z0-9.\-]+:\d{1,5}$")
_ACTIVE: Cluster | None = None
# What a collective raises when a peer died, was killed or stopped answering.
LOST = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
        tf.errors.CancelledError, tf.errors.AbortedError, tf.errors.InternalError)


def tf_config(workers: str | list[str], index: int) -> dict:
    """The ``TF_CONFIG`` of worker `index` of `workers` (``"host:port,host:port"``).

    Raises:
        UsageError: an address that is not ``host:port``, a repeated one, or an index
            outside the list.
    """
    hosts = [w.strip() for w in workers.split(",")] if isinstance(workers, str) else list(workers)
    bad = [w for w in hosts if not _ADDRESS.match(w) or not 0 < int(w.rsplit(":", 1)[1]) < 65536]
    if bad or not hosts:
        raise UsageError(f"--workers: {', '.join(bad) or 'nothing'} is not host:port; give "
                         f"every worker's address, the same list on every machine, e.g. "
                         f"--workers 10.0.0.1:12345,10.0.0.2:12345")
    if len(set(hosts)) != len(hosts):
        raise UsageError(f"--workers lists an address twice: {','.join(hosts)}")
    if not 0 <= index < len(hosts):
        raise UsageError(f"--index {index} is outside the {len(hosts)} workers listed: give "
                         f"0 on the first machine (the chief), 1 on the next, ...")
    return {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}


def _from_env() -> dict | None:
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        spec = json.loads(text)
        workers, task = spec["cluster"]["worker"], spec["task"]
        if task.get("type", "worker") != "worker":
            raise ValueError("only 'worker' tasks are used (the chief is worker 0)")
        return tf_config(workers, int(task["index"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"TF_CONFIG is not a cluster of workers ({exc}); expected "
                         f'{{"cluster": {{"worker": ["host:port", ...]}}, '
                         f'"task": {{"type": "worker", "index": I}}}}, or unset it and '
                         f"pass --workers and --index") from None


class Cluster:
    """The workers of one training job and the few things they must agree on."""

    def __init__(self, spec: dict, timeout: float):
        self.workers = spec["cluster"]["worker"]
        self.index = spec["task"]["index"]
        self.chief = self.index == 0
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=timeout,
            implementation=tf.distribute.experimental.CommunicationImplementation.RING)
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        with self.strategy.scope():  # the first collective: every worker has joined
            tf.Variable(0.0)

    @classmethod
    def start(cls, workers: str | None = None, index: int | None = None,
              timeout: float = C.COLLECTIVE_TIMEOUT) -> Cluster | None:
        """Join the cluster named by `workers` and `index` (which then set ``TF_CONFIG``)
        or by ``TF_CONFIG``; None when neither names one. Blocks until every worker has
        started. `timeout` (seconds) bounds each collective, so a worker that hangs makes
        the others fail instead of waiting for ever (one that dies is noticed sooner, by
        its closed connection or missing heartbeats).
        """
        global _ACTIVE
        if (workers is None) != (index is None):
            raise UsageError("--workers and --index go together: the same --workers list on "
                             "every machine, and each machine's own --index")
        if workers is not None:
            spec = tf_config(workers, index)
            os.environ["TF_CONFIG"] = json.dumps(spec)
        else:
            spec = _from_env()
            if spec is None:
                return None
        if not timeout > 0:
            raise UsageError(f"--collective-timeout must be > 0 seconds, not {timeout!r}")
        log.info("worker %d of %d (%s): waiting for every worker to join",
                 spec["task"]["index"], len(spec["cluster"]["worker"]),
                 spec["cluster"]["worker"][spec["task"]["index"]])
        try:
            _ACTIVE = cls(spec, timeout)
        except RuntimeError as exc:
            raise ClusterError(f"could not start worker {spec['task']['index']}: {exc}; start "
                               f"the cluster before anything else uses TensorFlow in this "
                               f"process") from None
        return _ACTIVE

    @property
    def size(self) -> int:
        return len(self.workers)

    def describe(self) -> str:
        return (f"worker {self.index} of {self.size} ({self.workers[self.index]}"
                f"{', chief' if self.chief else ''})")

    def _reduce(self, op, value: float) -> float:
        # Eager: a few scalars an epoch. (Inside a tf.function, a value that is the same on
        # every replica is refused: "destinations can not be empty".)
        def replica(x):
            return tf.distribute.get_replica_context().all_reduce(op, x)

        out = self.strategy.run(replica, args=(tf.constant(value, tf.float64),))
        return float(self.strategy.experimental_local_results(out)[0])

    def total(self, value: float) -> float:
        """The sum of every worker's `value`."""
        return self._reduce(tf.distribute.ReduceOp.SUM, value)

    def chief_value(self, value: float | None) -> float:
        """The chief's `value` on every worker (the others may pass None)."""
        return self.total(float(value) if self.chief else 0.0)

    def gathered(self, value: float) -> list[float]:
        """Every worker's `value`, in worker order."""
        def replica(x):
            return tf.distribute.get_replica_context().all_gather(x[None], axis=0)

        out = self.strategy.run(replica, args=(tf.constant(value, tf.float64),))
        return [float(v) for v in self.strategy.experimental_local_results(out)[0]]

    def smallest(self, value: float) -> float:
        return min(self.gathered(value))

    def same(self, value: float, what: str) -> None:
        """Raise on every worker when workers hold different `value`s of `what`."""
        if len(set(self.gathered(value))) > 1:
            raise ClusterError(f"the workers disagree on {what}; every machine must hold "
                               f"the same files (data, models/<dataset>/choices.json) at "
                               f"the same paths")


def active() -> Cluster | None:
    """The cluster this process belongs to, or None when it trains alone."""
    return _ACTIVE


def is_chief() -> bool:
    """True on the worker that writes (worker 0), and in a process that trains alone."""
    return _ACTIVE is None or _ACTIVE.chief


def scope():
    """Where models that train on every worker are built (mirrored variables)."""
    return _ACTIVE.strategy.scope() if _ACTIVE is not None else contextlib.nullcontext()


def chief_value(value: float) -> float:
    """`value` as the chief has it, on every worker (unchanged when training alone): for
    what every worker must decide alike, such as the seconds a time budget counts."""
    return value if _ACTIVE is None else _ACTIVE.chief_value(value)


def lost(exc: BaseException) -> ClusterError:
    """The message for a collective that failed because a worker went away."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    who = _ACTIVE.describe() if _ACTIVE is not None else "this worker"
    return ClusterError(
        f"{who}: the cluster lost a worker ({type(exc).__name__}: {first[:200]}). Start "
        f"every worker again with the same command: training resumes from the last epoch "
        f"each of them saved")


def allreduce_bytes(model, batch_users: int) -> int:
    """Bytes each worker sends into the all-reduce of one step of the ranking trainer
    (`models.train_ranking_model`): float32 sums of the user rows on the global batch's
    `batch_users` places, and of every other trainable table whole. A ring all-reduce
    moves about twice this over each worker's link per step, whatever the number of
    workers."""
    user_table = model.get_layer("user_embedding").embeddings
    return sum(4 * math.prod([batch_users, *var.shape[1:]] if var is user_table else var.shape)
               for var in model.trainable_variables)
