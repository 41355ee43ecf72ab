"""Action-chunk batches from a transition dataset, sampled inside JAX.

The dataset lives on the device as `TransitionData`; `sample_batch` draws uniform start
indices from a key and gathers chunks, so sampling fuses with the update under one jit.
Semantics follow the reference implementations (docs/ALGORITHMS.md section 1):

* ``valid[i] = 0`` when an episode ends (``terminals``) at a step before i of the chunk;
* ``rewards = sum_i gamma^i r_{t+i} valid_i``;
* ``masks = min_i m_{t+i}`` over the valid steps;
* ``next_observations`` is the observation after the chunk's last step (t+h).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from trqam.agent import Batch

ACTION_CLIP = 1.0 - 1e-5


def sparse_rewards(rewards: np.ndarray | float) -> np.ndarray:
    """The sparse reward of the references: -1 wherever the task's reward is not 0, else 0."""
    return -(np.asarray(rewards) != 0.0).astype(np.float32)


class TransitionData(eqx.Module):
    """Flat transitions as ogbench's ``load_dataset(compact_dataset=False)`` returns them."""

    observations: Float[Array, "size obs_dim"]
    actions: Float[Array, "size act_dim"]
    rewards: Float[Array, " size"]
    masks: Float[Array, " size"]
    terminals: Float[Array, " size"]  # 1 on the last transition of each episode
    next_observations: Float[Array, "size obs_dim"]

    @property
    def size(self) -> int:
        return self.observations.shape[0]

    def take(self, name: str, idx: Int[Array, ...]) -> Array:
        """Rows ``idx`` of field ``name`` (the gather `chunk_batch` uses)."""
        return getattr(self, name)[idx]

    def sample(self, key: PRNGKeyArray, batch_size: int, chunk_len: int, discount: float) -> Batch:
        return sample_batch(self, key, batch_size, chunk_len, discount)

    @classmethod
    def from_ogbench(cls, dataset: dict[str, np.ndarray], *, sparse_reward: bool) -> TransitionData:
        """Build from an ogbench singletask dataset dict: sparse option, action clipping."""
        rewards = np.asarray(dataset["rewards"], np.float32)
        if sparse_reward:
            rewards = sparse_rewards(rewards)
        return cls(
            observations=jnp.asarray(dataset["observations"], jnp.float32),
            actions=jnp.asarray(np.clip(dataset["actions"], -ACTION_CLIP, ACTION_CLIP), jnp.float32),
            rewards=jnp.asarray(rewards),
            masks=jnp.asarray(dataset["masks"], jnp.float32),
            terminals=jnp.asarray(dataset["terminals"], jnp.float32),
            next_observations=jnp.asarray(dataset["next_observations"], jnp.float32),
        )


def chunk_batch(data, starts: Int[Array, " batch"], chunk_len: int, discount: float) -> Batch:
    """Gather the chunks that begin at ``starts`` (each ``start + chunk_len <= size``).

    ``data`` is a `TransitionData` or anything with its ``take(name, idx)`` gather (the
    online phase's `bench.data.replay.ReplayBuffer`)."""
    idx = starts[:, None] + jnp.arange(chunk_len)  # [batch, chunk]
    terminals = data.take("terminals", idx)
    ended_before = jnp.concatenate(
        [jnp.zeros_like(terminals[:, :1]), jax.lax.cummax(terminals[:, :-1], axis=1)], axis=1
    )
    valid = 1.0 - ended_before
    discounts = discount ** jnp.arange(chunk_len, dtype=jnp.float32)
    rewards = jnp.sum(data.take("rewards", idx) * discounts * valid, axis=1)
    masks = jnp.min(jnp.where(valid > 0, data.take("masks", idx), 1.0), axis=1)
    return Batch(
        observations=data.take("observations", starts),
        actions=jnp.reshape(data.take("actions", idx), (starts.shape[0], -1)),
        rewards=rewards,
        masks=masks,
        next_observations=data.take("next_observations", idx[:, -1]),
        valid=valid,
    )


def sample_batch(
    data: TransitionData, key: PRNGKeyArray, batch_size: int, chunk_len: int, discount: float
) -> Batch:
    """Uniformly sampled chunks: start indices in ``[0, size - chunk_len]``."""
    starts = jax.random.randint(key, (batch_size,), 0, data.size - chunk_len + 1)
    return chunk_batch(data, starts, chunk_len, discount)
