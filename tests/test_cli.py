"""The command line never surprises: every ordinary mistake gets one clear line (no
traceback), arguments are checked before data is read or models trained, reads write
nothing, and what it writes can be reused.

Each case runs `python -m lib` in this process (`lib.__main__.main`) on tiny files in the
exact MovieLens formats; models are built, not trained (their weights do not matter).
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pytest
from conftest import (
    ML1M_MOVIES,
    ML1M_RATINGS,
    save_untrained_models,
    write_latest,
    write_lines,
    write_ml1m,
    write_ml100k,
)

from lib import config as C
from lib import stages
from lib.__main__ import main
from lib.data import load_dataset
from lib.errors import DataError


class _Stop(Exception):
    """Raised where training would start: the check under test came before it."""


@pytest.fixture
def world(tmp_path, monkeypatch):
    """DIR/ml-1m (tiny) with saved models; MODELS_DIR, DATA_DIR and figures in tmp."""
    data = tmp_path / "data"
    write_ml1m(data / "ml-1m")
    models = tmp_path / "models"
    save_untrained_models(load_dataset("ml-1m", data), models)
    monkeypatch.setattr(C, "MODELS_DIR", models)
    monkeypatch.setattr(C, "DATA_DIR", tmp_path / "project-data")
    monkeypatch.setattr(C, "FIGURES_DIR", tmp_path / "figures")
    monkeypatch.setenv(C.HEADLESS_ENV, "1")
    monkeypatch.setattr(stages, "run_stage1", _no_training)
    (tmp_path / "a-file").write_text("not a folder")
    return tmp_path


def _no_training(*args, **kwargs):
    raise _Stop


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # the parser's own errors
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def _fill(argv: str, root: Path) -> list[str]:
    return [a.replace("{root}", str(root)) for a in argv.split()]


RECOMMEND = "recommend --dataset ml-1m --data-dir {root}/data"
EVALUATE = "evaluate --dataset ml-1m --data-dir {root}/data --out {root}/eval"

# (case, command, exit code, words the message must contain); {root} is the tmp folder.
MISTAKES = [
    ("k far above the catalogue", f"{RECOMMEND} --user 1 --k 3000000000", 1,
     "--k 3,000,000,000 is more than the 4 movies of ml-1m: choose 1 to 4"),
    ("negative k", f"{RECOMMEND} --similar 1 --k -5", 2,
     "argument --k: must be at least 1, got -5"),
    ("k of 0 for similar movies", f"{RECOMMEND} --similar 1 --k 0", 2,
     "argument --k: must be at least 1, got 0"),
    ("k of 0 is refused before models are looked for",
     "recommend --dataset ml-1m --data-dir {root}/nowhere --user 1 --k 0", 2,
     "argument --k: must be at least 1, got 0"),
    ("similar movies: at most all the others", f"{RECOMMEND} --similar 1 --k 4", 1,
     "--k 4 is more than the 3 other movies of ml-1m: choose 1 to 3"),
    ("k not a number", f"{RECOMMEND} --user 1 --k ten", 2,
     "argument --k: must be a whole number, got 'ten'"),
    ("liked ids that are not numbers", f"{RECOMMEND} --liked 1,abc", 2,
     "'abc' is not a movie id (a whole number)"),
    ("liked ids unknown to the release", f"{RECOMMEND} --liked 1,99", 1,
     "--liked: unknown movie id 99 in ml-1m"),
    ("nobody to recommend for", RECOMMEND, 1, "say whom to recommend for: --user ID"),
    ("demographics with a known user", f"{RECOMMEND} --user 1 --age 25-34", 1,
     "--age describes a new user: use it with --liked or alone"),
    ("demographics for models without such inputs", f"{RECOMMEND} --gender F", 1,
     "these models have no demographic inputs"),
    ("an unknown user", f"{RECOMMEND} --user 99", 1, "unknown user id: 99"),
    ("next without a user", f"{RECOMMEND} --next", 1,
     "--next is what a known user may watch next: give --user ID"),
    ("next without a sequential model", f"{RECOMMEND} --user 1 --next", 1,
     "--next needs the sequential model: run notebook 06"),
    ("a sequential model reading one movie", f"{EVALUATE} --sequential-max-len 1", 2,
     "argument --sequential-max-len: must be at least 2, got 1"),
    ("scale of 0", "data synthetic --size tiny --scale 0 --out {root}/syn", 2,
     "argument --scale: must be a number above 0, got 0"),
    ("negative scale", "data synthetic --size tiny --scale -1 --out {root}/syn", 2,
     "argument --scale: must be a number above 0"),
    ("evaluate with k of 0", f"{EVALUATE} --k 0", 2, "argument --k: must be at least 1"),
    ("evaluate with k above the catalogue", f"{EVALUATE} --k 5", 1,
     "--k 5 is more than the 4 movies of ml-1m"),
    ("one given split with several seeds",
     f"{EVALUATE} --split-dir {{root}}/data --seed 1 --seed 2", 2,
     "--split-dir is one given split: drop the extra --split/--seed values"),
    ("a share of users that is not a share", f"{EVALUATE} --withhold-users 1.5", 2,
     "argument --withhold-users: must be a share between 0 and 1, e.g. 0.2, got 1.5"),
    ("evaluate into a folder that cannot be written",
     "evaluate --dataset ml-1m --data-dir {root}/data --out {root}/a-file/eval", 1,
     "cannot write to {root}/a-file/eval: {root}/a-file is a file, not a folder; "
     "choose another folder with --out"),
    ("synthetic data into a folder that cannot be written",
     "data synthetic --size tiny --out {root}/a-file/syn", 1,
     "cannot write to {root}/a-file/syn"),
    ("a zip into a data folder that cannot be written",
     "data download ml-1m --zip {root}/x.zip --data-dir {root}/a-file", 1,
     "cannot write to {root}/a-file"),
    ("zip and folder at once", "data download ml-1m --zip x.zip --from-dir y", 2,
     "not allowed with argument"),
    ("no models yet, with the user's own data folder",
     "recommend --dataset ml-100k --data-dir {root}/data --user 1", 1,
     "missing u.data, u.item, u.user"),
]


@pytest.mark.parametrize("case, command, code, words", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_ordinary_mistakes_get_one_clear_line(world, capsys, case, command, code, words):
    got, out, err = _run(_fill(command, world), capsys)
    assert got == code, err
    assert words.replace("{root}", str(world)) in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) <= 1


def test_a_run_needs_folders_it_can_write(world, capsys, monkeypatch):
    monkeypatch.setattr(C, "MODELS_DIR", world / "a-file" / "models")
    got, _, err = _run(["run", "--dataset", "synthetic-tiny"], capsys)
    assert got == 1 and "set MODELS_DIR to a folder you can write" in err


def test_liked_movies_given_twice_count_once_and_are_named(world, capsys):
    got, out, err = _run(_fill(f"{RECOMMEND} --liked 1,1,1,3 --k 2", world), capsys)
    assert got == 0, err
    assert "note: movie 1 was given 3 times; it counts once" in err
    assert "for a new user who liked 1 Toy Story (1995); 3 Misérables, Les (1995)" in out
    # which models answered: the notebooks' (no serving models here), and what they are
    assert out.startswith("the notebooks' models, trained on the per-item 0.75 seed 1 split")
    assert "models: ml-1m stage2" in out


def test_asking_for_more_than_a_user_has_not_rated_says_so(world, capsys):
    got, out, err = _run(_fill(f"{RECOMMEND} --user 1 --k 4", world), capsys)
    assert got == 0, err  # user 1 rated 3 of the 4 movies
    assert "ml-1m: all 1 movie user 1 has not rated, best first (asked for 4)" in out


def test_a_huge_k_within_the_engine_allocates_nothing(world):
    from lib.recommend import Engine
    engine = Engine.load(load_dataset("ml-1m", world / "data"), world / "models")
    assert len(engine.recommend(1, k=3_000_000_000)) == 1  # user 1 rated 3 of 4 movies


def test_split_ids_unknown_to_the_release_are_refused_before_training(world, capsys):
    split = world / "split"
    write_lines(split / "train.csv", ["user_id,movie_id,rating,timestamp", "1,1,5,1",
                                      "999,3,4,2"])
    write_lines(split / "test.csv", ["user_id,movie_id,rating,timestamp", "2,4,1,3"])
    got, _, err = _run(_fill(f"{EVALUATE} --split-dir {{root}}/split", world), capsys)
    assert got == 1
    assert f"{split / 'train.csv'} line 3: user_id 999 is not in ml-1m" in err


def test_a_malformed_split_file_is_named(world, capsys):
    split = world / "split"
    write_lines(split / "train.csv", ["user_id,movie_id,rating,timestamp", "1,x,5,1"])
    write_lines(split / "test.csv", ["user_id,movie_id,rating,timestamp", "2,4,1,3"])
    got, _, err = _run(_fill(f"{EVALUATE} --split-dir {{root}}/split", world), capsys)
    assert got == 1 and f"{split / 'train.csv'} line 2: 1 rows with a missing" in err


def test_auto_names_the_releases_in_the_users_folder_and_writes_nothing(world, capsys,
                                                                         monkeypatch):
    from lib import download
    monkeypatch.setattr(download, "release_urls", lambda name: ["http://127.0.0.1:9/x.zip"])
    mine = world / "mine"
    write_ml100k(mine / "ml-100k")
    write_latest(mine / "ml-latest-small")
    before = sorted(p.relative_to(mine) for p in mine.rglob("*"))
    for command in (f"recommend --data-dir {mine} --user 1",
                    f"evaluate --data-dir {mine} --out {world}/eval"):
        got, _, err = _run(command.split(), capsys)
        assert got == 1
        assert f"no MovieLens 1M in {mine}, but found ml-100k, ml-latest-small there: " \
               f"pass --dataset ml-100k" in err
    assert sorted(p.relative_to(mine) for p in mine.rglob("*")) == before  # no synthetic/


def test_the_release_folder_itself_is_accepted_as_data_dir(world, capsys):
    folder = write_ml100k(world / "elsewhere" / "ml-100k")
    got, out, err = _run(["data", "validate", "--dataset", "ml-100k", "--data-dir",
                          str(folder)], capsys)
    assert got == 0, err
    assert "ratings: 3" in out
    assert out.rstrip().endswith("no bad lines, but its counts are not the published ones "
                                 "(see above; --strict makes that an error)")


def test_counts_unlike_the_published_ones_warn_and_fail_with_strict(world, capsys):
    folder = write_latest(world / "d" / "ml-25m")  # ml-latest-small's files in ml-25m/
    base = ["data", "validate", "--dataset", "ml-25m", "--data-dir", str(folder.parent)]
    got, _, err = _run(base, capsys)
    assert got == 0
    assert "warning: " in err and "3 ratings where ml-25m has 25,000,095" in err
    assert "is it the complete release?" in err
    got, _, err = _run([*base, "--strict"], capsys)
    assert got == 1 and "error: " in err and "where ml-25m has 25,000,095" in err


def test_an_empty_ratings_file_is_an_error(world, capsys):
    (world / "data" / "ml-1m" / "ratings.dat").write_bytes(b"")
    got, _, err = _run(["data", "validate", "--dataset", "ml-1m", "--data-dir",
                        str(world / "data")], capsys)
    assert got == 1 and "ratings.dat: empty file: no ratings in it" in err
    with pytest.raises(DataError, match="empty file"):
        load_dataset("ml-1m", world / "data")


def test_blank_lines_at_the_end_are_accepted_inside_reported(world, capsys):
    folder = world / "data" / "ml-1m"
    (folder / "ratings.dat").write_bytes(("\n".join(ML1M_RATINGS) + "\n\n\n").encode())
    assert len(load_dataset("ml-1m", world / "data").ratings) == len(ML1M_RATINGS)
    write_lines(folder / "ratings.dat", ML1M_RATINGS[:2] + [""] + ML1M_RATINGS[2:])
    got, _, err = _run(["data", "validate", "--dataset", "ml-1m", "--data-dir",
                        str(world / "data")], capsys)
    assert got == 1 and "ratings.dat line 3: empty line" in err


def test_a_stray_carriage_return_in_a_csv_line_is_a_bad_line(world, capsys):
    folder = write_latest(world / "d" / "ml-latest-small")
    (folder / "movies.csv").write_bytes(b"movieId,title,genres\n1,Toy\rStory (1995),Comedy\n"
                                        b'2,"American President, The (1995)",Drama\n')
    got, _, err = _run(["data", "validate", "--dataset", "ml-latest-small", "--data-dir",
                        str(folder.parent)], capsys)
    assert got == 1 and "movies.csv line 2: stray carriage return: a carriage return (\\r) " \
        "inside the line" in err
    assert err.splitlines()[0].startswith(str(folder / "movies.csv"))  # the cause comes first


def test_skip_bad_lines_loads_the_rest_and_counts_what_it_skipped(world, capsys, caplog):
    folder = world / "data" / "ml-1m"
    write_lines(folder / "ratings.dat", ML1M_RATINGS + ["1::4::4", "2::5::9::1"])
    got, _, err = _run(_fill(EVALUATE, world), capsys)
    assert got == 1 and "ratings.dat line 7: wrong field count" in err
    assert "--skip-bad-lines" in err  # the message says how
    caplog.set_level(logging.WARNING)
    with pytest.raises(_Stop):  # loaded, then stopped where training starts
        main(_fill(f"{EVALUATE} --skip-bad-lines", world))
    assert "ratings.dat: 8 lines, 6 loaded, skipped 1 wrong field count, " \
           "1 rating outside scale" in caplog.text


def test_reads_write_nothing(world, capsys):
    """Looking for models or data creates no folder."""
    got, _, err = _run(["recommend", "--dataset", "ml-100k", "--user", "1"], capsys)
    assert got == 1
    got, _, err = _run(["recommend", "--dataset", "synthetic-tiny", "--user", "1"], capsys)
    assert got == 1 and "missing ratings.dat, movies.dat, users.dat" in err
    assert "python -m lib data synthetic" in err
    assert not (world / "project-data").exists()
    assert sorted(p.name for p in (world / "models").iterdir()) == ["ml-1m"]


def test_a_hint_repeats_the_users_own_options(world, capsys):
    ds = load_dataset("ml-1m", world / "data")
    path = ds.path / "movies.dat"
    write_lines(path, ML1M_MOVIES + ["6::Late addition (2001)::Drama"])
    got, _, err = _run(_fill(f"{RECOMMEND} --user 1", world), capsys)
    assert got == 1 and "movies.dat has changed since the stage" in err
    assert f"`python -m lib run --dataset ml-1m --data-dir {world}/data/ml-1m --only 02 " \
           f"--only 03` (notebook 03)" in err


def test_readme_examples_run_as_written_on_the_default_data(tmp_path, capsys, monkeypatch):
    """After `make run` on the default data (MovieLens 1M, or the synthetic data that
    stands in for it offline), every `python -m lib recommend` line of the README works."""
    data = tmp_path / "data"
    ds = load_dataset("synthetic", data)
    save_untrained_models(ds, tmp_path / "models", sequential=True)  # as after `make run`
    monkeypatch.setattr(C, "MODELS_DIR", tmp_path / "models")
    monkeypatch.setattr(C, "DATA_DIR", data)
    monkeypatch.setenv(C.HEADLESS_ENV, "1")
    readme = (C.PROJ_ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^python -m lib (recommend [^#\n]*?)\s*(?:#.*)?$", readme, re.M)
    assert len(commands) >= 3
    for command in commands:
        got, out, err = _run(command.split(), capsys)
        assert got == 0, (command, err)
        assert "models: synthetic stage2" in out


def test_evaluate_keeps_measured_and_published_apart(tmp_path):
    """metrics.json of the ML-100K benchmark split: our numbers under "measured", the
    published ones under "published" (written by `stages.write_evaluation`)."""
    import numpy as np
    import pandas as pd

    from lib import evaluation as ev
    from lib.ids import IdMap
    ds = load_dataset("synthetic-tiny", tmp_path / "data")
    ds.name = "ml-100k"  # as if it were the release, to get the published rows
    ids = IdMap.from_dataset(ds)
    split = ev.split_stratified(ds.ratings, "item", 0.75, 42)
    table = pd.DataFrame({"ndcg@10": [0.5]}, index=["stage 2 (ours)"])
    users = np.arange(3)
    recs = {"stage 2 (ours)": np.zeros((3, 10), dtype=int)}
    scorers = {"stage 2 (ours)": lambda rows: np.zeros((len(rows), ids.n_movies))}
    stages.write_evaluation(tmp_path / "out", ds, split, table, recs, users, scorers, ids, 10)
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["measured"] == {"stage 2 (ours)": {"ndcg@10": 0.5}}
    assert report["published"]["BiVAE"]["ndcg@10"] == 0.475
    assert "Microsoft Recommenders" in report["published_source"]
    assert sorted(os.listdir(tmp_path / "out")) == ["metrics.json", "recs_stage_2.csv",
                                                    "test.csv", "train.csv"]


def test_results_over_seeds_are_means_and_sds_of_the_runs():
    import pandas as pd
    cols = ["ndcg@10", "precision@10", "recall@10", "map@10", "rmse", "chosen: ranking epochs",
            "l2"]

    def table(ndcg, rmse, epochs, l2):
        return pd.DataFrame([[ndcg, 0.3, 0.2, 0.1, rmse, epochs, None],
                             [ndcg - 0.1, 0.2, 0.1, 0.05, None, None, l2]],
                            index=["stage 2 (ours)", "EASE"], columns=cols)

    runs = {("per-item", 42): table(0.5, 0.90, 30, 200.0),
            ("per-item", 43): table(0.6, 0.92, 40, 500.0),
            ("last", 42): table(0.2, 0.80, 50, 1000.0)}
    summary, text = stages.summarise_runs(runs, 10, "ml-100k")
    row = summary.set_index(["split", "model", "metric"])
    assert row.loc[("per-item", "stage 2 (ours)", "ndcg@10"), "mean"] == pytest.approx(0.55)
    assert row.loc[("per-item", "stage 2 (ours)", "ndcg@10"), "sd"] == pytest.approx(0.0707, 1e-3)
    assert row.loc[("per-item", "stage 2 (ours)", "rmse"), "seeds"] == 2
    assert ("per-item", "EASE", "rmse") not in row.index  # no rating prediction: no row
    assert "| per-item | stage 2 (ours) | 0.5500 ± 0.0707 |" in text
    assert "ranking epochs: 30/40" in text and "l2: 200/500" in text
    assert "| last | EASE | 0.1000 |" in text  # one seed: no spread to show


def test_the_new_users_table_collects_every_seed(tmp_path, capsys, monkeypatch):
    import numpy as np
    import pandas as pd

    from lib import __main__ as cli
    from lib.ids import IdMap
    ds = load_dataset("synthetic-tiny", tmp_path / "data")

    def fake(dataset, ids, vectors, *, share, k, seed):
        frame = pd.DataFrame({"ndcg@10": [0.5 + seed / 100, 0.4]},
                             index=["stage 2 with demographics (ours)", "most popular"])
        frame.attrs.update(users=3, withheld=np.array([seed, seed + 1]), ratings=30)
        return frame

    monkeypatch.setattr(stages, "run_stage1", lambda *a, **kw: type("S1", (), {
        "movie_vectors": None})())
    monkeypatch.setattr(stages, "demographic_cold_start", fake)
    cli._new_users_table(ds, IdMap.from_dataset(ds), [1, 2], 10, 0.2, tmp_path)
    table = pd.read_csv(tmp_path / "new_users.csv")
    assert list(table["seed"]) == [1, 1, 2, 2]
    assert table["ndcg@10"].tolist() == pytest.approx([0.51, 0.4, 0.52, 0.4])
    assert "3 users withheld from training (seed 2)" in capsys.readouterr().out
