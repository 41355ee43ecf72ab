"""Projected dual descent on the trust-region multiplier lambda (TRQAM, docs/ALGORITHMS.md s3).

Once per gradient step, after the parameter update:

    D_c   = min(D_hat, clip_factor * kl_budget)
    D_bar = ema * D_bar + (1 - ema) * D_c
    lam   = clip(lam + dual_lr * (D_bar - kl_budget), lam_min, lam_max)

lambda rises when the realised KL is over budget (weaker control) and falls when under.
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float


@dataclass(frozen=True)
class DualConfig:
    """Reference defaults of the TRQAM implementation."""

    init_lam: float = 1.0
    dual_lr: float = 0.01
    ema: float = 0.9
    clip_factor: float = 2.0
    lam_min: float = 0.01
    lam_max: float = 100.0
    lam_scale: float = 3.0  # lambda_eff = lam_scale * lambda


class DualState(eqx.Module):
    lam: Float[Array, ""]
    kl_ema: Float[Array, ""]

    @classmethod
    def init(cls, config: DualConfig) -> DualState:
        return cls(lam=jnp.asarray(config.init_lam, jnp.float32), kl_ema=jnp.asarray(0.0, jnp.float32))


def dual_update(state: DualState, kl_estimate: Float[Array, ""], kl_budget: float, config: DualConfig) -> DualState:
    clipped = jnp.minimum(kl_estimate, config.clip_factor * kl_budget)
    kl_ema = config.ema * state.kl_ema + (1.0 - config.ema) * clipped
    lam = jnp.clip(state.lam + config.dual_lr * (kl_ema - kl_budget), config.lam_min, config.lam_max)
    return DualState(lam=lam, kl_ema=kl_ema)
