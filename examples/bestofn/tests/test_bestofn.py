"""The example method's mechanism: it acts with the critic's best of N BC-flow samples."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from trqam_bestofn.agent import BestOfN, BestOfNConfig

from trqam.agent import Batch
from trqam.fine_tune import mean_q
from trqam.flow import euler_sample


def example_batch(batch=4, obs_dim=3, action_dim=2, chunk=1):
    key = jax.random.key(1)
    obs = jax.random.normal(key, (batch, obs_dim))
    actions = jnp.zeros((batch, action_dim * chunk))
    ones = jnp.ones((batch, chunk))
    return Batch(observations=obs, actions=actions, rewards=ones[:, 0], masks=ones[:, 0], valid=ones,
                 next_observations=obs)


def test_acts_with_the_best_sample_under_the_critic():
    batch = example_batch()
    agent = BestOfN.create(batch, BestOfNConfig(hidden_sizes=(16,), num_critics=2, num_samples=6, chunk_len=1,
                                                flow_steps=3), jax.random.key(0))
    key = jax.random.key(7)
    chosen = agent.sample_actions(batch.observations, key)
    noise = jax.random.normal(key, (6, 4, 2))
    samples = np.stack([euler_sample(agent.nets["actor_slow"], batch.observations, x, 3) for x in noise])
    q = np.stack([mean_q(agent.nets["critic"], batch.observations, a) for a in samples])
    np.testing.assert_allclose(chosen, samples[q.argmax(0), np.arange(4)], atol=1e-6)
    assert not np.allclose(chosen, samples[0])  # a different choice from the first sample somewhere


def test_one_sample_is_the_bc_flow_itself():
    batch = example_batch()
    agent = BestOfN.create(batch, BestOfNConfig(hidden_sizes=(16,), num_critics=2, num_samples=1, chunk_len=1,
                                                flow_steps=3), jax.random.key(0))
    key = jax.random.key(3)
    noise = jax.random.normal(key, (1, 4, 2))[0]
    np.testing.assert_allclose(agent.sample_actions(batch.observations, key),
                               euler_sample(agent.nets["actor_slow"], batch.observations, noise, 3), atol=1e-6)


def test_an_update_trains_the_critic_and_the_bc_flow_only():
    batch = example_batch()
    agent = BestOfN.create(batch, BestOfNConfig(hidden_sizes=(16,), num_critics=2, num_samples=4, chunk_len=1,
                                                flow_steps=3), jax.random.key(0))
    updated, metrics = agent.update(batch, jax.random.key(5))
    assert set(agent.nets) == {"critic", "actor_slow"}
    assert np.isfinite(float(metrics["total_loss"]))
    for name in ("critic", "actor_slow"):
        before, after = (jax.tree.leaves(eqx.filter(a.nets[name], eqx.is_array)) for a in (agent, updated))
        assert any(not np.allclose(x, y) for x, y in zip(before, after, strict=True)), name
