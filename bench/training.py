"""The training loop shared by every method: phases, evaluation, checkpoints, resume.

A run is a list of phases (``pretrain`` = BC pretraining; ``offline`` fine-tuning;
``online`` = offline-to-online fine-tuning, `bench.online`). Every random draw is a pure
function of (seed, phase, step): the batch at step k is sampled from ``fold_in(phase_key, k)``
and evaluation seeds come from (seed, phase, step). A killed offline run therefore resumes
from its last checkpoint and ends with exactly the parameters and metrics of an
uninterrupted one; a killed online run keeps every transition it collected (see
`bench.online` for what it can and cannot replay).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from tqdm.auto import tqdm

from bench import provenance
from bench.batches import TransitionData, sample_batch
from bench.data import DataFiles, Source, cache_dir, load_split, resolve_files
from bench.errors import BenchError
from bench.files import derived_seed
from bench.methods import Method, apply_overrides, get_method
from bench.profiles import Profile, get_profile
from bench.runstore import CsvLog, exclusive, read_json, write_json
from bench.tasks import Task, resolve_task
from trqam.agent import load_agent, save_agent

# The result store; TRQAM_BENCH_RESULTS moves it (tests, or a shared file system on a cluster).
RESULTS_DIR = Path(os.environ.get("TRQAM_BENCH_RESULTS", Path(__file__).resolve().parent.parent / "results"))


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
    init: Literal["bc", "scratch"] = "bc"  # fine-tuning methods: from the BC checkpoint, or from scratch
    overrides: tuple[str, ...] = ()  # "key=value" changes to the method's config
    bc_seed: int | None = None  # seed of BC pretraining (default: seed); one BC checkpoint can serve many seeds
    online_steps: int | None = None  # length of the online phase; None: the profile's (0 = offline only)

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
        # So do config overrides (the KL-budget study: seed0-kl_budget=0.25).
        suffix += "".join(f"-{o.replace('/', '_')}" for o in sorted(self.overrides))
        return RESULTS_DIR / "runs" / self.profile / self.method / task / f"seed{self.seed}{suffix}"


@dataclass(frozen=True)
class Phase:
    name: str  # one of runstore.PHASE_ORDER
    steps: int
    method: Method
    config: Any  # the agent config of this phase
    evaluate: bool  # evaluate every eval_every steps and at the end
    eval_every: int = 0


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
    if method.pipeline == "bc":
        if online_steps:
            raise BenchError("method 'bc' has no online phase (it is BC pretraining, evaluated as is); "
                             "run it with --online-steps 0")
        return [Phase("pretrain", profile.pretrain_steps, method, apply_overrides(bc_config, run.overrides), True,
                      profile.pretrain_eval_every or profile.eval_every)]
    config = apply_overrides(method.make_config(profile, task), run.overrides)
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

    def __init__(self, files: DataFiles, task: Task, env, interval: int):
        self.files, self.task, self.env, self.interval = files, task, env, interval
        self._loaded: tuple[int, TransitionData] | None = None

    def shard_index(self, step: int) -> int:
        return (step // self.interval) % len(self.files.train)

    def at_step(self, step: int) -> TransitionData:
        index = self.shard_index(step)
        if self._loaded is None or self._loaded[0] != index:
            raw = load_split(self.files.train[index], self.task, self.env)
            self._loaded = (index, TransitionData.from_ogbench(raw, sparse_reward=self.task.sparse_reward))
        return self._loaded[1]


@eqx.filter_jit
def _train_step(agent, data, key, batch_size: int, chunk_len: int, discount: float):
    batch_key, update_key = jax.random.split(key)
    batch = sample_batch(data, batch_key, batch_size, chunk_len, discount)
    return agent.update(batch, update_key)


@eqx.filter_jit
def _validation_step(agent, data, key, batch_size: int, chunk_len: int, discount: float):
    batch_key, loss_key = jax.random.split(key)
    batch = sample_batch(data, batch_key, batch_size, chunk_len, discount)
    return agent.validation_metrics(batch, loss_key)


@eqx.filter_jit
def _sample_actions(agent, observations, key):
    return agent.sample_actions(observations, key)


def _as_floats(metrics: dict[str, jax.Array]) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(metrics).items()}


IDENTITY = ("method", "task", "profile", "seed", "source", "dataset_dir", "init", "overrides", "bc_seed",
            "online_steps")


class Run:
    """One training run in its directory. `execute()` starts, resumes or reports it."""

    def __init__(self, config: RunConfig, *, progress: bool = True, on_step: Callable[[str, int], None] | None = None):
        self.config = config
        self.method = get_method(config.method)
        self.task = resolve_task(config.task)
        self.profile = get_profile(config.profile).for_task(self.task)
        self.phases = plan_phases(self.method, self.profile, self.task, config)
        self.dir = config.run_dir()
        self.progress = progress
        self.on_step = on_step  # called after every step; tests use it to interrupt a run

    # ---- records -------------------------------------------------------------------
    def config_record(self) -> dict[str, Any]:
        run = dataclasses.asdict(self.config)
        run["source"] = self.config.source or self.profile.source
        run["online_steps"] = self.config.resolved_online_steps()
        run.pop("out")
        return {
            "run": run,
            "profile": dataclasses.asdict(self.profile),
            "method": {"name": self.method.name, "paper": self.method.paper},
            "phases": [{"name": p.name, "steps": p.steps, "method": p.method.name, "evaluate": p.evaluate,
                        "eval_every": p.eval_every,
                        "agent_config": {"class": type(p.config).__name__, **dataclasses.asdict(p.config)}}
                       for p in self.phases],
            "task": {"name": self.task.name, "env_id": self.task.env_id, "dataset": self.task.dataset,
                     "chunk_len": self.task.chunk_len, "sparse_reward": self.task.sparse_reward},
        }

    def _check_directory(self) -> dict | None:
        """Return the summary of a finished run, or None; refuse a different config."""
        summary, recorded = self.dir / "summary.json", self.dir / "config.json"
        if summary.exists():
            previous = read_json(recorded)["run"] if recorded.exists() else {}
            current = _jsonable(self.config_record())["run"]
            differs = [k for k in IDENTITY if k in previous and previous[k] != current[k]]
            if differs:
                raise BenchError(
                    f"run directory {self.dir} holds a finished run with another {', '.join(differs)}; "
                    "finished runs are never overwritten: pass another --out"
                )
            return read_json(summary)
        if recorded.exists():
            previous = read_json(recorded)
            if _jsonable(previous) != _jsonable(self.config_record()):
                raise BenchError(
                    f"run directory {self.dir} holds an unfinished run with a different configuration; "
                    "pass another --out, or delete that directory to start over"
                )
        return None

    # ---- the loop ------------------------------------------------------------------
    def execute(self) -> dict:
        finished = self._check_directory()
        if finished is not None:
            return finished
        with exclusive(self.dir):
            return self._execute()

    def _execute(self) -> dict:
        import ogbench

        source = self.config.source or self.profile.source
        files = resolve_files(self.task, source, self.config.dataset_dir, self.profile.regeneration)
        env = ogbench.make_env_and_datasets(self.task.name, env_only=True)
        train_data = ShardedData(files, self.task, env, self.profile.shard_interval)
        val_data = TransitionData.from_ogbench(
            load_split(files.val, self.task, env), sparse_reward=self.task.sparse_reward
        )
        write_json(self.dir / "config.json", self.config_record())
        write_json(self.dir / "environment.json", {
            "versions": provenance.versions(), "hardware": provenance.hardware(),
            "code_revision": provenance.code_revision(),
        })
        write_json(self.dir / "data.json", files.provenance)

        from bench.evaluation import Evaluator

        evaluator = Evaluator(self.task.name, num_envs=min(self.profile.eval_envs, self.profile.eval_episodes))
        try:
            return self._train(train_data, val_data, evaluator, files)
        finally:
            evaluator.close()

    def _train(self, train_data: ShardedData, val_data: TransitionData, evaluator, files: DataFiles) -> dict:
        cfg, profile, phases = self.config, self.profile, self.phases
        logs = {"metrics": CsvLog(self.dir / "metrics.csv"), "evaluations": CsvLog(self.dir / "evaluations.csv")}
        checkpoint = Checkpoint(self.dir / "checkpoint")
        state = checkpoint.state()
        start_phase, start_step, elapsed = 0, 0, 0.0
        if state is not None:
            start_phase = [p.name for p in phases].index(state["phase"])
            start_step, elapsed = state["step"], state["elapsed_s"]
        for log in logs.values():
            log.truncate_after(phases[start_phase].name, start_step)

        total = sum(p.steps for p in phases)
        done_before = sum(p.steps for p in phases[:start_phase]) + start_step
        bar = tqdm(total=total, initial=done_before, disable=not self.progress, unit="step",
                   desc=f"{cfg.method} {self.task.name} seed{cfg.seed}", dynamic_ncols=True,
                   mininterval=0.5 if sys.stderr.isatty() else 30.0)
        loop = _Loop(self, train_data, val_data, evaluator, checkpoint, logs, bar, time.perf_counter() - elapsed)
        for row in logs["evaluations"].rows:  # evaluations kept from before a resume (in log order)
            loop.last_success[row["phase"]] = float(row["success_rate"])
        previous, pretrain_source = None, None
        for phase_index in range(start_phase, len(phases)):
            phase = phases[phase_index]
            phase_key = jax.random.fold_in(jax.random.key(cfg.phase_seed(phase.name)), phase_index)
            init_key, step_keys, val_keys = jax.random.split(phase_key, 3)
            example = sample_batch(train_data.at_step(0), init_key, profile.batch_size, self.task.chunk_len,
                                   profile.discount)
            agent = self._create(phase, example, init_key, previous)
            cached = self._bc_cache_path(phase, files) if phase.name == "pretrain" else None
            first = 0
            if state is not None and phase_index == start_phase:
                agent, first = load_agent(checkpoint.agent_path, agent), start_step
            elif cached is not None and cached.exists() and not phase.evaluate:  # `bc` runs evaluate: never skipped
                agent, first, pretrain_source = load_agent(cached, agent), phase.steps, f"cache: {cached}"
                bar.update(phase.steps)
            if phase.name == "online":
                from bench.online import OnlineLoop

                online = OnlineLoop(loop, env_factory=self._make_env)
                agent = online.run(phase, phase_index, agent, first, step_keys, val_keys)
                loop.online_summary = online.summary
            else:
                agent = loop.run(phase, phase_index, agent, first, step_keys, val_keys)
            if cached is not None and not cached.exists():
                save_agent(cached, agent)  # reused by other methods' pretraining with the same setup
                pretrain_source = pretrain_source or "trained in this run"
            previous, state = agent, None
        bar.close()
        last_metrics = [r for r in logs["metrics"].rows if r["phase"] == phases[-1].name]
        summary = {
            "method": cfg.method,
            "task": self.task.name,
            "seed": cfg.seed,
            "profile": profile.name,
            "final_success": loop.last_success[phases[-1].name],
            "success_by_phase": loop.last_success,
            "steps": {p.name: p.steps for p in phases},
            "init": {"bc": None, "scratch": "scratch", "online": "scratch", "fine-tune": cfg.init}[self.method.pipeline],
            "pretrain_source": pretrain_source,
            "eval_episodes": profile.eval_episodes,
            "final_metrics": {k: float(v) for k, v in last_metrics[-1].items() if k not in ("phase", "step")}
            if last_metrics else {},
            "traces": _traces(last_metrics),
            "online": loop.online_summary,
            "wall_time_s": round(time.perf_counter() - loop.began, 1),
            "data": {"kind": files.kind, "dataset": files.dataset},
            "hardware": provenance.hardware(),
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_json(self.dir / "summary.json", summary)
        return summary

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

    def _bc_cache_path(self, phase: Phase, files: DataFiles) -> Path:
        """Where BC pretraining with exactly this setup (task, data, config, steps, seed) is kept."""
        identity = {
            "task": self.task.name, "seed": self.config.phase_seed(phase.name), "steps": phase.steps,
            "batch_size": self.profile.batch_size, "discount": self.profile.discount,
            "config": dataclasses.asdict(phase.config), "data": files.provenance,
        }
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
        root = Path(os.environ.get("TRQAM_BENCH_BC_CACHE", cache_dir() / "bc-checkpoints"))  # regress: its own
        return root / self.task.name / f"seed{identity['seed']}-{digest}.eqx"

    def _evaluate(self, evaluator, agent, seed: int):
        def policy(observations, key):
            return _sample_actions(agent, jnp.asarray(observations), key)

        return evaluator.evaluate(policy, num_episodes=self.profile.eval_episodes, seed=seed,
                                  chunk_len=self.task.chunk_len)

    @staticmethod
    def _check_finite(values: dict[str, float], phase: str, step: int, checkpoint: Checkpoint) -> None:
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            state = checkpoint.state()
            last = f"{checkpoint.dir} ({state['phase']} step {state['step']})" if state else "none yet"
            raise BenchError(
                f"training diverged: {', '.join(bad)} became non-finite at {phase} step {step}; "
                f"last good checkpoint: {last}; lower the learning rate or check the data"
            )


class _Loop:
    """The step loop of an offline phase, and what every step of any phase ends with:
    log, validate, evaluate, checkpoint (`after_step`)."""

    def __init__(self, owner: Run, train_data, val_data, evaluator, checkpoint, logs, bar, began: float):
        self.owner, self.train_data, self.val_data, self.evaluator = owner, train_data, val_data, evaluator
        self.checkpoint, self.logs, self.bar, self.began = checkpoint, logs, bar, began
        self.last_success: dict[str, float] = {}
        self.online_summary: dict[str, Any] | None = None
        self._window = (time.perf_counter(), 0)  # start of the steps/s window, steps in it

    def run(self, phase: Phase, phase_index: int, agent, first: int, step_keys, val_keys):
        profile, task = self.owner.profile, self.owner.task
        self.start_window()
        for step in range(first, phase.steps):
            agent, metrics = _train_step(agent, self.train_data.at_step(step), jax.random.fold_in(step_keys, step),
                                         profile.batch_size, task.chunk_len, profile.discount)
            self.after_step(phase, phase_index, agent, step + 1, metrics, val_keys)
        return agent

    def start_window(self) -> None:
        self._window = (time.perf_counter(), 0)

    def after_step(self, phase: Phase, phase_index: int, agent, done: int, metrics, val_keys,
                   extra: dict[str, float] | None = None) -> None:
        """Bookkeeping after step ``done`` of ``phase``; ``metrics`` is None when no update ran
        (the online warm-up); ``extra`` adds columns to the metrics row."""
        profile, task, seed = self.owner.profile, self.owner.task, self.owner.config.seed
        self.bar.update(1)
        self._window = (self._window[0], self._window[1] + 1)
        if metrics is not None and (done % profile.log_every == 0 or done == phase.steps):
            values = _as_floats(metrics)
            self.owner._check_finite(values, phase.name, done, self.checkpoint)
            val = _as_floats(_validation_step(agent, self.val_data, jax.random.fold_in(val_keys, done),
                                              profile.batch_size, task.chunk_len, profile.discount))
            now = time.perf_counter()
            self.logs["metrics"].append({"phase": phase.name, "step": done, **values,
                                         **{f"val/{k}": v for k, v in val.items()}, **(extra or {}),
                                         "steps_per_s": round(self._window[1] / (now - self._window[0]), 2),
                                         "wall_s": round(now - self.began, 2)})
            self._window = (now, 0)
        if phase.evaluate and (done % phase.eval_every == 0 or done == phase.steps):
            result = self.owner._evaluate(self.evaluator, agent, derived_seed(seed, phase_index, done))
            self.last_success[phase.name] = result.success_rate
            self.logs["evaluations"].append({"phase": phase.name, "step": done, **result.to_dict(),
                                             "wall_s": round(time.perf_counter() - self.began, 2)})
            self.bar.set_postfix(success=f"{result.success_rate:.2f}")
        if done % profile.checkpoint_every == 0 or done == phase.steps:
            self.checkpoint.save(agent, phase.name, done, time.perf_counter() - self.began)
        if self.owner.on_step is not None:
            self.owner.on_step(phase.name, done)


class Checkpoint:
    """The agent and the loop position. Each save writes a new agent file, then state.json
    pointing at it, then removes older agent files: a kill at any moment leaves a
    consistent (agent, position) pair."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.state_path = directory / "state.json"

    def state(self) -> dict | None:
        return read_json(self.state_path) if self.state_path.exists() else None

    @property
    def agent_path(self) -> Path:
        state = self.state()
        assert state is not None, "no checkpoint saved yet"
        return self.dir / state["agent_file"]

    def save(self, agent, phase: str, step: int, elapsed_s: float) -> None:
        name = f"agent-{phase}-{step:09d}.eqx"
        save_agent(self.dir / name, agent)
        write_json(self.state_path, {"phase": phase, "step": step, "elapsed_s": round(elapsed_s, 3),
                                     "agent_file": name})
        for old in self.dir.glob("agent-*.eqx"):
            if old.name != name:
                old.unlink()


TRACED = ("trqam/lambda", "actor/path_kl", "trqam/kl_ema", "actor/adjoint_loss", "critic/q_mean")


def _traces(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """The final phase's lambda, realised KL and friends over training, for the summary."""
    present = [k for k in TRACED if rows and rows[0].get(k) not in (None, "")]
    if not present:
        return {}
    return {"step": [int(r["step"]) for r in rows], **{k: [float(r[k]) for r in rows] for k in present}}


def _jsonable(record: Any) -> Any:
    """Normalise a record the way a JSON round trip would (tuples become lists...)."""
    return json.loads(json.dumps(record, default=str))


def train(config: RunConfig, *, progress: bool = True, on_step: Callable[[str, int], None] | None = None) -> dict:
    """Run (or resume, or report) one training run; returns its summary."""
    return Run(config, progress=progress, on_step=on_step).execute()
