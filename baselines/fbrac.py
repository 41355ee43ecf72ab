"""FBRAC: behaviour-regularised actor-critic with a flow actor, trained by backpropagating
the critic through every Euler step (the FQL paper's baseline, Park, Li, Levine, arXiv
2502.02538, as the QAM paper runs it). docs/ALGORITHMS.md section 4.

Actor loss: ``BC_flow - Q(s, flow(s, z)) / alpha``; the BC part is the shared flow loss,
this file adds the Q part through the differentiable Euler ODE.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.fine_tune import FlowQAgent, FlowQConfig, Nets, mean_q
from trqam.flow import euler_sample


@dataclass(frozen=True)
class FBRACConfig(FlowQConfig):
    alpha: float = 1.0  # BC strength: the Q term is divided by it (per-domain: bench.config.hyperparams.FBRAC_ALPHA)
    grad_clip: float | None = None  # plain Adam, as the reference


class FBRAC(FlowQAgent):
    HAS_FINE_TUNED_FLOW = False  # the Q-trained flow is the BC flow's slot

    def actor_loss(self, nets: Nets, batch: Batch, inputs: None, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        noise = jax.random.normal(key, batch.actions.shape)
        actions = euler_sample(nets["actor_slow"], batch.observations, noise, self.config.flow_steps)  # differentiable
        q = mean_q(nets["critic"], batch.observations, actions)
        q_loss = -jnp.mean(q) / self.config.alpha
        return q_loss, {"actor/q_loss": q_loss, "actor/q_policy": q.mean()}
