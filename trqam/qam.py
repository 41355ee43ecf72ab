"""QAM: Q-learning with Adjoint Matching (Li and Levine, arXiv 2601.14234), and its
QAM-E (edit policy) and QAM-F (one-step policy) variants. docs/ALGORITHMS.md section 2.

QAM fine-tunes the flow by adjoint matching towards ``pi_base exp(beta Q)`` with a fixed
inverse temperature ``beta`` (``inv_temp``).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
from jaxtyping import Array, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.edit import EditsActions
from trqam.fine_tune import AdjointRollout, FlowQAgent, FlowQConfig, Nets, adjoint_metrics
from trqam.onestep import ActsWithOneStepPolicy, onestep_loss
from trqam.soc import adjoint_matching_loss, control_gap, path_kl, time_grid


@dataclass(frozen=True)
class QAMConfig(FlowQConfig):
    inv_temp: float = 1.0  # beta


class QAM(FlowQAgent):
    def actor_inputs(self, batch: Batch, key: PRNGKeyArray) -> AdjointRollout:
        # Steps 1-3: memoryless SDE of v_ft; adj_N = -beta grad Q; lean adjoint backwards.
        return self.adjoint_rollout(batch, key, terminal_scale=self.config.inv_temp)

    def actor_loss(self, nets: Nets, batch: Batch, inputs: AdjointRollout, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        # Step 4: sum_k || 2 (v_ft - v_base) / g_k + g_k adj_k ||^2 (sigma = g).
        n = self.config.flow_steps
        dv = control_gap(nets["actor_fast"], self.targets["actor_slow"], batch.observations, inputs.rollout.states, n)
        _, g = time_grid(n)
        loss = adjoint_matching_loss(dv, inputs.adjoints, g)
        kl = jax.lax.stop_gradient(path_kl(dv, n, self.config.chunk_len))
        return loss, {"actor/adjoint_loss": loss, "actor/path_kl": kl, **adjoint_metrics(inputs)}


@dataclass(frozen=True)
class QAMEConfig(QAMConfig):
    edit_scale: float = 0.1
    target_entropy_scale: float = -0.5  # target entropy = scale * action_dim


class QAME(EditsActions, QAM):
    """QAM plus an edit policy (trqam/edit.py): ``a = clip(a_flow + edit_scale * e)``.

    With ``edit_scale = 0`` (scene, cube-double) there is no edit policy at all, as in the
    reference: the agent is plain QAM."""

    @classmethod
    def extra_nets(cls, obs_dim, action_dim, config, key):
        return super().extra_nets(obs_dim, action_dim, config, key) if config.edit_scale > 0 else {}

    def act(self, nets, obs, key):
        return super().act(nets, obs, key) if self.config.edit_scale > 0 else QAM.act(self, nets, obs, key)

    def actor_loss(self, nets, batch, inputs, key) -> tuple[Array, Metrics]:
        if self.config.edit_scale == 0:
            return super().actor_loss(nets, batch, inputs, key)
        flow_key, edit_key = jax.random.split(key)
        flow_loss, metrics = super().actor_loss(nets, batch, inputs, flow_key)
        edit_loss, edit_metrics = self.edit_loss(nets, batch.observations, edit_key)
        return flow_loss + edit_loss, {**metrics, **edit_metrics}


@dataclass(frozen=True)
class QAMFConfig(QAMConfig):
    fql_alpha: float = 300.0


class QAMF(ActsWithOneStepPolicy, QAM):
    """QAM plus a one-step policy ``mu(s, z)`` distilled from the fine-tuned flow; acts with mu.

    With ``fql_alpha = 0`` (puzzle-3x3, cube-double) the reference builds no one-step policy
    and runs plain QAM (acting and bootstrapping with the flow); so does this agent."""

    @classmethod
    def extra_nets(cls, obs_dim, action_dim, config, key):
        return super().extra_nets(obs_dim, action_dim, config, key) if config.fql_alpha > 0 else {}

    def act(self, nets, obs, key):
        return super().act(nets, obs, key) if self.config.fql_alpha > 0 else QAM.act(self, nets, obs, key)

    def actor_loss(self, nets, batch, inputs, key) -> tuple[Array, Metrics]:
        flow_loss, metrics = super().actor_loss(nets, batch, inputs, key)
        if self.config.fql_alpha == 0:
            return flow_loss, metrics
        # -Q(s, clip(mu(s, z))) + fql_alpha ||mu(s, z) - flow_ft(s, z)||^2
        noise = jax.random.normal(key, batch.actions.shape)
        loss, onestep_metrics = onestep_loss(nets["onestep"], nets["critic"], nets["actor_fast"], batch.observations,
                                             noise, self.config.fql_alpha, self.config.flow_steps)
        return flow_loss + loss, {**metrics, **onestep_metrics}
