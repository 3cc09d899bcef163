"""The project's benchmark: prints a table and writes JSON.

Each case runs in a fresh Python process so that its peak memory (max RSS) is its own;
seconds are the median of the repeats inside that process.
"""
from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lib import config as C

CASES: dict[str, dict] = {}


def case(name: str, group: str, repeat: int = 3, warmup: bool = False):
    def register(fn):
        CASES[name] = {"fn": fn, "group": group, "repeat": repeat, "warmup": warmup}
        return fn
    return register


@case("python + pandas import (baseline)", "data", repeat=1)
def _baseline(work: Path) -> dict:
    import pandas  # noqa: F401
    return {}


@case("generate synthetic ML-1M (1,000,209 ratings)", "data")
def _generate(work: Path) -> dict:
    from lib.synthetic import write_synthetic
    write_synthetic(work / "synthetic", "ml-1m")
    return {"rows": 1_000_209}


@case("load ratings.dat (ML-1M size)", "data")
def _load_ratings(work: Path) -> dict:
    from lib import data
    folder = _ensure_synthetic(work)
    info = C.release_info("synthetic")
    frame = data._read_ratings(folder, info, [])[0]
    return {"rows": len(frame)}


@case("load + validate ML-1M-sized release", "data")
def _load_all(work: Path) -> dict:
    from lib import data
    _ensure_synthetic(work)
    ds = data.load_dataset("synthetic", work)
    return {"rows": len(ds.ratings)}


@case("generate synthetic at scale 10 (10M ratings)", "data-scale", repeat=1)
def _generate10(work: Path) -> dict:
    from lib.synthetic import write_synthetic
    write_synthetic(work / "synthetic-x10", "ml-1m", scale=10)
    return {"rows": 10_002_090}


def _ensure_synthetic(work: Path, scale: float = 1.0) -> Path:
    folder = work / ("synthetic" if scale == 1 else f"synthetic-x{scale:g}")
    if not (folder / "ratings.dat").is_file():
        from lib.synthetic import write_synthetic
        write_synthetic(folder, "ml-1m", scale=scale)
    return folder


def _training_data(work: Path, scale: float):
    from lib import data
    from lib.ids import IdMap
    folder = _ensure_synthetic(work, scale)
    ds, _ = data.read_release(folder, "synthetic")
    return ds, IdMap.from_dataset(ds)


def _epochs(fn, n: int = 3) -> float:
    """Median seconds of `n` epochs after one warm-up epoch (graph tracing)."""
    fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _plain_dot(work: Path, scale: float) -> dict:
    """The reference recipe: 32-d user and movie embeddings, dot product, MSE, Adam,
    Keras fit on int32 arrays with batch 4096."""
    import keras

    from lib import models
    ds, ids = _training_data(work, scale)
    models.seed_everything(1)
    u = keras.Input((), dtype="int32", name="user")
    m = keras.Input((), dtype="int32", name="movie")
    dot = keras.layers.Dot(axes=1)([keras.layers.Embedding(ids.n_users, 32)(u),
                                    keras.layers.Embedding(ids.n_movies, 32)(m)])
    model = keras.Model({"user": u, "movie": m}, dot)
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    x = {"user": ids.user_rows(ds.ratings[C.USER_COL].to_numpy()),
         "movie": ids.movie_rows(ds.ratings[C.MOVIE_COL].to_numpy())}
    y = ds.ratings[C.RATING_COL].to_numpy("float32")
    sec = _epochs(lambda: model.fit(x, y, batch_size=4096, epochs=1, verbose=0, shuffle=True))
    return {"rows": len(y), "s/epoch": sec, "examples/s": len(y) / sec}


def _stage1(work: Path, scale: float) -> dict:
    from lib import models, stages
    ds, ids = _training_data(work, scale)
    genres = stages.movie_genres(ds, ids)
    model = models.build_movie_genre_model(ids.n_movies, ids.n_genres)
    sec = _epochs(lambda: models.train_movie_genre_model(model, genres, epochs=1,
                                                         progress=False))
    pairs = 2 * int(genres.sum())
    return {"rows": pairs, "s/epoch": sec, "examples/s": pairs / sec}


def _stage2_ranking(work: Path, scale: float, loss: str = "full") -> dict:
    from lib import evaluation, models
    ds, ids = _training_data(work, scale)
    train = evaluation.interactions(ds.ratings, ids)
    model = models.build_ranking_model(ids.n_users, ids.n_movies, init="random")
    sec = _epochs(lambda: models.train_ranking_model(model, train, {}, epochs=1, loss=loss,
                                                     progress=False))
    return {"rows": train.nnz, "s/epoch": sec, "examples/s": train.nnz / sec}


def _stage2_rating(work: Path, scale: float) -> dict:
    from lib import models
    ds, ids = _training_data(work, scale)
    model = models.build_rating_model(ids.n_users, ids.n_movies, global_mean=3.58,
                                      init="random")
    sec = _epochs(lambda: models.train_rating_model(model, ds.ratings, ids, {}, validation=None,
                                                    epochs=1, progress=False))
    return {"rows": len(ds.ratings), "s/epoch": sec, "examples/s": len(ds.ratings) / sec}


def _stage2_converged(work: Path, scale: float) -> dict:
    """Both stages as notebook 03 runs them: stage 1, then the ranking model with early
    stopping on validation nDCG@10 and a refit (rating model left out)."""
    from lib import evaluation, stages
    ds, ids = _training_data(work, scale)
    s1 = stages.run_stage1(ds, ids, progress=False)
    split = evaluation.split_stratified(ds.ratings, "item", 0.75, C.SEED)
    t0 = time.perf_counter()
    s2 = stages.run_stage2(ds, ids, split.train, s1.movie_vectors, rating=False, progress=False)
    seconds = time.perf_counter() - t0
    train = evaluation.interactions(split.train, ids)
    test = evaluation.interactions(split.test, ids)
    metrics = evaluation.evaluate_ranking(s2.scores(), train, test)[0]
    best = int(s2.ranking_history["validation"].idxmax()) + 1
    return {"rows": len(split.train), "epochs": best, "epochs run": len(s2.ranking_history),
            "s to converge": seconds, "ndcg@10": metrics["ndcg@10"],
            "stage 1 s": s1.seconds}


for _scale, _group in ((1.0, "train"), (10.0, "train-scale")):
    _tag = "ML-1M size" if _scale == 1 else f"{_scale:g}x ML-1M"
    for _name, _fn in (("plain 32-d dot model, Keras fit, batch 4096 (reference)", _plain_dot),
                       ("stage 1 epoch (movie-genre)", _stage1),
                       ("stage 2 ranking epoch (softmax over all movies)", _stage2_ranking),
                       (f"stage 2 ranking epoch (sampled softmax, {C.SAMPLED_NEGATIVES} "
                        f"negatives)", lambda w, s: _stage2_ranking(w, s, "sampled")),
                       ("stage 2 rating epoch (Keras fit, batch 4096)", _stage2_rating)):
        case(f"{_name}, {_tag}", _group, repeat=1)(
            lambda work, fn=_fn, scale=_scale: fn(work, scale))
case("stages 1+2 to convergence (early stopping + refit), ML-1M size", "train", repeat=1)(
    lambda work: _stage2_converged(work, 1.0))


# --- answers: the command line over saved models (what a person waits for) ---------

def _answer_setup(work: Path) -> Path:
    """Models for the ML-1M-sized synthetic data, saved as the notebooks save them. Built,
    not trained: the timing of an answer does not depend on the weights."""
    from lib import artifacts, data, models, stages
    from lib.ids import IdMap
    root = work / "answer-models"
    if (root / "synthetic" / "stage2" / artifacts.MANIFEST).is_file():
        return root
    ds = data.load_dataset("synthetic", work)
    ids = IdMap.from_dataset(ds)
    model = models.build_movie_genre_model(ids.n_movies, ids.n_genres)
    s1 = stages.Stage1(model, models.embeddings(model, "movie_embedding"),
                       models.embeddings(model, "genre_embedding"), None, {}, 0.0,
                       {"seed": C.SEED})
    artifacts.save_stage1(s1, ids, ds, root)
    ranking = models.build_ranking_model(ids.n_users, ids.n_movies, movie_init=s1.movie_vectors)
    s2 = stages.Stage2(ranking, None, None, None, {}, None, "stage1", {},
                       {"init": "stage1", "seed": C.SEED,
                        "stage1_vectors": artifacts.vectors_sha256(s1.movie_vectors)})
    artifacts.save_stage2(s2, ids, ds, split="none", root=root)
    return root


def _answer(work: Path, *args: str) -> dict:
    import os
    root = _answer_setup(work)
    proc = subprocess.run([sys.executable, "-m", "lib", "recommend", "--dataset", "synthetic",
                           "--data-dir", str(work), *args], capture_output=True, text=True,
                          env={**os.environ, "MODELS_DIR": str(root)}, cwd=C.PROJ_ROOT)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return {"command": "recommend " + " ".join(args)}


case("python -c 'import numpy, pandas' (reference)", "answer", warmup=True)(
    lambda work: subprocess.run([sys.executable, "-c", "import numpy, pandas"], check=True)
    and {})
for _label, _args in (("recommend, known user", ("--user", "1")),
                      ("recommend, similar movies", ("--similar", "260")),
                      ("recommend, new user from 3 liked movies",
                       ("--liked", "260,1196,2571"))):
    case(f"{_label} (CLI wall, ML-1M size)", "answer", warmup=True)(
        lambda work, a=_args: _answer(work, *a))


def run_case(name: str, work: Path) -> dict:
    """Run one case in this process; return seconds (median, min) and peak RSS."""
    import resource
    spec = CASES[name]
    if spec["warmup"]:  # set-up and file cache outside the timing
        spec["fn"](work)
    times, extra = [], {}
    for _ in range(spec["repeat"]):
        t0 = time.perf_counter()
        extra = spec["fn"](work) or {}
        times.append(time.perf_counter() - t0)
    peak_kb = _peak_rss_kb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"case": name, "group": spec["group"], "seconds": statistics.median(times),
            "best_seconds": min(times), "repeats": len(times), "peak_mb": peak_kb / 1024,
            **extra}


def _peak_rss_kb() -> int | None:
    """This process's own peak RSS (VmHWM), which, unlike ru_maxrss, does not carry the
    parent's peak over fork and exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def main(groups: list[str] | None = None, out: Path | None = None) -> list[dict]:
    """Run the cases of `groups` (data, train and answer by default; data-scale and
    train-scale generate 10x data first), print a table, write JSON."""
    groups = groups or ["data", "train", "answer"]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        _ensure_synthetic(work)
        for name, spec in CASES.items():
            if spec["group"] not in groups:
                continue
            proc = subprocess.run([sys.executable, "-m", "lib.bench", name, str(work)],
                                  capture_output=True, text=True, cwd=C.PROJ_ROOT)
            if proc.returncode != 0:
                raise RuntimeError(f"benchmark case {name!r} failed:\n{proc.stderr[-2000:]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    _print_table(results)
    report = {"machine": {"python": platform.python_version(), "cpus": _cpus(),
                          "platform": platform.platform()},
              "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "results": results}
    out = Path(out or C.PROJ_ROOT / "benchmarks.json")
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"written to {out}")
    return results


def _cpus() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _print_table(results: list[dict]) -> None:
    extra_cols = [k for k in dict.fromkeys(k for r in results for k in r)
                  if k not in {"case", "group", "seconds", "best_seconds", "repeats", "peak_mb"}]
    header = ["case", "seconds", "best", "peak MB", *extra_cols]
    rows = [[r["case"], f"{r['seconds']:.3f}", f"{r['best_seconds']:.3f}",
             f"{r['peak_mb']:.0f}", *[_fmt(r.get(c)) for c in extra_cols]] for r in results]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for i, row in enumerate([header, *rows]):
        print("  ".join(str(x).ljust(w) if j == 0 else str(x).rjust(w)
                        for j, (x, w) in enumerate(zip(row, widths, strict=True))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


if __name__ == "__main__":
    print(json.dumps(run_case(sys.argv[1], Path(sys.argv[2]))))
