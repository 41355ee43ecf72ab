"""Maximum-entropy (SAC-style) pieces shared by every stochastic tanh-Gaussian actor:
QAM-E's and FEdit's edit policies, DSRL's noise policy (docs/ALGORITHMS.md s2, s4).

The temperature ``alpha = exp(log_alpha)`` is tuned automatically towards a target entropy
``target_entropy_scale * dim`` (the references use -0.5 per dimension).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


class LogTemperature(eqx.Module):
    """The trainable ``log alpha`` (starts at 0, alpha = 1)."""

    value: Float[Array, ""]

    def __init__(self, value: float | Array = 0.0):
        self.value = jnp.asarray(value, dtype=jnp.float32)


def sac_actor_loss(log_probs: Float[Array, " B"], q: Float[Array, " B"], log_alpha: LogTemperature) -> Array:
    """``E[alpha log pi - Q]``, with alpha held fixed."""
    alpha = jax.lax.stop_gradient(jnp.exp(log_alpha.value))
    return jnp.mean(alpha * log_probs - q)


def temperature_loss(log_probs: Float[Array, " B"], log_alpha: LogTemperature, target_entropy: float) -> Array:
    """``alpha (H - H_target)``: alpha grows when the entropy H falls below the target."""
    entropy = -jax.lax.stop_gradient(jnp.mean(log_probs))
    return jnp.exp(log_alpha.value) * (entropy - target_entropy)
