"""Command line: ``python -m lib data | run | evaluate | recommend | bench``."""
from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

from lib import config as C


def _data_synthetic(args) -> int:
    from lib.synthetic import write_synthetic
    out = Path(args.out or C.DATA_DIR / ("synthetic" if args.size == "ml-1m" else "synthetic-tiny"))
    write_synthetic(out, args.size, scale=args.scale, seed=args.seed)
    print(f"synthetic data (size {args.size}, scale {args.scale}, seed {args.seed}) "
          f"written to {out}")
    return 0


def _data_validate(args) -> int:
    from lib.data import read_release
    from lib.errors import DataError
    folder = Path(args.data_dir) / args.dataset
    try:
        dataset, problems = read_release(folder, args.dataset)
    except DataError as exc:
        print(exc, file=sys.stderr)
        return 1
    for report in dataset.reports.values():
        print(report)
    for key, value in dataset.counts().items():
        print(f"{key:>14}: {value:,}")
    if not problems:
        print(f"{folder}: OK")
        return 0
    for problem in problems[:args.max_problems]:
        print(problem, file=sys.stderr)
    if len(problems) > args.max_problems:
        print(f"... and {len(problems) - args.max_problems:,} more", file=sys.stderr)
    kinds = Counter(p.kind for p in problems)
    print(f"{folder}: {len(problems):,} problems: " +
          ", ".join(f"{n:,} {k}" for k, n in kinds.most_common()), file=sys.stderr)
    return 1


def _data_download(args) -> int:
    from lib.download import download, install_folder, install_zip
    from lib.errors import DownloadError
    try:
        if args.from_dir:
            folder = install_folder(args.from_dir, args.name, args.data_dir)
        elif args.zip:
            folder = install_zip(args.zip, args.name, args.data_dir)
        else:
            folder = download(args.name, args.data_dir, urls=args.url or None)
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name} is ready in {folder}")
    return 0


def _run(args) -> int:
    from lib.errors import DataError, PipelineError
    from lib.pipeline import run
    params = {name: _literal(value) for name, value in args.parameter or []}
    try:
        done = run(args.dataset, args.data_dir, parameters=params, out_dir=args.out,
                   only=args.only, in_place=args.in_place)
    except (PipelineError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
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
    import json

    import pandas as pd

    from lib import evaluation, stages
    from lib.data import load_dataset, resolve_dataset
    from lib.errors import DataError
    from lib.ids import IdMap
    try:
        name = resolve_dataset(args.dataset, args.data_dir)
        ds = load_dataset(name, args.data_dir)
        split = evaluation.make_split(ds.ratings, args.split, seed=args.seed,
                                      split_dir=args.split_dir)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ids = IdMap.from_dataset(ds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    s1 = stages.run_stage1(ds, ids, seed=args.seed)
    table, recs, users, scorers = stages.evaluate_all(ds, ids, split, s1.movie_vectors,
                                                      k=args.k, seed=args.seed)
    for model, top in recs.items():
        slug = model.split(" (")[0].replace(" ", "_")
        stages.write_recs(top, users, scorers[model], ids, out / f"recs_{slug}.csv")
    if name == "ml-100k" and args.k == 10 and split.method.startswith("per-item 0.75 seed 42"):
        published = pd.DataFrame(C.PUBLISHED_ML100K).T
        published.index = [f"{m} (published)" for m in published.index]
        table = pd.concat([table, published])
    report = {"dataset": name, "split": split.method, "k": args.k, "synthetic": ds.synthetic,
              "train_ratings": len(split.train), "test_ratings": len(split.test),
              "metrics": json.loads(table.to_json(orient="index"))}
    (out / "metrics.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    cols = [c for c in (f"ndcg@{args.k}", f"precision@{args.k}", f"recall@{args.k}",
                        f"map@{args.k}", f"hit_rate@{args.k}", f"coverage@{args.k}", "rmse",
                        "mae", "train seconds") if c in table.columns]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"{name}, split {split.method}, k = {args.k}")
        print(table[cols].round(4).to_string(na_rep=""))
    print(f"written: {C.shown(out / 'metrics.json')} and recs_<model>.csv")
    return 0


def _recommend(args) -> int:
    from lib import artifacts
    from lib.data import load_dataset, resolve_dataset
    from lib.errors import ArtifactError, DataError, UnknownIdError
    from lib.recommend import Engine
    try:
        name = resolve_dataset(args.dataset, args.data_dir, download=False)
        engine = Engine.load(load_dataset(name, args.data_dir))
        if args.user is not None:
            frame = engine.recommend(args.user, args.k)
            title = f"top {args.k} for user {args.user}"
        elif args.similar is not None:
            frame = engine.similar(args.similar, args.k)
            title = f"movies like {args.similar}"
        else:
            liked = [int(x) for x in args.liked.split(",") if x.strip()]
            frame = engine.new_user(liked, args.k)
            title = f"for a new user who liked {liked}"
    except (DataError, ArtifactError, UnknownIdError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(artifacts.summary(engine.manifest))
    print(f"{name}: {title}")
    frame = frame.assign(genres=frame["genres"].map("|".join))
    print(frame.to_string(index=False))
    return 0


def _bench(args) -> int:
    from lib.bench import main
    main(args.group, args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="make, fetch or check datasets")
    data_sub = data.add_subparsers(dest="action", required=True)
    p = data_sub.add_parser("synthetic", help="write the built-in dataset (ML-1M format)")
    p.add_argument("--out", help="folder to write (default data/synthetic or "
                                 "data/synthetic-tiny)")
    p.add_argument("--size", choices=["tiny", "ml-1m"], default="ml-1m")
    p.add_argument("--scale", type=float, default=1.0, help="x users and ratings")
    p.add_argument("--seed", type=int, default=C.SEED)
    p.set_defaults(func=_data_synthetic)
    p = data_sub.add_parser("validate", help="check a release folder and print its counts")
    p.add_argument("--dataset", required=True, choices=[d for d in C.DATASETS if d != "auto"])
    p.add_argument("--data-dir", default=C.DATA_DIR, type=Path)
    p.add_argument("--max-problems", type=int, default=50)
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
    p.add_argument("--data-dir", type=Path, help="default data/ (or DATA_DIR)")
    p.add_argument("--split", default="per-item", choices=["per-item", "per-user", "last"])
    p.add_argument("--split-dir", type=Path, help="a folder with train.csv and test.csv")
    p.add_argument("--k", type=int, default=C.DEFAULT_K)
    p.add_argument("--seed", type=int, default=C.SEED)
    p.add_argument("--out", type=Path, required=True, help="folder for metrics.json, recs")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("recommend", help="recommend with the saved models")
    p.add_argument("--dataset", default=C.DEFAULT_DATASET, choices=C.DATASETS)
    p.add_argument("--data-dir", type=Path, help="default data/ (or DATA_DIR)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", type=int, help="a known user id")
    who.add_argument("--similar", type=int, metavar="MOVIE_ID", help="movies like this one")
    who.add_argument("--liked", help="a new user: comma-separated movie ids they like")
    p.add_argument("--k", type=int, default=C.DEFAULT_K)
    p.set_defaults(func=_recommend)

    p = sub.add_parser("bench", help="benchmark: print a table, write JSON")
    p.add_argument("--group", action="append",
                   help="data | train | data-scale | train-scale (default: data and train)")
    p.add_argument("--out", type=Path, help="JSON file (default benchmarks.json)")
    p.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
