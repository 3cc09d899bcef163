"""Loaders for every MovieLens release, one schema for all, and their validation.

Every loader checks what it reads. A bad line is reported with its file, its line number
and the reason; by default the loader raises `DataError` with those reports, and with
``on_bad_lines="skip"`` it drops the line, counts it by reason, and says so in the log.
Whatever is skipped is counted: for every file, ``lines == loaded + skipped``.
"""
from __future__ import annotations

import csv
import io
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lib import config as C
from lib.errors import DataError, DownloadError

log = logging.getLogger(__name__)

_FAST_SEP = b"\x1f"  # ASCII unit separator: never in MovieLens files
_YEAR_RE = re.compile(r"\((\d{4})\)\s*$")


@dataclass(frozen=True)
class Problem:
    """One bad line: where it is and what is wrong with it."""

    path: Path
    line: int | None
    kind: str    # short category used for counting, e.g. "wrong field count"
    detail: str  # what was expected and what was found

    def __str__(self) -> str:
        where = f"{self.path} line {self.line}" if self.line else f"{self.path}"
        return f"{where}: {self.kind}: {self.detail}"


@dataclass
class FileReport:
    """What a loader did with one file: lines read, rows loaded, lines skipped by reason."""

    path: Path
    lines: int = 0
    loaded: int = 0
    skipped: Counter = field(default_factory=Counter)

    @property
    def reconciles(self) -> bool:
        return self.lines == self.loaded + sum(self.skipped.values())

    def __str__(self) -> str:
        text = f"{self.path.name}: {self.lines:,} lines, {self.loaded:,} loaded"
        if self.skipped:
            text += ", skipped " + ", ".join(f"{n:,} {k}" for k, n in self.skipped.items())
        return text


@dataclass
class Dataset:
    """One MovieLens release in the project's schema (see `lib.config`)."""

    name: str
    path: Path
    ratings: pd.DataFrame
    movies: pd.DataFrame
    users: pd.DataFrame | None
    genres: list[str]
    scale: tuple[float, float, float]
    synthetic: bool = False
    reports: dict[str, FileReport] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Counts people compare with the published ones."""
        r = self.ratings
        return {
            "ratings": len(r),
            "users": int(r[C.USER_COL].nunique()),
            "movies": len(self.movies),
            "rated_movies": int(r[C.MOVIE_COL].nunique()),
            "genres": len(self.genres),
            "users_in_file": 0 if self.users is None else len(self.users),
        }


# ---------------------------------------------------------------------------------------
# One reader for every delimited file: a fast path through pandas' C parser for files that
# pass cheap whole-file checks, and a line-by-line path that finds and names every problem.

@dataclass(frozen=True)
class _Table:
    sep: str
    columns: tuple[tuple[str, str], ...]   # (name, kind) with kind in id | float | str
    encoding: str
    header: tuple[str, ...] | None = None  # expected header line, if the file has one
    quoted: bool = False                  # fields may be quoted (the CSV releases)


def _read_table(path: Path, spec: _Table) -> tuple[pd.DataFrame, list[Problem], int]:
    """Read a delimited file; return the good rows (with their line numbers in `_line`),
    the problems of the bad ones, and the number of lines in the file."""
    raw = path.read_bytes()
    # Blank lines at the end of a file are no data and no problem (editors add them);
    # blank lines inside are reported.
    body = raw.rstrip(b"\r\n")
    end = b"\r\n" if raw[len(body):].startswith(b"\r") else b"\n"
    raw = body + end if body else b""
    n_lines = raw.count(b"\n") + (0 if raw.endswith(b"\n") or not raw else 1)
    if not spec.quoted:
        fast = _read_fast(raw, spec)
        if fast is not None:
            return fast, [], n_lines
    rows, problems = _read_slow(path, raw, spec)
    return rows, problems, n_lines


def _read_fast(raw: bytes, spec: _Table) -> pd.DataFrame | None:
    """pandas' C parser on a file that passes whole-file checks; None sends the file to
    the line-by-line reader, which names each problem."""
    sep = spec.sep.encode()
    if _FAST_SEP in raw or b"\r" in raw:
        return None
    body = raw.replace(sep, _FAST_SEP) if len(sep) > 1 else raw
    first = 0
    if spec.header is not None:
        first = body.find(b"\n") + 1
        if body[:first].decode(spec.encoding, "replace").rstrip("\n") != \
                spec.sep.join(spec.header):
            return None
    body = body[first:]
    if not body or body.startswith(b"\n") or b"\n\n" in body:
        return None
    # n-1 separators a line: in all, and on the first line (pandas would take a longer
    # first line's extra field as an index). A shorter line elsewhere would need a longer
    # one to keep the total, and pandas raises on a longer later line.
    fast_sep = _FAST_SEP if len(sep) > 1 else sep
    n_body_lines = body.count(b"\n") + (body[-1:] != b"\n")
    if body.count(fast_sep) != (len(spec.columns) - 1) * n_body_lines or \
            body.split(b"\n", 1)[0].count(fast_sep) != len(spec.columns) - 1:
        return None
    names = [n for n, _ in spec.columns]
    dtypes = {n: {"id": "int64", "float": "float64", "str": str}[k] for n, k in spec.columns}
    try:
        df = pd.read_csv(io.BytesIO(body), sep=(_FAST_SEP if len(sep) > 1 else sep).decode(),
                         header=None, names=names, dtype=dtypes, encoding=spec.encoding,
                         quoting=csv.QUOTE_NONE, na_filter=False, engine="c")
    except (ValueError, OverflowError, pd.errors.ParserError, UnicodeDecodeError):
        return None
    if len(df) != n_body_lines:
        return None
    for name, kind in spec.columns:
        if kind == "id" and (df[name] < 0).any():
            return None
        if kind == "float" and not np.isfinite(df[name].to_numpy()).all():
            return None
    df["_line"] = np.arange(len(df), dtype=np.int64) + 1 + (spec.header is not None)
    return df


def _read_slow(path: Path, raw: bytes, spec: _Table) -> tuple[pd.DataFrame, list[Problem]]:
    n = len(spec.columns)
    problems: list[Problem] = []
    good: list[list] = []
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    sep_name = spec.sep if spec.sep != "\t" else "tab"
    for number, bline in enumerate(lines, start=1):
        bline = bline.rstrip(b"\r")
        try:
            line = bline.decode(spec.encoding)
        except UnicodeDecodeError as exc:
            problems.append(Problem(path, number, "undecodable bytes",
                                    f"byte {bline[exc.start]:#04x} at column {exc.start + 1} "
                                    f"is not valid {spec.encoding}; re-save the file as "
                                    f"{spec.encoding}"))
            continue
        if number == 1 and spec.header is not None:
            if line != spec.sep.join(spec.header):
                problems.append(Problem(path, 1, "wrong header",
                                        f"expected {spec.sep.join(spec.header)!r}, "
                                        f"got {line!r}"))
            continue
        if not line:
            problems.append(Problem(path, number, "empty line", "remove the empty line"))
            continue
        try:
            fields = next(csv.reader([line])) if spec.quoted else line.split(spec.sep)
        except csv.Error:
            if "\r" in line:
                problems.append(Problem(path, number, "stray carriage return",
                                        "a carriage return (\\r) inside the line; remove it "
                                        "or put the field in double quotes"))
            else:
                problems.append(Problem(path, number, "bad quoting",
                                        "a double quote that does not close; fix the "
                                        "field's quotes"))
            continue
        if len(fields) != n:
            problems.append(Problem(path, number, "wrong field count",
                                    f"expected {n} fields separated by {sep_name!r}, "
                                    f"got {len(fields)}"))
            continue
        row, bad = [], None
        for value, (name, kind) in zip(fields, spec.columns, strict=True):
            if kind == "id":
                text = value.strip()
                if not (text.isascii() and text.isdigit()):
                    bad = Problem(path, number, "not a number",
                                  f"{name} {value!r} is not a whole number")
                    break
                row.append(int(text))
            elif kind == "float":
                try:
                    number_value = float(value)
                except ValueError:
                    number_value = float("nan")
                if not np.isfinite(number_value):
                    bad = Problem(path, number, "not a number",
                                  f"{name} {value!r} is not a number")
                    break
                row.append(number_value)
            else:
                row.append(value)
        if bad is not None:
            problems.append(bad)
            continue
        row.append(number)
        good.append(row)
    names = [n for n, _ in spec.columns] + ["_line"]
    df = pd.DataFrame(good, columns=names)
    for name, kind in spec.columns:
        df[name] = df[name].astype({"id": "int64", "float": "float64", "str": object}[kind])
    df["_line"] = df["_line"].astype("int64")
    return df, problems


# ---------------------------------------------------------------------------------------
# Release formats.

def _title_year(titles: pd.Series) -> pd.Series:
    return titles.str.extract(_YEAR_RE, expand=False).astype("Int64")


def _split_genres(path: Path, movies: pd.DataFrame, known: list[str] | None,
                  problems: list[Problem]) -> pd.Series:
    genres = movies.pop("_genres").map(lambda g: [] if g in ("", C.NO_GENRES) else g.split("|"))
    if known is not None:
        allowed = set(known)
        for line, names in zip(movies["_line"], genres, strict=True):
            wrong = [g for g in names if g not in allowed]
            if wrong:
                problems.append(Problem(path, int(line), "unknown genre",
                                        f"{', '.join(map(repr, wrong))} is not one of the "
                                        f"{len(known)} genres of the release"))
    return genres


def _read_movies(folder: Path, info: dict, problems: list[Problem]):
    path = folder / info["movies"]
    fmt = info["format"]
    if fmt == "dat":
        spec = _Table("::", ((C.MOVIE_COL, "id"), (C.TITLE_COL, "str"), ("_genres", "str")),
                      "latin-1")
    elif fmt == "100k":
        cols = [(C.MOVIE_COL, "id"), (C.TITLE_COL, "str"), ("_release", "str"),
                ("_video", "str"), ("_url", "str")]
        cols += [(f"_g{i}", "id") for i in range(len(C.GENRES_ML100K))]
        spec = _Table("|", tuple(cols), "latin-1")
    else:
        spec = _Table(",", ((C.MOVIE_COL, "id"), (C.TITLE_COL, "str"), ("_genres", "str")),
                      "utf-8", header=("movieId", "title", "genres"), quoted=True)
    movies, found, n_lines = _read_table(path, spec)
    problems += found
    if fmt == "100k":
        flags = movies[[f"_g{i}" for i in range(len(C.GENRES_ML100K))]].to_numpy()
        for line in movies["_line"][(flags > 1).any(axis=1)]:
            problems.append(Problem(path, int(line), "bad genre flag",
                                    "genre flags must be 0 or 1"))
        names = np.array(C.GENRES_ML100K, dtype=object)
        movies["_genres"] = ["|".join(names[row == 1]) for row in flags]
        genre_names = list(C.GENRES_ML100K)
        known = genre_names
    elif fmt == "dat":
        genre_names = list(C.GENRES_ML1M)
        known = genre_names
    else:
        known = None
    movies[C.GENRES_COL] = _split_genres(path, movies, known, problems)
    if known is None:
        seen = sorted({g for gs in movies[C.GENRES_COL] for g in gs})
        genre_names = [g for g in C.GENRES_ML1M if g in seen] + \
                      [g for g in seen if g not in C.GENRES_ML1M]
    movies[C.YEAR_COL] = _title_year(movies[C.TITLE_COL])
    dup = movies[C.MOVIE_COL].duplicated()
    for line, mid in zip(movies["_line"][dup], movies[C.MOVIE_COL][dup], strict=True):
        problems.append(Problem(path, int(line), "duplicate movie",
                                f"movie {mid} is listed more than once"))
    movies = movies[[*C.MOVIE_COLUMNS, "_line"]]
    return movies, genre_names, path, n_lines


def _read_users(folder: Path, info: dict, problems: list[Problem]):
    if info["users"] is None:
        return None, None, 0
    path = folder / info["users"]
    if info["format"] == "dat":
        spec = _Table("::", ((C.USER_COL, "id"), (C.GENDER_COL, "str"), (C.AGE_COL, "id"),
                             (C.OCCUPATION_COL, "id"), (C.ZIP_COL, "str")), "latin-1")
    else:
        spec = _Table("|", ((C.USER_COL, "id"), (C.AGE_COL, "id"), (C.GENDER_COL, "str"),
                            ("_occupation", "str"), (C.ZIP_COL, "str")), "latin-1")
    users, found, n_lines = _read_table(path, spec)
    problems += found
    bad_gender = ~users[C.GENDER_COL].isin(C.GENDERS)
    for line, g in zip(users["_line"][bad_gender], users[C.GENDER_COL][bad_gender], strict=True):
        problems.append(Problem(path, int(line), "bad value",
                                f"gender {g!r} is not one of {C.GENDERS}"))
    if info["format"] == "dat":
        for col, codes in ((C.AGE_COL, C.AGE_LABELS), (C.OCCUPATION_COL, C.OCCUPATION_LABELS)):
            bad = ~users[col].isin(list(codes))
            for line, v in zip(users["_line"][bad], users[col][bad], strict=True):
                problems.append(Problem(path, int(line), "bad value",
                                        f"{col} code {v} is not one of {sorted(codes)}"))
        users[C.AGE_LABEL_COL] = users[C.AGE_COL].map(C.AGE_LABELS)
        users[C.OCCUPATION_LABEL_COL] = users[C.OCCUPATION_COL].map(C.OCCUPATION_LABELS)
    else:
        # ML-100K gives ages in years and occupations by name: keep both, and bucket the
        # ages with ML-1M's labels so that models see one kind of side input.
        bins = sorted(C.AGE_LABELS)
        codes = np.array(bins)[np.searchsorted(bins, users[C.AGE_COL], side="right") - 1]
        users[C.AGE_LABEL_COL] = pd.Series(codes, index=users.index).map(C.AGE_LABELS)
        names = sorted(users["_occupation"].unique())
        users[C.OCCUPATION_COL] = users["_occupation"].map({n: i for i, n in enumerate(names)})
        users[C.OCCUPATION_LABEL_COL] = users.pop("_occupation")
    dup = users[C.USER_COL].duplicated()
    for line, uid in zip(users["_line"][dup], users[C.USER_COL][dup], strict=True):
        problems.append(Problem(path, int(line), "duplicate user",
                                f"user {uid} is listed more than once"))
    return users[[*C.USER_COLUMNS, "_line"]], path, n_lines


def _read_ratings(folder: Path, info: dict, problems: list[Problem]):
    path = folder / info["ratings"]
    fmt = info["format"]
    kind = "float" if fmt == "csv" else "id"
    cols = ((C.USER_COL, "id"), (C.MOVIE_COL, "id"), (C.RATING_COL, kind),
            (C.TIMESTAMP_COL, "id"))
    if fmt == "dat":
        spec = _Table("::", cols, "latin-1")
    elif fmt == "100k":
        spec = _Table("\t", cols, "latin-1")
    else:
        spec = _Table(",", cols, "utf-8", header=("userId", "movieId", "rating", "timestamp"))
    ratings, found, n_lines = _read_table(path, spec)
    problems += found
    lo, hi, step = info["scale"]
    r = ratings[C.RATING_COL].to_numpy(dtype=float)
    steps = (r - lo) / step
    bad = (r < lo) | (r > hi) | (np.abs(steps - np.round(steps)) > 1e-9)
    for line, v in zip(ratings["_line"][bad], r[bad], strict=True):
        problems.append(Problem(path, int(line), "rating outside scale",
                                f"rating {v:g} is not one of {lo:g}, {lo + step:g}, ..., {hi:g}"))
    return ratings, path, n_lines


def _cross_check(ratings: pd.DataFrame, movies: pd.DataFrame, users: pd.DataFrame | None,
                 path: Path, problems: list[Problem]) -> None:
    # Any (user, movie) twice? One int64 key per rating, sorted: MovieLens files list each
    # user's ratings together, so the stable sort (timsort) meets long runs and is ~5x
    # faster than hashing 25M pairs. Only when there are some are they found one by one.
    code = (ratings[C.USER_COL].to_numpy(np.int64) << 32) | ratings[C.MOVIE_COL].to_numpy(
        np.int64)
    # (Equal pairs give equal keys whatever the ids; unequal pairs that collide only send
    # the check to the exact search below.)
    if (np.diff(np.sort(code, kind="stable")) == 0).any():
        key = ratings[[C.USER_COL, C.MOVIE_COL]]
        dup = key.duplicated().to_numpy()
        first = key.drop_duplicates().assign(_first=ratings["_line"])
        later = key[dup].merge(first, on=[C.USER_COL, C.MOVIE_COL], how="left")
        for line, (u, m, f) in zip(ratings["_line"][dup], later.itertuples(index=False),
                                   strict=True):
            problems.append(Problem(path, int(line), "duplicate rating",
                                    f"user {u} rated movie {m} already on line {f}"))
    unknown = ~ratings[C.MOVIE_COL].isin(movies[C.MOVIE_COL])
    for line, m in zip(ratings["_line"][unknown], ratings[C.MOVIE_COL][unknown], strict=True):
        problems.append(Problem(path, int(line), "unknown movie",
                                f"movie {m} is not in the movies file"))
    if users is not None:
        unknown = ~ratings[C.USER_COL].isin(users[C.USER_COL])
        for line, u in zip(ratings["_line"][unknown], ratings[C.USER_COL][unknown], strict=True):
            problems.append(Problem(path, int(line), "unknown user",
                                    f"user {u} is not in the users file"))


def _drop_problem_lines(df: pd.DataFrame, path: Path, n_lines: int,
                        problems: list[Problem]) -> tuple[pd.DataFrame, FileReport]:
    mine = [p for p in problems if p.path == path]
    bad_lines = {p.line for p in mine}
    report = FileReport(path, lines=n_lines)
    # A line counts once, under its first problem.
    first_kind: dict[int | None, str] = {}
    for p in mine:
        first_kind.setdefault(p.line, p.kind)
    report.skipped = Counter(first_kind.values())
    if bad_lines:
        df = df[~df["_line"].isin(bad_lines)]
    report.loaded = len(df)
    return df.drop(columns="_line").reset_index(drop=True), report


def read_release(folder: Path, name: str) -> tuple[Dataset, list[Problem]]:
    """Read a release folder, keeping only good lines; return it with every problem found.

    Most code wants `load_dataset`, which raises on problems unless told to skip them.
    """
    info = C.release_info(name)
    folder = Path(folder)
    _require_files(folder, name)
    problems: list[Problem] = []
    movies, genres, movies_path, movie_lines = _read_movies(folder, info, problems)
    users, users_path, user_lines = _read_users(folder, info, problems)
    ratings, ratings_path, rating_lines = _read_ratings(folder, info, problems)
    _cross_check(ratings, movies, users, ratings_path, problems)
    reports = {}
    movies, reports["movies"] = _drop_problem_lines(movies, movies_path, movie_lines, problems)
    if users is not None:
        users, reports["users"] = _drop_problem_lines(users, users_path, user_lines, problems)
    ratings, reports["ratings"] = _drop_problem_lines(ratings, ratings_path, rating_lines,
                                                      problems)
    for key, path, n in (("ratings", ratings_path, rating_lines),
                         ("movies", movies_path, movie_lines)):
        if n == 0:
            problems.append(Problem(path, None, "empty file",
                                    f"no {key} in it; a MovieLens release has them: copy the "
                                    f"file again from the release"))
    ratings[C.RATING_COL] = ratings[C.RATING_COL].astype("float32")
    for col in (C.USER_COL, C.MOVIE_COL):
        ratings[col] = ratings[col].astype("int32")
    movies[C.MOVIE_COL] = movies[C.MOVIE_COL].astype("int32")
    if users is not None:
        users[C.USER_COL] = users[C.USER_COL].astype("int32")
    dataset = Dataset(name=name, path=folder, ratings=ratings, movies=movies, users=users,
                      genres=genres, scale=info["scale"],
                      synthetic=name in C.SYNTHETIC_SIZES, reports=reports)
    return dataset, problems


def _require_files(folder: Path, name: str) -> None:
    info = C.release_info(name)
    missing = [info[k] for k in ("ratings", "movies", "users")
               if info[k] and not (folder / info[k]).is_file()]
    if missing:
        raise DataError(f"{C.shown(folder)}: missing {', '.join(missing)}",
                        fix=_fix_missing(name, folder))


@dataclass
class Catalogue:
    """A release's movies without its ratings: all that answering from saved models needs
    (what was rated comes with the models, checked against the ratings file's checksum)."""

    name: str
    path: Path
    movies: pd.DataFrame
    genres: list[str]
    synthetic: bool = False


def load_catalogue(name: str, data_dir: Path | str | None = None, *,
                   on_bad_lines: str = "error") -> Catalogue:
    """The movies of a release (`load_dataset` without the ratings, for quick answers).

    Raises:
        DataError: files missing, or bad lines in the movies file with
            ``on_bad_lines="error"``.
    """
    folder = release_folder(name, data_dir)
    _require_files(folder, name)
    problems: list[Problem] = []
    movies, genres, path, n_lines = _read_movies(folder, C.release_info(name), problems)
    movies, report = _drop_problem_lines(movies, path, n_lines, problems)
    if problems and on_bad_lines == "error":
        raise DataError(problems, fix="Fix or remove these lines, or skip them "
                                      "(--skip-bad-lines).")
    if report.skipped:
        log.warning("skipped lines: %s", report)
    movies[C.MOVIE_COL] = movies[C.MOVIE_COL].astype("int32")
    return Catalogue(name, folder, movies, genres, name in C.SYNTHETIC_SIZES)


def _fix_missing(name: str, folder: Path) -> str:
    if name in C.SYNTHETIC_SIZES:
        return f"Generate it: python -m lib data synthetic --out {folder}"
    return (f"Download it: python -m lib data download {name} --data-dir {folder.parent} "
            f"(or unzip {name}.zip from https://grouplens.org/datasets/movielens/ into "
            f"{folder.parent}), or use the built-in data: --dataset synthetic")


def release_folder(name: str, data_dir: Path | str | None = None) -> Path:
    """Where release `name` is read from: ``data_dir/<name>/``, or `data_dir` itself when
    it is the release folder (holds the release's ratings file and has no `<name>/`)."""
    base = Path(data_dir or C.DATA_DIR)
    ratings = C.release_info(name)["ratings"]
    if (base / ratings).is_file() and not (base / name / ratings).is_file():
        return base
    return base / name


def load_dataset(name: str, data_dir: Path | str | None = None, *,
                 on_bad_lines: str = "error", generate: bool = True) -> Dataset:
    """Load one release in the project's schema.

    Args:
        name: a release (`ml-1m`, `ml-100k`, `ml-latest-small`, `ml-25m`, `ml-32m`) or a
            built-in synthetic dataset (`synthetic`, `synthetic-tiny`), which is generated
            on first use. For `auto` see `resolve_dataset`.
        data_dir: the folder holding one folder per release, or the release folder itself
            (`release_folder`); default `config.DATA_DIR`.
        on_bad_lines: ``"error"`` raises `DataError` naming every bad line (up to 20 shown);
            ``"skip"`` drops bad lines and logs how many of each kind, per file.
        generate: write a missing synthetic dataset (False: a missing one is an error).

    Returns:
        A `Dataset`: ``ratings`` (user_id, movie_id, rating, timestamp), ``movies``
        (movie_id, title, year, genres as a list), ``users`` (user_id, gender, age,
        occupation, zip, age_label, occupation_label; None where the release has none).
        Counts that differ from the published ones are logged as warnings
        (`count_differences`).

    Raises:
        DataError: files missing or empty, no ratings left, or bad lines with
            ``on_bad_lines="error"``.
    """
    if on_bad_lines not in ("error", "skip"):
        raise ValueError("on_bad_lines must be 'error' or 'skip'")
    folder = release_folder(name, data_dir)
    if name in C.SYNTHETIC_SIZES and generate:
        from lib.synthetic import is_current, write_synthetic
        present = (folder / C.release_info(name)["ratings"]).is_file()
        if not present or not is_current(folder):
            log.info("%s the synthetic dataset %s into %s",
                     "regenerating (written by another version of the generator)"
                     if present else "generating", name, C.shown(folder))
            write_synthetic(folder, size=C.SYNTHETIC_SIZES[name])
    dataset, problems = read_release(folder, name)
    if problems and on_bad_lines == "error":
        raise DataError(problems, fix=f"Fix or remove these lines, or skip them "
                                      f"(--skip-bad-lines on the command line, "
                                      f"on_bad_lines='skip' in Python); "
                                      f"{len(problems):,} problems in all.")
    for report in dataset.reports.values():
        if report.skipped:
            log.warning("skipped lines: %s", report)
    if len(dataset.ratings) == 0:
        raise DataError(f"{C.shown(folder)}: no ratings left to load",
                        fix="Every rating line was bad or the file is empty; see the "
                            "problems above, or `python -m lib data validate`.")
    for difference in count_differences(dataset):
        log.warning(difference)
    return dataset


def count_differences(dataset: Dataset) -> list[str]:
    """How the dataset's counts differ from the release's published ones (empty when they
    agree, or when nothing is published, as for the synthetic data)."""
    published = C.release_info(dataset.name).get("counts")
    if not published:
        return []
    counts = dataset.counts()
    found = [f"{counts[k]:,} {k} where {dataset.name} has {v:,}"
             for k, v in published.items() if k in counts and counts[k] != v]
    if not found:
        return []
    note = (" (ml-latest-small changes between snapshots)"
            if dataset.name == "ml-latest-small" else "; is it the complete release?")
    return [f"{C.shown(dataset.path)}: {'; '.join(found)} (published by GroupLens){note}"]


def is_present(name: str, data_dir: Path | str | None = None) -> bool:
    """True if the release's files are in `data_dir` (`release_folder`; not that they
    are valid)."""
    info = C.release_info(name)
    folder = release_folder(name, data_dir)
    return all((folder / info[k]).is_file() for k in ("ratings", "movies", "users")
               if info[k])


def releases_in(data_dir: Path | str) -> list[str]:
    """The releases whose files are in `data_dir` (as sub-folders, or the folder itself)."""
    return [name for name in C.RELEASES if is_present(name, data_dir)]


def resolve_dataset(name: str = C.DEFAULT_DATASET, data_dir: Path | str | None = None, *,
                    download: bool = True) -> tuple[str, Path | None]:
    """Turn ``"auto"`` into a dataset name, and say where to load it from.

    ``auto`` is MovieLens 1M when present in `data_dir`, else downloaded (with `download`).
    Failing that, when the user named a `data_dir` holding other releases, it stops and
    names them rather than ignore them; otherwise it is the built-in synthetic dataset of
    ML-1M's size, written under the project's ``data/`` (never into a folder of the
    user's), with a warning that the results are synthetic.

    Returns:
        ``(name, data_dir)``: the dataset and the folder to pass to `load_dataset`
        (None: the project's ``data/``).

    Raises:
        DataError: `data_dir` holds releases but not ML-1M (the message names them).
        ValueError: an unknown dataset name.
    """
    if name != "auto":
        C.release_info(name)  # raises on an unknown name
        return name, data_dir
    if is_present("ml-1m", data_dir):
        return "ml-1m", data_dir
    if download:
        from lib.download import download as fetch
        try:
            fetch("ml-1m", data_dir, progress=False)
            return "ml-1m", data_dir
        except DownloadError as exc:
            log.warning("MovieLens 1M is not in %s and could not be downloaded (%s)",
                        C.shown(release_folder("ml-1m", data_dir)),
                        str(exc).splitlines()[0])
    if data_dir is not None and Path(data_dir).resolve() != C.DATA_DIR.resolve():
        others = releases_in(data_dir)
        if others:
            raise DataError(f"no MovieLens 1M in {data_dir}, but found "
                            f"{', '.join(others)} there: pass --dataset {others[0]} (or "
                            f"another of them) to use it")
    log.warning("USING SYNTHETIC DATA: results below are not MovieLens results")
    return "synthetic", None


def genre_matrix(movies: pd.DataFrame, genres: list[str]) -> np.ndarray:
    """Boolean (movies, genres) matrix, rows in the order of `movies`, columns of `genres`."""
    col = {g: i for i, g in enumerate(genres)}
    out = np.zeros((len(movies), len(genres)), dtype=bool)
    rows = np.repeat(np.arange(len(movies)), movies[C.GENRES_COL].map(len).to_numpy())
    cols = [col[g] for gs in movies[C.GENRES_COL] for g in gs]
    out[rows, cols] = True
    return out


def common_genres(movies: pd.DataFrame, genres: list[str],
                  min_movies: int = C.MIN_GENRE_MOVIES) -> tuple[list[str], dict[str, int]]:
    """The genres with at least `min_movies` movies, and the others with their counts
    (what a genre figure leaves out, and says so)."""
    counts = movies[C.GENRES_COL].explode().value_counts()
    n = {g: int(counts.get(g, 0)) for g in genres}
    return [g for g in genres if n[g] >= min_movies], \
        {g: c for g, c in n.items() if c < min_movies}


def genre_cooccurrence(movies: pd.DataFrame, genres: list[str]) -> pd.DataFrame:
    """Genre x genre: how many movies have both (the diagonal, movies per genre, is 0)."""
    g = genre_matrix(movies, genres).astype(int)
    both = g.T @ g
    np.fill_diagonal(both, 0)
    return pd.DataFrame(both, index=genres, columns=genres)


def genre_fans(dataset: Dataset, genre: str, n: int = 20) -> tuple[pd.Index, pd.Index]:
    """The `n` users with the largest and the `n` with the smallest share of their
    ratings in `genre` (ties broken by user id)."""
    has = dataset.movies.set_index(C.MOVIE_COL)[C.GENRES_COL].map(lambda g: genre in g)
    share = dataset.ratings[C.MOVIE_COL].map(has).groupby(dataset.ratings[C.USER_COL]).mean()
    share = share.sort_index()
    return share.nlargest(n).index, share.nsmallest(n).index


def summary(dataset: Dataset) -> dict:
    """Counts, sparsity and rating statistics, as people quote them."""
    c = dataset.counts()
    r = dataset.ratings[C.RATING_COL]
    per_user = dataset.ratings.groupby(C.USER_COL).size()
    per_movie = dataset.ratings.groupby(C.MOVIE_COL).size()
    return {**c, "density": c["ratings"] / (c["users"] * c["rated_movies"]),
            "mean_rating": float(r.mean()),
            "ratings_per_user_median": float(per_user.median()),
            "ratings_per_user_min": int(per_user.min()),
            "ratings_per_movie_median": float(per_movie.median()),
            "movies_without_genre": int((dataset.movies[C.GENRES_COL].map(len) == 0).sum())}


def check_facts(dataset: Dataset) -> dict[str, bool]:
    """The facts the later notebooks rely on, each True or False."""
    r, m = dataset.ratings, dataset.movies
    lo, hi, _ = dataset.scale
    facts = {
        "movie ids are unique": bool(m[C.MOVIE_COL].is_unique),
        "every rated movie is in the movies file": bool(r[C.MOVIE_COL].isin(m[C.MOVIE_COL]).all()),
        "no user rated a movie twice": not r.duplicated([C.USER_COL, C.MOVIE_COL]).any(),
        "ratings lie on the release's scale": bool(r[C.RATING_COL].between(lo, hi).all()),
        "every genre is used by some movie": set(dataset.genres) <=
            {g for gs in m[C.GENRES_COL] for g in gs},
    }
    if dataset.users is not None:
        facts["every rating's user is in the users file"] = bool(
            r[C.USER_COL].isin(dataset.users[C.USER_COL]).all())
    if dataset.name in ("ml-1m", *C.SYNTHETIC_SIZES, "ml-100k"):
        facts["every user has at least 20 ratings"] = bool(
            r.groupby(C.USER_COL).size().min() >= 20)
        facts["every movie has a genre"] = bool((m[C.GENRES_COL].map(len) > 0).all())
    return facts
