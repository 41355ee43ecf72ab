"""Sessions: `nox -s tests`, `nox -s lint`, `nox -s bench`, `nox -s reproduce`."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite (real MuJoCo episodes and regenerated data; about 13 minutes on 2 cores)."""
    session.install("-e", ".[test]")
    session.run("pytest", *(session.posargs or ["tests"]))


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff over the code."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "trqam", "baselines", "bench", "tests", "benchmarks", "noxfile.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Speed benchmarks (pytest-benchmark); results saved under reports/benchmarks/."""
    session.install("-e", ".[test]")
    session.run(
        "pytest", "benchmarks", "--benchmark-only", "--benchmark-columns=mean,stddev,rounds",
        "--benchmark-json=reports/benchmarks/latest.json", "-p", "no:cacheprovider", *session.posargs,
    )
    session.run("python", "-m", "benchmarks.summarize", "reports/benchmarks/latest.json",
                "reports/benchmarks/BENCHMARKS.md")


@nox.session(python=PYTHON)
def reproduce(session: nox.Session) -> None:
    """The main job at its default (quick profile, regenerated data): BC, TRQAM and QAM on two tasks.

    Pass other tasks, seeds or the profile after `--`:
    nox -s reproduce -- --tasks c2-task1 scene-task1 --seeds 0 1 --profile quick
    """
    session.install("-e", ".")
    session.run("python", "-m", "bench", "reproduce", *session.posargs)
