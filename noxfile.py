"""Sessions: `nox -s tests`, `nox -s reproduce`, `nox -s figures`, `nox -s regress`, `nox -s lint`, `nox -s bench`."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite (real MuJoCo episodes, regenerated data, a local Ray cluster; about 16 minutes on 2 cores)."""
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
    """The main job: the quick profile by default (under an hour on 2 cores from an empty cache);
    tables, figures and reports/REPORT.md. Arguments after `--` go to `python -m bench reproduce`:

    nox -s reproduce -- --profile paper --domains scene p33
    nox -s reproduce -- --profile paper --backend ray --address auto --gpus-per-run 1
    """
    session.install("-e", ".[ray]" if "ray" in session.posargs else ".")
    session.run("python", "-m", "bench", "reproduce", *session.posargs)


@nox.session(python=PYTHON)
def figures(session: nox.Session) -> None:
    """Redraw every figure from the stored results (`-- --profile paper` for another profile)."""
    session.install("-e", ".")
    session.run("python", "-m", "bench", "figures", *session.posargs)


@nox.session(python=PYTHON)
def regress(session: nox.Session) -> None:
    """The CI regression gate: the matrix pinned in results/regress/bands.csv, trained fresh."""
    session.install("-e", ".")
    session.run("python", "-m", "bench", "regress", *session.posargs)
