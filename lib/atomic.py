"""Writes that a reader never sees half done: a folder or a file is written under a
temporary name beside its target and renamed into place. Imports nothing from `lib`.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def staged_folder(final: Path):
    """Yield an empty temporary folder beside `final`; when the block ends without an
    exception it replaces `final` (permissions as for any new folder), else it is removed.

    Stale temporary folders of earlier killed runs are removed first. If the process dies
    between setting the old folder aside and renaming the new one into place, `final` is
    missing (never half written) and the old one waits in ``.<name>-old-*``.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-new-", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private
        old = final.with_name(f".{final.name}-old-{uuid.uuid4().hex[:8]}")
        if final.exists():
            os.replace(final, old)
        try:
            os.replace(tmp, final)
        except BaseException:
            if old.exists() and not final.exists():
                os.replace(old, final)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_array(path: Path, array: np.ndarray) -> None:
    """`np.save` to a temporary file renamed into place."""
    with replacing(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


@contextlib.contextmanager
def replacing(path: Path):
    """Yield a temporary path beside `path`; when the block ends without an exception it
    replaces `path`, else it is removed. For files written by other libraries
    (``frame.to_csv(tmp)``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def check_writable(folder: Path) -> None:
    """Whether `folder` can be created (if missing) and written to, checked without
    creating anything.

    Raises:
        PermissionError: naming the first existing ancestor that cannot be written to.
        NotADirectoryError: a file stands where a folder must be.
    """
    here = Path(folder).absolute()
    while not here.exists():
        here = here.parent
    if not here.is_dir():
        raise NotADirectoryError(f"{here} is a file, not a folder")
    if not os.access(here, os.W_OK | os.X_OK):
        raise PermissionError(f"permission denied on {here}")
