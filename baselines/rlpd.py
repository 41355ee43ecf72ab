"""RLPD: reinforcement learning with prior data (Ball, Smith, Kostrikov, Levine; arXiv
2302.02948), as the QAM paper (arXiv 2601.14234) runs it. docs/ALGORITHMS.md section 4.

SAC with a 10-critic ensemble, trained online only, from scratch: a tanh-Gaussian actor
over the whole action chunk, the chunked pessimistic TD target of the shared agent (the
target's actions are the current actor's samples, with no entropy bonus in the target),
an actor loss ``E[alpha log pi - (mean_k Q_k - rho std_k Q_k)]`` and a temperature tuned
towards ``-0.5 * dim``, plus the QAM paper's behaviour-cloning term ``bc_alpha * -log pi(a|s)``
on the dataset's chunk (clipped to +-(1 - 1e-5), weighted by the chunk's last ``valid`` flag;
per domain, `bench.config.hyperparams.RLPD_BC_ALPHA`). What makes it RLPD is in the online phase (`bench.training.online`):
half of each batch from the offline data and half from the online transitions, and
uniformly random actions for the first 5,000 steps (`bench.config.methods` declares both).

Like every method here it acts in chunks of the task's h actions (the shared harness
executes chunks open loop).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.critic import batch_q, pessimistic
from trqam.fine_tune import FlowQAgent, FlowQConfig, Nets
from trqam.nn import TanhGaussian
from trqam.sac import LogTemperature, sac_actor_loss, temperature_loss


@dataclass(frozen=True)
class RLPDConfig(FlowQConfig):
    target_entropy_scale: float = -0.5  # target entropy = scale * chunk action dim
    bc_alpha: float = 0.0  # weight of -log pi(dataset chunk | s) in the actor loss (the QAM paper's RLPD)
    grad_clip: float | None = None  # plain Adam, as the reference


class RLPD(FlowQAgent):
    HAS_BC_FLOW = False
    HAS_FINE_TUNED_FLOW = False
    POLYAK_TARGETS = ("critic",)

    @classmethod
    def extra_nets(cls, obs_dim, action_dim, config, key) -> Nets:
        return {"actor": TanhGaussian(obs_dim, action_dim, config.hidden_sizes, key=key),
                "log_alpha": LogTemperature()}

    def act(self, nets: Nets, obs: Float[Array, "B O"], key: PRNGKeyArray) -> Float[Array, "B D"]:
        return nets["actor"].sample_batch(obs, key)[0]

    def actor_loss(self, nets: Nets, batch: Batch, inputs: None, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        actions, log_probs = nets["actor"].sample_batch(batch.observations, key)
        q = pessimistic(batch_q(jax.lax.stop_gradient(nets["critic"]), batch.observations, actions), self.config.rho)
        actor = sac_actor_loss(log_probs, q, nets["log_alpha"])
        alpha = temperature_loss(log_probs, nets["log_alpha"], self.config.target_entropy_scale * actions.shape[-1])
        # The QAM paper's BC term: the dataset chunk's log-likelihood, weighted by its last step's validity.
        data_actions = jnp.clip(batch.actions, -1 + 1e-5, 1 - 1e-5)
        log_likelihood = jax.vmap(nets["actor"].log_prob)(batch.observations, data_actions)
        bc = -(log_likelihood * batch.valid[:, -1]).mean() * self.config.bc_alpha
        return actor + alpha + bc, {"actor/sac_loss": actor, "actor/alpha": jnp.exp(nets["log_alpha"].value),
                                    "actor/entropy": -log_probs.mean(), "actor/q": q.mean(), "actor/bc_loss": bc}
