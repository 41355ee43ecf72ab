"""FEdit: a BC flow plus the edit policy of EXPO (Dong et al., arXiv 2507.07986), as the
QAM paper (arXiv 2601.14234) runs it. docs/ALGORITHMS.md section 4.

The BC flow (``actor_slow``) is trained by the flow loss alone; the agent acts with
``clip(a_flow + edit_scale * e)``, the edit ``e`` a tanh-Gaussian trained by SAC on the
critic (trqam/edit.py, shared with QAM-E).
"""

from __future__ import annotations

from dataclasses import dataclass

from jaxtyping import Array, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.edit import EditsActions
from trqam.fine_tune import FlowQAgent, FlowQConfig, Nets


@dataclass(frozen=True)
class FEditConfig(FlowQConfig):
    edit_scale: float = 0.2  # per-domain: bench.config.hyperparams.FEDIT_EDIT
    target_entropy_scale: float = -0.5  # target entropy = scale * action_dim
    grad_clip: float | None = None  # plain Adam, as the reference


class FEdit(EditsActions, FlowQAgent):
    HAS_FINE_TUNED_FLOW = False  # edits the BC flow's actions

    def actor_loss(self, nets: Nets, batch: Batch, inputs: None, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        return self.edit_loss(nets, batch.observations, key)
