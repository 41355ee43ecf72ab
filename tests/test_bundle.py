"""Result bundles (issue 31, item 2): export, import into another store, reuse without retraining;
a tampered or truncated bundle is refused in one line and nothing is imported."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.training import bundle
from bench.training.synthetic import write_run

REPO = Path(__file__).resolve().parents[1]
TASK = "cube-single-play-singletask-task1-v0"


@pytest.fixture
def store(tmp_path) -> Path:
    results = tmp_path / "store-a"
    for method, success in (("fql", 0.5), ("trqam", 0.76)):
        for seed in (0, 1):
            write_run(results / "runs" / "quick" / method / TASK / f"seed{seed}", method=method, task=TASK, seed=seed,
                      success=success)
    return results


def test_a_bundle_carries_its_runs_byte_for_byte_with_their_origin(store, tmp_path):
    path = tmp_path / "runs.tar.gz"
    manifest = bundle.export(store, path, methods=["fql"])
    assert sorted(manifest["runs"]) == [f"runs/quick/fql/{TASK}/seed0", f"runs/quick/fql/{TASK}/seed1"]
    assert manifest["origin"]["store_id"] and not manifest["checkpoints"]
    target = tmp_path / "store-b"
    added = bundle.import_bundle(target, path)
    assert len(added) == 2
    for run in manifest["runs"]:
        for original in (store / run).iterdir():
            assert (target / run / original.name).read_bytes() == original.read_bytes()
        origin = bundle.origin_of(target / run)
        assert origin["store_id"] == manifest["origin"]["store_id"] and origin["bundle"] == "runs.tar.gz"
    assert bundle.import_bundle(target, path) == []  # the same runs again: already there, nothing written


def test_a_tampered_bundle_is_refused_and_nothing_is_imported(store, tmp_path):
    path = tmp_path / "runs.tar.gz"
    bundle.export(store, path)
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]
    edited = tmp_path / "edited.tar.gz"
    with tarfile.open(edited, "w:gz") as tar:
        for member, data in members:
            if member.name.endswith("seed0/evaluations.csv") and "/fql/" in member.name:
                data = data.replace(b"0.5", b"0.9")  # a better success rate, written in by hand
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    target = tmp_path / "store-b"
    with pytest.raises(BenchError, match=r"is damaged: runs/quick/fql/.*/seed0/evaluations.csv differs from its "
                                         r"sha256 in bundle.json .*nothing was imported"):
        bundle.import_bundle(target, edited)
    assert not target.exists() or not any(target.rglob("*.json"))
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BenchError, match="cannot be read .*truncated or not a bundle"):
        bundle.import_bundle(target, truncated)
    not_a_bundle = tmp_path / "plain.tar.gz"
    with tarfile.open(not_a_bundle, "w:gz") as tar:
        info = tarfile.TarInfo("notes.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(BenchError, match="has no readable bundle.json"):
        bundle.import_bundle(target, not_a_bundle)
    assert gzip.decompress(path.read_bytes())  # the original stays readable


def test_an_import_over_another_run_stops_before_writing(store, tmp_path):
    path = tmp_path / "runs.tar.gz"
    bundle.export(store, path, methods=["fql"])
    target = tmp_path / "store-b"
    other = write_run(target / "runs" / "quick" / "fql" / TASK / "seed1", method="fql", task=TASK, seed=1, success=0.1)
    with pytest.raises(BenchError, match="already holds another run"):
        bundle.import_bundle(target, path)
    assert not (target / "runs" / "quick" / "fql" / TASK / "seed0").exists()
    assert bundle.origin_of(other) is None


def test_the_cli_exports_and_imports_in_one_line_each(store, tmp_path):
    path = tmp_path / "b.tar.gz"
    env = {**os.environ, "TRQAM_BENCH_RESULTS": str(store), "PYTHONPATH": str(REPO)}
    exported = subprocess.run([sys.executable, "-m", "bench", "results", "export", str(path), "--profile", "quick",
                               "--methods", "trqam"], capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert exported.returncode == 0, exported.stderr
    assert "exported 2 runs" in exported.stdout
    env["TRQAM_BENCH_RESULTS"] = str(tmp_path / "store-b")
    imported = subprocess.run([sys.executable, "-m", "bench", "results", "import", str(path)], capture_output=True,
                              text=True, timeout=300, env=env, cwd=REPO)
    assert imported.returncode == 0, imported.stderr
    assert "imported 2 runs" in imported.stdout
    with open(tmp_path / "store-b" / "index.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(r["origin"].startswith("imported from") for r in rows)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(path.read_bytes()[:100])
    refused = subprocess.run([sys.executable, "-m", "bench", "results", "import", str(broken)], capture_output=True,
                             text=True, timeout=300, env=env, cwd=REPO)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "Traceback" not in refused.stderr


@pytest.mark.slow
def test_imported_runs_are_reused_and_only_the_new_method_trains(installed_example, bench_cache, tmp_path):
    """Export bc and fql from one store, import them into a fresh one, then `reproduce --methods bc fql
    best-of-n` (the example package's method): only best-of-n trains; every table and figure holds all
    three; the imported runs are labelled with their origin."""
    from bench.config import methods

    first, second = tmp_path / "first", tmp_path / "second"
    env = {**os.environ, "TRQAM_BENCH_CACHE": str(bench_cache),
           "PYTHONPATH": os.pathsep.join([str(installed_example), str(REPO)])}

    def reproduce(results: Path, *names: str) -> str:
        result = subprocess.run([sys.executable, "-m", "bench", "reproduce", "--profile", "smoke", "--methods", *names,
                                 "--no-closed-form", "--no-studies", "--workers", "1", "--reports",
                                 str(results.parent / f"reports-{results.name}")], capture_output=True, text=True,
                                timeout=1200, env={**env, "TRQAM_BENCH_RESULTS": str(results)}, cwd=REPO)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        return result.stdout

    reproduce(first, "bc", "fql")
    path = tmp_path / "smoke.tar.gz"
    bundle.export(first, path)
    bundle.import_bundle(second, path)
    output = reproduce(second, "bc", "fql", "best-of-n")
    assert output.count("[skipped]") == 2 and output.count("[finished]") == 1, output
    assert "[finished] best-of-n" in output
    run = second / "runs" / "smoke" / "best-of-n" / TASK / "seed0"
    record = json.loads((run / "config.json").read_text())
    assert record["method"]["source"]["package"] == "trqam-bestofn"
    fingerprint = methods.source_fingerprint(REPO / "examples" / "bestofn" / "src" / "trqam_bestofn")
    assert record["method"]["source"]["fingerprint"] == fingerprint
    reports = second.parent / "reports-second"
    tasks = (reports / "tables" / "smoke" / "tasks.csv").read_text()
    assert all(name in tasks for name in ("best-of-n", "fql", "bc"))
    report = (reports / "REPORT.md").read_text()
    assert "best-of-n" in report and "imported from" in report
    assert "imported from" in (reports / "tables" / "smoke" / "tables.md").read_text()
    for name in ("main_table", "aggregate_metrics", "performance_profile", "probability_of_improvement"):
        assert (reports / "figures" / "smoke" / f"{name}.png").stat().st_size > 10_000
