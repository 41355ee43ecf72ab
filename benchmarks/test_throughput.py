"""Throughput of the foundation: dataset sampling and evaluation (updates: test_speed.py).

Run with `nox -s bench`. Each benchmark records in `extra_info` how many items
(batches, environment steps, updates) one call processes, so the summary reports rates.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

from bench.data.batches import TransitionData, sample_batch
from bench.training.evaluation import Evaluator
from benchmarks.common import CHUNK, make_agent, synthetic_data


@pytest.fixture(scope="module")
def data_1m() -> TransitionData:
    return synthetic_data(1_000_000)


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


@pytest.mark.parametrize("chunk_len", [5, 1], ids=["h5", "h1"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "per-episode"])
def test_evaluation(benchmark, batched, chunk_len):
    """Environment steps/s on cube-double task1, 10 parallel episodes, paper-size BC policy.

    h = 5 is the protocol for this domain; h = 1 (the maze domains' setting) queries the
    policy every step and shows what batching the policy calls saves.
    """
    task = "cube-double-play-singletask-task1-v0"
    agent = make_agent("bc", "paper", synthetic_data(10_000), chunk_len=chunk_len)
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
