"""Download a MovieLens release: progress bar, checksum, atomic extraction, mirrors."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from lib import atomic
from lib import config as C
from lib.errors import DownloadError

log = logging.getLogger(__name__)
_CHUNK = 1 << 16


def release_urls(name: str) -> list[str]:
    """Where a release is fetched from: GroupLens, then any mirrors listed (space
    separated) in the environment variable MOVIELENS_MIRRORS as ``.../{name}.zip``."""
    mirrors = os.environ.get("MOVIELENS_MIRRORS", "").split()
    return [C.GROUPLENS_URL.format(name=name)] + [m.format(name=name) for m in mirrors]


def _fetch(url: str, dest: Path, timeout: float, progress: bool) -> str:
    """Stream `url` into `dest`; return the md5 of what arrived."""
    md5 = hashlib.md5()
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as fh:
        total = response.headers.get("Content-Length")
        with tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                  desc=Path(url).name, disable=not progress) as bar:
            while chunk := response.read(_CHUNK):
                fh.write(chunk)
                md5.update(chunk)
                bar.update(len(chunk))
    if total and dest.stat().st_size != int(total):
        raise DownloadError(f"got {dest.stat().st_size:,} of {int(total):,} bytes "
                            "(connection cut); try again")
    return md5.hexdigest()


def file_md5(path: Path) -> str:
    md5 = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            md5.update(chunk)
    return md5.hexdigest()


def install_zip(zip_path: Path | str, name: str, data_dir: Path | str | None = None, *,
                md5: str | None = "release") -> Path:
    """Check a release zip and unpack it atomically to ``data_dir/<name>/``.

    The zip is unpacked into a temporary folder beside the target and renamed into place
    only once every expected file is there, so an interrupted run leaves no half folder.

    Args:
        zip_path: the zip file.
        name: the release it holds, e.g. ``"ml-1m"``.
        data_dir: parent folder; default `config.DATA_DIR`.
        md5: expected checksum; ``"release"`` takes the one recorded for the release (if
            any), None skips the check.

    Raises:
        DownloadError: wrong checksum, not a zip, truncated, or files missing.
    """
    zip_path, data_dir = Path(zip_path), Path(data_dir or C.DATA_DIR)
    info = C.release_info(name)
    expected = info["md5"] if md5 == "release" else md5
    if expected is not None:
        actual = file_md5(zip_path)
        if actual != expected:
            raise DownloadError(f"{zip_path}: md5 {actual} is not the md5 of {name}.zip "
                                f"({expected}); the file is damaged or another release. "
                                "Delete it and download again.")
    else:
        log.warning("%s: no checksum recorded for %s, so its content is not verified "
                    "(md5 %s)", zip_path, name, file_md5(zip_path))
    target = data_dir / name
    with atomic.staged_folder(target) as staged:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                for member in zf.namelist():
                    if member.startswith("/") or ".." in Path(member).parts:
                        raise DownloadError(f"{zip_path}: unsafe path {member!r} in zip")
                bad = zf.testzip()
                if bad is not None:
                    raise DownloadError(f"{zip_path}: {bad} is corrupt inside the zip; "
                                        "delete the zip and download again")
                zf.extractall(staged)
        except (zipfile.BadZipFile, EOFError) as exc:
            raise DownloadError(f"{zip_path}: not a complete zip ({exc}); it was probably "
                                "cut short. Delete it and download again.") from None
        unpacked = staged / name
        missing = [w for w in _release_files(name) if not (unpacked / w).is_file()]
        if missing:
            raise DownloadError(f"{zip_path}: has no {name}/{', '.join(missing)}; is it "
                                f"really {name}.zip?")
        for item in list(staged.iterdir()):  # the release folder's content, one level up
            if item != unpacked:
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        for item in list(unpacked.iterdir()):
            item.rename(staged / item.name)
        unpacked.rmdir()
    return target


def install_folder(source: Path | str, name: str, data_dir: Path | str | None = None) -> Path:
    """Copy a release's files from a local folder (an unpacked copy elsewhere) to
    ``data_dir/<name>/``, atomically; a target already holding identical files is left
    as it is.

    Raises:
        DownloadError: `source` lacks one of the release's files.
    """
    source, data_dir = Path(source), Path(data_dir or C.DATA_DIR)
    wanted = _release_files(name)
    missing = [w for w in wanted if not (source / w).is_file()]
    if missing:
        raise DownloadError(f"{source}: has no {', '.join(missing)}; point it at an unpacked "
                            f"{name} folder")
    target = data_dir / name
    if all((target / w).is_file() and file_md5(target / w) == file_md5(source / w)
           for w in wanted):
        return target
    with atomic.staged_folder(target) as staged:
        for w in wanted:
            shutil.copyfile(source / w, staged / w)
    return target


def _release_files(name: str) -> list[str]:
    info = C.release_info(name)
    return [info[k] for k in ("ratings", "movies", "users") if info[k]]


def download(name: str, data_dir: Path | str | None = None, *, urls: list[str] | None = None,
             md5: str | None = "release", timeout: float = 15.0,
             progress: bool = True) -> Path:
    """Fetch ``<name>.zip``, verify it, and unpack it to ``data_dir/<name>/``.

    Tries each URL in turn (GroupLens first, then `release_urls` mirrors); the zip is kept
    in ``data_dir`` so a later run does not fetch it again.

    Returns:
        The release folder.

    Raises:
        DownloadError: in one paragraph, every URL tried with why it failed, and what to do.
    """
    if name not in C.RELEASES:
        raise DownloadError(f"{name!r} is not a MovieLens release; choose one of "
                            f"{', '.join(C.RELEASES)}")
    data_dir = Path(data_dir or C.DATA_DIR)
    data_dir.mkdir(parents=True, exist_ok=True)
    zip_path = data_dir / f"{name}.zip"
    failures = []
    for url in urls or release_urls(name):
        part = data_dir / f".{name}.zip.part"
        try:
            _fetch(url, part, timeout, progress)
            folder = install_zip(part, name, data_dir, md5=md5)
            part.replace(zip_path)  # kept only once it proved good
            return folder
        except DownloadError as exc:
            failures.append(f"{url}: {exc}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            failures.append(f"{url}: {reason}")
        finally:
            part.unlink(missing_ok=True)
    raise DownloadError(
        f"could not download {name}: " + "; ".join(failures),
        fix=f"No network? Fetch {name}.zip on another machine from "
            f"https://grouplens.org/datasets/movielens/ and run "
            f"`python -m lib data download {name} --zip PATH`, or use the built-in "
            f"synthetic data (--dataset synthetic).")
