"""Small utilities shared by the data, datagen, run-store, training and report code: atomic
files, sha256, seeds derived from several integers, paths as a document shows them."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

# The checkout this code runs from (results/, the reference tables and git live here).
REPO = Path(__file__).resolve().parent.parent
# `time.perf_counter()` when this process began as `python -m bench` (set by bench/__main__.py; None in
# a process that imports the package): a training program's start-up time is measured from it.
PROGRAM_STARTED: float | None = None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_VERIFIED: dict[str, str] = {}  # cached_sha256 within this process: key -> sha256


def cached_sha256(path: Path, cache: Path) -> str:
    """``sha256_file(path)``, remembered in ``cache/`` (and in this process) under the file's
    absolute path, size and modification time, so that a 100-shard dataset is hashed once, not at
    every run. A write that changes a file changes its modification time, so it is hashed again."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    if key in _VERIFIED:  # once per process: a sweep plans thousands of runs on a few files
        return _VERIFIED[key]
    entry = cache / f"{key}.json"
    try:
        _VERIFIED[key] = json.loads(entry.read_text())["sha256"]
        return _VERIFIED[key]
    except (OSError, ValueError, KeyError):
        pass
    digest = _VERIFIED[key] = sha256_file(path)
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(entry)
    with os.fdopen(fd, "w") as handle:
        json.dump({"path": str(path.resolve()), "bytes": stat.st_size, "sha256": digest}, handle)
    os.replace(tmp, entry)
    return digest


def npz_rows(path: Path, array: str = "observations") -> int | None:
    """The leading dimension of ``array`` in an ``.npz`` file, read from its header only
    (None when the file holds no such array or is not a readable npz)."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{array}.npy") as member:
            major, _ = np.lib.format.read_magic(member)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, _ = read_header(member)
        return int(shape[0])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
        return None


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


SHARED_FILESYSTEMS = ("nfs", "nfs4", "lustre", "gpfs", "beegfs", "ceph", "cifs", "smb3", "smbfs", "glusterfs",
                      "panfs", "wekafs", "fuse.sshfs", "fuse.juicefs", "9p", "virtiofs")


def filesystem_type(path: Path, mounts: str | None = None) -> str | None:
    """The type of the file system ``path`` lies on (the longest matching mount point of
    ``/proc/mounts``, or of ``mounts``, its text); None where that cannot be read."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    target = str(Path(path).expanduser().resolve())
    best, kind = "", None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def node_local(path: Path, mounts: str | None = None) -> bool:
    """Whether ``path`` is on a file system only this machine sees (known local types; an
    unknown type counts as shared, so the warning it feeds is never a false alarm)."""
    kind = filesystem_type(path, mounts)
    return kind is not None and kind not in SHARED_FILESYSTEMS and kind in (
        "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "tmpfs", "overlay", "f2fs", "apfs", "devtmpfs")


def check_writable(directory: Path, what: str) -> None:
    """One line before any work when ``directory`` (created if absent) cannot be written: a
    read-only file system, no permission, a full disk."""
    from bench.errors import BenchError, file_system_problem

    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = temp_beside(directory / ".write-probe")
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise BenchError(f"{what} {directory} is not writable: {file_system_problem(exc)}") from None
