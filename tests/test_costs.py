"""The dry run's cost projection (bench/reporting/costs.py): sums checked by hand on a small
table, and the committed table of `nox -s paper-smoke` pricing both paper profiles' matrices."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from bench.reporting import costs
from bench.training.pipeline import RunConfig

SCHEDULE = {"pretrain_steps": 10, "offline_steps": 20, "eval_every": 10, "eval_episodes": 2, "online_steps": 0}


def write_table(path, rows):
    columns = ("profile", "method", "domain", "pretrain_s_per_update", "offline_s_per_update", "online_s_per_update",
               "eval_s_per_episode", "gflop_per_update", "bc_gflop_per_update", "status")
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({"status": "finished", **r} for r in rows)
    return costs.load(path)


@pytest.fixture
def table(tmp_path):
    return write_table(tmp_path / "costs.csv", [
        {"profile": "paper", "method": "trqam", "domain": "c3", "pretrain_s_per_update": 0.5,
         "offline_s_per_update": 2.0, "eval_s_per_episode": 100.0, "gflop_per_update": 4.0, "bc_gflop_per_update": 1.0},
        {"profile": "paper", "method": "trqam", "domain": "scene", "pretrain_s_per_update": 0.25,
         "offline_s_per_update": 1.0, "eval_s_per_episode": 30.0, "gflop_per_update": 2.0, "bc_gflop_per_update": 0.5},
        {"profile": "paper", "method": "fql", "domain": "c3", "offline_s_per_update": 3.0,
         "eval_s_per_episode": 90.0, "gflop_per_update": 6.0, "bc_gflop_per_update": 1.0},
        {"profile": "paper", "method": "dsrl", "domain": "c3", "offline_s_per_update": 3.0, "status": "failed"},
    ])


def test_a_run_is_priced_phase_by_phase_from_its_own_row(table):
    projection = costs.project([RunConfig(method="trqam", task="c3-task1", profile="paper", **SCHEDULE)], table)
    # 10 BC updates x 0.5 s + 20 updates x 2 s + 2 evaluations x 2 episodes x 100 s
    assert projection.cpu_s == pytest.approx(10 * 0.5 + 20 * 2.0 + 2 * 2 * 100.0)
    assert projection.gflop == pytest.approx(10 * 1.0 + 20 * 4.0)
    assert projection.gpu_hours == pytest.approx(90.0 / (costs.ASSUMED_GPU_TFLOP_S * 1e3) / 3600)
    assert (projection.measured, projection.scaled, projection.bc_pretrainings) == (1, 0, 1)


def test_bc_pretraining_is_counted_once_per_checkpoint_and_from_bcs_own_timing(table):
    runs = [RunConfig(method=m, task="c3-task1", profile="paper", seed=s, **SCHEDULE)
            for m in ("trqam", "fql") for s in (0, 1)]
    projection = costs.project(runs, table)
    assert projection.bc_pretrainings == 2  # seeds 0 and 1; FQL reuses TRQAM's checkpoints
    offline = 2 * (20 * 2.0 + 4 * 100.0) + 2 * (20 * 3.0 + 4 * 90.0)
    assert projection.cpu_s == pytest.approx(2 * 10 * 0.5 + offline)
    shared = costs.project(runs, table)  # the same answer again: nothing is remembered between calls
    assert shared.cpu_s == projection.cpu_s


def test_a_method_measured_at_one_domain_is_scaled_by_trqams_ratio(table):
    run = RunConfig(method="fql", task="scene-task1", profile="paper", **SCHEDULE)
    projection = costs.project([run], table)
    assert (projection.measured, projection.scaled) == (0, 1)
    # BC at scene from TRQAM's scene row; FQL's c3 update x (1.0 / 2.0); its episode x (30 / 100)
    assert projection.cpu_s == pytest.approx(10 * 0.25 + 20 * 3.0 * 0.5 + 2 * 2 * 90.0 * 0.3)
    assert projection.gflop == pytest.approx((10 * 1.0 + 20 * 6.0) * 0.5)


def test_an_online_phase_adds_one_environment_step_per_update(table):
    run = RunConfig(method="trqam", task="c3-task1", profile="paper", **{**SCHEDULE, "online_steps": 30})
    projection = costs.project([run], table)
    env_step = 100.0 / 1000  # c3's episode limit is 1000 steps
    online = 30 * 2.0 + 30 * env_step + 1 * 2 * 100.0  # offline s/update, one evaluation
    assert projection.cpu_s == pytest.approx(10 * 0.5 + 20 * 2.0 + 2 * 2 * 100.0 + online)


def test_a_method_without_a_row_and_a_failed_row_are_not_priced(table):
    runs = [RunConfig(method=m, task="c3-task1", profile="paper", **SCHEDULE) for m in ("dsrl", "trqam")]
    projection = costs.project(runs, table)
    assert projection.unpriced == ["dsrl@c3"] and projection.measured == 1
    assert "not priced (no row for the method): dsrl@c3" in projection.describe()
    assert costs.priced([RunConfig(method="trqam", task="c3-task1", profile="quick")], table) is None


def test_the_committed_table_prices_both_paper_matrices():
    """Every method and domain of `paper` and `qam-paper` is priced from the committed table (measured
    or scaled), so the dry runs print CPU-hours and the GPU projection for the whole matrix."""
    from bench.config.profiles import get_profile

    table = costs.load()
    assert table, f"{costs.COSTS_CSV} is missing: run `nox -s paper-smoke`"
    for name in ("paper", "qam-paper"):
        profile = get_profile(name)
        runs = [RunConfig(method=m, task=t, profile=name, seed=profile.seeds[0])
                for m in profile.methods for t in profile.tasks]
        projection = costs.project(runs, table)
        assert not projection.unpriced, (name, projection.unpriced)
        assert projection.cpu_hours > 0 and projection.gpu_hours > 0


def test_the_paper_dry_run_prints_the_expected_hours(tmp_path):
    env = {**os.environ, "TRQAM_BENCH_RESULTS": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "bench", "reproduce", "--profile", "paper", "--domains", "c3",
                             "--dry-run"], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if "CPU-hours" in line]
    assert "reports/benchmarks/paper_smoke_costs.csv" in line and "a projection at an assumed" in line
