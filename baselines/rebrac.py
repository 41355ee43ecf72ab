"""ReBRAC: revisited behaviour-regularised actor-critic (Tarasov et al., arXiv 2305.09836),
as the QAM paper (arXiv 2601.14234) runs it. docs/ALGORITHMS.md section 4.

A deterministic tanh actor trained on ``-Qbar(s, pi(s)) / mean|Qbar| + alpha ||pi(s) - a_data||^2``
with ``Qbar = mean_k Q_k - rho std_k Q_k``; the TD target's actions come from a Polyak
target actor with clipped Gaussian noise (``actor_noise``, clipped at ``noise_clip``), and
acting adds the same noise. As the reference (github.com/ColinQiyangLi/qam): the actor
updates every step while the targets move every second step (its ``actor_freq = 2``
schedule), and the actor's last layer starts at scale 0.01. No flow, no BC pretraining:
trained from scratch. The original's critic-side BC penalty is not part of the QAM paper's
sweep (docs/PROTOCOL.md lists only alpha and the actor noise) and is left out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Self

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.critic import batch_q, pessimistic
from trqam.fine_tune import FlowQAgent, FlowQConfig, Nets
from trqam.nn import MLP


@dataclass(frozen=True)
class ReBRACConfig(FlowQConfig):
    alpha: float = 0.01  # actor BC weight (per-domain: bench.config.hyperparams.REBRAC)
    actor_noise: float = 0.0  # std of the acting and target-policy noise (per-domain)
    noise_clip: float = 0.5
    target_every: int = 2  # the targets move every this many updates (the reference's actor_freq)
    last_layer_scale: float = 0.01  # variance scale of the actor's last layer at initialisation
    grad_clip: float | None = None  # plain Adam, as the reference


def deterministic_actions(actor: MLP, obs: Float[Array, "B O"]) -> Float[Array, "B D"]:
    return jnp.tanh(jax.vmap(actor)(obs))


class ReBRAC(FlowQAgent):
    updates: Array  # updates made so far (the target schedule counts them)

    HAS_BC_FLOW = False
    HAS_FINE_TUNED_FLOW = False
    POLYAK_TARGETS = ("critic", "actor")

    @classmethod
    def extra_nets(cls, obs_dim, action_dim, config, key) -> Nets:
        actor = MLP(obs_dim, action_dim, config.hidden_sizes, layer_norm=config.actor_layer_norm, key=key)
        # Xavier-uniform at variance scale s is the unit-scale draw times sqrt(s).
        last = actor.layers[-1]
        return {"actor": eqx.tree_at(lambda m: m.layers[-1].weight, actor,
                                     last.weight * jnp.sqrt(config.last_layer_scale))}

    @classmethod
    def extra_fields(cls, config: ReBRACConfig) -> dict:
        return {"updates": jnp.zeros((), jnp.int32)}

    def noisy(self, actions: Float[Array, "B D"], key: PRNGKeyArray) -> Float[Array, "B D"]:
        noise = jnp.clip(self.config.actor_noise * jax.random.normal(key, actions.shape),
                         -self.config.noise_clip, self.config.noise_clip)
        return jnp.clip(actions + noise, -1.0, 1.0)

    def act(self, nets: Nets, obs: Float[Array, "B O"], key: PRNGKeyArray) -> Float[Array, "B D"]:
        return self.noisy(deterministic_actions(nets["actor"], obs), key)

    def next_actions(self, nets: Nets, next_obs: Float[Array, "B O"], key: PRNGKeyArray) -> Float[Array, "B D"]:
        """The target actor's action plus clipped Gaussian noise (TD3's target smoothing)."""
        return self.noisy(deterministic_actions(self.targets["actor"], next_obs), key)

    def target_rate(self) -> Float[Array, ""]:
        return jnp.where((self.updates + 1) % self.config.target_every == 0, self.config.tau, 0.0)

    def actor_loss(self, nets: Nets, batch: Batch, inputs: None, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        actions = deterministic_actions(nets["actor"], batch.observations)
        q = pessimistic(batch_q(jax.lax.stop_gradient(nets["critic"]), batch.observations, actions), self.config.rho)
        q_loss = -jnp.mean(q / jax.lax.stop_gradient(jnp.mean(jnp.abs(q))))
        bc = jnp.mean(jnp.sum((actions - batch.actions) ** 2, axis=-1) * batch.valid[:, -1])
        return q_loss + self.config.alpha * bc, {"actor/q_loss": q_loss, "actor/bc_loss": self.config.alpha * bc,
                                                 "actor/q": q.mean()}

    def after_update(self, metrics: Metrics) -> tuple[Self, Metrics]:
        return dataclasses.replace(self, updates=self.updates + 1), metrics
