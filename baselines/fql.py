"""FQL: Flow Q-Learning (Park, Li, Levine; arXiv 2502.02538). docs/ALGORITHMS.md section 4.

A BC flow policy (trained by the flow loss) and a one-step policy ``mu(s, z)`` trained on
``-Q(s, clip(mu)) + alpha ||mu(s, z) - flow_bc(s, z)||^2``; the agent acts with mu, and
the critic's target actions come from mu too. The BC flow is ``actor_slow`` of the shared
`FlowQAgent`; FQL does not use its fine-tuned field.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
from jaxtyping import Array, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.fine_tune import FlowQAgent, FlowQConfig, Nets
from trqam.onestep import ActsWithOneStepPolicy, onestep_loss


@dataclass(frozen=True)
class FQLConfig(FlowQConfig):
    alpha: float = 10.0  # distillation weight (per-domain: bench.config.hyperparams.FQL_ALPHA)
    grad_clip: float | None = None  # plain Adam, as the reference


class FQL(ActsWithOneStepPolicy, FlowQAgent):
    HAS_FINE_TUNED_FLOW = False  # acts with the one-step policy

    def actor_loss(self, nets: Nets, batch: Batch, inputs: None, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        noise = jax.random.normal(key, batch.actions.shape)
        return onestep_loss(nets["onestep"], nets["critic"], nets["actor_slow"], batch.observations, noise,
                            self.config.alpha, self.config.flow_steps)
