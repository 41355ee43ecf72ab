"""Command line: ``python -m bench <command>`` (``--help`` on any command lists its options)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import tyro

from bench.config.profiles import ProfileName
from bench.errors import BenchError, file_system_problem


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
    from bench.data.datagen import generate
    from bench.tasks import resolve_dataset

    path = generate(resolve_dataset(dataset), episodes=episodes, seed=seed, out_dir=out.expanduser(),
                    val_episodes=val_episodes, workers=workers, episode_length=episode_length)
    print(f"wrote {path} (regenerated data; manifest beside it)")


def train(
    method: str,
    task: str,
    profile: ProfileName = "quick",
    seed: int = 0,
    seeds: list[int] | None = None,
    source: Literal["official", "regenerated", "auto"] | None = None,
    dataset_dir: Path | None = None,
    out: Path | None = None,
    init: Literal["bc", "scratch"] | None = None,
    bc_seed: int | None = None,
    online_steps: int | None = None,
    pretrain_steps: int | None = None,
    offline_steps: int | None = None,
    eval_interval: int | None = None,
    eval_episodes: int | None = None,
    log_interval: int | None = None,
    batch_size: int | None = None,
    set: list[str] = [],  # noqa: A002, B006 (the option is --set; tyro reads the default)
    assume: list[str] = [],  # noqa: B006
    seed_axis: Literal["auto", "vmap", "map"] = "auto",
    rerun_stale: bool = False,
    progress: bool = True,
    wandb: bool = False,
    tensorboard: bool = False,
) -> None:
    """Train and evaluate one method on one task; resumes an interrupted run in the same directory.

    Args:
        method: Method name as in the papers' tables, lower case (`python -m bench methods` lists them).
        task: OGBench singletask name (cube-double-play-singletask-task1-v0) or short form (c2-task1).
        profile: smoke (seconds, for tests), quick (CPU-sized, minutes) or paper (published settings).
        seed: Run seed (network init, batches, evaluation episodes).
        seeds: Several seeds instead of --seed, trained side by side by one compiled program; each keeps its own run directory (with --out: OUT/seedN).
        source: Data source: official OGBench files, regenerated with ogbench's oracles, or auto (official if present, else regenerated). Default: the profile's (auto for smoke/quick, official for paper).
        dataset_dir: Directory of the official files (default ~/.ogbench/data): DATASET.npz + DATASET-val.npz, or shards DOMAIN-...-NNN.npz.
        out: Run directory (default results/runs/PROFILE/METHOD/TASK/seedSEED).
        init: Fine-tuning methods: start from the BC checkpoint (TRQAM paper; BC pretraining is cached and reused across methods) or from scratch (QAM paper). Default: the profile's protocol (scratch for qam-paper, bc otherwise).
        bc_seed: Seed of BC pretraining (default: --seed). Fine-tuning runs with the same --bc-seed share one BC checkpoint.
        online_steps: Online fine-tuning steps after the offline phase (0 = offline only; default: the profile's, 500000 for paper, 0 otherwise). A non-default value gets its own run directory (seedSEED-onlineN). RLPD is online-only and needs N > 0.
        pretrain_steps: BC pretraining steps (the `bc` method's whole run; default: the profile's, 300000 for paper). Recorded like every schedule flag below (seedSEED-pretrain_steps=N).
        offline_steps: Offline fine-tuning steps (default: the profile's). Like every schedule flag below, a non-default value is recorded in config.json and gets its own run directory (seedSEED-offline_steps=N).
        eval_interval: Gradient steps between evaluations (default: the profile's).
        eval_episodes: Evaluation episodes (default: the profile's, 50).
        log_interval: Gradient steps between metric rows (default: the profile's).
        batch_size: Batch size of every phase, BC pretraining included (default: the profile's, 256).
        set: Overrides of the method's config, KEY=VALUE (e.g. kl_budget=0.5, external_kl=true, frozen_base=true, inv_temp=3).
        assume: Choices the authors' code leaves open, NAME=VALUE (docs/PROTOCOL.md 'Assumptions'; e.g. sparse_reward=dense, trqam_kl_budget=0.5, bc_checkpoint=per-task). A non-default value is recorded in config.json and gets its own run directory (seedSEED-assume_NAME=VALUE).
        seed_axis: How one program trains several --seeds: vmap (every product batched over the seeds; for accelerators), map (one seed after another inside the program; faster on a CPU) or auto (map on a CPU, vmap otherwise). Results agree up to float rounding.
        rerun_stale: When the run directory holds a run of another configuration, of another result store (a committed run) or of another code revision, move it aside (under results/replaced/) and train; without it such a run is refused with one line (another revision's is kept and returned).
        progress: Show a progress bar.
        wandb: Mirror every row of metrics.csv and evaluations.csv, with the run's config and provenance, to a Weights & Biases run (extra: trqam-bench[wandb]; WANDB_MODE=offline writes it under RUN_DIR/wandb). A resumed run continues the same W&B run.
        tensorboard: The same mirror as TensorBoard events in RUN_DIR/tensorboard (extra: trqam-bench[tensorboard]).
    """
    _compile_cache()
    from bench.training.pipeline import RERUN_STALE, RunConfig, train_seeds

    _given(seeds=seeds)
    chosen = list(dict.fromkeys(seeds)) if seeds else [seed]
    schedule = _schedule(pretrain_steps, offline_steps, eval_interval, eval_episodes, log_interval, batch_size)
    configs = [RunConfig(method=method, task=task, profile=profile, seed=s, source=source, dataset_dir=dataset_dir,
                         out=out / f"seed{s}" if out is not None and seeds else out, init=init,
                         overrides=tuple(set), bc_seed=bc_seed, online_steps=online_steps, assume=tuple(assume),
                         **schedule)
               for s in chosen]
    summaries = train_seeds(configs, progress=progress, seed_axis=seed_axis, rerun=RERUN_STALE if rerun_stale else (),
                            trackers=_trackers(wandb, tensorboard))
    for config, summary in zip(configs, summaries, strict=True):
        phases = ", ".join(f"{phase} {success:.3f}" for phase, success in summary["success_by_phase"].items())
        if summary.get("status") == "diverged":
            where = summary["diverged"]
            phases += f" (DIVERGED at {where['phase']} step {where['step']}: recorded with success 0)"
        print(f"{summary['method']} on {summary['task']} (seed {summary['seed']}, {summary['profile']}, "
              f"{summary['data']['kind']} data): success {phases} -> {config.run_dir()}")


def _given(**lists: list | None) -> None:
    """One line for a list flag given with no value (``--seeds`` alone), which would otherwise
    fall back to the default as though it had not been given."""
    for name, values in lists.items():
        if values is not None and not values:
            raise BenchError(f"--{name.replace('_', '-')} was given no value; name at least one (e.g. --{name} 0 1), "
                             "or leave the flag out for the default")


def _trackers(wandb: bool, tensorboard: bool) -> tuple[str, ...]:
    """The tracker flags as `bench.training.trackers` names."""
    return tuple(name for name, on in (("wandb", wandb), ("tensorboard", tensorboard)) if on)


def _schedule(pretrain_steps, offline_steps, eval_interval, eval_episodes, log_interval,
              batch_size) -> dict[str, int | None]:
    """The schedule flags as `RunConfig` fields (None: the profile's value)."""
    return {"pretrain_steps": pretrain_steps, "offline_steps": offline_steps, "eval_every": eval_interval, "eval_episodes": eval_episodes,
            "log_every": log_interval, "batch_size": batch_size}


def reproduce(
    profile: ProfileName = "quick",
    methods: list[str] | None = None,
    domains: list[str] | None = None,
    tasks: list[str] | None = None,
    seeds: list[int] | None = None,
    source: Literal["official", "regenerated", "auto"] | None = None,
    dataset_dir: Path | None = None,
    online_steps: int | None = None,
    pretrain_steps: int | None = None,
    offline_steps: int | None = None,
    eval_interval: int | None = None,
    eval_episodes: int | None = None,
    log_interval: int | None = None,
    batch_size: int | None = None,
    assume: list[str] = [],  # noqa: B006
    studies: bool = True,
    closed_form: bool = True,
    backend: Literal["local", "ray"] = "local",
    workers: int | None = None,
    address: str | None = None,
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
    seeds_per_program: int = 8,
    retries: int = 2,
    reports: Path = Path("reports"),
    rerun_stale: bool = False,
    dry_run: bool = False,
    verbose: bool = False,
    print_commands: Path | None = None,
    wandb: bool = False,
    tensorboard: bool = False,
) -> None:
    """The main job: run a profile's matrix (finished runs are kept, interrupted ones resume, a
    failed run does not stop the others), then write the tables, the figures and REPORT.md.

    Args:
        profile: smoke (seconds, for tests), quick (CPU-sized, 18 min on 2 cores from an empty cache) or paper (the published protocol: 50 tasks x 8 seeds, official data).
        methods: Only these methods (default: the profile's).
        domains: Only the tasks of these domains (abbreviations as in the TRQAM table, e.g. scene p33, or names).
        tasks: These tasks instead of the profile's (full or short names, e.g. c2-task1).
        seeds: These seeds instead of the profile's.
        source: Data source (default: the profile's).
        dataset_dir: Directory of the official files.
        online_steps: Online fine-tuning steps after the offline phase (default: the profile's).
        pretrain_steps: BC pretraining steps (the `bc` method's whole run; default: the profile's, 300000 for paper). Recorded like every schedule flag below (seedSEED-pretrain_steps=N).
        offline_steps: Offline fine-tuning steps (default: the profile's). Like every schedule flag below, a non-default value is recorded in config.json and gets its own run directory (seedSEED-offline_steps=N).
        eval_interval: Gradient steps between evaluations (default: the profile's).
        eval_episodes: Evaluation episodes (default: the profile's, 50).
        log_interval: Gradient steps between metric rows (default: the profile's).
        batch_size: Batch size of every phase, BC pretraining included (default: the profile's, 256).
        assume: Choices the authors' code leaves open, NAME=VALUE (docs/PROTOCOL.md 'Assumptions'; e.g. sparse_reward=dense, trqam_kl_budget=0.5, bc_checkpoint=per-task). A non-default value is recorded in config.json and gets its own run directory (seedSEED-assume_NAME=VALUE).
        studies: Also run the profile's studies (the KL-budget sensitivity runs).
        closed_form: Compute the closed-form studies for the figures (stored under
            results/closed-form/; computed again only when trqam/ or the study code changed).
        backend: local (a pool of processes on this machine) or ray (a Ray cluster).
        workers: Local backend: programs side by side (default: one per core, at most one per 6 GiB of RAM).
        address: Ray backend: the cluster to join (e.g. auto, or ray://HOST:10001); default: start one here.
        cpus_per_run: Ray backend: CPUs requested per program.
        gpus_per_run: Ray backend: GPUs requested per program (e.g. 1, or 0.25 to pack four per GPU).
        seeds_per_program: Runs that differ only in their seed are trained side by side by one compiled program, this many at most (1: one process per run).
        retries: Ray backend: how often a program whose worker died (preemption, a lost node) is resubmitted; it resumes from its last checkpoint.
        reports: Where the tables, figures and REPORT.md go.
        rerun_stale: Also train again the runs of this result store finished at another code revision (they are kept and marked otherwise). Runs of another configuration or of another result store (committed runs, on a fresh clone) are always trained again; the old ones are moved under results/replaced/ and the report sets the new numbers beside them.
        verbose: With --dry-run: one line per run instead of one per domain and method.
        dry_run: Say, per domain and method (per run with --verbose), what would happen (kept, trained, trained again and why), which data is present or missing, and an estimate of the cost on this machine; then stop.
        wandb: Mirror every run's logs to Weights & Biases (as `train --wandb`).
        tensorboard: Mirror every run's logs to TensorBoard event files (as `train --tensorboard`).
        print_commands: Instead of training, write to this directory one `python -m bench train` command per program, a file per wave (BC checkpoints first), a SLURM array script and the sbatch lines to submit them (DIR/README.txt); then stop.
    """
    _compile_cache()
    import time

    from bench.config.profiles import get_profile
    from bench.training.pipeline import RESULTS_DIR
    from bench.training.sweep import (
        SweepSettings,
        failures_table,
        plan,
        prepare,
        sweep,
        write_index,
        write_record,
    )

    _given(methods=methods, domains=domains, tasks=tasks, seeds=seeds)
    began = time.perf_counter()
    chosen = get_profile(profile)
    if not (dry_run or print_commands is not None):  # before any training: the store and the reports writable
        from bench.files import check_writable

        check_writable(RESULTS_DIR, "the result store (TRQAM_BENCH_RESULTS)")
        check_writable(reports, "--reports")
    trackers = _trackers(wandb, tensorboard)
    from bench.training.trackers import check_available

    check_available(trackers)  # before any training
    runs = plan(chosen, methods=methods, domains=domains, tasks=tasks, seeds=seeds, source=source,
                dataset_dir=dataset_dir, online_steps=online_steps, studies=studies,
                schedule=_schedule(pretrain_steps, offline_steps, eval_interval, eval_episodes, log_interval, batch_size),
                assume=assume)
    selection = _selection(runs)
    data_problems = _large_data_problems(chosen, runs, source, dataset_dir)
    if print_commands is not None:
        from bench.training.sweep import write_commands

        for path in write_commands(runs, print_commands, seeds_per_program, trackers):
            print(f"wrote {path}")
        print((print_commands / "README.txt").read_text(), end="")
        return
    if dry_run:
        _dry_run(chosen, prepare(runs, rerun_stale=rerun_stale, dry_run=True), source, dataset_dir, data_problems,
                 RESULTS_DIR, rerun_stale, verbose)
        return
    if data_problems:  # before any training: one line for the first task without its data
        raise BenchError(next(iter(data_problems.values())))
    prepared = prepare(runs, rerun_stale=rerun_stale)
    for item in prepared:
        if item.replaced is not None:
            print(f"{item.run.run_dir()}: {item.before} ({'; '.join(item.reasons[:2])}): moved to {item.replaced}, "
                  "trained again", flush=True)
    settings = SweepSettings(backend=backend, workers=workers, address=address, cpus_per_run=cpus_per_run,
                             gpus_per_run=gpus_per_run, seeds_per_program=seeds_per_program, retries=retries,
                             trackers=trackers)
    print(f"{len(runs)} runs of profile {profile} ({backend} backend)", flush=True)
    outcomes = sweep(runs, settings)
    sweep_s = time.perf_counter() - began
    write_index(RESULTS_DIR)
    record = write_record(RESULTS_DIR, profile, selection, settings, outcomes, sweep_s)
    closed_began = time.perf_counter()
    if closed_form:
        from bench.reporting.closed_form import ensure

        ensure()
    closed_s = time.perf_counter() - closed_began
    if not any((r.run_dir() / "summary.json").exists() for r in runs):
        raise BenchError(f"no run of this invocation finished; see the logs above ({record})")
    path = _write_outputs(chosen, runs, selection, reports, outcomes, prepared, {"sweep": sweep_s, "closed_form": closed_s},
                          began, "reproduce")
    print(f"wrote {reports / 'tables' / profile}/, {reports / 'figures' / profile}/, {path}; sweep record {record}")
    failed = failures_table(outcomes)
    if failed:
        print("some runs failed (rerun the same command to retry them; finished runs are kept):\n" + failed,
              file=sys.stderr)
        sys.exit(1)


def _write_outputs(chosen, runs, selection: dict, reports: Path, outcomes, prepared, wall: dict[str, float],
                   began: float, command: str) -> Path:
    """The tables, figures and REPORT.md of exactly ``runs`` (the invocation's matrix), read and
    verified once (`bench.reporting.runset`); returns REPORT.md's path."""
    import time

    from bench.reporting import figures as figures_module
    from bench.reporting import report as report_module
    from bench.reporting import tables as tables_module
    from bench.reporting.runset import Scope
    from bench.reporting.runset import load as load_run_set
    from bench.training.pipeline import RESULTS_DIR

    profile = chosen.name
    runs_root = RESULTS_DIR / "runs" / profile
    outputs_began = time.perf_counter()
    run_set = load_run_set(runs_root, Scope.of([r.run_dir() for r in runs], _matrix(selection, len(runs))))
    tables_dir = reports / "tables" / profile
    tables_module.write(run_set, tables_dir, profile, latex=True)
    figure_paths = figures_module.write(run_set, reports / "figures" / profile, profile)
    if profile == "cpu-study":  # its curves beside the published ones, and STUDY.md
        from bench.reporting.study import write as write_study
        from bench.tasks import resolve_task

        study_task = resolve_task(chosen.tasks[0])
        for written in write_study(runs_root, reports / "cpu-study", study_task.name, study_task.domain,
                                   chosen.methods):
            print(f"wrote {written}")
    wall = {**wall, "outputs": time.perf_counter() - outputs_began, "total": time.perf_counter() - began}
    return report_module.write(
        reports / "REPORT.md", profile=chosen, command=" ".join([f"python -m bench {command}", *sys.argv[2:]]),
        selection=selection, outcomes=outcomes, run_set=run_set, tables_dir=tables_dir, figures=figure_paths,
        closed_dir=RESULTS_DIR / "closed-form", wall_s=wall, prepared=prepared)


def _selection(runs) -> dict:
    """The matrix of ``runs``: methods, tasks, seeds and variants."""
    return {"methods": list(dict.fromkeys(r.method for r in runs if not r.overrides)),
            "tasks": list(dict.fromkeys(r.task for r in runs)),
            "seeds": sorted({r.seed for r in runs}),
            "variants": sorted({r.run_dir().name.partition("-")[2] for r in runs} - {""})}


def report(
    profile: ProfileName = "quick",
    methods: list[str] | None = None,
    domains: list[str] | None = None,
    tasks: list[str] | None = None,
    seeds: list[int] | None = None,
    studies: bool = True,
    assume: list[str] = [],  # noqa: B006
    reports: Path = Path("reports"),
) -> None:
    """Write the tables, figures and REPORT.md of the stored runs of a profile's matrix, training
    nothing: the last step of `reproduce` alone (e.g. after the runs were trained elsewhere).

    Args:
        profile: Whose runs and matrix.
        methods: Only these methods (default: the profile's).
        domains: Only the tasks of these domains.
        tasks: These tasks instead of the profile's.
        seeds: These seeds instead of the profile's.
        studies: Also the profile's study runs.
        assume: The runs made under these assumptions, NAME=VALUE (as given to reproduce).
        reports: Where the tables, figures and REPORT.md go.
    """
    import time

    from bench.config.profiles import get_profile
    from bench.training.sweep import plan

    _given(methods=methods, domains=domains, tasks=tasks, seeds=seeds)
    began = time.perf_counter()
    chosen = get_profile(profile)
    runs = plan(chosen, methods=methods, domains=domains, tasks=tasks, seeds=seeds, studies=studies, assume=assume)
    path = _write_outputs(chosen, runs, _selection(runs), reports, [], None, {"sweep": 0.0, "closed_form": 0.0},
                          began, "report")
    print(f"wrote {reports / 'tables' / profile}/, {reports / 'figures' / profile}/, {path}")


def _matrix(selection: dict, runs: int) -> str:
    """The invocation's matrix in words: what its tables, figures and report cover."""
    variants = selection.get("variants") or []
    return (f"this invocation's matrix, {runs} runs: methods {', '.join(selection['methods'])}; tasks "
            f"{', '.join(selection['tasks'])}; seeds {', '.join(map(str, selection['seeds']))}; variants "
            f"{', '.join(['default', *variants])}")


def _dry_run(profile, prepared, source, dataset_dir, data_problems: dict[str, str], results_dir: Path,
             rerun_stale: bool, verbose: bool = False) -> None:
    """What `reproduce` would do, run by run, with the data and an estimate of the cost."""
    import json
    import statistics

    from bench.training.sweep import redo_states

    redo = redo_states(rerun_stale)
    actions = {"missing": "train", "unfinished": "resume", "current": "keep (finished here, at this revision)",
               "other-revision": "keep (finished at another revision; --rerun-stale trains it again)",
               "imported": "keep (imported, its method's code unchanged)"}
    from collections import Counter, defaultdict

    from bench.tasks import resolve_task

    to_train = []
    groups: dict[tuple[str, str], Counter] = defaultdict(Counter)
    why: dict[tuple[str, str], Counter] = defaultdict(Counter)
    shape: dict[tuple[str, str], tuple[set, set, set]] = defaultdict(lambda: (set(), set(), set()))
    for item in prepared:
        run = item.run
        action = f"train again ({item.before})" if item.before in redo else actions[item.before]
        if verbose:
            print(f"{run.method:8s} {run.task:45s} seed {run.seed} {' '.join(run.overrides)} -> {action}"
                  + (f": {'; '.join(item.reasons[:2])}" if item.reasons else ""))
        key = (resolve_task(run.task).domain, run.method)
        groups[key][action] += 1
        if item.reasons:
            why[key][item.reasons[0]] += 1
        shape[key][0].add(run.task)
        shape[key][1].add(run.seed)
        shape[key][2].add(run.overrides)
        if item.before in redo or item.before in ("missing", "unfinished"):
            to_train.append(run)
    if not verbose:  # one line per domain x method (--verbose: one per run)
        for (domain, method), counts in groups.items():
            tasks, seeds, settings = shape[(domain, method)]
            extra = f", {len(settings)} settings" if len(settings) > 1 else ""
            print(f"{domain:32s} {method:8s} {sum(counts.values()):4d} runs (over {len(tasks)} tasks, {len(seeds)} seeds"
                  f"{extra}): " + ", ".join(f"{n} {action}" for action, n in counts.most_common())
                  + "".join(f"; {n} of them: {reason}" for reason, n in why[(domain, method)].most_common(2)))
    seen: set[str] = set()
    for task in dict.fromkeys(item.run.task for item in prepared):
        dataset = resolve_task(task).dataset
        problem = data_problems.get(task)
        if not verbose and dataset in seen and problem is None:
            continue  # the tasks of a domain share its data: once per dataset
        seen.add(dataset)
        print(f"data {task if verbose else dataset}: {problem or _data_status(profile, task, source, dataset_dir)}")
    # Cost: the median wall time of the stored finished runs of each method at this profile.
    seconds: dict[str, list[float]] = {}
    for path in (results_dir / "runs" / profile.name).glob("*/*/seed*/summary.json"):
        summary = json.loads(path.read_text())
        share = len(summary.get("seeds_in_program") or [0]) or 1
        seconds.setdefault(summary["method"], []).append(float(summary.get("wall_time_s", 0.0)) / share)
    known = [statistics.median(seconds[r.method]) for r in to_train if r.method in seconds]
    unknown = sorted({r.method for r in to_train if r.method not in seconds})
    from bench.reporting import costs

    projected = costs.priced(to_train)  # paper and qam-paper: the measured table of `nox -s paper-smoke`
    estimate = (f"estimated {sum(known) / 3600:.1f} h of program time for {len(known)} of them, from the stored "
                "runs' own wall times" if known else "no estimate from stored runs" if projected else "no cost estimate")
    print(f"{len(prepared)} runs: {len(to_train)} to train, {len(prepared) - len(to_train)} kept; {estimate}"
          + (f" (no stored run of {', '.join(unknown)} at this profile to estimate from)" if unknown and not projected
             else "") + "; programs run side by side on several workers.")
    if projected is not None:
        print(projected[0].upper() + projected[1:])


def _data_status(profile, task_name: str, source, dataset_dir) -> str:
    """Whether ``task_name``'s data is here, without downloading or regenerating anything."""
    from bench.data import datagen
    from bench.data.loading import DEFAULT_OFFICIAL_DIR, large_dataset, regenerated_dir
    from bench.tasks import resolve_task

    task = resolve_task(task_name)
    source = source or profile.source
    directory = Path(dataset_dir).expanduser() if dataset_dir else DEFAULT_OFFICIAL_DIR
    spec = large_dataset(task, profile.large_datasets)
    if spec is not None and source != "regenerated":  # missing shards are reported by _large_data_problems
        return (f"{spec.shards} shards and a validation file present in {directory / spec.folder} (sha256 of each "
                "recorded, once per file)")
    official = (directory / f"{task.dataset}.npz").is_file() and (directory / f"{task.dataset}-val.npz").is_file()
    if source != "regenerated" and official:
        return f"files present in {directory}"
    cached = regenerated_dir(task.dataset, profile.regeneration)
    if source == "official":
        return f"missing from {directory}: would be downloaded (or the run fails with the files to put there)"
    if datagen.read_manifest(cached, task.dataset) is not None:
        return f"regenerated data cached in {cached}"
    return (f"missing: would be regenerated into {cached} ({profile.regeneration.episodes} episodes of "
            f"{profile.regeneration.episode_length} steps)")


def _large_data_problems(profile, runs, source, dataset_dir) -> dict[str, str]:
    """Per task of ``runs`` whose protocol needs a 10M/100M set that is not there: why."""
    from bench.data.loading import large_dataset, large_dataset_files
    from bench.tasks import resolve_task

    if profile.large_datasets == "none" or (source or profile.source) == "regenerated":
        return {}
    problems = {}
    for name in dict.fromkeys(run.task for run in runs):
        task = resolve_task(name)
        spec = large_dataset(task, profile.large_datasets)
        if spec is None:
            continue
        try:
            large_dataset_files(task, spec, dataset_dir)
        except BenchError as exc:
            problems[name] = str(exc)
    return problems


def _runs_and_out(profile: str, runs: Path | None, out: Path | None, kind: str) -> tuple[Path, Path]:
    """The runs directory (default results/runs/PROFILE) and output directory (reports/KIND/PROFILE)."""
    from bench.training.pipeline import RESULTS_DIR

    return runs or RESULTS_DIR / "runs" / profile, out or Path("reports") / kind / profile


def figures(
    profile: ProfileName = "quick",
    runs: Path | None = None,
    out: Path | None = None,
) -> None:
    """Redraw every figure (PNG and PDF) from the stored results alone.

    Args:
        profile: Whose runs: results/runs/PROFILE.
        runs: Another runs directory (default results/runs/PROFILE).
        out: Output directory (default reports/figures/PROFILE).
    """
    from bench.reporting.figures import write
    from bench.reporting.runset import load

    runs_root, out_dir = _runs_and_out(profile, runs, out, "figures")
    paths = write(load(runs_root), out_dir, profile)
    print("wrote " + ", ".join(str(p) for p in paths))


def regress(
    bands: Path | None = None,
    work: Path = Path(".regress"),
    workers: int | None = None,
) -> None:
    """The CI regression gate: train the pinned runs fresh and compare their success with the bands.

    Args:
        bands: The bands file (default results/regress/bands.csv): method, task, profile, seed, min_success, measured, source.
        work: Work directory for the runs (emptied first).
        workers: Runs side by side.
    """
    _compile_cache()
    from bench.reporting.regress import BANDS, check

    passed, table = check(bands or BANDS, work, workers)
    print(table)
    if not passed:
        print("regression gate FAILED: a run ended below its band or did not finish (table above)", file=sys.stderr)
        sys.exit(1)
    print("regression gate passed")


def curves(
    runs: Annotated[list[Path], tyro.conf.Positional],
    out: Path = Path("reports/curves"),
) -> None:
    """Draw offline-to-online learning curves of finished runs: OUT.png, OUT.pdf and a table OUT.md.

    Args:
        runs: Run directories (e.g. results/runs/quick/*/cube-single-play-singletask-task1-v0/seed0-online10000).
        out: Output path without suffix.
    """
    from bench.reporting.curves import write

    report, figures = write(runs, out)
    print(f"wrote {report}, " + ", ".join(str(f) for f in figures))


def tables(
    profile: ProfileName = "quick",
    runs: Path | None = None,
    out: Path | None = None,
    latex: bool = False,
) -> None:
    """Tabulate stored runs (per task, per domain, overall) beside the TRQAM and QAM papers' numbers.

    Args:
        profile: Whose runs: results/runs/PROFILE.
        runs: Another runs directory (default results/runs/PROFILE).
        out: Output directory (default reports/tables/PROFILE): tables.md, tasks.csv, domains.csv, overall.csv,
            aggregates.csv, improvement.csv.
        latex: Also write the main table (offline success per domain, best in bold) as main_table.tex.
    """
    from bench.reporting.runset import load
    from bench.reporting.tables import write

    runs_root, out_dir = _runs_and_out(profile, runs, out, "tables")
    paths = write(load(runs_root), out_dir, profile, latex=latex)
    print("wrote " + ", ".join(str(p) for p in paths))


def study(
    profile: ProfileName = "cpu-study",
    runs: Path | None = None,
    out: Path = Path("reports") / "cpu-study",
    readme: Path | None = None,
    archived: bool = False,
) -> None:
    """The CPU study's learning curves, table and STUDY.md beside the published numbers (finished
    runs, and the evaluations so far of runs still training).

    Args:
        profile: The study's profile: its task is the one drawn.
        runs: Runs directory (default results/runs/PROFILE).
        out: Output directory: learning_curves.png/.pdf, study_table.csv/.md, STUDY.md.
        readme: Also rewrite this file's 'Where it stands' line from the runs (e.g. docs/results/cpu-study.md).
        archived: The runs are set aside under results/archive/ (pass them with --runs): an unfinished run is
            stopped, not training, and the profile's other methods are not listed as to start.
    """
    from bench.config.profiles import get_profile
    from bench.reporting.study import write
    from bench.tasks import resolve_task
    from bench.training.pipeline import RESULTS_DIR

    if archived and (runs is None or readme is not None):
        raise BenchError("--archived needs --runs DIR (the archived runs) and no --readme (the documentation quotes the "
                         "study that goes on)")
    chosen = get_profile(profile)
    task = resolve_task(chosen.tasks[0])
    paths = write(runs or RESULTS_DIR / "runs" / profile, out, task.name, task.domain,
                  () if archived else chosen.methods, readme, archived)
    print("wrote " + ", ".join(str(p) for p in paths))


def tasks() -> None:
    """List the 50 benchmark tasks by domain."""
    from bench.tasks import DOMAINS

    for d in DOMAINS:
        print(f"{d.abbr:6s} {d.name:30s} h={d.chunk_len} tasks: {d.name}-singletask-task{{1..5}}-v0")


def methods() -> None:
    """List the methods: CLI name, pipeline (BC pretraining then fine-tuning, or from scratch) and paper."""
    from bench.config.methods import PLANNED, get_method, method_names

    for name in method_names():
        m = get_method(name)
        where = f" [{m.source['package']} {m.source['version']}]" if m.source else ""
        print(f"{m.name:8s} {m.pipeline:10s} {m.paper}{where}")
    for name, why in PLANNED.items():
        print(f"{name:8s} {'-':10s} not yet: {why}")


def results(action: Annotated[Literal["export", "import"], tyro.conf.Positional],
            bundle: Annotated[Path, tyro.conf.Positional], profile: str | None = None,
            methods: list[str] | None = None, checkpoints: bool = False) -> None:
    """Carry finished runs between result stores (bench/training/bundle.py): `export BUNDLE` writes the
    store's finished, intact runs (records, configs, provenance; checkpoints only with --checkpoints)
    into one checksummed file; `import BUNDLE` verifies every file and adds the runs to this store,
    labelled with their origin. `reproduce` then reuses an imported run whose configuration and
    method code are today's, and trains only the rest.

    Args:
        action: export or import.
        bundle: The bundle file (.tar.gz).
        profile: export: only this profile's runs.
        methods: export: only these methods' runs.
        checkpoints: export: include the checkpoints (large).
    """
    from bench.training import bundle as bundles
    from bench.training.pipeline import RESULTS_DIR
    from bench.training.sweep import write_index

    if action == "export":
        manifest = bundles.export(RESULTS_DIR, bundle, profile=profile, methods=methods, checkpoints=checkpoints)
        print(f"exported {len(manifest['runs'])} runs ({len(manifest['files'])} files) of {RESULTS_DIR} to {bundle}")
        return
    if profile or methods or checkpoints:
        raise BenchError("results import takes only the bundle: --profile, --methods and --checkpoints are for export")
    added = bundles.import_bundle(RESULTS_DIR, bundle)
    write_index(RESULTS_DIR)
    print(f"imported {len(added)} runs into {RESULTS_DIR} (runs already there with the same files are skipped); "
          f"index: {RESULTS_DIR / 'index.csv'}")


def new_method(name: Annotated[str, tyro.conf.Positional], dir: Path) -> None:  # noqa: A002
    """Write the package skeleton of a method of your own (bench/scaffold.py): its agent on the shared
    FlowQAgent hooks, its configuration, a mechanism test and the entry point that registers it.

    Args:
        name: The method's name, e.g. my-method (lower case, digits, hyphens).
        dir: An empty or new directory for the package.
    """
    from bench import scaffold

    written = scaffold.write(name, dir)
    print("\n".join(str(p) for p in written))
    print(f"next: pip install -e {dir} && (cd {dir} && python -m pytest tests); then --method {name} works in "
          "train and reproduce")


LIST_FLAGS = ("--set", "--assume", "--seeds", "--methods", "--tasks", "--domains")


def _repeated_list_flag(args: list[str]) -> None:
    """One line for a list flag given twice (``--set a=1 --set b=2``): the parser would keep only
    the last, silently dropping the first values."""
    for flag in LIST_FLAGS:
        given = [a for a in args if a == flag or a.startswith(flag + "=")]
        if len(given) > 1:
            raise BenchError(f"{flag} was given {len(given)} times; only the last would count: give every value "
                             f"after one {flag} (e.g. {flag} A B)")


def _compile_cache() -> None:
    """JAX's persistent compilation cache (bench/training/compile_cache.py; TRQAM_BENCH_COMPILE_CACHE=off
    turns it off): programs load what another program already compiled."""
    from bench.training import compile_cache

    compile_cache.enable()


def commands() -> dict:
    """The subcommands, by name (the documentation's CLI reference is generated from these)."""
    return {"datagen": datagen, "train": train, "reproduce": reproduce, "report": report, "figures": figures,
            "regress": regress, "curves": curves, "tables": tables, "study": study, "tasks": tasks,
            "methods": methods, "new-method": new_method, "results": results}


def main(argv: list[str] | None = None) -> None:
    try:
        _repeated_list_flag(sys.argv[1:] if argv is None else list(argv))
        tyro.extras.subcommand_cli_from_dict(
            commands(),
            args=argv,
            description="trqam-bench: TRQAM, QAM and baselines on OGBench.",
        )
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # a read-only or full file system: one line, nothing lost (atomic writes)
        print(f"error: {file_system_problem(exc)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        sys.exit(130)
