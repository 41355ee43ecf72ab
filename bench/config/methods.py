"""The method registry: CLI name -> agent class, its configuration, its paper.

CLI names are the papers' table names in lower case. Per-domain values come from
`bench.config.hyperparams`; network sizes and schedules from the profile. `--set key=value`
overrides any field of a method's config (recorded in the run's config.json).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
from bench.config import hyperparams as hp
from bench.config.profiles import Profile
from bench.errors import BenchError, suggest
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
    # 'fine-tune': BC pretraining, then the offline phase from the BC checkpoint (every flow method);
    # 'scratch': the offline phase alone (no flow to pretrain: ReBRAC, QSM, DAC); 'bc': BC itself;
    # 'online': the online phase alone (RLPD). Any but 'bc' may be followed by the online phase.
    pipeline: Literal["bc", "fine-tune", "scratch", "online"] = "fine-tune"
    # Online phase (docs/PROTOCOL.md): None samples uniformly from offline + online transitions;
    # a fraction draws that share of each batch from the offline data (RLPD: 0.5).
    offline_fraction: float | None = None
    random_warmup: bool = False  # act uniformly at random until the first update (RLPD)
    # A method from outside this repository (an entry point or ``module:NAME``): its package, version
    # and source fingerprint, recorded in every run's config.json and so in its identity. None: built in.
    source: dict[str, str] | None = None


def _domain(task: Task) -> str:
    return hp.domain_key(task.info.abbr if task.info is not None else None)


def _bc_config(profile: Profile, task: Task) -> FlowBCConfig:
    return FlowBCConfig(hidden_sizes=profile.hidden_sizes, layer_norm=profile.actor_layer_norm,
                        learning_rate=profile.learning_rate, flow_steps=profile.flow_steps)


def _flow_q(profile: Profile, task: Task, *, clip: bool = True) -> dict[str, Any]:
    """Fields every method on the shared agent has (trqam.fine_tune.FlowQConfig). Only QAM, its
    variants, BAM, TRQAM, QSM and DAC clip the gradient norm (docs/ALGORITHMS.md s1)."""
    d = _domain(task)
    return dict(
        hidden_sizes=profile.hidden_sizes, actor_layer_norm=profile.actor_layer_norm,
        num_critics=profile.num_critics, learning_rate=profile.learning_rate, flow_steps=profile.flow_steps,
        discount=profile.discount, rho=hp.RHO_OVERRIDES.get(d, hp.COMMON["rho"]), tau=hp.COMMON["tau"],
        grad_clip=hp.COMMON["grad_clip"] if clip else None, chunk_len=task.chunk_len,
    )


def _column(table: dict[str, tuple], index: int) -> dict[str, Any]:
    """One column of a per-domain table of tuples (e.g. QAM-E's (beta, edit_scale))."""
    return {domain: row[index] for domain, row in table.items()}


def per_domain_config(config_cls: type, *, clip: bool = True, **fields: Any) -> Callable[[Profile, Task], Any]:
    """``make_config`` of a method: the shared fields, then each of ``fields``, a per-domain
    table (looked up at the task's domain) or a constant."""
    def make(profile: Profile, task: Task) -> Any:
        d = _domain(task)
        values = {k: v[d] if isinstance(v, dict) else v for k, v in fields.items()}
        return config_cls(**_flow_q(profile, task, clip=clip), **values)
    return make


QAM_PAPER = "Q-learning with Adjoint Matching (Li, Levine; arXiv 2601.14234)"
METHODS: dict[str, Method] = {
    "bc": Method("bc", FlowBC, _bc_config, "flow behaviour cloning (QAM paper, arXiv 2601.14234)", pipeline="bc"),
    "qam": Method("qam", QAM, per_domain_config(QAMConfig, inv_temp=hp.QAM_BETA), QAM_PAPER),
    "qam-e": Method("qam-e", QAME, per_domain_config(QAMEConfig, inv_temp=_column(hp.QAM_E, 0),
                                                 edit_scale=_column(hp.QAM_E, 1)), QAM_PAPER + ", edit-policy variant"),
    "qam-f": Method("qam-f", QAMF, per_domain_config(QAMFConfig, inv_temp=_column(hp.QAM_F, 0),
                                                 fql_alpha=_column(hp.QAM_F, 1)), QAM_PAPER + ", one-step-policy variant"),
    "bam": Method("bam", BAM, per_domain_config(BAMConfig, inv_temp=hp.BAM_BETA), QAM_PAPER + ", basic adjoint matching baseline"),
    "trqam": Method("trqam", TRQAM, per_domain_config(TRQAMConfig, kl_budget=hp.TRQAM_KL_BUDGET, inv_temp=hp.QAM_BETA),
                     "Trust Region Q-Adjoint Matching (Dong et al.; arXiv 2605.27079)"),
    "fql": Method("fql", FQL, per_domain_config(FQLConfig, clip=False, alpha=hp.FQL_ALPHA), "Flow Q-Learning (Park, Li, Levine; arXiv 2502.02538)"),
    "ifql": Method("ifql", IFQL, per_domain_config(IFQLConfig, clip=False, kappa=hp.IFQL_KAPPA),
                    "implicit flow Q-learning (IQL with a flow actor; FQL paper, arXiv 2502.02538)"),
    "dsrl": Method("dsrl", DSRL, per_domain_config(DSRLConfig, clip=False, noise_scale=hp.DSRL_NOISE),
                    "Diffusion Steering via RL (Wagenmaker et al.; arXiv 2506.15799)"),
    "cgql": Method("cgql", CGQL, per_domain_config(CGQLConfig, clip=False, mode="simple", guidance=hp.CGQL_GUIDANCE,
                                         noisy_coef=0.0, inv_temp=hp.CGQL_INV_TEMP),
                    "classifier-guided flow Q-learning; " + QAM_PAPER),
    "cgql-m": Method("cgql-m", CGQL, per_domain_config(CGQLConfig, clip=False, mode="mse", guidance=_column(hp.CGQL_M, 0),
                                             noisy_coef=_column(hp.CGQL_M, 1), inv_temp=hp.CGQL_INV_TEMP),
                      "CGQL with MSE noisy-critic distillation; " + QAM_PAPER),
    "cgql-l": Method("cgql-l", CGQL, per_domain_config(CGQLConfig, clip=False, mode="linex", guidance=_column(hp.CGQL_L, 0),
                                             noisy_coef=_column(hp.CGQL_L, 1), inv_temp=hp.CGQL_INV_TEMP),
                      "CGQL with linex noisy-critic distillation; " + QAM_PAPER),
    "rebrac": Method("rebrac", ReBRAC, per_domain_config(ReBRACConfig, clip=False, alpha=_column(hp.REBRAC, 0),
                                               actor_noise=_column(hp.REBRAC, 1)),
                      "ReBRAC (Tarasov et al.; arXiv 2305.09836)", pipeline="scratch"),
    "fbrac": Method("fbrac", FBRAC, per_domain_config(FBRACConfig, clip=False, alpha=hp.FBRAC_ALPHA),
                     "flow BRAC, backprop through the ODE (FQL paper, arXiv 2502.02538)"),
    "fawac": Method("fawac", FAWAC, per_domain_config(FAWACConfig, clip=False, inv_temp=hp.FAWAC_BETA),
                     "AWAC with a flow actor (Nair et al.; arXiv 2006.09359)"),
    "fedit": Method("fedit", FEdit, per_domain_config(FEditConfig, clip=False, edit_scale=hp.FEDIT_EDIT),
                     "flow + EXPO edit policy (Dong et al.; arXiv 2507.07986)"),
    "qsm": Method("qsm", QSM, per_domain_config(QSMConfig, inv_temp=_column(hp.QSM, 0), alpha=_column(hp.QSM, 1)),
                   "Q-score matching (Psenka et al.; arXiv 2312.11752)", pipeline="scratch"),
    "dac": Method("dac", DAC, per_domain_config(DACConfig, alpha=hp.DAC_ALPHA), "diffusion actor-critic (Fang et al.; arXiv 2405.20555)", pipeline="scratch"),
    "rlpd": Method("rlpd", RLPD, per_domain_config(RLPDConfig, clip=False, bc_alpha=hp.RLPD_BC_ALPHA),
                    "RLPD: SAC with prior data (Ball et al.; arXiv 2302.02948)", pipeline="online",
                    offline_fraction=0.5, random_warmup=True),
}

# Names the suite accepts but has not implemented yet (none at present).
PLANNED: dict[str, str] = {}


ENTRY_POINT_GROUP = "trqam_bench.methods"  # how an installed package adds a method (examples/bestofn)
_EXTERNAL: dict[str, Method] = {}  # external methods loaded so far, by the name they were asked for


def source_fingerprint(package_dir: Path) -> str:
    """sha256 over the Python files of a method's package (their paths relative to it, and bytes):
    the code that defines its update, wherever the package lies."""
    digest = hashlib.sha256()
    for path in sorted(Path(package_dir).rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


CODE_PACKAGES = ("trqam", "baselines")  # where a built-in method's update and the shared agent live


def _module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin and spec.origin.endswith(".py") else None


def code_fingerprint(method: Method) -> str:
    """sha256 of the code that defines ``method``'s update: the modules of its agent class and
    config class and every module of `trqam`, `baselines` (or the method's own package) they import,
    transitively (read from the source, not the whole repository's revision). A run records it in
    its environment.json; an imported run is reused only while it is unchanged."""
    return _agent_code_fingerprint(method.agent_cls)


@functools.cache  # once per agent class and process: the code a process runs is the code it imported
def _agent_code_fingerprint(agent_cls: type) -> str:
    own = {agent_cls.__module__.split(".")[0], *CODE_PACKAGES}
    queue = [cls.__module__ for cls in agent_cls.__mro__ if cls.__module__.split(".")[0] in own]
    seen: dict[str, Path] = {}
    while queue:
        name = queue.pop()
        if name in seen or name.split(".")[0] not in own:
            continue
        path = _module_file(name)
        if path is None:
            continue
        seen[name] = path
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                queue += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                queue += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(name.encode() + b"\0" + seen[name].read_bytes() + b"\0")
    return digest.hexdigest()


def _external(name: str, target: Any, where: str, distribution: Any = None) -> Method:
    """``target`` (an entry point's object, or ``module:NAME``'s) checked and labelled with its source."""
    if not isinstance(target, Method):
        raise BenchError(f"method '{name}' ({where}) is not a bench.config.methods.Method but a "
                         f"{type(target).__name__}; declare it as Method(name, AgentClass, make_config, paper, pipeline=...)")
    module = importlib.import_module(target.agent_cls.__module__)
    top = importlib.import_module(module.__name__.split(".")[0])
    package_dir = Path(top.__file__).parent
    if distribution is None:
        names = importlib.metadata.packages_distributions().get(top.__name__, [])
        distribution = importlib.metadata.distribution(names[0]) if names else None
    source = {"package": distribution.metadata["Name"] if distribution else where.split(":")[0],
              "version": distribution.version if distribution else "unversioned",
              "fingerprint": source_fingerprint(package_dir), "reference": where}
    return dataclasses.replace(target, name=name, source=source)


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _load_external(name: str) -> Method | None:
    """The method ``name`` names outside this repository: ``module.path:ATTRIBUTE``, or an entry point
    of the ``trqam_bench.methods`` group; None when it names neither."""
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise BenchError(f"method '{name}': module '{module_name}' cannot be imported ({exc}); install its "
                             "package or put it on PYTHONPATH") from None
        if not hasattr(module, attribute):
            raise BenchError(f"method '{name}': module '{module_name}' has no '{attribute}'")
        return _external(name, getattr(module, attribute), name)
    entry = _entry_points().get(name)
    if entry is None:
        return None
    try:
        target = entry.load()
    except Exception as exc:  # noqa: BLE001 (any failure of a third party's import, in one line)
        raise BenchError(f"method '{name}' (entry point {entry.value} of {ENTRY_POINT_GROUP}) failed to load: "
                         f"{type(exc).__name__}: {exc}") from None
    return _external(name, target, entry.value, entry.dist)


def method_names() -> list[str]:
    """Every method name: the built-in ones, then those installed packages register."""
    return [*METHODS, *sorted(n for n in _entry_points() if n not in METHODS)]


def get_method(name: str) -> Method:
    if name in METHODS:
        return METHODS[name]
    if name not in _EXTERNAL:
        loaded = _load_external(name)
        if loaded is not None:
            _EXTERNAL[name] = loaded
    if name in _EXTERNAL:
        return _EXTERNAL[name]
    valid = sorted([*method_names(), *PLANNED])
    if name in PLANNED:
        raise BenchError(
            f"method '{name}' is not available in this version of trqam-bench ({PLANNED[name]}); "
            f"available now: {', '.join(sorted(METHODS))}"
        )
    raise BenchError(f"unknown method '{name}'{suggest(name, valid)}; valid methods: {', '.join(valid)}")


def _parse(text: str, hint: Any) -> Any:
    """``text`` read as the declared type ``hint`` (bool, int, float, str, tuple of ints,
    or any of these ``| None``); ValueError when it is not one."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if text.lower() == "none" and len(options) < len(typing.get_args(hint)):
            return None
        hint = options[0]
    if hint is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(text)
        return text.lower() in ("true", "1")
    if typing.get_origin(hint) is tuple or hint is tuple:
        return tuple(int(x) for x in text.split(","))
    if hint in (int, float, str):
        return hint(text)
    raise ValueError(text)


def _override_targets(config: Any) -> dict[str, tuple[str, ...]]:
    """Every overridable name -> its path: a config's own fields, and the fields of a nested
    config (TRQAM's ``dual``) both as ``dual.lam_min`` and, where unambiguous, ``lam_min``."""
    targets: dict[str, tuple[str, ...]] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            for inner in dataclasses.fields(value):
                targets[f"{f.name}.{inner.name}"] = (f.name, inner.name)
                targets.setdefault(inner.name, (f.name, inner.name))
        else:
            targets[f.name] = (f.name,)
    return targets


def apply_overrides(config: Any, overrides: tuple[str, ...]) -> Any:
    """``key=value`` strings applied to a config dataclass, each value parsed by its field's
    declared type (so a float field takes 0.5 even where a per-domain table holds 3)."""
    targets = _override_targets(config)
    seen: dict[str, str] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if key in seen:
            raise BenchError(f"--set names {key} twice ('{seen[key]}' and '{item}'); give each key once")
        seen[key] = item
        if not sep or key not in targets:
            raise BenchError(f"--set '{item}' does not name a field of {type(config).__name__}; "
                             f"fields: {', '.join(targets)}")
        if key in NOT_OVERRIDABLE:
            raise BenchError(f"--set '{item}': {key} is {NOT_OVERRIDABLE[key]}; it cannot be overridden")
        path = targets[key]
        owner = config if len(path) == 1 else getattr(config, path[0])
        hint = typing.get_type_hints(type(owner))[path[-1]]
        try:
            value = _parse(text, hint)
        except ValueError:
            raise BenchError(f"--set '{item}': cannot read '{text}' as {getattr(hint, '__name__', hint)}, the "
                             f"declared type of {key}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise BenchError(f"--set '{item}': {key} must be a finite number (strict JSON records have no "
                             "NaN or Infinity)")
        if len(path) == 1:
            config = dataclasses.replace(config, **{key: value})
        else:
            config = dataclasses.replace(config, **{path[0]: dataclasses.replace(owner, **{path[1]: value})})
    return config


# What each config field may hold, checked before any training (`check_config`): a field of
# any method's config (or of a nested config, TRQAM's dual settings) with this name.
FIELD_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "hidden_sizes": (lambda v: len(v) >= 1 and all(h >= 1 for h in v), "one or more positive layer widths"),
    "num_critics": (lambda v: v >= 1, "an integer >= 1"),
    "learning_rate": (lambda v: v > 0, "a number > 0"),
    "flow_steps": (lambda v: v >= 1, "an integer >= 1"),
    "discount": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "rho": (lambda v: v >= 0, "a number >= 0"),
    "tau": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "grad_clip": (lambda v: v is None or v > 0, "a number > 0, or none"),
    "chunk_len": (lambda v: v >= 1, "an integer >= 1"),
    "kl_budget": (lambda v: v > 0, "a number > 0 (the KL budget per action step)"),
    "inv_temp": (lambda v: v >= 0, "a number >= 0"),
    "alpha": (lambda v: v >= 0, "a number >= 0"),
    "fql_alpha": (lambda v: v >= 0, "a number >= 0"),
    "edit_scale": (lambda v: v >= 0, "a number >= 0"),
    "init_lam": (lambda v: v > 0, "a number > 0"),
    "dual_lr": (lambda v: v > 0, "a number > 0"),
    "lam_min": (lambda v: v >= 0, "a number >= 0"),
    "lam_max": (lambda v: v > 0, "a number > 0"),
    "lam_scale": (lambda v: v > 0, "a number > 0"),
    "ema": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "sampler": (lambda v: v in ("posterior", "jump"), "posterior (DAC's) or jump (QSM's)"),
    "bc_alpha": (lambda v: v >= 0, "a number >= 0"),
}
# Fields whose value the batch sampler takes from elsewhere: an override would make the agent
# disagree with its batches.
NOT_OVERRIDABLE = {
    "chunk_len": "the task's action-chunk length, which the batch sampler also uses",
    "discount": "the profile's (per domain), which the batch sampler also uses; choose another profile",
}


def check_config(config: Any) -> None:
    """One clear line for the first field of ``config`` outside what `FIELD_RULES` allows."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            check_config(value)
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise BenchError(f"{type(config).__name__}.{f.name} = {value!r} is not allowed: it must be a finite number")
        rule = FIELD_RULES.get(f.name)
        if rule is not None and not rule[0](value):
            raise BenchError(f"{type(config).__name__}.{f.name} = {value!r} is not allowed: it must be {rule[1]}")
    if getattr(config, "lam_min", 0) > getattr(config, "lam_max", float("inf")):
        raise BenchError(f"{type(config).__name__}: lam_min = {config.lam_min} exceeds lam_max = {config.lam_max}")
