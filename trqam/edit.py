"""The edit policy of EXPO (arXiv 2507.07986), shared by QAM-E and FEdit (docs/ALGORITHMS.md s2, s4).

On top of a flow's action ``a_flow`` the agent acts with
``clip(a_flow + edit_scale * e)``, ``e ~ pi_edit(. | s, a_flow)`` a tanh-Gaussian trained by
SAC on the critic: ``E[alpha log pi_edit - Q(s, clip(a_flow + edit_scale e))]`` with the
temperature tuned towards ``target_entropy_scale * dim``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from trqam.agent import Metrics
from trqam.fine_tune import mean_q
from trqam.nn import TanhGaussian
from trqam.sac import LogTemperature, sac_actor_loss, temperature_loss


class EditsActions(eqx.Module):
    """Mixin for a `FlowQAgent` whose config has ``edit_scale`` and ``target_entropy_scale``:
    adds ``nets['edit']`` and ``nets['log_alpha']``, and edits the flow's actions when acting."""

    @classmethod
    def extra_nets(cls, obs_dim, action_dim, config, key):
        return {"edit": TanhGaussian(obs_dim + action_dim, action_dim, config.hidden_sizes, key=key),
                "log_alpha": LogTemperature()}

    def edit(self, nets, obs: Float[Array, "B O"], flow_actions: Float[Array, "B D"], key: PRNGKeyArray):
        """Edited actions ``clip(a_flow + edit_scale e)`` and ``log pi_edit(e)``."""
        edits, log_probs = nets["edit"].sample_batch(jnp.concatenate([obs, flow_actions], axis=-1), key)
        return jnp.clip(flow_actions + self.config.edit_scale * edits, -1.0, 1.0), log_probs

    def act(self, nets, obs: Float[Array, "B O"], key: PRNGKeyArray) -> Float[Array, "B D"]:
        flow_key, edit_key = jax.random.split(key)
        return self.edit(nets, obs, super().act(nets, obs, flow_key), edit_key)[0]

    def edit_loss(self, nets, obs: Float[Array, "B O"], key: PRNGKeyArray) -> tuple[Array, Metrics]:
        """The edit policy's SAC loss and its temperature loss, on fresh flow actions."""
        flow_key, edit_key = jax.random.split(key)
        flow_actions = jax.lax.stop_gradient(super().act(nets, obs, flow_key))
        actions, log_probs = self.edit(nets, obs, flow_actions, edit_key)
        q = mean_q(nets["critic"], obs, actions)
        actor = sac_actor_loss(log_probs, q, nets["log_alpha"])
        alpha = temperature_loss(log_probs, nets["log_alpha"], self.config.target_entropy_scale * actions.shape[-1])
        return actor + alpha, {"edit/loss": actor, "edit/alpha": jnp.exp(nets["log_alpha"].value),
                               "edit/entropy": -log_probs.mean()}
