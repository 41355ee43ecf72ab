"""Chunk rewards, masks, valid flags and next observations against hand-computed values."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.data.batches import ACTION_CLIP, TransitionData, chunk_batch, sample_batch


def _synthetic(sparse: bool = False) -> TransitionData:
    # Two episodes: transitions 0..3 (terminal at 3) and 4..7 (terminal at 7).
    # Observation i is [i, 10 i]; next observation of i is [i + 0.5, ...].
    obs = np.stack([np.arange(8.0), 10 * np.arange(8.0)], axis=1)
    return TransitionData.from_ogbench(
        {
            "observations": obs,
            "next_observations": obs + 0.5,
            "actions": np.stack([np.arange(8.0) / 10, -np.ones(8) * 2], axis=1),
            "rewards": np.array([-2.0, -1.0, 0.0, -1.0, -2.0, -2.0, -1.0, 0.0]),
            "masks": np.array([1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0]),
            "terminals": np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]),
        },
        sparse_reward=sparse,
    )


def test_chunk_inside_an_episode():
    gamma = 0.9
    batch = chunk_batch(_synthetic(), jnp.array([0]), chunk_len=3, discount=gamma)
    np.testing.assert_allclose(batch.valid, [[1, 1, 1]])
    np.testing.assert_allclose(batch.rewards, [-2.0 + gamma * -1.0 + gamma**2 * 0.0], rtol=1e-6)
    np.testing.assert_allclose(batch.masks, [0.0])  # the goal is reached at step 2
    np.testing.assert_allclose(batch.observations, [[0.0, 0.0]])
    np.testing.assert_allclose(batch.next_observations, [[2.5, 20.5]])  # after transition 2
    np.testing.assert_allclose(batch.actions, [[0.0, -ACTION_CLIP, 0.1, -ACTION_CLIP, 0.2, -ACTION_CLIP]], rtol=1e-6)


def test_chunk_across_an_episode_end():
    gamma = 0.5
    # Starts at 2: steps 2, 3 belong to episode 1 (terminal at 3), steps 4, 5 to episode 2.
    batch = chunk_batch(_synthetic(), jnp.array([2]), chunk_len=4, discount=gamma)
    np.testing.assert_allclose(batch.valid, [[1, 1, 0, 0]])
    np.testing.assert_allclose(batch.rewards, [0.0 + gamma * -1.0])  # invalid steps add nothing
    np.testing.assert_allclose(batch.masks, [0.0])  # min over the valid steps (mask 0 at 2)
    np.testing.assert_allclose(batch.next_observations, [[5.5, 50.5]])  # invalid chunk: critic masks it


def test_masks_are_min_over_valid_steps_only():
    # Start at 3: step 3 is the episode's last (mask 1); step 4 onwards is the next episode.
    batch = chunk_batch(_synthetic(), jnp.array([3]), chunk_len=2, discount=0.9)
    np.testing.assert_allclose(batch.valid, [[1, 0]])
    np.testing.assert_allclose(batch.masks, [1.0])
    np.testing.assert_allclose(batch.rewards, [-1.0])


def test_sparse_reward_option():
    data = _synthetic(sparse=True)
    np.testing.assert_allclose(data.rewards, [-1, -1, 0, -1, -1, -1, -1, 0])


@pytest.mark.parametrize("chunk_len", [1, 3, 8])
def test_uniform_sampling_covers_every_valid_start(chunk_len):
    data = _synthetic()
    batch = sample_batch(data, jax.random.key(0), 4000, chunk_len, 0.99)
    starts = np.asarray(batch.observations[:, 0]).astype(int)
    counts = np.bincount(starts, minlength=8)
    n_starts = 8 - chunk_len + 1
    assert counts[n_starts:].sum() == 0  # no chunk runs off the end of the data
    expected = 4000 / n_starts
    assert np.all(np.abs(counts[:n_starts] - expected) < 5 * np.sqrt(expected))


def test_sampling_is_seeded():
    data = _synthetic()
    a = sample_batch(data, jax.random.key(3), 16, 2, 0.99)
    b = sample_batch(data, jax.random.key(3), 16, 2, 0.99)
    c = sample_batch(data, jax.random.key(4), 16, 2, 0.99)
    np.testing.assert_array_equal(a.observations, b.observations)
    assert not np.array_equal(a.observations, c.observations)
