"""The one-step policy ``mu(s, z)`` distilled from a flow (FQL; QAM-F). docs/ALGORITHMS.md s2, s4.

``mu`` maps a state and a noise vector z straight to an action; it is trained on
``-Q(s, clip(mu(s, z))) + alpha ||mu(s, z) - flow(s, z)||^2``, where ``flow(s, z)`` is the
teacher flow's Euler ODE from the same z, and the agent acts with ``clip(mu)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from trqam.agent import Metrics
from trqam.critic import CriticEnsemble, batch_q
from trqam.flow import VelocityField, euler_sample
from trqam.nn import MLP


def onestep_policy(
    obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], *, layer_norm: bool, key: PRNGKeyArray
) -> MLP:
    """``mu``: an MLP on ``concat(s, z)`` with ``z`` of the action's size."""
    return MLP(obs_dim + action_dim, action_dim, hidden_sizes, layer_norm=layer_norm, key=key)


def onestep_actions(policy: MLP, obs: Float[Array, "B O"], noise: Float[Array, "B D"]) -> Float[Array, "B D"]:
    """``mu(s, z)`` before clipping."""
    return jax.vmap(policy)(jnp.concatenate([obs, noise], axis=-1))


def onestep_act(policy: MLP, obs: Float[Array, "B O"], key: PRNGKeyArray) -> Float[Array, "B D"]:
    """``clip(mu(s, z))`` with fresh noise z."""
    noise = jax.random.normal(key, (obs.shape[0], policy.layers[-1].out_features))
    return jnp.clip(onestep_actions(policy, obs, noise), -1.0, 1.0)


def onestep_loss(
    policy: MLP,
    critic: CriticEnsemble,
    teacher: VelocityField,
    obs: Float[Array, "B O"],
    noise: Float[Array, "B D"],
    alpha: float,
    flow_steps: int,
) -> tuple[Array, Metrics]:
    """``-Q(s, clip(mu)) + alpha * mean ||mu - flow(s, z)||^2``; no gradient into critic or teacher."""
    target = jax.lax.stop_gradient(euler_sample(teacher, obs, noise, flow_steps))
    mu = onestep_actions(policy, obs, noise)
    distill = jnp.mean((mu - target) ** 2)
    q = jnp.mean(batch_q(jax.lax.stop_gradient(critic), obs, jnp.clip(mu, -1.0, 1.0)), axis=-1)
    q_loss = -jnp.mean(q)
    return q_loss + alpha * distill, {"onestep/q_loss": q_loss, "onestep/distill_loss": distill}


class ActsWithOneStepPolicy(eqx.Module):
    """Mixin for a `FlowQAgent`: adds the network ``nets['onestep']`` and acts with it."""

    @classmethod
    def extra_nets(cls, obs_dim, action_dim, config, key) -> dict[str, MLP]:
        return {"onestep": onestep_policy(obs_dim, action_dim, config.hidden_sizes,
                                          layer_norm=config.actor_layer_norm, key=key)}

    def act(self, nets, obs: Float[Array, "B O"], key: PRNGKeyArray) -> Float[Array, "B D"]:
        return onestep_act(nets["onestep"], obs, key)
