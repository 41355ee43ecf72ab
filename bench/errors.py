"""User-facing errors.

A `BenchError` is raised for anything the user can fix (a wrong name, a missing or
corrupt file, bad values). Its message is one line that names the thing at fault and
says what to do. The CLI prints it without a traceback and exits with status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BenchError(Exception):
    """An error caused by user input, reported as one line without a traceback."""


def suggest(name: str, valid: Iterable[str], n: int = 3) -> str:
    """Return ' (did you mean: a, b?)' for the closest valid names, or ''."""
    close = difflib.get_close_matches(name, list(valid), n=n, cutoff=0.5)
    return f" (did you mean: {', '.join(close)}?)" if close else ""
