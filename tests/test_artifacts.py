"""The one owner of models/<dataset>/: manifests, checks against the data, atomic saves.

Models here are built but not trained (the files are what is tested, not their quality).
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import save_untrained_models

from lib import artifacts, stages
from lib import evaluation as ev
from lib import models as M
from lib.data import load_dataset
from lib.errors import ArtifactError
from lib.ids import IdMap
from lib.recommend import Engine


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    load_dataset("synthetic-tiny", data)
    return data


@pytest.fixture
def ds(tiny, tmp_path):
    """A private copy of the tiny release, so a test may change its files."""
    shutil.copytree(tiny / "synthetic-tiny", tmp_path / "data" / "synthetic-tiny")
    return load_dataset("synthetic-tiny", tmp_path / "data")


def _stage1(ds, ids, seed=1):
    model = M.build_movie_genre_model(ids.n_movies, ids.n_genres, 8, seed=seed)
    return stages.Stage1(model, M.embeddings(model, "movie_embedding"),
                         M.embeddings(model, "genre_embedding"), pd.DataFrame(),
                         {"precision": 0.5}, 0.0, {"dim": 8, "seed": seed})


def _save_both(ds, root):
    return save_untrained_models(ds, root)


def test_manifest_records_what_made_the_models(ds, tmp_path):
    _save_both(ds, tmp_path / "models")
    manifest = artifacts.read_manifest("synthetic-tiny", "stage2", tmp_path / "models")
    assert manifest["dataset"] == "synthetic-tiny" and manifest["seed"] == 1
    assert manifest["split"] == "per-item 0.75 seed 1"
    assert manifest["metrics"] == {"ndcg@10": 0.25}
    assert manifest["settings"]["init"] == "stage1"
    assert {"keras", "numpy", "pandas"} <= set(manifest["versions"])
    assert set(manifest["data"]) == {"ratings.dat", "movies.dat", "users.dat"}
    assert all(len(v) == 64 for v in manifest["data"].values())  # sha256 hex
    assert set(manifest["files"]) == {"ranking.keras", "rating.keras", "embeddings.npz",
                                      "seen.npz", "ids.json"}
    line = artifacts.summary(manifest)
    assert line.startswith("models: synthetic-tiny stage2; init stage1; seed 1")
    assert "ndcg@10 0.2500" in line and "\n" not in line


def test_reloaded_models_score_as_saved(ds, tmp_path):
    ids, s1, s2 = _save_both(ds, tmp_path / "models")
    vectors, genres, ids2 = artifacts.load_stage1(ds, tmp_path / "models")
    np.testing.assert_array_equal(vectors, s1.movie_vectors)
    np.testing.assert_array_equal(genres, s1.genre_vectors)
    assert ids2 == ids
    loaded = artifacts.load_stage2(ds, "per-item 0.75 seed 1", tmp_path / "models")
    users = np.arange(10)
    np.testing.assert_array_equal(loaded.scores()(users), s2.scores()(users))
    with pytest.raises(ArtifactError, match="trained on split 'per-item 0.75 seed 1', not 'x'"):
        artifacts.load_stage2(ds, "x", tmp_path / "models")


def test_models_refuse_a_changed_ratings_file(ds, tmp_path):
    _save_both(ds, tmp_path / "models")
    path = ds.path / "ratings.dat"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))  # one rating fewer
    changed = load_dataset("synthetic-tiny", tmp_path / "data")
    for load in (lambda: artifacts.load_stage1(changed, tmp_path / "models"),
                 lambda: Engine.load(changed, tmp_path / "models")):
        with pytest.raises(ArtifactError) as info:
            load()
        message = str(info.value)
        assert "ratings.dat has changed since the stage" in message
        # The hint repeats where the data is, as the user gave it.
        assert f"python -m lib run --dataset synthetic-tiny --data-dir {changed.path} " \
               f"--only 02" in message
        assert "\n" not in message  # one sentence


def test_a_file_that_does_not_match_its_manifest_is_refused(ds, tmp_path):
    ids, s1, _ = _save_both(ds, tmp_path / "models")
    folder = artifacts.stage_dir("synthetic-tiny", "stage1", tmp_path / "models")
    np.savez(folder / artifacts.VECTORS, movie_vectors=s1.movie_vectors + 1,
             genre_vectors=s1.genre_vectors)  # as if copied in from another run
    with pytest.raises(ArtifactError, match="does not match the manifest beside it"):
        artifacts.load_stage1(ds, tmp_path / "models")


def test_an_interrupted_save_keeps_the_previous_models(ds, tmp_path, monkeypatch):
    ids, s1, _ = _save_both(ds, tmp_path / "models")
    other = _stage1(ds, ids, seed=2)

    def dies(*args, **kwargs):
        raise KeyboardInterrupt  # the run is killed in the middle of writing

    monkeypatch.setattr(IdMap, "save", dies)  # ids.json is written after the model
    with pytest.raises(KeyboardInterrupt):
        artifacts.save_stage1(other, ids, ds, tmp_path / "models")
    vectors, _, _ = artifacts.load_stage1(ds, tmp_path / "models")
    np.testing.assert_array_equal(vectors, s1.movie_vectors)  # the old run, whole
    parent = artifacts.dataset_dir("synthetic-tiny", tmp_path / "models")
    assert sorted(p.name for p in parent.iterdir()) == ["stage1", "stage2"]  # no leftovers


def test_engine_refuses_stage2_when_stage1_was_retrained_after_it(ds, tmp_path):
    ids, _, _ = _save_both(ds, tmp_path / "models")
    Engine.load(ds, tmp_path / "models")  # fine as saved
    artifacts.save_stage1(_stage1(ds, ids, seed=7), ids, ds, tmp_path / "models")
    with pytest.raises(ArtifactError, match="stage 1 was retrained after it"):
        Engine.load(ds, tmp_path / "models")


def test_looking_for_models_writes_nothing(ds, tmp_path):
    root = tmp_path / "nothing-here"
    with pytest.raises(ArtifactError) as info:
        Engine.load(ds, root)
    assert "no stage2 models for synthetic-tiny" in str(info.value)
    assert f"python -m lib run --dataset synthetic-tiny --data-dir {ds.path} --only 02 " \
           f"--only 03" in str(info.value)
    assert not root.exists()


def test_models_of_another_dataset_are_refused(ds, tmp_path):
    _save_both(ds, tmp_path / "models")
    folder = artifacts.stage_dir("synthetic-tiny", "stage1", tmp_path / "models")
    manifest = json.loads((folder / artifacts.MANIFEST).read_text())
    manifest["dataset"] = "ml-100k"
    with pytest.raises(ArtifactError, match="trained on ml-100k, not synthetic-tiny"):
        artifacts.check(manifest, ds)


def test_the_engine_reads_no_tensorflow(ds, tmp_path):
    """Recommending from saved models needs numpy arrays only."""
    import subprocess
    import sys
    _save_both(ds, tmp_path / "models")
    code = ("import sys; from lib.data import load_dataset; from lib.recommend import Engine; "
            f"e = Engine.load(load_dataset('synthetic-tiny', {str(tmp_path / 'data')!r}), "
            f"{str(tmp_path / 'models')!r}); e.recommend(1); "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_engine_and_evaluation_share_the_id_map(ds, tmp_path):
    ids, _, _ = _save_both(ds, tmp_path / "models")
    engine = Engine.load(ds, tmp_path / "models")
    assert engine.ids == ids
    assert engine.rated.nnz == ev.interactions(ds.ratings, ids).nnz == len(ds.ratings)
