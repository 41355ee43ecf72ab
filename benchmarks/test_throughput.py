"""Throughput of the foundation: dataset sampling, evaluation, BC updates.

Run with `nox -s bench`. Each benchmark records in `extra_info` how many items
(batches, environment steps, updates) one call processes, so the summary reports rates.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines.bc import FlowBC, FlowBCConfig
from bench.batches import TransitionData, sample_batch
from bench.evaluation import Evaluator
from bench.methods import METHODS
from bench.profiles import PROFILES

OBS_DIM, ACT_DIM, CHUNK = 37, 5, 5  # cube-double: observation 37, action 5, h = 5
UPDATES_PER_CALL = 20


def _synthetic_data(size: int, act_dim: int = ACT_DIM) -> TransitionData:
    rng = np.random.default_rng(0)
    terminals = np.zeros(size, np.float32)
    terminals[999::1000] = 1.0
    return TransitionData.from_ogbench(
        {
            "observations": rng.standard_normal((size, OBS_DIM), np.float32),
            "next_observations": rng.standard_normal((size, OBS_DIM), np.float32),
            "actions": rng.uniform(-1, 1, (size, act_dim)).astype(np.float32),
            "rewards": -rng.integers(0, 3, size).astype(np.float32),
            "masks": np.ones(size, np.float32),
            "terminals": terminals,
        },
        sparse_reward=False,
    )


@pytest.fixture(scope="module")
def data_1m() -> TransitionData:
    return _synthetic_data(1_000_000)


@pytest.mark.parametrize("batch_size", [256])
def test_sampling_batches(benchmark, data_1m, batch_size):
    """Chunk batches (h = 5) drawn from a 1M-transition dataset, 100 per call."""
    calls = 100

    @eqx.filter_jit
    def draw(data, key):
        def body(i, acc):
            batch = sample_batch(data, jax.random.fold_in(key, i), batch_size, CHUNK, 0.99)
            return acc + batch.rewards.sum()
        return jax.lax.fori_loop(0, calls, body, 0.0)

    draw(data_1m, jax.random.key(0)).block_until_ready()
    benchmark.extra_info.update(unit="batches", items_per_call=calls, batch_size=batch_size, dataset_size=1_000_000)
    benchmark(lambda: draw(data_1m, jax.random.key(1)).block_until_ready())


def _updates(data: TransitionData, batch_size: int, chunk_len: int, count: int):
    """``run(agent, key)``: ``count`` sampled-batch updates in one `lax.scan`."""

    def run(agent, key):
        def body(agent, k):
            batch_key, update_key = jax.random.split(k)
            agent, metrics = agent.update(sample_batch(data, batch_key, batch_size, chunk_len, 0.99), update_key)
            return agent, metrics
        return jax.lax.scan(body, agent, jax.random.split(key, count))

    return run


def _bc_agent(profile: str, data: TransitionData, chunk_len: int = CHUNK) -> FlowBC:
    p = PROFILES[profile]
    config = FlowBCConfig(hidden_sizes=p.hidden_sizes, learning_rate=p.learning_rate, flow_steps=p.flow_steps)
    example = sample_batch(data, jax.random.key(0), p.batch_size, chunk_len, 0.99)
    return FlowBC.create(example, config, jax.random.key(0))


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_bc_updates(benchmark, profile):
    """BC flow-matching updates (sampling included) at the profile's network and batch size."""
    data = _synthetic_data(100_000)
    agent = _bc_agent(profile, data)
    batch_size = PROFILES[profile].batch_size

    run = eqx.filter_jit(_updates(data, batch_size, CHUNK, UPDATES_PER_CALL))

    jax.block_until_ready(run(agent, jax.random.key(1)))
    benchmark.extra_info.update(unit="updates", items_per_call=UPDATES_PER_CALL, profile=profile,
                                hidden_sizes=list(PROFILES[profile].hidden_sizes), batch_size=batch_size)
    benchmark.pedantic(lambda: jax.block_until_ready(run(agent, jax.random.key(2))), rounds=5, iterations=1)


@pytest.mark.parametrize("chunk_len", [5, 1], ids=["h5", "h1"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "per-episode"])
def test_evaluation(benchmark, batched, chunk_len):
    """Environment steps/s on cube-double task1, 10 parallel episodes, paper-size BC policy.

    h = 5 is the protocol for this domain; h = 1 (the maze domains' setting) queries the
    policy every step and shows what batching the policy calls saves.
    """
    task = "cube-double-play-singletask-task1-v0"
    agent = _bc_agent("paper", _synthetic_data(10_000), chunk_len)
    sample = eqx.filter_jit(lambda agent, obs, key: agent.sample_actions(obs, key))
    evaluator = Evaluator(task, num_envs=10)
    policy = lambda obs, key: sample(agent, jnp.asarray(obs), key)  # noqa: E731
    evaluator.evaluate(policy, num_episodes=10, seed=0, batched=batched, chunk_len=chunk_len)  # compile
    results = []

    def run():
        results.append(evaluator.evaluate(policy, num_episodes=10, seed=1, batched=batched, chunk_len=chunk_len))

    benchmark.pedantic(run, rounds=2, iterations=1)
    r = results[-1]
    benchmark.extra_info.update(unit="env steps", items_per_call=r.env_steps, batched=batched, chunk_len=chunk_len,
                                policy_share=round(r.policy_seconds / (r.policy_seconds + r.env_seconds), 3))
    evaluator.close()


def _fine_tune_agent(method: str, profile: str, data: TransitionData):
    from bench.methods import get_method
    from bench.profiles import PROFILES
    from bench.tasks import resolve_task

    p, task = PROFILES[profile], resolve_task("cube-double-play-singletask-task1-v0")
    m = get_method(method)
    example = sample_batch(data, jax.random.key(0), p.batch_size, CHUNK, p.discount)
    return m.agent_cls.create(example, m.make_config(p, task), jax.random.key(0)), p.batch_size


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan")))


@pytest.mark.parametrize("profile", ["quick", "paper"])
@pytest.mark.parametrize("method", sorted(set(METHODS) - {"bc"}))  # BC: test_bc_updates
def test_method_updates(benchmark, method, profile):
    """One full update of each method (critic, actor and everything the method adds; batch
    sampling included), with a lower bound on its FLOPs from XLA's cost analysis."""
    data = _synthetic_data(100_000)
    agent, batch_size = _fine_tune_agent(method, profile, data)
    updates = 5 if profile == "quick" else 2  # per timed call; 18 methods x 2 sizes compile, keep calls short

    run = _updates(data, batch_size, CHUNK, updates)
    params, static = eqx.partition(agent, eqx.is_array)
    compiled = jax.jit(lambda p, k: run(eqx.combine(p, static), k)).lower(params, jax.random.key(1)).compile()
    # XLA's cost analysis counts a loop body once, whatever its trip count: the outer scan over
    # updates gives one update, and each inner loop (Euler steps, SDE rollouts) is counted once
    # too, so this is a lower bound on the FLOPs of one update.
    flops_per_update = _flops(compiled)
    jax.block_until_ready(compiled(params, jax.random.key(1)))
    benchmark.extra_info.update(unit="updates", items_per_call=updates, method=method, profile=profile,
                                hidden_sizes=list(PROFILES[profile].hidden_sizes),
                                num_critics=PROFILES[profile].num_critics, batch_size=batch_size,
                                gflops_per_update_lb=round(flops_per_update / 1e9, 2))
    benchmark.pedantic(lambda: jax.block_until_ready(compiled(params, jax.random.key(2))), rounds=3, iterations=1)
