"""DAC: diffusion actor-critic (Fang et al., arXiv 2405.20555) as the QAM paper (arXiv
2601.14234) runs it. docs/ALGORITHMS.md section 4.

The DDPM's noise prediction is pushed against the critic's action gradient scaled by the
step's noise level, ``E[sqrt(1 - alpha_bar_t) grad_a Q(s, x_t) . eps(s, x_t, t)]``, which
moves denoised actions up the critic; the denoising BC loss (weight alpha) keeps them on
the data. It acts with the DDPM posterior-mean sampler around the clipped predicted clean
action (trqam/ddpm.py's "posterior"), as the QAM paper's reference runs DAC.
"""

from __future__ import annotations

import jax.numpy as jnp

from trqam.ddpm_agent import DDPMAgent, DDPMConfig

DACConfig = DDPMConfig  # alpha (per-domain: bench.config.hyperparams.DAC_ALPHA)


class DAC(DDPMAgent):
    def guidance_loss(self, noised, predicted, grad_q, valid_last):
        return jnp.mean(jnp.mean(noised.noise_std * grad_q * predicted, axis=-1) * valid_last)
