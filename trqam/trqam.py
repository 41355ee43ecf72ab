"""TRQAM: Trust Region Q-Adjoint Matching (Dong, Lee, Kim, Kim, Shin; arXiv 2605.27079).

docs/ALGORITHMS.md section 3. Same networks and forward SDE as QAM, but the temperature is a
dual variable: the terminal adjoint carries no beta, the loss uses
``sigma_k = g_k / sqrt(lam_scale * lambda)``, and projected dual descent moves lambda so
that the realised path KL (Theorem 1's Girsanov estimator) tracks ``kl_budget``.

With ``external_kl`` (the paper's ablation) sigma stays QAM's ``g_k`` with QAM's beta,
and ``lambda * D_hat`` is added to the loss instead, lambda following the same dual rule.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Self

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.dual import DualConfig, DualState, dual_update
from trqam.fine_tune import AdjointRollout, FlowQAgent, FlowQConfig, Nets, adjoint_metrics
from trqam.soc import adjoint_matching_loss, control_gap, path_kl, time_grid


@dataclass(frozen=True)
class TRQAMConfig(FlowQConfig):
    kl_budget: float = 1.0  # eps_KL, per action step
    online_kl_budget: float | None = None  # a separate budget for the online phase
    external_kl: bool = False  # ablation: QAM's fixed sigma plus lambda * KL in the loss
    inv_temp: float = 1.0  # beta of the external-KL ablation only
    dual: DualConfig = field(default_factory=DualConfig)

    def for_online(self) -> Self:
        """The online phase tracks ``online_kl_budget`` where one is set (docs/ALGORITHMS.md s3)."""
        if self.online_kl_budget is None:
            return self
        return dataclasses.replace(self, kl_budget=self.online_kl_budget)


class TRQAM(FlowQAgent):
    dual: DualState

    @classmethod
    def extra_fields(cls, config: TRQAMConfig) -> dict:
        return {"dual": DualState.init(config.dual)}

    def actor_inputs(self, batch: Batch, key: PRNGKeyArray) -> AdjointRollout:
        # Terminal adjoint without temperature: adj_N = -grad_a Q (beta in the ablation).
        scale = self.config.inv_temp if self.config.external_kl else 1.0
        return self.adjoint_rollout(batch, key, terminal_scale=scale)

    def actor_loss(self, nets: Nets, batch: Batch, inputs: AdjointRollout, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        cfg, n = self.config, self.config.flow_steps
        dv = control_gap(nets["actor_fast"], self.targets["actor_slow"], batch.observations, inputs.rollout.states, n)
        _, g = time_grid(n)
        kl = path_kl(dv, n, cfg.chunk_len)  # Theorem 1: D_hat, reusing the adjoint-matching rollout
        lam = jax.lax.stop_gradient(self.dual.lam)
        if cfg.external_kl:
            am_loss = adjoint_matching_loss(dv, inputs.adjoints, g)
            loss, sigma_scale = am_loss + lam * kl, jnp.ones(())
        else:
            sigma_scale = 1.0 / jnp.sqrt(cfg.dual.lam_scale * lam)  # sigma_k = g_k / sqrt(lambda_eff)
            am_loss = adjoint_matching_loss(dv, inputs.adjoints, g * sigma_scale)
            loss = am_loss
        metrics = {"actor/adjoint_loss": am_loss, "actor/path_kl": jax.lax.stop_gradient(kl),
                   "trqam/lambda": lam, "trqam/sigma_scale": sigma_scale,
                   **adjoint_metrics(inputs)}
        return loss, metrics

    def after_update(self, metrics: Metrics) -> tuple[Self, Metrics]:
        # Projected dual descent, once per gradient step, after the parameter update. Logged
        # as the reference logs it: the EMA after this step, and lambda_eff = lam_scale * lambda
        # after the dual step (the paper's lambda); ``trqam/lambda`` is the raw lambda this
        # step's loss used.
        dual = dual_update(self.dual, metrics["actor/path_kl"], self.config.kl_budget, self.config.dual)
        metrics = {**metrics, "trqam/kl_ema": dual.kl_ema, "trqam/lambda_eff": self.config.dual.lam_scale * dual.lam}
        return dataclasses.replace(self, dual=dual), metrics
