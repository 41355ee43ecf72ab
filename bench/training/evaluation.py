"""Evaluation harness: run N episodes of an OGBench singletask environment with a policy.

The protocol is that of the TRQAM/QAM papers. The policy is queried once per action
chunk of length h; the chunk is executed open loop, one action per environment step,
with actions clipped to [-1, 1]. An episode ends when the environment reports
``terminated or truncated`` (the episode limit is the environment's own ``TimeLimit``),
and its success is ``info['success']`` of its last step.

Several environments (*slots*) run side by side. Each slot runs episodes one after
another until all N episodes have been started. Whenever one or more slots have run out
of actions, the policy is called once on a batch of observations of fixed shape
``[num_envs, obs_dim]``, so that a jitted policy is traced only once: rows
``0..k-1`` are the k slots that need a chunk, and the remaining rows are padding (copies
of row 0) whose actions are ignored. With ``batched=False`` (a baseline for benchmarks)
the policy is instead called once per slot on a batch of one.

A policy is any callable ``policy(observations, key) -> actions`` (see `Policy`). It may
also implement two optional hooks, for policies that need the environment's ``info``
dicts (such as OGBench's scripted oracles) or keep per-episode state:

* ``reset(slot, observation, info)``: called when a slot starts a new episode.
* ``observe(slots, infos)``: called just before each policy call; ``slots[j]`` is the
  slot of row j of the coming batch and ``infos[j]`` its latest ``info`` dict.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium
import jax
import numpy as np
import ogbench

from bench.errors import BenchError
from bench.files import derived_seed
from bench.tasks import Task, resolve_task

DEFAULT_NUM_EPISODES = 50
DEFAULT_NUM_ENVS = 10


class Policy(Protocol):
    """Maps a batch of observations to a batch of action chunks.

    ``observations`` is float32 ``[B, obs_dim]``; the result (numpy or JAX) is
    ``[B, h * action_dim]`` (a flattened chunk) or ``[B, h, action_dim]``.
    """

    def __call__(self, observations: np.ndarray, key: jax.Array) -> Any: ...


@dataclass(frozen=True, eq=False)
class EvalResult:
    """Per-episode outcomes of one evaluation, in episode order, and its timings."""

    success: np.ndarray  # bool [N]
    length: np.ndarray  # int [N], environment steps
    episode_return: np.ndarray  # float [N], sum of rewards
    policy_calls: int  # number of calls of the policy
    policy_seconds: float  # wall time inside the policy (and its hooks)
    env_seconds: float  # wall time inside env.reset and env.step
    wall_seconds: float  # wall time of the whole evaluation

    @property
    def num_episodes(self) -> int:
        return len(self.success)

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.success))

    @property
    def env_steps(self) -> int:
        return int(np.sum(self.length))

    def to_dict(self) -> dict[str, float | int]:
        """The aggregates, as plain Python numbers for JSON or CSV logs."""
        return {
            "num_episodes": self.num_episodes,
            "success_rate": self.success_rate,
            "mean_return": float(np.mean(self.episode_return)),
            "mean_length": float(np.mean(self.length)),
            "env_steps": self.env_steps,
            "policy_calls": self.policy_calls,
            "policy_seconds": self.policy_seconds,
            "env_seconds": self.env_seconds,
            "wall_seconds": self.wall_seconds,
        }


class Evaluator:
    """Holds ``num_envs`` environments of one task, reused by every `evaluate` call."""

    def __init__(self, task: str | Task, *, num_envs: int = DEFAULT_NUM_ENVS) -> None:
        self.task = resolve_task(task) if isinstance(task, str) else task
        if num_envs < 1:
            raise BenchError(f"num_envs must be at least 1, got {num_envs}")
        self._envs = tuple(
            ogbench.make_env_and_datasets(self.task.name, env_only=True) for _ in range(num_envs)
        )

    @property
    def envs(self) -> tuple[gymnasium.Env, ...]:
        """The environments, one per slot (slot i steps ``envs[i]``)."""
        return self._envs

    @property
    def num_envs(self) -> int:
        return len(self._envs)

    @property
    def episode_limit(self) -> int:
        """Maximum steps of an episode (the environment's ``TimeLimit``)."""
        return self._envs[0].spec.max_episode_steps

    def evaluate(
        self,
        policy: Policy,
        num_episodes: int = DEFAULT_NUM_EPISODES,
        seed: int = 0,
        *,
        chunk_len: int | None = None,
        batched: bool = True,
    ) -> EvalResult:
        """Run ``num_episodes`` episodes of ``policy`` and return their outcomes.

        ``chunk_len`` (h) defaults to the task's; the policy must return chunks of that
        length. Results are reproducible for a given ``(seed, num_envs)``.
        """
        if num_episodes < 1:
            raise BenchError(f"num_episodes must be at least 1, got {num_episodes}")
        if seed < 0:
            raise BenchError(f"seed must be non-negative, got {seed}")
        h = self.task.chunk_len if chunk_len is None else chunk_len
        if h < 1:
            raise BenchError(f"chunk_len must be at least 1, got {h}")
        return _Run(self._envs, policy, num_episodes, seed, h, batched).execute()

    def close(self) -> None:
        for env in self._envs:
            env.close()

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def evaluate(
    task: str | Task,
    policy: Policy,
    *,
    num_episodes: int = DEFAULT_NUM_EPISODES,
    num_envs: int | None = None,
    seed: int = 0,
    chunk_len: int | None = None,
    batched: bool = True,
) -> EvalResult:
    """One-off evaluation; builds and closes the environments (prefer `Evaluator` in loops).

    ``num_envs`` defaults to ``min(num_episodes, DEFAULT_NUM_ENVS)``.
    """
    if num_envs is None:
        num_envs = max(1, min(num_episodes, DEFAULT_NUM_ENVS))
    with Evaluator(task, num_envs=num_envs) as evaluator:
        return evaluator.evaluate(policy, num_episodes, seed, chunk_len=chunk_len, batched=batched)


def episode_seed(seed: int, episode: int) -> int:
    """The environment reset seed of episode ``episode`` of an evaluation with ``seed``."""
    return derived_seed(seed, episode)


class _Slot:
    """One environment and the episode it is running (``episode == -1`` when idle)."""

    def __init__(self, index: int, env: gymnasium.Env, action_dim: int) -> None:
        self.index = index
        self.env = env
        self.episode = -1
        self.observation = np.zeros(env.observation_space.shape, np.float32)
        self.info: Mapping[str, Any] = {}
        self.chunk = np.zeros((0, action_dim), np.float32)
        self.position = 0  # index of the next action of `chunk`
        self.episode_return = 0.0
        self.length = 0

    @property
    def needs_actions(self) -> bool:
        return self.position >= len(self.chunk)


class _Run:
    """The state of one `Evaluator.evaluate` call."""

    def __init__(
        self,
        envs: Sequence[gymnasium.Env],
        policy: Policy,
        num_episodes: int,
        seed: int,
        chunk_len: int,
        batched: bool,
    ) -> None:
        action_dim = envs[0].action_space.shape[0]
        self.slots = [_Slot(i, env, action_dim) for i, env in enumerate(envs)]
        self.policy = policy
        self.num_episodes = num_episodes
        self.seed = seed
        self.chunk_shape = (chunk_len, action_dim)
        self.batched = batched
        self.batch_size = len(envs) if batched else 1
        self.key = jax.random.PRNGKey(seed)
        self.next_episode = 0
        self.success = np.zeros(num_episodes, bool)
        self.length = np.zeros(num_episodes, np.int64)
        self.episode_return = np.zeros(num_episodes, np.float64)
        self.policy_calls = 0
        self.policy_seconds = 0.0
        self.env_seconds = 0.0

    def execute(self) -> EvalResult:
        start = time.perf_counter()
        for slot in self.slots:
            self._start_episode(slot)
        while active := [slot for slot in self.slots if slot.episode >= 0]:
            needy = [slot for slot in active if slot.needs_actions]
            if needy:
                for group in [needy] if self.batched else [[slot] for slot in needy]:
                    self._query(group)
            for slot in active:
                self._step(slot)
        return EvalResult(
            success=_frozen(self.success),
            length=_frozen(self.length),
            episode_return=_frozen(self.episode_return),
            policy_calls=self.policy_calls,
            policy_seconds=self.policy_seconds,
            env_seconds=self.env_seconds,
            wall_seconds=time.perf_counter() - start,
        )

    def _start_episode(self, slot: _Slot) -> None:
        """Reset ``slot`` into the next episode, or leave it idle when all have started."""
        if self.next_episode >= self.num_episodes:
            slot.episode = -1
            return
        slot.episode = self.next_episode
        self.next_episode += 1
        start = time.perf_counter()
        observation, info = slot.env.reset(seed=episode_seed(self.seed, slot.episode))
        self.env_seconds += time.perf_counter() - start
        slot.observation = np.asarray(observation, np.float32)
        slot.info = info
        slot.chunk = slot.chunk[:0]
        slot.position = 0
        slot.episode_return = 0.0
        slot.length = 0
        reset = getattr(self.policy, "reset", None)
        if reset is not None:
            start = time.perf_counter()
            reset(slot.index, slot.observation, info)
            self.policy_seconds += time.perf_counter() - start

    def _query(self, group: list[_Slot]) -> None:
        """Call the policy once on the observations of ``group`` and hand out the chunks."""
        rows = np.stack([slot.observation for slot in group])
        padding = np.repeat(rows[:1], self.batch_size - len(group), axis=0)
        observations = np.concatenate([rows, padding])
        start = time.perf_counter()
        observe = getattr(self.policy, "observe", None)
        if observe is not None:
            observe([slot.index for slot in group], [slot.info for slot in group])
        self.key, key = jax.random.split(self.key)
        chunks = self._as_chunks(self.policy(observations, key))
        self.policy_seconds += time.perf_counter() - start
        self.policy_calls += 1
        for slot, chunk in zip(group, chunks, strict=False):
            slot.chunk = np.clip(chunk, -1.0, 1.0)
            slot.position = 0

    def _as_chunks(self, actions: Any) -> np.ndarray:
        """Policy output as ``[batch, h, action_dim]``, from the flat or chunked form."""
        actions = np.asarray(actions, np.float32)
        shape = (self.batch_size, *self.chunk_shape)
        flat = (self.batch_size, self.chunk_shape[0] * self.chunk_shape[1])
        if actions.shape == flat:
            return actions.reshape(shape)
        if actions.shape != shape:
            raise BenchError(
                f"policy returned actions of shape {actions.shape}, expected {flat} or "
                f"{shape} (batch, chunk_len={shape[1]}, action_dim={shape[2]}); "
                "check the chunk length the policy was trained with"
            )
        return actions

    def _step(self, slot: _Slot) -> None:
        """Execute the next action of ``slot``'s chunk; record and restart when done."""
        action = slot.chunk[slot.position]
        slot.position += 1
        start = time.perf_counter()
        observation, reward, terminated, truncated, info = slot.env.step(action)
        self.env_seconds += time.perf_counter() - start
        slot.observation = np.asarray(observation, np.float32)
        slot.info = info
        slot.episode_return += float(reward)
        slot.length += 1
        if terminated or truncated:
            self.success[slot.episode] = bool(info["success"])
            self.length[slot.episode] = slot.length
            self.episode_return[slot.episode] = slot.episode_return
            self._start_episode(slot)


def _frozen(array: np.ndarray) -> np.ndarray:
    """``array`` made read-only, so that an `EvalResult` cannot be changed."""
    array.setflags(write=False)
    return array
