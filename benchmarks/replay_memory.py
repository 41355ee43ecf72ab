"""Peak memory of the online phase's replay buffer at paper size, measured in a fresh process.

    python -m benchmarks.replay_memory --obs-dim 83 --action-dim 5 --offline 1000000 --online 500000

Builds the buffer the way a paper run does: the offline set (or, for the 10M/100M sets,
one 1M shard: shards rotate, so only one is resident) loaded from numpy arrays into
`TransitionData`, the online part preallocated at its full capacity, then filled for a
while and sampled. Prints JSON: the buffer's array bytes (exact) and the process's peak
and final resident memory (``getrusage``; includes the numpy staging copy of the offline
set that loading also makes, and the JAX runtime).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np


def _rss_gib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def measure(obs_dim: int, action_dim: int, offline: int, online: int, chunk_len: int = 5) -> dict:
    from bench.data.batches import TransitionData
    from bench.data.replay import ReplayBuffer, Transition, add_transition, online_storage

    baseline = _rss_gib()
    rng = np.random.default_rng(0)
    dataset = {  # filled, not zeros: untouched zero pages would not count as resident
        "observations": rng.standard_normal((offline, obs_dim), np.float32),
        "actions": rng.uniform(-1, 1, (offline, action_dim)).astype(np.float32),
        "rewards": -np.ones(offline, np.float32), "masks": np.ones(offline, np.float32),
        "terminals": (np.arange(offline) % 1000 == 999).astype(np.float32),
        "next_observations": rng.standard_normal((offline, obs_dim), np.float32),
    }
    offline_data = TransitionData.from_ogbench(dataset, sparse_reward=True)
    del dataset
    empty = {"observations": np.zeros((0, obs_dim)), "actions": np.zeros((0, action_dim)), "rewards": np.zeros(0),
             "masks": np.zeros(0), "terminals": np.zeros(0), "next_observations": np.zeros((0, obs_dim))}
    buffer = ReplayBuffer.create(offline_data, online_storage(empty, online), 0)
    row = Transition(observation=jnp.ones(obs_dim), action=jnp.zeros(action_dim), reward=jnp.asarray(-1.0),
                     mask=jnp.asarray(1.0), terminal=jnp.asarray(0.0), next_observation=jnp.ones(obs_dim))
    buffer = add_transition(buffer, row)
    jax.block_until_ready(buffer.online_size)
    adds = 2000
    start = time.perf_counter()
    for _ in range(adds):
        buffer = add_transition(buffer, row)
    jax.block_until_ready(buffer.online.observations)
    add_us = (time.perf_counter() - start) / adds * 1e6
    sample = jax.jit(lambda b, k: b.sample(k, 256, chunk_len, 0.995))
    jax.block_until_ready(sample(buffer.with_size(online), jax.random.key(0)).observations)
    arrays = jax.tree.leaves(buffer)
    return {
        "obs_dim": obs_dim, "action_dim": action_dim, "offline_rows": offline, "online_capacity": online,
        "buffer_gib": round(sum(a.nbytes for a in arrays) / 2**30, 3),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        "rss_before_gib": round(baseline, 3),
        "rss_after_gib": round(_rss_gib(), 3),
        "add_transition_us": round(add_us, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--obs-dim", type=int, required=True)
    parser.add_argument("--action-dim", type=int, required=True)
    parser.add_argument("--offline", type=int, default=1_000_000)
    parser.add_argument("--online", type=int, default=500_000)
    args = parser.parse_args()
    print(json.dumps(measure(args.obs_dim, args.action_dim, args.offline, args.online)))
