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
    init: Literal["bc", "scratch"] = "bc",
    bc_seed: int | None = None,
    online_steps: int | None = None,
    set: list[str] = [],  # noqa: A002, B006 (the option is --set; tyro reads the default)
    progress: bool = True,
) -> None:
    """Train and evaluate one method on one task; resumes an interrupted run in the same directory.

    Args:
        method: Method name as in the papers' tables, lower case (`python -m bench methods` lists them).
        task: OGBench singletask name (cube-double-play-singletask-task1-v0) or short form (c2-task1).
        profile: smoke (seconds, for tests), quick (CPU-sized, minutes) or paper (published settings).
        seed: Run seed (network init, batches, evaluation episodes).
        source: Data source: official OGBench files, regenerated with ogbench's oracles, or auto (official if present, else regenerated). Default: the profile's (auto for smoke/quick, official for paper).
        dataset_dir: Directory of the official files (default ~/.ogbench/data): DATASET.npz + DATASET-val.npz, or shards DOMAIN-...-NNN.npz.
        out: Run directory (default results/runs/PROFILE/METHOD/TASK/seedSEED).
        init: Fine-tuning methods: start from the BC checkpoint (TRQAM paper; BC pretraining is cached and reused across methods) or from scratch (QAM paper).
        bc_seed: Seed of BC pretraining (default: --seed). Fine-tuning runs with the same --bc-seed share one BC checkpoint.
        online_steps: Online fine-tuning steps after the offline phase (0 = offline only; default: the profile's, 500000 for paper, 0 otherwise). A non-default value gets its own run directory (seedSEED-onlineN). RLPD is online-only and needs N > 0.
        set: Overrides of the method's config, KEY=VALUE (e.g. kl_budget=0.5, external_kl=true, frozen_base=true, inv_temp=3).
        progress: Show a progress bar.
    """
    from bench.training import RunConfig
    from bench.training import train as run_training

    config = RunConfig(method=method, task=task, profile=profile, seed=seed, source=source,
                       dataset_dir=dataset_dir, out=out, init=init, overrides=tuple(set), bc_seed=bc_seed,
                       online_steps=online_steps)
    summary = run_training(config, progress=progress)
    phases = ", ".join(f"{phase} {success:.3f}" for phase, success in summary["success_by_phase"].items())
    print(f"{summary['method']} on {summary['task']} (seed {summary['seed']}, {summary['profile']}, "
          f"{summary['data']['kind']} data): success {phases} -> {config.run_dir()}")


QUICK_TASKS = ("cube-double-play-singletask-task1-v0", "scene-play-singletask-task1-v0")


def reproduce(
    methods: list[str] = ["bc", "trqam", "qam"],  # noqa: B006 (tyro reads the default)
    tasks: list[str] = list(QUICK_TASKS),  # noqa: B006
    seeds: list[int] = [0],  # noqa: B006
    profile: Literal["smoke", "quick", "paper"] = "quick",
    source: Literal["official", "regenerated", "auto"] | None = None,
    dataset_dir: Path | None = None,
    online_steps: int | None = None,
    report: Path = Path("reports/reproduce.md"),
) -> None:
    """Run methods x tasks x seeds (finished runs are kept, interrupted ones resume) and tabulate them.

    Args:
        methods: Method names.
        tasks: Task names (full or short form).
        seeds: Seeds.
        profile: Run profile.
        source: Data source (default: the profile's).
        dataset_dir: Directory of the official files.
        online_steps: Online fine-tuning steps after the offline phase (default: the profile's).
        report: Markdown table of the results.
    """
    from bench.runstore import write_atomic
    from bench.training import RunConfig
    from bench.training import train as run_training

    rows = []
    for method in methods:
        for task in tasks:
            for seed in seeds:
                config = RunConfig(method=method, task=task, profile=profile, seed=seed, source=source,
                                   dataset_dir=dataset_dir, online_steps=online_steps)
                summary = run_training(config)
                rows.append(summary)
                print(f"{method} {summary['task']} seed {seed}: success {summary['final_success']:.3f}")
    lines = [
        f"# Results: profile `{profile}`",
        "",
        "Generated by `python -m bench reproduce`. Data kind says whether the datasets were the official",
        "OGBench files or regenerated with ogbench's oracles; quick-profile runs are small CPU runs,",
        "not a reproduction of the papers' numbers. Fine-tuning methods start from the BC checkpoint of the",
        "same task and seed (the `bc` row); lambda and path KL (per action step) are the last logged values;",
        "their traces are in each run's summary.json and metrics.csv.",
        "",
        "| method | task | seed | success | episodes | steps (BC + fine-tuning) | final lambda | final path KL "
        "| wall time (s) | data | hardware |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        steps = " + ".join(str(v) for v in r["steps"].values())
        final = r.get("final_metrics", {})
        lam, kl = final.get("trqam/lambda"), final.get("actor/path_kl")
        lines.append(f"| {r['method']} | {r['task']} | {r['seed']} | {r['final_success']:.2f} | {r['eval_episodes']} "
                     f"| {steps} | {'' if lam is None else f'{lam:.3f}'} | {'' if kl is None else f'{kl:.3f}'} "
                     f"| {r['wall_time_s']} | {r['data']['kind']} | {r['hardware']['cpu']} x{r['hardware']['cpu_cores']} |")
    write_atomic(report, "\n".join(lines) + "\n")
    print(f"wrote {report}")


def curves(
    runs: Annotated[list[Path], tyro.conf.Positional],
    out: Path = Path("reports/online-quick"),
) -> None:
    """Draw offline-to-online learning curves of finished runs: OUT.png, OUT.pdf and a table OUT.md.

    Args:
        runs: Run directories (e.g. results/runs/quick/*/cube-single-play-singletask-task1-v0/seed0-online10000).
        out: Output path without suffix.
    """
    from bench.curves import write

    report, figures = write(runs, out)
    print(f"wrote {report}, " + ", ".join(str(f) for f in figures))


def tables(
    profile: Literal["smoke", "quick", "paper"] = "quick",
    runs: Path | None = None,
    out: Path | None = None,
) -> None:
    """Tabulate stored runs (per task, per domain, overall) beside the TRQAM and QAM papers' numbers.

    Args:
        profile: Whose runs: results/runs/PROFILE.
        runs: Another runs directory (default results/runs/PROFILE).
        out: Output directory (default reports/tables/PROFILE): tables.md, tasks.csv, domains.csv, overall.csv.
    """
    from bench.tables import write
    from bench.training import RESULTS_DIR

    paths = write(runs or RESULTS_DIR / "runs" / profile, out or Path("reports/tables") / profile, profile)
    print("wrote " + ", ".join(str(p) for p in paths))


def tasks() -> None:
    """List the 50 benchmark tasks by domain."""
    from bench.tasks import DOMAINS

    for d in DOMAINS:
        print(f"{d.abbr:6s} {d.name:30s} h={d.chunk_len} tasks: {d.name}-singletask-task{{1..5}}-v0")


def methods() -> None:
    """List the methods: CLI name, pipeline (BC pretraining then fine-tuning, or from scratch) and paper."""
    from bench.methods import METHODS, PLANNED

    for m in METHODS.values():
        print(f"{m.name:8s} {m.pipeline:10s} {m.paper}")
    for name, why in PLANNED.items():
        print(f"{name:8s} {'-':10s} not yet: {why}")


def main(argv: list[str] | None = None) -> None:
    try:
        tyro.extras.subcommand_cli_from_dict(
            {"datagen": datagen, "train": train, "reproduce": reproduce, "curves": curves, "tables": tables,
             "tasks": tasks,
             "methods": methods},
            args=argv,
            description="trqam-bench: TRQAM, QAM and baselines on OGBench.",
        )
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        sys.exit(130)
