"""The compiled training step (`bench.training.compiled`): K updates per call, S seeds per program,
the same runs as one seed at a time, and no recompilation after warm-up."""

from __future__ import annotations

import collections
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines.bc import FlowBC, FlowBCConfig
from bench.data.batches import TransitionData, sample_batch
from bench.errors import BenchError
from bench.training import compiled
from bench.training.pipeline import RunConfig, train, train_seeds

SMOKE_TASK = "cube-single-play-singletask-task1-v0"


def _data(size: int = 2000) -> TransitionData:
    rng = np.random.default_rng(0)
    terminals = np.zeros(size, np.float32)
    terminals[99::100] = 1.0
    return TransitionData.from_ogbench({
        "observations": rng.standard_normal((size, 6), np.float32),
        "next_observations": rng.standard_normal((size, 6), np.float32),
        "actions": rng.uniform(-1, 1, (size, 2)).astype(np.float32),
        "rewards": -rng.integers(0, 2, size).astype(np.float32),
        "masks": np.ones(size, np.float32),
        "terminals": terminals,
    }, sparse_reward=False)


def _leaves(agent) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(agent, eqx.is_array))]


def test_stack_and_unstack_are_inverse():
    data = _data()
    example = sample_batch(data, jax.random.key(0), 8, 3, 0.99)
    agents = [FlowBC.create(example, FlowBCConfig(hidden_sizes=(16,)), jax.random.key(s)) for s in range(3)]
    stacked = compiled.stack(agents)
    assert {x.shape[0] for x in jax.tree.leaves(eqx.filter(stacked, eqx.is_array))} == {3}
    for i, agent in enumerate(agents):
        for a, b in zip(_leaves(compiled.unstack(stacked, i)), _leaves(agent), strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed_axis", ["vmap", "map"])
def test_scanned_vectorised_updates_equal_one_update_per_call(seed_axis):
    """3 seeds x 7 updates in one call give each seed the updates of a plain loop (same
    batches from fold_in(step_key, step), same update keys), whichever way the program walks
    the seeds."""
    data = _data()
    batch_size, chunk_len, discount = 16, 3, 0.99
    example = sample_batch(data, jax.random.key(0), batch_size, chunk_len, discount)
    config = FlowBCConfig(hidden_sizes=(32, 32), flow_steps=4)
    agents = [FlowBC.create(example, config, jax.random.key(s)) for s in range(3)]
    step_keys = jax.random.split(jax.random.key(7), 3)

    stacked, metrics = compiled.train_steps(compiled.stack(agents), data, step_keys, jnp.asarray(4), 7,
                                            batch_size, chunk_len, discount, seed_axis)

    update = eqx.filter_jit(lambda agent, batch, key: agent.update(batch, key))
    for seed, agent in enumerate(agents):
        for step in range(4, 11):
            batch_key, update_key = jax.random.split(jax.random.fold_in(step_keys[seed], step))
            agent, last = update(agent, sample_batch(data, batch_key, batch_size, chunk_len, discount), update_key)
        for a, b in zip(_leaves(compiled.unstack(stacked, seed)), _leaves(agent), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(metrics["actor/flow_loss"][seed], last["actor/flow_loss"], rtol=1e-4)
    assert not np.allclose(metrics["actor/flow_loss"][0], metrics["actor/flow_loss"][1])  # seeds differ


def test_unknown_seed_axis_is_refused():
    with pytest.raises(BenchError, match="unknown seed axis 'pmap'.*auto, vmap, map"):
        compiled.resolve_seed_axis("pmap")


def _csv(path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _numeric(rows, skip=("steps_per_s", "wall_s", "policy_seconds", "env_seconds", "wall_seconds")):
    return [{k: float(v) for k, v in row.items() if k not in skip and k != "phase"} for row in rows]


@pytest.mark.slow
def test_seeds_trained_together_match_separate_runs(bench_cache, tmp_path):
    def config(seed, where):
        return RunConfig("trqam", SMOKE_TASK, profile="smoke", seed=seed, init="scratch", out=tmp_path / where / str(seed))

    together = train_seeds([config(0, "together"), config(1, "together")], progress=False)
    alone = train(config(1, "alone"), progress=False)
    assert [s["seed"] for s in together] == [0, 1]
    assert together[1]["seeds_in_program"] == [0, 1] and alone["seeds_in_program"] == [1]
    assert together[1]["seed_axis"] == compiled.resolve_seed_axis("auto") and alone["seed_axis"] is None
    grouped_rows = _numeric(_csv(tmp_path / "together" / "1" / "metrics.csv"))
    alone_rows = _numeric(_csv(tmp_path / "alone" / "1" / "metrics.csv"))
    assert [r["step"] for r in grouped_rows] == [r["step"] for r in alone_rows] == [5, 10, 15, 20, 25, 30]
    for a, b in zip(grouped_rows, alone_rows, strict=True):
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-4), key
    seed0 = _numeric(_csv(tmp_path / "together" / "0" / "metrics.csv"))
    assert seed0[0]["critic/loss"] != grouped_rows[0]["critic/loss"]  # two different seeds, not one twice
    evaluations = [_csv(tmp_path / w / "1" / "evaluations.csv") for w in ("together", "alone")]
    assert [r["step"] for r in evaluations[0]] == [r["step"] for r in evaluations[1]] == ["15", "30"]


@pytest.mark.slow
def test_a_group_continues_each_seed_where_it_stands(bench_cache, tmp_path):
    """Seed 0 finished, seed 1 killed at step 25 (checkpoint at 20), seed 2 new: one call
    keeps seed 0 as it is and brings the other two to the end."""
    def config(seed):
        return RunConfig("bc", SMOKE_TASK, profile="smoke", seed=seed, out=tmp_path / f"seed{seed}")

    train(config(0), progress=False)
    finished = (tmp_path / "seed0" / "summary.json").read_bytes()

    def kill_at_25(phase, step):
        if step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config(1), progress=False, on_step=kill_at_25)
    summaries = train_seeds([config(0), config(1), config(2)], progress=False)
    assert [s["seed"] for s in summaries] == [0, 1, 2]
    assert (tmp_path / "seed0" / "summary.json").read_bytes() == finished
    assert summaries[1]["seeds_in_program"] == [1] and summaries[2]["seeds_in_program"] == [2]
    for seed in (1, 2):
        assert [r["step"] for r in _csv(tmp_path / f"seed{seed}" / "metrics.csv")] == ["5", "10", "15", "20", "25", "30"]
        assert json.loads((tmp_path / f"seed{seed}" / "summary.json").read_text())["seed"] == seed


@pytest.mark.slow
def test_training_does_not_recompile_after_warm_up_or_between_phases(bench_cache, tmp_path):
    """TRQAM offline (30 steps) then online (20 steps, updates from step 10). Each program of
    the loop compiles once; no program compiles twice for the same arguments (the switch to
    the online phase reuses the offline phase's acting, validation and unstacking programs);
    nothing at all compiles after the offline phase's first evaluation or the first online update."""
    jax.clear_caches()  # programs compiled by earlier tests in this process would not show
    compiles_at: list[tuple[str, int, int]] = []
    with compiled.CompileLog() as log:
        train(RunConfig("trqam", SMOKE_TASK, profile="smoke", init="scratch", online_steps=20, out=tmp_path / "run"),
              progress=False, on_step=lambda phase, step: compiles_at.append((phase, step, len(log.names))))
    counts = collections.Counter(log.names)
    once = ("train_steps", "validation_metrics", "_take", "online_update", "_write", "sample_actions",
            "sample_seed_actions")  # sample_actions: evaluation; sample_seed_actions: online acting
    for program in once:
        assert log.count(program) == 1, (program, counts)
    assert log.repeated(once) == [], counts
    total = {(phase, step): n for phase, step, n in compiles_at}
    assert total[("offline", 15)] == total[("offline", 30)], compiles_at
    assert total[("online", 10)] == total[("online", 20)] == len(log.names), compiles_at
