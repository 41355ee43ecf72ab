"""Sweeps: a profile's matrix of runs, executed on this machine or on a Ray cluster.

Runs that differ only in their seed are trained side by side by one compiled program
(`bench.training.compiled`), up to ``seeds_per_program`` of them (in an online phase each steps its
own environment).
Every program is one ``python -m bench train`` process (the run function of
`bench.training.pipeline`, with its checkpoints and resume), so a crash, a NaN or an out-of-memory
kill in one program cannot take the others down, and its log (``train.log`` in each of its
run directories) says why. Both backends execute the same `execute` function; they differ
only in who starts it:

* ``local``: a pool of ``workers`` processes on this machine;
* ``ray``: one Ray task per program (``--address`` joins an existing cluster; each task asks
  for ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs). Workers must see this repository and
  the results directory at the same path (a shared file system), as on a typical cluster.

A sweep is idempotent: finished runs (``summary.json`` present) are skipped, interrupted ones
resume from their last checkpoint. Runs that would pretrain the same BC checkpoint are ordered
so that one of them (the ``bc`` run, where the matrix has one) trains it and the others reuse it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from bench.config import assumptions
from bench.config.methods import get_method
from bench.config.profiles import Profile
from bench.errors import BenchError, suggest
from bench.files import REPO
from bench.tasks import DOMAINS_BY_ABBR, DOMAINS_BY_NAME, resolve_task
from bench.training import bundle
from bench.training.pipeline import SCHEDULE_FLAGS, RunConfig
from bench.training.runstore import (
    DamagedRecord,
    csv_text,
    data_identity,
    read_run,
    write_atomic,
    write_json,
)

Backend = Literal["local", "ray"]
LOG_NAME = "train.log"
LOG_TAIL_LINES = 15


# ---- the matrix --------------------------------------------------------------------------
def _domain_of(task_name: str) -> str:
    return resolve_task(task_name).domain


def resolve_domains(names: Sequence[str], available: Iterable[str]) -> set[str]:
    """Domain names (``scene-play``) from abbreviations (``scene``, ``p33``) or names; a name
    outside the ten benchmark domains is accepted when one of ``available`` tasks has it."""
    known = {**{a: d.name for a, d in DOMAINS_BY_ABBR.items()}, **{n: n for n in DOMAINS_BY_NAME},
             **{_domain_of(t): _domain_of(t) for t in available}}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BenchError(f"unknown domain '{unknown[0]}'{suggest(unknown[0], known)}; "
                         f"use an abbreviation ({', '.join(DOMAINS_BY_ABBR)}) or a domain name")
    return {known[n] for n in names}


def plan(profile: Profile, *, methods: Sequence[str] | None = None, domains: Sequence[str] | None = None,
         tasks: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
         source: str | None = None, dataset_dir: Path | None = None, online_steps: int | None = None,
         studies: bool = True, schedule: dict[str, int | None] | None = None,
         assume: Sequence[str] = ()) -> list[RunConfig]:
    """The runs of ``profile``'s matrix (methods x tasks x seeds, then its studies), narrowed:
    ``methods``, ``tasks`` and ``seeds`` replace the profile's lists; ``domains`` keeps the
    tasks of those domains (from ``tasks`` if given, else the profile's). ``assume``: the
    assumptions every run makes (`bench.config.assumptions`; also which tasks the KL study has)."""
    for name in methods or ():
        get_method(name)  # a clear error for an unknown name
    chosen_methods = tuple(methods) if methods else profile.methods
    chosen_tasks = [resolve_task(t).name for t in (tasks or profile.tasks)]
    if domains:
        wanted = resolve_domains(domains, chosen_tasks)
        chosen_tasks = [t for t in chosen_tasks if _domain_of(t) in wanted]
        if not chosen_tasks:
            raise BenchError(f"none of the tasks of profile '{profile.name}' is in domain(s) {', '.join(domains)}; "
                             "pass --tasks to choose tasks outside the profile")
    chosen_seeds = tuple(seeds) if seeds else profile.seeds

    assume = assumptions.parse(assume, profile)
    chosen = assumptions.resolve(profile, assume)

    def config(method, task, seed, overrides=()):
        return RunConfig(method=method, task=task, profile=profile.name, seed=seed, source=source,
                         dataset_dir=dataset_dir, online_steps=online_steps, overrides=tuple(overrides),
                         init=profile.init, assume=assume, **(schedule or {}))

    runs = [config(m, t, s) for m in chosen_methods for t in chosen_tasks for s in chosen_seeds]
    if studies:
        for study in profile.studies:
            if study.method not in chosen_methods:
                continue
            study_tasks = [t for t in (resolve_task(x).name for x in assumptions.study_tasks(study, profile, chosen))
                           if t in chosen_tasks]
            study_seeds = [s for s in study.seeds if s in chosen_seeds]
            runs += [config(study.method, t, s, o) for o in study.overrides() for t in study_tasks for s in study_seeds]
    return list(dict.fromkeys(runs))  # each run once (narrowing can list one twice), in order


def waves(runs: Sequence[RunConfig], pretrains: Callable[[RunConfig], bool] = lambda run: True
          ) -> list[list[RunConfig]]:
    """Two waves: first one run per BC checkpoint needed (the ``bc`` run where there is one),
    then the rest, which reuse those checkpoints instead of pretraining them side by side.
    A fine-tuning run that will not pretrain (``pretrains`` false: its BC checkpoint is cached,
    or it resumes past pretraining) produces nothing for the others."""
    producers: dict[tuple, RunConfig] = {}
    for run in runs:
        if _trains_bc_checkpoint(run):
            producers[_bc_key(run)] = run
    for run in runs:
        if _fine_tunes_bc(run) and pretrains(run):
            producers.setdefault(_bc_key(run), run)
    first = [r for r in runs if r in producers.values()]
    return [w for w in (first, [r for r in runs if r not in first]) if w]


@dataclass(frozen=True)
class ProgramPlan:
    """The sweep's programs and what each waits for: ``needs[i]`` holds the programs that
    train the BC checkpoints program ``i`` fine-tunes from. There is no barrier between waves:
    a program starts as soon as its own producers have ended."""

    programs: list[list[RunConfig]]
    needs: dict[int, set[int]]
    producers: int = 0  # the first ``producers`` programs train the BC checkpoints (wave 1)

    def waves(self) -> list[list[list[RunConfig]]]:
        """The programs as a cluster submits them: those that train BC checkpoints, then the
        rest (`write_commands`), each wave non-empty."""
        return [w for w in (self.programs[:self.producers], self.programs[self.producers:]) if w]


def program_plan(runs: Sequence[RunConfig], seeds_per_program: int,
                 pretrains: Callable[[RunConfig], bool] = lambda run: True, lanes: int = 1) -> ProgramPlan:
    """The programs and what each waits for: a fine-tuning run waits for the program that
    trains its BC checkpoint only when it would pretrain itself (``pretrains``; a cluster's
    printed commands assume it always does). ``lanes``: programs that run at once; while the
    BC producers are fewer, they are split seed by seed (`fill_lanes`)."""
    pretrains = functools.cache(pretrains)
    parts = waves(runs, pretrains)
    first = fill_lanes(programs(parts[0], seeds_per_program), lanes) if len(parts) > 1 else []
    rest = programs(parts[-1], seeds_per_program) if parts else []
    producer_of = {}
    for index, job in enumerate(first):
        for run in job:
            producer_of.setdefault(_bc_key(run), index)
    needs: dict[int, set[int]] = {}
    for offset, job in enumerate(rest):
        waiting = [r for r in job if _fine_tunes_bc(r) and pretrains(r)]
        needs[len(first) + offset] = {producer_of[_bc_key(r)] for r in waiting if _bc_key(r) in producer_of}
    return ProgramPlan([*first, *rest], needs, producers=len(first))


def bc_producers(runs: Sequence[RunConfig], out_dir: Path) -> list[RunConfig]:
    """A ``bc`` run under ``out_dir`` for each BC checkpoint that two or more fine-tuning runs of
    ``runs`` start from and that no ``bc`` run of ``runs`` trains. Without one, the first of those
    runs pretrains the checkpoint and the others wait for its whole program (pretraining and
    fine-tuning, `program_plan`); with it they wait for the pretraining only and then fine-tune
    side by side. The checkpoint is the same either way (`bench.training.pipeline`'s BC cache)."""
    trained = {_bc_key(r) for r in runs if _trains_bc_checkpoint(r)}
    sharing = Counter(_bc_key(r) for r in runs if _fine_tunes_bc(r))
    made: dict[tuple, RunConfig] = {}
    for run in runs:
        key = _bc_key(run)
        if _fine_tunes_bc(run) and sharing[key] > 1 and key not in trained and key not in made:
            seed = run.phase_seed("pretrain")
            made[key] = RunConfig(method="bc", task=run.task, profile=run.profile, seed=seed, source=run.source,
                                  dataset_dir=run.dataset_dir, batch_size=run.batch_size,
                                  out=out_dir / "bc" / resolve_task(run.task).name / f"seed{seed}")
    return list(made.values())


def _trains_bc_checkpoint(run: RunConfig) -> bool:
    """A ``bc`` run at the profile's settings: the one whose checkpoint fine-tuning runs reuse."""
    return get_method(run.method).pipeline == "bc" and not run.overrides


def _fine_tunes_bc(run: RunConfig) -> bool:
    return get_method(run.method).pipeline == "fine-tune" and run.init == "bc"


def pretrains(run: RunConfig) -> bool:
    """Whether ``run``'s program would pretrain BC (`bench.training.pipeline.Run.pretrains`)."""
    from bench.training.pipeline import Run

    return Run(run, progress=False).pretrains()


def _bc_key(run: RunConfig) -> tuple:
    return (run.task, run.profile, run.phase_seed("pretrain"), run.source, run.dataset_dir, run.batch_size)


# ---- what the store holds -------------------------------------------------------------------
# States of `bench.training.pipeline.StoredRun` that `reproduce` always trains again (moving the old run
# aside): another configuration, or a run of another result store (a fresh clone's committed
# runs are what its new numbers are set beside, not its answer). ``--rerun-stale`` adds the
# runs of this store finished at another code revision.
REDO = ("stale", "foreign", "finished-without-config", "damaged")


@dataclass(frozen=True)
class Prepared:
    run: RunConfig
    before: str  # the StoredRun state found
    reasons: tuple[str, ...]
    revision: str | None  # of the run found there
    replaced: Path | None  # where the run found there was moved (when it is trained again)


def redo_states(rerun_stale: bool) -> set[str]:
    """The stored-run states `reproduce` trains again (`REDO`, plus other-revision runs with
    ``--rerun-stale``)."""
    return set(REDO) | ({"other-revision"} if rerun_stale else set())


def stored_state(run: RunConfig):
    """``run``'s `bench.training.pipeline.StoredRun` (what its directory holds against this code)."""
    from bench.training.pipeline import Run

    owner = Run(run, progress=False)
    return owner.stored(owner.seeds[0])


def prepare(runs: Sequence[RunConfig], *, rerun_stale: bool = False, dry_run: bool = False) -> list[Prepared]:
    """Classify every run's directory and, unless ``dry_run``, move aside those to train again
    (`REDO`, and other-revision runs with ``rerun_stale``), so that the sweep trains them in
    place and the old ones stay readable for the report."""
    from bench.training.pipeline import set_aside

    redo = redo_states(rerun_stale)
    prepared = []
    for run in runs:
        stored = stored_state(run)
        replaced = None
        if stored.state in redo and not dry_run:
            replaced = set_aside(stored.directory)
        prepared.append(Prepared(run, stored.state, stored.reasons, stored.revision, replaced))
    return prepared


# ---- one run -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    run_dir: str
    method: str
    task: str
    seed: int
    overrides: tuple[str, ...]
    # skipped: finished (or diverged) before this sweep; diverged: a seed whose training became
    # non-finite, recorded as a result (success 0), never retried
    status: Literal["finished", "diverged", "skipped", "failed"]
    seconds: float
    host: str
    log: str
    error: str = ""  # the log's last lines, for a failed run


def programs(runs: Sequence[RunConfig], seeds_per_program: int) -> list[list[RunConfig]]:
    """The runs grouped into programs: runs equal in all but their seed, at most
    ``seeds_per_program`` per program, in the order of their first run."""
    groups: dict[tuple, list[RunConfig]] = {}
    for run in runs:
        alone = seeds_per_program <= 1
        key = (dataclasses.replace(run, seed=0), run.seed if alone else None)  # runs with their own --out: alone
        groups.setdefault(key, []).append(run)
    size = max(1, seeds_per_program)
    return [group[i:i + size] for group in groups.values() for i in range(0, len(group), size)]


def fill_lanes(jobs: list[list[RunConfig]], lanes: int) -> list[list[RunConfig]]:
    """``jobs`` with the largest program halved (by seed) until there are ``lanes`` programs or
    each holds one seed. For the BC producers: every other program waits for them, so a lane left
    idle beside them is time lost on the whole sweep (the quick job's BC program trained two seeds
    on one of two cores), while splitting costs one more compilation (BC's takes about 2 s)."""
    jobs = [list(job) for job in jobs]
    while len(jobs) < lanes and any(len(job) > 1 for job in jobs):
        largest = max(range(len(jobs)), key=lambda k: len(jobs[k]))
        job = jobs[largest]
        jobs[largest:largest + 1] = [job[:len(job) // 2], job[len(job) // 2:]]
    return jobs


def train_command(runs: Sequence[RunConfig], trackers: Sequence[str] = ()) -> list[str]:
    """The ``python -m bench train`` command of one program (runs equal in all but their seed),
    mirroring its logs to ``trackers`` (`bench.training.trackers`)."""
    run = runs[0]
    seeds = ["--seed", str(run.seed)] if len(runs) == 1 else ["--seeds", *(str(r.seed) for r in runs)]
    command = [sys.executable, "-m", "bench", "train", "--method", run.method, "--task", run.task,
               "--profile", run.profile, *seeds, "--init", run.init]
    if run.source is not None:
        command += ["--source", run.source]
    if run.dataset_dir is not None:
        command += ["--dataset-dir", str(run.dataset_dir)]
    if run.out is not None:
        command += ["--out", str(run.out)]
    if run.bc_seed is not None:
        command += ["--bc-seed", str(run.bc_seed)]
    if run.online_steps is not None:
        command += ["--online-steps", str(run.online_steps)]
    for name, value in run.schedule_changes().items():
        command += [f"--{SCHEDULE_FLAGS[name]}", str(value)]
    if run.overrides:
        command += ["--set", *run.overrides]
    if run.assume:
        command += ["--assume", *run.assume]
    return command + [f"--{name}" for name in trackers]


SLURM_SCRIPT = """#!/usr/bin/env bash
# One array task per line of a commands file: sbatch --array=1-N%M {script} WAVE_FILE
# (written by `python -m bench reproduce --print-commands DIR`; see DIR/README.txt).
#SBATCH --job-name=trqam-bench
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail
cd {repo}
line=$(sed -n "${{SLURM_ARRAY_TASK_ID}}p" "$1")
echo "$line"
eval "$line"
"""


def write_commands(runs: Sequence[RunConfig], out_dir: Path, seeds_per_program: int, trackers: Sequence[str] = ()
                   ) -> list[Path]:
    """One ``python -m bench train`` command per program, a file per wave (``wave1.txt``: the
    programs that produce BC checkpoints; ``wave2.txt``: the rest), a SLURM array script that
    runs line ``$SLURM_ARRAY_TASK_ID`` of a wave file, and a README with the two ``sbatch``
    lines (the second waits for the first). Every command is idempotent: a finished run is
    kept, an interrupted one resumes, so a preempted or repeated array task is harmless."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    counts = []
    for number, wave in enumerate(program_plan(runs, seeds_per_program).waves(), start=1):
        lines = [shlex.join(["python", *train_command(job, trackers)[1:]]) for job in wave]
        path = out_dir / f"wave{number}.txt"
        write_atomic(path, "\n".join(lines) + "\n")
        paths.append(path)
        counts.append(len(lines))
    script = out_dir / "slurm_array.sh"
    write_atomic(script, SLURM_SCRIPT.format(script=script.name, repo=shlex.quote(str(REPO))))
    script.chmod(0o755)
    submit = [f"first=$(sbatch --parsable --array=1-{counts[0]} {script} {paths[0]})"] if counts else []
    if len(counts) > 1:
        submit.append(f"sbatch --dependency=afterok:$first --array=1-{counts[1]} {script} {paths[1]}")
    readme = out_dir / "README.txt"
    write_atomic(readme, "\n".join([
        f"{sum(counts)} programs ({len(runs)} runs) in {len(counts)} wave(s): wave 1 trains the BC checkpoints that "
        "wave 2 fine-tunes from.",
        "Each line of a wave file is one program; run them in any order within a wave, on any node that sees this "
        "repository, the result store (TRQAM_BENCH_RESULTS) and the cache (TRQAM_BENCH_CACHE) on a shared file "
        "system. Add your cluster's #SBATCH options (partition, --gres=gpu:1, --cpus-per-task, --time) to "
        f"{script.name}, activate the environment in it, then:", "", *submit, "",
        f"Afterwards, on any node: python -m bench tables --profile {runs[0].profile} && python -m bench figures "
        f"--profile {runs[0].profile}",
        ""]))
    return [*paths, script, readme]


GPU_HEADROOM = 0.9  # of a shared GPU's memory, what the programs on it may take together


def gpu_share_environment(gpus_per_run: float) -> dict[str, str]:
    """The environment of a program that holds ``gpus_per_run`` of one GPU: JAX preallocates
    75% of a GPU by default, so four programs at 0.25 each would ask for three GPUs' worth.
    A fractional share gets that share of 90% of the memory; a whole GPU keeps JAX's default."""
    if not 0 < gpus_per_run < 1:
        return {}
    return {"XLA_PYTHON_CLIENT_MEM_FRACTION": f"{GPU_HEADROOM * gpus_per_run:.3f}"}


def execute(runs: Sequence[RunConfig], env: dict[str, str] | None = None, trackers: Sequence[str] = ()
            ) -> list[Outcome]:
    """Run (or resume, or skip) the runs of one program in their own process (its environment
    this one's plus ``env``, its logs mirrored to ``trackers``); never raises for a failed run. The process's output goes to
    ``train.log`` in every one of its run directories."""
    def outcome(run: RunConfig, status, seconds=0.0, error=""):
        directory = run.run_dir()
        return Outcome(run_dir=str(directory), method=run.method, task=run.task, seed=run.seed,
                       overrides=run.overrides, status=status, seconds=seconds, host=platform.node(),
                       log=str(directory / LOG_NAME), error=error)

    finished = [r for r in runs if (r.run_dir() / "summary.json").exists()]
    pending = [r for r in runs if r not in finished]
    outcomes = [outcome(r, "skipped") for r in finished]
    if not pending:
        return outcomes
    command = train_command(pending, trackers)
    began = time.perf_counter()
    with contextlib.ExitStack() as stack:
        logs = []
        for run in pending:
            run.run_dir().mkdir(parents=True, exist_ok=True)
            logs.append(stack.enter_context(open(run.run_dir() / LOG_NAME, "a")))
        header = f"\n# {datetime.now(UTC).isoformat(timespec='seconds')} on {platform.node()}: {' '.join(command[1:])}\n"
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   errors="replace", env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        for line in itertools.chain([header], process.stdout):
            for log in logs:
                log.write(line)
                log.flush()
        code = process.wait()
    seconds = round(time.perf_counter() - began, 1)
    for run in pending:
        if code == 0 and (run.run_dir() / "summary.json").exists():
            status = json.loads((run.run_dir() / "summary.json").read_text()).get("status", "finished")
            outcomes.append(outcome(run, "diverged" if status == "diverged" else "finished", seconds))
        else:
            tail = (run.run_dir() / LOG_NAME).read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            outcomes.append(outcome(run, "failed", seconds, f"exit code {code}\n" + "\n".join(tail)))
    return outcomes


# ---- backends ----------------------------------------------------------------------------
class _Dependencies:
    """Which programs of a `ProgramPlan` may start: those whose producers have all ended."""

    def __init__(self, plan: ProgramPlan):
        self.plan = plan
        self.waiting = {i: set(n) for i, n in plan.needs.items()}
        self.started: set[int] = set()

    def ready(self) -> list[int]:
        chosen = [i for i in range(len(self.plan.programs)) if i not in self.started and not self.waiting.get(i)]
        self.started.update(chosen)
        return chosen

    def ended(self, index: int) -> None:
        for waiting in self.waiting.values():
            waiting.discard(index)


HEARTBEAT_S = 60.0  # seconds without a program ending before the sweep says where each running one is


def last_log_line(log: Path) -> str:
    """The last thing ``log`` shows (a progress bar's latest state: the text after its last carriage
    return), or "" when it holds nothing yet."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [part.strip() for part in tail.replace("\r", "\n").splitlines() if part.strip()]
    return lines[-1] if lines else ""


def run_local(plan: ProgramPlan, workers: int, report: Callable[[Outcome], None],
              started: Callable[[int], None] = lambda i: None,
              run_program: Callable[[Sequence[RunConfig]], list[Outcome]] = None,
              stopped: Callable[[int], None] = lambda i: None,
              heartbeat: Callable[[], None] = lambda: None, heartbeat_s: float = HEARTBEAT_S) -> list[Outcome]:
    """``workers`` programs at a time; each starts once its BC producers have ended. ``heartbeat``
    is called whenever ``heartbeat_s`` pass with no program ending (the console is never silent)."""
    run_program = run_program or execute
    dependencies = _Dependencies(plan)
    outcomes = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {}

        def begin(index: int) -> list[Outcome]:  # in the worker: a program counts as running while it runs
            started(index)
            try:
                return run_program(plan.programs[index])
            finally:
                stopped(index)

        def launch() -> None:
            for index in dependencies.ready():
                futures[pool.submit(begin, index)] = index

        launch()
        while futures:
            done, _ = wait(list(futures), timeout=heartbeat_s, return_when=FIRST_COMPLETED)
            if not done:
                heartbeat()
            for future in done:  # reported as they end
                index = futures.pop(future)
                for outcome in future.result():
                    outcomes.append(outcome)
                    report(outcome)
                dependencies.ended(index)
            launch()
    return outcomes


def warn_node_local_cache(nodes: int) -> str | None:
    """One line on stderr when a Ray cluster has several nodes but the cache (regenerated data,
    BC checkpoints) or the result store lies on a node-local file system: every node would
    regenerate and pretrain for itself, and the driver would not see the runs' results."""
    from bench.data.loading import cache_dir
    from bench.files import filesystem_type, node_local
    from bench.training.pipeline import RESULTS_DIR

    if nodes < 2:
        return None
    local = [f"{name} {path} ({filesystem_type(path)})" for name, path in
             (("TRQAM_BENCH_CACHE", cache_dir()), ("TRQAM_BENCH_RESULTS", RESULTS_DIR)) if node_local(path)]
    if not local:
        return None
    line = (f"warning: the Ray cluster has {nodes} nodes but {' and '.join(local)} is on a node-local file system; "
            "put it on a file system every node sees (set the variable to a path there)")
    print(line, file=sys.stderr, flush=True)
    return line


def run_ray(plan: ProgramPlan, address: str | None, cpus_per_run: float, gpus_per_run: float,
            report: Callable[[Outcome], None], retries: int = 2,
            started: Callable[[int], None] = lambda i: None, trackers: Sequence[str] = (),
            program: Callable[..., list[Outcome]] = execute, heartbeat: Callable[[], None] = lambda: None,
            heartbeat_s: float = HEARTBEAT_S) -> list[Outcome]:
    """Each program a Ray task (``program``, `execute` unless a test stands in for it),
    submitted once its BC producers have ended. ``retries``: how often Ray resubmits a program
    whose worker died (a preempted or lost node); programs are idempotent, so a retry resumes
    from the last checkpoint."""
    try:
        import ray
    except ImportError as exc:
        raise BenchError("the Ray backend needs Ray: pip install 'trqam-bench[ray]' (or pip install ray)") from exc
    started_here = not ray.is_initialized()
    if started_here:
        # The runs see this driver's TRQAM_BENCH_* settings (result store, data cache) on every node.
        # The driver's own PYTHONPATH after the repository: a method's package found there (an entry
        # point, or module:NAME) is found by the workers too.
        paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
               **{k: v for k, v in os.environ.items() if k.startswith("TRQAM_BENCH_")}}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    warn_node_local_cache(len([n for n in ray.nodes() if n.get("Alive")]))
    remote = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=retries)(program)
    dependencies = _Dependencies(plan)
    pending = {}
    outcomes = []

    def launch() -> None:
        for index in dependencies.ready():
            started(index)
            pending[remote.remote(list(plan.programs[index]), gpu_share_environment(gpus_per_run),
                                  tuple(trackers))] = index

    try:
        launch()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=heartbeat_s)
            if not done:
                heartbeat()
            for ref in done:
                index = pending.pop(ref)
                job = plan.programs[index]
                try:
                    results = ray.get(ref)
                except Exception as exc:  # the worker died more often than retried (execute never raises)
                    results = [Outcome(run_dir=str(run.run_dir()), method=run.method, task=run.task, seed=run.seed,
                                       overrides=run.overrides, status="failed", seconds=0.0, host="?",
                                       log=str(run.run_dir() / LOG_NAME), error=f"Ray task failed: {exc}")
                               for run in job]
                for outcome in results:
                    report(outcome)
                    outcomes.append(outcome)
                dependencies.ended(index)
            launch()
    finally:
        if started_here:
            ray.shutdown()
    return outcomes


@dataclass(frozen=True)
class SweepSettings:
    backend: Backend = "local"
    workers: int | None = None  # local: parallel programs (default: one per core, at most 2 per 12 GiB)
    address: str | None = None  # ray: cluster address ("auto", "ray://host:10001"); None starts one here
    cpus_per_run: float = 1.0  # per program
    gpus_per_run: float = 0.0  # per program
    seeds_per_program: int = 8  # seeds trained side by side by one compiled program (1: one process per run)
    retries: int = 2  # ray: resubmissions of a program whose worker died (preemption, a lost node)
    trackers: tuple[str, ...] = ()  # bench.training.trackers every run mirrors its logs to (--wandb, --tensorboard)


def default_workers() -> int:
    cores = os.cpu_count() or 1
    try:
        memory_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError, AttributeError):
        memory_gib = 16.0
    return max(1, min(cores, int(memory_gib // 6)))  # a quick run with 25 cube envs takes ~6 GB


def stored_program_seconds(profile: str, stores: Sequence[Path]) -> dict[str, list[float]]:
    """Seconds of the programs of ``profile`` already finished in ``stores`` (their ``index.csv``,
    with each run's start-up from its summary: `_training_seconds`), by method: what a sweep
    expects a program to take before one ends here."""
    import csv

    seen: dict[str, dict[str, float]] = {}
    for store in dict.fromkeys(Path(store).resolve() for store in stores):  # a store named twice counts once
        try:
            with open(Path(store) / "index.csv", newline="") as f:
                rows = list(csv.DictReader(f))
        except OSError:
            continue
        for row in rows:
            if row.get("profile") == profile and row.get("status") == "finished" and row.get("wall_time_s"):
                # one entry per program: its seeds share the task directory and the program's wall time
                program = f"{store}/{Path(row['path']).parent}/{row['wall_time_s']}"
                seconds = _training_seconds(_stored_run(store, row["path"])) or float(row["wall_time_s"])
                seen.setdefault(row["method"], {})[program] = seconds
    return {method: list(programs.values()) for method, programs in seen.items()}


def regeneration_leads(plan: ProgramPlan, stores: Sequence[Path]) -> dict[int, float]:
    """Program -> seconds of data regeneration it waits for before training: for each program of the
    first wave whose dataset is not in the cache yet, the last regeneration of that dataset at the
    same size recorded in ``stores`` (the manifest's ``generation_seconds`` in a stored run's
    ``data.json``). Programs of the first wave regenerate it (one of them; the others wait on its
    lock) while no other program can start; the stored programs' times leave it out."""
    from bench.training.pipeline import Run

    recorded = _stored_generation_seconds(stores)
    leads: dict[int, float] = {}
    for index, job in enumerate(plan.programs[:plan.producers] or plan.programs):
        run = Run(job[0], progress=False)
        try:
            if run._files(fetch=False) is not None:
                continue
        except BenchError:
            continue
        regen = run.profile.regeneration
        seconds = recorded.get((run.task.dataset, regen.episodes, regen.episode_length, regen.seed))
        if seconds:
            leads[index] = seconds
    return leads


def _stored_generation_seconds(stores: Sequence[Path]) -> dict[tuple, float]:
    """(dataset, episodes, episode length, seed) -> seconds of its latest stored regeneration."""
    import csv

    found: dict[tuple, tuple[str, float]] = {}
    for store in dict.fromkeys(Path(store).resolve() for store in stores):
        try:
            with open(store / "index.csv", newline="") as f:
                paths = {row["path"] for row in csv.DictReader(f) if row.get("data") == "regenerated"}
        except (OSError, KeyError):
            continue
        for path in paths:
            try:
                manifest = json.loads((_stored_run(store, path) / "data.json").read_text()).get("manifest") or {}
            except (OSError, ValueError, AttributeError):
                continue
            seconds = manifest.get("generation_seconds")
            if not isinstance(seconds, int | float) or seconds <= 0:
                continue
            length = (manifest.get("recipe") or {}).get("episode_length")
            key = (manifest.get("dataset"), manifest.get("episodes"), length, manifest.get("seed"))
            created = str(manifest.get("created_utc", ""))
            if key not in found or created > found[key][0]:
                found[key] = (created, float(seconds))
    return {key: seconds for key, (_, seconds) in found.items()}


def _stored_run(store: Path, path: str) -> Path:
    """The directory of the stored run the index of ``store`` lists at ``path``: where it is, or, when
    `prepare` has moved it aside for this invocation to train again (``replaced/STAMP/...``, the
    committed runs on a fresh clone), its latest copy there."""
    here = store / path
    if here.is_dir():
        return here
    inside = Path(path).relative_to("runs") if Path(path).parts[:1] == ("runs",) else Path(path)
    moved = sorted((store / "replaced").glob(f"*/{inside}"))
    return moved[-1] if moved else here


def _training_seconds(run_dir: Path) -> float | None:
    """The run's program time without its data regeneration: ``summary.json``'s ``wall_time_s`` (as
    the store's index has it) and its ``startup_s`` (imports, data loading, evaluation environments;
    absent in runs stored before it was recorded)."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
        return float(summary["wall_time_s"]) + float(summary.get("startup_s") or 0.0)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass
class Progress:
    """The sweep's one progress line: runs ended by status, programs running, elapsed time and
    an estimate of the time left. With ``expected`` (seconds per program, from stored runs of
    the profile: `stored_program_seconds`) the estimate holds from the first line: the programs
    not yet ended at their expected times, scaled by this sweep's pace once a program has ended
    (its measured over its expected time), over the ``workers`` that run them. Without it: the
    pace so far, wall time per run trained in this sweep, once one has."""

    total: int
    began: float = field(default_factory=time.perf_counter)
    ended: Counter = field(default_factory=Counter)
    expected: dict[int, float] = field(default_factory=dict)  # program -> seconds it should take
    workers: int = 1
    basis: str = ""  # where ``expected`` came from, said beside the estimate
    _runs_left: dict[int, int] = field(default_factory=dict)  # program -> its runs not yet ended
    _program_of: dict[str, int] = field(default_factory=dict)  # run directory -> program
    _method_of: dict[int, str] = field(default_factory=dict)  # program -> its runs' method
    _kind_of: dict[int, str] = field(default_factory=dict)  # program -> its method's pipeline ("bc", "fine-tune", ...)
    _running: set[int] = field(default_factory=set)  # programs started and not yet ended
    _started_at: dict[int, float] = field(default_factory=dict)
    # Ended program -> its measured seconds: its wall time when it stops (`stopped`), replaced by its
    # summary's training time once its last run is recorded (`record`), the measure stored programs have.
    _took: dict[int, float] = field(default_factory=dict)
    # Program -> seconds it waits before training: the data it regenerates (or waits for) first. Not in
    # the stored programs' times, so added to the time left and kept out of the pace.
    lead: dict[int, float] = field(default_factory=dict)

    @property
    def running(self) -> int:
        """How many programs have started and not yet ended."""
        return len(self._running)

    def track(self, jobs: Sequence[Sequence[RunConfig]]) -> None:
        self._runs_left = {i: len(job) for i, job in enumerate(jobs)}
        self._program_of = {str(run.run_dir()): i for i, job in enumerate(jobs) for run in job}
        self._method_of = {i: job[0].method for i, job in enumerate(jobs)}
        self._kind_of = {i: get_method(job[0].method).pipeline for i, job in enumerate(jobs)}

    def _like_ended(self) -> tuple[dict[int, float], list[str]]:
        """Without stored programs: each open program expected to take the median ended program of its
        method, else of its kind (its method's pipeline: BC pretraining, fine-tuning, ...); and the methods of open programs with
        neither, whose time is unknown (the regress gate's fine-tuning programs are not its BC program)."""
        expected: dict[int, float] = {}
        unknown: list[str] = []
        for program, runs_left in self._runs_left.items():
            if runs_left <= 0 or program in self._took:
                continue
            method = self._method_of.get(program, "")
            like = [s for p, s in self._took.items() if self._method_of.get(p, "") == method] or [
                s for p, s in self._took.items() if self._kind_of.get(p) == self._kind_of.get(program)]
            if like:
                expected[program] = statistics.median(like)
            elif method not in unknown:
                unknown.append(method)
        return expected, unknown

    def expect(self, jobs: Sequence[Sequence[RunConfig]], stored: dict[str, list[float]], workers: int,
               regeneration: dict[int, float] | None = None) -> None:
        """Each program's expected seconds: the median stored program of its method, else of all
        stored programs; nothing when nothing is stored. ``regeneration``: program -> seconds of data
        regeneration it waits for first (`regeneration_leads`)."""
        self.workers = max(1, workers)
        every = [s for seconds in stored.values() for s in seconds]
        if not every:
            return
        for i, job in enumerate(jobs):
            self.expected[i] = statistics.median(stored.get(job[0].method) or every)
        self.basis = f"from {len(every)} stored program(s) of this profile"
        self.lead = dict(regeneration or {})
        if self.lead:
            self.basis += f" and its data regeneration (~{max(self.lead.values()) / 60:.0f} min as stored)"

    def started(self, program: int, now: float | None = None) -> None:
        self._running.add(program)
        self._started_at[program] = now if now is not None else time.perf_counter()

    def running_programs(self) -> set[int]:
        return set(self._running)

    def stopped(self, program: int, now: float | None = None) -> None:
        """``program`` has ended (called by the worker that ran it, before it takes the next)."""
        if program in self._running and program in self._started_at:
            self._took[program] = (now if now is not None else time.perf_counter()) - self._started_at[program]
        self._running.discard(program)

    def _expected_left(self, now: float, expected: dict[int, float], scaled: bool = True) -> tuple[float, int]:
        """Seconds of work left by the expected times, scaled (``scaled``) by the pace of the ended
        programs, and how many running programs have already run longer than expected (their time
        left is unknown, so the seconds are a lower bound)."""
        measured = [p for p in self._took if p in expected and expected[p] > 0] if scaled else []
        pace = (sum(self._took[p] for p in measured) / sum(expected[p] for p in measured)) if measured else 1.0
        left, overdue = 0.0, 0
        for program, runs_left in self._runs_left.items():
            if runs_left <= 0 or program in self._took:
                continue
            running_for = now - self._started_at[program] if program in self._running else 0.0
            total = expected.get(program, 0.0) * pace + (self.lead.get(program, 0.0) if scaled else 0.0)
            overdue += program in self._running and running_for > total
            left += max(0.0, total - running_for)
        open_programs = sum(1 for p, n in self._runs_left.items() if n > 0 and p not in self._took)
        return left / max(1, min(self.workers, open_programs)), overdue

    @staticmethod
    def _eta(seconds: float, overdue: int, basis: str) -> str:
        if overdue:  # never "~0 min left" while a program runs on past what it was expected to take
            bound = f"at least ~{seconds / 60:.0f} min left" if seconds >= 60 else "time left unknown"
            return f"{bound} ({basis}; {overdue} program(s) running longer than expected)"
        return f"~{seconds / 60:.0f} min left ({basis})" if seconds >= 30 else f"under a minute left ({basis})"

    def record(self, outcome: Outcome) -> bool:
        """Count ``outcome``; True when it was its program's last run."""
        self.ended[outcome.status] += 1
        program = self._program_of.get(outcome.run_dir)
        if program is None:
            return False
        self._runs_left[program] -= 1
        if self._runs_left[program]:
            return False
        self.stopped(program)
        trained = _training_seconds(Path(outcome.run_dir))
        if trained:  # the same measure as the stored programs' (start-up included, data regeneration not)
            self._took[program] = trained
        return True

    def line(self, now: float | None = None) -> str:
        now = now if now is not None else time.perf_counter()
        elapsed = now - self.began
        done = sum(self.ended.values())
        trained = done - self.ended["skipped"]
        left = self.total - done
        if left and self.expected:
            pace = ", at this sweep's pace" if self._took else ""
            eta = self._eta(*self._expected_left(now, self.expected), f"{self.basis}{pace}")
        elif left and self._took:  # nothing stored: programs expected to take as long as ended ones like them
            expected, unknown = self._like_ended()
            basis = f"from this sweep's {len(self._took)} ended program(s)"
            if unknown:
                eta = f"time left unknown until a {' or '.join(unknown)} program ends ({basis})"
            else:
                eta = self._eta(*self._expected_left(now, expected, scaled=False), basis)
        else:
            eta = f"~{elapsed / trained * left / 60:.0f} min left" if trained and left else (
                "done" if not left else "time left unknown until a run ends")
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.ended.items()))
        return (f"[sweep] {done} of {self.total} runs ended ({counts or 'none yet'}); {self.running} program(s) "
                f"running; {elapsed / 60:.1f} min elapsed, {eta}")


def sweep(runs: Sequence[RunConfig], settings: SweepSettings = SweepSettings(),
          report: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Execute ``runs`` (`program_plan`: each program as soon as its BC producers have ended);
    returns one outcome per run, in completion order. After each ended program a progress line
    (`Progress`) follows its runs' lines."""
    report = report or _print_outcome
    workers = settings.workers or default_workers()
    plan = program_plan(runs, settings.seeds_per_program, pretrains,
                        lanes=workers if settings.backend == "local" else 1)
    progress = Progress(total=len(runs))
    progress.track(plan.programs)
    if runs:
        from bench.training.pipeline import RESULTS_DIR

        stores = [RESULTS_DIR, REPO / "results"]
        stored = stored_program_seconds(runs[0].profile, stores)
        progress.expect(plan.programs, stored, workers if settings.backend == "local" else len(plan.programs),
                        regeneration_leads(plan, stores))
        print(progress.line(), flush=True)  # the estimate from the first line

    def tracked(outcome: Outcome) -> None:
        report(outcome)
        if progress.record(outcome):
            print(progress.line(), flush=True)

    def heartbeat() -> None:  # what each running program's log shows now, under the sweep's line
        print(progress.line(), flush=True)
        for index in sorted(progress.running_programs()):
            run = plan.programs[index][0]
            print(f"  [running] {run.method} {run.task}: {last_log_line(run.run_dir() / 'train.log') or 'starting'}",
                  flush=True)

    if settings.backend == "ray":
        return run_ray(plan, settings.address, settings.cpus_per_run, settings.gpus_per_run, tracked,
                       retries=settings.retries, started=progress.started, trackers=settings.trackers,
                       heartbeat=heartbeat)
    def announce(index: int) -> None:  # where to look while it runs (its train.log has its progress)
        progress.started(index)
        job = plan.programs[index]
        seeds = " ".join(str(r.seed) for r in job)
        extra = "" if not job[0].overrides else " " + " ".join(job[0].overrides)
        print(f"[started] {job[0].method}{extra} {job[0].task} seed{'s' if len(job) > 1 else ''} {seeds} "
              f"(log: {job[0].run_dir() / 'train.log'})", flush=True)

    return run_local(plan, workers, tracked, started=announce,
                     run_program=functools.partial(execute, trackers=settings.trackers), stopped=progress.stopped,
                     heartbeat=heartbeat)


def _print_outcome(outcome: Outcome) -> None:
    extra = "" if not outcome.overrides else " " + " ".join(outcome.overrides)
    line = f"[{outcome.status}] {outcome.method}{extra} {outcome.task} seed {outcome.seed}"
    if outcome.status in ("finished", "diverged"):
        line += f" ({outcome.seconds:.0f} s on {outcome.host})"
    if outcome.status == "failed":
        last = next((x for x in reversed(outcome.error.splitlines()) if x.strip()), "")
        line += f": {last.strip()} (log: {outcome.log})"
    print(line, flush=True)


def failures_table(outcomes: Iterable[Outcome]) -> str:
    failed = [o for o in outcomes if o.status == "failed"]
    if not failed:
        return ""
    lines = ["| method | task | seed | log | last line |", "|---|---|---|---|---|"]
    for o in failed:
        last = next((x for x in reversed(o.error.splitlines()) if x.strip()), "")
        lines.append(f"| {o.method} {' '.join(o.overrides)} | {o.task} | {o.seed} | {o.log} | {last[:120]} |")
    return "\n".join(lines)




# ---- the result store's index --------------------------------------------------------------
INDEX_COLUMNS = ("profile", "method", "task", "seed", "variant", "status", "final_success", "data", "data_id", "host",
                 "hardware", "wall_time_s", "finished_utc", "origin", "path")


def write_index(results_dir: Path) -> Path:
    """``results/index.csv``: one row per finished run under ``results_dir/runs``, rebuilt from
    the runs' verified records each time (`bench.training.runstore.read_run`): a damaged run is
    listed with its status and no success."""
    rows = []
    for path in sorted((results_dir / "runs").glob("*/*/*/seed*/summary.json")):
        directory = path.parent
        profile, method, task = directory.relative_to(results_dir / "runs").parts[:3]
        row = {"profile": profile, "method": method, "task": task, "variant": directory.name.partition("-")[2],
               "seed": directory.name.partition("-")[0].removeprefix("seed"),
               "path": str(directory.relative_to(results_dir))}
        try:
            record = read_run(directory)
        except DamagedRecord as exc:
            rows.append(row | {"status": f"damaged: {exc.path.name} {exc.reason}"})
            continue
        summary = record["summary"]
        hardware = summary.get("hardware", {})
        devices = ",".join(sorted(set(hardware.get("jax_devices", []))))
        success = record["success_by_phase"]
        rows.append(row | {
            "status": summary.get("status", ""), "final_success": list(success.values())[-1] if success else "",
            "data": summary["data"]["kind"], "data_id": data_identity(record["data"]), "host": hardware.get("host", ""),
            "hardware": f"{hardware.get('cpu', '')} x{hardware.get('cpu_cores', '')}; {devices}",
            "wall_time_s": summary.get("wall_time_s", ""), "finished_utc": summary.get("finished_utc", ""),
            "origin": bundle.describe(origin) if (origin := bundle.origin_of(directory)) else "trained here",
        })
    index = results_dir / "index.csv"
    write_atomic(index, csv_text(rows, list(INDEX_COLUMNS)))
    return index


def write_record(results_dir: Path, profile: str, selection: dict, settings: SweepSettings,
                 outcomes: Sequence[Outcome], wall_s: float) -> Path:
    """``results/sweeps/PROFILE-UTCSTAMP.json``: what one sweep ran, where and how it ended."""
    from bench import provenance

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")  # to the microsecond, and the process:
    path = results_dir / "sweeps" / f"{profile}-{stamp}-{os.getpid()}.json"  # two sweeps at once never share it
    write_json(path, {
        "profile": profile, "selection": selection, "settings": asdict(settings), "wall_time_s": round(wall_s, 1),
        "driver": {"host": platform.node(), "hardware": provenance.hardware(), "versions": provenance.versions(),
                   "code_revision": provenance.code_revision()},
        "counts": {s: sum(o.status == s for o in outcomes) for s in ("finished", "diverged", "skipped", "failed")},
        "runs": [asdict(o) for o in outcomes],
    })
    return path
