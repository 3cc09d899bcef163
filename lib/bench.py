"""The project's benchmark: prints a table and writes JSON.

Each case runs in a fresh Python process so that its peak memory (max RSS) is its own;
seconds are the median of the repeats inside that process.
"""
from __future__ import annotations

import contextlib
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

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


SCALES = {  # tag -> (dataset name as written, size, scale)
    "ML-1M size": ("synthetic", "ml-1m", 1.0),
    "10x ML-1M": ("synthetic-x10", "ml-1m", 10.0),
    "ML-25M size": ("synthetic-25m", "ml-25m", 1.0),
}


def _ensure_synthetic(work: Path, scale: float = 1.0, size: str = "ml-1m") -> Path:
    if size == "ml-25m":
        folder = work / "synthetic-25m"
    else:
        folder = work / ("synthetic" if scale == 1 else f"synthetic-x{scale:g}")
    ratings = C.RELEASES[C.SYNTHETIC_FORMATS[size]]["ratings"]
    if not (folder / ratings).is_file():
        from lib.synthetic import write_synthetic
        write_synthetic(folder, size, scale=scale)
    return folder


def _dataset(size: str) -> str:
    """The dataset name whose format a synthetic size is written in."""
    return "synthetic-25m" if size == "ml-25m" else "synthetic"


def _training_data(work: Path, tag: str):
    """The dataset of a scale and its id map; parsed once, then read from a pickle so
    that each case's timing is its own work, not the parse."""
    import pandas as pd

    from lib import data
    from lib.ids import IdMap
    name, size, scale = SCALES[tag]
    folder = _ensure_synthetic(work, scale, size)
    ratings = (folder / C.release_info(_dataset(size))["ratings"]).stat()
    # Keyed by the ratings file, so regenerated data is parsed anew.
    cache = folder / f"parsed-{ratings.st_size}-{ratings.st_mtime_ns}.pkl"
    if cache.is_file():
        ds = pd.read_pickle(cache)
    else:
        ds, _ = data.read_release(folder, _dataset(size))
        pd.to_pickle(ds, cache)
    return ds, IdMap.from_dataset(ds)


def _load(work: Path, tag: str) -> dict:
    """Read and check the release's files, as every notebook does first."""
    from lib import data
    name, size, scale = SCALES[tag]
    folder = _ensure_synthetic(work, scale, size)
    t0 = time.perf_counter()
    ds, problems = data.read_release(folder, _dataset(size))
    return {"rows": len(ds.ratings), "s to load": time.perf_counter() - t0}


def _plain_dot(work: Path, tag: str) -> dict:
    """The reference recipe: 32-d user and movie embeddings, dot product, MSE, Adam,
    Keras fit on int32 arrays with batch 4096."""
    import keras

    from lib import models
    ds, ids = _training_data(work, tag)
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
    times = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(x, y, batch_size=4096, epochs=4, verbose=0, shuffle=True, callbacks=[Clock()])
    sec = statistics.median(times[1:])  # the first epoch traces the graph
    return {"rows": len(y), "s/epoch": sec, "examples/s": len(y) / sec}


def _stage1(work: Path, tag: str) -> dict:
    from lib import models, stages
    ds, ids = _training_data(work, tag)
    genres = stages.movie_genres(ds, ids)
    model = models.build_movie_genre_model(ids.n_movies, ids.n_genres)
    history = models.train_movie_genre_model(model, genres, epochs=4, progress=False)
    sec = statistics.median(history.history["seconds"][1:])  # the first epoch traces
    pairs = 2 * int(genres.sum())
    return {"rows": pairs, "s/epoch": sec, "examples/s": pairs / sec}


def _stage2_ranking(work: Path, tag: str, loss: str = "full") -> dict:
    from lib import evaluation, models
    ds, ids = _training_data(work, tag)
    train = evaluation.interactions(ds.ratings, ids)
    model = models.build_ranking_model(ids.n_users, ids.n_movies, init="random")
    history = models.train_ranking_model(model, train, {}, epochs=4, loss=loss, progress=False)
    sec = statistics.median(history["seconds"].iloc[1:])  # the first epoch traces the graph
    return {"rows": train.nnz, "s/epoch": sec, "examples/s": train.nnz / sec}


def _stage2_rating(work: Path, tag: str) -> dict:
    from lib import models
    ds, ids = _training_data(work, tag)
    model = models.build_rating_model(ids.n_users, ids.n_movies, global_mean=3.58,
                                      init="random")
    history = models.train_rating_model(model, ds.ratings, ids, {}, validation=None, epochs=4,
                                        progress=False)
    sec = statistics.median(history["seconds"].iloc[1:])  # the first epoch traces the graph
    return {"rows": len(ds.ratings), "s/epoch": sec, "examples/s": len(ds.ratings) / sec}


def _sequential(work: Path, tag: str, max_len: int, keras_fit: bool = False) -> dict:
    """An epoch of the sequential model over every user's latest `max_len` movies (a
    softmax over all movies at every position), by its compiled steps or, as the
    reference, by Keras `fit` with per-position sample weights."""
    import keras
    import numpy as np

    from lib import sequential as S
    ds, ids = _training_data(work, tag)
    _, seqs = S.histories(ds.ratings, ids, max_len)
    model = S.build_sequential_model(ids.n_movies, max_len=max_len)
    targets = int(S.next_targets(seqs)[2].sum())
    times = []
    if keras_fit:
        x, y, w = S.next_targets(seqs)
        model.compile(keras.optimizers.Adam(C.SEQUENCE_LEARNING_RATE),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        for _ in range(3):
            t0 = time.perf_counter()
            model.fit(x, y, sample_weight=w, batch_size=C.SEQUENCE_BATCH, epochs=1, verbose=0)
            times.append(time.perf_counter() - t0)
    else:
        steps, rng = S.Steps(model, C.SEQUENCE_LEARNING_RATE), np.random.default_rng(0)
        for _ in range(3):
            t0 = time.perf_counter()
            steps.epoch(seqs, C.SEQUENCE_BATCH, rng)
            times.append(time.perf_counter() - t0)
    sec = statistics.median(times[1:])  # the first epoch traces the graph
    return {"rows": targets, "s/epoch": sec, "examples/s": targets / sec}


def _converged(work: Path, tag: str) -> dict:
    """Both stages as notebook 03 runs them, on a 75/25 per-item split: stage 1, then the
    ranking and rating models with early stopping on validation and the refit (none above
    `config.VALIDATION_MAX_USERS` users, where validation is a sample); test nDCG@10 and
    RMSE."""
    from lib import evaluation, models, stages
    ds, ids = _training_data(work, tag)
    t0 = time.perf_counter()
    s1 = stages.run_stage1(ds, ids, progress=False)
    split = evaluation.split_stratified(ds.ratings, "item", 0.75, C.SEED)
    s2 = stages.run_stage2(ds, ids, split.train, s1.movie_vectors, progress=False)
    seconds = time.perf_counter() - t0
    train = evaluation.interactions(split.train, ids)
    test = evaluation.interactions(split.test, ids)
    # The test score on a seeded sample of users above the validation size.
    users = evaluation.sample_users(np.flatnonzero(np.diff(test.indptr) > 0),
                                    C.VALIDATION_MAX_USERS, C.SEED)
    recs = evaluation.recommend_all(s2.scores(), train, users, 10)
    ndcg = evaluation.ranking_metrics(recs, test, users, 10)["ndcg@10"]
    pred = models.predict_ratings(s2.rating, split.test, ids, s2.features, ds.scale[:2])
    rmse = evaluation.rating_metrics(pred, split.test[C.RATING_COL].to_numpy())["rmse"]
    # The engine over the saved models, as `recommend` uses them.
    from lib import artifacts
    from lib.recommend import Engine
    root = work / f"models-{tag.replace(' ', '-')}"
    t0 = time.perf_counter()
    artifacts.save_stage1(s1, ids, ds, root)
    artifacts.save_stage2(s2, ids, ds, split=split.method, root=root)
    saved = time.perf_counter() - t0
    t0 = time.perf_counter()
    engine = Engine.load(ds, root)
    loaded = time.perf_counter() - t0
    user, movie = int(ids.user_ids(np.array([0]))[0]), int(ids.movie_ids(np.array([0]))[0])
    t0 = time.perf_counter()
    answers = [engine.recommend(user), engine.similar(movie),
               engine.new_user(list(ids.movie_ids(np.arange(3))))]
    answered = time.perf_counter() - t0
    assert all(len(a) == 10 for a in answers)
    return {"rows": len(split.train), "s to converge": seconds,
            "save s": saved, "engine load s": loaded, "3 answers s": answered,
            "stage 1 + ranking s": s1.seconds + s2.seconds["ranking"],
            "stage 1 s": s1.seconds, "ranking s": s2.seconds["ranking"],
            "rating s": s2.seconds["rating"], "epochs": s2.settings["ranking_epochs"],
            "rating epochs": s2.settings["rating_epochs"], "loss": s2.settings["loss"],
            "refit": s2.settings["refit"],
            "ndcg@10": ndcg, "test users": len(users), "rmse": rmse}


def _top10_all(work: Path, tag: str) -> dict:
    """Top-10 for every user (seen movies excluded) from a ranking model's tables."""
    from lib import evaluation, models
    ds, ids = _training_data(work, tag)
    train = evaluation.interactions(ds.ratings, ids)
    model = models.build_ranking_model(ids.n_users, ids.n_movies, init="random")
    score = models.ranking_scores(model, {})
    t0 = time.perf_counter()
    recs = evaluation.recommend_all(score, train, np.arange(ids.n_users), 10)
    return {"rows": len(recs), "s for all users": time.perf_counter() - t0}


for _tag, (_, _size, _scale) in SCALES.items():
    _group = "train" if _tag == "ML-1M size" else "train-scale"
    _cases = [("load and check the release", _load),
              ("plain 32-d dot model, Keras fit, batch 4096 (reference)", _plain_dot),
              ("stage 1 epoch (movie-genre)", _stage1),
              ("stage 2 ranking epoch (softmax over all movies)", _stage2_ranking),
              (f"stage 2 ranking epoch (sampled softmax, {C.SAMPLED_NEGATIVES} negatives)",
               lambda w, t: _stage2_ranking(w, t, "sampled")),
              ("stage 2 rating epoch", _stage2_rating),
              ("stages 1+2 to convergence (early stopping; refit unless validation is "
               "sampled)", _converged),
              ("top-10 for all users", _top10_all)]
    if _size == "ml-25m":  # 1e10 logits an epoch: the full softmax is not run there
        _cases = [c for c in _cases if "over all movies" not in c[0]]
    else:
        _cases += [
            (f"sequential epoch, {n} movies read (softmax over all movies at every position)",
             lambda w, t, n=n: _sequential(w, t, n)) for n in (20, C.SEQUENCE_MAX_LEN)] + [
            (f"sequential epoch, {C.SEQUENCE_MAX_LEN} movies read, Keras fit with "
             f"per-position weights (reference)",
             lambda w, t: _sequential(w, t, C.SEQUENCE_MAX_LEN, keras_fit=True))]
    for _name, _fn in _cases:
        case(f"{_name}, {_tag}", _group, repeat=1)(lambda work, fn=_fn, tag=_tag: fn(work, tag))


# --- several workers (tf.distribute) on loopback ------------------------------------

def ranking_worker(work: str, tag: str, workers: str, index: str) -> None:
    """One process of the cases below (run by them in a subprocess): joins the cluster,
    trains the ranking model 4 epochs, prints its epoch seconds as JSON."""
    from lib import distributed as D
    if workers != "-":
        D.Cluster.start(workers, int(index))
    from lib import evaluation, models
    ds, ids = _training_data(Path(work), tag)
    train = evaluation.interactions(ds.ratings, ids)
    with D.scope():
        model = models.build_ranking_model(ids.n_users, ids.n_movies, init="random")
    history = models.train_ranking_model(model, train, {}, epochs=4, progress=False)
    print(json.dumps({"seconds": history["seconds"].tolist(), "nnz": train.nnz,
                      "bytes": D.allreduce_bytes(model, C.RANKING_BATCH_USERS)}))


def _on_workers(work: Path, tag: str, n: int) -> dict:
    import os
    _training_data(work, tag)  # parsed once here, not by two workers at the same time
    threads = str(max(1, _cpus() // n))
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads}
    workers = "-" if n == 1 else ",".join(f"127.0.0.1:{_free_port()}" for _ in range(n))
    code = "import sys; from lib import bench; bench.ranking_worker(*sys.argv[1:])"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(work), tag, workers, str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=C.PROJ_ROOT, env=env) for i in range(n)]
    outs = [p.communicate() for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("a worker failed:\n" + "\n".join(e[-1500:] for _, e in outs))
    chief = json.loads(outs[0][0].strip().splitlines()[-1])
    sec = statistics.median(chief["seconds"][1:])  # the first epoch traces the graph
    return {"rows": chief["nnz"], "s/epoch": sec, "examples/s": chief["nnz"] / sec,
            "threads each": int(threads),
            "all-reduce MiB/step": chief["bytes"] / 2 ** 20 if n > 1 else 0.0}


case("stage 2 ranking epoch, 1 process x all threads (reference), ML-1M size",
     "distributed", repeat=1)(lambda work: _on_workers(work, "ML-1M size", 1))
case("stage 2 ranking epoch, 2 workers x 1 thread on loopback (no network cost), ML-1M size",
     "distributed", repeat=1)(lambda work: _on_workers(work, "ML-1M size", 2))


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


# --- the web app under load: 8 clients on loopback (what people using it wait for) -----

LOAD_MIX = (("known user", 0.7), ("similar", 0.2), ("new user", 0.1))


def _serving_setup(work: Path) -> Path:
    """Trained models as serving models, with a map: what `python -m lib serve` loads.
    Trained, not built: a new user's fold-in takes as many Newton steps as the weights
    ask for. They are the convergence case's models at ML-1M size (trained here first
    when that case has not run in `work`)."""
    import shutil

    from lib import artifacts
    root = work / "serving-models"
    if artifacts.has_serving("synthetic", root):
        return root
    source = work / "models-ML-1M-size"
    if not (source / "synthetic" / "stage2" / artifacts.MANIFEST).is_file():
        _converged(work, "ML-1M size")
    for stage in artifacts.STAGES:
        target = artifacts.stage_dir("synthetic", stage, root, serving=True)
        shutil.copytree(artifacts.stage_dir("synthetic", stage, source), target,
                        dirs_exist_ok=True)
    with np.load(target / artifacts.VECTORS) as npz:
        movie_ids = npz["movie_ids"]
    rng = np.random.default_rng(C.SEED)
    artifacts.save_map("synthetic", movie_ids, rng.normal(size=(len(movie_ids), 2)), root)
    return root


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _server(work: Path):
    """`python -m lib serve` over `_serving_setup`'s models in its own process, on a
    free loopback port; yields ``(port, seconds it took to answer /api/health)``."""
    import http.client
    import os
    root = _serving_setup(work)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lib", "serve", "--dataset", "synthetic", "--data-dir",
         str(work), "--port", str(port)], cwd=C.PROJ_ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env={**os.environ, "MODELS_DIR": str(root)})
    try:
        started = time.perf_counter()
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/api/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - started > 120:
                    proc.kill()
                    output = proc.communicate()[0]
                    raise RuntimeError(f"the server did not start: {output}") from None
                time.sleep(0.2)
        yield port, time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _fire(port: int, plan: list[tuple], clients: int) -> tuple[list[tuple], float]:
    """Send `plan` (kind, method, path, body) from `clients` threads, each on its own
    keep-alive connection; returns (kind, seconds, status) per request and the wall time."""
    import http.client
    from concurrent.futures import ThreadPoolExecutor

    def client(share):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        out = []
        for kind, method, path, body in share:
            t0 = time.perf_counter()
            conn.request(method, path, body=body,
                         headers={"Content-Type": "application/json"} if body else {})
            response = conn.getresponse()
            response.read()
            out.append((kind, time.perf_counter() - t0, response.status))
        return out

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = [r for part in pool.map(client, [plan[i::clients] for i in range(clients)])
                for r in part]
    return done, time.perf_counter() - t0


def _latencies(done: list[tuple], wall: float, kinds) -> dict:
    result = {"requests": len(done), "errors": sum(status != 200 for *_, status in done),
              "requests/s": len(done) / wall}
    for kind in kinds:
        ms = np.array([t for k, t, _ in done if k == kind]) * 1000
        result[f"{kind} p50 ms"] = float(np.percentile(ms, 50))
        result[f"{kind} p95 ms"] = float(np.percentile(ms, 95))
    return result


def _load_check(work: Path, requests: int = 2000, clients: int = 8) -> dict:
    """The `LOAD_MIX`, seeded: known users' top 10 with reasons, similar movies, new
    users from 5 liked movies, drawn from the ML-1M-sized synthetic data."""
    import json as json_

    from lib import data
    ds = data.load_dataset("synthetic", work)
    users = ds.ratings[C.USER_COL].unique()
    movies = ds.movies[C.MOVIE_COL].to_numpy()
    rng = np.random.default_rng(C.SEED)
    kinds = rng.choice([k for k, _ in LOAD_MIX], size=requests, p=[p for _, p in LOAD_MIX])
    plan = []
    for kind in kinds:
        if kind == "known user":
            plan.append((kind, "GET", f"/api/users/{rng.choice(users)}/recommendations", None))
        elif kind == "similar":
            plan.append((kind, "GET", f"/api/movies/{rng.choice(movies)}/similar", None))
        else:
            liked = rng.choice(movies, size=5, replace=False).tolist()
            plan.append((kind, "POST", "/api/recommend", json_.dumps({"liked": liked})))
    with _server(work) as (port, start):
        done, wall = _fire(port, plan, clients)
    return {**_latencies(done, wall, [k for k, _ in LOAD_MIX]), "clients": clients,
            "server start s": start}


def _health_check(work: Path, requests: int = 2000, clients: int = 8) -> dict:
    """The floor: the same server and clients on the cheapest route."""
    plan = [("health", "GET", "/api/health", None)] * requests
    with _server(work) as (port, _):
        done, wall = _fire(port, plan, clients)
    return {**_latencies(done, wall, ["health"]), "clients": clients}


case("web app: /api/health, 8 clients, 2,000 requests (reference)", "serve", repeat=1)(
    _health_check)
case("web app under load: 8 clients, 2,000 requests (70% known user with reasons, 20% "
     "similar, 10% new user from 5 liked), ML-1M size", "serve", repeat=1)(_load_check)


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


def main(groups: list[str] | None = None, out: Path | None = None,
         work: Path | None = None, only: list[str] | None = None) -> list[dict]:
    """Run the cases of `groups` (data, train and answer by default; data-scale and
    train-scale generate 10x and ML-25M-sized data first), print a table, write JSON.

    `only` keeps the cases whose name contains one of its texts. `work` keeps the
    generated data between runs (default: a temporary folder). Each case prints one line
    when it ends, and the JSON is rewritten after every case, so a long run that fails
    keeps what it measured.
    """
    groups = groups or ["data", "train", "answer"]
    results = []
    out = Path(out or C.PROJ_ROOT / "benchmarks.json")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        _ensure_synthetic(work)
        for name, spec in CASES.items():
            if spec["group"] not in groups or (only and not any(t in name for t in only)):
                continue
            proc = subprocess.run([sys.executable, "-m", "lib.bench", name, str(work)],
                                  capture_output=True, text=True, cwd=C.PROJ_ROOT)
            if proc.returncode != 0:
                raise RuntimeError(f"benchmark case {name!r} failed:\n{proc.stderr[-2000:]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"{results[-1]['seconds']:9.1f} s  {name}", flush=True)
            _write(out, results)
    _relative(results)
    _write(out, results)
    print()
    _print_table(results)
    print(f"written to {out}")
    return results


def _write(out: Path, results: list[dict]) -> None:
    report = {"machine": {"python": platform.python_version(), "cpus": _cpus(),
                          "platform": platform.platform()},
              "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "results": results}
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")


def _relative(results: list[dict]) -> None:
    """Each epoch beside the plain Keras model's epoch on the same data, as a ratio."""
    plain = {r["case"].rsplit(", ", 1)[1]: r["s/epoch"] for r in results
             if r["case"].startswith("plain ") and "s/epoch" in r}
    for r in results:
        tag = r["case"].rsplit(", ", 1)[-1]
        if "s/epoch" in r and tag in plain and not r["case"].startswith("plain "):
            r["x plain epoch"] = r["s/epoch"] / plain[tag]


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
