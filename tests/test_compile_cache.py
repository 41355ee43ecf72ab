"""JAX's persistent compilation cache as `train` and `reproduce` turn it on (issue 32, item 1)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# A program compiled for over MIN_COMPILE_S (a scan of many distinct matrix steps), then called.
PROGRAM = """
import warnings
warnings.simplefilter("always")
from bench.training import compile_cache
print("cache", compile_cache.enable())
import jax, jax.numpy as jnp

def body(x, w):
    return jnp.tanh(x @ w), None

@jax.jit
def program(x, ws):
    for i in range(100):
        x, _ = jax.lax.scan(body, x, ws)
        x = jnp.sin(x + i) * jnp.cos(x * (i + 1))
    return x.sum()

print("value", float(program(jnp.ones((8, 8)), jnp.ones((3, 8, 8)) * 0.1)))
"""


def test_the_package_declares_what_the_cache_needs():
    """JAX's cache with a size limit locks each entry with `filelock`; without it every read fails
    ("Please install the `filelock` package"), as it did in `nox -s reproduce`, which installs the
    package alone."""
    requirements = importlib.metadata.requires("trqam-bench") or []
    assert any(r.split(";")[0].replace(" ", "").lower().startswith("filelock") for r in requirements
               if "extra ==" not in r), requirements


def test_a_second_process_loads_what_the_first_compiled(tmp_path):
    env = {**os.environ, "TRQAM_BENCH_CACHE": str(tmp_path), "PYTHONPATH": str(REPO)}
    env.pop("TRQAM_BENCH_COMPILE_CACHE", None)
    runs = [subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, timeout=300)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
        assert "persistent compilation cache" not in run.stderr, run.stderr[-3000:]
    assert runs[0].stdout.splitlines()[-1] == runs[1].stdout.splitlines()[-1]
    entries = list((tmp_path / "xla").rglob("*-cache"))
    assert entries, list((tmp_path / "xla").rglob("*"))
