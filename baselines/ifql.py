"""IFQL: implicit flow Q-learning, the flow version of IQL (Park, Li, Levine; arXiv 2502.02538,
as configured in the QAM paper). docs/ALGORITHMS.md section 4.

A value ``V(s)`` regressed by expectile (kappa) onto ``mean - rho * std`` of the target
critics at dataset actions; critics regressed onto ``R + gamma^h m V(s')``; the actor is
the pure BC flow, and the agent acts by drawing ``num_samples`` actions from it and taking
the one with the highest ensemble-min Q.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.critic import batch_q, critic_loss, expectile_loss, pessimistic
from trqam.fine_tune import FlowQAgent, FlowQConfig, Nets
from trqam.flow import euler_sample
from trqam.nn import MLP


@dataclass(frozen=True)
class IFQLConfig(FlowQConfig):
    kappa: float = 0.9  # expectile (per-domain: bench.config.hyperparams.IFQL_KAPPA)
    grad_clip: float | None = None  # plain Adam, as the reference
    num_samples: int = 32  # candidate actions per state when acting


class IFQL(FlowQAgent):
    HAS_FINE_TUNED_FLOW = False  # acts with the BC flow itself

    @classmethod
    def extra_nets(cls, obs_dim, action_dim, config, key) -> Nets:
        return {"value": MLP(obs_dim, 1, config.hidden_sizes, layer_norm=True, key=key)}

    def act(self, nets: Nets, obs: Float[Array, "B O"], key: PRNGKeyArray) -> Float[Array, "B D"]:
        batch, n = obs.shape[0], self.config.num_samples
        repeated = jnp.repeat(obs, n, axis=0)  # [B * n, O]
        noise = jax.random.normal(key, (batch * n, nets["actor_slow"].action_dim))
        candidates = euler_sample(nets["actor_slow"], repeated, noise, self.config.flow_steps)
        q = jnp.min(batch_q(nets["critic"], repeated, candidates), axis=-1).reshape(batch, n)
        best = jnp.argmax(q, axis=-1)
        return candidates.reshape(batch, n, -1)[jnp.arange(batch), best]

    def critic_loss(self, nets: Nets, batch: Batch, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        cfg = self.config
        value = jax.vmap(nets["value"])
        # Expectile regression of V(s) onto the pessimistic target Q at the dataset action,
        # unweighted by ``valid`` as in the reference.
        target_q = pessimistic(batch_q(self.targets["critic"], batch.observations, batch.actions), cfg.rho)
        v = value(batch.observations)[:, 0]
        value_loss = jnp.mean(expectile_loss(jax.lax.stop_gradient(target_q) - v, cfg.kappa))
        # Q <- R + gamma^h m V(s').
        next_v = jax.lax.stop_gradient(value(batch.next_observations)[:, 0])
        target = batch.rewards + cfg.discount**cfg.chunk_len * batch.masks * next_v
        q = batch_q(nets["critic"], batch.observations, batch.actions)
        q_loss = critic_loss(q, target, batch.valid[:, -1])
        # As the reference logs them: critic/q_* describe the TD target R + gamma^h m V(s').
        return q_loss + value_loss, {"critic/loss": q_loss, "value/loss": value_loss, "value/mean": v.mean(),
                                     "value/max": v.max(), "value/min": v.min(), "critic/q_mean": target.mean(),
                                     "critic/q_max": target.max(), "critic/q_min": target.min(),
                                     "critic/prediction_mean": q.mean()}

    def actor_loss(self, nets: Nets, batch: Batch, inputs: None, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        return jnp.zeros(()), {}  # the actor is the BC flow, trained by the shared flow loss
