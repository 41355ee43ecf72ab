"""Regenerate OGBench datasets with ogbench's own scripted oracles.

The official OGBench files cannot be downloaded everywhere, but ogbench ships the scripted
oracles that produced its manipulation and pointmaze datasets. This module reruns that
recipe (a faithful reconstruction of ogbench's ``data_gen_scripts/generate_manipspace.py``
and ``generate_locomaze.py``, which the pip package does not install) and writes the
result in the official file format, so ``ogbench.make_env_and_datasets`` loads it
unchanged from a dataset directory.

Recipe
------
* Manipulation (``cube-*``, ``scene``, ``puzzle-*``; types ``play`` and ``noisy``): the
  environment ``<env>-v0`` made with ``terminate_at_goal=False, mode='data_collection'``.
  ``play`` follows the plan oracles (noise 0.1, noise smoothing 0.5; puzzle presses buttons
  with the gripper always closed; scene picks the cube, button, drawer or window oracle by
  ``info['privileged/target_task']``). ``noisy`` follows the Markov oracles (min norm 0.4)
  plus Gaussian noise with per-episode scale xi ~ U(0, 0.1), per-dimension scales
  [xi, xi, xi, 3 xi, 10 xi], and a uniformly random action with probability 0.1 (0.2 for
  puzzle). Whenever the oracle is done, ``set_new_target(p_stack=...)`` draws a new target
  (p_stack is 0 for single, U(0, 0.25) double, U(0.05, 0.35) triple, U(0.1, 0.5) quadruple
  per episode, 0.5 otherwise). Scene episodes in which the cube leaves the visible area
  (y >= 0.29, or y <= -0.3 outside the drawer's height band) are discarded and redrawn.
* Pointmaze ``navigate``: ``pointmaze-<maze>-v0`` with ``terminate_at_goal=False``; each
  episode starts in a random free cell with a goal in a random non-hallway cell; the
  action is the unit direction to the BFS oracle subgoal plus Gaussian noise 0.5, clipped
  to [-1, 1]; when the goal is reached a new one is drawn.
* Antmaze, humanoidmaze and antsoccer datasets need ogbench's pretrained expert policies,
  which are not distributed, so they cannot be regenerated.

Layout: an episode of ``episode_length`` transitions is ``episode_length + 1`` environment
steps, stored as that many rows of (observation, action, terminals, qpos, qvel[,
button_states]) with the state *before* the action and ``terminals`` set on the last row.
``ogbench.utils.load_dataset`` drops each last row as a source state, which yields exactly
``episode_length`` transitions per episode. 1000 episodes of length 1000 is the official
1M size for most datasets (cube-triple/quadruple, pointmaze-giant and puzzle-4x5/4x6 were
published larger or with longer episodes); the ``-val`` file has 10% as many episodes.

Every episode is seeded from (seed, split, index, attempt) alone, so the arrays are
identical for any number of workers. They are not identical across numpy versions: from the
same seed, numpy 2.4.6 (the Python 3.11 lock) and 2.5.5 (the 3.12 lock) give the same actions
but different observations and states (measured 2026-12-02, cube-single, 2 episodes), so the
manifest's versions are part of the data's identity and of its cache directory. Nor across
processors: the 1M puzzle-3x3 set (seed 0, ogbench 1.2.2, MuJoCo 4.0.0, numpy 2.4.6) regenerated on
an AMD EPYC (2026-12-01) and on an Intel Xeon (2026-12-02) differs (train sha256 dd71d8b6... against
a40fc273...), and the code was not the cause (two episodes made on one machine by the code before
and after the only change to this file in between are identical). The manifest records the
processor; the cache is not keyed by it, so a cache shared by a cluster's nodes gives all of them
the same bytes. Regenerated data is never the official bytes (the
official runs were unseeded): it must always be labelled "regenerated", which the
manifest written next to the files records.

Cost, measured on the development machine (2 shared CPU cores, single process): about
1.7 s per 1001-step manipulation episode (cube-double/scene/puzzle play; up to 3 s when the
cores were busy) and about 0.15 s per pointmaze-medium episode. The official 1M cube-double
set (1000 + 100 episodes) is therefore about 30-50 CPU-minutes, divided by the workers.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from bench.errors import BenchError
from bench.files import sha256_file, temp_beside
from bench.provenance import cpu_model
from bench.tasks import MANIPULATION_ENVS, resolve_dataset

EXPERT_ROBOTS = ("antmaze", "humanoidmaze", "antsoccer")

PLAN_NOISE = 0.1
PLAN_NOISE_SMOOTHING = 0.5
MARKOV_MIN_NORM = 0.4
NOISY_MAX_SCALE = 0.1  # xi ~ U(0, NOISY_MAX_SCALE) per episode
NOISY_DIM_SCALES = np.array([1.0, 1.0, 1.0, 3.0, 10.0])
MAZE_ACTION_NOISE = 0.5
# Per-episode cube stacking probability, p_stack ~ U(lo, hi); 0.5 for scene and puzzle.
P_STACK_RANGES = {
    "cube-single": (0.0, 0.0),
    "cube-double": (0.0, 0.25),
    "cube-triple": (0.05, 0.35),
    "cube-quadruple": (0.1, 0.5),
}
DEFAULT_P_STACK = (0.5, 0.5)

SPLITS = {"train": 0, "val": 1}
DTYPES = {
    "observations": np.float32,
    "actions": np.float32,
    "terminals": bool,
    "qpos": np.float32,
    "qvel": np.float32,
    "button_states": np.int64,
}


@dataclass(frozen=True)
class Recipe:
    """What to generate: one regenerable dataset and its episode length."""

    dataset: str  # e.g. 'cube-double-play-v0'
    env_name: str  # gymnasium id without version, e.g. 'cube-double'
    data_type: str  # 'play', 'noisy' or 'navigate'
    episode_length: int  # transitions per episode (rows per episode minus one)

    @property
    def env_id(self) -> str:
        return f"{self.env_name}-v0"

    @property
    def is_manipulation(self) -> bool:
        return self.env_name in MANIPULATION_ENVS

    @property
    def p_random_action(self) -> float:
        """Probability of a uniformly random action (``noisy`` only)."""
        if self.data_type != "noisy":
            return 0.0
        return 0.2 if self.env_name.startswith("puzzle") else 0.1

    def describe(self) -> dict[str, Any]:
        """A short, JSON-serialisable account of the recipe for the manifest."""
        common = {
            "env": self.env_id,
            "episode_length": self.episode_length,
            "rows_per_episode": self.episode_length + 1,
        }
        if not self.is_manipulation:
            return common | {
                "oracle": "BFS subgoal direction (locomaze get_oracle_subgoal)",
                "action_noise": MAZE_ACTION_NOISE,
                "goals": "random non-hallway cell, redrawn when reached",
            }
        lo, hi = P_STACK_RANGES.get(self.env_name, DEFAULT_P_STACK)
        common |= {"p_stack": f"U({lo}, {hi}) per episode", "set_new_target": "when oracle done"}
        if self.data_type == "play":
            return common | {
                "oracle": "plan",
                "noise": PLAN_NOISE,
                "noise_smoothing": PLAN_NOISE_SMOOTHING,
            }
        return common | {
            "oracle": "markov",
            "min_norm": MARKOV_MIN_NORM,
            "action_noise": f"N(0, xi*{NOISY_DIM_SCALES.tolist()}), xi ~ U(0, {NOISY_MAX_SCALE})",
            "p_random_action": self.p_random_action,
        }


def _split_name(dataset: str) -> tuple[str, str, str]:
    """Validate a dataset name; return (dataset, env name, dataset type)."""
    dataset = resolve_dataset(dataset)
    env_name, data_type = dataset.removesuffix("-v0").rsplit("-", 1)
    return dataset, env_name, data_type


def _unsupported_reason(dataset: str, env_name: str, data_type: str) -> str | None:
    """Why `dataset` cannot be regenerated, or None if it can."""
    if env_name.startswith(EXPERT_ROBOTS):
        return (
            f"dataset '{dataset}' cannot be regenerated: it was collected by ogbench's "
            "pretrained expert policies, which are not distributed; place the official "
            f"'{dataset}.npz' and '{dataset}-val.npz' in the dataset directory"
        )
    if env_name in MANIPULATION_ENVS and data_type in ("play", "noisy"):
        return None
    if env_name.startswith("pointmaze") and data_type == "navigate":
        return None
    return (
        f"dataset '{dataset}' cannot be regenerated: only manipulation 'play'/'noisy' and "
        "pointmaze 'navigate' datasets can; place the official files in the dataset directory"
    )


def regenerable(dataset: str) -> bool:
    """Whether `dataset` can be regenerated here (raises `BenchError` for unknown names)."""
    return _unsupported_reason(*_split_name(dataset)) is None


def _recipe(dataset: str, episode_length: int) -> Recipe:
    """Resolve `dataset` to a `Recipe`, raising `BenchError` if it cannot be regenerated."""
    dataset, env_name, data_type = _split_name(dataset)
    reason = _unsupported_reason(dataset, env_name, data_type)
    if reason is not None:
        raise BenchError(reason)
    return Recipe(dataset, env_name, data_type, episode_length)


# --------------------------------------------------------------------------- episodes


class _Collector(Protocol):
    def episode(self, seed: int, split_id: int, index: int) -> dict[str, np.ndarray]: ...


class _Rows:
    """Per-step rows of one episode, turned into arrays with the official dtypes."""

    def __init__(self) -> None:
        self._rows: dict[str, list[Any]] = {}

    def add(self, **row: Any) -> None:
        for key, value in row.items():
            self._rows.setdefault(key, []).append(value)

    def add_step(self, ob: np.ndarray, action: np.ndarray, done: bool, info: dict) -> None:
        """One environment step as the official files store it (state before the step)."""
        self.add(observations=ob, actions=action, terminals=done, qpos=info["prev_qpos"], qvel=info["prev_qvel"])

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, dtype=DTYPES[k]) for k, v in self._rows.items()}


def _seed_episode(env: Any, seq: np.random.SeedSequence) -> tuple[int, np.random.Generator]:
    """Seed everything an episode draws from; return (env reset seed, recipe RNG).

    The oracles and parts of the environments sample from numpy's global RNG, so it is
    reseeded for every episode; the recipe's own draws (p_stack, noise, goals) use a
    separate generator. Both derive only from `seq`.
    """
    env_seed, global_seed, space_seed = (int(s) for s in seq.generate_state(3))
    np.random.seed(global_seed)
    env.action_space.seed(space_seed)
    return env_seed, np.random.default_rng(seq)


def _episode_seed(seed: int, split_id: int, index: int, attempt: int = 0) -> np.random.SeedSequence:
    """The seed of one attempt at one episode (only scene episodes are ever redrawn)."""
    return np.random.SeedSequence([seed, split_id, index, attempt])


def _scene_healthy(qpos: np.ndarray) -> bool:
    """Whether the scene's cube stayed visible (ogbench's check): not too far right, and
    not too far left unless at the drawer's height."""
    xyz = qpos[:, 14:17]
    too_right = xyz[:, 1] >= 0.29
    too_left = (xyz[:, 1] <= -0.3) & ((xyz[:, 2] < 0.06) | (xyz[:, 2] > 0.08))
    return not (too_right.any() or too_left.any())


def _make_oracles(env: Any, recipe: Recipe) -> dict[str, Any]:
    """The oracles of `recipe`, keyed by ``info['privileged/target_task']``."""
    from ogbench.manipspace.oracles.markov import (
        button_markov,
        cube_markov,
        drawer_markov,
        window_markov,
    )
    from ogbench.manipspace.oracles.plan import button_plan, cube_plan, drawer_plan, window_plan

    name = recipe.env_name
    if recipe.data_type == "noisy":
        kw = {"env": env, "min_norm": MARKOV_MIN_NORM}
        if name.startswith("cube"):
            return {"cube": cube_markov.CubeMarkovOracle(**kw)}
        if name.startswith("puzzle"):
            return {"button": button_markov.ButtonMarkovOracle(gripper_always_closed=True, **kw)}
        return {
            "cube": cube_markov.CubeMarkovOracle(max_step=100, **kw),
            "button": button_markov.ButtonMarkovOracle(**kw),
            "drawer": drawer_markov.DrawerMarkovOracle(**kw),
            "window": window_markov.WindowMarkovOracle(**kw),
        }
    kw = {"env": env, "noise": PLAN_NOISE, "noise_smoothing": PLAN_NOISE_SMOOTHING}
    if name.startswith("cube"):
        return {"cube": cube_plan.CubePlanOracle(**kw)}
    if name.startswith("puzzle"):
        return {"button": button_plan.ButtonPlanOracle(gripper_always_closed=True, **kw)}
    return {
        "cube": cube_plan.CubePlanOracle(**kw),
        "button": button_plan.ButtonPlanOracle(**kw),
        "drawer": drawer_plan.DrawerPlanOracle(**kw),
        "window": window_plan.WindowPlanOracle(**kw),
    }


class _ManipCollector:
    """Plays manipulation episodes with ogbench's plan (play) or Markov (noisy) oracles."""

    def __init__(self, recipe: Recipe) -> None:
        import gymnasium
        import ogbench.manipspace  # noqa: F401  (registers the environments)

        self.recipe = recipe
        self.env = gymnasium.make(
            recipe.env_id,
            terminate_at_goal=False,
            mode="data_collection",
            max_episode_steps=recipe.episode_length + 1,
        )
        self.oracles = _make_oracles(self.env, recipe)
        self.has_buttons = hasattr(self.env.unwrapped, "_cur_button_states")

    def episode(self, seed: int, split_id: int, index: int) -> dict[str, np.ndarray]:
        """Episode `index` of split `split_id`, redrawn while the scene check fails."""
        attempt = 0
        while True:
            rows = self._play(_episode_seed(seed, split_id, index, attempt))
            if self.recipe.env_name != "scene" or _scene_healthy(rows["qpos"]):
                return rows
            attempt += 1

    def _action(
        self, oracle: Any, ob: np.ndarray, info: dict, rng: np.random.Generator, xi: float
    ) -> np.ndarray:
        """The oracle's action, or for `noisy` a noisy or random one, clipped to [-1, 1]."""
        if self.recipe.data_type == "play":
            return np.clip(np.asarray(oracle.select_action(ob, info)), -1, 1)
        if rng.uniform() < self.recipe.p_random_action:
            return rng.uniform(-1, 1, size=5)
        action = np.asarray(oracle.select_action(ob, info))
        return np.clip(action + rng.normal(0.0, xi * NOISY_DIM_SCALES), -1, 1)

    def _play(self, seq: np.random.SeedSequence) -> dict[str, np.ndarray]:
        env, unwrapped = self.env, self.env.unwrapped
        env_seed, rng = _seed_episode(env, seq)
        ob, info = env.reset(seed=env_seed)
        p_stack = rng.uniform(*P_STACK_RANGES.get(self.recipe.env_name, DEFAULT_P_STACK))
        xi = rng.uniform(0, NOISY_MAX_SCALE) if self.recipe.data_type == "noisy" else 0.0
        oracle = self.oracles[info["privileged/target_task"]]
        oracle.reset(ob, info)

        rows, done = _Rows(), False
        while not done:
            action = self._action(oracle, ob, info, rng, xi)
            next_ob, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if oracle.done:
                target_ob, target_info = unwrapped.set_new_target(p_stack=p_stack)
                oracle = self.oracles[target_info["privileged/target_task"]]
                oracle.reset(target_ob, target_info)
            rows.add_step(ob, action, done, info)
            if self.has_buttons:
                rows.add(button_states=info["prev_button_states"])
            ob = next_ob
        return rows.arrays()


def _maze_cells(maze_map: np.ndarray) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(all free cells, free cells that are not straight hallway cells) of a maze."""
    free, vertices = [], []
    for i, j in zip(*np.nonzero(maze_map == 0), strict=True):
        free.append((int(i), int(j)))
        vertical = (
            maze_map[i - 1, j] == 0
            and maze_map[i + 1, j] == 0
            and maze_map[i, j - 1] == 1
            and maze_map[i, j + 1] == 1
        )
        horizontal = (
            maze_map[i, j - 1] == 0
            and maze_map[i, j + 1] == 0
            and maze_map[i - 1, j] == 1
            and maze_map[i + 1, j] == 1
        )
        if not (vertical or horizontal):
            vertices.append((int(i), int(j)))
    return free, vertices


class _MazeCollector:
    """Plays pointmaze `navigate` episodes: noisy steps towards the BFS oracle subgoal."""

    def __init__(self, recipe: Recipe) -> None:
        import gymnasium
        import ogbench.locomaze  # noqa: F401  (registers the environments)

        self.env = gymnasium.make(
            recipe.env_id, terminate_at_goal=False, max_episode_steps=recipe.episode_length + 1
        )
        self.free_cells, self.goal_cells = _maze_cells(self.env.unwrapped.maze_map)

    def episode(self, seed: int, split_id: int, index: int) -> dict[str, np.ndarray]:
        env, maze = self.env, self.env.unwrapped
        env_seed, rng = _seed_episode(env, _episode_seed(seed, split_id, index))
        task = {
            "init_ij": self.free_cells[rng.integers(len(self.free_cells))],
            "goal_ij": self.goal_cells[rng.integers(len(self.goal_cells))],
        }
        ob, _ = env.reset(seed=env_seed, options={"task_info": task})

        rows, done = _Rows(), False
        while not done:
            xy = maze.get_xy()
            subgoal, _ = maze.get_oracle_subgoal(xy, maze.cur_goal_xy)
            direction = (subgoal - xy) / (np.linalg.norm(subgoal - xy) + 1e-6)
            action = np.clip(direction + rng.normal(0.0, MAZE_ACTION_NOISE, size=2), -1, 1)
            next_ob, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if info["success"]:
                maze.set_goal(self.goal_cells[rng.integers(len(self.goal_cells))])
            rows.add_step(ob, action, done, info)
            ob = next_ob
        return rows.arrays()


def _make_collector(recipe: Recipe) -> _Collector:
    return _ManipCollector(recipe) if recipe.is_manipulation else _MazeCollector(recipe)


_WORKER_COLLECTOR: _Collector | None = None


def _init_worker(recipe: Recipe) -> None:
    """Pool initializer: build this worker's environment once."""
    global _WORKER_COLLECTOR
    _WORKER_COLLECTOR = _make_collector(recipe)


def _worker_episode(seed: int, split_id: int, index: int) -> dict[str, np.ndarray]:
    """Pool task: one episode with this worker's environment."""
    assert _WORKER_COLLECTOR is not None, "worker not initialised"
    return _WORKER_COLLECTOR.episode(seed, split_id, index)


def _collect(
    recipe: Recipe, jobs: list[tuple[int, int]], seed: int, workers: int, progress: bool
) -> list[dict[str, np.ndarray]]:
    """Run the (split_id, index) episodes `jobs`; return their rows in `jobs` order."""
    bar = tqdm(total=len(jobs), desc=recipe.dataset, unit="ep", disable=not progress)
    with bar:
        if workers == 1:
            return _collect_here(recipe, jobs, seed, bar)
        results: list[dict[str, np.ndarray] | None] = [None] * len(jobs)
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(workers, ctx, _init_worker, (recipe,)) as pool:
            futures = {pool.submit(_worker_episode, seed, *job): k for k, job in enumerate(jobs)}
            try:
                for future in cf.as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
            finally:
                pool.shutdown(cancel_futures=True)
        return results  # type: ignore[return-value]


def _collect_here(
    recipe: Recipe, jobs: list[tuple[int, int]], seed: int, bar: tqdm
) -> list[dict[str, np.ndarray]]:
    """`_collect` in this process, leaving numpy's global RNG as it found it."""
    state = np.random.get_state()
    try:
        collector = _make_collector(recipe)
        results = []
        for split_id, index in jobs:
            results.append(collector.episode(seed, split_id, index))
            bar.update()
        return results
    finally:
        np.random.set_state(state)


def _concat(episodes: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([ep[k] for ep in episodes]) for k in episodes[0]}


# --------------------------------------------------------------------------- files


def _temp_file(directory: Path, final_name: str, temps: list[Path]) -> tuple[int, Path]:
    """Create a temp file next to `final_name`, registering it in `temps` for cleanup."""
    fd, path = temp_beside(directory / final_name)
    temps.append(path)
    return fd, path


def _write_npz(
    directory: Path, final_name: str, arrays: dict[str, np.ndarray], temps: list[Path]
) -> Path:
    """Write `arrays` compressed to a synced temp file; return its path."""
    fd, path = _temp_file(directory, final_name, temps)
    with os.fdopen(fd, "wb") as f:
        np.savez_compressed(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    return path


def _write_json(directory: Path, final_name: str, data: dict, temps: list[Path]) -> Path:
    """Write `data` as JSON to a synced temp file; return its path."""
    fd, path = _temp_file(directory, final_name, temps)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    return path


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def versions() -> dict[str, str]:
    """The versions regenerated arrays depend on (ogbench, MuJoCo, numpy): recorded in the
    manifest and part of the cache key (`bench.data.loading.regenerated_dir`)."""
    return {pkg: metadata.version(pkg) for pkg in ("ogbench", "mujoco", "numpy")}


def manifest_path(out_dir: str | Path, dataset: str) -> Path:
    """Where the manifest of `dataset` lives in `out_dir`."""
    return Path(out_dir) / f"{resolve_dataset(dataset)}.manifest.json"


def binding(manifest: dict) -> str:
    """The sha256 of ``manifest`` (canonical JSON, without this field): it binds every field the
    provenance reports (episodes, seed, recipe, versions...) to the files' sha256 listed in it."""
    body = {k: v for k, v in manifest.items() if k != "binding"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_manifest(out_dir: str | Path, dataset: str) -> dict | None:
    """The manifest of a regenerated `dataset` in `out_dir`, or None if there is none; one line
    when it cannot be read or was changed after it was written (its `binding` differs)."""
    path = manifest_path(out_dir, dataset)
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as e:
        raise BenchError(f"cannot read manifest '{path}': {e}; delete it and regenerate") from e
    if not isinstance(manifest, dict) or manifest.get("binding") != binding(manifest):
        what = "has no binding digest (written by an older version)" if isinstance(manifest, dict) and \
            "binding" not in manifest else "was changed after it was written (its binding digest differs)"
        raise BenchError(f"manifest '{path}' {what}: its provenance cannot be trusted; delete {Path(out_dir)} "
                         "and regenerate")
    return manifest


def _publish(
    out_dir: Path, recipe: Recipe, splits: dict[str, dict[str, np.ndarray]], manifest: dict
) -> Path:
    """Atomically write the train and val files and then the manifest; return the train path."""
    names = {"train": f"{recipe.dataset}.npz", "val": f"{recipe.dataset}-val.npz"}
    publish(out_dir, recipe.dataset, {names[split]: splits[split] for split in names}, manifest)
    return out_dir / names["train"]


def publish(out_dir: Path, dataset: str, files: dict[str, dict[str, np.ndarray]], manifest: dict) -> None:
    """Write ``files`` (name -> arrays) and then the manifest of ``dataset`` binding their sha256s.

    Every file is written to a synced temp file in `out_dir` and renamed into place; a
    stale manifest is removed before any data file is replaced. On any exception
    (KeyboardInterrupt included) the temp files are deleted.
    """
    manifest_final = manifest_path(out_dir, dataset)
    temps: list[Path] = []
    try:
        staged = {name: _write_npz(out_dir, name, arrays, temps) for name, arrays in files.items()}
        manifest["files"] = {name: {"sha256": sha256_file(path), "size": path.stat().st_size}
                             for name, path in staged.items()}
        manifest["binding"] = binding(manifest)
        manifest_tmp = _write_json(out_dir, manifest_final.name, manifest, temps)
        manifest_final.unlink(missing_ok=True)
        for name, path in staged.items():
            os.replace(path, out_dir / name)
        os.replace(manifest_tmp, manifest_final)
        _fsync_dir(out_dir)
    finally:
        for path in temps:
            path.unlink(missing_ok=True)


def _check_counts(
    episodes: int, val_episodes: int, episode_length: int, workers: int, seed: int
) -> None:
    """Raise `BenchError` unless the counts are positive and the seed non-negative."""
    for name, value in [
        ("episodes", episodes),
        ("val_episodes", val_episodes),
        ("episode_length", episode_length),
        ("workers", workers),
    ]:
        if value < 1:
            raise BenchError(f"{name} must be at least 1, got {value}")
    if seed < 0:
        raise BenchError(f"seed must be non-negative, got {seed}")


def generate(
    dataset: str,
    *,
    episodes: int,
    seed: int,
    out_dir: str | Path,
    val_episodes: int | None = None,
    workers: int | None = None,
    episode_length: int = 1000,
    progress: bool = True,
) -> Path:
    """Regenerate `dataset` into `out_dir`; return the path of the train file.

    Writes ``<dataset>.npz`` (`episodes` episodes), ``<dataset>-val.npz`` (`val_episodes`,
    default 10% of `episodes`, at least 1) and ``<dataset>.manifest.json``. Episodes of
    `episode_length` transitions run in `workers` processes (default: all CPUs); with the
    same ogbench, MuJoCo and numpy versions (recorded in the manifest) the arrays depend only on
    (dataset, episodes, val_episodes, episode_length, seed).
    Raises `BenchError` for unknown or non-regenerable datasets and bad counts.

    With more than one worker the episodes run in spawned processes, so a calling script
    needs the usual ``if __name__ == "__main__":`` guard.
    """
    began = time.perf_counter()
    recipe = _recipe(dataset, episode_length)
    val_episodes = max(1, episodes // 10) if val_episodes is None else val_episodes
    workers = workers if workers is not None else os.cpu_count() or 1
    _check_counts(episodes, val_episodes, episode_length, workers, seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    counts = {"train": episodes, "val": val_episodes}
    jobs = [(SPLITS[split], i) for split, n in counts.items() for i in range(n)]
    rows = _collect(recipe, jobs, seed, min(workers, len(jobs)), progress)
    splits = {"train": _concat(rows[:episodes]), "val": _concat(rows[episodes:])}

    manifest = {
        "kind": "regenerated",
        "dataset": recipe.dataset,
        "recipe": recipe.describe(),
        "episodes": episodes,
        "val_episodes": val_episodes,
        "seed": seed,
        "versions": versions(),
        "processor": cpu_model(),
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "generation_seconds": round(time.perf_counter() - began, 1),  # the episodes' wall time, on `processor`
    }
    return _publish(out_dir, recipe, splits, manifest)
