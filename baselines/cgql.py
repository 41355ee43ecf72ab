"""CGQL: classifier-guided flow Q-learning, the QAM paper's guidance baseline (arXiv
2601.14234), with its -M and -L modes. docs/ALGORITHMS.md section 4.

A BC flow is guided at sampling time by the critic's action gradient, used as the score
of ``exp(inv_temp * Q)``: for every Euler step with t > 0 the (EMA) BC velocity gets
``guidance * (inv_temp * (1 - t) * grad_x Q + x) / t`` added. The critic is time-conditioned,
``Q(s, x, t)``:

* ``simple`` (CGQL): only Q(s, a, 1) is trained (by TD), and guidance queries it at t = 1;
* ``mse`` (CGQL-M): Q(s, x_t, t) on noisy actions ``x_t = (1 - t) x0 + t a`` is distilled
  towards the target critic's Q(s, a, 1) by squared error;
* ``linex`` (CGQL-L): the same distillation with the linex / Itakura-Saito loss on
  ``delta = inv_temp (Q_target(s, a, 1) - Q(s, x_t, t))``, exponent clipped at ``linex_clip``.

The distillation loss is weighted by ``noisy_coef``; guidance then queries Q at the step's t.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.critic import CriticEnsemble, batch_q, critic_loss, td_target
from trqam.fine_tune import FlowQAgent, FlowQConfig, Nets


@dataclass(frozen=True)
class CGQLConfig(FlowQConfig):
    mode: Literal["simple", "mse", "linex"] = "simple"
    guidance: float = 0.1  # per-domain: bench.config.hyperparams.CGQL_GUIDANCE / CGQL_M / CGQL_L
    inv_temp: float = 10.0  # docs/PROTOCOL.md: every CGQL variant uses 10
    noisy_coef: float = 0.001  # weight of the noisy-critic distillation (-M, -L)
    linex_clip: float = 5.0
    grad_clip: float | None = None  # plain Adam, as the reference


def timed_q(critic: CriticEnsemble, obs: Float[Array, "B O"], actions: Float[Array, "B D"],
            t: Float[Array, " B"]) -> Float[Array, "B K"]:
    """``Q_k(s, x, t)``: the shared ensemble with the flow time appended to the action."""
    return batch_q(critic, obs, jnp.concatenate([actions, t[:, None]], axis=-1))


class CGQL(FlowQAgent):
    HAS_FINE_TUNED_FLOW = False  # guides the BC flow instead

    @classmethod
    def extra_nets(cls, obs_dim, action_dim, config, key) -> Nets:
        # Replaces the shared critic by its time-conditioned version.
        return {"critic": CriticEnsemble(obs_dim, action_dim + 1, config.hidden_sizes, config.num_critics, key=key)}

    def act(self, nets: Nets, obs: Float[Array, "B O"], key: PRNGKeyArray) -> Float[Array, "B D"]:
        """Guided Euler ODE of the EMA BC flow; the online critic supplies grad_x Q."""
        cfg, batch = self.config, obs.shape[0]
        field = jax.vmap(self.targets["actor_slow"], in_axes=(0, 0, None))
        critic = jax.lax.stop_gradient(nets["critic"])

        def step(x, k):
            t = k / cfg.flow_steps
            q_time = jnp.ones(batch) if cfg.mode == "simple" else jnp.full(batch, t)
            if cfg.inv_temp == 0:  # the reference drops the whole guidance term, x / t included
                return x + field(obs, x, t) / cfg.flow_steps, None
            score = jax.grad(lambda a: jnp.sum(jnp.mean(timed_q(critic, obs, a, q_time), axis=-1)))(x)
            guided = cfg.guidance * (cfg.inv_temp * (1 - t) * score + x) / jnp.maximum(t, 1.0 / cfg.flow_steps)
            velocity = field(obs, x, t) + jnp.where(k > 0, 1.0, 0.0) * guided  # no guidance at t = 0
            return x + velocity / cfg.flow_steps, None

        noise = jax.random.normal(key, (batch, self.targets["actor_slow"].action_dim))
        x, _ = jax.lax.scan(step, noise, jnp.arange(cfg.flow_steps))
        return jnp.clip(x, -1.0, 1.0)

    def critic_loss(self, nets: Nets, batch: Batch, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        cfg = self.config
        act_key, time_key, noise_key = jax.random.split(key, 3)
        obs, actions, valid = batch.observations, batch.actions, batch.valid[:, -1]
        ones = jnp.ones(obs.shape[0])
        # TD regression of Q(s, a, 1), the shared chunked pessimistic target.
        next_actions = jax.lax.stop_gradient(self.act(nets, batch.next_observations, act_key))
        next_q = timed_q(self.targets["critic"], batch.next_observations, next_actions, ones)
        target = td_target(next_q, batch.rewards, batch.masks, cfg.discount, cfg.chunk_len, cfg.rho)
        q = timed_q(nets["critic"], obs, actions, ones)
        loss = critic_loss(q, target, valid)
        metrics = {"critic/loss": loss, "critic/q_mean": q.mean(), "critic/q_max": q.max(), "critic/q_min": q.min(),
                   "critic/target_mean": target.mean()}
        if cfg.mode == "simple":
            return loss, metrics
        # Distil Q(s, x_t, t) towards the target critic's Q(s, a, 1).
        t = jax.random.uniform(time_key, ones.shape)
        x_t = (1 - t[:, None]) * jax.random.normal(noise_key, actions.shape) + t[:, None] * actions
        noisy_target = jax.lax.stop_gradient(timed_q(self.targets["critic"], obs, actions, ones))
        noisy_q = timed_q(nets["critic"], obs, x_t, t)
        if cfg.mode == "mse":
            per_member = (noisy_q - noisy_target) ** 2
        else:
            delta = cfg.inv_temp * (noisy_target - noisy_q)
            # exp(delta) + inv_temp * Q = exp(delta) - delta + const; linear beyond the clip.
            per_member = jnp.where(delta > cfg.linex_clip, delta,
                                   jnp.exp(jnp.minimum(delta, cfg.linex_clip)) + cfg.inv_temp * noisy_q)
        noisy_loss = jnp.mean(per_member * valid[:, None])
        return loss + cfg.noisy_coef * noisy_loss, {**metrics, "critic/noisy_loss": noisy_loss}

    def actor_loss(self, nets: Nets, batch: Batch, inputs: None, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        return jnp.zeros(()), {}  # the actor is the BC flow, trained by the shared flow loss
