"""The flow policy: a velocity field over flattened action chunks (docs/ALGORITHMS.md section 1).

Conventions: an action chunk of h steps of an |A|-dimensional action is flattened to
``action_dim = h * |A|``; flow time ``t`` runs from noise (t = 0) to action (t = 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from trqam.nn import MLP


class VelocityField(eqx.Module):
    """``v(s, x, t)``: an MLP on ``concat(s, x, t)`` with ``t`` a raw scalar."""

    mlp: MLP
    action_dim: int = eqx.field(static=True)

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int],
        *,
        layer_norm: bool = False,
        key: PRNGKeyArray,
    ):
        self.mlp = MLP(obs_dim + action_dim + 1, action_dim, hidden_sizes, layer_norm=layer_norm, key=key)
        self.action_dim = action_dim

    def __call__(
        self, obs: Float[Array, " obs_dim"], x: Float[Array, " action_dim"], t: Float[Array, ""]
    ) -> Float[Array, " action_dim"]:
        return self.mlp(jnp.concatenate([obs, x, jnp.reshape(t, (1,))]))


def bc_flow_loss(
    field: VelocityField,
    obs: Float[Array, "batch obs_dim"],
    actions: Float[Array, "batch action_dim"],
    valid: Float[Array, "batch chunk"],
    key: PRNGKeyArray,
    weights: Float[Array, " batch"] | None = None,
) -> Float[Array, ""]:
    """Flow-matching BC loss ``E ||v(s, (1-t) x0 + t a, t) - (a - x0)||^2``.

    Mean over action dimensions, then over the batch with each example weighted by its
    chunk's last ``valid`` flag, as the references do (``valid[..., -1]``: the whole chunk
    counts only when it ends inside its episode), and by ``weights`` when given (FAWAC's
    advantage weights).
    """
    noise_key, time_key = jax.random.split(key)
    x0 = jax.random.normal(noise_key, actions.shape)
    t = jax.random.uniform(time_key, (actions.shape[0],))
    x_t = (1.0 - t[:, None]) * x0 + t[:, None] * actions
    predicted = jax.vmap(field)(obs, x_t, t)
    per_example = jnp.mean((predicted - (actions - x0)) ** 2, axis=-1)
    weight = valid[:, -1] if weights is None else valid[:, -1] * weights
    return jnp.mean(per_example * weight)


def euler_sample(
    field: VelocityField,
    obs: Float[Array, "batch obs_dim"],
    noise: Float[Array, "batch action_dim"],
    num_steps: int,
) -> Float[Array, "batch action_dim"]:
    """Integrate ``x <- x + v(s, x, k/N) / N`` for k = 0..N-1 from ``noise``; clip to [-1, 1]."""
    velocity = jax.vmap(field, in_axes=(0, 0, None))

    def step(x, k):
        return x + velocity(obs, x, k / num_steps) / num_steps, None

    x, _ = jax.lax.scan(step, noise, jnp.arange(num_steps))
    return jnp.clip(x, -1.0, 1.0)
