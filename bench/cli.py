"""Command line: ``python -m bench <command>`` (``--help`` on any command lists its options)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import tyro

from bench.errors import BenchError


def datagen(
    dataset: Annotated[str, tyro.conf.Positional],
    episodes: int = 1000,
    seed: int = 0,
    out: Path = Path("~/.ogbench/regenerated"),
    val_episodes: int | None = None,
    episode_length: int = 1000,
    workers: int | None = None,
) -> None:
    """Regenerate an OGBench dataset with ogbench's scripted oracles (labelled 'regenerated').

    Writes DATASET.npz, DATASET-val.npz and DATASET.manifest.json in the official format.

    Args:
        dataset: Dataset name, e.g. cube-double-play-v0, scene-play-v0, pointmaze-medium-navigate-v0.
        episodes: Training episodes (1000 episodes of 1000 steps = the official 1M size).
        seed: Seed of every random draw; the same seed gives the same files.
        out: Output directory.
        val_episodes: Validation episodes (default: 10% of episodes, at least 1).
        episode_length: Environment steps per episode (official: 1000).
        workers: Parallel processes (default: all cores).
    """
    from bench.datagen import generate
    from bench.tasks import resolve_dataset

    path = generate(resolve_dataset(dataset), episodes=episodes, seed=seed, out_dir=out.expanduser(),
                    val_episodes=val_episodes, workers=workers, episode_length=episode_length)
    print(f"wrote {path} (regenerated data; manifest beside it)")


def train(
    method: str,
    task: str,
    profile: Literal["smoke", "quick", "paper"] = "quick",
    seed: int = 0,
    source: Literal["official", "regenerated", "auto"] | None = None,
    dataset_dir: Path | None = None,
    out: Path | None = None,
    progress: bool = True,
) -> None:
    """Train and evaluate one method on one task; resumes an interrupted run in the same directory.

    Args:
        method: Method name as in the papers' tables, lower case (bc, fql, qam, qam-e, trqam, ...).
        task: OGBench singletask name (cube-double-play-singletask-task1-v0) or short form (c2-task1).
        profile: smoke (seconds, for tests), quick (CPU-sized, minutes) or paper (published settings).
        seed: Run seed (network init, batches, evaluation episodes).
        source: Data source: official OGBench files, regenerated with ogbench's oracles, or auto (official if present, else regenerated). Default: the profile's (auto for smoke/quick, official for paper).
        dataset_dir: Directory of the official files (default ~/.ogbench/data): DATASET.npz + DATASET-val.npz, or shards DOMAIN-...-NNN.npz.
        out: Run directory (default results/runs/PROFILE/METHOD/TASK/seedSEED).
        progress: Show a progress bar.
    """
    from bench.training import RunConfig
    from bench.training import train as run_training

    config = RunConfig(method=method, task=task, profile=profile, seed=seed, source=source,
                       dataset_dir=dataset_dir, out=out)
    summary = run_training(config, progress=progress)
    print(f"{summary['method']} on {summary['task']} (seed {summary['seed']}, {summary['profile']}, "
          f"{summary['data']['kind']} data): success {summary['final_success']:.3f} -> {config.run_dir()}")


def tasks() -> None:
    """List the 50 benchmark tasks by domain."""
    from bench.tasks import DOMAINS

    for d in DOMAINS:
        print(f"{d.abbr:6s} {d.name:30s} h={d.chunk_len} tasks: {d.name}-singletask-task{{1..5}}-v0")


def main(argv: list[str] | None = None) -> None:
    try:
        tyro.extras.subcommand_cli_from_dict(
            {"datagen": datagen, "train": train, "tasks": tasks},
            args=argv,
            description="trqam-bench: TRQAM, QAM and baselines on OGBench.",
        )
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        sys.exit(130)
