"""ReBRAC: revisited behaviour-regularised actor-critic (Tarasov et al., arXiv 2305.09836),
as the QAM paper (arXiv 2601.14234) runs it. ALGORITHMS.md section 4.

A deterministic tanh actor trained on ``-Q(s, pi(s)) / mean|Q| + alpha ||pi(s) - a_data||^2``;
the TD target's actions come from a Polyak target actor with clipped Gaussian noise
(``target_noise``, clipped at ``noise_clip``). No flow, no BC pretraining: trained from
scratch. The original's critic-side BC penalty is not part of the QAM paper's sweep
(PROTOCOL.md lists only alpha and the target noise) and is left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.fine_tune import FlowQAgent, FlowQConfig, Nets, mean_q
from trqam.nn import MLP


@dataclass(frozen=True)
class ReBRACConfig(FlowQConfig):
    alpha: float = 0.01  # actor BC weight (per-domain: bench.hyperparams.REBRAC)
    target_noise: float = 0.0  # std of the target-policy noise (per-domain)
    noise_clip: float = 0.5
    grad_clip: float | None = None  # plain Adam, as the reference


def deterministic_actions(actor: MLP, obs: Float[Array, "B O"]) -> Float[Array, "B D"]:
    return jnp.tanh(jax.vmap(actor)(obs))


class ReBRAC(FlowQAgent):
    HAS_BC_FLOW = False
    HAS_FINE_TUNED_FLOW = False
    POLYAK_TARGETS = ("critic", "actor")

    @classmethod
    def extra_nets(cls, obs_dim, action_dim, config, key) -> Nets:
        return {"actor": MLP(obs_dim, action_dim, config.hidden_sizes, layer_norm=config.actor_layer_norm, key=key)}

    def act(self, nets: Nets, obs: Float[Array, "B O"], key: PRNGKeyArray) -> Float[Array, "B D"]:
        return deterministic_actions(nets["actor"], obs)

    def next_actions(self, nets: Nets, next_obs: Float[Array, "B O"], key: PRNGKeyArray) -> Float[Array, "B D"]:
        """The target actor's action plus clipped Gaussian noise (TD3's target smoothing)."""
        actions = deterministic_actions(self.targets["actor"], next_obs)
        noise = jnp.clip(self.config.target_noise * jax.random.normal(key, actions.shape),
                         -self.config.noise_clip, self.config.noise_clip)
        return jnp.clip(actions + noise, -1.0, 1.0)

    def actor_loss(self, nets: Nets, batch: Batch, inputs: None, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        actions = deterministic_actions(nets["actor"], batch.observations)
        q = mean_q(nets["critic"], batch.observations, actions)
        q_loss = -jnp.mean(q) / jax.lax.stop_gradient(jnp.mean(jnp.abs(q)) + 1e-6)
        bc = jnp.mean(jnp.sum((actions - batch.actions) ** 2, axis=-1) * batch.valid[:, -1])
        return q_loss + self.config.alpha * bc, {"actor/q_loss": q_loss, "actor/bc_loss": bc, "actor/q": q.mean()}
