"""The fixed small inputs of the parity fixtures, shared by the generator and the comparison.

Nothing here imports the authors' code or Flax: the generator (`parity.generate`) feeds
these inputs to the reference agents; `parity.compare` feeds the same inputs, the
reference's parameters and its random draws to ours.

Batches are in the references' sequence layout (``observations [B, O]``, ``actions
[B, h, A]``, ``rewards``, ``masks``, ``valid [B, h]``, ``next_observations [B, h, O]``);
their agents read the last entry of each sequence (the chunk's discounted reward, its
mask, the observation after the chunk), which is what our `Batch` stores (`to_ours`).
About a third of the chunks cross an episode end (``valid`` drops to 0 inside the chunk)
and a tenth end at a goal (``masks`` 0), so the losses' weighting by ``valid`` is exercised.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import jax.numpy as jnp
import numpy as np

from trqam.agent import Batch


@dataclass(frozen=True)
class Setting:
    obs_dim: int = 10
    action_dim: int = 5  # per step; the flow acts on chunks of chunk_len * action_dim
    chunk_len: int = 5
    batch_size: int = 64
    hidden: tuple[int, ...] = (64, 64)
    num_critics: int = 2
    flow_steps: int = 10
    discount: float = 0.99
    learning_rate: float = 3e-4
    seed: int = 0  # the reference agent's seed (its parameters and its PRNG key)
    data_seed: int = 1234  # numpy seed of the synthetic batches
    bc_updates: int = 50  # BC-only updates of the reference before fine-tuning (BC-initialised flows)
    updates: int = 1  # fine-tuning updates recorded
    num_batches: int = 4  # batches cycled through by the recorded updates

    @property
    def flat_action_dim(self) -> int:
        return self.chunk_len * self.action_dim

    def record(self) -> dict:
        return asdict(self)


# One update with every intermediate quantity, and a trajectory of a few hundred updates.
ONE_UPDATE = Setting()
TRAJECTORY = Setting(action_dim=2, batch_size=16, updates=200)
SETTINGS = {"one_update": ONE_UPDATE, "trajectory": TRAJECTORY}


def make_batches(setting: Setting) -> list[dict[str, np.ndarray]]:
    """``setting.num_batches`` reference-layout batches (float32), fixed by ``data_seed``."""
    rng = np.random.default_rng(setting.data_seed)
    b, h, o, a = setting.batch_size, setting.chunk_len, setting.obs_dim, setting.action_dim
    batches = []
    for _ in range(setting.num_batches):
        # first invalid step (a chunk of one action, as on the navigation domains, never has one)
        ends = np.where(rng.random(b) < 1 / 3, rng.integers(1, h, b), h) if h > 1 else np.full(b, h)
        valid = (np.arange(h)[None, :] < ends[:, None]).astype(np.float32)
        step_rewards = rng.normal(size=(b, h)) * valid
        rewards = np.cumsum(step_rewards * setting.discount ** np.arange(h), axis=1)
        masks = np.repeat(np.where(rng.random(b) < 0.1, 0.0, 1.0)[:, None], h, axis=1)
        batches.append({
            "observations": rng.normal(size=(b, o)),
            "actions": np.clip(rng.normal(scale=0.6, size=(b, h, a)), -1.0, 1.0),
            "rewards": rewards,
            "masks": masks,
            "valid": valid,
            "next_observations": rng.normal(size=(b, h, o)),
        })
    return [{k: v.astype(np.float32) for k, v in batch.items()} for batch in batches]


def to_ours(batch: dict[str, np.ndarray]) -> Batch:
    """The same batch in our layout: flattened chunks, the last reward, mask and observation."""
    b = batch["actions"].shape[0]
    return Batch(
        observations=jnp.asarray(batch["observations"]),
        actions=jnp.asarray(batch["actions"].reshape(b, -1)),
        rewards=jnp.asarray(batch["rewards"][:, -1]),
        masks=jnp.asarray(batch["masks"][:, -1]),
        next_observations=jnp.asarray(batch["next_observations"][:, -1]),
        valid=jnp.asarray(batch["valid"]),
    )
