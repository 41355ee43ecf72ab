"""Flow behaviour cloning: the pretrained policy every flow method starts from.

Trained by the flow-matching loss of docs/ALGORITHMS.md section 1 and acting with the Euler
ODE sampler. As the method ``bc`` it is the pretrained policy evaluated as is (the BC
rows of the QAM paper); its checkpoint initialises the fine-tuning methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import equinox as eqx
import jax
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.flow import VelocityField, bc_flow_loss, euler_sample


@dataclass(frozen=True)
class FlowBCConfig:
    hidden_sizes: tuple[int, ...] = (512, 512, 512, 512)
    layer_norm: bool = False  # True with width 1024 on the 10M/100M sets (TRQAM paper)
    learning_rate: float = 3e-4
    flow_steps: int = 10
    grad_clip: float | None = 1.0  # the reference pretrains with its TRQAM agent in BC-only mode: clipped Adam


class FlowBC(eqx.Module):
    actor: VelocityField
    opt_state: optax.OptState
    config: FlowBCConfig = eqx.field(static=True)

    @staticmethod
    def optimizer(config: FlowBCConfig) -> optax.GradientTransformation:
        adam = optax.adam(config.learning_rate)
        return adam if config.grad_clip is None else optax.chain(optax.clip_by_global_norm(config.grad_clip), adam)

    @classmethod
    def create(cls, example_batch: Batch, config: FlowBCConfig, key: PRNGKeyArray) -> Self:
        obs_dim = example_batch.observations.shape[-1]
        action_dim = example_batch.actions.shape[-1]
        actor = VelocityField(
            obs_dim, action_dim, config.hidden_sizes, layer_norm=config.layer_norm, key=key
        )
        opt_state = cls.optimizer(config).init(eqx.filter(actor, eqx.is_array))
        return cls(actor=actor, opt_state=opt_state, config=config)

    def update(self, batch: Batch, key: PRNGKeyArray) -> tuple[Self, Metrics]:
        def loss_fn(actor):
            return bc_flow_loss(actor, batch.observations, batch.actions, batch.valid, key)

        loss, grads = eqx.filter_value_and_grad(loss_fn)(self.actor)
        updates, opt_state = self.optimizer(self.config).update(grads, self.opt_state, eqx.filter(self.actor, eqx.is_array))
        actor = eqx.apply_updates(self.actor, updates)
        metrics = {"actor/flow_loss": loss, "actor/grad_norm": optax.tree.norm(grads)}
        return eqx.tree_at(lambda a: (a.actor, a.opt_state), self, (actor, opt_state)), metrics

    def validation_metrics(self, batch: Batch, key: PRNGKeyArray) -> Metrics:
        loss = bc_flow_loss(self.actor, batch.observations, batch.actions, batch.valid, key)
        return {"actor/flow_loss": loss}

    def sample_actions(
        self, observations: Float[Array, "batch obs_dim"], key: PRNGKeyArray
    ) -> Float[Array, "batch action_dim"]:
        noise = jax.random.normal(key, (observations.shape[0], self.actor.action_dim))
        return euler_sample(self.actor, observations, noise, self.config.flow_steps)
