"""What every critic-guided flow fine-tuning method shares (QAM, QAM-E, QAM-F, BAM, TRQAM).

Networks (docs/ALGORITHMS.md s2): the critic ensemble and its Polyak target; ``actor_slow``,
trained by the BC flow loss throughout, and its EMA ``target_actor_slow``, which is the
base field ``v_base``; and ``actor_fast``, the fine-tuned field ``v_ft``. Given a BC
checkpoint, all three actors start from it; from scratch, ``actor_fast`` is initialised
independently of ``actor_slow`` (only the target is tied to ``actor_slow``), as in the QAM
paper's reference.

One Adam optimiser over the sum of the losses, with the global gradient norm clipped, as
the references do. A method subclasses `FlowQAgent` and writes only its actor loss
(`actor_loss`), and, where it differs, how it acts (`act`) and what it needs outside the
gradient (`actor_inputs`, `after_update`).

The baselines use the same agent with fewer flows: a method that acts with the BC flow
itself (FQL, IFQL, CGQL, DSRL, FAWAC, FBRAC, FEdit) sets ``HAS_FINE_TUNED_FLOW = False``;
one with no flow at all (ReBRAC, QSM, DAC) also sets ``HAS_BC_FLOW = False`` and brings
its own actor through `extra_nets`. ``POLYAK_TARGETS`` names the networks that have a
Polyak-averaged target copy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Self

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from trqam.agent import Batch, Metrics
from trqam.critic import CriticEnsemble, batch_q, critic_loss, polyak, td_target
from trqam.flow import VelocityField, bc_flow_loss, euler_sample
from trqam.soc import Rollout, lean_adjoint, memoryless_rollout

Nets = dict[str, Any]


@dataclass(frozen=True)
class FlowQConfig:
    hidden_sizes: tuple[int, ...] = (512, 512, 512, 512)
    actor_layer_norm: bool = False
    num_critics: int = 10
    learning_rate: float = 3e-4
    flow_steps: int = 10
    discount: float = 0.99
    rho: float = 0.5  # pessimism of the TD target: mean - rho * std over the ensemble
    tau: float = 0.005  # Polyak rate of the critic target and of v_base
    grad_clip: float | None = 1.0
    chunk_len: int = 5
    frozen_base: bool = False  # True: v_base stays the BC checkpoint (no EMA, no BC loss)

    def for_online(self) -> Self:
        """The config of the online phase (the same, unless a method has online-only values)."""
        return self


def mean_q(critic: CriticEnsemble, obs: Float[Array, "B O"], actions: Float[Array, "B D"]) -> Float[Array, " B"]:
    """Ensemble-mean Q of actions, with no gradient into the critic's parameters."""
    return jnp.mean(batch_q(jax.lax.stop_gradient(critic), obs, actions), axis=-1)


class AdjointRollout(NamedTuple):
    rollout: Rollout
    adjoints: Float[Array, "N B D"]  # adj_0 .. adj_{N-1}


def adjoint_metrics(inputs: AdjointRollout) -> Metrics:
    norms = jnp.linalg.norm(inputs.adjoints, axis=-1)  # [N, B]
    return {"actor/adjoint_norm_first": norms[0].mean(), "actor/adjoint_norm_last": norms[-1].mean()}


class FlowQAgent(eqx.Module):
    nets: Nets  # trainable: critic, actor_slow, actor_fast (+ a method's own)
    targets: Nets  # Polyak copies of POLYAK_TARGETS: critic, actor_slow (= v_base)
    opt_state: optax.OptState
    config: FlowQConfig = eqx.field(static=True)

    HAS_BC_FLOW: ClassVar[bool] = True  # actor_slow: the BC flow, trained by the flow loss
    HAS_FINE_TUNED_FLOW: ClassVar[bool] = True  # actor_fast: the fine-tuned field v_ft
    POLYAK_TARGETS: ClassVar[tuple[str, ...]] = ("critic", "actor_slow")

    # ---- construction ------------------------------------------------------------
    @staticmethod
    def optimizer(config: FlowQConfig) -> optax.GradientTransformation:
        adam = optax.adam(config.learning_rate)
        return adam if config.grad_clip is None else optax.chain(optax.clip_by_global_norm(config.grad_clip), adam)

    @classmethod
    def extra_nets(cls, obs_dim: int, action_dim: int, config: FlowQConfig, key: PRNGKeyArray) -> Nets:
        """Networks a method adds (QAM-E's edit policy, QAM-F's one-step policy)."""
        return {}

    @classmethod
    def extra_fields(cls, config: FlowQConfig) -> dict[str, Any]:
        """Non-trained state a method adds (TRQAM's dual variables)."""
        return {}

    @classmethod
    def create(
        cls, example_batch: Batch, config: FlowQConfig, key: PRNGKeyArray, *, bc_actor: VelocityField | None = None
    ) -> Self:
        obs_dim = example_batch.observations.shape[-1]
        action_dim = example_batch.actions.shape[-1]
        critic_key, actor_key, extra_key = jax.random.split(key, 3)
        nets: Nets = {"critic": CriticEnsemble(obs_dim, action_dim, config.hidden_sizes, config.num_critics,
                                               key=critic_key)}
        if cls.HAS_BC_FLOW or cls.HAS_FINE_TUNED_FLOW:
            def flow(key):
                return VelocityField(obs_dim, action_dim, config.hidden_sizes, layer_norm=config.actor_layer_norm,
                                     key=key)

            actor = bc_actor if bc_actor is not None else flow(actor_key)
            # From scratch (the QAM paper's protocol, as its reference) actor_fast is a network of
            # its own; from a BC checkpoint both start from it.
            fast = bc_actor if bc_actor is not None or not cls.HAS_BC_FLOW else flow(jax.random.fold_in(actor_key, 1))
            nets |= {"actor_slow": actor} if cls.HAS_BC_FLOW else {}
            nets |= {"actor_fast": fast} if cls.HAS_FINE_TUNED_FLOW else {}
        nets |= cls.extra_nets(obs_dim, action_dim, config, extra_key)  # may replace the critic (CGQL)
        targets = {name: nets[name] for name in cls.POLYAK_TARGETS if name in nets}
        opt_state = cls.optimizer(config).init(eqx.filter(nets, eqx.is_array))
        return cls(nets=nets, targets=targets, opt_state=opt_state, config=config, **cls.extra_fields(config))

    # ---- acting ------------------------------------------------------------------
    def act(self, nets: Nets, obs: Float[Array, "B O"], key: PRNGKeyArray) -> Float[Array, "B D"]:
        """The acting policy: the Euler ODE of the fine-tuned field (else the BC flow), clipped."""
        field = nets["actor_fast"] if self.HAS_FINE_TUNED_FLOW else nets["actor_slow"]
        noise = jax.random.normal(key, (obs.shape[0], field.action_dim))
        return euler_sample(field, obs, noise, self.config.flow_steps)

    def sample_actions(self, observations: Float[Array, "B O"], key: PRNGKeyArray) -> Float[Array, "B D"]:
        return self.act(self.nets, observations, key)

    # ---- losses ------------------------------------------------------------------
    def next_actions(self, nets: Nets, next_obs: Float[Array, "B O"], key: PRNGKeyArray) -> Float[Array, "B D"]:
        """The TD target's actions ``a'``: the acting policy's (ReBRAC adds target-policy noise)."""
        return self.act(nets, next_obs, key)

    def critic_loss(self, nets: Nets, batch: Batch, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        """Chunked pessimistic TD regression; a' = clip(policy(s'))."""
        cfg = self.config
        next_actions = jax.lax.stop_gradient(self.next_actions(nets, batch.next_observations, key))
        next_q = batch_q(self.targets["critic"], batch.next_observations, next_actions)
        target = td_target(next_q, batch.rewards, batch.masks, cfg.discount, cfg.chunk_len, cfg.rho)
        q = batch_q(nets["critic"], batch.observations, batch.actions)
        loss = critic_loss(q, target, batch.valid[:, -1])
        return loss, {"critic/loss": loss, "critic/q_mean": q.mean(), "critic/q_max": q.max(),
                      "critic/q_min": q.min(), "critic/target_mean": target.mean()}

    def adjoint_rollout(self, batch: Batch, key: PRNGKeyArray, terminal_scale: float) -> AdjointRollout:
        """The memoryless SDE of ``v_ft`` and its lean adjoint from
        ``adj_N = -terminal_scale * grad_{x_N} mean_k Q_target_k(s, clip(x_N))`` (no gradient)."""
        obs, n = batch.observations, self.config.flow_steps
        noise_key, sde_key = jax.random.split(key)
        x0 = jax.random.normal(noise_key, batch.actions.shape)
        v_ft, v_base = self.nets["actor_fast"], self.targets["actor_slow"]
        rollout = jax.lax.stop_gradient(memoryless_rollout(v_ft, v_base, obs, x0, n, sde_key))
        # Differentiated through the clip: a dimension outside [-1, 1] gets no terminal adjoint.
        grad_q = jax.grad(lambda x: jnp.sum(mean_q(self.targets["critic"], obs, jnp.clip(x, -1.0, 1.0))))(
            rollout.final)
        adjoints = lean_adjoint(v_base, obs, rollout.states, -terminal_scale * grad_q, n)
        return AdjointRollout(rollout, adjoints)

    def flow_loss(self, nets: Nets, batch: Batch, inputs: Any, key: PRNGKeyArray) -> Array:
        """The BC flow-matching loss of ``actor_slow`` (none when frozen or absent); ``inputs``
        are `actor_inputs`'s (FAWAC's advantage weights)."""
        if self.config.frozen_base or not self.HAS_BC_FLOW:
            return jnp.zeros(())
        return bc_flow_loss(nets["actor_slow"], batch.observations, batch.actions, batch.valid, key)

    def actor_inputs(self, batch: Batch, key: PRNGKeyArray) -> Any:
        """Gradient-free inputs of the actor and flow losses, computed once per update (rollouts,
        adjoints, advantage weights)."""
        return None

    def actor_loss(self, nets: Nets, batch: Batch, inputs: Any, key: PRNGKeyArray) -> tuple[Array, Metrics]:
        raise NotImplementedError

    def target_rate(self) -> float | Array:
        """The Polyak rate of this step (ReBRAC moves its targets every second step only)."""
        return self.config.tau

    def after_update(self, metrics: Metrics) -> tuple[Self, Metrics]:
        """Updates outside the gradient step (TRQAM's dual descent), and the metrics they add."""
        return self, metrics

    # ---- one gradient step ---------------------------------------------------------
    def loss_and_grads(self, batch: Batch, key: PRNGKeyArray) -> tuple[tuple[Array, Metrics], Nets]:
        """The total loss (critic + BC flow + actor), its metrics, and its gradient in ``nets``."""
        inputs_key, critic_key, flow_key, actor_key = jax.random.split(key, 4)
        inputs = self.actor_inputs(batch, inputs_key)

        def total_loss(nets):
            c_loss, metrics = self.critic_loss(nets, batch, critic_key)
            f_loss = self.flow_loss(nets, batch, inputs, flow_key)
            a_loss, actor_metrics = self.actor_loss(nets, batch, inputs, actor_key)
            return c_loss + f_loss + a_loss, {**metrics, "actor/flow_loss": f_loss, **actor_metrics}

        return eqx.filter_value_and_grad(total_loss, has_aux=True)(self.nets)

    def update(self, batch: Batch, key: PRNGKeyArray) -> tuple[Self, Metrics]:
        (loss, metrics), grads = self.loss_and_grads(batch, key)
        params = eqx.filter(self.nets, eqx.is_array)
        updates, opt_state = self.optimizer(self.config).update(grads, self.opt_state, params)
        nets = eqx.apply_updates(self.nets, updates)
        # Targets move towards the parameters this step started from, as the references do.
        rate = self.target_rate()
        targets = {
            name: target if name == "actor_slow" and self.config.frozen_base
            else polyak(target, self.nets[name], rate)
            for name, target in self.targets.items()
        }
        metrics = {**metrics, "total_loss": loss, "grad_norm": optax.tree.norm(grads)}
        agent = dataclasses.replace(self, nets=nets, targets=targets, opt_state=opt_state)
        return agent.after_update(metrics)

    def validation_metrics(self, batch: Batch, key: PRNGKeyArray) -> Metrics:
        critic_key, flow_key = jax.random.split(key)
        c_loss, _ = self.critic_loss(self.nets, batch, critic_key)
        if not self.HAS_BC_FLOW:
            return {"critic/loss": c_loss}
        f_loss = bc_flow_loss(self.nets["actor_slow"], batch.observations, batch.actions, batch.valid, flow_key)
        return {"critic/loss": c_loss, "actor/flow_loss": f_loss}
