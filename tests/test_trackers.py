"""The optional trackers (`bench.training.trackers`): W&B in offline mode and TensorBoard event files
hold the same rows as metrics.csv and evaluations.csv, and a killed and resumed run continues
the same tracked run without sending a row twice."""

from __future__ import annotations

import csv
import importlib.util
import json
import math

import pytest

from bench.errors import BenchError
from bench.training.pipeline import RunConfig, train
from bench.training.trackers import read_tensorboard, read_wandb_offline, same_value

pytest.importorskip("wandb")
pytest.importorskip("tensorboardX")

SMOKE_TASK = "cube-single-play-singletask-task1-v0"
# Wall-clock columns: the row of step 25 is recomputed after the resume with other timings.
TIMING = {"steps_per_s", "wall_s", "policy_seconds", "env_seconds", "wall_seconds"}


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _numeric(row):
    out = {}
    for key, value in row.items():
        if key in ("phase", "step") or value == "":
            continue
        try:
            out[key] = float(value)
        except ValueError:
            pass
    return out


@pytest.mark.slow
def test_killed_and_resumed_run_continues_the_same_tracked_runs(bench_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    config = RunConfig("bc", SMOKE_TASK, profile="smoke", out=run)

    def kill_at_25(phase, step):  # the row of step 25 is sent, the last checkpoint is at step 20
        if step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False, on_step=kill_at_25, trackers=("wandb", "tensorboard"))
    sent = json.loads((run / "trackers.json").read_text())
    assert sent["wandb"]["sent"]["metrics"] == [0, 25] and sent["tensorboard"]["sent"]["metrics"] == [0, 25]
    train(config, progress=False, trackers=("wandb", "tensorboard"))

    metrics, evaluations = _csv(run / "metrics.csv"), _csv(run / "evaluations.csv")
    assert [int(r["step"]) for r in metrics] == [5, 10, 15, 20, 25, 30]

    # W&B: one run id over both invocations (two offline run directories), every row once.
    run_id, history = read_wandb_offline(run)
    assert run_id == json.loads((run / "trackers.json").read_text())["wandb"]["id"]
    assert len(list((run / "wandb").glob("offline-run-*"))) == 2
    for log, rows in (("metrics", metrics), ("evaluations", evaluations)):
        tracked = [h for h in history if any(k.startswith(f"{log}/") for k in h)]
        assert [h["_step"] for h in tracked] == [int(r["step"]) for r in rows], log
        for h, row in zip(tracked, rows, strict=True):
            values = _numeric(row)
            assert {k for k in h if k.startswith(f"{log}/")} == {f"{log}/{k}" for k in values}
            for key, value in values.items():
                if key in TIMING and h["_step"] == 25:
                    continue
                assert math.isclose(h[f"{log}/{key}"], value, rel_tol=1e-12), (log, key)

    # TensorBoard: every column a tag, one point per row, in two event files.
    scalars = read_tensorboard(run)
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2
    for log, rows in (("metrics", metrics), ("evaluations", evaluations)):
        for key in _numeric(rows[0]):
            points = scalars[f"{log}/{key}"]
            assert [s for s, _ in points] == [int(r["step"]) for r in rows], (log, key)
            assert all(same_value(v, float(r[key])) for (_, v), r in zip(points, rows, strict=True)
                       if key not in TIMING or int(r["step"]) != 25), (log, key)


@pytest.mark.slow
def test_fine_tuning_rows_follow_the_pretraining_steps(bench_cache, tmp_path):
    run = tmp_path / "fql"
    train(RunConfig("fql", SMOKE_TASK, profile="smoke", out=run), progress=False, trackers=("tensorboard",))
    loss = read_tensorboard(run)["metrics/critic/loss"]
    assert [s for s, _ in loss] == [30 + 5 * k for k in range(1, 7)]  # BC's 30 steps, then offline 5 .. 30


def test_a_missing_tracker_package_is_one_line_before_training(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(BenchError, match=r"--wandb needs the wandb package: pip install 'trqam-bench\[wandb\]'"):
        train(RunConfig("bc", SMOKE_TASK, profile="smoke", out=tmp_path / "run"), progress=False, trackers=("wandb",))
    assert not (tmp_path / "run").exists()
