"""Replay the reference's fixtures through our agents and compare every quantity.

Used by ``tests/test_parity.py`` (which asserts each comparison) and by ``parity.report``
(which writes ``reports/parity/PARITY.md``). Needs neither the authors' code nor Flax.

How a fixture is replayed: our agent is created with the configuration the reference ran
(`our_config`), its networks are overwritten with the reference's parameters
(`load_params`: Flax's ``kernel [in, out]`` is our ``weight [out, in]``), and every random
draw our update makes is served from the reference's draws of the same role
(`replaying`). A draw is named by the functions on its call stack (`RULES`), so our code
keeps its own PRNG keys and call order; a draw nobody recorded is an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from baselines.bc import FlowBC, FlowBCConfig
from baselines.cgql import CGQL, CGQLConfig
from baselines.dac import DAC, DACConfig
from baselines.dsrl import DSRL, DSRLConfig
from baselines.fawac import FAWAC, FAWACConfig
from baselines.fbrac import FBRAC, FBRACConfig
from baselines.fedit import FEdit, FEditConfig
from baselines.fql import FQL, FQLConfig
from baselines.ifql import IFQL, IFQLConfig
from baselines.qsm import QSM, QSMConfig
from baselines.rebrac import ReBRAC, ReBRACConfig
from baselines.rlpd import RLPD, RLPDConfig
from parity.setting import Setting, to_ours
from trqam.bam import BAM, BAMConfig
from trqam.dual import DualConfig
from trqam.nn import MLP
from trqam.qam import QAM, QAME, QAMF, QAMConfig, QAMEConfig, QAMFConfig
from trqam.trqam import TRQAM, TRQAMConfig

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "parity"

# Which reference draw each of ours replays: the first rule whose function names all appear,
# nearest first and in that order, on the call stack of a draw of that kind.
RULES: list[tuple[tuple[str, ...], str, str]] = [
    (("add_noise",), "randint", "ddpm/t"),  # QSM/DAC: the denoising loss's step index
    (("add_noise",), "normal", "ddpm/noise"),  # ... and its noise
    (("ddpm_sample",), "normal", "critic/next_z"),  # QSM/DAC: the sampler's noise, one per step
    (("memoryless_rollout",), "normal", "soc/noise"),
    (("adjoint_rollout",), "normal", "soc/x0"),
    (("bam_rollout",), "normal", "soc/x0"),
    (("bc_flow_loss",), "normal", "bc/x0"),
    (("bc_flow_loss",), "uniform", "bc/t"),
    (("edit", "act"), "normal", "critic/next_edit"),  # QAM-E: the edit of the TD target's action
    (("edit", "edit_loss"), "normal", "edit/noise"),  # QAM-E: the edit policy's sample in its loss
    (("act", "edit_loss"), "normal", "edit/flow_noise"),  # QAM-E: the flow action the edit loss edits
    (("onestep_act",), "normal", "critic/next_noise"),  # FQL: the one-step policy's noise
    (("act",), "normal", "critic/next_noise"),  # the policy noise of the TD target's next action
    (("next_actions",), "normal", "critic/next_noise"),  # ReBRAC: the target actor's smoothing noise
    (("actor_loss",), "normal", "actor/noise"),  # FQL's distillation noise, DSRL's noise-policy sample
    (("critic_loss",), "normal", "critic/distill_noise"),  # DSRL's latent-critic noise, CGQL's noisy action
    (("critic_loss",), "uniform", "critic/noisy_t"),  # CGQL: the noisy critic's flow time
]


def role_of(stack: list[str], kind: str) -> str | None:
    for names, rule_kind, role in RULES:
        if rule_kind != kind:
            continue
        position = 0
        for name in names:
            try:
                position = stack.index(name, position) + 1
            except ValueError:
                break
        else:
            return role
    return None


# The reference draws one noise per flow step, the last unused (its last step is the base ODE).
PREFIX_ROLES = {"soc/noise"}

TOLERANCE = 1e-5  # relative; float32 round-off, measured at <= 3e-6 after one update
# After 200 updates round-off compounds (measured up to 5e-6: CGQL-L's linex loss, whose
# exponential amplifies it); a reintroduced deviation moves these by 1e-3 or more.
TRAJECTORY_TOLERANCE = 1e-4


@contextlib.contextmanager
def replaying(draws: dict[str, jax.Array]) -> Iterator[None]:
    """Serve ``jax.random.normal`` / ``uniform`` / ``randint`` from ``draws`` by role while
    the block runs (or is traced: under ``jit`` the draws may be traced arrays)."""
    originals = {kind: getattr(jax.random, kind) for kind in ("normal", "uniform", "randint")}

    def replayer(kind: str):
        def draw(key, shape=(), *args, **kwargs):
            stack, frame = [], sys._getframe(1)
            while frame is not None:
                stack.append(frame.f_code.co_name)
                frame = frame.f_back
            caller, role = stack[0], role_of(stack, kind)
            if role is None or role not in draws:
                raise KeyError(f"jax.random.{kind} called from {caller}() has no reference draw to replay "
                               f"(known: {sorted(draws)})")
            value = jnp.asarray(draws[role])
            shape = tuple(shape)
            if role in PREFIX_ROLES and value.shape[0] > shape[0]:
                value = value[: shape[0]]
            if value.size != math.prod(shape):
                raise ValueError(f"reference draw {role} has shape {value.shape}; {caller}() asks for {shape}")
            return jnp.reshape(value, shape)
        return draw

    for kind in originals:
        setattr(jax.random, kind, replayer(kind))
    try:
        yield
    finally:
        for kind, original in originals.items():
            setattr(jax.random, kind, original)


# ---- fixtures and parameters ------------------------------------------------------------
@dataclass
class Fixture:
    name: str
    arrays: dict[str, np.ndarray]
    record: dict

    @property
    def setting(self) -> Setting:
        return Setting(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.record["setting"].items()})

    def subtree(self, prefix: str) -> dict[str, np.ndarray]:
        """The arrays under ``prefix/``, keyed by the rest of their path."""
        return _strip(self.arrays, prefix)

    def trace(self, name: str) -> np.ndarray:
        """A metric the reference logged, at every recorded update."""
        return self.arrays[f"trace/{name}"]

    def batch(self, update: int):
        i = update % self.setting.num_batches
        return to_ours({k: v for k, v in self.subtree(f"batch/{i}").items()})

    def draws(self, update: int, prefix: str = "draws") -> dict[str, np.ndarray]:
        return self.subtree(f"{prefix}/{update}")


def load_fixture(path: Path) -> Fixture:
    provenance = json.loads((path.parent / "provenance.json").read_text())
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    return Fixture(path.stem, arrays, provenance["fixtures"][path.name])


def load_mlp(mlp: MLP, params: dict[str, np.ndarray]) -> MLP:
    """``mlp`` with the reference's ``Dense_i`` / ``LayerNorm_i`` parameters (any leading
    ensemble axis kept)."""
    def get(name):
        return jnp.asarray(params[name])

    n = len(mlp.layers)
    new = [jnp.swapaxes(get(f"Dense_{i}/kernel"), -1, -2) for i in range(n)] + [get(f"Dense_{i}/bias") for i in range(n)]
    where = [lambda m, i=i: m.layers[i].weight for i in range(n)] + [lambda m, i=i: m.layers[i].bias for i in range(n)]
    if mlp.norms is not None:
        k = len(mlp.norms)
        new += [get(f"LayerNorm_{i}/scale") for i in range(k)] + [get(f"LayerNorm_{i}/bias") for i in range(k)]
        where += [lambda m, i=i: m.norms[i].weight for i in range(k)] + [lambda m, i=i: m.norms[i].bias for i in range(k)]
    for w, value in zip(where, new, strict=True):
        mlp = eqx.tree_at(w, mlp, value.reshape(w(mlp).shape))
    return mlp


def mlp_params(mlp: MLP) -> dict[str, np.ndarray]:
    """Our MLP in the reference's naming (the inverse of `load_mlp`)."""
    out = {}
    for i, layer in enumerate(mlp.layers):
        out[f"Dense_{i}/kernel"] = np.swapaxes(np.asarray(layer.weight), -1, -2)
        out[f"Dense_{i}/bias"] = np.asarray(layer.bias)
    for i, norm in enumerate(mlp.norms or ()):
        out[f"LayerNorm_{i}/scale"], out[f"LayerNorm_{i}/bias"] = np.asarray(norm.weight), np.asarray(norm.bias)
    return out


# How each reference module maps onto a part of our agent: an MLP (``inner`` is the
# reference module's own name for it: ``value_net`` in a Value, ``mlp`` in an
# ActorVectorField), a tanh-Gaussian head, or a scalar parameter.
Where = Callable[[Any], Any]


@dataclass(frozen=True)
class MLPPart:
    where: Where
    inner: str

    def load(self, agent, params: dict[str, np.ndarray]):
        return eqx.tree_at(self.where, agent, load_mlp(self.where(agent), _strip(params, self.inner)))

    def read(self, agent) -> dict[str, np.ndarray]:
        return {f"{self.inner}/{k}": v for k, v in mlp_params(self.where(agent)).items()}

    def output(self, agent, obs, actions, times):
        """A velocity field's output ``v(s, a, t)`` on a batch."""
        return jax.vmap(self.where(agent))(jnp.concatenate([obs, actions, times], axis=-1))


@dataclass(frozen=True)
class DDPMPart:
    """The reference's ``DDPM``: ``FourierFeatures_0`` (a ``[half, 1]`` kernel), the time
    encoder ``MLP_0`` and the noise predictor ``MLP_1``, which are our `NoisePredictor`'s
    frequencies, ``time_mlp`` and ``mlp``."""

    where: Where

    def load(self, agent, params: dict[str, np.ndarray]):
        model = self.where(agent)
        model = eqx.tree_at(lambda m: (m.time_features.frequencies, m.time_mlp, m.mlp), model,
                            (jnp.asarray(params["FourierFeatures_0/kernel"][:, 0]),
                             load_mlp(model.time_mlp, _strip(params, "MLP_0")), load_mlp(model.mlp, _strip(params, "MLP_1"))))
        return eqx.tree_at(self.where, agent, model)

    def read(self, agent) -> dict[str, np.ndarray]:
        model = self.where(agent)
        return {"FourierFeatures_0/kernel": np.asarray(model.time_features.frequencies)[:, None],
                **{f"MLP_0/{k}": v for k, v in mlp_params(model.time_mlp).items()},
                **{f"MLP_1/{k}": v for k, v in mlp_params(model.mlp).items()}}

    def output(self, agent, obs, actions, times):
        """The noise prediction ``eps(s, x, t)`` on a batch."""
        return jax.vmap(self.where(agent))(obs, actions, times[:, 0])


@dataclass(frozen=True)
class TanhGaussianPart:
    """The reference's ``TanhNormal``: ``MLP_0`` trunk, ``OutputDenseMean``, ``OutputDenseLogStd``."""

    where: Where

    def load(self, agent, params: dict[str, np.ndarray]):
        head = self.where(agent)
        head = eqx.tree_at(lambda h: h.trunk, head, load_mlp(head.trunk, _strip(params, "MLP_0")))
        for name, attr in (("OutputDenseMean", "mean"), ("OutputDenseLogStd", "log_std")):
            head = eqx.tree_at(lambda h, a=attr: (getattr(h, a).weight, getattr(h, a).bias), head,
                               (jnp.asarray(params[f"{name}/kernel"]).T, jnp.asarray(params[f"{name}/bias"])))
        return eqx.tree_at(self.where, agent, head)

    def read(self, agent) -> dict[str, np.ndarray]:
        head = self.where(agent)
        out = {f"MLP_0/{k}": v for k, v in mlp_params(head.trunk).items()}
        for name, layer in (("OutputDenseMean", head.mean), ("OutputDenseLogStd", head.log_std)):
            out[f"{name}/kernel"], out[f"{name}/bias"] = np.asarray(layer.weight).T, np.asarray(layer.bias)
        return out


@dataclass(frozen=True)
class ScalarPart:
    """A scalar parameter (the reference's ``LogParam`` ``log_value``: our ``LogTemperature``)."""

    where: Where
    name: str = "log_value"

    def load(self, agent, params: dict[str, np.ndarray]):
        return eqx.tree_at(lambda a: self.where(a).value, agent, jnp.asarray(params[self.name]))

    def read(self, agent) -> dict[str, np.ndarray]:
        return {self.name: np.asarray(self.where(agent).value)}


@dataclass(frozen=True)
class ReBRACActorPart:
    """The reference's deterministic ``Actor``: the ``actor_net`` trunk and its ``mean_net``,
    which are our MLP's hidden layers and its last layer."""

    where: Where

    def load(self, agent, params: dict[str, np.ndarray]):
        mlp = self.where(agent)
        n = len(mlp.layers) - 1
        flat = {**_strip(params, "actor_net"), f"Dense_{n}/kernel": params["mean_net/kernel"],
                f"Dense_{n}/bias": params["mean_net/bias"]}
        return eqx.tree_at(self.where, agent, load_mlp(mlp, flat))

    def read(self, agent) -> dict[str, np.ndarray]:
        flat = mlp_params(self.where(agent))
        n = len(self.where(agent).layers) - 1
        out = {f"actor_net/{k}": v for k, v in flat.items() if not k.startswith(f"Dense_{n}/")}
        out["mean_net/kernel"], out["mean_net/bias"] = flat[f"Dense_{n}/kernel"], flat[f"Dense_{n}/bias"]
        return out


def _strip(params: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) + 1:]: v for k, v in params.items() if k.startswith(prefix + "/")}


Part = MLPPart | TanhGaussianPart | ScalarPart | ReBRACActorPart | DDPMPart
CRITIC: dict[str, Part] = {
    "critic": MLPPart(lambda a: a.nets["critic"].members, "value_net"),
    "target_critic": MLPPart(lambda a: a.targets["critic"].members, "value_net"),
}
BC_FLOW = MLPPart(lambda a: a.nets["actor_slow"].mlp, "mlp")
BC_FLOW_TARGET = MLPPart(lambda a: a.targets["actor_slow"].mlp, "mlp")


@dataclass(frozen=True)
class OurSide:
    """One method on our side: its agent and config from the reference's config, the
    reference module each of our networks matches, our networks the reference lacks
    (loaded from the module named, never compared), the field whose output is recorded,
    and the reference's metric names mapped to ours."""

    build: Callable[[dict], tuple[type, Any]]
    modules: dict[str, Part]
    field: str | None  # the velocity field whose output is compared (None: no flow)
    metrics: dict[str, str]
    our_only: dict[str, tuple[Part, str]] = dataclasses.field(default_factory=dict)  # ours -> (part, from module)
    critic_time: bool = False  # the critic takes the flow time after the action (CGQL)
    # Added to our logged metrics before comparing, for a metric the reference computes
    # differently with the same gradient (QSM/DAC: see `ddpm_loss_offset`).
    metric_offset: Callable[[str, Any], float] = lambda name, batch: 0.0


def _common(ref: dict, clip: bool) -> dict:
    return dict(hidden_sizes=tuple(ref["actor_hidden_dims"]), actor_layer_norm=ref["actor_layer_norm"],
                num_critics=ref["num_qs"], learning_rate=ref["lr"], flow_steps=ref["flow_steps"],
                discount=ref["discount"], rho=ref["rho"], tau=ref["tau"], grad_clip=1.0 if clip else None,
                chunk_len=ref["horizon_length"])


def _trqam(ref: dict):
    dual = DualConfig(init_lam=1.0, dual_lr=ref["eta_lambda"], ema=1.0 - ref["kl_ema_coef"],
                      clip_factor=ref["kl_clip_coef"], lam_min=ref["lambda_min"], lam_max=ref["lambda_max"],
                      lam_scale=ref["lam_scale"])
    return TRQAM, TRQAMConfig(**_common(ref, ref["clip_grad"]), kl_budget=ref["kl_budget"], dual=dual)


def _qam(ref: dict):
    return QAM, QAMConfig(**_common(ref, ref["clip_grad"]), inv_temp=ref["inv_temp"])


def _fql(ref: dict):  # the reference's FQL builds plain Adam
    return FQL, FQLConfig(**_common(ref, False), alpha=ref["alpha"])


def _dsrl(ref: dict):  # plain Adam; decodes with the target BC flow (use_target_latent)
    if not ref["use_target_latent"]:
        raise ValueError("our DSRL decodes with the target BC flow; the reference ran use_target_latent=False")
    return DSRL, DSRLConfig(**_common(ref, False), noise_scale=ref["noise_scale"],
                            target_entropy_scale=-ref["target_entropy_multiplier"])


def _qam_e(ref: dict):
    return QAME, QAMEConfig(**_common(ref, ref["clip_grad"]), inv_temp=ref["inv_temp"],
                            edit_scale=ref["edit_scale"], target_entropy_scale=-ref["edit_target_entropy_multiplier"])


def _cgql(ref: dict):  # plain Adam; guides the target BC flow with the online critic
    if ref["separate"] or not ref["target_guidance"]:
        raise ValueError("our CGQL shares one time-conditioned critic and guides the target flow")
    return CGQL, CGQLConfig(**_common(ref, False), mode=ref["mode"], guidance=ref["guidance_coef"],
                            inv_temp=ref["inv_temp"], noisy_coef=ref["noisy_coef"], linex_clip=ref["isd_clip"])


def _qam_f(ref: dict):
    return QAMF, QAMFConfig(**_common(ref, ref["clip_grad"]), inv_temp=ref["inv_temp"], fql_alpha=ref["fql_alpha"])


def _fawac(ref: dict):  # plain Adam
    return FAWAC, FAWACConfig(**_common(ref, False), inv_temp=ref["inv_temp"])


def _fbrac(ref: dict):  # plain Adam
    return FBRAC, FBRACConfig(**_common(ref, False), alpha=ref["alpha"])


def _fedit(ref: dict):  # plain Adam
    return FEdit, FEditConfig(**_common(ref, False), edit_scale=ref["edit_scale"],
                              target_entropy_scale=-ref["edit_target_entropy_multiplier"])


def _bam(ref: dict):
    return BAM, BAMConfig(**_common(ref, True), inv_temp=ref["inv_temp"])  # the reference always clips


def _rebrac(ref: dict):  # plain Adam
    return ReBRAC, ReBRACConfig(**_common(ref, False), alpha=ref["alpha_actor"], actor_noise=ref["actor_noise"],
                                noise_clip=ref["actor_noise_clip"], target_every=ref["actor_freq"],
                                last_layer_scale=ref["actor_fc_scale"])


def _rlpd(ref: dict):  # plain Adam
    return RLPD, RLPDConfig(**_common(ref, False), target_entropy_scale=-ref["target_entropy_multiplier"],
                            bc_alpha=ref["bc_alpha"])


def _ddpm(ref: dict):  # QSM and DAC: one agent in the reference (DCGQLAgent), clipped Adam
    if not ref["use_target_critic_grad"] or ref["beta_schedule"] != "vp" or not ref["action_chunking"]:
        raise ValueError("our QSM/DAC take the target critic's gradient, the VP schedule and action chunks")
    samplers = {(False, True): "jump", (True, False): "posterior"}
    sampler = samplers.get((ref["clip_sampler_before"], ref["clip_sampler_after"]))
    if sampler is None:
        raise ValueError("our DDPM samplers are the reference's QSM (clip after) and DAC (clip before) settings")
    common = _common(ref, True) | dict(flow_steps=ref["diffusion_steps"], grad_clip=ref["clip_grad_norm"],
                                      time_dim=ref["time_dim"], alpha=ref["alpha"], sampler=sampler)
    if ref["actor_loss_type"] == "qsm":
        return QSM, QSMConfig(**common, inv_temp=ref["inv_temp"])
    return DAC, DACConfig(**common)


def ddpm_loss_offset(name: str, batch) -> float:
    """The reference's QSM/DAC loss raises each example's loss to the power ``valid`` where
    ours multiplies by it: an invalid example adds 1 to its logged mean, not 0 (the gradient
    is the same). Our logged guidance loss plus the invalid fraction is its value."""
    return float(np.mean(1.0 - np.asarray(batch.valid[:, -1]))) if name == "actor/guidance_loss" else 0.0


def _ifql(ref: dict):  # plain Adam; acting draws num_samples candidates
    return IFQL, IFQLConfig(**_common(ref, False), kappa=ref["kappa"], num_samples=ref["num_samples"])


CGQL_SIDE = OurSide(_cgql, {"critic": MLPPart(lambda a: a.nets["critic"].members, "mlp"),
                            "target_critic": MLPPart(lambda a: a.targets["critic"].members, "mlp"),
                            "actor": BC_FLOW, "target_actor": BC_FLOW_TARGET},
                    "actor", {"critic/critic_loss": "critic/loss", "critic/q_mean": "critic/q_mean",
                              "critic/q_max": "critic/q_max", "critic/q_min": "critic/q_min",
                              "critic/noisy_critic_loss": "critic/noisy_loss", "actor/flow_loss": "actor/flow_loss"},
                    critic_time=True)
FLOW_MODULES = {**CRITIC, "actor_slow": BC_FLOW, "target_actor_slow": BC_FLOW_TARGET,
                "actor_fast": MLPPart(lambda a: a.nets["actor_fast"].mlp, "mlp")}
CRITIC_METRICS = {"critic/critic_loss": "critic/loss", "critic/q_mean": "critic/q_mean",
                  "critic/q_max": "critic/q_max", "critic/q_min": "critic/q_min"}
QAM_METRICS = {**CRITIC_METRICS, "actor/flow_loss": "actor/flow_loss", "actor/adj_loss": "actor/adjoint_loss"}
DDPM_SIDE = OurSide(_ddpm, {**CRITIC, "actor": DDPMPart(lambda a: a.nets["ddpm"])}, "actor",
                    {"critic/critic_loss": "critic/loss", "critic/q": "critic/q_mean",
                     "actor/actor_loss": "actor/guidance_loss"}, metric_offset=ddpm_loss_offset)
OURS: dict[str, OurSide] = {
    "qsm": DDPM_SIDE,
    "dac": DDPM_SIDE,
    "trqam": OurSide(_trqam, FLOW_MODULES, "actor_fast", {
        **QAM_METRICS, "actor/path_kl": "actor/path_kl", "dual/lambda": "trqam/lambda_eff",
        "dual/kl_ema": "trqam/kl_ema"}),
    "qam": OurSide(_qam, FLOW_MODULES, "actor_fast", QAM_METRICS),
    "qam-e": OurSide(_qam_e, {**FLOW_MODULES, "edit_actor": TanhGaussianPart(lambda a: a.nets["edit"]),
                              "edit_alpha": ScalarPart(lambda a: a.nets["log_alpha"])},
                     "actor_fast", {**QAM_METRICS, "actor/edit_entropy": "edit/entropy",
                                    "actor/edit_alpha": "edit/alpha"}),
    "fql": OurSide(_fql, {**CRITIC, "actor_bc_flow": BC_FLOW, "actor_onestep_flow": MLPPart(lambda a: a.nets["onestep"], "mlp")},
                   "actor_bc_flow", {**CRITIC_METRICS, "actor/bc_flow_loss": "actor/flow_loss",
                                     "actor/distill_loss": "onestep/distill_loss"},
                   our_only={"target_actor_slow": (BC_FLOW_TARGET, "actor_bc_flow")}),
    "dsrl": OurSide(_dsrl, {**CRITIC, "z_critic": MLPPart(lambda a: a.nets["noise_critic"].members, "value_net"),
                            "actor_bc_flow": BC_FLOW, "target_actor_bc_flow": BC_FLOW_TARGET,
                            "actor": TanhGaussianPart(lambda a: a.nets["noise_policy"]),
                            "alpha": ScalarPart(lambda a: a.nets["log_alpha"])},
                    "actor_bc_flow", {**CRITIC_METRICS, "critic/distill_loss": "noise_critic/distill_loss",
                                      "actor/flow_loss": "actor/flow_loss", "actor/actor_loss": "noise_policy/loss",
                                      "actor/alpha": "noise_policy/alpha", "actor/entropy": "noise_policy/entropy",
                                      "actor/q": "noise_policy/q"}),
    "cgql-l": CGQL_SIDE,
    "cgql-m": CGQL_SIDE,
    "cgql": dataclasses.replace(CGQL_SIDE, metrics={**CRITIC_METRICS, "actor/flow_loss": "actor/flow_loss"}),
    "qam-f": OurSide(_qam_f, {**FLOW_MODULES, "one_step_actor": MLPPart(lambda a: a.nets["onestep"], "mlp")},
                     "actor_fast", {**QAM_METRICS, "actor/fql_distill_loss": "onestep/distill_loss",
                                    "actor/fql_q_loss": "onestep/q_loss"}),
    "fawac": OurSide(_fawac, {**CRITIC, "actor": BC_FLOW, "value": MLPPart(lambda a: a.nets["value"], "value_net")},
                     "actor", {**CRITIC_METRICS, "critic/value_loss": "value/loss", "actor/actor_loss": "actor/flow_loss"},
                     our_only={"target_actor_slow": (BC_FLOW_TARGET, "actor")}),
    "fbrac": OurSide(_fbrac, {**CRITIC, "actor_flow": BC_FLOW}, "actor_flow",
                     {**CRITIC_METRICS, "actor/bc_flow_loss": "actor/flow_loss"},
                     our_only={"target_actor_slow": (BC_FLOW_TARGET, "actor_flow")}),
    "fedit": OurSide(_fedit, {**CRITIC, "actor_bc_flow": BC_FLOW, "edit_actor": TanhGaussianPart(lambda a: a.nets["edit"]),
                              "alpha": ScalarPart(lambda a: a.nets["log_alpha"])},
                     "actor_bc_flow", {**CRITIC_METRICS, "actor/bc_flow_loss": "actor/flow_loss",
                                       "actor/edit_entropy": "edit/entropy"},
                     our_only={"target_actor_slow": (BC_FLOW_TARGET, "actor_bc_flow")}),
    "bam": OurSide(_bam, FLOW_MODULES, "actor_fast", {**CRITIC_METRICS, "actor/flow_loss": "actor/flow_loss",
                                                      "actor/bam_loss": "actor/bam_loss",
                                                      "actor/bc_loss": "actor/control_cost"}),
    "rebrac": OurSide(_rebrac, {**CRITIC, "actor": ReBRACActorPart(lambda a: a.nets["actor"]),
                                "target_actor": ReBRACActorPart(lambda a: a.targets["actor"])}, None,
                      {**CRITIC_METRICS, "actor/actor_loss": "actor/q_loss", "actor/bc_loss": "actor/bc_loss"}),
    "rlpd": OurSide(_rlpd, {**CRITIC, "actor": TanhGaussianPart(lambda a: a.nets["actor"]),
                            "alpha": ScalarPart(lambda a: a.nets["log_alpha"])}, None,
                    {**CRITIC_METRICS, "actor/actor_loss": "actor/sac_loss", "actor/entropy": "actor/entropy",
                     "actor/alpha": "actor/alpha", "actor/q": "actor/q", "actor/bc_loss": "actor/bc_loss"}),
}
OURS["rlpd-bc"] = OURS["rlpd"]  # the same agent at a non-zero bc_alpha (the reference's config says which)
OURS |= {
    "ifql": OurSide(_ifql, {**CRITIC, "actor_flow": BC_FLOW, "value": MLPPart(lambda a: a.nets["value"], "value_net")},
                    "actor_flow", {**CRITIC_METRICS, "actor/actor_loss": "actor/flow_loss",
                                   "value/value_loss": "value/loss", "value/v_mean": "value/mean",
                                   "value/v_max": "value/max", "value/v_min": "value/min"},
                    our_only={"target_actor_slow": (BC_FLOW_TARGET, "actor_flow")}),
}


def load_params(agent, fixture: Fixture, prefix: str, side: OurSide):
    for module, part in side.modules.items():
        agent = part.load(agent, fixture.subtree(f"{prefix}/modules_{module}"))
    for part, module in side.our_only.values():
        agent = part.load(agent, fixture.subtree(f"{prefix}/modules_{module}"))
    return agent


def our_params(agent, modules: dict[str, Part]) -> dict[str, np.ndarray]:
    """Our parts' parameters under the reference's names (``agent`` may be any object with
    ``nets``, such as a namespace holding a gradient)."""
    out = {}
    for module, part in modules.items():
        out |= {f"modules_{module}/{k}": v for k, v in part.read(agent).items()}
    return out


# ---- comparison ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    fixture: str
    quantity: str
    ours: float  # the value, or the L2 norm of an array
    reference: float
    rel: float  # ||ours - reference|| / ||reference||
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.rel <= self.tolerance


def rel_diff(ours, ref) -> float:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        raise ValueError(f"shapes differ: ours {ours.shape}, reference {ref.shape}")
    scale = np.linalg.norm(ref)
    return float(np.linalg.norm(ours - ref) / scale) if scale > 0 else float(np.linalg.norm(ours))


def row(fixture: str, quantity: str, ours, ref, tolerance: float) -> Row:
    return Row(fixture, quantity, float(np.linalg.norm(np.asarray(ours, np.float64))),
               float(np.linalg.norm(np.asarray(ref, np.float64))), rel_diff(ours, ref), tolerance)


def compare_params(fixture: Fixture, label: str, ours: dict, prefix: str, tolerance: float) -> list[Row]:
    rows = []
    by_module: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for key, value in ours.items():
        by_module.setdefault(key.split("/")[0], []).append((value, fixture.arrays[f"{prefix}/{key}"]))
    for module, pairs in by_module.items():
        flat_ours = np.concatenate([o.ravel() for o, _ in pairs])
        flat_ref = np.concatenate([r.ravel() for _, r in pairs])
        name = {"mlp": "actor"}.get(module, module.removeprefix("modules_"))
        rows.append(row(fixture.name, f"{label} {name}", flat_ours, flat_ref, tolerance))
    return rows


def compare_bc(fixture: Fixture) -> list[Row]:
    """BC pretraining: the reference's BC-only updates against `FlowBC`'s (none for fixtures
    of the QAM paper's reference, whose agents start from scratch)."""
    ref, s = fixture.record.get("bc_reference_config"), fixture.setting
    if ref is None:
        return []
    config = FlowBCConfig(hidden_sizes=tuple(ref["actor_hidden_dims"]), layer_norm=ref["actor_layer_norm"],
                          learning_rate=ref["lr"], flow_steps=ref["flow_steps"],
                          grad_clip=1.0 if ref["clip_grad"] else None)
    agent = FlowBC.create(fixture.batch(0), config, jax.random.key(0))
    agent = eqx.tree_at(lambda a: a.actor.mlp, agent, load_mlp(agent.actor.mlp, fixture.subtree("bc/params_before/mlp")))

    @eqx.filter_jit
    def step(agent, batch, draws):
        with replaying(draws):
            return agent.update(batch, jax.random.key(0))

    losses = []
    for u in range(s.bc_updates):
        agent, metrics = step(agent, fixture.batch(u), fixture.draws(u, "bc/draws"))
        losses.append(float(metrics["actor/flow_loss"]))
    ref_losses = fixture.trace("bc/flow_loss")
    return [row(fixture.name, "bc: flow loss, first update", losses[0], ref_losses[0], TOLERANCE),
            row(fixture.name, f"bc: flow loss, updates 1-{s.bc_updates}", losses, ref_losses, TRAJECTORY_TOLERANCE),
            *compare_params(fixture, f"bc: after {s.bc_updates} updates:",
                            {f"mlp/{k}": v for k, v in mlp_params(agent.actor.mlp).items()}, "bc/params_after",
                            TRAJECTORY_TOLERANCE)]


def compare_flow_agent(fixture: Fixture, method: str) -> list[Row]:
    """One update's every quantity (the one-update fixture) or a trajectory's metrics and
    final parameters (the trajectory fixture)."""
    s, side = fixture.setting, OURS[method]
    cls, config = side.build(fixture.record["reference_config"])
    if "profile" in fixture.record:  # a fixture at a profile's domain: replay through the config that profile runs
        config = profile_config(fixture.record, config)
    agent = load_params(cls.create(fixture.batch(0), config, jax.random.key(0)), fixture, "params_before", side)
    key = jax.random.key(0)
    rows: list[Row] = []

    @eqx.filter_jit
    def step(agent, batch, draws):
        with replaying(draws):
            return agent.update(batch, key)

    if s.updates == 1:
        batch, draws = fixture.batch(0), fixture.draws(0)
        ones = [jnp.ones((s.batch_size, 1))] if side.critic_time else []
        q = np.asarray(agent.nets["critic"].on_batch(batch.observations,
                                                     jnp.concatenate([batch.actions, *ones], axis=-1))).T
        rows.append(row(fixture.name, "critic output Q(s, a)", q, fixture.arrays["capture/q"], TOLERANCE))
        if side.field is not None:
            output = side.modules[side.field].output(agent, batch.observations, batch.actions,
                                                     jnp.full((s.batch_size, 1), 0.3))
            rows.append(row(fixture.name, f"{side.field} output at (s, a, t = 0.3)", output,
                            fixture.arrays["capture/v"], TOLERANCE))
        wants_actions, wants_rollout = "capture/next_actions" in fixture.arrays, "capture/xs" in fixture.arrays

        @eqx.filter_jit
        def intermediates(agent, batch, draws):
            with replaying(draws):
                next_actions = agent.next_actions(agent.nets, batch.next_observations, key) if wants_actions else None
                rollout = agent.actor_inputs(batch, key) if wants_rollout else None
                return next_actions, rollout, agent.loss_and_grads(batch, key)[1]

        next_actions, rollout, grads = intermediates(agent, batch, draws)
        if wants_actions:
            rows.append(row(fixture.name, "TD target's next actions", next_actions,
                            fixture.arrays["capture/next_actions"], TOLERANCE))
        if wants_rollout:
            rows += [row(fixture.name, "adjoint rollout states x_0..x_{N-1}", rollout.rollout.states,
                         fixture.arrays["capture/xs"], TOLERANCE),
                     row(fixture.name, "lean adjoints adj_0..adj_{N-1}", rollout.adjoints,
                         fixture.arrays["capture/adjs"], TOLERANCE)]
        trained = {m: spec for m, spec in side.modules.items() if not m.startswith("target")}
        rows += compare_params(fixture, "gradient of", our_params(SimpleNamespace(nets=grads), trained), "grads",
                               TOLERANCE)
        agent, metrics = step(agent, batch, draws)
        rows += [row(fixture.name, f"metric {ours}", metrics[ours] + side.metric_offset(ours, batch),
                     fixture.trace(theirs)[0], TOLERANCE)
                 for theirs, ours in side.metrics.items()]
        rows += compare_params(fixture, "after 1 update:", our_params(agent, side.modules), "params_after_1",
                               TOLERANCE)
        if method == "trqam":
            rows += [row(fixture.name, "lambda after 1 update", agent.dual.lam, fixture.arrays["state/lam"], TOLERANCE),
                     row(fixture.name, "KL EMA after 1 update", agent.dual.kl_ema, fixture.arrays["state/kl_ema"],
                         TOLERANCE)]
        return rows

    history: dict[str, list[float]] = {name: [] for name in side.metrics.values()}
    for u in range(s.updates):
        agent, metrics = step(agent, fixture.batch(u), fixture.draws(u))
        for name in history:
            history[name].append(float(metrics[name]) + side.metric_offset(name, fixture.batch(u)))
    n = s.updates
    rows += [row(fixture.name, f"metric {ours}, updates 1-{n}", history[ours], fixture.trace(theirs), TRAJECTORY_TOLERANCE)
             for theirs, ours in side.metrics.items()]
    rows += compare_params(fixture, f"after {n} updates:", our_params(agent, side.modules), "params_after", TRAJECTORY_TOLERANCE)
    if method == "trqam":
        rows += [row(fixture.name, f"lambda after {n} updates", agent.dual.lam, fixture.arrays["state/lam"],
                     TRAJECTORY_TOLERANCE)]
    return rows


# What a domain fixture's setting sizes (the small networks and schedule every fixture uses): taken from
# the reference's config; every other field comes from our profile at the fixture's domain.
SIZE_FIELDS = ("hidden_sizes", "actor_layer_norm", "num_critics", "learning_rate", "flow_steps")


def profile_config(record: dict, from_reference):
    """The agent config our ``record["profile"]`` trains with on the fixture's domain (its per-domain
    tables, its default assumptions: `bench.training.pipeline.method_config`), at the fixture's sizes.
    A per-domain value that differs from the authors' makes the replay fail."""
    from bench.config.methods import get_method
    from bench.tasks import resolve_task
    from bench.training.pipeline import RunConfig, method_config

    run = RunConfig(method=record["method"], task=f"{record['domain']}-task1", profile=record["profile"])
    task = resolve_task(run.task)
    ours = method_config(get_method(run.method), run.resolved_profile(task), task, run)
    return dataclasses.replace(ours, **{f: getattr(from_reference, f) for f in SIZE_FIELDS})


def compare_fixture(path: Path) -> list[Row]:
    """Every comparison of one fixture. The BC stage is the same for every BC-initialised
    method of a setting (the same seed, batches and draws), so only TRQAM's fixtures check it."""
    fixture = load_fixture(path)
    method = fixture.record["method"]
    return (compare_bc(fixture) if method == "trqam" else []) + compare_flow_agent(fixture, method)


def fixture_paths(directory: Path = FIXTURES) -> list[Path]:
    return sorted(directory.glob("*.npz"))
