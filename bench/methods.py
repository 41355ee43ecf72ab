"""The method registry: CLI name -> agent class, its configuration, its paper.

CLI names are the papers' table names in lower case. Per-domain values come from
`bench.hyperparams`; network sizes and schedules from the profile. `--set key=value`
overrides any field of a method's config (recorded in the run's config.json).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from baselines.bc import FlowBC, FlowBCConfig
from baselines.fql import FQL, FQLConfig
from baselines.ifql import IFQL, IFQLConfig
from bench import hyperparams as hp
from bench.errors import BenchError, suggest
from bench.profiles import Profile
from bench.tasks import Task
from trqam.bam import BAM, BAMConfig
from trqam.qam import QAM, QAME, QAMF, QAMConfig, QAMEConfig, QAMFConfig
from trqam.trqam import TRQAM, TRQAMConfig


@dataclass(frozen=True)
class Method:
    name: str
    agent_cls: type
    make_config: Callable[[Profile, Task], Any]
    paper: str  # where the method comes from
    fine_tunes: bool = True  # starts from the BC checkpoint in the two-stage pipeline


def _domain(task: Task) -> str:
    return hp.domain_key(task.info.abbr if task.info is not None else None)


def _bc_config(profile: Profile, task: Task) -> FlowBCConfig:
    return FlowBCConfig(hidden_sizes=profile.hidden_sizes, layer_norm=profile.actor_layer_norm,
                        learning_rate=profile.learning_rate, flow_steps=profile.flow_steps)


def _flow_q(profile: Profile, task: Task) -> dict[str, Any]:
    """Fields every critic-guided flow method shares (trqam.fine_tune.FlowQConfig)."""
    d = _domain(task)
    return dict(
        hidden_sizes=profile.hidden_sizes, actor_layer_norm=profile.actor_layer_norm,
        num_critics=profile.num_critics, learning_rate=profile.learning_rate, flow_steps=profile.flow_steps,
        discount=profile.discount, rho=hp.RHO_OVERRIDES.get(d, hp.COMMON["rho"]), tau=hp.COMMON["tau"],
        grad_clip=hp.COMMON["grad_clip"], chunk_len=task.chunk_len,
    )


def _qam(profile: Profile, task: Task) -> QAMConfig:
    return QAMConfig(**_flow_q(profile, task), inv_temp=hp.QAM_BETA[_domain(task)])


def _qam_e(profile: Profile, task: Task) -> QAMEConfig:
    beta, edit = hp.QAM_E[_domain(task)]
    return QAMEConfig(**_flow_q(profile, task), inv_temp=beta, edit_scale=edit)


def _qam_f(profile: Profile, task: Task) -> QAMFConfig:
    beta, alpha = hp.QAM_F[_domain(task)]
    return QAMFConfig(**_flow_q(profile, task), inv_temp=beta, fql_alpha=alpha)


def _bam(profile: Profile, task: Task) -> BAMConfig:
    return BAMConfig(**_flow_q(profile, task), inv_temp=hp.BAM_BETA[_domain(task)])


def _fql(profile: Profile, task: Task) -> FQLConfig:
    return FQLConfig(**_flow_q(profile, task), alpha=hp.FQL_ALPHA[_domain(task)])


def _ifql(profile: Profile, task: Task) -> IFQLConfig:
    return IFQLConfig(**_flow_q(profile, task), kappa=hp.IFQL_KAPPA[_domain(task)])


def _trqam(profile: Profile, task: Task) -> TRQAMConfig:
    d = _domain(task)
    return TRQAMConfig(**_flow_q(profile, task), kl_budget=hp.TRQAM_KL_BUDGET[d], inv_temp=hp.QAM_BETA[d])


QAM_PAPER = "Q-learning with Adjoint Matching (Li, Levine; arXiv 2601.14234)"
METHODS: dict[str, Method] = {
    "bc": Method("bc", FlowBC, _bc_config, "flow behaviour cloning (QAM paper, arXiv 2601.14234)", fine_tunes=False),
    "qam": Method("qam", QAM, _qam, QAM_PAPER),
    "qam-e": Method("qam-e", QAME, _qam_e, QAM_PAPER + ", edit-policy variant"),
    "qam-f": Method("qam-f", QAMF, _qam_f, QAM_PAPER + ", one-step-policy variant"),
    "bam": Method("bam", BAM, _bam, QAM_PAPER + ", basic adjoint matching baseline"),
    "trqam": Method("trqam", TRQAM, _trqam, "Trust Region Q-Adjoint Matching (Dong et al.; arXiv 2605.27079)"),
    "fql": Method("fql", FQL, _fql, "Flow Q-Learning (Park, Li, Levine; arXiv 2502.02538)"),
    "ifql": Method("ifql", IFQL, _ifql, "implicit flow Q-learning (IQL with a flow actor; FQL paper, arXiv 2502.02538)"),
}

# Every name the suite will accept once its issue lands.
PLANNED = "dsrl cgql cgql-m cgql-l rebrac fbrac fawac fedit qsm dac rlpd".split()


def get_method(name: str) -> Method:
    if name in METHODS:
        return METHODS[name]
    valid = sorted(METHODS) + PLANNED
    if name in PLANNED:
        raise BenchError(
            f"method '{name}' is not implemented in this version of trqam-bench; "
            f"available now: {', '.join(sorted(METHODS))}"
        )
    raise BenchError(f"unknown method '{name}'{suggest(name, valid)}; valid methods: {', '.join(valid)}")


def apply_overrides(config: Any, overrides: tuple[str, ...]) -> Any:
    """``key=value`` strings applied to a config dataclass, values parsed by the field's type."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or key not in fields:
            raise BenchError(
                f"--set '{item}' does not name a field of {type(config).__name__}; fields: {', '.join(fields)}"
            )
        current = getattr(config, key)
        try:
            if isinstance(current, bool):
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(text)
                changes[key] = text.lower() in ("true", "1")
            elif isinstance(current, tuple):
                changes[key] = tuple(int(x) for x in text.split(","))
            elif current is None or isinstance(current, float):
                changes[key] = None if text.lower() == "none" else float(text)
            else:
                changes[key] = type(current)(text)
        except ValueError:
            raise BenchError(f"--set '{item}': cannot read '{text}' as the type of {key} ({current!r})") from None
    return dataclasses.replace(config, **changes)
