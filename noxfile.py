"""Sessions: `nox -s tests`, `nox -s reproduce`, `nox -s figures`, `nox -s regress`, `nox -s lint`, `nox -s bench`,
`nox -s parity`, `nox -s paper-smoke`, `nox -s docs`.

Every session builds its virtualenv from the interpreter nox runs on (any supported Python,
3.11 to 3.13), so the README's commands work wherever `pip install nox` did; on an
unsupported interpreter a session fails with one line instead of being skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]

PYTHON = None  # the interpreter nox runs on
SUPPORTED = ((3, 11), (3, 13))
REPO = Path(__file__).resolve().parent
LOCKS = REPO / "requirements"


def _check_python(session: nox.Session) -> None:
    low, high = SUPPORTED
    if not low <= sys.version_info[:2] <= high:
        session.error(f"Python {sys.version.split()[0]} is not supported: run nox from Python "
                      f"{low[0]}.{low[1]} to {high[0]}.{high[1]} (e.g. python3.12 -m pip install nox && python3.12 -m nox)")


def constraints_file() -> Path:
    """The exact versions this Python's sessions install (requirements/README.md)."""
    return LOCKS / f"constraints-py{sys.version_info[0]}.{sys.version_info[1]}.txt"


def _install(session: nox.Session, *args: str) -> None:
    """Install from the lock file of the running Python: the versions the committed numbers and
    CI were run with (pyproject.toml keeps loose floors for users). On Python 3.13 labmaze, which
    dm_control declares but OGBench never reaches, has no wheel: a stand-in takes its place
    (tools/labmaze-stub)."""
    if sys.version_info >= (3, 13):
        session.install(str(REPO / "tools" / "labmaze-stub"))
    session.install("-c", str(constraints_file()), *args)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite in two steps: the quick tests (about 6 minutes on 2 cores), then the ones
    marked `slow` (real training runs, MuJoCo episodes, dataset generation, a local Ray cluster;
    reports/benchmarks/TEST_TIMES.md has the measured times). Arguments after `--` go to one pytest
    run of their own, on every core: `nox -s tests -- -m "not slow"` is the quick loop,
    `nox -s tests -- tests/test_soc.py -k lemma` one file's tests."""
    _check_python(session)
    _install(session, "-e", ".[test]")
    # One test process per core, whichever is idle taking the next test; --durations names the slowest.
    parallel = ["-n", "auto", "--dist", "worksteal", "--durations=15"]
    if session.posargs:
        session.run("pytest", *parallel, *session.posargs)
        return
    session.run("pytest", *parallel, "-m", "not slow", "tests")
    session.run("pytest", *parallel, "-m", "slow", "tests")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff over the code."""
    _check_python(session)
    _install(session, "ruff>=0.6")
    session.run("ruff", "check", "trqam", "baselines", "bench", "parity", "tests", "benchmarks", "examples", "noxfile.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Speed benchmarks (pytest-benchmark); results saved under reports/benchmarks/. TRQAM's update
    is timed beside the authors' (benchmarks/test_authors.py), imported at run time from the checkout
    that TRQAM_REFERENCE_DIR names, else from a clone of github.com/yonghdong/trqam at the commit the
    parity fixtures were made from, kept under $TRQAM_BENCH_CACHE/reference (skipped, saying why,
    where neither is possible). The reference's dependencies come with the `parity` extra."""
    _check_python(session)
    _install(session, "-e", ".[test,parity]")
    reference = _reference_checkout(session)
    if reference:
        session.env["TRQAM_REFERENCE_DIR"] = reference
    session.run(
        "pytest", "benchmarks", "--benchmark-only", "--benchmark-columns=mean,stddev,rounds",
        "--benchmark-json=reports/benchmarks/latest.json", "-p", "no:cacheprovider", *session.posargs,
    )
    session.run("python", "-m", "benchmarks.summarize", "reports/benchmarks/latest.json",
                "reports/benchmarks/BENCHMARKS.md")


REFERENCE_URL = "https://github.com/yonghdong/trqam"
REFERENCE_COMMIT = "02599ce32dc9343f723b1cc52dabe06c5e9c1ed5"  # tests/parity/provenance.json's TRQAM fixtures


def _reference_checkout(session: nox.Session) -> str | None:
    """TRQAM_REFERENCE_DIR, else a clone of the authors' repository at REFERENCE_COMMIT under the
    suite's cache (made once); None, with a line saying why, where it cannot be had."""
    import os
    import subprocess

    if os.environ.get("TRQAM_REFERENCE_DIR"):
        return os.environ["TRQAM_REFERENCE_DIR"]
    cache = Path(os.environ.get("TRQAM_BENCH_CACHE", Path.home() / ".cache" / "trqam-bench"))
    target = cache / "reference" / f"trqam-{REFERENCE_COMMIT[:10]}"
    if not (target / "agents" / "trqam.py").is_file():
        clone = subprocess.run(["git", "clone", "--quiet", REFERENCE_URL, str(target)], capture_output=True, text=True)
        if clone.returncode != 0:
            session.warn(f"the authors' update is not benchmarked: cloning {REFERENCE_URL} failed "
                         f"({clone.stderr.strip().splitlines()[-1] if clone.stderr.strip() else clone.returncode}); "
                         "set TRQAM_REFERENCE_DIR to a checkout of it")
            return None
        subprocess.run(["git", "-C", str(target), "checkout", "--quiet", REFERENCE_COMMIT], check=True)
    return str(target)


@nox.session(python=PYTHON)
def reproduce(session: nox.Session) -> None:
    """The main job: the quick profile by default (18 min on 2 cores from an empty cache, measured);
    tables, figures and reports/REPORT.md. Arguments after `--` go to `python -m bench reproduce`:

    nox -s reproduce -- --profile paper --domains scene p33
    nox -s reproduce -- --profile paper --backend ray --address auto --gpus-per-run 1
    nox -s reproduce -- --jax-cuda --profile paper ...   # JAX with CUDA 12 (the `gpu` extra), not the CPU build
    """
    _check_python(session)
    args = [a for a in session.posargs if a != "--jax-cuda"]  # read here, not passed on
    extras = [name for name, wanted in (("ray", "ray" in args), ("gpu", "--jax-cuda" in session.posargs)) if wanted]
    _install(session, "-e", f".[{','.join(extras)}]" if extras else ".")
    session.run("python", "-m", "bench", "reproduce", *args)


@nox.session(python=PYTHON)
def figures(session: nox.Session) -> None:
    """Redraw every figure from the stored results (`-- --profile paper` for another profile)."""
    _check_python(session)
    _install(session, "-e", ".")
    session.run("python", "-m", "bench", "figures", *session.posargs)


@nox.session(python=PYTHON)
def regress(session: nox.Session) -> None:
    """The CI regression gate: the matrix pinned in results/regress/bands.csv, trained fresh."""
    _check_python(session)
    _install(session, "-e", ".")
    session.run("python", "-m", "bench", "regress", *session.posargs)


@nox.session(python=PYTHON)
def parity(session: nox.Session) -> None:
    """Parity with the authors' code: with `-- --reference-dir DIR` (a checkout of
    github.com/yonghdong/trqam) rewrite the fixtures in tests/parity from it; then write
    reports/parity/PARITY.md from the fixtures. The reference's dependencies (flax, distrax,
    ml_collections, TensorFlow Probability) are installed in this session only."""
    _check_python(session)
    session.install("-e", ".[parity]")
    if session.posargs:
        session.run("python", "-m", "parity.generate", *session.posargs)
    session.run("python", "-m", "parity.report")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The documentation site (MkDocs, Material, mkdocstrings; mkdocs.yml), built with --strict into
    site/ (`-- serve` previews it instead)."""
    _check_python(session)
    _install(session, "-e", ".[docs]")
    session.env["NO_MKDOCS_2_WARNING"] = "1"
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", *session.posargs[1:])
    else:
        session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session(name="paper-smoke", python=PYTHON)
def paper_smoke(session: nox.Session) -> None:
    """Both paper profiles trained end to end at their own sizes for a handful of updates, through the
    sweep's code, on stand-in files in the official layouts; writes the cost table under
    reports/benchmarks/ (benchmarks/paper_smoke.py; arguments after `--` go to it); then memory at
    scale: training over 100 shards against one (benchmarks/shard_memory.py)."""
    _check_python(session)
    _install(session, "-e", ".")
    session.run("python", "-m", "benchmarks.paper_smoke", *session.posargs)
    session.run("python", "-m", "benchmarks.shard_memory")
