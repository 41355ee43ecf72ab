"""DSRL: diffusion steering by RL in the latent-noise space (Wagenmaker et al., arXiv
2506.15799; the noise-aliased variant, as the QAM paper, arXiv 2601.14234, runs it).
docs/ALGORITHMS.md section 4.

The BC flow is left as trained by the flow loss; a tanh-Gaussian noise policy picks the
flow's starting noise ``z = noise_scale * e`` and the (EMA) BC flow decodes it into an action.
A noise-space critic ``Q_z(s, z)`` is distilled from ``Q(s, decode(s, z))`` at ``z ~ N(0, I)``,
and the noise policy is trained by SAC on ``Q_z`` with the temperature tuned towards
``-0.5 * dim``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.critic import CriticEnsemble, batch_q
from trqam.fine_tune import FlowQAgent, FlowQConfig, Nets, mean_q
from trqam.flow import euler_sample
from trqam.nn import TanhGaussian
from trqam.sac import LogTemperature, sac_actor_loss, temperature_loss


@dataclass(frozen=True)
class DSRLConfig(FlowQConfig):
    noise_scale: float = 1.0  # per-domain: bench.config.hyperparams.DSRL_NOISE
    target_entropy_scale: float = -0.5  # target entropy = scale * action_dim
    grad_clip: float | None = None  # plain Adam, as the reference


class DSRL(FlowQAgent):
    HAS_FINE_TUNED_FLOW = False  # steers the BC flow through its noise

    @classmethod
    def extra_nets(cls, obs_dim, action_dim, config, key) -> Nets:
        policy_key, critic_key = jax.random.split(key)
        return {"noise_policy": TanhGaussian(obs_dim, action_dim, config.hidden_sizes, key=policy_key),
                "noise_critic": CriticEnsemble(obs_dim, action_dim, config.hidden_sizes, config.num_critics,
                                               key=critic_key),
                "log_alpha": LogTemperature()}

    def decode(self, obs: Float[Array, "B O"], noise: Float[Array, "B D"]) -> Float[Array, "B D"]:
        """The EMA BC flow's Euler ODE from the given noise, clipped."""
        return euler_sample(self.targets["actor_slow"], obs, noise, self.config.flow_steps)

    def noise_actions(self, nets: Nets, obs: Float[Array, "B O"], key: PRNGKeyArray):
        """``z = noise_scale * e``, ``e ~ pi_noise(. | s)``, and ``log pi_noise(e)``."""
        e, log_probs = nets["noise_policy"].sample_batch(obs, key)
        return self.config.noise_scale * e, log_probs

    def act(self, nets: Nets, obs: Float[Array, "B O"], key: PRNGKeyArray) -> Float[Array, "B D"]:
        return self.decode(obs, self.noise_actions(nets, obs, key)[0])

    def critic_loss(self, nets: Nets, batch: Batch, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        td_key, noise_key = jax.random.split(key)
        loss, metrics = super().critic_loss(nets, batch, td_key)
        # Q_z(s, z) distilled, member by member, from Q(s, decode(s, z)) at z ~ N(0, I).
        obs = batch.observations
        noise = jax.random.normal(noise_key, batch.actions.shape)
        target = jax.lax.stop_gradient(batch_q(nets["critic"], obs, self.decode(obs, noise)))
        distill = jnp.mean((batch_q(nets["noise_critic"], obs, noise) - target) ** 2)
        return loss + distill, {**metrics, "noise_critic/distill_loss": distill}

    def actor_loss(self, nets: Nets, batch: Batch, inputs: None, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        obs = batch.observations
        noise, log_probs = self.noise_actions(nets, obs, key)
        q = mean_q(nets["noise_critic"], obs, noise)
        actor = sac_actor_loss(log_probs, q, nets["log_alpha"])
        alpha = temperature_loss(log_probs, nets["log_alpha"], self.config.target_entropy_scale * noise.shape[-1])
        return actor + alpha, {"noise_policy/loss": actor, "noise_policy/alpha": jnp.exp(nets["log_alpha"].value),
                               "noise_policy/entropy": -log_probs.mean(), "noise_policy/q": q.mean()}
