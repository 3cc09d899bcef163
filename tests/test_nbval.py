"""nbval on the committed notebooks: cells marked `# NBVAL_CHECK_OUTPUT` must print what
they printed when the notebooks were committed.

The notebooks are committed as run on the real MovieLens 100K and are checked on the
dataset they were committed with (read from their recorded numbers), pinned with
papermill's parameter injection. The MovieLens files are never in the repository: the
setup copies them from ../shared/datasets/ml-100k (or ML100K_DIR) into the git-ignored
data/ml-100k/, and where neither exists these tests are skipped with one line saying so.
The notebooks run in order and share one models folder, as in the pipeline (notebook 03
reads what 02 saved). Optional extra work that no checked cell depends on (notebook 03's
initialisation comparison) is switched off to keep the suite short.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import papermill as pm
import pytest
from conftest import ML100K_DIR

from lib import config as C
from lib.data import is_present
from lib.download import install_folder
from lib.errors import DownloadError
from lib.pipeline import notebooks, read_records

NOTEBOOKS = notebooks()


FAST = {"COMPARE": False}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return tmp_path_factory.mktemp("nbval")


def _ensure(dataset: str) -> None:
    """The committed notebooks' dataset in data/: ML-100K is copied in where it exists."""
    if dataset in C.SYNTHETIC_SIZES or is_present(dataset):
        return
    if dataset == "ml-100k" and (ML100K_DIR / "u.data").is_file():
        try:
            install_folder(ML100K_DIR, "ml-100k")
            return
        except DownloadError as exc:
            pytest.skip(f"nbval skipped: {exc}")
    pytest.skip(f"nbval skipped: the notebooks were committed on {dataset}, which is neither "
                f"in data/{dataset} nor in ML100K_DIR ({ML100K_DIR}); set ML100K_DIR to an "
                f"unpacked copy to run it")


def _pinned_copy(path, folder):
    dataset = read_records(path).get("dataset")
    assert dataset, f"{path.name}: no recorded dataset; run `make notebooks`"
    _ensure(dataset)
    source = path.read_text(encoding="utf-8")
    params = {"DATASET": dataset, **{k: v for k, v in FAST.items() if f"{k} = " in source}}
    target = folder / path.name
    pm.execute_notebook(str(path), str(target), parameters=params, prepare_only=True,
                        progress_bar=False)
    return target


def _nbval(target, env_dir):
    env = {**os.environ, "FIGURES_DIR": str(env_dir / "figures"),
           "MODELS_DIR": str(env_dir / "models"), C.HEADLESS_ENV: "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=900",
                           "-o", "addopts=", str(target)],
                          capture_output=True, text=True, env=env, cwd=target.parent)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_outputs_hold(path, shared):
    target = _pinned_copy(path, shared)
    proc = _nbval(target, shared)
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_nbval_catches_a_changed_checked_output(tmp_path):
    """Edit one checked output in a scratch copy: nbval must fail on it."""
    path = NOTEBOOKS[0]
    target = _pinned_copy(path, tmp_path)
    nb = json.loads(target.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code"
                and "NBVAL_CHECK_OUTPUT" in "".join(c["source"]))
    stream = next(o for o in cell["outputs"] if o["output_type"] == "stream")
    stream["text"] = ["".join(stream["text"]).replace("ratings: ", "ratings: 1", 1)]
    target.write_text(json.dumps(nb), encoding="utf-8")
    proc = _nbval(target, tmp_path)
    assert proc.returncode != 0
    assert "1 failed" in proc.stdout
