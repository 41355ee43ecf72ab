"""The online phase: replay buffer, journal, real-environment runs, kill and resume."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.config.methods import METHODS
from bench.config.profiles import get_profile
from bench.data.batches import TransitionData
from bench.data.replay import ReplayBuffer, TransitionJournal, add_transition, online_storage
from bench.errors import BenchError
from bench.tasks import resolve_task
from bench.training import pipeline
from bench.training.online import JOURNAL_NAME
from bench.training.pipeline import RunConfig, plan_phases, train

TASK = "cube-single-play-singletask-task1-v0"


# ---- the buffer -------------------------------------------------------------------------
def _data(n: int, first: int = 0, episode: int = 10, reward: float = 1.0) -> dict[str, np.ndarray]:
    """Columns whose observation and action are the row's global index; episodes of ``episode`` steps."""
    idx = np.arange(first, first + n, dtype=np.float32)
    return {"observations": idx[:, None], "actions": idx[:, None], "rewards": np.full(n, reward, np.float32),
            "masks": np.ones(n, np.float32), "terminals": ((idx + 1) % episode == 0).astype(np.float32),
            "next_observations": idx[:, None] + 0.5}


def _buffer(n_off: int, filled: int, capacity: int) -> ReplayBuffer:
    offline = TransitionData(**{k: jnp.asarray(v) for k, v in _data(n_off).items()})
    online = _data(filled, first=n_off, episode=10**9, reward=-1.0)  # one online episode, reward -1
    return ReplayBuffer.create(offline, online_storage(online, capacity), filled)


def test_uniform_sampling_covers_offline_and_online_rows_in_proportion():
    buffer = _buffer(n_off=300, filled=100, capacity=1000)
    batch = jax.jit(lambda b, k: b.sample(k, 20000, 1, 0.99))(buffer, jax.random.key(0))
    index = np.asarray(batch.observations[:, 0])
    assert index.min() >= 0 and index.max() <= 399  # never an unfilled online row
    assert abs(np.mean(index >= 300) - 100 / 400) < 0.015  # online share = its share of the rows
    counts = np.bincount(index.astype(int), minlength=400)
    assert counts.min() > 0  # every row reachable
    np.testing.assert_array_equal(np.asarray(batch.rewards)[index >= 300], -1.0)  # online rows from the online part


def test_balanced_sampling_takes_half_of_each_batch_from_each_part():
    buffer = _buffer(n_off=300, filled=100, capacity=1000)
    batch = buffer.sample(jax.random.key(1), 256, 5, 0.99, offline_fraction=0.5)
    index = np.asarray(batch.observations[:, 0])
    assert np.sum(index < 300) == 128 and np.sum(index >= 300) == 128
    assert index[index < 300].max() <= 295 and index[index >= 300].max() <= 395  # whole chunks inside each part


def test_growing_the_buffer_changes_no_shape():
    buffer = _buffer(n_off=50, filled=40, capacity=40)
    sample = jax.jit(lambda b, k: b.sample(k, 512, 1, 0.99))
    small = np.asarray(sample(buffer.with_size(10), jax.random.key(2)).observations[:, 0])
    large = np.asarray(sample(buffer, jax.random.key(2)).observations[:, 0])
    assert small.max() <= 59 and large.max() > 59
    assert sample._cache_size() == 1  # one compiled sampler for every size


def test_a_chunk_crossing_from_offline_into_online_is_cut_at_the_offline_episode_end():
    buffer = _buffer(n_off=20, filled=10, capacity=10)  # offline episodes end at rows 9 and 19
    from bench.data.batches import chunk_batch

    batch = chunk_batch(buffer, jnp.array([17, 21]), 5, 0.5)
    np.testing.assert_array_equal(np.asarray(batch.valid), [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    np.testing.assert_allclose(np.asarray(batch.actions), [[17, 18, 19, 20, 21], [21, 22, 23, 24, 25]])
    np.testing.assert_allclose(np.asarray(batch.rewards), [1 + 0.5 + 0.25, -(1 + 0.5 + 0.25 + 0.125 + 0.0625)])
    np.testing.assert_allclose(np.asarray(batch.next_observations[:, 0]), [21.5, 25.5])


def test_added_transitions_land_in_order_and_the_journal_reads_them_back(tmp_path):
    journal = TransitionJournal(tmp_path / "j.bin", obs_dim=1, action_dim=2)
    offline = TransitionData(observations=jnp.zeros((10, 1)), actions=jnp.zeros((10, 2)), rewards=jnp.zeros(10),
                             masks=jnp.ones(10), terminals=jnp.zeros(10), next_observations=jnp.zeros((10, 1)))
    buffer = ReplayBuffer.create(offline, online_storage(journal.transitions(journal.read()), 8), 0)
    rows = []
    for i in range(5):
        row = journal.record(np.full(1, i), np.array([0.5, 2.0]), -1.0, terminated=i == 2, truncated=i == 4,
                             next_observation=np.full(1, i + 1))
        journal.append(row)
        buffer = add_transition(buffer, journal.as_transition(row))
        rows.append(row)
    journal.close()
    assert int(buffer.online_size) == 5 and len(journal) == 5
    np.testing.assert_array_equal(TransitionJournal.open(journal.path).read(), np.stack(rows))
    online = buffer.online
    np.testing.assert_array_equal(np.asarray(online.observations[:5, 0]), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(np.asarray(online.masks[:5]), [1, 1, 0, 1, 1])  # 1 - terminated only
    np.testing.assert_array_equal(np.asarray(online.terminals[:5]), [0, 0, 1, 0, 1])  # any episode end
    assert 0.99 < float(online.actions[0, 1]) < 1.0  # stored like the offline data: clipped inside (-1, 1)
    np.testing.assert_array_equal(np.asarray(online.observations[5:]), 0.0)
    np.testing.assert_array_equal(np.asarray(offline.observations), 0.0)  # the offline part is never written
    transition = journal.as_transition(rows[0])
    buffer = add_transition(add_transition(buffer, transition), transition)  # only the buffer is donated
    np.testing.assert_array_equal(np.asarray(buffer.online.observations[5:7, 0]), [0, 0])


def test_journal_drops_a_partial_record_and_marks_an_episode_end(tmp_path):
    journal = TransitionJournal(tmp_path / "j.bin", obs_dim=2, action_dim=1)
    for i in range(3):
        journal.append(journal.record(np.full(2, i), np.zeros(1), 0.0, False, False, np.full(2, i + 1)))
    journal.close()
    with open(journal.path, "ab") as f:  # a kill in the middle of a write
        f.write(b"\x00" * 9)
    assert len(journal.read()) == 3 and journal.path.stat().st_size == 3 * 4 * journal.width
    journal.end_episode_at(2)
    columns = journal.transitions(journal.read())
    np.testing.assert_array_equal(columns["terminals"], [0, 0, 1])
    np.testing.assert_array_equal(columns["masks"], [1, 1, 1])  # interrupted, not terminated
    with pytest.raises(BenchError, match="another layout"):
        TransitionJournal(tmp_path / "j.bin", obs_dim=3, action_dim=1)


# ---- phases and configs ------------------------------------------------------------------
def test_online_phase_follows_offline_and_trqam_switches_to_its_online_budget():
    profile, task = get_profile("smoke"), resolve_task(TASK)
    run = RunConfig("trqam", TASK, profile="smoke", online_steps=40, overrides=("online_kl_budget=0.25",))
    phases = plan_phases(METHODS["trqam"], profile, task, run)
    assert [p.name for p in phases] == ["pretrain", "offline", "online"]
    assert phases[1].config.kl_budget == 1.0 and phases[2].config.kl_budget == 0.25
    assert phases[2].steps == 40 and phases[2].eval_every == profile.online_eval_every
    rlpd = plan_phases(METHODS["rlpd"], profile, task, RunConfig("rlpd", TASK, profile="smoke", online_steps=40))
    assert [p.name for p in rlpd] == ["online"]
    assert get_profile("paper").online_steps == 500_000 and get_profile("paper").online_warmup == 5_000
    with pytest.raises(BenchError, match="online-only: pass --online-steps"):
        plan_phases(METHODS["rlpd"], profile, task, RunConfig("rlpd", TASK, profile="smoke"))
    with pytest.raises(BenchError, match="'bc' has no online phase"):
        plan_phases(METHODS["bc"], profile, task, RunConfig("bc", TASK, profile="smoke", online_steps=5))


def test_non_default_online_steps_get_their_own_run_directory():
    offline = RunConfig("qam", TASK, profile="quick").run_dir()
    online = RunConfig("qam", TASK, profile="quick", online_steps=10_000).run_dir()
    assert offline.name == "seed0" and online.name == "seed0-online10000"
    assert RunConfig("qam", TASK, profile="paper", online_steps=500_000).run_dir().name == "seed0"


# ---- real runs ----------------------------------------------------------------------------
def _journal(run) -> TransitionJournal:
    return TransitionJournal.open(run / "checkpoint" / JOURNAL_NAME)


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["trqam", "qam", "fql", "rlpd"])
def test_offline_to_online_smoke_run(bench_cache, tmp_path, method):
    """`python -m bench train --online-steps 40` on a real task: the online phase acts, learns, evaluates."""
    run = tmp_path / method
    result = subprocess.run(
        [sys.executable, "-m", "bench", "train", "--method", method, "--task", TASK, "--profile", "smoke",
         "--online-steps", "40", "--out", str(run), "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    online_evals = [r for r in _csv(run / "evaluations.csv") if r["phase"] == "online"]
    assert [int(r["step"]) for r in online_evals] == [20, 40] and all(r["num_episodes"] == "2" for r in online_evals)
    assert summary["final_success"] == float(online_evals[-1]["success_rate"])
    online = summary["online"]
    assert online["transitions"] == 40 and online["updates"] == 40 - 10 + 1
    # Updates start at the warm-up step; every update is logged with the buffer's size.
    rows = [r for r in _csv(run / "metrics.csv") if r["phase"] == "online"]
    assert [int(r["step"]) for r in rows] == [10, 15, 20, 25, 30, 35, 40]
    assert [int(r["online/transitions"]) for r in rows] == [10, 15, 20, 25, 30, 35, 40]
    assert all(np.isfinite(float(r["critic/loss"])) for r in rows)
    if method == "rlpd":
        assert summary["steps"] == {"online": 40} and online["sampling"] == "0.5 offline / 0.5 online"
        assert online["random_warmup_actions"]
    else:
        assert list(summary["steps"]) == ["pretrain", "offline", "online"]
        assert "offline" in summary["success_by_phase"] and online["sampling"].startswith("uniform")
    assert len(_journal(run)) == 40


class _GoalAtStep(gymnasium.Wrapper):
    """Ends every episode as a success (terminated, reward 0) after `at` steps."""

    def __init__(self, env, at: int):
        super().__init__(env)
        self.at, self.steps = at, 0

    def reset(self, **kwargs):
        self.steps = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps == self.at:
            return obs, 0.0, True, False, info
        return obs, reward, terminated, truncated, info


@pytest.mark.slow
def test_stored_masks_come_from_terminated_and_time_limits_keep_them(bench_cache, tmp_path, monkeypatch):
    real_make_env = pipeline.Run._make_env
    monkeypatch.setattr(pipeline.Run, "_make_env", lambda self: _GoalAtStep(real_make_env(self), at=7))
    train(RunConfig("rlpd", TASK, profile="smoke", online_steps=30, out=tmp_path / "goal"), progress=False)
    journal = _journal(tmp_path / "goal")
    columns = journal.transitions(journal.read())
    ends = np.flatnonzero(columns["terminals"]) + 1
    np.testing.assert_array_equal(ends, [7, 14, 21, 28])  # episodes of 7 steps, then a fresh reset
    np.testing.assert_array_equal(np.flatnonzero(columns["masks"] == 0) + 1, ends)
    episodes = _csv(tmp_path / "goal" / "episodes.csv")
    assert [e["end"] for e in episodes] == ["goal"] * 4 + ["phase end"]
    assert json.loads((tmp_path / "goal" / "summary.json").read_text())["online"]["train_success_rate"] == 1.0

    monkeypatch.setattr(pipeline.Run, "_make_env", real_make_env)  # cube-single's time limit: 200 steps
    train(RunConfig("rlpd", TASK, profile="smoke", online_steps=205, out=tmp_path / "limit"), progress=False)
    journal = _journal(tmp_path / "limit")
    columns = journal.transitions(journal.read())
    ended = np.flatnonzero(columns["terminals"])
    assert 199 in ended  # the 200-step time limit ends the episode...
    assert columns["masks"][199] == 1.0 and columns["truncated"][199] == 1.0  # ...without a terminal mask
    assert [e["end"] for e in _csv(tmp_path / "limit" / "episodes.csv")][0] in ("time limit", "goal")


@pytest.mark.slow
def test_killed_online_run_resumes_with_no_transition_lost(bench_cache, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(RunConfig("fql", TASK, profile="smoke", online_steps=40, out=straight), progress=False)

    def kill_at_online_25(phase, step):  # the last checkpoint is at online step 20
        if phase == "online" and step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(RunConfig("fql", TASK, profile="smoke", online_steps=40, out=resumed), progress=False,
              on_step=kill_at_online_25)
    state = json.loads((resumed / "checkpoint" / "state.json").read_text())
    assert (state["phase"], state["step"]) == ("online", 20)
    killed = _journal(resumed).read()
    assert len(killed) == 25  # every collected transition is on disk, 5 of them after the checkpoint
    killed_row_25 = [r for r in _csv(resumed / "metrics.csv") if r["phase"] == "online" and r["step"] == "25"]

    train(RunConfig("fql", TASK, profile="smoke", online_steps=40, out=resumed), progress=False)
    final = _journal(resumed).read()
    assert len(final) == 40
    terminal = _journal(resumed).column_slices["terminal"].start
    np.testing.assert_array_equal(np.delete(final[:25], terminal, axis=1), np.delete(killed, terminal, axis=1))
    assert final[24, terminal] == 1.0  # the interrupted episode ends at its last collected transition
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["online"]["transitions"] == 40 and summary["online"]["interrupted_episodes"] == 1
    assert [e["end"] for e in _csv(resumed / "episodes.csv")] == ["interrupted", "phase end"]

    # Determinism: up to the kill, the resumed run is the uninterrupted one, transitions and updates alike
    # (the updates after the checkpoint were redone on the journal's transitions).
    reference = _journal(straight).read()
    np.testing.assert_array_equal(np.delete(final[:25], terminal, axis=1), np.delete(reference[:25], terminal, axis=1))
    timing = {"steps_per_s", "wall_s"}

    def strip(rows):
        return [{k: v for k, v in r.items() if k not in timing and v != ""} for r in rows]  # "": other phases' columns

    row_25 = [r for r in _csv(resumed / "metrics.csv") if r["phase"] == "online" and r["step"] == "25"]
    straight_25 = [r for r in _csv(straight / "metrics.csv") if r["phase"] == "online" and r["step"] == "25"]
    assert strip(row_25) == strip(killed_row_25) == strip(straight_25)


@pytest.mark.slow
def test_seeds_online_side_by_side_match_separate_runs_and_resume_from_journals_of_different_lengths(
        bench_cache, tmp_path):
    """Two seeds through the online phase in one program (each with its own environment,
    journal and buffer) give each seed what it gets alone. Two seeds killed at different
    steps after the same checkpoint (journals of 25 and 23 transitions) resume together:
    each replays its own journal, then steps its environment again."""
    def config(seed, where):
        return RunConfig("fql", TASK, profile="smoke", seed=seed, online_steps=40, out=tmp_path / where / str(seed))

    alone = [train(config(s, "alone"), progress=False) for s in (0, 1)]
    together = pipeline.train_seeds([config(0, "together"), config(1, "together")], progress=False)
    assert [s["seeds_in_program"] for s in together] == [[0, 1], [0, 1]]
    for seed in (0, 1):
        assert together[seed]["online"]["transitions"] == alone[seed]["online"]["transitions"] == 40
        np.testing.assert_allclose(_journal(tmp_path / "together" / str(seed)).read(),
                                   _journal(tmp_path / "alone" / str(seed)).read(), atol=1e-4)
        rows = [r for r in _csv(tmp_path / "together" / str(seed) / "metrics.csv") if r["phase"] == "online"]
        reference = [r for r in _csv(tmp_path / "alone" / str(seed) / "metrics.csv") if r["phase"] == "online"]
        assert [r["step"] for r in rows] == [r["step"] for r in reference]
        for a, b in zip(rows, reference, strict=True):
            assert float(a["critic/loss"]) == pytest.approx(float(b["critic/loss"]), rel=1e-3, abs=1e-4)
            assert a["online/episodes"] == b["online/episodes"]
    assert not np.allclose(_journal(tmp_path / "together" / "0").read(), _journal(tmp_path / "together" / "1").read())

    for seed, kill in ((0, 25), (1, 23)):
        def stop(phase, step, kill=kill):
            if phase == "online" and step == kill:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            train(config(seed, "resumed"), progress=False, on_step=stop)
    assert [len(_journal(tmp_path / "resumed" / str(s))) for s in (0, 1)] == [25, 23]
    resumed = pipeline.train_seeds([config(0, "resumed"), config(1, "resumed")], progress=False)
    assert [s["seeds_in_program"] for s in resumed] == [[0, 1], [0, 1]]  # one group: both checkpoints at 20
    terminal = _journal(tmp_path / "alone" / "0").column_slices["terminal"].start
    for seed, kill in ((0, 25), (1, 23)):
        run = tmp_path / "resumed" / str(seed)
        final, reference = _journal(run).read(), _journal(tmp_path / "alone" / str(seed)).read()
        assert len(final) == 40 and resumed[seed]["online"]["interrupted_episodes"] == 1
        np.testing.assert_array_equal(np.delete(final[:kill], terminal, axis=1),
                                      np.delete(reference[:kill], terminal, axis=1))
        assert final[kill - 1, terminal] == 1.0  # its interrupted episode ends at its last collected transition
    # Seed 0's updates 21..25 were redone on its journal's transitions: as in the uninterrupted run.
    row_25, straight_25 = ([r for r in _csv(run / "metrics.csv") if r["phase"] == "online" and r["step"] == "25"]
                           for run in (tmp_path / "resumed" / "0", tmp_path / "alone" / "0"))
    assert float(row_25[0]["critic/loss"]) == pytest.approx(float(straight_25[0]["critic/loss"]), rel=1e-3)
    assert row_25[0]["online/episodes"] == straight_25[0]["online/episodes"]


# ---- learning curves ----------------------------------------------------------------------
def _fake_run(path, method, offline, online, evals):
    path.mkdir(parents=True)
    steps = ({"pretrain": 10, "offline": offline} if offline else {}) | {"online": online}
    by_phase = {}
    for phase, _, success in evals:
        by_phase[phase] = success
    (path / "summary.json").write_text(json.dumps({
        "method": method, "task": TASK, "seed": 0, "profile": "quick", "steps": steps,
        "success_by_phase": by_phase, "data": {"kind": "regenerated"},
        "online": {"episodes": 3, "train_success_rate": 1 / 3}}))
    lines = ["phase,step,success_rate"] + [f"{p},{s},{v}" for p, s, v in evals]
    (path / "evaluations.csv").write_text("\n".join(lines) + "\n")


def test_curves_count_online_steps_on_from_the_offline_phase(tmp_path):
    from bench.reporting.curves import write

    _fake_run(tmp_path / "qam", "qam", 100, 50, [("offline", 100, 0.1), ("online", 25, 0.3), ("online", 50, 0.5)])
    _fake_run(tmp_path / "rlpd", "rlpd", 0, 50, [("online", 50, 0.2)])
    report, figures = write([tmp_path / "qam", tmp_path / "rlpd"], tmp_path / "out" / "curves")
    assert all(f.stat().st_size > 1000 for f in figures) and {f.suffix for f in figures} == {".png", ".pdf"}
    text = report.read_text()
    assert "| qam | 0 | 0.10 | 0.30 | 0.50 |" in text  # steps 100, 125, 150
    assert "| rlpd | 0 |  |  | 0.20 |" in text  # online-only: drawn over the others' online phase
    assert "| qam | " + TASK + " | 0 | quick | 100 | 0.10 | 50 | 0.50 | 3 (0.33) |" in text
    with pytest.raises(BenchError, match="not a finished run"):
        write([tmp_path / "missing"], tmp_path / "out" / "x")


@pytest.mark.slow
def test_rlpd_runs_the_smoke_online_job_past_where_it_stopped(bench_cache, tmp_path, monkeypatch):
    """The job that once stopped with "grad_norm became non-finite at online step 740":
    RLPD on puzzle-3x3 task 4, smoke profile, on a tiny regenerated set. The test runs its
    first 1000 online steps (the whole 2000-step job takes 9 minutes here and was run to the
    end by hand): every logged metric stays finite and the run finishes (not diverged).
    It evaluates every 250 steps instead of the profile's 20: evaluation draws no key of the
    training stream (each step's keys are ``fold_in(key, t)``), so the updates are the job's."""
    import dataclasses
    import math

    from bench.config import profiles

    monkeypatch.setitem(profiles.PROFILES, "smoke", dataclasses.replace(profiles.PROFILES["smoke"],
                                                                        online_eval_every=250))
    summary = train(RunConfig("rlpd", "puzzle-3x3-play-singletask-task4-v0", profile="smoke", online_steps=1000,
                              out=tmp_path / "run"), progress=False)
    assert summary["status"] == "finished" and summary["steps"] == {"online": 1000}
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert int(rows[-1]["step"]) == 1000
    assert [int(r["step"]) for r in _csv(tmp_path / "run" / "evaluations.csv")] == [250, 500, 750, 1000]
    assert all(math.isfinite(float(v)) for row in rows for k, v in row.items() if k not in ("phase",) and v != "")
