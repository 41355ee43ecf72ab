"""JAX's persistent compilation cache, on by default for `train`, `reproduce`, `regress` and the tests.

A program compiles its agent's update, validation and acting programs from nothing, 20 to 30 s on
a CPU for the quick profile; with the cache, a program that compiles what another already compiled
(the same method, shapes and versions) loads it instead. The cache lives under the suite's cache
(``$TRQAM_BENCH_CACHE/xla/``), one directory per (jax, jaxlib, machine architecture), so programs of
other versions never share entries. JAX guards every read and write with a file lock when the
cache has a size limit (`MAX_BYTES`), so several processes share it safely.

``TRQAM_BENCH_COMPILE_CACHE=off`` turns it off; a path there puts it elsewhere. Measured cold and
warm against off by ``python -m benchmarks.compile_cache`` (reports/benchmarks/COMPILE_CACHE.md).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from bench.data.loading import cache_dir

SWITCH = "TRQAM_BENCH_COMPILE_CACHE"
OFF = ("0", "off", "false", "no")
MIN_COMPILE_S = 0.5  # programs that compiled faster are not written (loading them saves nothing)
MAX_BYTES = 4 * 2**30  # a limit turns on JAX's file lock around every entry, and evicts the oldest


def directory() -> Path | None:
    """Where the cache is for this jax and jaxlib, or None when it is off."""
    setting = os.environ.get(SWITCH, "").strip()
    if setting.lower() in OFF:
        return None
    import jax
    import jaxlib

    root = Path(setting).expanduser() if setting and setting.lower() not in ("1", "on", "true", "yes") \
        else cache_dir() / "xla"
    return root / f"jax-{jax.__version__}-jaxlib-{jaxlib.__version__}-{platform.machine()}"


def enable() -> Path | None:
    """Point JAX's persistent compilation cache at `directory` (nothing when it is off); returns it."""
    path = directory()
    if path is None:
        return None
    import jax

    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return path


def describe() -> str:
    """What a run's environment.json records: the cache's directory, or "off"."""
    path = directory()
    return str(path) if path is not None else "off"
