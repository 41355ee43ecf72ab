"""A method of one's own, outside the repository (issue 31, item 1): registered through the
``trqam_bench.methods`` entry point of an installed package, or named ``module:NAME``; its run
identity carries its package version and source fingerprint; `new-method` writes a package whose
own test passes. The example package (examples/bestofn) runs end to end through `reproduce` in
tests/test_bundle.py (beside imported runs of the built-in methods)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.config import methods
from bench.errors import BenchError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "bestofn"
TASK = "cube-single-play-singletask-task1-v0"


def environment(*paths: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, paths), str(REPO)]), **extra}


def python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env, cwd=REPO)


def test_an_installed_package_registers_its_method_by_entry_point(installed_example):
    code = ("import json; from bench.config.methods import get_method, method_names; m = get_method('best-of-n'); "
            "print(json.dumps({'cls': m.agent_cls.__name__, 'pipeline': m.pipeline, 'source': m.source, "
            "'names': method_names()}))")
    result = python(code, environment(installed_example))
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["cls"] == "BestOfN" and found["pipeline"] == "fine-tune"
    assert found["source"]["package"] == "trqam-bestofn" and found["source"]["version"] == "0.1.0"
    assert len(found["source"]["fingerprint"]) == 64 and "best-of-n" in found["names"]
    listed = subprocess.run([sys.executable, "-m", "bench", "methods"], capture_output=True, text=True, timeout=300,
                            env=environment(installed_example), cwd=REPO)
    assert "best-of-n" in listed.stdout and "trqam-bestofn 0.1.0" in listed.stdout


def test_a_module_path_names_a_method_without_installing_it():
    code = ("from bench.config.methods import get_method; m = get_method('trqam_bestofn.method:METHOD'); "
            "print(m.name, m.source['package'], m.source['version'])")
    result = python(code, environment(EXAMPLE / "src"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["trqam_bestofn.method:METHOD", "trqam_bestofn.method", "unversioned"]


def test_a_bad_method_reference_is_one_line():
    with pytest.raises(BenchError, match="method 'nowhere.at_all:METHOD': module 'nowhere.at_all' cannot be imported"):
        methods.get_method("nowhere.at_all:METHOD")
    with pytest.raises(BenchError, match="is not a bench.config.methods.Method"):
        methods.get_method("bench.config.methods:QAM_PAPER")
    with pytest.raises(BenchError, match="unknown method 'trqm'"):
        methods.get_method("trqm")


def test_the_source_fingerprint_follows_the_methods_files(tmp_path):
    """Editing the package's code changes its fingerprint (so its stored runs become stale); the
    same files elsewhere give the same fingerprint."""
    first = tmp_path / "a" / "trqam_bestofn"
    shutil.copytree(EXAMPLE / "src" / "trqam_bestofn", first, ignore=shutil.ignore_patterns("__pycache__"))
    second = tmp_path / "b" / "trqam_bestofn"
    shutil.copytree(first, second)
    assert methods.source_fingerprint(first) == methods.source_fingerprint(second)
    (second / "agent.py").write_text((second / "agent.py").read_text() + "\n# an edit\n")
    assert methods.source_fingerprint(first) != methods.source_fingerprint(second)


def test_the_example_packages_own_tests_pass(installed_example):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                            capture_output=True, text=True, timeout=600, env=environment(installed_example), cwd=EXAMPLE)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout


def test_new_method_writes_a_package_that_passes_its_own_test(tmp_path, pip_install):
    written = subprocess.run([sys.executable, "-m", "bench", "new-method", "my-method", "--dir", str(tmp_path / "pkg")],
                             capture_output=True, text=True, timeout=300, env=environment(), cwd=REPO)
    assert written.returncode == 0, written.stderr
    site = pip_install(tmp_path / "pkg", tmp_path / "site")
    assert (site / "trqam_my_method" / "agent.py").exists()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                            capture_output=True, text=True, timeout=600, env=environment(site), cwd=tmp_path / "pkg")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout
    again = subprocess.run([sys.executable, "-m", "bench", "new-method", "my-method", "--dir", str(tmp_path / "pkg")],
                           capture_output=True, text=True, timeout=300, env=environment(), cwd=REPO)
    assert again.returncode == 2 and "is not empty" in again.stderr and "Traceback" not in again.stderr
