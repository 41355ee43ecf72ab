"""What QSM and DAC share: a DDPM actor (trqam/ddpm.py) in place of the flow, trained by
``alpha * denoising BC loss + a critic-gradient term`` that each method defines
(`guidance_loss`), and sampled by ancestral DDPM sampling. No BC pretraining: the flow
checkpoint does not fit a DDPM, so both train from scratch, as in the QAM paper.

Both losses weight each example by its chunk's last valid flag. The reference raises the
per-example loss to the power of that flag instead (``loss ** valid``): the gradients are
the same, and its logged loss is larger by the fraction of invalid examples (an invalid
example contributes 1, not 0). We keep the product; the parity comparison adds that
fraction back before comparing the logged value.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.ddpm import Noised, NoisePredictor, ddpm_loss, ddpm_sample, vp_schedule
from trqam.fine_tune import FlowQAgent, FlowQConfig, Nets, mean_q


@dataclass(frozen=True)
class DDPMConfig(FlowQConfig):
    alpha: float = 1.0  # weight of the denoising BC loss
    time_dim: int = 64  # Fourier features of the step index
    # "posterior" (DAC) or "jump" (QSM): trqam.ddpm's two samplers, the reference's
    # clip_sampler_before / clip_sampler_after per method
    sampler: str = "posterior"


class DDPMAgent(FlowQAgent):
    HAS_BC_FLOW = False
    HAS_FINE_TUNED_FLOW = False
    POLYAK_TARGETS = ("critic",)

    @classmethod
    def extra_nets(cls, obs_dim, action_dim, config, key) -> Nets:
        return {"ddpm": NoisePredictor(obs_dim, action_dim, config.hidden_sizes, layer_norm=config.actor_layer_norm,
                                       time_dim=config.time_dim, key=key)}

    @property
    def schedule(self):
        return vp_schedule(self.config.flow_steps)  # flow_steps = the number of denoising steps (10)

    def act(self, nets: Nets, obs: Float[Array, "B O"], key: PRNGKeyArray) -> Float[Array, "B D"]:
        noise_key, sample_key = jax.random.split(key)
        noise = jax.random.normal(noise_key, (obs.shape[0], nets["ddpm"].action_dim))
        return ddpm_sample(nets["ddpm"], self.schedule, obs, noise, sample_key, sampler=self.config.sampler)

    def q_gradient(self, obs: Float[Array, "B O"], actions: Float[Array, "B D"]) -> Float[Array, "B D"]:
        """``grad_a mean_k Q_target_k(s, a)`` at (noisy) actions, no gradient to the critic."""
        return jax.grad(lambda a: jnp.sum(mean_q(self.targets["critic"], obs, a)))(actions)

    def guidance_loss(self, noised: Noised, predicted: Float[Array, "B D"], grad_q: Float[Array, "B D"],
                      valid_last: Float[Array, " B"]) -> Array:
        raise NotImplementedError

    def actor_loss(self, nets: Nets, batch: Batch, inputs: None, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        obs, valid = batch.observations, batch.valid[:, -1]
        bc, noised, predicted = ddpm_loss(nets["ddpm"], self.schedule, obs, batch.actions, valid, key)
        guidance = self.guidance_loss(noised, predicted, self.q_gradient(obs, noised.noisy), valid)
        return self.config.alpha * bc + guidance, {"actor/ddpm_loss": bc, "actor/guidance_loss": guidance}

    def validation_metrics(self, batch: Batch, key: PRNGKeyArray) -> Metrics:
        critic_key, ddpm_key = jax.random.split(key)
        metrics = super().validation_metrics(batch, critic_key)
        bc, _, _ = ddpm_loss(self.nets["ddpm"], self.schedule, batch.observations, batch.actions,
                             batch.valid[:, -1], ddpm_key)
        return {**metrics, "actor/ddpm_loss": bc}


