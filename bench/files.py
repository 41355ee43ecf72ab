"""Small utilities shared by the data, datagen, run-store, training and report code: atomic
files, sha256, seeds derived from several integers, paths as a document shows them."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def temp_beside(final: Path) -> tuple[int, Path]:
    """A new temp file in ``final``'s directory (same filesystem, so a rename is atomic).

    It is made world-readable like an ordinary file, since it will replace ``final``.
    """
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    os.fchmod(fd, 0o644)
    return fd, Path(name)


def derived_seed(*entropy: int) -> int:
    """A 32-bit seed that is a pure function of ``entropy`` (NumPy's SeedSequence)."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


@contextlib.contextmanager
def file_lock(path: Path, *, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (released with the process, even when it is killed).
    ``wait``: wait for another holder (two runs that need the same dataset regenerate it once:
    the second waits, then finds it); otherwise raise ``BlockingIOError`` at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        yield


def relative_path(path: Path, base: Path | None = None) -> str:
    """``path`` relative to ``base`` (default: the working directory) when it lies under it,
    else as given: how a generated document names the files it comes from."""
    try:
        return str(path.resolve().relative_to((base or Path.cwd()).resolve()))
    except ValueError:
        return str(path)
