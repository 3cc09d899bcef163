"""Run the numbered notebooks headless with papermill, and record their headline numbers.

A notebook's last cell calls `record(...)`: the numbers are shown in the notebook and kept
in its output under a MIME type of their own, so `read_records` can read them back from an
executed notebook (what the tests check) without side files.
"""
from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

from lib import config as C
from lib.errors import PipelineError

log = logging.getLogger(__name__)
RECORD_MIME = "application/vnd.movielens-embeddings.record+json"


def notebooks(folder: Path | str = C.NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks (`NN_name.ipynb`) in run order."""
    return sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))


def record(values: dict) -> None:
    """Show a notebook's headline numbers and keep them for `read_records`."""
    from IPython.display import display
    clean = json.loads(json.dumps(values, default=_plain))
    width = max(map(len, clean), default=0)
    text = "\n".join(f"{k:<{width}}  {_show(v)}" for k, v in clean.items())
    display({RECORD_MIME: clean, "text/plain": text}, raw=True)


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _show(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def open_dataset(dataset: str = C.DEFAULT_DATASET, data_dir: Path | str | None = None):
    """What every notebook opens with: resolve the dataset name (``auto``), load it, and
    say in the notebook which data its numbers come from (`banner`).

    Args:
        dataset: a dataset name or ``"auto"``.
        data_dir: parent folder of the releases; ``""`` or None means `config.DATA_DIR`.

    Returns:
        The loaded `data.Dataset` (its ``name`` is the resolved name).
    """
    from lib import data
    name, folder = data.resolve_dataset(dataset, data_dir or None)
    ds = data.load_dataset(name, folder)
    banner(ds)
    return ds


def banner(dataset) -> None:
    """Say in the notebook which data its numbers come from, loudly if synthetic."""
    from IPython.display import Markdown, display
    counts = dataset.counts()
    what = (f"**{dataset.name}**: {counts['ratings']:,} ratings, {counts['users']:,} users, "
            f"{counts['movies']:,} movies, from `{C.shown(dataset.path)}`")
    if dataset.synthetic:
        display(Markdown(f"> ⚠️ **Synthetic data.** MovieLens 1M was not found in the data "
                         f"folder and could not be downloaded, so this notebook runs on the "
                         f"built-in synthetic dataset in the ML-1M format. Its numbers are "
                         f"**not MovieLens results**. To use the real data: "
                         f"`python -m lib data download ml-1m`.\n>\n> {what}"))
    else:
        display(Markdown(what))


def read_records(path: Path | str) -> dict:
    """The numbers a notebook recorded with `record` (merged, in order)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    found: dict = {}
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            if RECORD_MIME in output.get("data", {}):
                found.update(output["data"][RECORD_MIME])
    return found


def run(dataset: str = C.DEFAULT_DATASET, data_dir: Path | str | None = None, *,
        parameters: dict | None = None, out_dir: Path | str | None = None,
        source: Path | str = C.NOTEBOOKS_DIR, only: list[str] | None = None,
        in_place: bool = False, progress: bool = True) -> list[Path]:
    """Execute the numbered notebooks in order with papermill.

    Args:
        dataset: a dataset name or ``"auto"`` (resolved once, here, for every notebook).
        data_dir: parent folder of the datasets; default `config.DATA_DIR`.
        parameters: more notebook parameters, e.g. ``{"EPOCHS": 3}``.
        out_dir: where executed copies go; default ``runs/<dataset>/``.
        source: folder of the notebooks.
        only: run just the notebooks whose names start with one of these (``["01"]``).
        in_place: overwrite the notebooks in `source` with their executed copies (what is
            committed; `make notebooks` runs them on ML-100K).
        progress: show papermill's progress bar per notebook.

    Returns:
        The executed notebooks.

    Raises:
        PipelineError: names the notebook, the cell and the error of the first failure.
    """
    import papermill as pm

    from lib.data import resolve_dataset

    params = dict(parameters or {})
    name, data_dir = resolve_dataset(dataset, data_dir)
    params["DATASET"] = name
    if data_dir is not None:
        params["DATA_DIR"] = str(data_dir)
    out = Path(out_dir or C.RUNS_DIR / name)
    out.mkdir(parents=True, exist_ok=True)
    todo = [p for p in notebooks(source) if not only or p.name.startswith(tuple(only))]
    if not todo:
        raise PipelineError(f"no numbered notebooks in {source}")
    done = []
    for i, path in enumerate(todo, 1):
        target = out / path.name
        log.info("[%d/%d] %s -> %s", i, len(todo), path.name, target)
        start = time.perf_counter()
        try:
            with _kernel_env():
                pm.execute_notebook(str(path), str(target), parameters=params,
                                    cwd=str(path.parent), kernel_name="python3",
                                    progress_bar=progress, prepare_only=False)
        except pm.PapermillExecutionError as exc:
            first = next((ln for ln in exc.source.splitlines()
                          if ln.strip() and not ln.startswith("#")), "")
            raise PipelineError(f"{path.name} failed in cell In [{exc.exec_count}] "
                                f"(`{first.strip()[:60]}`): {exc.ename}: {exc.evalue}\n"
                                f"The executed copy, with the error, is "
                                f"{C.shown(target)}") from None
        log.info("%s done in %.1f s", path.name, time.perf_counter() - start)
        if in_place:
            _for_readers(target, path)
        done.append(target)
    return done


@contextmanager
def _kernel_env():
    """The environment the notebook kernels inherit: headless (no progress bars, figures
    as PNG), TensorFlow's start-up lines off."""
    wanted = {C.HEADLESS_ENV: "1", "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _for_readers(executed: Path, committed: Path) -> None:
    """Copy an executed notebook over the committed one, without papermill's injected
    parameters and with its record of the machine's absolute paths made relative."""
    nb = json.loads(executed.read_text(encoding="utf-8"))
    # Without papermill's injected cell, a reader's own run keeps the defaults ("auto");
    # the banner and the recorded numbers say which data the stored outputs came from.
    nb["cells"] = [c for c in nb["cells"]
                   if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    meta = nb.get("metadata", {}).get("papermill", {})
    for key in ("input_path", "output_path"):
        if meta.get(key):
            meta[key] = Path(meta[key]).name
    meta.get("parameters", {}).pop("DATA_DIR", None)
    committed.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
