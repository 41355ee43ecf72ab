"""QAM: Q-learning with Adjoint Matching (Li and Levine, arXiv 2601.14234), and its
QAM-E (edit policy) and QAM-F (one-step policy) variants. ALGORITHMS.md section 2.

QAM fine-tunes the flow by adjoint matching towards ``pi_base exp(beta Q)`` with a fixed
inverse temperature ``beta`` (``inv_temp``).
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.fine_tune import AdjointRollout, FlowQAgent, FlowQConfig, Nets, adjoint_metrics, mean_q
from trqam.nn import TanhGaussian
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


class LogTemperature(eqx.Module):
    value: Float[Array, ""]


class QAME(QAM):
    """QAM plus an edit policy: ``a = clip(a_flow + edit_scale * e)``, e tanh-Gaussian, SAC-trained."""

    @classmethod
    def extra_nets(cls, obs_dim, action_dim, config, key) -> Nets:
        return {"edit": TanhGaussian(obs_dim + action_dim, action_dim, config.hidden_sizes, key=key),
                "log_alpha": LogTemperature(jnp.zeros(()))}

    def _edit(self, nets: Nets, obs, flow_actions, key):
        keys = jax.random.split(key, obs.shape[0])
        edits, log_probs = jax.vmap(nets["edit"])(jnp.concatenate([obs, flow_actions], axis=-1), keys)
        return jnp.clip(flow_actions + self.config.edit_scale * edits, -1.0, 1.0), log_probs

    def act(self, nets: Nets, obs: Float[Array, "B O"], key: PRNGKeyArray) -> Float[Array, "B D"]:
        flow_key, edit_key = jax.random.split(key)
        flow_actions = super().act(nets, obs, flow_key)
        return self._edit(nets, obs, flow_actions, edit_key)[0]

    def actor_loss(self, nets, batch, inputs, key) -> tuple[Array, Metrics]:
        flow_loss, metrics = super().actor_loss(nets, batch, inputs, key)
        flow_key, edit_key = jax.random.split(key)
        obs = batch.observations
        flow_actions = jax.lax.stop_gradient(super().act(nets, obs, flow_key))
        actions, log_probs = self._edit(nets, obs, flow_actions, edit_key)
        alpha = jnp.exp(nets["log_alpha"].value)
        # SAC actor loss on the edit, and the automatic temperature towards the target entropy.
        edit_loss = jnp.mean(jax.lax.stop_gradient(alpha) * log_probs - mean_q(nets["critic"], obs, actions))
        target_entropy = self.config.target_entropy_scale * actions.shape[-1]
        alpha_loss = -jnp.mean(alpha * jax.lax.stop_gradient(log_probs + target_entropy))
        return flow_loss + edit_loss + alpha_loss, {**metrics, "edit/loss": edit_loss, "edit/alpha": alpha,
                                                   "edit/entropy": -log_probs.mean()}


@dataclass(frozen=True)
class QAMFConfig(QAMConfig):
    fql_alpha: float = 300.0


class QAMF(ActsWithOneStepPolicy, QAM):
    """QAM plus a one-step policy ``mu(s, z)`` distilled from the fine-tuned flow; acts with mu."""

    def actor_loss(self, nets, batch, inputs, key) -> tuple[Array, Metrics]:
        flow_loss, metrics = super().actor_loss(nets, batch, inputs, key)
        # -Q(s, clip(mu(s, z))) + fql_alpha ||mu(s, z) - flow_ft(s, z)||^2
        noise = jax.random.normal(key, batch.actions.shape)
        loss, onestep_metrics = onestep_loss(nets["onestep"], nets["critic"], nets["actor_fast"], batch.observations,
                                             noise, self.config.fql_alpha, self.config.flow_steps)
        return flow_loss + loss, {**metrics, **onestep_metrics}
