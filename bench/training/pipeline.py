"""The training loop shared by every method: phases, evaluation, checkpoints, resume.

A run is a list of phases (``pretrain`` = BC pretraining; ``offline`` fine-tuning;
``online`` = offline-to-online fine-tuning, `bench.training.online`). Every random draw is a pure
function of (seed, phase, step): the batch at step k is sampled from ``fold_in(phase_key, k)``
and evaluation seeds come from (seed, phase, step). A killed offline run therefore resumes
from its last checkpoint and ends with exactly the parameters and metrics of an
uninterrupted one; a killed online run keeps every transition it collected (see
`bench.training.online` for what it can and cannot replay).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from bench import files as bench_files
from bench import provenance
from bench.config import assumptions
from bench.config.methods import Method, apply_overrides, check_config, code_fingerprint, get_method
from bench.config.profiles import Profile, get_profile
from bench.data.batches import TransitionData, sample_batch
from bench.data.loading import DataFiles, Source, cache_dir, load_split, resolve_files
from bench.errors import BenchError
from bench.files import REPO, derived_seed, file_lock
from bench.tasks import Task, resolve_task
from bench.training import bundle, compile_cache, compiled
from bench.training.runstore import (
    PHASE_ORDER,
    CsvLog,
    DamagedRecord,
    exclusive,
    read_json,
    write_atomic,
    write_json,
    write_summary,
)
from bench.training.trackers import Trackers
from bench.training.trackers import check_available as check_trackers
from trqam.agent import agent_file_problem, checksum_path, load_agent, save_agent

# The result store; TRQAM_BENCH_RESULTS moves it (tests, or a shared file system on a cluster).
RESULTS_DIR = Path(os.environ.get("TRQAM_BENCH_RESULTS", REPO / "results"))


SCHEDULE_FLAGS = {"pretrain_steps": "pretrain-steps", "offline_steps": "offline-steps", "eval_every": "eval-interval", "eval_episodes": "eval-episodes",
                  "log_every": "log-interval", "batch_size": "batch-size"}
# The schedule fields of a profile that `train` and `reproduce` set per run (their flags:
# --pretrain-steps, --offline-steps, --eval-interval, --eval-episodes, --log-interval, --batch-size).
SCHEDULE_FIELDS = ("pretrain_steps", "offline_steps", "eval_every", "eval_episodes", "log_every", "batch_size")


@dataclass(frozen=True)
class RunConfig:
    """What to run. Everything else follows from the profile and the method's config."""

    method: str
    task: str
    profile: str = "quick"
    seed: int = 0
    source: Source | None = None  # None: the profile's default
    dataset_dir: Path | None = None
    out: Path | None = None  # None: results/runs/<profile>/<method>/<task>/seed<seed>
    # Fine-tuning methods: from the BC checkpoint, or from scratch; None: the profile's protocol
    # (bc for the TRQAM paper's profiles, scratch for qam-paper), resolved when the config is made.
    init: Literal["bc", "scratch"] | None = None
    overrides: tuple[str, ...] = ()  # "key=value" changes to the method's config
    bc_seed: int | None = None  # seed of BC pretraining (default: seed); one BC checkpoint can serve many seeds
    online_steps: int | None = None  # length of the online phase; None: the profile's (0 = offline only)
    # The schedule, each None for the profile's value (`SCHEDULE_FIELDS`: the train/reproduce flags).
    pretrain_steps: int | None = None
    offline_steps: int | None = None
    eval_every: int | None = None
    eval_episodes: int | None = None
    log_every: int | None = None
    batch_size: int | None = None
    # Choices the authors' code leaves open (`bench.config.assumptions`), NAME=VALUE; only values other
    # than the defaults are kept (sorted), so a run under every default is the profile's own.
    assume: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        profile = get_profile(self.profile)
        if self.init is None:
            object.__setattr__(self, "init", profile.init)
        object.__setattr__(self, "assume", assumptions.parse(self.assume, profile))
        shared = assumptions.shared_bc_seed(profile, self.assumptions())
        if self.bc_seed is None and shared is not None and get_method(self.method).pipeline == "fine-tune":
            object.__setattr__(self, "bc_seed", shared)  # bc_checkpoint=per-task: one BC checkpoint per task

    def assumptions(self) -> dict[str, str]:
        """Every assumption this run's profile leaves open, at this run's value (`bench.config.assumptions`)."""
        return assumptions.resolve(get_profile(self.profile), self.assume)

    def schedule_changes(self) -> dict[str, int]:
        """The profile fields this run sets (`SCHEDULE_FIELDS`), in their order."""
        return {name: getattr(self, name) for name in SCHEDULE_FIELDS if getattr(self, name) is not None}

    def resolved_profile(self, task: Task) -> Profile:
        """The profile for ``task`` with this run's schedule."""
        return dataclasses.replace(get_profile(self.profile).for_task(task), **self.schedule_changes())

    def resolved_online_steps(self) -> int:
        return get_profile(self.profile).online_steps if self.online_steps is None else self.online_steps

    def phase_seed(self, phase_name: str) -> int:
        """BC pretraining draws from ``bc_seed``; every other phase from ``seed``."""
        return self.bc_seed if phase_name == "pretrain" and self.bc_seed is not None else self.seed

    def run_dir(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        task = resolve_task(self.task).name  # the full name, also for the short form 'c2-task1'
        # A non-default online phase gets its own directory beside the profile's default run.
        online = self.resolved_online_steps()
        suffix = "" if online == get_profile(self.profile).online_steps else f"-online{online}"
        # So do config overrides (the KL-budget study: seed0-kl_budget=0.25) and schedule changes.
        suffix += "".join(f"-{o.replace('/', '_')}" for o in sorted(self.overrides))
        suffix += "".join(f"-{k}={v}" for k, v in self.schedule_changes().items())
        suffix += "".join(f"-assume_{a}" for a in self.assume)  # a non-default assumption (never the default's cell)
        method = self.method.replace(":", "--")  # a method named module:NAME (bench.config.methods)
        return RESULTS_DIR / "runs" / self.profile / method / task / f"seed{self.seed}{suffix}"


@dataclass(frozen=True)
class Phase:
    name: str  # one of runstore.PHASE_ORDER
    steps: int
    method: Method
    config: Any  # the agent config of this phase
    evaluate: bool  # evaluate every eval_every steps and at the end
    eval_every: int = 0


def method_config(method: Method, profile: Profile, task: Task, run: RunConfig) -> Any:
    """The agent config a run of ``method`` trains with: the profile's per-domain values, then the
    run's assumptions (`bench.config.assumptions`), then its ``--set`` (which always wins). The
    parity fixtures at the profiles' domains replay through this same config (parity/compare.py)."""
    config = assumptions.adjust_config(method.name, method.make_config(profile, task), task, run.assumptions())
    return apply_overrides(config, run.overrides)


def plan_phases(method: Method, profile: Profile, task: Task, run: RunConfig) -> list[Phase]:
    """`bc` is BC pretraining evaluated as is. A fine-tuning method runs BC pretraining
    (reused from the BC cache when the same pretraining already ran) and then its offline
    phase, initialised from the BC actor; with init="scratch", or for a method with no flow
    to pretrain (pipeline "scratch"), only the offline phase. With online steps, the online
    phase follows, continuing the offline agent; an online-only method (RLPD) has only it."""
    online_steps = run.resolved_online_steps()
    if online_steps < 0:
        raise BenchError(f"--online-steps must be 0 (offline only) or positive, got {online_steps}")
    bc = get_method("bc")
    bc_config = bc.make_config(profile, task)
    check_config(bc_config)
    if method.pipeline == "bc":
        if online_steps:
            raise BenchError("method 'bc' has no online phase (it is BC pretraining, evaluated as is); "
                             "run it with --online-steps 0")
        bc_config = apply_overrides(bc_config, run.overrides)
        check_config(bc_config)
        return [Phase("pretrain", profile.pretrain_steps, method, bc_config, True,
                      profile.pretrain_eval_every or profile.eval_every)]
    config = method_config(method, profile, task, run)
    check_config(config)
    online = Phase("online", online_steps, method, config.for_online(), True, profile.online_eval_every)
    if method.pipeline == "online":
        if not online_steps:
            raise BenchError(f"method '{method.name}' is online-only: pass --online-steps N "
                             f"(the paper profile's default is {get_profile('paper').online_steps})")
        return [online]
    phases = [Phase("offline", profile.offline_steps, method, config, True, profile.eval_every)]
    if run.init == "bc" and method.pipeline == "fine-tune":
        phases.insert(0, Phase("pretrain", profile.pretrain_steps, bc, bc_config, False, profile.eval_every))
    return phases + ([online] if online_steps else [])


class ShardedData:
    """The training data of a run; rotates through shards every `interval` steps."""

    def __init__(self, files: DataFiles, task: Task, env, interval: int, sparse_reward: bool):
        self.files, self.task, self.env, self.interval = files, task, env, interval
        self.sparse_reward = sparse_reward
        self._loaded: tuple[int, TransitionData] | None = None  # one shard in memory at a time
        self.loads, self.load_s = 0, 0.0  # shard loads so far (one per shard switch) and their seconds

    def shard_index(self, step: int) -> int:
        return (step // self.interval) % len(self.files.train)

    def at_step(self, step: int) -> TransitionData:
        index = self.shard_index(step)
        if self._loaded is None or self._loaded[0] != index:
            began = time.perf_counter()
            self._loaded = None  # the previous shard is released before the next is read
            raw = load_split(self.files.train[index], self.task, self.env)
            self._loaded = (index, TransitionData.from_ogbench(raw, sparse_reward=self.sparse_reward))
            self.loads, self.load_s = self.loads + 1, self.load_s + time.perf_counter() - began
        return self._loaded[1]


def _as_floats(metrics: dict[str, jax.Array]) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(metrics).items()}


def _per_seed(metrics: dict[str, jax.Array], count: int) -> list[dict[str, float]]:
    """Stacked metrics (leaves [S]; scalars when S = 1) as one dict of floats per seed."""
    host = jax.device_get(metrics)
    return [{k: float(np.atleast_1d(v)[i]) for k, v in host.items()} for i in range(count)]


# What the seeds trained by one program must share (they differ in seed, bc_seed and out).
SHARED = ("method", "task", "profile", "source", "dataset_dir", "init", "overrides", "online_steps",
          *SCHEDULE_FIELDS, "assume")


# Fields of a run's config.json that do not change what it trains: the profile's matrix
# (which runs a sweep lists), what the profile is sized for, how many updates one host call
# makes (speed only), which paper's numbers its tables show, and the method's description.
NOT_IDENTITY = {("profile", "methods"), ("profile", "tasks"), ("profile", "seeds"), ("profile", "studies"),
                ("profile", "machine"), ("profile", "updates_per_call"), ("profile", "protocol"),
                ("method", "paper")}
RunState = Literal["missing", "unfinished", "current", "imported", "other-revision", "stale", "foreign",
                   "finished-without-config",
                   "damaged"]


@dataclass(frozen=True)
class StoredRun:
    """What a run directory holds, against the run the current code would train there:

    * ``missing`` / ``unfinished``: nothing, or an interrupted run of this configuration;
    * ``current``: finished, with this configuration, by this result store, at this revision;
    * ``other-revision``: the same, at another code revision (kept and marked; redone by
      ``--rerun-stale``);
    * ``stale``: finished or interrupted with another configuration (``reasons`` lists the
      fields): never returned as this run's result;
    * ``foreign``: finished with this configuration in another result store (a committed run
      on a fresh clone, or one copied from another machine): a result to compare with, not
      this checkout's answer; `reproduce` trains it again.
    * ``imported``: finished with this configuration in another store and brought here by
      `bench results import` (bench/training/bundle.py), its method's code fingerprint equal to
      today's: kept and reused (an imported run whose code changed is ``stale``).
    * ``damaged``: a record of it cannot be read (a truncated or edited JSON file): never
      returned; moved aside and trained again with ``--rerun-stale``.
    """

    directory: Path
    state: RunState
    reasons: tuple[str, ...] = ()
    revision: str | None = None

    def describe(self) -> str:
        return f"{self.state}" + (f" ({'; '.join(self.reasons)})" if self.reasons else "")


def config_differences(previous: Any, current: Any, path: tuple[str, ...] = ()) -> list[str]:
    """``a.b: old -> new`` for every field that differs between two config records (the
    fields in `NOT_IDENTITY` excepted)."""
    if path[:2] in NOT_IDENTITY:
        return []
    if isinstance(previous, dict) and isinstance(current, dict):
        out = []
        for key in dict.fromkeys([*previous, *current]):
            out += config_differences(previous.get(key, "(absent)"), current.get(key, "(absent)"), (*path, key))
        return out
    if isinstance(previous, list) and isinstance(current, list) and len(previous) == len(current):
        out = []
        for i, (old, new) in enumerate(zip(previous, current, strict=True)):  # phases are named by their name
            name = old.get("name", i) if isinstance(old, dict) and old.get("name") == new.get("name") else i
            out += config_differences(old, new, (*path, f"{name}"))
        return out
    if previous == "(absent)" and current in (None, []):  # a field added since, at its default (None, or empty)
        return []
    return [] if previous == current else [f"{'.'.join(path)}: {previous} -> {current}"]


def data_differences(recorded: dict) -> list[str]:
    """How the data a run recorded differs from the files at the same place now: regenerated
    files whose manifest changed, official files whose sha256 changed (files no longer there,
    as on another machine, are not compared)."""
    from bench.data import datagen
    from bench.files import cached_sha256

    directory = Path(recorded.get("directory", ""))
    if not recorded.get("directory") or not directory.is_dir():
        return []
    if recorded.get("kind") == "regenerated":
        manifest = recorded.get("manifest") or {}
        now = datagen.read_manifest(directory, manifest.get("dataset", recorded.get("dataset", "")))
        if now is not None and now.get("files") != manifest.get("files"):
            return [f"data: the regenerated files in {directory} changed since the run"]
        return []
    changed = [f["name"] for f in recorded.get("files", []) if f.get("sha256") and (directory / f["name"]).is_file()
               and cached_sha256(directory / f["name"], cache_dir() / "checksums") != f["sha256"]]
    return [f"data: {', '.join(changed)} in {directory} changed since the run (sha256)"] if changed else []


def store_id(results_dir: Path | None = None) -> str:
    """This result store's identity (``RESULTS/.store-id``, never committed): every run it
    trains records it, so a committed or copied run is told from one trained here."""
    path = (results_dir or RESULTS_DIR) / ".store-id"
    if not path.exists():
        with file_lock(path.with_name(".store-id.lock")):
            if not path.exists():
                write_atomic(path, uuid.uuid4().hex + "\n")
    return path.read_text().strip()


def set_aside(directory: Path) -> Path:
    """Move a run directory out of the way of a new run, keeping it: under
    ``RESULTS/replaced/UTCSTAMP/`` for a run of the result store, else beside it."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    try:
        target = RESULTS_DIR / "replaced" / stamp / directory.resolve().relative_to((RESULTS_DIR / "runs").resolve())
    except ValueError:
        target = directory.with_name(f"{directory.name}.replaced-{stamp}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(directory), str(target))
    return target


class _Start(NamedTuple):
    """Where a seed's run continues."""

    phase: int  # index into the run's phases
    step: int
    agent_file: Path | None = None  # checkpoint or cached BC pretraining to load
    elapsed_s: float = 0.0  # wall time of the run before this invocation


@dataclass
class _Seed:
    """One seed of a `Run`: its directory, logs, checkpoint and what it has measured."""

    config: RunConfig
    dir: Path
    checkpoint: Checkpoint
    logs: dict[str, CsvLog] = dataclasses.field(default_factory=dict)
    began: float = 0.0  # perf_counter time at which its (possibly resumed) wall clock started
    last_success: dict[str, float] = dataclasses.field(default_factory=dict)
    online_summary: dict[str, Any] | None = None
    pretrain_source: str | None = None
    # Set when a metric of this seed became non-finite: where, which, the last good checkpoint.
    # The seed is then a result (status "diverged", success 0 from there on); its program goes
    # on with the other seeds.
    diverged: dict[str, Any] | None = None
    trackers: Trackers | None = None  # --wandb / --tensorboard: copies of its log rows
    # Held from the look into the BC cache until this seed's BC checkpoint is in it: a second
    # process that needs the same checkpoint waits, then reuses it instead of pretraining it again.
    bc_lock: contextlib.ExitStack | None = None

    def hold_bc_lock(self, cached: Path) -> None:
        lock = cached.parent / f".{cached.name}.lock"
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(file_lock(lock, wait=False))
        except BlockingIOError:
            print(f"seed {self.config.seed}: another process is pretraining the BC checkpoint {cached.name}; "
                  "waiting to reuse it", file=sys.stderr, flush=True)
            stack.enter_context(file_lock(lock))
        self.bc_lock = stack

    def release_bc_lock(self) -> None:
        if self.bc_lock is not None:
            self.bc_lock.close()
            self.bc_lock = None

    def record(self, log: str, row: dict[str, Any]) -> None:
        """Append ``row`` to the seed's ``log`` (metrics or evaluations) and its trackers."""
        self.logs[log].append(row)
        if self.trackers is not None:
            self.trackers.log(log, row)


class Run:
    """The runs of one method on one task with one config, for one or more seeds: the seeds
    are trained side by side by one compiled program (`bench.training.compiled`), each keeping its own
    run directory, logs, checkpoints and summary. `execute()` starts, resumes or reports them.

    Seeds whose runs stand at different positions (one finished, one resumed from step 500,
    one new) are trained as separate groups, so every seed continues exactly where it was.
    In the online phase each seed steps its own environment (`bench.training.online`)."""

    def __init__(self, configs: RunConfig | Sequence[RunConfig], *, progress: bool = True,
                 on_step: Callable[[str, int], None] | None = None, seed_axis: compiled.SeedAxis = "auto",
                 rerun: Iterable[str] = (), trackers: Sequence[str] = ()):
        check_trackers(trackers)  # a missing package: one line before anything is written
        self.trackers = tuple(trackers)
        self.data_wait_s = 0.0  # obtaining the dataset (its regeneration, or another program's)
        self.startup_s: float | None = None  # the program's start-up, once its clock starts (summary.json)
        self.seed_axis = compiled.resolve_seed_axis(seed_axis)  # how one program walks its seeds
        configs = [configs] if isinstance(configs, RunConfig) else list(configs)
        if not configs:
            raise BenchError("no runs given")
        for config in configs:
            for name in ("seed", "bc_seed"):
                value = getattr(config, name)
                if value is not None and not 0 <= value < 2**31:
                    raise BenchError(f"--{name.replace('_', '-')} {value} is not allowed: seeds are integers "
                                     f"from 0 to {2**31 - 1}")
            for name, value in config.schedule_changes().items():
                if value < 1:
                    raise BenchError(f"--{SCHEDULE_FLAGS[name]} {value} is not allowed: it must be an integer >= 1")
        for other in configs[1:]:
            differs = [k for k in SHARED if getattr(other, k) != getattr(configs[0], k)]
            if differs:
                raise BenchError(f"seeds trained together must share {', '.join(differs)}: "
                                 f"{configs[0]} and {other}; train them separately")
        dirs = [c.run_dir() for c in configs]
        if len(set(dirs)) != len(dirs):
            raise BenchError(f"two runs of one group share a run directory: {[str(d) for d in dirs]}")
        self.config = configs[0]  # the shared fields
        self.method = get_method(self.config.method)
        self.task = resolve_task(self.config.task)
        self.profile = self.config.resolved_profile(self.task)
        self.phases = plan_phases(self.method, self.profile, self.task, self.config)
        self.seeds = [_Seed(c, d, Checkpoint(d / "checkpoint")) for c, d in zip(configs, dirs, strict=True)]
        self.progress = progress
        self.on_step = on_step  # called after every host call; tests use it to interrupt a run
        self.rerun = frozenset(rerun)  # states of `StoredRun` to move aside and train again
        # The task's sparse rewards, unless the run assumes the dataset's (`--assume sparse_reward=dense`).
        self.sparse_reward = assumptions.sparse_reward(self.task, self.config.assumptions())

    # ---- records -------------------------------------------------------------------
    def config_record(self, config: RunConfig | None = None) -> dict[str, Any]:
        config = config or self.config
        run = dataclasses.asdict(config)
        run["source"] = config.source or self.profile.source
        run["online_steps"] = config.resolved_online_steps()
        run.pop("out")
        return {
            "run": run,
            "profile": dataclasses.asdict(self.profile),
            # A method from outside the repository adds its package, version and source fingerprint.
            "method": {"name": self.method.name, "paper": self.method.paper}
            | ({"source": self.method.source} if self.method.source else {}),
            "phases": [{"name": p.name, "steps": p.steps, "method": p.method.name, "evaluate": p.evaluate,
                        "eval_every": p.eval_every,
                        "agent_config": {"class": type(p.config).__name__, **dataclasses.asdict(p.config)}}
                       for p in self.phases],
            "task": {"name": self.task.name, "env_id": self.task.env_id, "dataset": self.task.dataset,
                     "chunk_len": self.task.chunk_len, "sparse_reward": self.sparse_reward},
            "assumptions": config.assumptions(),  # what the authors' code leaves open (docs/PROTOCOL.md)
        }

    def stored(self, seed: _Seed) -> StoredRun:
        """What ``seed``'s directory holds, against what this code would train there (`StoredRun`)."""
        summary, recorded, environment = (seed.dir / n for n in ("summary.json", "config.json", "environment.json"))
        if not recorded.exists():
            return StoredRun(seed.dir, "finished-without-config" if summary.exists() else "missing")
        try:
            record = read_json(recorded)
            record["assumptions"] = assumptions.recorded(record, get_profile(self.config.profile))
            differences = config_differences(_jsonable(record), _jsonable(self.config_record(seed.config)))
            if (seed.dir / "data.json").exists():
                differences += data_differences(read_json(seed.dir / "data.json"))
            env = read_json(environment) if environment.exists() else {}
            if summary.exists():
                read_json(summary)
        except DamagedRecord as exc:
            return StoredRun(seed.dir, "damaged", (f"{exc.path.name} {exc.reason}",))
        revision = env.get("code_revision")
        if differences:
            return StoredRun(seed.dir, "stale", tuple(differences), revision)
        if not summary.exists():
            return StoredRun(seed.dir, "unfinished", (), revision)
        origin = bundle.origin_of(seed.dir)
        if origin is not None:  # imported (`bench results import`): reused while its method's code is today's
            recorded = env.get("method_code", {}).get("fingerprint")
            today = code_fingerprint(self.method)
            if recorded is None:
                return StoredRun(seed.dir, "stale", (f"{bundle.describe(origin)}; it records no method code "
                                                     "fingerprint (trained before they were recorded)",), revision)
            if recorded != today:
                return StoredRun(seed.dir, "stale", (f"{bundle.describe(origin)}; the method's code changed since "
                                                     f"(fingerprint {recorded[:12]}, today {today[:12]})",), revision)
            return StoredRun(seed.dir, "imported", (bundle.describe(origin),), revision)
        if env.get("store_id") != store_id():
            where = f"trained at revision {revision or 'unknown'} on {env.get('hardware', {}).get('host', '?')}"
            return StoredRun(seed.dir, "foreign", (f"{where}, in another result store",), revision)
        if revision != provenance.code_revision():
            return StoredRun(seed.dir, "other-revision", (f"trained at revision {revision}",), revision)
        return StoredRun(seed.dir, "current", (), revision)

    def _check_directory(self, seed: _Seed) -> dict | None:
        """The summary of a finished run of this configuration, or None (train); a run of
        another configuration, or of another result store, is moved aside (`set_aside`) when
        ``rerun`` names its state, and refused with one line otherwise: never returned."""
        stored = self.stored(seed)
        if stored.state in ("missing", "unfinished"):
            return None
        if stored.state in ("current", "imported") or (stored.state == "other-revision"
                                                       and stored.state not in self.rerun):
            if stored.state == "other-revision":
                print(f"{seed.dir}: finished at revision {stored.revision}, kept (--rerun-stale redoes it)",
                      file=sys.stderr, flush=True)
            return read_json(seed.dir / "summary.json")
        if stored.state in self.rerun:
            aside = set_aside(seed.dir)
            print(f"{seed.dir}: {stored.describe()}; moved to {aside} and trained again", file=sys.stderr, flush=True)
            return None
        what = {"stale": "a run of another configuration", "foreign": "a run of another result store",
                "finished-without-config": "a finished run without its config.json",
                "damaged": "a damaged run"}[stored.state]
        raise BenchError(f"run directory {seed.dir} holds {what} ({'; '.join(stored.reasons[:3])}"
                         f"{'; ...' if len(stored.reasons) > 3 else ''}); it is never returned as this run: pass "
                         "--rerun-stale to move it aside and train, or --out DIR for a new run")

    # ---- the loop ------------------------------------------------------------------
    def execute(self) -> list[dict]:
        """The summary of every seed, in the order given."""
        summaries = {i: self._check_directory(seed) for i, seed in enumerate(self.seeds)}
        pending = [i for i, s in summaries.items() if s is None]
        if pending:
            began = time.perf_counter()
            files = self._files()  # a missing or refused dataset: one line before any run directory exists
            self.data_wait_s += time.perf_counter() - began  # regenerating it, or waiting for another program to
            with contextlib.ExitStack() as locks:
                for i in pending:
                    locks.enter_context(exclusive(self.seeds[i].dir))
                summaries |= self._execute([self.seeds[i] for i in pending], pending, files)
        return [summaries[i] for i in range(len(self.seeds))]

    def _execute(self, seeds: list[_Seed], indices: list[int], files: DataFiles) -> dict[int, dict]:
        import ogbench

        env = ogbench.make_env_and_datasets(self.task.name, env_only=True)
        train_data = ShardedData(files, self.task, env, self.profile.shard_interval, self.sparse_reward)
        train_data.at_step(0)  # a damaged file stops the run here, before any record is written
        val_data = TransitionData.from_ogbench(
            load_split(files.val, self.task, env), sparse_reward=self.sparse_reward
        )
        environment = {"versions": provenance.versions(), "hardware": provenance.hardware(),
                       "code_revision": provenance.code_revision(), "store_id": store_id(),
                       # the code of this method's update (bench.config.methods.code_fingerprint): an
                       # imported copy of this run is reused only while it is unchanged
                       "method_code": {"fingerprint": code_fingerprint(self.method)},
                       "compile_cache": compile_cache.describe()}  # JAX's persistent cache, or "off"
        for seed in seeds:
            write_json(seed.dir / "config.json", self.config_record(seed.config))
            write_json(seed.dir / "environment.json", environment)
            write_json(seed.dir / "data.json", files.provenance)

        # Group the seeds by where they stand.
        starts = [self._start(seed, files) for seed in seeds]
        groups: dict[tuple, list[int]] = {}
        for i, start in enumerate(starts):
            groups.setdefault((start.phase, start.step), []).append(i)

        from bench.training.evaluation import Evaluator

        evaluator = Evaluator(self.task.name, num_envs=min(self.profile.eval_envs, self.profile.eval_episodes))
        try:
            summaries = {}
            for members in groups.values():
                group = [seeds[i] for i in members]
                try:
                    trained = self._train(group, [starts[i] for i in members], train_data, val_data, evaluator,
                                          files)
                except BaseException:  # an interrupted run ends its tracked runs; resuming continues them
                    for seed in group:
                        if seed.trackers is not None:
                            seed.trackers.finish(None)
                    raise
                for i, summary in zip(members, trained, strict=True):
                    summaries[indices[i]] = summary
            return summaries
        finally:
            evaluator.close()
            for seed in seeds:
                seed.release_bc_lock()

    def _files(self, fetch: bool = True) -> DataFiles | None:
        """This run's dataset files (`resolve_files`; with ``fetch`` false, None where they
        would have to be regenerated or downloaded first)."""
        return resolve_files(self.task, self.config.source or self.profile.source, self.config.dataset_dir,
                             self.profile.regeneration, large=self.profile.large_datasets, fetch=fetch)

    def _start(self, seed: _Seed, files: DataFiles) -> _Start:
        """Where ``seed``'s run continues: its checkpoint, else a cached BC pretraining, else the start."""
        state = seed.checkpoint.resume_point()
        if state is not None:
            seed.pretrain_source = (seed.checkpoint.state() or {}).get("pretrain_source") or seed.pretrain_source
            return _Start([p.name for p in self.phases].index(state["phase"]), state["step"],
                          seed.checkpoint.dir / state["agent_file"], state["elapsed_s"])
        first = self.phases[0]
        if first.name == "pretrain" and not first.evaluate:  # `bc` runs evaluate: never skipped
            cached = self._bc_cache_path(first, files, seed.config)
            seed.hold_bc_lock(cached)
            problem = agent_file_problem(cached) if cached.exists() else "absent"
            if problem is None:
                seed.release_bc_lock()
                seed.pretrain_source = f"cache: {cached}"
                return _Start(0, first.steps, cached)
            if checksum_path(cached).exists():  # a checksum that does not match: refuse, lose nothing
                raise BenchError(f"cached BC checkpoint {problem}; delete it (and {checksum_path(cached).name}) "
                                 "and rerun to pretrain it again")
        return _Start(0, 0)

    def _train(self, seeds: list[_Seed], starts: list[_Start], train_data: ShardedData, val_data: TransitionData,
               evaluator, files: DataFiles) -> list[dict]:
        """Train ``seeds``, which all stand at the same (phase, step), to the end."""
        profile, phases = self.profile, self.phases
        start_phase, start_step = starts[0].phase, starts[0].step
        now = time.perf_counter()
        if self.startup_s is None and bench_files.PROGRAM_STARTED is not None:
            self.startup_s = round(now - bench_files.PROGRAM_STARTED - self.data_wait_s, 1)
        for seed, start in zip(seeds, starts, strict=True):
            seed.began = now - start.elapsed_s
            seed.logs = {"metrics": CsvLog(seed.dir / "metrics.csv"),
                         "evaluations": CsvLog(seed.dir / "evaluations.csv")}
            for log in seed.logs.values():
                log.truncate_after(phases[start_phase].name, start_step)
            for row in seed.logs["evaluations"].rows:  # evaluations kept from before a resume (in log order)
                seed.last_success[row["phase"]] = float(row["success_rate"])
            if self.trackers:
                seed.trackers = self._open_trackers(seed, files)

        total = sum(p.steps for p in phases)
        done_before = sum(p.steps for p in phases[:start_phase]) + start_step
        names = ",".join(str(s.config.seed) for s in seeds)
        bar = tqdm(total=total, initial=done_before, disable=not self.progress, unit="step",
                   desc=f"{self.config.method} {self.task.name} seed{'s' if len(seeds) > 1 else ''}{names}",
                   dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 30.0)
        loop = _Loop(self, seeds, train_data, val_data, evaluator, bar)
        previous = None
        for phase_index in range(start_phase, len(phases)):
            phase = phases[phase_index]
            keys = [jax.random.split(jax.random.fold_in(jax.random.key(s.config.phase_seed(phase.name)), phase_index),
                                     3) for s in seeds]
            init_keys, step_keys, val_keys = (jnp.stack([k[j] for k in keys]) for j in range(3))
            began = time.perf_counter()
            agents = []
            for i in range(len(seeds)):
                example = sample_batch(train_data.at_step(0), init_keys[i], profile.batch_size,
                                       self.task.chunk_len, profile.discount)
                agent = self._create(phase, example, init_keys[i], None if previous is None
                                     else compiled.unstack(previous, i))
                resume = starts[i].agent_file
                agents.append(load_agent(resume, agent) if phase_index == start_phase and resume else agent)
            first = start_step if phase_index == start_phase else 0
            stacked = jax.block_until_ready(compiled.stack(agents))
            loop.seconds["setup"] += time.perf_counter() - began
            if phase.name == "online":
                from bench.training.online import OnlineLoop

                online = OnlineLoop(loop, env_factory=self._make_env)
                stacked = online.run(phase, phase_index, stacked, first, step_keys, val_keys)
                for seed, summary in zip(seeds, online.summaries, strict=True):
                    seed.online_summary = summary
            else:
                stacked = loop.run(phase, phase_index, stacked, first, step_keys, val_keys)
            if phase.name == "pretrain":
                for i, seed in enumerate(seeds):
                    cached = self._bc_cache_path(phase, files, seed.config)
                    if seed.diverged is None and agent_file_problem(cached) is not None:  # absent, or pre-checksum
                        save_agent(cached, compiled.unstack(stacked, i))  # reused by other methods' pretraining
                    seed.pretrain_source = seed.pretrain_source or "trained in this run"
                    seed.release_bc_lock()
            previous = stacked
            if all(seed.diverged is not None for seed in seeds):
                break
        bar.close()
        timed = loop.timed | {"data": {"shard_loads": train_data.loads, "load_s": train_data.load_s}}
        summaries = [self._summarise(seed, [s.config.seed for s in seeds], files, loop.time_split(), timed)
                     for seed in seeds]
        for seed, summary in zip(seeds, summaries, strict=True):
            if seed.trackers is not None:
                seed.trackers.finish(summary)
        return summaries

    def _open_trackers(self, seed: _Seed, files: DataFiles) -> Trackers:
        """``seed``'s trackers, with its config, versions and data provenance as the tracked config."""
        offsets, total = {}, 0
        for phase in self.phases:
            offsets[phase.name], total = total, total + phase.steps
        record = {"config": _jsonable(self.config_record(seed.config)),
                  "environment": read_json(seed.dir / "environment.json"), "data": _jsonable(files.provenance),
                  "run_dir": str(seed.dir)}
        name = f"{self.config.method}/{self.task.name}/{seed.dir.name}"
        group = f"{self.profile.name}/{self.config.method}/{self.task.name}"
        return Trackers(self.trackers, seed.dir, name=name, group=group, record=record, offsets=offsets)

    def _summarise(self, seed: _Seed, together: list[int], files: DataFiles, split: dict[str, float],
                   timed: dict[str, dict[str, float]]) -> dict:
        cfg, phases = seed.config, self.phases
        last_metrics = [r for r in seed.logs["metrics"].rows if r["phase"] == phases[-1].name]
        if seed.diverged is not None:  # success 0 from the diverging phase on
            for phase in phases[[p.name for p in phases].index(seed.diverged["phase"]):]:
                seed.last_success[phase.name] = 0.0
        summary = {
            "method": cfg.method,
            "task": self.task.name,
            "seed": cfg.seed,
            "profile": self.profile.name,
            "status": "finished" if seed.diverged is None else "diverged",
            "diverged": seed.diverged,
            "final_success": seed.last_success[phases[-1].name],
            "success_by_phase": seed.last_success,
            "steps": {p.name: p.steps for p in phases},  # planned
            "steps_reached": _steps_reached(phases, seed.diverged),
            "init": {"bc": None, "scratch": "scratch", "online": "scratch", "fine-tune": cfg.init}[self.method.pipeline],
            "pretrain_source": seed.pretrain_source,
            "eval_episodes": self.profile.eval_episodes,
            "final_metrics": {k: float(v) for k, v in last_metrics[-1].items() if k not in ("phase", "step")}
            if last_metrics else {},
            "traces": _traces(last_metrics),
            "online": seed.online_summary,
            "wall_time_s": round(time.perf_counter() - seed.began, 1),
            # The program's time before its clock started: imports, loading the data, the evaluation
            # environments, checkpoints (its data's regeneration left out); None when not run as
            # `python -m bench`. A sweep expects a program to take wall_time_s + startup_s.
            "startup_s": self.startup_s,
            "seeds_in_program": together,  # trained side by side, sharing this wall time
            "seed_axis": self.seed_axis if len(together) > 1 else None,  # how the program walked them
            # This invocation of the program (after a resume: since the resume). The online
            # phase's updates and environment steps are in the total only.
            "time_split_s": split,
            "timed": {phase: {k: round(v, 4) for k, v in t.items()} for phase, t in timed.items()},
            "peak_rss_mib": round(peak_rss_mib(), 1),  # of the program (every seed it trained), this invocation
            "data": {"kind": files.kind, "dataset": files.dataset},
            "hardware": provenance.hardware(),
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return write_summary(seed.dir, summary)

    def _make_env(self):
        import ogbench

        return ogbench.make_env_and_datasets(self.task.name, env_only=True)

    @staticmethod
    def _create(phase: Phase, example, key, previous):
        """A new agent for ``phase``; fine-tuning methods start from the previous phase's BC actor,
        and the online phase continues the offline agent (with the online phase's config)."""
        if phase.name == "online" and previous is not None:
            return dataclasses.replace(previous, config=phase.config)
        if phase.method.pipeline != "fine-tune":
            return phase.method.agent_cls.create(example, phase.config, key)
        bc_actor = previous.actor if previous is not None else None
        return phase.method.agent_cls.create(example, phase.config, key, bc_actor=bc_actor)

    def _bc_cache_path(self, phase: Phase, files: DataFiles, config: RunConfig) -> Path:
        """Where BC pretraining with exactly this setup (task, data, config, steps, seed) is kept.
        The data enters by content (its provenance without the directory it lies in), so the same
        files under another cache root find the same checkpoint."""
        data = {k: v for k, v in files.provenance.items() if k != "directory"}
        identity = {
            "task": self.task.name, "seed": config.phase_seed(phase.name), "steps": phase.steps,
            "batch_size": self.profile.batch_size, "discount": self.profile.discount,
            "config": dataclasses.asdict(phase.config), "data": data,
        }
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
        root = Path(os.environ.get("TRQAM_BENCH_BC_CACHE", cache_dir() / "bc-checkpoints"))  # regress: its own
        return root / self.task.name / f"seed{identity['seed']}-{digest}.eqx"

    def pretrains(self) -> bool:
        """Whether `execute` would pretrain BC for some seed: one that has no checkpoint past
        pretraining while the cache lacks its BC checkpoint. A look only: nothing is regenerated,
        downloaded or locked (data not there yet means the BC checkpoint cannot be cached)."""
        first = self.phases[0]
        if first.name != "pretrain" or first.evaluate:  # no BC phase, or the `bc` method's own run
            return first.name == "pretrain"
        starting = [s for s in self.seeds if (s.checkpoint.state() or {}).get("phase", first.name) == first.name]
        if not starting:
            return False
        try:
            files = self._files(fetch=False)
        except BenchError:  # the program itself will say what is wrong
            return True
        if files is None:
            return True
        cached = [self._bc_cache_path(first, files, s.config) for s in starting]
        return not all(path.exists() and agent_file_problem(path) is None for path in cached)

    def _evaluate(self, evaluator, agent, seed: int):
        def policy(observations, key):
            return compiled.sample_actions(agent, jnp.asarray(observations), key)

        return evaluator.evaluate(policy, num_episodes=self.profile.eval_episodes, seed=seed,
                                  chunk_len=self.task.chunk_len)

    @staticmethod
    def _check_finite(values: dict[str, float], phase: str, step: int, seed: _Seed) -> None:
        """Mark ``seed`` diverged when a metric of its last update is not finite (and say so)."""
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            state = seed.checkpoint.state()
            seed.diverged = {"phase": phase, "step": step, "metrics": bad,
                             "last_good_checkpoint": None if state is None else
                             {"phase": state["phase"], "step": state["step"]}}
            print(f"seed {seed.config.seed} diverged: {', '.join(bad)} became non-finite at {phase} step {step}; "
                  "it is recorded as diverged (success 0) and the program goes on without it",
                  file=sys.stderr, flush=True)


def peak_rss_mib() -> float:
    """The largest resident set this process has had (MiB; Linux reports KiB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


class _Loop:
    """The step loop of an offline phase, and what every host call of any phase ends with:
    log, validate, evaluate, checkpoint (`after_step`), for every seed of the group."""

    def __init__(self, owner: Run, seeds: list[_Seed], train_data, val_data, evaluator, bar):
        self.owner, self.seeds, self.train_data, self.val_data = owner, seeds, train_data, val_data
        self.evaluator, self.bar = evaluator, bar
        self._window = (time.perf_counter(), 0)  # start of the steps/s window, steps in it
        # Where this invocation's wall time went (seconds): the first host call of each phase
        # (compilation and its updates), the other compiled updates, evaluation, logging with
        # validation, checkpoints; `time_split` adds the total.
        self.seconds = {"setup": 0.0, "first_call": 0.0, "updates": 0.0, "evaluation": 0.0, "logging": 0.0,
                        "checkpoints": 0.0}  # setup: creating or loading the agents of each phase
        # Per phase: the first host call (compilation with its updates) apart from the others, and
        # the evaluation's calls and episodes: what the cost table of `nox -s paper-smoke` reads.
        self.timed: dict[str, dict[str, float]] = {}
        self._evaluated: set[str] = set()  # phases evaluated so far in this invocation
        self.began = time.perf_counter()

    def time_updates(self, phase: str, seconds: float, updates: int, first: bool) -> None:
        """Record ``updates`` compiled updates of ``phase`` that took ``seconds`` (``first``: the
        phase's first host call of this invocation, which compiles)."""
        timed = self.timed.setdefault(phase, {"first_call_s": 0.0, "first_call_updates": 0, "update_s": 0.0,
                                              "updates": 0})
        timed["first_call_s" if first else "update_s"] += seconds
        timed["first_call_updates" if first else "updates"] += updates

    def time_split(self) -> dict[str, float]:
        return {**{k: round(v, 2) for k, v in self.seconds.items()},
                "total": round(time.perf_counter() - self.began, 2)}

    def boundaries(self, phase: Phase) -> list[int]:
        """Steps at which the host must act: log, evaluate, checkpoint, change shard."""
        profile = self.owner.profile
        every = [profile.log_every, profile.checkpoint_every, profile.shard_interval]
        return [b for b in every + ([phase.eval_every] if phase.evaluate else []) if b > 0]

    def count(self, phase: Phase, step: int) -> int:
        """Updates in the host call starting at ``step``: up to the profile's updates_per_call,
        ending at the next boundary."""
        following = min([phase.steps] + [(step // b + 1) * b for b in self.boundaries(phase)])
        return min(self.owner.profile.updates_per_call, following - step)

    def run(self, phase: Phase, phase_index: int, agents, first: int, step_keys, val_keys):
        profile, task = self.owner.profile, self.owner.task
        self.start_window()
        step = first
        while step < phase.steps:
            count = self.count(phase, step)
            began = time.perf_counter()
            agents, metrics = jax.block_until_ready(compiled.train_steps(
                agents, self.train_data.at_step(step), step_keys, jnp.asarray(step, jnp.int32), count,
                profile.batch_size, task.chunk_len, profile.discount, self.owner.seed_axis))
            seconds = time.perf_counter() - began
            self.seconds["first_call" if step == first else "updates"] += seconds
            self.time_updates(phase.name, seconds, count, step == first)
            step += count
            self.after_step(phase, phase_index, step, functools.cache(lambda i, a=agents: compiled.unstack(a, i)),
                            metrics, val_keys, count=count)
            if all(seed.diverged is not None for seed in self.seeds):
                break
        return agents

    def start_window(self) -> None:
        self._window = (time.perf_counter(), 0)

    def after_step(self, phase: Phase, phase_index: int, done: int, agent_of: Callable[[int], Any], metrics,
                   val_keys, extra: Sequence[dict[str, float]] | None = None, count: int = 1) -> None:
        """Bookkeeping after step ``done`` of ``phase`` (``count`` steps since the last call).
        ``agent_of(i)`` is seed i's agent; ``metrics`` the last update's, leaves [S] (None when
        no update ran: the online warm-up); ``val_keys`` [S]; ``extra[i]`` adds columns to seed
        i's metrics rows."""
        profile, task = self.owner.profile, self.owner.task
        self.bar.update(count)
        self._window = (self._window[0], self._window[1] + count)
        values = None
        if metrics is not None:  # every host call: a diverged seed never logs, evaluates or checkpoints
            values = _per_seed(metrics, len(self.seeds))
            for seed, seed_values in zip(self.seeds, values, strict=True):
                if seed.diverged is None:
                    self.owner._check_finite(seed_values, phase.name, done, seed)
        live = [(i, seed) for i, seed in enumerate(self.seeds) if seed.diverged is None]
        if values is not None and (done % profile.log_every == 0 or done == phase.steps):
            began = time.perf_counter()
            now = time.perf_counter()
            rate = round(self._window[1] / (now - self._window[0]), 2)
            for i, seed in live:
                val = _as_floats(compiled.validation_metrics(agent_of(i), self.val_data, jax.random.fold_in(val_keys[i], done),
                                                  profile.batch_size, task.chunk_len, profile.discount))
                seed.record("metrics", {"phase": phase.name, "step": done, **values[i],
                                        **{f"val/{k}": v for k, v in val.items()}, **(extra[i] if extra else {}),
                                        "steps_per_s": rate, "wall_s": round(now - seed.began, 2)})
            self._window = (time.perf_counter(), 0)
            self.seconds["logging"] += self._window[0] - began
        if phase.evaluate and (done % phase.eval_every == 0 or done == phase.steps):
            began = time.perf_counter()
            for i, seed in live:
                result = self.owner._evaluate(self.evaluator, agent_of(i), derived_seed(seed.config.seed,
                                                                                         phase_index, done))
                seed.last_success[phase.name] = result.success_rate
                seed.record("evaluations", {"phase": phase.name, "step": done, **result.to_dict(),
                                            "wall_s": round(time.perf_counter() - seed.began, 2)})
            self.bar.set_postfix(success="/".join(f"{s.last_success[phase.name]:.2f}" if s.diverged is None
                                                  else "diverged" for s in self.seeds))
            self.seconds["evaluation"] += time.perf_counter() - began
            # A phase's first evaluation of this invocation compiles its policy: timed apart.
            timed = self.timed.setdefault("evaluation", {"first_call_s": 0.0, "first_call_episodes": 0, "s": 0.0,
                                                         "calls": 0, "episodes": 0})
            first = phase.name not in self._evaluated
            self._evaluated.add(phase.name)
            timed["first_call_s" if first else "s"] += time.perf_counter() - began
            timed["first_call_episodes" if first else "episodes"] += profile.eval_episodes * len(live)
            timed["calls"] += 0 if first else 1
        if done % profile.checkpoint_every == 0 or done == phase.steps:
            began = time.perf_counter()
            for i, seed in live:
                seed.checkpoint.save(agent_of(i), phase.name, done, time.perf_counter() - seed.began,
                                     seed.pretrain_source)
            self.seconds["checkpoints"] += time.perf_counter() - began
        if self.owner.on_step is not None:
            self.owner.on_step(phase.name, done)


_SAID_DAMAGED: set[Path] = set()  # damaged state.json files already reported by this process


class Checkpoint:
    """The agent and the loop position. Each save writes a new agent file and its sha256,
    checks it, then writes state.json pointing at it (with the previous checkpoint as a
    fallback), then removes older agent files: a kill at any moment leaves a consistent
    (agent, position) pair, and a checkpoint damaged on disk is never loaded while the one
    before it is kept until the next one is verified."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.state_path = directory / "state.json"

    def state(self) -> dict | None:
        """The loop position; when ``state.json`` is damaged (truncated by a full disk, say), the
        newest agent files that pass their checksums stand in for it (phase and step are in their
        names; the wall time before is then unknown and counted as 0)."""
        if not self.state_path.exists():
            return None
        try:
            return read_json(self.state_path)
        except DamagedRecord as exc:
            order = {name: i for i, name in enumerate(PHASE_ORDER)}
            found = []
            for path in self.dir.glob("agent-*-*.eqx"):
                phase, _, step = path.stem.removeprefix("agent-").rpartition("-")
                if phase in order and step.isdigit() and agent_file_problem(path) is None:
                    found.append((order[phase], int(step), phase, path.name))
            found.sort(reverse=True)
            if not found:
                return None
            if self.state_path not in _SAID_DAMAGED:  # once per process: read again until a save replaces it
                print(f"checkpoint {exc}; resuming from its newest intact agent file {found[0][3]}", file=sys.stderr,
                      flush=True)
                _SAID_DAMAGED.add(self.state_path)
            entries = [{"phase": phase, "step": step, "elapsed_s": 0.0, "agent_file": name}
                       for _, step, phase, name in found[:2]]
            return {**entries[0], "previous": entries[1] if len(entries) > 1 else None}

    def save(self, agent, phase: str, step: int, elapsed_s: float, pretrain_source: str | None = None) -> None:
        name = f"agent-{phase}-{step:09d}.eqx"
        save_agent(self.dir / name, agent)
        problem = agent_file_problem(self.dir / name)
        if problem is not None:
            raise BenchError(f"the checkpoint just written cannot be read back: {problem}; check the disk")
        current = self.state()
        previous = None
        if current is not None and current["agent_file"] != name:
            previous = {k: current[k] for k in ("phase", "step", "elapsed_s", "agent_file")}
        write_json(self.state_path, {"phase": phase, "step": step, "elapsed_s": round(elapsed_s, 3),
                                     "agent_file": name, "previous": previous, "pretrain_source": pretrain_source})
        keep = {name, previous["agent_file"] if previous else name}
        for old in self.dir.glob("agent-*.eqx"):
            if old.name not in keep:
                old.unlink()
                checksum_path(old).unlink(missing_ok=True)

    def resume_point(self) -> dict | None:
        """The newest checkpoint whose agent file passes its checksum: the last one, else the
        one before it (saying so); None when the run has none."""
        state = self.state()
        if state is None:
            return None
        problems = []
        for candidate in (state, state.get("previous")):
            if candidate is None:
                continue
            problem = agent_file_problem(self.dir / candidate["agent_file"])
            if problem is None:
                if problems:
                    print(f"checkpoint {problems[0]}; resuming from the previous one ({candidate['phase']} step "
                          f"{candidate['step']})", file=sys.stderr, flush=True)
                return candidate
            problems.append(problem)
        raise BenchError(f"no checkpoint in {self.dir} can be trusted ({'; '.join(problems)}); delete {self.dir} "
                         "to start this run over")


TRACED = ("trqam/lambda", "actor/path_kl", "trqam/kl_ema", "actor/adjoint_loss", "critic/q_mean")


def _steps_reached(phases: Sequence[Phase], diverged: dict | None) -> dict[str, int]:
    """The steps each phase ran: all of them, or up to the step where the run diverged (0 after it)."""
    if diverged is None:
        return {p.name: p.steps for p in phases}
    names = [p.name for p in phases]
    at = names.index(diverged["phase"])
    return {p.name: p.steps if i < at else (int(diverged["step"]) if i == at else 0) for i, p in enumerate(phases)}


def _traces(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """The final phase's lambda, realised KL and friends over training, for the summary."""
    present = [k for k in TRACED if rows and rows[0].get(k) not in (None, "")]
    if not present:
        return {}
    return {"step": [int(r["step"]) for r in rows], **{k: [float(r[k]) for r in rows] for k in present}}


def _jsonable(record: Any) -> Any:
    """Normalise a record the way a JSON round trip would (tuples become lists...)."""
    return json.loads(json.dumps(record, default=str))


def train(config: RunConfig, *, progress: bool = True, on_step: Callable[[str, int], None] | None = None,
          rerun: Iterable[str] = (), trackers: Sequence[str] = ()) -> dict:
    """Run (or resume, or report) one training run; returns its summary. ``rerun``: states of
    `StoredRun` to move aside and train again (`RERUN_STALE`: all of them); ``trackers``:
    `bench.training.trackers` to mirror its logs to."""
    return Run(config, progress=progress, on_step=on_step, rerun=rerun, trackers=trackers).execute()[0]


RERUN_STALE = ("stale", "foreign", "other-revision", "finished-without-config", "damaged")  # train --rerun-stale


def train_seeds(configs: Sequence[RunConfig], *, progress: bool = True,
                on_step: Callable[[str, int], None] | None = None, seed_axis: compiled.SeedAxis = "auto",
                rerun: Iterable[str] = (), trackers: Sequence[str] = ()) -> list[dict]:
    """Run (or resume, or report) the runs of several seeds of one method, task and config,
    trained side by side in one compiled program (walking the seeds as ``seed_axis`` says:
    `bench.training.compiled`); returns their summaries."""
    return Run(configs, progress=progress, on_step=on_step, seed_axis=seed_axis, rerun=rerun,
               trackers=trackers).execute()
