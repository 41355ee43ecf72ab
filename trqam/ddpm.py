"""DDPM policies (Ho et al., arXiv 2006.11239) with the VP noise schedule, shared by QSM
and DAC (docs/ALGORITHMS.md s4: 10 denoising steps, VP schedule).

Indexing follows the references: steps t = 1..N, with arrays padded at index 0 so that
``alpha_bar[0] = 1`` (no noise). ``x_t = sqrt(alpha_bar_t) a + sqrt(1 - alpha_bar_t) eps``.

Two ancestral samplers, as the QAM paper's reference runs them (its ``clip_sampler_before``
/ ``clip_sampler_after`` flags): DAC's ``"posterior"`` step takes the DDPM posterior mean
around the predicted clean action clipped to [-1, 1]; QSM's ``"jump"`` step jumps to the
predicted clean action itself and clips the noisy action after every step. Both add
``sqrt(1 - alpha_t) z`` for t > 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from trqam.nn import MLP, mish

VP_BETA_MIN, VP_BETA_MAX = 0.1, 10.0


class Schedule(NamedTuple):
    betas: Float[Array, " N+1"]
    alphas: Float[Array, " N+1"]
    alpha_bars: Float[Array, " N+1"]

    @property
    def num_steps(self) -> int:
        return self.betas.shape[0] - 1


def vp_schedule(num_steps: int) -> Schedule:
    """The discretised variance-preserving SDE: ``alpha_t = exp(-b_min/N - (b_max - b_min)(2t - 1)/(2 N^2))``,
    so ``alpha_bar_t = exp(-b_min t/N - (b_max - b_min) t^2 / (2 N^2))``."""
    t = jnp.arange(1, num_steps + 1)
    betas = 1.0 - jnp.exp(-VP_BETA_MIN / num_steps - 0.5 * (VP_BETA_MAX - VP_BETA_MIN) * (2 * t - 1) / num_steps**2)
    betas = jnp.concatenate([jnp.zeros(1), betas])
    alphas = 1.0 - betas  # via the betas, as the reference rounds them
    return Schedule(betas=betas, alphas=alphas, alpha_bars=jnp.cumprod(alphas))


class FourierTime(eqx.Module):
    """Learnable Fourier features of the step index: ``[cos(2 pi w t), sin(2 pi w t)]``."""

    frequencies: Float[Array, " half"]

    def __init__(self, size: int, *, key: PRNGKeyArray):
        self.frequencies = 0.2 * jax.random.normal(key, (size // 2,))

    def __call__(self, t: Float[Array, ""]) -> Float[Array, " size"]:
        angles = 2 * jnp.pi * self.frequencies * t
        return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)])


class NoisePredictor(eqx.Module):
    """``eps(s, x_t, t)``: Fourier time features through an MLP, then an MLP on
    ``concat(x_t, s, time embedding)``; mish activations, as in the references."""

    time_features: FourierTime
    time_mlp: MLP
    mlp: MLP
    action_dim: int = eqx.field(static=True)

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], *, layer_norm: bool,
                 key: PRNGKeyArray, time_dim: int = 64):
        k1, k2, k3 = jax.random.split(key, 3)
        self.time_features = FourierTime(time_dim, key=k1)
        self.time_mlp = MLP(time_dim, hidden_sizes[-1], hidden_sizes[:-1], layer_norm=False, key=k2, activation=mish)
        self.mlp = MLP(obs_dim + action_dim + hidden_sizes[-1], action_dim, hidden_sizes, layer_norm=layer_norm,
                       key=k3, activation=mish)
        self.action_dim = action_dim

    def __call__(self, obs: Float[Array, " O"], x: Float[Array, " D"], t: Float[Array, ""]) -> Float[Array, " D"]:
        return self.mlp(jnp.concatenate([x, obs, self.time_mlp(self.time_features(t))]))


class Noised(NamedTuple):
    steps: Int[Array, " B"]  # t in 1..N
    noise: Float[Array, "B D"]
    noisy: Float[Array, "B D"]  # x_t
    noise_std: Float[Array, "B 1"]  # sqrt(1 - alpha_bar_t)


def add_noise(schedule: Schedule, actions: Float[Array, "B D"], key: PRNGKeyArray) -> Noised:
    """The forward process at a uniformly drawn step."""
    step_key, noise_key = jax.random.split(key)
    steps = jax.random.randint(step_key, actions.shape[:1], 1, schedule.num_steps + 1)
    noise = jax.random.normal(noise_key, actions.shape)
    alpha_bar = schedule.alpha_bars[steps][:, None]
    return Noised(steps, noise, jnp.sqrt(alpha_bar) * actions + jnp.sqrt(1 - alpha_bar) * noise,
                  jnp.sqrt(1 - alpha_bar))


def predict_noise(model, obs: Float[Array, "B O"], noisy: Float[Array, "B D"], steps: Int[Array, " B"]):
    return jax.vmap(model)(obs, noisy, steps.astype(jnp.float32))


def ddpm_loss(model, schedule: Schedule, obs, actions, valid_last: Float[Array, " B"], key: PRNGKeyArray):
    """The denoising (BC) loss ``E ||eps - eps(s, x_t, t)||^2`` and the forward sample it used."""
    noised = add_noise(schedule, actions, key)
    predicted = predict_noise(model, obs, noised.noisy, noised.steps)
    loss = jnp.mean(jnp.mean((noised.noise - predicted) ** 2, axis=-1) * valid_last)
    return loss, noised, predicted


SAMPLERS = ("posterior", "jump")


def ddpm_sample(model, schedule: Schedule, obs: Float[Array, "B O"], noise: Float[Array, "B D"],
                key: PRNGKeyArray, *, sampler: str = "posterior") -> Float[Array, "B D"]:
    """Ancestral sampling from ``x_N = noise`` (see the module's docstring for ``sampler``)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown DDPM sampler {sampler!r}; use one of {SAMPLERS}")
    s = schedule

    def step(x, inputs):
        t, z = inputs
        eps = predict_noise(model, obs, x, jnp.full(obs.shape[:1], t))
        x0 = 1 / jnp.sqrt(s.alpha_bars[t]) * (x - jnp.sqrt(1 - s.alpha_bars[t]) * eps)  # the predicted clean action
        if sampler == "posterior":  # q(x_{t-1} | x_t, clip(x0)): DAC
            x = 1 / (1 - s.alpha_bars[t]) * (jnp.sqrt(s.alpha_bars[t - 1]) * (1 - s.alphas[t]) * jnp.clip(x0, -1.0, 1.0)
                                             + jnp.sqrt(s.alphas[t]) * (1 - s.alpha_bars[t - 1]) * x)
        else:  # jump to x0: QSM
            x = x0
        x = x + (t > 1) * jnp.sqrt(1 - s.alphas[t]) * z
        return (jnp.clip(x, -1.0, 1.0) if sampler == "jump" else x), None

    steps = jnp.arange(s.num_steps, 0, -1)
    zs = jax.random.normal(key, (s.num_steps, *noise.shape))
    x, _ = jax.lax.scan(step, noise, (steps, zs))
    # The posterior's last step returns clip(x0) itself (alpha_bar_0 = 1), so this clip only
    # removes round-off there.
    return jnp.clip(x, -1.0, 1.0)
