"""Shared fixtures: a small regenerated dataset cache reused across the session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def compile_cache():
    """JAX's persistent compilation cache, as `train` and `reproduce` use it (under the user's suite
    cache, so a second test session loads what the first compiled; TRQAM_BENCH_COMPILE_CACHE=off
    turns it off). The programs the tests start (`python -m bench ...`) are pointed at the same
    directory, whatever private TRQAM_BENCH_CACHE a test gives them, so every worker and both steps
    of `nox -s tests` load what any of them compiled (issue 32, item 2)."""
    from bench.training import compile_cache as cache

    path = cache.enable()
    if path is not None:
        os.environ[cache.SWITCH] = str(path.parent)  # `directory()` adds the versions' subdirectory
    return path


@pytest.fixture(scope="session")
def bench_cache(tmp_path_factory) -> Path:
    """A private regenerated-data cache; smoke runs regenerate into it once."""
    path = tmp_path_factory.mktemp("trqam-bench-cache")
    previous = os.environ.get("TRQAM_BENCH_CACHE")
    os.environ["TRQAM_BENCH_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("TRQAM_BENCH_CACHE", None)
    else:
        os.environ["TRQAM_BENCH_CACHE"] = previous


@pytest.fixture(scope="session")
def smoke_dataset_dir(bench_cache) -> Path:
    """Directory holding a tiny cube-single dataset in the official format, standing in for
    OGBench's downloads (which this machine cannot fetch): regenerated, then stripped of the
    suite's manifest, so the loader sees files without one, as the official ones are."""
    from bench.data.datagen import generate, manifest_path

    out = bench_cache / "official-format"
    generate("cube-single-play-v0", episodes=4, seed=0, out_dir=out, episode_length=100, progress=False)
    manifest_path(out, "cube-single-play-v0").unlink()
    return out


@pytest.fixture(scope="session")
def regenerated_dataset_dir(bench_cache) -> Path:
    """The same tiny dataset with the suite's regenerated manifest beside it."""
    from bench.data.datagen import generate

    out = bench_cache / "regenerated-with-manifest"
    generate("cube-single-play-v0", episodes=4, seed=0, out_dir=out, episode_length=100, progress=False)
    return out


def install(package: Path, target: Path) -> Path:
    """``pip install`` ``package`` (no dependencies: trqam-bench is already here) into ``target``, a
    directory to put on PYTHONPATH: a real installation, with its entry points, that leaves the test
    environment as it was."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                             "--no-index", "--target", str(target), str(package)], capture_output=True, text=True,
                            timeout=300, cwd=target.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    return target


@pytest.fixture(scope="session")
def pip_install():
    """`install`, for a test that installs a package it wrote (tests/test_plugins.py)."""
    return install


@pytest.fixture(scope="session")
def installed_example(tmp_path_factory) -> Path:
    """examples/bestofn installed into a directory of its own (copied first: pip builds in place)."""
    import shutil

    root = tmp_path_factory.mktemp("plugin")
    example = Path(__file__).resolve().parents[1] / "examples" / "bestofn"
    shutil.copytree(example, root / "bestofn", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    return install(root / "bestofn", root / "site")
