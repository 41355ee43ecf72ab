"""What the benchmarks share: a synthetic dataset with cube-double's shapes, and any
method's agent at a profile's size."""

from __future__ import annotations

import jax
import numpy as np

from baselines.bc import FlowBC
from bench.config.methods import get_method
from bench.config.profiles import PROFILES
from bench.data.batches import TransitionData, sample_batch
from bench.tasks import resolve_task

OBS_DIM, ACT_DIM, CHUNK = 37, 5, 5  # cube-double: observation 37, action 5, h = 5
TASK = "cube-double-play-singletask-task1-v0"


def synthetic_data(size: int, act_dim: int = ACT_DIM) -> TransitionData:
    """``size`` random transitions in episodes of 1,000 steps."""
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


def make_agent(method: str, size: str, data: TransitionData, seed: int = 0, chunk_len: int = CHUNK):
    """``method``'s agent with the ``size`` profile's networks and cube-double's config."""
    key = jax.random.key(seed)
    profile, task = PROFILES[size], resolve_task(TASK)
    m = get_method(method)
    example = sample_batch(data, key, profile.batch_size, chunk_len, profile.discount)
    if m.pipeline == "bc":
        return FlowBC.create(example, m.make_config(profile, task), key)
    return m.agent_cls.create(example, m.make_config(profile, task), key)
