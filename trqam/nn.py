"""Networks shared by every method (docs/ALGORITHMS.md section 1).

Modules act on a single example, the way Equinox's own layers do; callers `jax.vmap`
over the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

LAYER_NORM_EPS = 1e-6  # Flax's default, which the references' networks use (Equinox's is 1e-5)


def _xavier_linear(in_size: int, out_size: int, key: PRNGKeyArray) -> eqx.nn.Linear:
    """A dense layer with xavier-uniform weights and zero bias."""
    layer = eqx.nn.Linear(in_size, out_size, key=key)
    weight = jax.nn.initializers.xavier_uniform()(key, (out_size, in_size))
    return eqx.tree_at(lambda m: (m.weight, m.bias), layer, (weight, jnp.zeros(out_size)))


def mish(x: Array) -> Array:
    """``x tanh(softplus(x))``: the activation of the QSM/DAC reference networks."""
    return x * jnp.tanh(jax.nn.softplus(x))


class MLP(eqx.Module):
    """Dense layers, GELU (or ``activation``), optional LayerNorm after each hidden
    activation, linear output."""

    layers: tuple[eqx.nn.Linear, ...]
    norms: tuple[eqx.nn.LayerNorm, ...] | None
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        out_size: int,
        hidden_sizes: Sequence[int],
        *,
        layer_norm: bool,
        key: PRNGKeyArray,
        activation: Callable[[Array], Array] = jax.nn.gelu,
    ):
        sizes = (in_size, *hidden_sizes, out_size)
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(
            _xavier_linear(a, b, k) for a, b, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
        )
        self.norms = tuple(eqx.nn.LayerNorm(h, eps=LAYER_NORM_EPS) for h in hidden_sizes) if layer_norm else None
        self.activation = activation

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, " out_size"]:
        for i, layer in enumerate(self.layers[:-1]):
            x = self.activation(layer(x))
            if self.norms is not None:
                x = self.norms[i](x)
        return self.layers[-1](x)


class TanhGaussian(eqx.Module):
    """A tanh-squashed Gaussian policy head ``e = tanh(mean + std * eps)``, as the references'
    ``TanhNormal``: an MLP trunk with its activation after the last hidden layer, separate
    mean and log-std output layers, the log-std clipped to [-20, 2], and the exact
    log-determinant of tanh, ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))``."""

    trunk: MLP  # in -> hidden[-1], activated after its output
    mean: eqx.nn.Linear
    log_std: eqx.nn.Linear
    log_std_min: float = eqx.field(static=True, default=-20.0)
    log_std_max: float = eqx.field(static=True, default=2.0)

    def __init__(self, in_size: int, out_size: int, hidden_sizes: Sequence[int], *, key: PRNGKeyArray):
        trunk_key, mean_key, std_key = jax.random.split(key, 3)
        self.trunk = MLP(in_size, hidden_sizes[-1], hidden_sizes[:-1], layer_norm=False, key=trunk_key)
        self.mean = _xavier_linear(hidden_sizes[-1], out_size, mean_key)
        self.log_std = _xavier_linear(hidden_sizes[-1], out_size, std_key)

    def _head(self, x: Float[Array, " in_size"]) -> tuple[Float[Array, " out"], Float[Array, " out"]]:
        """The Gaussian's mean and clipped log-std before the tanh."""
        features = self.trunk.activation(self.trunk(x))
        return self.mean(features), jnp.clip(self.log_std(features), self.log_std_min, self.log_std_max)

    @staticmethod
    def _log_prob(noise, log_std, pre_tanh) -> Float[Array, ""]:
        gaussian = -0.5 * jnp.sum(noise**2 + 2 * log_std + jnp.log(2 * jnp.pi))
        log_det = jnp.sum(2.0 * (jnp.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh)))
        return gaussian - log_det

    def from_noise(self, x: Float[Array, " in_size"], noise: Float[Array, " out"]) -> tuple[Float[Array, " out"], Float[Array, ""]]:
        """The sample for standard-normal ``noise`` and its log-probability."""
        mean, log_std = self._head(x)
        pre_tanh = mean + jnp.exp(log_std) * noise
        return jnp.tanh(pre_tanh), self._log_prob(noise, log_std, pre_tanh)

    def log_prob(self, x: Float[Array, " in_size"], action: Float[Array, " out"]) -> Float[Array, ""]:
        """The log-probability of ``action`` in (-1, 1)^out (the inverse of `from_noise`)."""
        mean, log_std = self._head(x)
        pre_tanh = jnp.arctanh(action)
        return self._log_prob((pre_tanh - mean) / jnp.exp(log_std), log_std, pre_tanh)

    def __call__(self, x: Float[Array, " in_size"], key: PRNGKeyArray) -> tuple[Float[Array, " out"], Float[Array, ""]]:
        """A sample in (-1, 1)^out and its log-probability."""
        return self.from_noise(x, jax.random.normal(key, (self.mean.out_features,)))

    def sample_batch(self, x: Float[Array, "B in_size"], key: PRNGKeyArray) -> tuple[Float[Array, "B out"], Float[Array, " B"]]:
        """One sample and its log-probability per row of ``x``."""
        noise = jax.random.normal(key, (x.shape[0], self.mean.out_features))
        return jax.vmap(self.from_noise)(x, noise)
