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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as handle:
            np.save(handle, array)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
