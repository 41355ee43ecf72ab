"""QSM: Q-score matching (Psenka et al., arXiv 2312.11752), with a denoising BC loss as the
QAM paper (arXiv 2601.14234) runs it offline. docs/ALGORITHMS.md section 4.

The DDPM's noise prediction at a noised dataset action is regressed onto
``-inv_temp * grad_a Q(s, x_t)``: its score is pulled along the critic's action gradient.
It acts with the "jump" sampler (trqam/ddpm.py): each step jumps to the predicted clean
action, adds noise and clips, as the QAM paper's reference runs QSM.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from trqam.ddpm_agent import DDPMAgent, DDPMConfig


@dataclass(frozen=True)
class QSMConfig(DDPMConfig):
    inv_temp: float = 1.0  # beta (per-domain with alpha: bench.config.hyperparams.QSM)
    sampler: str = "jump"  # the reference's clip_sampler_before=False, clip_sampler_after=True


class QSM(DDPMAgent):
    def guidance_loss(self, noised, predicted, grad_q, valid_last):
        # || -beta grad_a Q(s, x_t) - eps(s, x_t, t) ||^2
        return jnp.mean(jnp.mean((-self.config.inv_temp * grad_q - predicted) ** 2, axis=-1) * valid_last)
