"""The training loop: run records, kill-and-resume, divergence, finished runs kept."""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import jax.numpy as jnp
import pytest

from baselines.bc import FlowBC
from bench.config import methods
from bench.errors import BenchError
from bench.training.pipeline import RunConfig, train, train_seeds

SMOKE_TASK = "cube-single-play-singletask-task1-v0"  # 200-step episodes: cheap evaluations

TIMING_COLUMNS = {"steps_per_s", "wall_s", "policy_seconds", "env_seconds", "wall_seconds"}


def _rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


def _agent_bytes(run_dir):
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    return (run_dir / "checkpoint" / state["agent_file"]).read_bytes()


@pytest.mark.slow
def test_smoke_run_records_everything(bench_cache, tmp_path):
    summary = train(RunConfig("bc", SMOKE_TASK, profile="smoke", out=tmp_path / "run"), progress=False)
    run = tmp_path / "run"
    for name in ("config.json", "environment.json", "data.json", "metrics.csv", "evaluations.csv", "summary.json"):
        assert (run / name).exists(), name
    assert summary["method"] == "bc" and summary["profile"] == "smoke" and summary["steps"] == {"pretrain": 30}
    assert 0.0 <= summary["final_success"] <= 1.0 and summary["wall_time_s"] > 0
    assert summary["data"]["kind"] == "regenerated"
    assert json.loads((run / "data.json").read_text())["manifest"]["kind"] == "regenerated"
    env = json.loads((run / "environment.json").read_text())
    assert env["versions"]["jax"] and env["hardware"]["cpu_cores"] >= 1
    assert [int(r["step"]) for r in _rows(run / "metrics.csv")] == [5, 10, 15, 20, 25, 30]
    evals = _rows(run / "evaluations.csv")
    assert [int(r["step"]) for r in evals] == [15, 30] and all(r["num_episodes"] == "2" for r in evals)
    assert all(math.isfinite(float(r["actor/flow_loss"])) for r in _rows(run / "metrics.csv"))
    for record in run.glob("*.json"):  # strict JSON: a reader that rejects NaN and Infinity reads them all
        json.loads(record.read_text(), parse_constant=_not_strict)
    from bench.training.runstore import read_run

    assert read_run(run)["success_by_phase"] == summary["success_by_phase"]  # sealed, and the seal holds


def _not_strict(name):
    raise AssertionError(f"{name} in a JSON record")


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(bench_cache, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(RunConfig("bc", SMOKE_TASK, profile="smoke", out=straight), progress=False)

    def kill_at_25(phase, step):  # the last checkpoint is at step 20: steps 21-25 are lost
        if step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(RunConfig("bc", SMOKE_TASK, profile="smoke", out=resumed), progress=False, on_step=kill_at_25)
    assert not (resumed / "summary.json").exists()
    assert json.loads((resumed / "checkpoint" / "state.json").read_text())["step"] == 20
    assert [int(r["step"]) for r in _rows(resumed / "metrics.csv")][-1] == 25  # dropped again on resume
    with open(resumed / "metrics.csv", "a") as f:  # a row torn by a kill or a full disk: no newline
        f.write("pretrain,26,0.2")

    train(RunConfig("bc", SMOKE_TASK, profile="smoke", out=resumed), progress=False)
    assert _agent_bytes(resumed) == _agent_bytes(straight)
    assert _rows(resumed / "metrics.csv") == _rows(straight / "metrics.csv")
    assert _rows(resumed / "evaluations.csv") == _rows(straight / "evaluations.csv")


@pytest.mark.slow
def test_finished_run_is_never_overwritten(bench_cache, tmp_path):
    config = RunConfig("bc", SMOKE_TASK, profile="smoke", out=tmp_path / "run")
    first = train(config, progress=False)
    before = (tmp_path / "run" / "summary.json").read_bytes()
    again = train(config, progress=False)
    assert again == first and (tmp_path / "run" / "summary.json").read_bytes() == before
    with pytest.raises(BenchError, match=r"holds a run of another configuration \(run.seed: 0 -> 3"):
        train(RunConfig("bc", SMOKE_TASK, profile="smoke", seed=3, out=tmp_path / "run"), progress=False)


@pytest.mark.slow
def test_other_config_in_the_same_directory_is_refused(bench_cache, tmp_path):
    def stop(phase, step):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(RunConfig("bc", SMOKE_TASK, profile="smoke", out=tmp_path / "run"), progress=False, on_step=stop)
    with pytest.raises(BenchError, match="another configuration"):
        train(RunConfig("bc", SMOKE_TASK, profile="smoke", seed=1, out=tmp_path / "run"), progress=False)


def _straight_and_killed_at_25(tmp_path):
    """A smoke BC run trained straight through, and the same run killed at step 25 (its last
    checkpoint at step 20, the one before at 10)."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(RunConfig("bc", SMOKE_TASK, profile="smoke", out=straight), progress=False)

    def kill_at_25(phase, step):
        if step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(RunConfig("bc", SMOKE_TASK, profile="smoke", out=resumed), progress=False, on_step=kill_at_25)
    return straight, resumed


class _DivergingBC(FlowBC):
    """BC whose logged loss is NaN for the seeds whose first layer starts with a positive mean
    weight (a fixed property of each seed's initialisation; the learning rate is set tiny so
    it does not change), and finite for the others."""

    def update(self, batch, key):
        agent, metrics = super().update(batch, key)
        positive = jnp.mean(self.actor.mlp.layers[0].weight) > 0
        return agent, {**metrics, "actor/flow_loss": jnp.where(positive, jnp.nan, metrics["actor/flow_loss"])}


@pytest.mark.slow
def test_a_diverged_seed_is_a_result_and_the_others_go_on(bench_cache, tmp_path, monkeypatch):
    bc = methods.METHODS["bc"]
    monkeypatch.setitem(methods.METHODS, "bc", dataclasses.replace(bc, agent_cls=_DivergingBC))
    configs = [RunConfig("bc", SMOKE_TASK, profile="smoke", seed=s, out=tmp_path / f"seed{s}",
                         overrides=("learning_rate=1e-12",)) for s in range(4)]
    summaries = train_seeds(configs, progress=False)
    status = {s["seed"]: s["status"] for s in summaries}
    diverged = [seed for seed, st in status.items() if st == "diverged"]
    assert 0 < len(diverged) < 4, status  # this property splits seeds 0-3
    for summary in summaries:
        run = tmp_path / f"seed{summary['seed']}"
        evaluations = [int(r["step"]) for r in _rows(run / "evaluations.csv")]
        if summary["status"] == "diverged":
            assert summary["final_success"] == 0.0 and summary["success_by_phase"] == {"pretrain": 0.0}
            assert summary["diverged"]["phase"] == "pretrain" and summary["diverged"]["step"] == 5
            assert summary["diverged"]["metrics"] == ["actor/flow_loss"]
            assert evaluations == [] and not (run / "checkpoint" / "state.json").exists()
            assert summary["steps_reached"] == {"pretrain": 5}  # the step it reached, not the planned 30
        else:  # trained to the end beside the diverged seeds
            assert evaluations == [15, 30] and summary["steps"] == {"pretrain": 30}
    before = {s: (tmp_path / f"seed{s}" / "summary.json").read_bytes() for s in range(4)}
    assert train_seeds(configs, progress=False) == summaries  # a rerun returns them: nothing is retried
    assert {s: (tmp_path / f"seed{s}" / "summary.json").read_bytes() for s in range(4)} == before


@pytest.mark.slow
def test_schedule_flags_change_the_run_and_are_recorded(bench_cache, tmp_path):
    """--offline-steps, --eval-interval, --eval-episodes, --log-interval and --batch-size: a
    run of their schedule, recorded in config.json, in its own directory beside the default's."""
    schedule = dict(offline_steps=40, eval_every=20, eval_episodes=3, log_every=10, batch_size=8)
    config = RunConfig("fql", SMOKE_TASK, profile="smoke", **schedule)
    default_dir = RunConfig("fql", SMOKE_TASK, profile="smoke").run_dir()
    assert config.run_dir() != default_dir
    assert config.run_dir().name == ("seed0-offline_steps=40-eval_every=20-eval_episodes=3-log_every=10-"
                                     "batch_size=8")
    run = tmp_path / "run"
    summary = train(dataclasses.replace(config, out=run), progress=False)
    assert summary["steps"]["offline"] == 40
    recorded = json.loads((run / "config.json").read_text())
    assert {k: recorded["run"][k] for k in schedule} == schedule
    assert {k: recorded["profile"][k] for k in schedule} == schedule
    offline_evals = [r for r in _rows(run / "evaluations.csv") if r["phase"] == "offline"]
    assert [int(r["step"]) for r in offline_evals] == [20, 40] and all(r["num_episodes"] == "3" for r in offline_evals)
    offline_logs = [int(r["step"]) for r in _rows(run / "metrics.csv") if r["phase"] == "offline"]
    assert offline_logs == [10, 20, 30, 40]


def test_bad_schedule_values_are_refused_before_training(tmp_path):
    from bench.training.pipeline import Run

    with pytest.raises(BenchError, match="--eval-interval 0 is not allowed"):
        Run(RunConfig("fql", SMOKE_TASK, profile="smoke", eval_every=0, out=tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_corrupt_checkpoint_falls_back_to_the_previous_one(bench_cache, tmp_path, capsys):
    """Killed after its checkpoints at steps 10 and 20, the run's newest agent file is cut
    short: the resume refuses it (sha256), resumes from step 10 and ends exactly where an
    uninterrupted run ends."""
    straight, resumed = _straight_and_killed_at_25(tmp_path)
    state = json.loads((resumed / "checkpoint" / "state.json").read_text())
    assert state["step"] == 20 and state["previous"]["step"] == 10
    assert (resumed / "checkpoint" / state["previous"]["agent_file"]).exists()  # kept until the next is verified
    newest = resumed / "checkpoint" / state["agent_file"]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated on disk
    train(RunConfig("bc", SMOKE_TASK, profile="smoke", out=resumed), progress=False)
    err = capsys.readouterr().err
    assert "is corrupt" in err and "resuming from the previous one (pretrain step 10)" in err
    assert _agent_bytes(resumed) == _agent_bytes(straight)
    assert _rows(resumed / "evaluations.csv") == _rows(straight / "evaluations.csv")


@pytest.mark.slow
def test_a_corrupt_cached_bc_checkpoint_is_refused(bench_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("TRQAM_BENCH_BC_CACHE", str(tmp_path / "bc-cache"))
    train(RunConfig("fql", SMOKE_TASK, profile="smoke", out=tmp_path / "first"), progress=False)
    (cached,) = (tmp_path / "bc-cache").rglob("*.eqx")
    raw = bytearray(cached.read_bytes())
    raw[100:356] = bytes(b ^ 0xFF for b in raw[100:356])  # 256 bytes flipped
    cached.write_bytes(bytes(raw))
    with pytest.raises(BenchError, match=r"cached BC checkpoint .* is corrupt"):
        train(RunConfig("fql", SMOKE_TASK, profile="smoke", out=tmp_path / "second"), progress=False)
    assert not (tmp_path / "second" / "checkpoint").exists()


@pytest.mark.slow
def test_a_run_is_reused_only_when_its_whole_config_and_store_match(bench_cache, tmp_path, monkeypatch):
    """A change of any field of the resolved config (here the profile's offline steps, not a
    name field) or a run of another result store is never returned as the result: refused in
    one line, or, with --rerun-stale, moved aside and trained again."""
    from bench.config import profiles

    config = RunConfig("fql", SMOKE_TASK, profile="smoke", out=tmp_path / "run")
    first = train(config, progress=False)
    assert train(config, progress=False) == first  # the same config, this store: reused
    monkeypatch.setitem(profiles.PROFILES, "smoke", dataclasses.replace(profiles.PROFILES["smoke"], offline_steps=40))
    with pytest.raises(BenchError, match=r"another configuration \(profile.offline_steps: 30 -> 40; "
                                         r"phases.offline.steps: 30 -> 40\)"):
        train(config, progress=False)
    from bench.training.pipeline import RERUN_STALE

    second = train(config, progress=False, rerun=RERUN_STALE)
    assert second["steps"]["offline"] == 40
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert json.loads((aside / "summary.json").read_text()) == first  # the old run is kept

    environment = tmp_path / "run" / "environment.json"  # as if committed from another store
    record = json.loads(environment.read_text())
    environment.write_text(json.dumps({**record, "store_id": "another-store"}))
    with pytest.raises(BenchError, match="holds a run of another result store"):
        train(config, progress=False)
    assert train(config, progress=False, rerun=RERUN_STALE)["steps"]["offline"] == 40
    assert json.loads(environment.read_text())["store_id"] != "another-store"


@pytest.mark.slow
def test_a_sweep_waits_for_a_bc_producer_only_while_pretraining_is_still_to_do(bench_cache, tmp_path, monkeypatch):
    """`sweep.program_plan` with the driver's look (`sweep.pretrains`): QAM's program waits for
    FQL's, which pretrains the BC checkpoint they share, only while that checkpoint is not
    cached; a run whose checkpoint is past pretraining waits for nothing either."""
    from bench.training.sweep import pretrains, program_plan

    monkeypatch.setenv("TRQAM_BENCH_BC_CACHE", str(tmp_path / "bc-cache"))
    runs = [RunConfig(m, SMOKE_TASK, profile="smoke", out=tmp_path / m) for m in ("fql", "qam")]
    assert program_plan(runs, 1, pretrains).needs == {1: {0}}
    train(RunConfig("fql", SMOKE_TASK, profile="smoke", out=tmp_path / "fql"), progress=False)
    assert not any(map(pretrains, runs))
    assert program_plan(runs, 1, pretrains).needs == {0: set(), 1: set()}
    for cached in (tmp_path / "bc-cache").rglob("*.eqx"):
        cached.unlink()
    assert [pretrains(r) for r in runs] == [False, True]  # FQL's checkpoint is past pretraining
    resumed = program_plan(runs, 1, pretrains)  # QAM pretrains first, FQL waits for nothing
    assert [job[0].method for job in resumed.programs] == ["qam", "fql"] and resumed.needs == {1: set()}
    assert program_plan(runs, 1).needs == {1: {0}}  # printed commands: every fine-tuning run may pretrain


@pytest.mark.slow
def test_a_truncated_state_json_falls_back_to_the_newest_intact_agent_file(bench_cache, tmp_path, capsys):
    straight, resumed = _straight_and_killed_at_25(tmp_path)
    state = resumed / "checkpoint" / "state.json"
    state.write_text(state.read_text()[:20])  # truncated (a full disk)
    train(RunConfig("bc", SMOKE_TASK, profile="smoke", out=resumed), progress=False)
    assert "resuming from its newest intact agent file agent-pretrain-000000020.eqx" in capsys.readouterr().err
    assert _agent_bytes(resumed) == _agent_bytes(straight)
    assert _rows(resumed / "evaluations.csv") == _rows(straight / "evaluations.csv")


@pytest.mark.slow
def test_a_truncated_summary_is_a_damaged_run_never_returned(bench_cache, tmp_path):
    from bench.training.pipeline import RERUN_STALE

    config = RunConfig("bc", SMOKE_TASK, profile="smoke", out=tmp_path / "run")
    train(config, progress=False)
    summary = tmp_path / "run" / "summary.json"
    summary.write_text(summary.read_text()[:50])
    with pytest.raises(BenchError, match=r"holds a damaged run \(summary.json not valid JSON"):
        train(config, progress=False)
    assert train(config, progress=False, rerun=RERUN_STALE)["status"] == "finished"  # moved aside, trained again
    assert any(p.name.startswith("run.replaced-") for p in tmp_path.iterdir())


@pytest.mark.slow
def test_a_resumed_run_keeps_its_pretrain_source(bench_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("TRQAM_BENCH_BC_CACHE", str(tmp_path / "bc-cache"))

    def kill_in_fine_tuning(phase, step):
        if phase == "offline" and step == 20:
            raise KeyboardInterrupt

    config = RunConfig("fql", SMOKE_TASK, profile="smoke", out=tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False, on_step=kill_in_fine_tuning)
    assert train(config, progress=False)["pretrain_source"] == "trained in this run"
    other = train(RunConfig("qam", SMOKE_TASK, profile="smoke", out=tmp_path / "qam"), progress=False)
    assert other["pretrain_source"].startswith("cache: ")


@pytest.mark.slow
def test_two_processes_sharing_a_bc_checkpoint_pretrain_it_once(bench_cache, tmp_path):
    """The second waits on the cache entry's lock, then reuses what the first pretrained."""
    import os
    import subprocess
    import sys

    from bench.files import REPO

    env = {**os.environ, "TRQAM_BENCH_BC_CACHE": str(tmp_path / "bc-cache"), "PYTHONPATH": str(REPO)}
    processes = [subprocess.Popen([sys.executable, "-m", "bench", "train", "--method", method, "--task", SMOKE_TASK,
                                   "--profile", "smoke", "--out", str(tmp_path / method), "--no-progress"],
                                  cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for method in ("fql", "qam")]
    outputs = [p.communicate(timeout=900)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    sources = sorted(json.loads((tmp_path / m / "summary.json").read_text())["pretrain_source"] for m in ("fql", "qam"))
    assert sources[0].startswith("cache: ") and sources[1] == "trained in this run", sources
