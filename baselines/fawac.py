"""FAWAC: advantage-weighted actor-critic (AWAC, Nair et al., arXiv 2006.09359) with a flow
actor, as the QAM paper (arXiv 2601.14234) runs it. docs/ALGORITHMS.md section 4.

A value ``V(s)`` is regressed onto the target critics at dataset actions; the BC flow's
loss is weighted per example by ``min(exp(inv_temp * (Q(s, a) - V(s))), 100)`` and the
agent acts with that flow's Euler ODE.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.critic import batch_q
from trqam.fine_tune import FlowQAgent, FlowQConfig, Nets, mean_q
from trqam.flow import bc_flow_loss
from trqam.nn import MLP


@dataclass(frozen=True)
class FAWACConfig(FlowQConfig):
    inv_temp: float = 0.8  # per-domain: bench.config.hyperparams.FAWAC_BETA
    max_weight: float = 100.0  # cap on exp(inv_temp * advantage), as IQL/AWAC implementations do
    grad_clip: float | None = None  # plain Adam, as the reference


class FAWAC(FlowQAgent):
    HAS_FINE_TUNED_FLOW = False  # the advantage-weighted flow is the BC flow's slot

    @classmethod
    def extra_nets(cls, obs_dim, action_dim, config, key) -> Nets:
        return {"value": MLP(obs_dim, 1, config.hidden_sizes, layer_norm=True, key=key)}

    def advantage_weights(self, nets: Nets, batch: Batch) -> Float[Array, " B"]:
        """``min(exp(inv_temp (mean_k Q_k(s, a) - V(s))), max_weight)`` at dataset actions, no gradient."""
        q = mean_q(nets["critic"], batch.observations, batch.actions)
        v = jax.vmap(nets["value"])(batch.observations)[:, 0]
        weights = jnp.minimum(jnp.exp(self.config.inv_temp * (q - v)), self.config.max_weight)
        return jax.lax.stop_gradient(weights)

    def actor_inputs(self, batch: Batch, key: PRNGKeyArray) -> Float[Array, " B"]:
        return self.advantage_weights(self.nets, batch)

    def critic_loss(self, nets: Nets, batch: Batch, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        loss, metrics = super().critic_loss(nets, batch, key)
        # V(s) regressed onto every target critic member at the dataset action.
        target_q = jax.lax.stop_gradient(batch_q(self.targets["critic"], batch.observations, batch.actions))
        v = jax.vmap(nets["value"])(batch.observations)
        value_loss = jnp.mean((target_q - v) ** 2 * batch.valid[:, -1:])
        return loss + value_loss, {**metrics, "value/loss": value_loss, "value/mean": v.mean()}

    def flow_loss(self, nets: Nets, batch: Batch, weights: Float[Array, " B"], key: PRNGKeyArray) -> Array:
        return bc_flow_loss(nets["actor_slow"], batch.observations, batch.actions, batch.valid, key, weights=weights)

    def actor_loss(self, nets: Nets, batch: Batch, weights: Float[Array, " B"], key: PRNGKeyArray):
        return jnp.zeros(()), {"actor/weight_mean": weights.mean(), "actor/weight_max": weights.max()}
