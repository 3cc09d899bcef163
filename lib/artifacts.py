"""The only code that knows the files under ``models/<dataset>/``.

Layout::

    models/<dataset>/
      stage1/       movie_genre.keras  embeddings.npz  ids.json  manifest.json
      stage2/       ranking.keras  rating.keras  embeddings.npz  seen.npz  ids.json
                    manifest.json
      projections/  cached 2-D coordinates of embeddings (a cache: safe to delete)
      serving/      stage1/ and stage2/ as above, trained on every rating by
                    `python -m lib train`, and map.npz (the 2-D map of the stage-2 movie
                    vectors the web app draws): what people are shown

Every stage folder has a manifest: project and package versions, settings, seed, split,
test metrics, and SHA-256 checksums of the data files it was trained on and of each file
it holds. Loading checks both: models trained on other data, or a folder whose files do
not match its manifest, are refused with one sentence saying what to rerun.

Writes are atomic (`lib.atomic`): a stage is written into a temporary folder beside the
final one and renamed into place, so a run killed mid-save leaves the previous models (or,
killed between the two renames, none), never a mix. Reading never writes (no folder is
created to look for models). One save of a stage at a time.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from lib import atomic
from lib import config as C
from lib.errors import ArtifactError
from lib.evaluation import interactions
from lib.ids import IdMap

log = logging.getLogger(__name__)

STAGES = ("stage1", "stage2")
SEQUENTIAL = "sequential"  # optional beside the stages: the model of notebook 06
SEQUENTIAL_MODEL = "sequential.keras"
SEQUENCES = "sequences.npz"  # every user's movies in time order: what the model reads
MANIFEST = "manifest.json"
STAGE1_MODEL = "movie_genre.keras"
RANKING_MODEL = "ranking.keras"
RATING_MODEL = "rating.keras"
VECTORS = "embeddings.npz"
SEEN = "seen.npz"  # users x movies: every rating of the data the models were saved with
CHOICES = "choices.json"
HISTORY = "history.npz"  # users x movies: the training ratings a history tower reads
IDS = "ids.json"
SERVING = "serving"
MAP = "map.npz"
PROJECTIONS = "projections"
# Which notebook writes each stage: named in every "what to rerun" sentence.
_WRITER = {"stage1": "02", "stage2": "03", SEQUENTIAL: "06"}
_PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "numpy", "pandas", "scikit-learn")


def dataset_dir(dataset: str, root: Path | str | None = None) -> Path:
    """``models/<dataset>/`` (or under `root`); not created."""
    return Path(root or C.MODELS_DIR) / dataset


def stage_dir(dataset: str, stage: str, root: Path | str | None = None, *,
              serving: bool = False) -> Path:
    """``models/<dataset>/<stage>/``, or the serving models' ``models/<dataset>/serving/
    <stage>/``."""
    if stage not in (*STAGES, SEQUENTIAL):
        raise ValueError(f"stage must be one of {(*STAGES, SEQUENTIAL)}, not {stage!r}")
    return (serving_dir(dataset, root) if serving else dataset_dir(dataset, root)) / stage


def serving_dir(dataset: str, root: Path | str | None = None) -> Path:
    """``models/<dataset>/serving/``: models trained on every rating (`lib.serving`)."""
    return dataset_dir(dataset, root) / SERVING


def has_serving(dataset: str, root: Path | str | None = None) -> bool:
    """Whether `python -m lib train` has written serving models for `dataset`."""
    return all((stage_dir(dataset, s, root, serving=True) / MANIFEST).is_file()
               for s in STAGES)


def projection_dir(dataset: str, root: Path | str | None = None) -> Path:
    """Where `plots.reduce_2d` caches 2-D coordinates for this dataset."""
    return dataset_dir(dataset, root) / PROJECTIONS


def rerun_hint(dataset, stage: str, serving: bool = False) -> str:
    """The command that writes `stage` again for `dataset` (a name, or a loaded dataset,
    whose folder is repeated as ``--data-dir`` when it is not the default one)."""
    name = getattr(dataset, "name", dataset)
    where = ""
    path = getattr(dataset, "path", None)
    if path is not None and Path(path).resolve() != (C.DATA_DIR / name).resolve():
        where = f" --data-dir {path}"
    if serving:
        return f"`python -m lib train --dataset {name}{where}`"
    only = " ".join(f"--only {n}" for n in {"stage1": ("02",), "stage2": ("02", "03"),
                                              SEQUENTIAL: ("02", "06")}[stage])
    return f"`python -m lib run --dataset {name}{where} {only}` (notebook {_WRITER[stage]})"


# --- settings chosen on validation, kept so reruns skip the search ---------------------

def choices_path(dataset: str, root: Path | str | None = None) -> Path:
    """``models/<dataset>/choices.json``: what stage 2's search chose, by what it was for."""
    return dataset_dir(dataset, root) / CHOICES


def choice_key(train, **fixed) -> str:
    """What a choice depends on: the training ratings themselves and every fixed setting
    of the search (so a changed split, seed, grid or setting searches again)."""
    digest = hashlib.sha256()
    for col in (C.USER_COL, C.MOVIE_COL, C.RATING_COL):
        digest.update(np.ascontiguousarray(train[col].to_numpy(np.float64)).tobytes())
    digest.update(json.dumps(fixed, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def load_choice(path: Path | str, key: str) -> dict | None:
    """The choice saved under `key` in the file `path`, or None (no file, no entry, or a
    file that is not a choices file: the search simply runs again)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def save_choice(path: Path | str, key: str, choice: dict) -> None:
    """Add (or replace) the choice under `key`, atomically."""
    path = Path(path)
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known = {}
    known[key] = {**choice, "saved": time.strftime("%Y-%m-%d %H:%M:%S")}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(known, indent=2))


# --- checksums and manifests --------------------------------------------------------

def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_fingerprint(dataset) -> dict[str, str]:
    """SHA-256 of the files a `Dataset` was read from (ratings, movies, users if any)."""
    info = C.release_info(dataset.name)
    return {info[k]: sha256(Path(dataset.path) / info[k])
            for k in ("ratings", "movies", "users") if info[k]}


def _versions() -> dict[str, str]:
    found = {}
    for name in ("movielens-embeddings", *_PACKAGES):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def read_manifest(dataset, stage: str, root: Path | str | None = None, *,
                  serving: bool = False) -> dict:
    """The manifest of a saved stage of `dataset` (a name or a loaded dataset).

    Raises:
        ArtifactError: the stage was never saved (or its save was interrupted).
    """
    path = stage_dir(getattr(dataset, "name", dataset), stage, root,
                     serving=serving) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"no {stage} models for {getattr(dataset, 'name', dataset)} in "
                            f"{C.shown(path.parent)}: train them with "
                            f"{rerun_hint(dataset, stage, serving)}")
    return json.loads(path.read_text(encoding="utf-8"))


def check(manifest: dict, dataset) -> None:
    """Refuse models that were trained on other data than `dataset`'s files.

    Raises:
        ArtifactError: names the file that changed and what to rerun.
    """
    stage, name = manifest["stage"], manifest["dataset"]
    serving = manifest.get("split") == SERVING
    if name != dataset.name:
        raise ArtifactError(f"these {stage} models were trained on {name}, not "
                            f"{dataset.name}: train them with "
                            f"{rerun_hint(dataset, stage, serving)}")
    now = data_fingerprint(dataset)
    for file, digest in manifest["data"].items():
        if now.get(file) != digest:
            raise ArtifactError(
                f"{C.shown(Path(dataset.path) / file)} has changed since the {stage} models "
                f"were trained (sha256 {digest[:12]}, now {str(now.get(file))[:12]}): "
                f"retrain them with {rerun_hint(dataset, stage, serving)}")


def _verify_files(folder: Path, manifest: dict) -> None:
    hint = rerun_hint(manifest["dataset"], manifest["stage"], manifest.get("split") == SERVING)
    for file, digest in manifest["files"].items():
        path = folder / file
        if not path.is_file() or sha256(path) != digest:
            raise ArtifactError(f"{C.shown(path)} does not match the manifest beside it (a "
                                f"save was interrupted or files were copied from another "
                                f"run): retrain with {hint}")


def summary(manifest: dict) -> str:
    """One line: which models, trained how, on what, with which test numbers."""
    s = manifest.get("settings", {})
    parts = [f"{manifest['dataset']} {manifest['stage']}"]
    if "init" in s:
        parts.append(f"init {s['init']}")
    parts.append(f"seed {manifest['seed']}")
    if manifest.get("split"):
        parts.append(f"split {manifest['split']}")
    metrics = manifest.get("metrics") or {}
    shown = [f"{k} {v:.4f}" for k, v in metrics.items()
             if k.startswith(("ndcg@", "rmse", "precision")) and isinstance(v, float)]
    if shown:
        parts.append("test " + ", ".join(shown))
    parts.append(f"trained {manifest['created']}")
    return "models: " + "; ".join(parts)


# --- projections (a cache) ------------------------------------------------------

def load_projection(folder: Path | str | None, key: str) -> np.ndarray | None:
    """Cached 2-D coordinates under `key` in a projections folder, or None (also for an
    unreadable file, which is recomputed)."""
    if folder is None:
        return None
    path = Path(folder) / f"{key}.npy"
    try:
        return np.load(path) if path.is_file() else None
    except (OSError, ValueError):
        return None


def save_projection(folder: Path | str | None, key: str, coords: np.ndarray) -> None:
    if folder is not None:
        atomic.write_array(Path(folder) / f"{key}.npy", coords)


def _save(dataset, stage: str, root, write, *, settings: dict, seed: int,
          split: str = "", metrics: dict | None = None, extra: dict | None = None) -> Path:
    final = stage_dir(dataset.name, stage, root, serving=split == SERVING)
    with atomic.staged_folder(final) as tmp:
        write(tmp)
        manifest = {
            "stage": stage, "dataset": dataset.name, "synthetic": bool(dataset.synthetic),
            "created": time.strftime("%Y-%m-%d %H:%M:%S"), "versions": _versions(),
            "settings": settings, "seed": int(seed), "split": split,
            "metrics": {k: float(v) for k, v in (metrics or {}).items()},
            "data": data_fingerprint(dataset),
            "files": {p.name: sha256(p) for p in sorted(tmp.iterdir())},
            **(extra or {})}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return final


def _open(dataset, stage: str, root, serving: bool = False) -> tuple[Path, dict]:
    manifest = read_manifest(dataset, stage, root, serving=serving)
    folder = stage_dir(dataset.name, stage, root, serving=serving)
    check(manifest, dataset)
    _verify_files(folder, manifest)
    return folder, manifest


# --- stage 1 ----------------------------------------------------------------------

def save_stage1(result, ids: IdMap, dataset, root: Path | str | None = None, *,
                serving: bool = False) -> Path:
    """Write a `stages.Stage1`: the Keras model, movie and genre vectors, the id map (with
    `serving`, as the serving models' stage 1)."""
    def write(folder: Path) -> None:
        result.model.save(folder / STAGE1_MODEL)
        np.savez(folder / VECTORS, movie_vectors=result.movie_vectors,
                 genre_vectors=result.genre_vectors,
                 movie_ids=ids.movie_ids(np.arange(ids.n_movies)),
                 genres=np.array(ids.genre_names(np.arange(ids.n_genres)), dtype=str))
        ids.save(folder / IDS)

    return _save(dataset, "stage1", root, write, settings=result.settings,
                 seed=result.settings["seed"], metrics=result.recovery,
                 split=SERVING if serving else "")


def load_stage1(dataset, root: Path | str | None = None, *, serving: bool = False):
    """Stage-1 movie vectors, genre vectors and id map, checked against `dataset`.

    Raises:
        ArtifactError: not saved, incomplete, or trained on other data.
    """
    folder, _ = _open(dataset, "stage1", root, serving)
    with np.load(folder / VECTORS) as npz:
        return npz["movie_vectors"], npz["genre_vectors"], IdMap.load(folder / IDS)


# --- stage 2 ----------------------------------------------------------------------

def save_stage2(result, ids: IdMap, dataset, *, split: str, metrics: dict | None = None,
                root: Path | str | None = None) -> Path:
    """Write a `stages.Stage2`: both Keras models, user and movie tables, the id map;
    the manifest records the split (`SERVING`: trained on every rating, written to the
    serving folder), the test `metrics` and which stage 1 it started from."""
    demographics = result.demographics(dataset, ids)  # what a new user's vector needs
    sides = {} if demographics is None else {"side_user_mean": demographics["user_mean"]}
    for name, part in (demographics or {"features": {}})["features"].items():
        sides.update({f"side_{name}_labels": np.array(part["labels"]),
                      f"side_{name}_vectors": part["vectors"], f"side_{name}_mean": part["mean"]})

    def write(folder: Path) -> None:
        result.ranking.save(folder / RANKING_MODEL)
        if result.rating is not None:
            result.rating.save(folder / RATING_MODEL)
        np.savez(folder / VECTORS, user_vectors=result.user_vectors(),
                 movie_vectors=result.movie_vectors(), movie_bias=result.movie_bias(),
                 user_ids=ids.user_ids(np.arange(ids.n_users)),
                 movie_ids=ids.movie_ids(np.arange(ids.n_movies)),
                 **{f"feature_{k}": v for k, v in result.features.items()}, **sides,
                 **({} if result.history is None else {
                     "history_vectors": result.history_vectors(),
                     "new_user_base": result.new_user_base()}))
        if result.history is not None:  # the history tower's input for known users
            sp.save_npz(folder / HISTORY, result.history)
        ids.save(folder / IDS)
        # What every user has rated (all of it, not the training part): the engine's
        # "already seen", so answering needs neither the ratings file nor TensorFlow.
        sp.save_npz(folder / SEEN, interactions(dataset.ratings, ids))

    return _save(dataset, "stage2", root, write, settings=result.settings,
                 seed=result.settings["seed"], split=split, metrics=metrics)


def vectors_sha256(vectors: np.ndarray | None) -> str | None:
    """A checksum of an array's values (not of a file: an .npz stamps the time it was
    written); what stage 2 records of the stage-1 vectors it started from."""
    if vectors is None:
        return None
    return hashlib.sha256(np.ascontiguousarray(vectors, np.float32).tobytes()).hexdigest()


def load_stage2(dataset, split: str | None = None, root: Path | str | None = None, *,
                serving: bool = False):
    """The saved stage-2 models as a `stages.Stage2`, checked against `dataset` (and,
    with `split`, against the split they must have been trained on).

    Raises:
        ArtifactError: not saved, incomplete, trained on other data or another split.
    """
    import keras
    import pandas as pd

    from lib.stages import Stage2
    folder, manifest = _open(dataset, "stage2", root, serving)
    if split is not None and manifest["split"] != split:
        raise ArtifactError(f"the saved stage-2 models were trained on split "
                            f"{manifest['split']!r}, not {split!r}: run notebook 03 with the "
                            f"same SPLIT and SEED")
    ranking = keras.models.load_model(folder / RANKING_MODEL, compile=False)
    rating_path = folder / RATING_MODEL
    rating = (keras.models.load_model(rating_path, compile=False) if rating_path.is_file()
              else None)
    with np.load(folder / VECTORS) as npz:
        features = {k[len("feature_"):]: npz[k] for k in npz.files if k.startswith("feature_")}
    history = sp.load_npz(folder / HISTORY).tocsr() if (folder / HISTORY).is_file() else None
    return Stage2(ranking, rating, pd.DataFrame(), pd.DataFrame(), features, None,
                  manifest["settings"]["init"], settings=manifest["settings"],
                  history=history)


def load_tables(dataset, root: Path | str | None = None, *, serving: bool = False) -> dict:
    """What the recommendation engine reads (numpy only, no TensorFlow): the stage-2 user
    and movie tables, what every user has rated, the id map, the stage-1 vectors where
    they match, and the manifest. `dataset` may be a `data.Catalogue` (no ratings read).

    Raises:
        ArtifactError: not saved, incomplete, trained on other data, or stage 1 retrained
            after stage 2.
    """
    folder, manifest = _open(dataset, "stage2", root, serving)
    with np.load(folder / VECTORS) as npz:
        tables = {k: npz[k] for k in ("user_vectors", "movie_vectors", "movie_bias")}
        # A history tower's movie table and the base of a new user's vector, when it has one.
        tables["history"] = ({"vectors": npz["history_vectors"], "base": npz["new_user_base"]}
                             if "history_vectors" in npz.files else None)
        # The demographic inputs of the ranking model, when it has them.
        tables["demographics"] = None if "side_user_mean" not in npz.files else {
            "user_mean": npz["side_user_mean"],
            "features": {k[len("side_"):-len("_labels")]: {
                "labels": npz[k].tolist(), "vectors": npz[k.replace("_labels", "_vectors")],
                "mean": npz[k.replace("_labels", "_mean")]}
                for k in npz.files if k.startswith("side_") and k.endswith("_labels")}}
    tables.update(ids=IdMap.load(folder / IDS), manifest=manifest,
                  seen=sp.load_npz(folder / SEEN).tocsr(),
                  stage1_movies=None, stage1_genres=None)
    recorded = manifest["settings"].get("stage1_vectors")
    if recorded is not None:  # stage 1, checked like any stage, and the one stage 2 used
        movies, genres, _ = load_stage1(dataset, root, serving=serving)
        if vectors_sha256(movies) != recorded:
            folder = stage_dir(dataset.name, "stage1", root, serving=serving)
            raise ArtifactError(f"{C.shown(folder)} is not the stage 1 that stage 2 started "
                                f"from (stage 1 was retrained after it): retrain stage 2 "
                                f"with {rerun_hint(dataset, 'stage2', serving)}")
        tables["stage1_movies"], tables["stage1_genres"] = movies, genres
    return tables


# --- the sequential model ----------------------------------------------------------

def save_sequential(result, ids: IdMap, dataset, *, split: str, metrics: dict | None = None,
                    root: Path | str | None = None) -> Path:
    """Write a `sequential.Sequential`: the Keras model, every user's history as it reads
    it (by user row) and the id map; the manifest records the split (`SERVING`: every
    rating, into the serving folder), the settings chosen and the test `metrics`."""
    def write(folder: Path) -> None:
        result.model.save(folder / SEQUENTIAL_MODEL)
        np.savez(folder / SEQUENCES, seqs=result.seqs,
                 history=result.history.to_numpy(np.float64),
                 columns=np.array(list(result.history.columns), dtype=str))
        ids.save(folder / IDS)

    return _save(dataset, SEQUENTIAL, root, write, settings=result.settings,
                 seed=result.settings["seed"], split=split, metrics=metrics)


def has_sequential(dataset: str, root: Path | str | None = None, *,
                   serving: bool = False) -> bool:
    """Whether a sequential model was saved for `dataset` (serving or a notebook's)."""
    return (stage_dir(dataset, SEQUENTIAL, root, serving=serving) / MANIFEST).is_file()


def remove_sequential(dataset: str, root: Path | str | None = None, *,
                      serving: bool = False) -> None:
    """Delete a saved sequential model (nothing to do when there is none)."""
    folder = stage_dir(dataset, SEQUENTIAL, root, serving=serving)
    if folder.is_dir():
        shutil.rmtree(folder)


def load_sequential(dataset, root: Path | str | None = None, *, serving: bool = False,
                    ids: IdMap | None = None):
    """The saved sequential model as a `sequential.Sequential`, checked against `dataset`
    (and against `ids`, the id map of the models it will answer beside).

    Raises:
        ArtifactError: not saved, incomplete, trained on other data or other ids.
    """
    import keras
    import pandas as pd

    from lib import sequential  # registers its layers for loading
    folder, manifest = _open(dataset, SEQUENTIAL, root, serving)
    saved_ids = IdMap.load(folder / IDS)
    if ids is not None and saved_ids != ids:
        raise ArtifactError(f"{C.shown(folder)} was saved with other user or movie ids than "
                            f"the stage-2 models beside it: retrain it with "
                            f"{rerun_hint(dataset, SEQUENTIAL, serving)}")
    model = keras.models.load_model(folder / SEQUENTIAL_MODEL, compile=False)
    with np.load(folder / SEQUENCES) as npz:
        history = pd.DataFrame(npz["history"], columns=npz["columns"].tolist())
        seqs = npz["seqs"]
    return sequential.Sequential(model, history.rename_axis("epoch"), manifest["settings"],
                                 seqs, manifest)


# --- the serving models' map ------------------------------------------------------

def save_map(dataset: str, movie_ids: np.ndarray, coords: np.ndarray,
             root: Path | str | None = None) -> Path:
    """The 2-D map of the serving stage-2 movie vectors (one row per movie id), tied to
    the serving stage 2 saved before it by the checksum of its vectors file."""
    manifest = read_manifest(dataset, "stage2", root, serving=True)
    path = serving_dir(dataset, root) / MAP
    with atomic.replacing(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, movie_ids=np.asarray(movie_ids), x=coords[:, 0], y=coords[:, 1],
                     stage2=np.array(manifest["files"][VECTORS]))
    return path


def load_map(dataset: str, root: Path | str | None = None) -> dict | None:
    """``{"movie_ids", "x", "y"}`` of the serving map, or None when it was not written or
    belongs to other serving models than those saved now (a warning says so)."""
    path = serving_dir(dataset, root) / MAP
    if not path.is_file():
        return None
    with np.load(path) as npz:
        found = {k: npz[k] for k in ("movie_ids", "x", "y", "stage2") if k in npz.files}
    manifest = read_manifest(dataset, "stage2", root, serving=True)
    if str(found.get("stage2")) != manifest["files"][VECTORS]:
        log.warning("%s is not the map of the serving models saved now: no map until "
                    "`python -m lib train --dataset %s` writes both again", C.shown(path),
                    dataset)
        return None
    return {k: found[k] for k in ("movie_ids", "x", "y")}
