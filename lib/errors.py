"""The exceptions every layer raises, in one module that imports nothing from `lib`.

Each message is for a person: it names the file, the line or the parameter, and the fix.
"""
from __future__ import annotations

_MAX_LISTED = 20


class DataError(Exception):
    """Bad or missing input data. The message names the file, the line and the fix.

    Args:
        problems: a message, or the bad lines found (objects whose ``str`` names the file,
            the line and what is wrong); the first 20 are listed.
        fix: what to do about it, appended on a line of its own.
    """

    def __init__(self, problems: list | str, fix: str = ""):
        self.problems = [] if isinstance(problems, str) else list(problems)
        if isinstance(problems, str):
            text = problems
        else:
            shown = [str(p) for p in self.problems[:_MAX_LISTED]]
            more = len(self.problems) - len(shown)
            text = "\n".join(shown) + (f"\n... and {more} more problems" if more else "")
        super().__init__(text + (f"\n{fix}" if fix else ""))


class DownloadError(DataError):
    """The release could not be fetched, verified or unpacked; the message says what to do."""


class UnknownIdError(KeyError):
    """An id that the id map does not know; the message lists a few of them."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ArtifactError(RuntimeError):
    """Saved models that are missing, incomplete, or were trained on other data; the
    message says what to rerun."""


class PipelineError(RuntimeError):
    """A notebook failed; the message names the notebook, the cell and the error."""


class UsageError(ValueError):
    """A parameter value that cannot work (k above the catalogue, a folder that cannot be
    written); the message names the parameter, what is allowed and what to do."""


class ClusterError(RuntimeError):
    """Training on several workers cannot go on (a worker died or hangs, or the workers'
    files differ); the message says which worker and what to do."""
