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


def file_system_problem(exc: OSError) -> str:
    """One line for a file the suite could not write or read: which, why and what to do."""
    import errno

    where = exc.filename or "a file"
    advice = {
        errno.EROFS: "the file system is read-only: point --out, --reports or TRQAM_BENCH_RESULTS / "
                     "TRQAM_BENCH_CACHE at a writable directory",
        errno.EACCES: "permission denied: point --out, --reports or TRQAM_BENCH_RESULTS / TRQAM_BENCH_CACHE at a "
                      "directory you can write",
        errno.ENOSPC: "the disk is full: free space and run the same command again (every record is written "
                      "atomically and training resumes from its last checkpoint)",
        errno.EDQUOT: "the disk quota is exceeded: free space and run the same command again (training resumes "
                      "from its last checkpoint)",
    }.get(exc.errno, "check the path and run the same command again")
    return f"cannot use {where} ({exc.strerror or exc}): {advice}"
