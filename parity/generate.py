"""Write the parity fixtures from a checkout of the authors' code.

    nox -s parity -- --reference-dir /path/to/yonghdong/trqam
    python -m parity.generate --reference-dir DIR [--methods trqam qam] [--out tests/parity]

For each method the reference agent (imported from DIR, never copied here) is created from
`Setting.seed`; its BC flow is pretrained by the reference's own BC-only mode for
`Setting.bc_updates` updates and loaded into every flow network, as the reference's
``main.py --pretrained_actor_path`` does; then `Setting.updates` updates run while every
``jax.random.normal`` / ``uniform`` / ``randint`` draw is recorded (also inside the compiled updates, `DrawRecorder`) and named by its role; the first
fine-tuning update runs eagerly (``jax.disable_jit``) so that its intermediate values can be
captured. What is stored, per method and setting (one ``.npz`` and
the provenance in ``provenance.json``):

* the batches, the parameters before and after, every draw of every update, the metrics
  the reference logs at every update;
* for the first update: the next actions of the TD target, the adjoint rollout's states
  and adjoints, the gradient of the total loss, and the critic's and the fine-tuned
  field's outputs on the batch.

`parity.compare` replays all of it through our agents. This module needs the reference's
dependencies (flax, distrax, ml_collections, tensorflow-probability); the nox session
``parity`` installs them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import jax
import numpy as np

from parity.setting import ONE_UPDATE, SETTINGS, Setting, make_batches

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "parity"


@dataclass(frozen=True)
class Spec:
    """How to run one reference agent: its module and class, its config beyond the setting,
    the names of its draws in the order one update makes them, the modules that receive
    the BC flow, the velocity field whose output is recorded, and the methods whose
    results the first update captures."""

    module: str
    cls: str
    config: dict = field(default_factory=dict)
    roles: Callable[[Setting], list[str]] = lambda s: []
    bc_modules: tuple[str, ...] = ("actor_slow", "target_actor_slow", "actor_fast", "target_actor_fast")
    field_module: str | None = "actor_fast"  # None: the method has no flow
    captures: tuple[str, ...] = ("sample_actions", "adj_matching")
    # Draws made by TensorFlow Probability's (tanh-)Gaussian heads: its Sample distribution
    # draws the event axis first ([D, *batch]); they are stored with that axis moved last.
    event_first: tuple[str, ...] = ()
    critic_time: bool = False  # the critic takes the flow time (CGQL's; t = 1 for actions)
    # Which reference: "trqam" (github.com/yonghdong/trqam: its agents start from a BC flow
    # pretrained by its BC-only mode) or "qam" (github.com/ColinQiyangLi/qam: the QAM paper
    # trains from scratch, so its agents start from their own initialisation).
    repo: str = "trqam"
    update_kwargs: Callable[[int], dict] = lambda u: {}  # the reference's update arguments at update u (from 0)


def flow_roles(s: Setting) -> list[str]:
    """TRQAM and QAM: the TD target's policy noise, the BC loss's noise and time, the adjoint
    rollout's start and one noise per flow step (the last one is drawn but not used)."""
    return ["critic/next_noise", "bc/x0", "bc/t", "soc/x0", *["soc/noise"] * s.flow_steps]


BC_ROLES = ["bc/x0", "bc/t"]


def ddpm_roles(s: Setting) -> list[str]:
    return ["critic/next_noise", *["critic/next_z"] * s.flow_steps, "ddpm/t", "ddpm/noise"]

METHODS = {
    "trqam": Spec("agents.trqam", "TRQAMAgent", {"kl_budget": 1.0}, flow_roles),
    "qam": Spec("agents.qam", "QAMAgent", {"inv_temp": 1.0}, flow_roles),
    # QAM-E: QAM's draws; the TD target's action is edited; the edit loss edits a fresh flow action.
    "qam-e": Spec("agents.qam", "QAMAgent", {"inv_temp": 1.0, "edit_scale": 0.1},
                  lambda s: ["critic/next_noise", "critic/next_edit", *flow_roles(s)[1:], "edit/flow_noise",
                             "edit/noise"],
                  event_first=("critic/next_edit", "edit/noise")),
    # FQL: the TD target acts with the one-step policy; the distillation draws its own noise.
    "fql": Spec("agents.fql", "FQLAgent", {"alpha": 10.0},
                lambda s: ["critic/next_noise", "bc/x0", "bc/t", "actor/noise"],
                bc_modules=("actor_bc_flow",), field_module="actor_bc_flow", captures=("sample_actions",)),
    # DSRL: the TD target's and the latent critic's noises, the BC loss, the noise policy's sample.
    "dsrl": Spec("agents.dsrl", "DSRLAgent", {"noise_scale": 1.0},
                 lambda s: ["critic/next_noise", "critic/distill_noise", "bc/x0", "bc/t", "actor/noise"],
                 bc_modules=("actor_bc_flow", "target_actor_bc_flow"), field_module="actor_bc_flow",
                 captures=("sample_actions",), event_first=("critic/next_noise", "actor/noise")),
    # CGQL-L: the TD target's guided flow noise, the noisy critic's time and noise, the BC loss.
    "cgql-l": Spec("agents.cgql", "CGQLAgent",
                   {"mode": "linex", "noisy_coef": 0.1, "guidance_coef": 0.1, "inv_temp": 10.0},
                   lambda s: ["critic/next_noise", "critic/noisy_t", "critic/distill_noise", "bc/x0", "bc/t"],
                   bc_modules=("actor", "target_actor"), field_module="actor", captures=("sample_actions",),
                   critic_time=True),
    # The QAM paper's reference (from scratch).
    "qam-f": Spec("agents.qam", "QAMAgent", {"inv_temp": 1.0, "fql_alpha": 10.0},
                  lambda s: [*flow_roles(s), "actor/noise"], repo="qam"),
    "bam": Spec("agents.bam", "BAMAgent", {"inv_temp": 1.0}, flow_roles, captures=("sample_actions",), repo="qam"),
    # CGQL (simple: a time-free guidance critic, no noisy critic) and CGQL-M (MSE noisy critic).
    "cgql": Spec("agents.cgql", "CGQLAgent", {"mode": "simple", "guidance_coef": 0.1, "inv_temp": 10.0},
                 lambda s: ["critic/next_noise", *BC_ROLES], field_module="actor", captures=("sample_actions",),
                 critic_time=True, repo="qam"),
    "cgql-m": Spec("agents.cgql", "CGQLAgent",
                   {"mode": "mse", "noisy_coef": 0.1, "guidance_coef": 0.1, "inv_temp": 10.0},
                   lambda s: ["critic/next_noise", "critic/noisy_t", "critic/distill_noise", *BC_ROLES],
                   field_module="actor", captures=("sample_actions",), critic_time=True, repo="qam"),
    # RLPD: SAC from scratch; the TD target samples the online actor.
    "rlpd": Spec("agents.rlpd", "RLPDAgent", {}, lambda s: ["critic/next_noise", "actor/noise"], field_module=None,
                 captures=(), event_first=("critic/next_noise", "actor/noise"), repo="qam"),
    # RLPD with the QAM paper's BC term at scene's weight (experiments/reproduce_rlpd.py: bc_alpha 0.3).
    "rlpd-bc": Spec("agents.rlpd", "RLPDAgent", {"bc_alpha": 0.3}, lambda s: ["critic/next_noise", "actor/noise"],
                    field_module=None, captures=(), event_first=("critic/next_noise", "actor/noise"), repo="qam"),
    # ReBRAC: main.py calls update(batch, full_update=(i % actor_freq == 0)) for i = 1, 2, ...
    "rebrac": Spec("agents.rebrac", "ReBRACAgent", {"alpha_actor": 0.1, "actor_noise": 0.2},
                   lambda s: ["critic/next_noise"], field_module=None, captures=(), repo="qam",
                   update_kwargs=lambda u: {"full_update": (u + 1) % 2 == 0}),
    # QSM and DAC (one DDPM agent): the TD target's sampler noise x_N and one z per denoising
    # step (the last drawn but not used), then the denoising loss's step index and noise.
    "qsm": Spec("agents.dcgql", "DCGQLAgent", {"actor_loss_type": "qsm", "inv_temp": 3.0, "alpha": 10.0,
                                               "clip_sampler_before": False, "clip_sampler_after": True},
                ddpm_roles, field_module="actor", captures=("sample_actions",), repo="qam"),
    "dac": Spec("agents.dcgql", "DCGQLAgent", {"actor_loss_type": "dac", "alpha": 1.0,
                                               "clip_sampler_before": True, "clip_sampler_after": False},
                ddpm_roles, field_module="actor", captures=("sample_actions",), repo="qam"),
    "fawac": Spec("agents.fawac", "FAWACAgent", {"inv_temp": 0.8}, lambda s: ["critic/next_noise", *BC_ROLES],
                  field_module="actor", captures=("sample_actions",), repo="qam"),
    "fbrac": Spec("agents.fbrac", "FBRACAgent", {"alpha": 1.0},
                  lambda s: ["critic/next_noise", *BC_ROLES, "actor/noise"],
                  field_module="actor_flow", captures=("sample_actions",), repo="qam"),
    "fedit": Spec("agents.fedit", "FEditAgent", {"edit_scale": 0.2},
                  lambda s: ["critic/next_noise", "critic/next_edit", *BC_ROLES, "edit/flow_noise", "edit/noise"],
                  field_module="actor_bc_flow", captures=("sample_actions",),
                  event_first=("critic/next_edit", "edit/noise"), repo="qam"),
    # IFQL: the critic and value losses draw nothing. (The reference's main.py loads a BC
    # checkpoint into modules named actor_slow, actor_bc_flow or actor only, so its IFQL,
    # whose flow is actor_flow, starts from scratch; here its flow is BC-initialised too.)
    "ifql": Spec("agents.ifql", "IFQLAgent", {"kappa": 0.9}, lambda s: list(BC_ROLES),
                 bc_modules=("actor_flow",), field_module="actor_flow", captures=()),
}


# ---- the per-domain configurations the profiles run (issue 30, item 5) -----------------------
@dataclass(frozen=True)
class DomainFixture:
    """One method at one domain, configured as the authors configure that domain for the paper
    whose protocol ``profile`` follows; replayed through the config our profile builds there."""

    method: str
    domain: str  # abbreviation (bench.tasks.DOMAINS)
    profile: str  # "paper" (the TRQAM table, the TRQAM repository) or "qam-paper" (the QAM repository)

    @property
    def name(self) -> str:
        return f"{self.method}@{self.domain}-{self.profile}"


# Per method, a domain where the profile's value differs from the method's default (a wrong
# per-domain mapping fails there), humanoidmaze once per repository (its discount and rho).
DOMAIN_FIXTURES = [DomainFixture(*f) for f in (
    ("trqam", "c3", "paper"), ("trqam", "hm", "paper"), ("qam", "p44", "paper"), ("qam-e", "p44", "paper"),
    ("fql", "al", "paper"), ("dsrl", "scene", "paper"), ("ifql", "hm", "paper"), ("cgql-l", "p33", "paper"),
    ("qam-f", "scene", "qam-paper"), ("bam", "al", "qam-paper"), ("cgql", "c2", "qam-paper"),
    ("cgql-m", "c2", "qam-paper"), ("rebrac", "c3", "qam-paper"), ("fbrac", "scene", "qam-paper"),
    ("fawac", "scene", "qam-paper"), ("fedit", "hm", "qam-paper"), ("qsm", "c2", "qam-paper"),
    ("dac", "al", "qam-paper"), ("rlpd", "c2", "qam-paper"),
)]
# The names of the QAM repository's methods in experiments/reproduce*.py.
QAM_SCRIPT_NAMES = {"qam": "QAM", "qam-e": "QAM_EDIT", "qam-f": "QAM_FQL", "bam": "BAM", "fql": "FQL", "dsrl": "DSRL",
                    "ifql": "IFQL", "cgql": "CGQL", "cgql-m": "CGQL_MSE", "cgql-l": "CGQL_LINEX", "rebrac": "REBRAC",
                    "fbrac": "FBRAC", "fawac": "FAWAC", "fedit": "FEDIT", "qsm": "QSM", "dac": "DAC", "rlpd": "RLPD"}
# Facts of the TRQAM repository's README: the per-domain settings it publishes.
TRQAM_README = {"kl_budget": {"c3": 0.5}, "default_kl_budget": 1.0,
                "humanoidmaze": {"discount": 0.999, "rho": 0.0}, "default": {"discount": 0.995, "rho": 0.5}}


def qam_script_params(qam_dir: Path, method: str, domain_name: str) -> dict:
    """The per-domain agent values of ``method`` in the QAM repository's reproduce scripts, read as
    data (their ``agent_params`` literal; nothing of them is run or copied)."""
    import ast

    script = "reproduce_rlpd.py" if method == "rlpd" else "reproduce.py"
    tree = ast.parse((qam_dir / "experiments" / script).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "agent_params":
            table = {k.arg: ast.literal_eval(k.value) if not isinstance(k.value, ast.Dict) else
                     {ast.literal_eval(key): {kw.arg: ast.literal_eval(kw.value) for kw in value.keywords}
                      for key, value in zip(k.value.keys, k.value.values, strict=True)}
                     for k in node.value.keywords}
            domains = table[QAM_SCRIPT_NAMES[method]]
            key = next(d for d in domains if d in (domain_name, f"{domain_name}-sparse"))
            return dict(domains[key])
    raise RuntimeError(f"{script} of {qam_dir} has no agent_params: the QAM repository changed")


def domain_setting(fixture: DomainFixture) -> tuple[Setting, dict]:
    """The fixture's small setting at the domain's chunk length and discount, and the domain's
    reference values beyond the agent's own (rho), as the authors' scripts set them."""
    from bench.tasks import DOMAINS_BY_ABBR

    domain = DOMAINS_BY_ABBR[fixture.domain]
    humanoid, long = domain.name.startswith("humanoidmaze"), domain.name.startswith(("antmaze-giant", "humanoidmaze"))
    if fixture.profile == "paper":  # the TRQAM README
        facts = TRQAM_README["humanoidmaze" if humanoid else "default"]
        discount, rho = facts["discount"], facts["rho"]
    else:  # the QAM repository's experiments/reproduce.py base arguments
        discount, rho = (0.995 if long else 0.99), (0.0 if humanoid else 0.5)
    chunk = 1 if domain.name.startswith(("antmaze", "humanoidmaze")) else 5  # both repositories
    return replace(ONE_UPDATE, chunk_len=chunk, discount=discount), {"rho": rho}


def domain_config(fixture: DomainFixture, qam_dir: Path) -> dict:
    """The agent values of the fixture's method at its domain, from the authors' sources."""
    from bench.tasks import DOMAINS_BY_ABBR

    if fixture.method == "trqam":
        return {"kl_budget": TRQAM_README["kl_budget"].get(fixture.domain, TRQAM_README["default_kl_budget"])}
    # The TRQAM table's baselines take the QAM paper's per-domain values (the trqam_table_baselines
    # assumption's default); the QAM paper's methods take them from its own scripts.
    return qam_script_params(qam_dir, fixture.method, DOMAINS_BY_ABBR[fixture.domain].name)


def reference_config(module, setting: Setting, extra: dict):
    config = module.get_config()
    config.update({
        "actor_hidden_dims": setting.hidden, "value_hidden_dims": setting.hidden, "num_qs": setting.num_critics,
        "action_chunking": True, "horizon_length": setting.chunk_len, "discount": setting.discount,
        "lr": setting.learning_rate, "batch_size": setting.batch_size, "flow_steps": setting.flow_steps, **extra,
    })
    if "diffusion_steps" in config:  # the DDPM agent's denoising steps
        config["diffusion_steps"] = setting.flow_steps
    return config


# ---- recording -----------------------------------------------------------------------
class DrawRecorder:
    """Records every ``jax.random.normal`` / ``uniform`` / ``randint`` value, also inside jitted code.

    Installed once (`install`), it wraps both functions: each call site gets a number when
    it is traced (program order) and sends its value to the host with
    ``jax.debug.callback`` when it runs, so a compiled update reports its draws at every
    call; `record` returns one call's draws in program order."""

    def __init__(self) -> None:
        self.log: list[tuple[int, np.ndarray]] = []
        self.sites = 0

    def install(self) -> None:
        for name in ("normal", "uniform", "randint"):
            setattr(jax.random, name, self._wrap(getattr(jax.random, name)))

    def _wrap(self, original):
        def draw(*args, **kwargs):
            value = original(*args, **kwargs)
            site, self.sites = self.sites, self.sites + 1
            jax.debug.callback(lambda v, site=site: self.log.append((site, np.asarray(v))), value, ordered=True)
            return value
        return draw

    def record(self, fn, *args):
        self.log.clear()
        result = jax.block_until_ready(fn(*args))
        jax.effects_barrier()
        return result, [value for _, value in sorted(self.log, key=lambda entry: entry[0])]


RECORDER = DrawRecorder()


@contextlib.contextmanager
def capturing(owner, name: str, sink: list) -> Iterator[None]:
    """Record the arguments and result of every call of ``owner.name``."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        sink.append((args, kwargs, result))
        return result

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


def named_draws(log: list[np.ndarray], roles: list[str], event_first: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    if len(log) != len(roles):
        raise RuntimeError(f"the reference made {len(log)} draws in one update, expected {len(roles)} ({roles}): "
                           "its code has changed; update parity.generate's roles")
    named: dict[str, list[np.ndarray]] = {}
    for role, value in zip(roles, log, strict=True):
        named.setdefault(role, []).append(np.moveaxis(value, 0, -1) if role in event_first else value)
    return {role: values[0] if len(values) == 1 else np.stack(values) for role, values in named.items()}


def flatten(tree, prefix: str) -> dict[str, np.ndarray]:
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        keys = "/".join(str(getattr(p, "key", p)) for p in path)
        flat[f"{prefix}/{keys}"] = np.asarray(leaf)
    return flat


def scalars(info: dict) -> dict[str, float]:
    return {k: float(np.asarray(v)) for k, v in info.items() if np.ndim(v) == 0}


# ---- the BC stage and the fine-tuning updates -------------------------------------------
def pretrain_bc(trqam_module, setting: Setting, batches, arrays: dict, traces: dict):
    """The reference's BC pretraining: its TRQAM agent in BC-only mode (clipped Adam)."""
    config = reference_config(trqam_module, setting, {"bc_only": True})
    agent = trqam_module.TRQAMAgent.create(setting.seed, batches[0]["observations"][0], batches[0]["actions"][0, 0],
                                           config)
    arrays |= flatten(agent.network.params["modules_actor_slow"], "bc/params_before")
    losses = []
    for u in range(setting.bc_updates):
        (agent, info), log = RECORDER.record(agent.update, batches[u % len(batches)])
        arrays |= {f"bc/draws/{u}/{k}": v for k, v in named_draws(log, BC_ROLES).items()}
        losses.append(float(info["actor/flow_loss"]))
    traces["bc/flow_loss"] = losses
    arrays |= flatten(agent.network.params["modules_actor_slow"], "bc/params_after")
    return agent.network.params["modules_actor_slow"], config


REPOSITORIES = {"trqam": "github.com/yonghdong/trqam", "qam": "github.com/ColinQiyangLi/qam"}


def use_repository(path: Path) -> None:
    """Import ``agents`` and ``utils`` from ``path`` (both references use these names)."""
    for name in [m for m in sys.modules if m.split(".")[0] in ("agents", "utils", "envs")]:
        del sys.modules[name]
    sys.path[:] = [p for p in sys.path if p not in _REFERENCE_PATHS]
    sys.path.insert(0, str(path))
    _REFERENCE_PATHS.add(str(path))


_REFERENCE_PATHS: set[str] = set()


def record_method(name: str, spec: Spec, setting: Setting, reference: Path) -> tuple[dict, dict]:
    use_repository(reference)
    module = importlib.import_module(spec.module)
    flax_utils = importlib.import_module("utils.flax_utils")
    agent_cls = getattr(module, spec.cls)
    batches = make_batches(setting)
    arrays: dict[str, np.ndarray] = {}
    traces: dict[str, list[float]] = {}
    for i, batch in enumerate(batches):
        arrays |= {f"batch/{i}/{k}": v for k, v in batch.items()}

    bc_config = None
    config = reference_config(module, setting, spec.config)
    agent = agent_cls.create(setting.seed, batches[0]["observations"][0], batches[0]["actions"][0, 0], config)
    if spec.repo == "trqam":
        bc_flow, bc_config = pretrain_bc(importlib.import_module("agents.trqam"), setting, batches, arrays, traces)
        params = dict(agent.network.params)
        for flow in spec.bc_modules:
            params[f"modules_{flow}"] = bc_flow  # BC-initialised, as the reference's main.py loads it
        agent = agent.replace(network=agent.network.replace(params=params))
    arrays |= flatten(agent.network.params, "params_before")

    first = batches[0]
    flat_actions = first["actions"].reshape(setting.batch_size, -1)
    ones = (np.ones((setting.batch_size, 1), np.float32),) if spec.critic_time else ()
    arrays["capture/q"] = np.asarray(agent.network.select("critic")(first["observations"], flat_actions, *ones))
    times = np.full((setting.batch_size, 1), 0.3, np.float32)
    if spec.field_module is not None:
        arrays["capture/v"] = np.asarray(
            agent.network.select(spec.field_module)(first["observations"], flat_actions, times))

    roles = spec.roles(setting)
    for u in range(setting.updates):
        next_actions, rollouts, grads = [], [], []
        with contextlib.ExitStack() as stack:
            if u == 0:  # the first update runs eagerly, its intermediate values captured
                stack.enter_context(jax.disable_jit())
                if "sample_actions" in spec.captures:
                    stack.enter_context(capturing(agent_cls, "sample_actions", next_actions))
                if "adj_matching" in spec.captures:
                    stack.enter_context(capturing(agent_cls, "adj_matching", rollouts))
                stack.enter_context(capturing(flax_utils.TrainState, "apply_gradients", grads))
            (agent, info), log = RECORDER.record(functools.partial(agent.update, **spec.update_kwargs(u)),
                                                 batches[u % len(batches)])
        arrays |= {f"draws/{u}/{k}": v for k, v in named_draws(log, roles, spec.event_first).items()}
        for key, value in scalars(info).items():
            traces.setdefault(key, []).append(value)
        if u == 0:
            if next_actions:
                arrays["capture/next_actions"] = np.asarray(next_actions[0][2])
            if rollouts:
                xs, adjs, _, _ = rollouts[0][2]
                arrays["capture/xs"], arrays["capture/adjs"] = np.asarray(xs), np.asarray(adjs)
            arrays |= flatten(grads[0][1]["grads"], "grads")
            arrays |= flatten(agent.network.params, "params_after_1")
    arrays |= flatten(agent.network.params, "params_after")
    for key in ("lam", "kl_ema"):
        if hasattr(agent, key):
            arrays[f"state/{key}"] = np.asarray(getattr(agent, key))
    record = {"method": name, "repository": REPOSITORIES[spec.repo], "reference_class": f"{spec.module}.{spec.cls}",
              "bc_initialised": spec.repo == "trqam", "setting": setting.record(),
              "reference_config": plain(config),
              "bc_reference_config": plain(bc_config) if bc_config is not None else None, "roles": roles}
    arrays |= {f"trace/{k}": np.asarray(v, np.float32) for k, v in traces.items()}
    return arrays, record


def plain(config) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(config).items()}


def git_commit(path: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown (not a git checkout)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-dir", type=Path, default=None,
                        help="a checkout of github.com/yonghdong/trqam (its agents/ and utils/ are imported)")
    parser.add_argument("--qam-reference-dir", type=Path, default=None,
                        help="a checkout of github.com/ColinQiyangLi/qam, for the QAM paper's methods")
    parser.add_argument("--commit", default=None, help="the trqam checkout's commit, when it is not a git checkout")
    parser.add_argument("--qam-commit", default=None, help="the qam checkout's commit, when it is not a git checkout")
    parser.add_argument("--methods", nargs="+", default=None, choices=list(METHODS),
                        help="default: every method whose reference checkout is given")
    parser.add_argument("--out", type=Path, default=FIXTURES)
    parser.add_argument("--domain-fixtures", action="store_true",
                        help="write the fixtures at the profiles' per-domain configurations (DOMAIN_FIXTURES; "
                             "needs both checkouts) instead of the methods' two settings")
    args = parser.parse_args(argv)
    checkouts = {"trqam": args.reference_dir, "qam": args.qam_reference_dir}
    commits = {"trqam": args.commit, "qam": args.qam_commit}
    marker = {"trqam": "agents/trqam.py", "qam": "agents/bam.py"}
    for repo, path in checkouts.items():
        if path is not None and not (path / marker[repo]).is_file():
            print(f"error: {path} holds no {marker[repo]}; pass a checkout of {REPOSITORIES[repo]}", file=sys.stderr)
            return 2
    methods = args.methods or [m for m, spec in METHODS.items() if checkouts[spec.repo] is not None]
    missing = sorted({METHODS[m].repo for m in methods if checkouts[METHODS[m].repo] is None})
    if not methods or missing:
        print("error: pass --reference-dir (github.com/yonghdong/trqam) and/or --qam-reference-dir "
              f"(github.com/ColinQiyangLi/qam){' for ' + ', '.join(missing) if missing else ''}", file=sys.stderr)
        return 2
    RECORDER.install()
    args.out.mkdir(parents=True, exist_ok=True)
    provenance_path = args.out / "provenance.json"
    provenance = json.loads(provenance_path.read_text()) if provenance_path.exists() else {"fixtures": {}}
    import flax  # noqa: PLC0415 (a dependency of the reference only)

    references = provenance.setdefault("references", {})
    old = provenance.pop("reference", None)  # the single-reference layout of earlier fixtures
    if old is not None:
        references.setdefault(old["repository"], old["commit"])
        for record in provenance["fixtures"].values():
            record.setdefault("repository", old["repository"])
            record.setdefault("commit", old["commit"])
    for repo, path in checkouts.items():
        if path is not None:
            provenance["references"][REPOSITORIES[repo]] = commits[repo] or git_commit(path.resolve())
    provenance["versions"] = {"jax": jax.__version__, "flax": flax.__version__, "numpy": np.__version__}
    jobs = []  # (file stem, method, its spec, setting, fields added to its provenance record)
    if args.domain_fixtures:
        if args.qam_reference_dir is None:
            print("error: --domain-fixtures reads the QAM repository's reproduce scripts: pass --qam-reference-dir",
                  file=sys.stderr)
            return 2
        for fixture in (f for f in DOMAIN_FIXTURES if f.method in methods):
            spec = METHODS[fixture.method]
            setting, base = domain_setting(fixture)
            extra = spec.config | base | domain_config(fixture, args.qam_reference_dir)
            values_from = ("TRQAM README (kl_budget, discount, rho)" if fixture.method == "trqam" else
                           "QAM repository experiments/reproduce*.py agent_params")
            jobs.append((fixture.name, fixture.method, replace(spec, config=extra), setting,
                         {"domain": fixture.domain, "profile": fixture.profile, "values_from": values_from}))
    else:
        jobs = [(f"{name}-{setting_name}", name, METHODS[name], setting, {})
                for name in methods for setting_name, setting in SETTINGS.items()]
    for stem, name, spec, setting, fields in jobs:
        arrays, record = record_method(name, spec, setting, checkouts[spec.repo].resolve())
        record |= {"commit": provenance["references"][REPOSITORIES[spec.repo]], **fields}
        path = args.out / f"{stem}.npz"
        np.savez_compressed(path, **arrays)
        provenance["fixtures"][path.name] = record
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    provenance_path.write_text(json.dumps(provenance, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
