"""What a run records about where it ran: package versions, hardware, code revision."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from bench.files import REPO

OUTPUTS = ("results", "reports")  # what the suite writes; never part of its code revision
PACKAGES = ("trqam-bench", "jax", "jaxlib", "equinox", "optax", "numpy", "ogbench", "mujoco", "gymnasium")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def cpu_model() -> str:
    """The processor's model name (Linux), or what `platform` knows of it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return round(pages / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def hardware() -> dict:
    import jax

    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d.device_kind) for d in jax.devices()],
        # The share of an accelerator's memory JAX may take (`bench.training.sweep.gpu_share_environment`).
        "jax_memory_fraction": os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION", "JAX default (0.75)"),
    }


@functools.cache
def code_revision() -> str | None:
    """The git commit of the suite's source tree, with '+dirty' for local changes to it. Changes
    under results/ and reports/ do not count: they are what the suite writes (a run replacing a
    committed one, a recomputed study), not the code that wrote them. Read once per process: the
    code a process runs is what it imported at its start, and a sweep's dry run or a table over
    thousands of stored runs asks once instead of twice per run."""
    root = REPO
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *(f":(exclude){d}" for d in OUTPUTS)],
            cwd=root, capture_output=True, text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def source_fingerprint(*paths: Path) -> str:
    """sha256 over the Python sources under ``paths`` (files or folders): each file's path from
    its given folder's parent (``trqam/soc.py``) and its bytes. Unlike the git revision it changes
    only with that code, so a stored result can tell whether the code that computes it has
    changed since; it is the same in every checkout of the same sources."""
    digest = hashlib.sha256()
    for path in paths:
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            name = file.relative_to(path.parent) if path.is_dir() else Path(file.name)
            digest.update(name.as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()
