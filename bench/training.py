"""The training loop shared by every method: phases, evaluation, checkpoints, resume.

A run is a list of phases (``pretrain`` = BC pretraining; ``offline`` fine-tuning; the
online phase lands later). Every random draw is a pure function of (seed, phase, step):
the batch at step k is sampled from ``fold_in(phase_key, k)`` and evaluation seeds come
from (seed, phase, step). A killed run therefore resumes from its last checkpoint and
ends with exactly the parameters and metrics of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from bench import provenance
from bench.batches import TransitionData, sample_batch
from bench.data import DataFiles, Source, load_split, resolve_files
from bench.errors import BenchError
from bench.methods import Method, get_method
from bench.profiles import Profile, get_profile
from bench.runstore import CsvLog, read_json, write_json
from bench.tasks import Task, resolve_task
from trqam.agent import load_agent, save_agent

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


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

    def run_dir(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        return RESULTS_DIR / "runs" / self.profile / self.method / self.task / f"seed{self.seed}"


@dataclass(frozen=True)
class Phase:
    name: str  # one of runstore.PHASE_ORDER
    steps: int
    method: Method


def plan_phases(method: Method, profile: Profile) -> list[Phase]:
    """The phases of a run. `bc` is BC pretraining evaluated as is."""
    if method.name == "bc":
        return [Phase("pretrain", profile.pretrain_steps, method)]
    raise BenchError(f"method '{method.name}' has no training plan yet")


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


def _eval_seed(seed: int, phase_index: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, phase_index, step]).generate_state(1)[0])


def _as_floats(metrics: dict[str, jax.Array]) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(metrics).items()}


class Run:
    """One training run in its directory. `execute()` starts, resumes or reports it."""

    def __init__(self, config: RunConfig, *, progress: bool = True, on_step: Callable[[str, int], None] | None = None):
        self.config = config
        self.method = get_method(config.method)
        self.task = resolve_task(config.task)
        self.profile = get_profile(config.profile).for_task(self.task)
        self.agent_config = self.method.make_config(self.profile, self.task)
        self.dir = config.run_dir()
        self.progress = progress
        self.on_step = on_step  # called after every step; tests use it to interrupt a run

    # ---- records -------------------------------------------------------------------
    def config_record(self) -> dict[str, Any]:
        run = dataclasses.asdict(self.config)
        run["source"] = self.config.source or self.profile.source
        run.pop("out")
        return {
            "run": run,
            "profile": dataclasses.asdict(self.profile),
            "method": {"name": self.method.name, "paper": self.method.paper},
            "agent_config": {"class": type(self.agent_config).__name__, **dataclasses.asdict(self.agent_config)},
            "task": {"name": self.task.name, "env_id": self.task.env_id, "dataset": self.task.dataset,
                     "chunk_len": self.task.chunk_len, "sparse_reward": self.task.sparse_reward},
        }

    def _check_directory(self) -> dict | None:
        """Return the summary of a finished run, or None; refuse a different config."""
        summary = self.dir / "summary.json"
        if summary.exists():
            return read_json(summary)
        recorded = self.dir / "config.json"
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
        cfg, profile = self.config, self.profile
        phases = plan_phases(self.method, profile)
        metrics_log = CsvLog(self.dir / "metrics.csv")
        evals_log = CsvLog(self.dir / "evaluations.csv")
        checkpoint = Checkpoint(self.dir / "checkpoint")
        state = checkpoint.state()
        start_phase, start_step, elapsed = 0, 0, 0.0
        if state is not None:
            start_phase = [p.name for p in phases].index(state["phase"])
            start_step, elapsed = state["step"], state["elapsed_s"]
        metrics_log.truncate_after(phases[start_phase].name, start_step)
        evals_log.truncate_after(phases[start_phase].name, start_step)

        chunk_len, discount = self.task.chunk_len, profile.discount
        total = sum(p.steps for p in phases)
        done_before = sum(p.steps for p in phases[:start_phase]) + start_step
        bar = tqdm(total=total, initial=done_before, disable=not self.progress, unit="step",
                   desc=f"{cfg.method} {self.task.name} seed{cfg.seed}", dynamic_ncols=True,
                   mininterval=0.5 if sys.stderr.isatty() else 30.0)
        run_key = jax.random.key(cfg.seed)
        began = time.perf_counter() - elapsed
        last_success: dict[str, float] = {}
        for phase_index in range(start_phase, len(phases)):
            phase = phases[phase_index]
            phase_key = jax.random.fold_in(run_key, phase_index)
            init_key, step_keys, val_keys = jax.random.split(phase_key, 3)
            example = sample_batch(train_data.at_step(0), init_key, profile.batch_size, chunk_len, discount)
            agent = phase.method.agent_cls.create(example, self.agent_config, init_key)
            first = 0
            if state is not None and phase_index == start_phase:
                agent = load_agent(checkpoint.agent_path, agent)
                first = start_step
            window_start, window_steps = time.perf_counter(), 0
            for step in range(first, phase.steps):
                data = train_data.at_step(step)
                agent, metrics = _train_step(agent, data, jax.random.fold_in(step_keys, step),
                                             profile.batch_size, chunk_len, discount)
                done, window_steps = step + 1, window_steps + 1
                bar.update(1)
                if done % profile.log_every == 0 or done == phase.steps:
                    values = _as_floats(metrics)
                    self._check_finite(values, phase.name, done, checkpoint)
                    val = _as_floats(_validation_step(agent, val_data, jax.random.fold_in(val_keys, done),
                                                      profile.batch_size, chunk_len, discount))
                    now = time.perf_counter()
                    metrics_log.append({"phase": phase.name, "step": done, **values,
                                        **{f"val/{k}": v for k, v in val.items()},
                                        "steps_per_s": round(window_steps / (now - window_start), 2),
                                        "wall_s": round(now - began, 2)})
                    window_start, window_steps = now, 0
                if done % profile.eval_every == 0 or done == phase.steps:
                    result = self._evaluate(evaluator, agent, _eval_seed(cfg.seed, phase_index, done))
                    last_success[phase.name] = result.success_rate
                    evals_log.append({"phase": phase.name, "step": done, **result.to_dict(),
                                      "wall_s": round(time.perf_counter() - began, 2)})
                    bar.set_postfix(success=f"{result.success_rate:.2f}")
                if done % profile.checkpoint_every == 0 or done == phase.steps:
                    checkpoint.save(agent, phase.name, done, time.perf_counter() - began)
                if self.on_step is not None:
                    self.on_step(phase.name, done)
            state = None
        bar.close()
        summary = {
            "method": cfg.method,
            "task": self.task.name,
            "seed": cfg.seed,
            "profile": profile.name,
            "final_success": last_success[phases[-1].name],
            "success_by_phase": last_success,
            "steps": {p.name: p.steps for p in phases},
            "eval_episodes": profile.eval_episodes,
            "wall_time_s": round(time.perf_counter() - began, 1),
            "data": {"kind": files.kind, "dataset": files.dataset},
            "hardware": provenance.hardware(),
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_json(self.dir / "summary.json", summary)
        return summary

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


def _jsonable(record: Any) -> Any:
    """Normalise a record the way a JSON round trip would (tuples become lists...)."""
    import json

    return json.loads(json.dumps(record, default=str))


def train(config: RunConfig, *, progress: bool = True, on_step: Callable[[str, int], None] | None = None) -> dict:
    """Run (or resume, or report) one training run; returns its summary."""
    return Run(config, progress=progress, on_step=on_step).execute()
