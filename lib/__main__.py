"""Command line: ``python -m lib data | run | evaluate | recommend | bench``.

Arguments are checked first (by the parser, then against the data, which is quick to
read) before any model is loaded or trained; every ordinary mistake ends in one line
``error: ...`` naming the parameter or the file, and exit code 1 (2 for the parser's).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import Counter
from pathlib import Path

from lib import config as C
from lib.errors import (
    ArtifactError,
    ClusterError,
    DataError,
    PipelineError,
    UnknownIdError,
    UsageError,
)

# --- argument types: the parser's own checks, with the project's messages ------------


def _whole(text: str, least: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
    return value


def _k(text: str) -> int:
    return _whole(text, 1, "at least 1")


def _max_len(text: str) -> int:
    return _whole(text, 2, "at least 2")


def _movielens_id(text: str) -> int:
    return _whole(text, 0, "an id of 0 or more")


def _count(text: str) -> int:
    return _whole(text, 0, "0 or more")


def _number(text: str, ok, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def _scale(text: str) -> float:
    return _number(text, lambda v: 0 < v < float("inf"), "a number above 0")


def _seconds(text: str) -> float:
    return _number(text, lambda v: 0 <= v < float("inf"), "a number of seconds >= 0")


def _share(text: str) -> float:
    return _number(text, lambda v: 0 < v < 1, "a share between 0 and 1, e.g. 0.2")


def _id_list(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("give at least one movie id")
    for part in parts:
        if not (part.isascii() and part.isdigit()):
            raise argparse.ArgumentTypeError(
                f"{part!r} is not a movie id (a whole number); give the ids of the "
                f"dataset's movies separated by commas")
    return [int(p) for p in parts]


# --- shared steps ---------------------------------------------------------------------

def _writable(folder: Path, what: str) -> None:
    """Checked before long work: the folder can be created and written."""
    from lib.atomic import check_writable
    try:
        check_writable(folder)
    except OSError as exc:
        raise UsageError(f"cannot write to {folder}: {exc}; {what}") from None


def _load(args, *, download: bool = True, generate: bool = True):
    """The dataset the user named (`auto` resolved), loaded once."""
    from lib.data import load_dataset, resolve_dataset
    name, data_dir = resolve_dataset(args.dataset, args.data_dir, download=download)
    return load_dataset(name, data_dir, generate=generate,
                        on_bad_lines="skip" if args.skip_bad_lines else "error")


def _check_k(args, most: int, dataset: str, what: str = "movies") -> int:
    """The k to use: the user's, if the catalogue has that many; the default, cut to the
    catalogue."""
    if args.k is None:
        return min(C.DEFAULT_K, most)
    if args.k > most:
        raise UsageError(f"--k {args.k:,} is more than the {most:,} {what} of {dataset}: "
                         f"choose 1 to {most:,}")
    return args.k


# --- commands -------------------------------------------------------------------------

def _data_synthetic(args) -> int:
    from lib.synthetic import write_synthetic
    name = {size: name for name, size in C.SYNTHETIC_SIZES.items()}[args.size]
    out = Path(args.out or C.DATA_DIR / name)
    _writable(out, "choose another folder with --out")
    write_synthetic(out, args.size, scale=args.scale, seed=args.seed)
    print(f"synthetic data (size {args.size}, scale {args.scale:g}, seed {args.seed}) "
          f"written to {C.shown(out)}")
    return 0


def _data_validate(args) -> int:
    from lib.data import count_differences, read_release, release_folder
    folder = release_folder(args.dataset, args.data_dir)
    dataset, problems = read_release(folder, args.dataset)
    for report in dataset.reports.values():
        print(report)
    for key, value in dataset.counts().items():
        print(f"{key:>14}: {value:,}")
    for problem in problems[:args.max_problems]:
        print(problem, file=sys.stderr)
    if len(problems) > args.max_problems:
        print(f"... and {len(problems) - args.max_problems:,} more", file=sys.stderr)
    differences = count_differences(dataset)
    for difference in differences:
        print(f"{'error' if args.strict else 'warning'}: {difference}", file=sys.stderr)
    if problems:
        kinds = Counter(p.kind for p in problems)
        print(f"{C.shown(folder)}: {_many(len(problems), 'problem')}: " +
              ", ".join(f"{n:,} {k}" for k, n in kinds.most_common()), file=sys.stderr)
        return 1
    if differences:
        print(f"{C.shown(folder)}: no bad lines, but its counts are not the published "
              f"ones (see above{'' if args.strict else '; --strict makes that an error'})")
        return 1 if args.strict else 0
    print(f"{C.shown(folder)}: OK")
    return 0


def _many(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _data_download(args) -> int:
    from lib.download import download, install_folder, install_zip
    data_dir = Path(args.data_dir)
    _writable(data_dir, "choose another folder with --data-dir")
    if args.from_dir:
        folder = install_folder(args.from_dir, args.name, data_dir)
    elif args.zip:
        folder = install_zip(args.zip, args.name, data_dir)
    else:
        folder = download(args.name, data_dir, urls=args.url or None)
    print(f"{args.name} is ready in {C.shown(folder)}")
    return 0


def _run(args) -> int:
    from lib.pipeline import run
    for folder, variable in ((C.MODELS_DIR, "MODELS_DIR"), (C.FIGURES_DIR, "FIGURES_DIR")):
        _writable(folder, f"set {variable} to a folder you can write")
    if args.out:
        _writable(args.out, "choose another folder with --out")
    params = {name: _literal(value) for name, value in args.parameter or []}
    done = run(args.dataset, args.data_dir, parameters=params, out_dir=args.out,
               only=args.only, in_place=args.in_place, progress=not C.headless())
    print("executed notebooks: " + ", ".join(C.shown(p) for p in done))
    return 0


def _literal(text: str):
    """-p values: numbers and booleans as such, anything else as a string."""
    import ast
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _evaluate(args) -> int:
    out = Path(args.out)
    _writable(out, "choose another folder with --out")
    splits = list(dict.fromkeys(args.split or ["per-item"]))
    seeds = list(dict.fromkeys(args.seed or [C.SEED]))
    if args.split_dir and (len(splits) > 1 or len(seeds) > 1):
        print("error: --split-dir is one given split: drop the extra --split/--seed values",
              file=sys.stderr)
        return 2
    ds = _load(args)
    k = _check_k(args, len(ds.movies), ds.name)
    if ds.users is None and (args.side != "off" or args.withhold_users is not None):
        flag = "--withhold-users" if args.withhold_users is not None else f"--side {args.side}"
        raise UsageError(f"{flag} needs demographics, and {ds.name} has no user file")
    if args.withhold_users is not None:
        n_users = ds.ratings[C.USER_COL].nunique()
        if not 1 <= round(args.withhold_users * n_users) < n_users:
            raise UsageError(f"--withhold-users {args.withhold_users:g} of {n_users:,} users "
                             f"leaves no one to withhold or no one to train on: choose a "
                             f"share between {1 / n_users:.2g} and {1 - 1 / n_users:.4g}")
    from lib import evaluation, stages
    from lib.ids import IdMap
    ids = IdMap.from_dataset(ds)
    runs, stage1 = {}, {}  # stage 1 depends on the seed only: trained once per seed
    for method in splits:
        for seed in seeds:
            folder = out if len(splits) * len(seeds) == 1 else out / f"{method}-seed{seed}"
            split = evaluation.make_split(ds.ratings, method, seed=seed,
                                          split_dir=args.split_dir)
            if args.split_dir:
                evaluation.check_split_ids(split, ids, args.split_dir, ds.name)
            if seed not in stage1:
                stage1[seed] = stages.run_stage1(ds, ids, seed=seed).movie_vectors
            table, recs, users, scorers = stages.evaluate_all(
                ds, ids, split, stage1[seed], k=k, seed=seed, user_tower=args.user_tower,
                side={"off": False, "on": True, "auto": "auto"}[args.side],
                search_budget=args.search_budget,
                sequential=None if args.sequential is None else tuple(
                    dict.fromkeys(v for v in args.sequential if v != "none")),
                sequential_max_len=args.sequential_max_len)
            written = stages.write_evaluation(folder, ds, split, table, recs, users, scorers,
                                              ids, k)
            _print_table(table, f"{ds.name}, split {split.method}, k = {k}", k)
            print("written: " + ", ".join(C.shown(p) for p in written))
            runs[(method, seed)] = table
    if len(runs) > 1:
        from lib import atomic
        summary, text = stages.summarise_runs(runs, k, ds.name)
        with atomic.replacing(out / "results.csv") as tmp:
            summary.to_csv(tmp, index=False)
        atomic.write_text(out / "results.md", text)
        print(text)
        print(f"written: {C.shown(out / 'results.md')}, {C.shown(out / 'results.csv')}")
    if args.withhold_users is not None:
        _new_users_table(ds, ids, seeds, k, args.withhold_users, out, stage1)
    return 0


def _new_users_table(ds, ids, seeds, k: int, share: float, out: Path,
                     stage1: dict | None = None) -> None:
    """`stages.demographic_cold_start` at every seed: printed, and written to
    ``new_users.csv``. `stage1` holds stage-1 movie vectors already trained, by seed."""
    import pandas as pd

    from lib import atomic, stages
    frames, stage1 = [], {} if stage1 is None else stage1
    for seed in seeds:
        if seed not in stage1:
            stage1[seed] = stages.run_stage1(ds, ids, seed=seed).movie_vectors
        frame = stages.demographic_cold_start(ds, ids, stage1[seed], share=share, k=k,
                                              seed=seed)
        _print_table(frame, f"{ds.name}: {frame.attrs['users']:,} users withheld from "
                            f"training (seed {seed}), recommended from their demographics "
                            f"alone, scored on all {frame.attrs['ratings']:,} of their "
                            f"ratings, k = {k}", k)
        frames.append(frame.assign(seed=seed).rename_axis("model").reset_index())
        frames[-1].attrs = {}  # the withheld ids stay with each run's frame, not the file
    with atomic.replacing(out / "new_users.csv") as tmp:
        pd.concat(frames).to_csv(tmp, index=False)
    print(f"written: {C.shown(out / 'new_users.csv')}")


def _print_table(table, title: str, k: int) -> None:
    import pandas as pd
    cols = [c for c in (f"ndcg@{k}", f"precision@{k}", f"recall@{k}", f"map@{k}",
                        f"hit_rate@{k}", f"coverage@{k}", "rmse", "mae", "train seconds")
            if c in table.columns]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(title)
        print(table[cols].round(4).to_string(na_rep=""))


def _recommend(args) -> int:
    from lib.data import load_catalogue, resolve_dataset
    from lib.recommend import Engine
    name, data_dir = resolve_dataset(args.dataset, args.data_dir, download=False)
    ds = load_catalogue(name, data_dir,
                        on_bad_lines="skip" if args.skip_bad_lines else "error")
    titles = ds.movies.set_index(C.MOVIE_COL)[C.TITLE_COL]
    if args.similar is not None:
        k = _check_k(args, len(ds.movies) - 1, ds.name, "other movies")
    else:
        k = _check_k(args, len(ds.movies), ds.name)
    demographics = {"gender": args.gender, "age": args.age, "occupation": args.occupation}
    given = {name: value for name, value in demographics.items() if value is not None}
    if given and (args.user is not None or args.similar is not None):
        raise UsageError(f"--{next(iter(given))} describes a new user: use it with --liked "
                         "or alone, not with --user or --similar")
    if args.next and args.user is None:
        raise UsageError("--next is what a known user may watch next: give --user ID")
    if args.user is None and args.similar is None and args.liked is None and not given:
        raise UsageError("say whom to recommend for: --user ID, --similar MOVIE_ID, "
                         "--liked ID,ID,... and/or --gender/--age/--occupation")
    liked = []
    if args.liked is not None:
        liked = list(dict.fromkeys(args.liked))
        for movie_id, n in Counter(args.liked).items():
            if n > 1:
                print(f"note: movie {movie_id} was given {n} times; it counts once",
                      file=sys.stderr)
        unknown = [m for m in liked if m not in titles.index]
        if unknown:
            raise UnknownIdError(f"--liked: unknown movie id{'s' * (len(unknown) > 1)} "
                                 f"{', '.join(map(str, unknown[:5]))} in {ds.name}")
    engine = Engine.load(ds)
    if args.next:
        if not engine.has_next:
            raise UsageError(f"--next needs the sequential model: run notebook 06 "
                             f"(`python -m lib run --dataset {ds.name} --only 06`) or "
                             f"`python -m lib train --dataset {ds.name}`")
        frame = engine.next_for(args.user, k)
        after = frame.attrs["after"]
        heading = (f"next {k} for user {args.user}, from their movies in time order"
                   + (" (looking most at " + "; ".join(after[C.TITLE_COL]) + ")"
                      if len(after) else ""))
    elif args.user is not None:
        frame = engine.recommend(args.user, k)
        heading = f"top {k} for user {args.user}"
        if len(frame) < k:
            heading = (f"all {_many(len(frame), 'movie')} user {args.user} has not rated, "
                       f"best first (asked for {k:,})")
    elif args.similar is not None:
        frame = engine.similar(args.similar, k)
        heading = f"movies like {args.similar} {titles.get(args.similar, '')}"
    else:
        try:
            frame = engine.new_user(liked, k, **demographics)
        except ValueError as exc:  # a label the release does not have, or no such inputs
            raise UsageError(str(exc)) from None
        who = ", ".join(f"{name} {value}" for name, value in given.items())
        heading = "for a new user" + (f" ({who})" if who else "") + (
            " who liked " + "; ".join(f"{m} {titles[m]}" for m in liked) if liked else "")
    print(engine.models_used())
    print(f"{ds.name}: {heading}")
    frame = frame.assign(genres=frame[C.GENRES_COL].map("|".join))
    print(frame.to_string(index=False))
    return 0


def _train(args) -> int:
    from lib import distributed as D
    # First: a cluster must be joined before TensorFlow runs anything in this process.
    cluster = D.Cluster.start(args.workers, args.index, timeout=args.collective_timeout)
    from lib import artifacts
    from lib import checkpoints as CK
    from lib.serving import train_serving
    if cluster is None or cluster.chief:
        _writable(C.MODELS_DIR, "set MODELS_DIR to a folder you can write")
    ds = _load(args)
    if cluster is not None:
        print(f"{cluster.describe()}: training stage 2's ranking model on {cluster.size} "
              f"workers; the chief trains the rest and writes the models", flush=True)
    # Per-epoch checkpoints, so a stopped job resumes (one folder per data and settings).
    key = CK.job_key(ratings=_ratings_digest(ds), seed=args.seed, budget=args.search_budget,
                     sequential=not args.no_sequential,
                     workers=1 if cluster is None else cluster.size)
    job = CK.start(f"{ds.name}-{key}")
    try:
        served = train_serving(ds, seed=args.seed, search_budget=args.search_budget,
                               sequential=not args.no_sequential, progress=not C.headless())
    except D.LOST as exc:
        if cluster is None:
            raise
        print(f"error: {D.lost(exc)} (saved in {C.shown(job.folder)})", file=sys.stderr,
              flush=True)
        os._exit(3)  # TensorFlow's shutdown would wait for the lost worker
    finally:
        CK.stop()
    job.remove()
    if served is None:  # a worker that is not the chief: its share is done
        print(f"{cluster.describe()}: done; the chief writes the models", flush=True)
        return 0
    print(served.summary)
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in served.seconds.items()))
    print(f"serving models written to {C.shown(served.folder)}")
    if artifacts.has_serving(ds.name):
        print(f"start the web app: python -m lib serve --dataset {ds.name}")
    return 0


def _ratings_digest(ds) -> str:
    import hashlib
    frame = ds.ratings[[C.USER_COL, C.MOVIE_COL, C.RATING_COL]]
    return hashlib.sha256(frame.to_numpy().tobytes()).hexdigest()


def _serve(args) -> int:
    import waitress

    from lib import artifacts
    from lib.web import create_app
    ds = _load(args, download=False)
    if args.train_if_missing and not artifacts.has_serving(ds.name):
        from lib.serving import train_serving
        print(f"{ds.name}: no serving models yet; training them on every rating first")
        _writable(C.MODELS_DIR, "set MODELS_DIR to a folder you can write")
        print(train_serving(ds, progress=not C.headless()).summary)
    app = create_app(ds)
    engine = app.extensions["engine"]
    print(f"{ds.name}: {engine.models_used()}")
    print(f"serving on http://{args.host}:{args.port}/ (Ctrl+C stops)", flush=True)
    # One BLAS thread per request: the requests run in parallel threads already, and a
    # request's products are small (ML-1M size, 8 clients, untrained tables: 211 -> 265
    # requests/s).
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        waitress.serve(app, host=args.host, port=args.port, threads=args.threads,
                       ident="movielens-embeddings")
    return 0


def _port(text: str) -> int:
    return int(_number(text, lambda v: v == int(v) and 1 <= v <= 65535,
                       "a whole number from 1 to 65535"))


def _threads(text: str) -> int:
    return int(_number(text, lambda v: v == int(v) and 1 <= v <= 256,
                       "a whole number from 1 to 256"))


def _bench(args) -> int:
    from lib.bench import main
    main(args.group, args.out, args.work, args.only)
    return 0


# --- the parser -----------------------------------------------------------------------

def _data_options(p) -> None:
    p.add_argument("--data-dir", type=Path,
                   help="the folder holding one folder per release, or the release "
                        "folder itself (default data/, or DATA_DIR)")
    p.add_argument("--skip-bad-lines", action="store_true",
                   help="drop bad lines (counted by reason) instead of stopping")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="make, fetch or check datasets")
    data_sub = data.add_subparsers(dest="action", required=True)
    p = data_sub.add_parser("synthetic", help="write the built-in dataset (ML-1M format; "
                                              "ML-25M's CSV format with --size ml-25m)")
    p.add_argument("--out", type=Path, help="folder to write (default data/synthetic, "
                                            "data/synthetic-tiny or data/synthetic-25m)")
    p.add_argument("--size", choices=list(C.SYNTHETIC_FORMATS), default="ml-1m",
                   help="ml-1m: ML-1M's counts; tiny: for tests; ml-25m: ML-25M's counts "
                        "and format (about 3 minutes, 4 GB of memory)")
    p.add_argument("--scale", type=_scale, default=1.0, help="x users and ratings (> 0)")
    p.add_argument("--seed", type=int, default=C.SEED)
    p.set_defaults(func=_data_synthetic)
    p = data_sub.add_parser("validate", help="check a release folder and print its counts")
    p.add_argument("--dataset", required=True, choices=[d for d in C.DATASETS if d != "auto"])
    p.add_argument("--data-dir", default=C.DATA_DIR, type=Path,
                   help="the folder holding the release folder, or the release folder")
    p.add_argument("--max-problems", type=_count, default=50)
    p.add_argument("--strict", action="store_true",
                   help="counts that differ from the published ones are an error")
    p.set_defaults(func=_data_validate)
    p = data_sub.add_parser("download", help="fetch a release from GroupLens")
    p.add_argument("name", choices=list(C.RELEASES))
    p.add_argument("--data-dir", default=C.DATA_DIR, type=Path)
    p.add_argument("--url", action="append", help="URL to try instead (repeatable)")
    local = p.add_mutually_exclusive_group()
    local.add_argument("--zip", type=Path, help="install from a zip you already have")
    local.add_argument("--from-dir", type=Path, metavar="DIR",
                       help="copy the release from an unpacked folder you already have")
    p.set_defaults(func=_data_download)

    p = sub.add_parser("run", help="the main job: run the numbered notebooks with papermill")
    p.add_argument("--dataset", default=C.DEFAULT_DATASET, choices=C.DATASETS)
    p.add_argument("--data-dir", type=Path, help="default data/ (or DATA_DIR)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="a notebook parameter, e.g. -p EPOCHS 3 (repeatable)")
    p.add_argument("--only", action="append", help="run notebooks starting with this, e.g. 01")
    p.add_argument("--out", type=Path, help="folder for executed copies (default runs/<dataset>)")
    p.add_argument("--in-place", action="store_true",
                   help="refresh notebooks/ in place (make notebooks: on ml-100k)")
    p.set_defaults(func=_run)

    p = sub.add_parser("evaluate", help="train models and baselines on a split, score them")
    p.add_argument("--dataset", default=C.DEFAULT_DATASET, choices=C.DATASETS)
    _data_options(p)
    p.add_argument("--split", action="append", choices=["per-item", "per-user", "last"],
                   help="how test ratings are held out (default per-item; repeatable: with "
                        "several splits or seeds, one folder each and a results.md table "
                        "of means over the seeds)")
    p.add_argument("--split-dir", type=Path, help="a folder with train.csv and test.csv")
    p.add_argument("--k", type=_k, help=f"cut-off of the metrics (default {C.DEFAULT_K})")
    p.add_argument("--seed", type=int, action="append",
                   help=f"fixes the split, sampling and initialisation (default {C.SEED}; "
                        "repeatable)")
    p.add_argument("--user-tower", default=C.USER_TOWER, choices=["free", "history", "auto"],
                   help="how the ranking model makes user vectors (default "
                        f"{C.USER_TOWER}: validation picks)")
    p.add_argument("--withhold-users", type=_share, metavar="SHARE",
                   help="also withhold this share of users (e.g. 0.2) from training entirely "
                        "and recommend for them from their demographics alone")
    p.add_argument("--side", default="off", choices=["off", "on", "auto"],
                   help="gender, age and occupation inputs in both models (auto: validation "
                        "picks, each model on its own)")
    p.add_argument("--search-budget", type=_seconds, default=C.SEARCH_BUDGET, metavar="SECONDS",
                   help="seconds per stage-2 model for choosing learning rate, L2 and dropout "
                        f"on validation (default {C.SEARCH_BUDGET:g}; 0: the defaults)")
    p.add_argument("--sequential", action="append",
                   choices=["stage1", "random", "shuffled", "none"],
                   help="variants of the sequential model to add (repeatable): started from "
                        "stage 1, from random vectors, or trained on shuffled histories (the "
                        "control); default stage1 on the last split, none on the others")
    p.add_argument("--sequential-max-len", type=_max_len, default=C.SEQUENCE_MAX_LEN,
                   metavar="N", help=f"movies the sequential model reads per user (default "
                                     f"{C.SEQUENCE_MAX_LEN}; SASRec read 200 on ML-1M)")
    p.add_argument("--out", type=Path, required=True,
                   help="folder for metrics.json, recs_<model>.csv and the split")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("recommend", help="recommend with the saved models")
    p.add_argument("--dataset", default=C.DEFAULT_DATASET, choices=C.DATASETS)
    _data_options(p)
    who = p.add_mutually_exclusive_group()
    who.add_argument("--user", type=_movielens_id, help="a known user id")
    who.add_argument("--similar", type=_movielens_id, metavar="MOVIE_ID",
                     help="movies like this one")
    who.add_argument("--liked", type=_id_list, metavar="ID,ID,...",
                     help="a new user: comma-separated movie ids they like")
    for flag, what in (("--gender", "F or M"), ("--age", "an age group, e.g. 25-34"),
                       ("--occupation", "e.g. programmer")):
        p.add_argument(flag, help=f"a new user's {flag[2:]} ({what}), with or without "
                                  "--liked; where the models have demographic inputs")
    p.add_argument("--next", action="store_true",
                   help="with --user: what they may watch next, from the order of their "
                        "movies (the sequential model of notebook 06 or `train`)")
    p.add_argument("--k", type=_k, help=f"how many (default {C.DEFAULT_K})")
    p.set_defaults(func=_recommend)

    p = sub.add_parser("train", help="train both stages on every rating: the serving models "
                                     "that recommend and the web app use")
    p.add_argument("--dataset", default=C.DEFAULT_DATASET, choices=C.DATASETS)
    _data_options(p)
    p.add_argument("--seed", type=int, default=C.SEED, help=f"default {C.SEED}")
    p.add_argument("--search-budget", type=_seconds, default=C.SEARCH_BUDGET, metavar="SECONDS",
                   help=f"seconds per stage-2 model for the settings search (default "
                        f"{C.SEARCH_BUDGET:g}; reused when run again on the same ratings)")
    p.add_argument("--no-sequential", action="store_true",
                   help="skip the sequential model (no \"next for you\" lists)")
    p.add_argument("--workers", metavar="HOST:PORT,...",
                   help="train stage 2 on several machines (tf.distribute): every worker's "
                        "address, the same list on each; or set TF_CONFIG instead")
    p.add_argument("--index", type=int, help="this machine's place in --workers (0: the "
                                             "chief, which writes the models)")
    p.add_argument("--collective-timeout", type=_seconds, default=C.COLLECTIVE_TIMEOUT,
                   metavar="SECONDS", help="stop when a worker answers nothing for this long "
                                           f"(default {C.COLLECTIVE_TIMEOUT:g})")
    p.set_defaults(func=_train)

    p = sub.add_parser("serve", help="the web app over the saved models (waitress)")
    p.add_argument("--dataset", default=C.DEFAULT_DATASET, choices=C.DATASETS)
    _data_options(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8000, help="default 8000")
    p.add_argument("--threads", type=_threads, default=8, help="worker threads (default 8)")
    p.add_argument("--train-if-missing", action="store_true",
                   help="train the serving models first (`train`) when there are none")
    p.set_defaults(func=_serve)

    p = sub.add_parser("bench", help="benchmark: print a table, write JSON")
    p.add_argument("--group", action="append",
                   help="data | train | data-scale | train-scale | answer | serve | distributed "
                        "(default: data, train and answer)")
    p.add_argument("--out", type=Path, help="JSON file (default benchmarks.json)")
    p.add_argument("--work", type=Path, help="folder that keeps the generated data between "
                                             "runs (default: a temporary folder)")
    p.add_argument("--only", action="append",
                   help="run only the cases whose name contains this text (repeatable)")
    p.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if not sys.stderr.isatty():  # a log file, not a person: no progress bars in it
        os.environ.setdefault(C.HEADLESS_ENV, "1")
    try:
        return args.func(args)
    except (DataError, ArtifactError, UnknownIdError, PipelineError, UsageError,
            ClusterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the disk or a folder said no while writing
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}; check the folder's "
              f"permissions and free space, or choose another with --out / MODELS_DIR / "
              f"DATA_DIR", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
