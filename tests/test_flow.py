"""The MLP, the flow-matching BC loss and the Euler sampler."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from trqam.flow import VelocityField, bc_flow_loss, euler_sample
from trqam.nn import MLP


def test_mlp_init_and_layer_norm():
    mlp = MLP(10, 3, (64, 64), layer_norm=True, key=jax.random.key(0))
    bound = np.sqrt(6 / (10 + 64))  # xavier-uniform
    w = np.asarray(mlp.layers[0].weight)
    assert w.shape == (64, 10) and np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert np.all(np.asarray(mlp.layers[0].bias) == 0)
    # LayerNorm after each hidden activation: the hidden features have zero mean, unit variance.
    h = jax.nn.gelu(mlp.layers[0](jnp.ones(10)))
    normed = mlp.norms[0](h)
    assert abs(float(normed.mean())) < 1e-5 and abs(float(normed.std()) - 1) < 1e-3
    assert mlp(jnp.ones(10)).shape == (3,)
    assert MLP(10, 3, (64,), layer_norm=False, key=jax.random.key(0)).norms is None


class _GaussianField(eqx.Module):
    """Exact flow velocity from N(0, I) to N(mu, s^2) per dimension (docs/ALGORITHMS.md s5)."""

    mu: float
    s: float

    def __call__(self, obs, x, t):
        c_t = (1 - t) ** 2 + t**2 * self.s**2
        return self.mu + (t * self.s**2 - (1 - t)) / c_t * (x - t * self.mu)


def test_euler_sampler_transports_noise_to_the_target_gaussian():
    field = _GaussianField(mu=0.3, s=0.2)
    noise = jax.random.normal(jax.random.key(1), (20000, 1))
    samples = euler_sample(field, jnp.zeros((20000, 1)), noise, num_steps=400)
    assert abs(float(samples.mean()) - 0.3) < 0.01
    assert abs(float(samples.std()) - 0.2) < 0.01


def test_euler_sampler_clips_to_the_action_box():
    field = _GaussianField(mu=3.0, s=0.1)
    samples = euler_sample(field, jnp.zeros((100, 1)), jnp.zeros((100, 1)), num_steps=10)
    assert float(samples.max()) == 1.0


def test_bc_flow_learns_a_state_dependent_action():
    # Data: action = 0.5 * observation for observations in {-1, +1}; chunk of 2 steps x 1 dim.
    key = jax.random.key(0)
    field = VelocityField(1, 2, (64, 64), key=key)
    optimizer = optax.adam(3e-3)
    opt_state = optimizer.init(eqx.filter(field, eqx.is_array))

    @eqx.filter_jit
    def step(field, opt_state, key):
        data_key, loss_key = jax.random.split(key)
        obs = jax.random.choice(data_key, jnp.array([-1.0, 1.0]), (256, 1))
        actions = jnp.concatenate([0.5 * obs, -0.5 * obs], axis=1)
        loss, grads = eqx.filter_value_and_grad(bc_flow_loss)(field, obs, actions, jnp.ones((256, 2)), loss_key)
        updates, opt_state = optimizer.update(grads, opt_state)
        return eqx.apply_updates(field, updates), opt_state, loss

    for i in range(1500):
        field, opt_state, loss = step(field, opt_state, jax.random.fold_in(key, i))
    obs = jnp.array([[-1.0], [1.0]] * 50)
    actions = euler_sample(field, obs, jax.random.normal(key, (100, 2)), num_steps=10)
    np.testing.assert_allclose(actions[:, 0], 0.5 * obs[:, 0], atol=0.1)
    np.testing.assert_allclose(actions[:, 1], -0.5 * obs[:, 0], atol=0.1)


def test_chunks_crossing_an_episode_end_are_weighted_out():
    """As the references: an example counts wholly when its chunk's last step is valid
    (``valid[..., -1]``) and not at all otherwise."""
    field = VelocityField(3, 4, (16,), key=jax.random.key(0))  # chunk of 2 steps x 2 dims
    obs = jax.random.normal(jax.random.key(2), (8, 3))
    actions = jax.random.uniform(jax.random.key(3), (8, 4), minval=-1, maxval=1)
    key = jax.random.key(1)
    # The same draws bc_flow_loss makes, then the per-step squared errors by hand.
    noise_key, time_key = jax.random.split(key)
    x0 = jax.random.normal(noise_key, actions.shape)
    t = jax.random.uniform(time_key, (8,))
    pred = jax.vmap(field)(obs, (1 - t[:, None]) * x0 + t[:, None] * actions, t)
    err = ((pred - (actions - x0)) ** 2).reshape(8, 2, 2)
    valid = jnp.array([[1.0, 0.0]] * 4 + [[1.0, 1.0]] * 4)
    expected = err[4:].sum() / err.size  # the first four chunks end past their episode
    np.testing.assert_allclose(bc_flow_loss(field, obs, actions, valid, key), expected, rtol=1e-5)
    assert float(bc_flow_loss(field, obs, actions, jnp.zeros((8, 2)), key)) == 0.0
