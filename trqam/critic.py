"""The critic ensemble, its chunked pessimistic TD target and Polyak targets (docs/ALGORITHMS.md s1).

Written once and used by every method that learns a Q-function over action chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from trqam.nn import MLP

M = TypeVar("M", bound=eqx.Module)


class CriticEnsemble(eqx.Module):
    """K independent MLP critics ``Q_k(s, a)`` with LayerNorm, evaluated in one vmap."""

    members: MLP  # arrays stacked along a leading axis of size K

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int],
        num_members: int,
        *,
        layer_norm: bool = True,
        key: PRNGKeyArray,
    ):
        def make(k):
            return MLP(obs_dim + action_dim, 1, hidden_sizes, layer_norm=layer_norm, key=k)

        self.members = eqx.filter_vmap(make)(jax.random.split(key, num_members))

    def __call__(self, obs: Float[Array, " obs_dim"], action: Float[Array, " action_dim"]) -> Float[Array, " K"]:
        x = jnp.concatenate([obs, action])

        @eqx.filter_vmap(in_axes=(eqx.if_array(0), None))
        def each(member, x):
            return member(x)[0]

        return each(self.members, x)

    def on_batch(self, obs: Float[Array, "B obs_dim"], actions: Float[Array, "B action_dim"]) -> Float[Array, "B K"]:
        """The same values as ``jax.vmap(self)``, with the members as the outer axis, so each
        layer is one batched matrix product over members with [K, B, H] activations. On the
        CPU this layout makes the paper-size critic's forward pass ~30% and its backward pass
        ~20% faster than vmapping over the batch first (reports/benchmarks/BENCHMARKS.md)."""
        x = jnp.concatenate([obs, actions], axis=-1)
        q = eqx.filter_vmap(lambda member: jax.vmap(member)(x)[:, 0])(self.members)  # [K, B]
        return q.T


def batch_q(critic, obs: Float[Array, "B obs"], actions: Float[Array, "B act"]) -> Float[Array, "B K"]:
    """Q of every member on a batch: `CriticEnsemble.on_batch`, or ``jax.vmap`` of any
    other per-example critic (the tests' closed-form critics)."""
    if isinstance(critic, CriticEnsemble):
        return critic.on_batch(obs, actions)
    return jax.vmap(critic)(obs, actions)


def ensemble_std(q: Float[Array, "B K"]) -> Float[Array, " B"]:
    """``std_k Q_k`` (population std, the value of ``jnp.std``) with gradient 0 where the
    members agree exactly. ``jnp.std``'s gradient there is ``0 * inf = NaN``, and it reaches
    the actor through its actions: with 2 critics two float32 values coincide often enough to
    end a run (RLPD, reports/investigations/rlpd-issue16/). The references use ``jnp.std``;
    the values here are the same everywhere and the gradients wherever theirs are finite."""
    variance = jnp.var(q, axis=-1)
    spread = variance > 0
    return jnp.where(spread, jnp.sqrt(jnp.where(spread, variance, 1.0)), 0.0)


def pessimistic(q: Float[Array, "B K"], rho: float) -> Float[Array, " B"]:
    """``mean_k Q_k - rho * std_k Q_k`` (a single member has no spread, and no std: its
    gradient would be 0/0)."""
    if q.shape[-1] == 1:
        return q[..., 0]
    return jnp.mean(q, axis=-1) - rho * ensemble_std(q)


def td_target(
    next_q: Float[Array, "B K"],
    rewards: Float[Array, " B"],
    masks: Float[Array, " B"],
    discount: float,
    chunk_len: int,
    rho: float,
) -> Float[Array, " B"]:
    """Chunked target ``y = R + gamma^h m (mean_k Q'_k - rho std_k Q'_k)``, without gradient."""
    y = rewards + discount**chunk_len * masks * pessimistic(next_q, rho)
    return jax.lax.stop_gradient(y)


def critic_loss(
    q: Float[Array, "B K"], target: Float[Array, " B"], valid_last: Float[Array, " B"]
) -> Float[Array, ""]:
    """Mean over members and batch of ``(Q_k - y)^2``, weighted by the chunk's last valid flag."""
    return jnp.mean((q - target[:, None]) ** 2 * valid_last[:, None])


def polyak(target: M, online: M, tau: float) -> M:
    """``target <- (1 - tau) target + tau online`` on every floating-point array leaf."""
    target_arrays, static = eqx.partition(target, eqx.is_inexact_array)
    online_arrays = eqx.filter(online, eqx.is_inexact_array)
    mixed = jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target_arrays, online_arrays)
    return eqx.combine(mixed, static)


def expectile_loss(diff: Float[Array, ...], kappa: float) -> Float[Array, ...]:
    """``|kappa - 1[diff < 0]| diff^2`` with ``diff = target - prediction`` (IQL-style; a
    zero difference takes kappa, as the references' ``adv >= 0``)."""
    weight = jnp.where(diff >= 0, kappa, 1.0 - kappa)
    return weight * diff**2
