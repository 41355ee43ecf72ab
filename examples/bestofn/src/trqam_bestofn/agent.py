"""Best-of-N: act with the best of N samples of the BC flow under the critic.

The method changes nothing in training but how it acts (and so the TD target's next actions):

    a(s) = argmax_{a_i, i = 1..N} mean_k Q_k(s, a_i),   a_i = clip(ODE of v_bc from x_i ~ N(0, I))

The BC flow keeps its flow-matching loss (the shared `FlowQAgent`'s ``actor_slow``); there is no
fine-tuned field and no actor loss. Shapes: B observations, D action dimensions, N samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.fine_tune import FlowQAgent, FlowQConfig, Nets, mean_q
from trqam.flow import euler_sample


@dataclass(frozen=True)
class BestOfNConfig(FlowQConfig):
    num_samples: int = 8  # N: BC flow samples per state, ranked by the critic
    grad_clip: float | None = None


class BestOfN(FlowQAgent):
    HAS_FINE_TUNED_FLOW = False  # acts with the BC flow, ranked

    def act(self, nets: Nets, obs: Float[Array, "B O"], key: PRNGKeyArray) -> Float[Array, "B D"]:
        field = nets["actor_slow"]
        n, b = self.config.num_samples, obs.shape[0]
        noise = jax.random.normal(key, (n, b, field.action_dim))
        samples = jax.vmap(lambda x: euler_sample(field, obs, x, self.config.flow_steps))(noise)  # [N, B, D]
        q = jax.vmap(lambda a: mean_q(nets["critic"], obs, a))(samples)  # [N, B]
        best = jnp.argmax(q, axis=0)  # [B]
        return jnp.take_along_axis(samples, best[None, :, None], axis=0)[0]

    def actor_loss(self, nets: Nets, batch: Batch, inputs: None, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        return jnp.zeros(()), {}
