"""Stage 2 on several workers (`lib.distributed`): two processes on 127.0.0.1, one thread
each, on the tiny synthetic data; and the per-epoch checkpoints (`lib.checkpoints`)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from lib import checkpoints as CK
from lib import data
from lib import distributed as D
from lib import models as M
from lib.errors import ArtifactError, UsageError

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "cluster_worker.py"
GUARD = 120  # seconds a worker may take to notice that the other one died


def _addresses(n: int = 2) -> str:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ",".join(f"127.0.0.1:{p}" for p in ports)


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_NUM_INTRAOP_THREADS": "1",
            "TF_NUM_INTEROP_THREADS": "1", "DATA_DIR": str(tmp_path / "data"),
            "MODELS_DIR": str(tmp_path / "models"), "RUNS_DIR": str(tmp_path / "runs")}


@pytest.fixture
def tiny_data(tmp_path):
    data.load_dataset("synthetic-tiny", tmp_path / "data")  # written once, read by both
    return tmp_path


# --- the cluster's settings ---------------------------------------------------------------

@pytest.mark.parametrize("workers, index, words", [
    ("127.0.0.1:1234,127.0.0.1", 0, "is not host:port"),
    ("127.0.0.1:1234,127.0.0.1:1234", 1, "twice"),
    ("127.0.0.1:1234,127.0.0.1:1235", 2, "--index 2 is outside the 2 workers"),
    ("127.0.0.1:99999", 0, "is not host:port"),
])
def test_a_bad_worker_list_is_named(workers, index, words):
    with pytest.raises(UsageError, match=words):
        D.tf_config(workers, index)


def test_tf_config_names_every_worker_and_this_one():
    spec = D.tf_config("10.0.0.1:12345, 10.0.0.2:12345", 1)
    assert spec == {"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                    "task": {"type": "worker", "index": 1}}


def test_without_a_cluster_nothing_changes(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert D.Cluster.start() is None and D.active() is None and D.is_chief()
    assert D.chief_value(2.5) == 2.5
    with pytest.raises(UsageError, match="go together"):
        D.Cluster.start("127.0.0.1:1234", None)
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(UsageError, match="TF_CONFIG is not a cluster"):
        D.Cluster.start()


# --- checkpoints ----------------------------------------------------------------------------

def _tiny_fit(tmp_path, epochs, job="job"):
    """A 6-user ranking model trained with checkpoints under `tmp_path`."""
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1],
                                    [1, 0, 0, 1], [1, 1, 1, 0], [0, 1, 0, 1]], np.float32))
    M.seed_everything(3)
    model = M.build_ranking_model(6, 4, 4, init="random", dropout=0.0, seed=3)
    CK.start(job, tmp_path)
    try:
        history = M.train_ranking_model(model, train, {}, epochs=epochs, batch_users=4,
                                        seed=3, progress=False)
    finally:
        CK.stop()
    return model, history


def test_a_stopped_run_resumes_where_it_stopped_and_ends_as_an_unbroken_one(tmp_path,
                                                                           monkeypatch):
    whole, _ = _tiny_fit(tmp_path / "a", epochs=6)
    save = CK.Fit.save

    def killed_after_epoch_3(self, variables, state, done=False):
        save(self, variables, state, done)
        if state["epoch"] == 3:
            raise KeyboardInterrupt  # what a killed job leaves: epoch 3 saved, no more

    monkeypatch.setattr(CK.Fit, "save", killed_after_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        _tiny_fit(tmp_path / "b", epochs=6)
    fit = tmp_path / "b" / "job" / "worker-0" / "fit-000"
    assert sorted(p.name for p in fit.iterdir()) == ["epoch-0002", "epoch-0003"]
    monkeypatch.setattr(CK.Fit, "save", save)
    resumed, history = _tiny_fit(tmp_path / "b", epochs=6)
    assert list(history["epoch"]) == [1, 2, 3, 4, 5, 6]
    assert sorted(p.name for p in fit.iterdir()) == ["done"]
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_a_checkpoint_of_other_settings_is_refused(tmp_path):
    _tiny_fit(tmp_path, epochs=2)
    with pytest.raises(ArtifactError, match="other epochs"):
        _tiny_fit(tmp_path, epochs=3)


def test_epoch_orders_are_the_same_after_a_resume():
    one = M.EpochOrders(np.arange(10), seed=5)
    straight = [one(e) for e in range(4)]
    resumed = M.EpochOrders(np.arange(10), seed=5)
    np.testing.assert_array_equal(resumed(3), straight[3])


# --- two processes on loopback ------------------------------------------------------------

def _wait(procs, timeout):
    out = []
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"a worker was still running after {timeout} s")
        out.append(p.returncode)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_two_workers_end_equal_to_each_other_and_to_one_process(tiny_data, loss):
    env, workers = _env(tiny_data), _addresses()
    files = [tiny_data / f"w{i}.npz" for i in range(3)]
    args = [[workers, "0"], [workers, "1"], ["-", "0"]]
    procs = [subprocess.Popen([sys.executable, str(WORKER), *a, str(tiny_data / "data"),
                               str(f), "0", loss], env=env, stderr=subprocess.PIPE, text=True)
             for a, f in zip(args, files, strict=True)]
    codes = _wait(procs, 300)
    assert codes == [0, 0, 0], [p.stderr.read()[-2000:] for p in procs]
    w0, w1, alone = (np.load(f) for f in files)
    assert len(w0.files) == 4  # user table, movie table, movie bias, loss
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key])  # both workers apply the same sums
        # One process adds the same numbers in another order: float32 round-off only.
        np.testing.assert_allclose(w0[key], alone[key], rtol=1e-4, atol=1e-6)


def _train(env, workers, index, out: Path):
    return subprocess.Popen(
        [sys.executable, "-m", "lib", "train", "--dataset", "synthetic-tiny",
         "--no-sequential", "--search-budget", "0", "--collective-timeout", "60",
         "--workers", workers, "--index", str(index)],
        cwd=ROOT, env=env, stdout=out.open("w"), stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_a_killed_worker_stops_the_other_and_a_restart_resumes(tiny_data):
    env, workers = _env(tiny_data), _addresses()
    logs = [tiny_data / f"first-{i}.log" for i in range(2)]
    procs = [_train(env, workers, i, logs[i]) for i in range(2)]
    runs = tiny_data / "runs" / "checkpoints"
    deadline = time.monotonic() + 300
    while not list(runs.glob("*/worker-1/fit-001/epoch-*")):  # the second run has begun
        assert time.monotonic() < deadline and procs[1].poll() is None, logs[1].read_text()
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGKILL)
    assert _wait(procs[:1], GUARD) == [3]
    said = logs[0].read_text()
    assert "error: worker 0 of 2" in said and "the cluster lost a worker" in said
    assert "Start every worker again with the same command" in said
    assert not (tiny_data / "models" / "synthetic-tiny" / "serving").exists()

    workers = _addresses()  # the same command on fresh ports (the old ones may linger)
    logs = [tiny_data / f"again-{i}.log" for i in range(2)]
    procs = [_train(env, workers, i, logs[i]) for i in range(2)]
    assert _wait(procs, 600) == [0, 0], logs[0].read_text()[-3000:]
    said = logs[0].read_text()
    assert "resuming fit-000 from its finished run" in said
    assert "resuming fit-001 from epoch" in said
    assert "serving models written to" in said
    assert "done; the chief writes the models" in logs[1].read_text()
    assert not list(runs.glob("*/worker-*"))  # removed once the models are written
    from lib.recommend import Engine
    ds = data.load_dataset("synthetic-tiny", tiny_data / "data", generate=False)
    engine = Engine.load(ds, tiny_data / "models", serving=True)
    top = engine.recommend(int(ds.ratings["user_id"].iloc[0]), k=5)
    assert len(top) == 5


def test_allreduce_bytes_count_the_batch_user_rows_and_the_whole_tables():
    model = M.build_ranking_model(6, 4, 4, init="random")
    # user rows on 3 batch places x 4 dims + movie table 4 x 4 + 4 biases = 36 floats
    assert D.allreduce_bytes(model, batch_users=3) == 4 * (3 * 4 + 4 * 4 + 4)
