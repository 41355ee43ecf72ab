"""BAM: basic adjoint matching by backpropagation through the SDE (the QAM paper's baseline).

docs/ALGORITHMS.md section 2: maximise ``beta * (mean_k Q_k - rho std_k Q_k)(s, x_N)`` minus the
control cost ``sum_{k<N-1} (2 / g_k^2) ||v_ft(x_k) - v_base(x_k)||^2`` along the memoryless
SDE, differentiating through every step instead of using the adjoint. As the reference
(github.com/ColinQiyangLi/qam): the online critic (its parameters held fixed) at the
unclipped ``x_N``, and no control cost on the last, deterministic base step.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.critic import batch_q, pessimistic
from trqam.fine_tune import FlowQAgent, FlowQConfig, Nets
from trqam.soc import Rollout, memoryless_rollout, path_kl, time_grid


@dataclass(frozen=True)
class BAMConfig(FlowQConfig):
    inv_temp: float = 10.0  # beta


class BAM(FlowQAgent):
    def bam_rollout(self, nets: Nets, obs: Float[Array, "B O"], key: PRNGKeyArray, shape) -> Rollout:
        """The memoryless SDE of ``v_ft`` from fresh noise, differentiable in ``v_ft``."""
        noise_key, sde_key = jax.random.split(key)
        x0 = jax.random.normal(noise_key, shape)
        return memoryless_rollout(nets["actor_fast"], self.targets["actor_slow"], obs, x0, self.config.flow_steps,
                                  sde_key)

    def actor_loss(self, nets: Nets, batch: Batch, inputs: None, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        n, obs = self.config.flow_steps, batch.observations
        rollout = self.bam_rollout(nets, obs, key, batch.actions.shape)
        ft = jax.vmap(nets["actor_fast"], in_axes=(0, 0, None))
        base = jax.vmap(self.targets["actor_slow"], in_axes=(0, 0, None))
        ts, g = time_grid(n)
        # The control gap along the SDE; both fields see x_k, which carries the gradient. The
        # last step is the base ODE, so it has no control and no cost.
        dv = jax.vmap(lambda x, t: ft(obs, x, t) - base(obs, x, t))(rollout.states, ts)  # [N, B, D]
        control_cost = jnp.mean(jnp.sum((2.0 / g[:-1, None] ** 2) * jnp.sum(dv[:-1] ** 2, axis=-1), axis=0))
        q = pessimistic(batch_q(jax.lax.stop_gradient(nets["critic"]), obs, rollout.final), self.config.rho)
        loss = -self.config.inv_temp * jnp.mean(q) + control_cost
        kl = jax.lax.stop_gradient(path_kl(dv, n, self.config.chunk_len))
        return loss, {"actor/bam_loss": loss, "actor/control_cost": control_cost, "actor/path_kl": kl}
