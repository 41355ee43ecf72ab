"""QSM: Q-score matching (Psenka et al., arXiv 2312.11752), with a denoising BC loss as the
QAM paper (arXiv 2601.14234) runs it offline. ALGORITHMS.md section 4.

The DDPM's noise prediction at a noised dataset action is regressed onto
``-inv_temp * grad_a Q(s, x_t)``: its score is pulled along the critic's action gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from trqam.ddpm_agent import DDPMAgent, DDPMConfig


@dataclass(frozen=True)
class QSMConfig(DDPMConfig):
    inv_temp: float = 1.0  # beta (per-domain with alpha: bench.hyperparams.QSM)


class QSM(DDPMAgent):
    def guidance_loss(self, noised, predicted, grad_q, valid_last):
        # || -beta grad_a Q(s, x_t) - eps(s, x_t, t) ||^2
        return jnp.mean(jnp.mean((-self.config.inv_temp * grad_q - predicted) ** 2, axis=-1) * valid_last)
