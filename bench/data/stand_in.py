"""Stand-in files in the official layouts, for checking that a protocol runs end to end where its
official files are not (`nox -s paper-smoke`, benchmarks/paper_smoke.py).

Each file holds a few short episodes of uniformly random actions stepped through the task's real
environment: the keys, dtypes and shapes of the official files (observations, actions, terminals,
qpos, qvel and, on puzzle and scene, button_states), read by the same loader
(`bench.data.loading.load_split`, ogbench's own). Layouts: the standard pair ``DATASET.npz`` +
``DATASET-val.npz``, or a protocol's 10M/100M shard folder (``FOLDER/PREFIX-000.npz`` ..
``PREFIX-NNN.npz`` and a ``*-val.npz``: `bench.data.loading.LargeDataset`). Their manifest
(`bench.data.datagen.publish`) binds every file's sha256, so every record labels them
"regenerated", never official; the numbers trained on them mean nothing but their cost.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from bench.data import datagen
from bench.data.loading import LargeDataset
from bench.provenance import cpu_model
from bench.tasks import Task


def episodes(task: Task, count: int, length: int, seed: int) -> dict[str, np.ndarray]:
    """``count`` episodes of ``length`` random-action steps of ``task``'s environment, as the
    official files store them (the state before each step; ``terminals`` at each episode's end)."""
    import ogbench

    env = ogbench.make_env_and_datasets(task.name, env_only=True)
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {}
    try:
        for _ in range(count):
            observation, _ = env.reset(seed=int(rng.integers(2**31)))
            for step in range(length):
                action = rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32)
                next_observation, _, _, _, info = env.step(action)
                row = {"observations": observation, "actions": action, "terminals": step == length - 1,
                       "qpos": info["prev_qpos"], "qvel": info["prev_qvel"]}
                if "prev_button_states" in info:
                    row["button_states"] = info["prev_button_states"]
                for key, value in row.items():
                    rows.setdefault(key, []).append(value)
                observation = next_observation
    finally:
        env.close()
    return {key: np.asarray(values, dtype=datagen.DTYPES[key]) for key, values in rows.items()}


def write(task: Task, directory: Path, *, large: LargeDataset | None = None, episodes_per_file: int = 2,
          episode_length: int = 100, seed: int = 0) -> Path:
    """Stand-in files of ``task``'s dataset under ``directory`` (a ``--dataset-dir``): the standard
    pair, or ``large``'s shard folder. Every shard holds the same episodes (their content does not
    matter here, their number and layout do). Returns the folder written; kept if already there."""
    folder = directory / large.folder if large is not None else directory
    if datagen.read_manifest(folder, task.dataset) is not None:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    train = episodes(task, episodes_per_file, episode_length, seed)
    val = episodes(task, 1, episode_length, seed + 1)
    if large is None:
        files = {f"{task.dataset}.npz": train, f"{task.dataset}-val.npz": val}
    else:
        files = {name: train for name in large.shard_names()} | {f"{large.prefix}-val.npz": val}
    manifest = {
        "kind": "regenerated",
        "dataset": task.dataset,
        "recipe": {"kind": "stand-in: uniformly random actions in the task's environment (bench.data.stand_in)",
                   "episode_length": episode_length, "rows_per_episode": episode_length,
                   "layout": large.folder if large is not None else "standard",
                   "shards": large.shards if large is not None else 1},
        "episodes": episodes_per_file,  # per training file
        "val_episodes": 1,
        "seed": seed,
        "versions": datagen.versions(),
        "processor": cpu_model(),
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    datagen.publish(folder, task.dataset, files, manifest)
    return folder
