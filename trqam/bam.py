"""BAM: basic adjoint matching by backpropagation through the SDE (the QAM paper's baseline).

ALGORITHMS.md section 2: maximise ``beta * Qbar(s, x_N)`` minus the control cost
``sum_k (2 / g_k^2) ||v_ft - v_base||^2`` along the memoryless SDE, differentiating
through every step instead of using the adjoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.fine_tune import FlowQAgent, FlowQConfig, Nets, mean_q
from trqam.soc import control_gap, memoryless_rollout, path_kl, time_grid


@dataclass(frozen=True)
class BAMConfig(FlowQConfig):
    inv_temp: float = 10.0  # beta


class BAM(FlowQAgent):
    def actor_loss(self, nets: Nets, batch: Batch, inputs: None, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        n, obs = self.config.flow_steps, batch.observations
        noise_key, sde_key = jax.random.split(key)
        x0 = jax.random.normal(noise_key, batch.actions.shape)
        v_base = self.targets["actor_slow"]
        rollout = memoryless_rollout(nets["actor_fast"], v_base, obs, x0, n, sde_key)  # differentiable
        dv = control_gap(nets["actor_fast"], v_base, obs, rollout.states, n)
        _, g = time_grid(n)
        control_cost = jnp.mean(jnp.sum((2.0 / g[:, None] ** 2) * jnp.sum(dv**2, axis=-1), axis=0))
        q = mean_q(self.targets["critic"], obs, jnp.clip(rollout.final, -1.0, 1.0))
        loss = -self.config.inv_temp * jnp.mean(q) + control_cost
        kl = jax.lax.stop_gradient(path_kl(dv, n, self.config.chunk_len))
        return loss, {"actor/bam_loss": loss, "actor/control_cost": control_cost, "actor/path_kl": kl}
