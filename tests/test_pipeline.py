"""The papermill pipeline on small synthetic data, and the numbers notebooks record."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest

from lib import config as C
from lib.data import load_dataset, summary
from lib.pipeline import PipelineError, read_records, run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """All notebooks, run once by the command line on `synthetic-tiny`, outside the repo."""
    root = tmp_path_factory.mktemp("pipeline")
    env = {**os.environ, "FIGURES_DIR": str(root / "figures"),
           "MODELS_DIR": str(root / "models")}
    proc = subprocess.run([sys.executable, "-m", "lib", "run", "--dataset", "synthetic-tiny",
                           "--data-dir", str(root / "data"), "--out", str(root / "runs")],
                          capture_output=True, text=True, env=env, cwd=C.PROJ_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def test_explore_records_the_dataset_numbers(tiny_run):
    rec = read_records(tiny_run / "runs" / "01_explore.ipynb")
    ds = load_dataset("synthetic-tiny", tiny_run / "data")
    expected = summary(ds)
    assert rec["dataset"] == "synthetic-tiny" and rec["synthetic"] is True
    assert {k: rec[k] for k in ("ratings", "users", "movies", "rated_movies")} == \
        {"ratings": 24_000, "users": 300, "movies": 400, "rated_movies": 380}
    assert rec["density"] == pytest.approx(expected["density"], rel=1e-9)
    assert rec["facts_passed"] == rec["facts_checked"] == 8
    figures = tiny_run / "figures" / "synthetic-tiny"
    for name in ("rating_distribution", "genre_cooccurrence", "demographics"):
        assert (figures / f"{name}.png").stat().st_size > 5_000
        assert (figures / f"{name}.html").is_file()
    # Interactive pages share one local plotly.js and fetch nothing from the internet.
    assert (figures / "plotly.min.js").stat().st_size > 1_000_000
    page = (figures / "genre_counts.html").read_text(encoding="utf-8")
    assert 'src="plotly.min.js"' in page and "cdn.plot.ly" not in page


def test_every_notebook_has_parameters_and_no_stored_error():
    for path in sorted(C.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), path.name
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors, f"{path.name} has a stored error output"
        assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code"), \
            f"{path.name} is committed without outputs: run `make notebooks`"


def test_a_failing_notebook_is_named_with_its_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    params = nbformat.v4.new_code_cell('DATASET = "auto"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("raise ValueError('the planted failure')")]
    (tmp_path / "nbs").mkdir()
    nbformat.write(nb, tmp_path / "nbs" / "01_broken.ipynb")
    with pytest.raises(PipelineError) as info:
        run("synthetic-tiny", tmp_path / "data", source=tmp_path / "nbs",
            out_dir=tmp_path / "runs", progress=False)
    text = str(info.value)
    # The third cell runs fourth, after the parameters papermill injects.
    assert "01_broken.ipynb failed in cell In [4] (`raise ValueError('the planted" in text
    assert "ValueError: the planted failure" in text
    saved = json.loads((tmp_path / "runs" / "01_broken.ipynb").read_text())
    assert any(o.get("output_type") == "error" for c in saved["cells"]
               for o in c.get("outputs", []))
