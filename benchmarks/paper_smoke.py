"""`nox -s paper-smoke`: both paper profiles trained end to end, at their own sizes, for a handful of
updates, and what that costs on this machine (issue 30, 'The paper profile, run end to end').

    python -m benchmarks.paper_smoke [--workers N] [--groups G ...] [--out reports/benchmarks]
    python -m benchmarks.paper_smoke --table-only   # the table again from the stored runs

Every run goes through the same code as a real sweep: `bench.training.sweep.sweep` starts one
`python -m bench train` program per run, which writes its records into a result store of its own
(``$TRQAM_BENCH_CACHE/paper-smoke/results``; resumable: a finished run is kept). The runs use the
profiles' networks (4x512; 4x1024 with the actor's LayerNorm on the TRQAM paper's 10M/100M sets),
10 critics, batch 256 and each domain's chunk length and discount, on stand-in files in the exact
official layouts (`bench.data.stand_in`: the standard pair, and the 10M/100M shard folders),
labelled regenerated. The schedule is cut to `SCHEDULE` (a handful of updates, one evaluation
episode); RLPD, online-only, runs its 5,000 warm-up steps and then a few updates.

Writes (under --out):

* ``paper_smoke_costs.csv``: per run, seconds per update of each phase (the first host call, which
  compiles, apart), seconds per evaluation episode, FLOPs per update, peak resident memory;
  `bench.reporting.costs` reads it for `reproduce --dry-run` of paper and qam-paper;
* ``paper_smoke_machine.json``: the machine, versions, revision and wall time;
* ``PAPER_SMOKE.md``: the table, with what it can and cannot say.

Exit status 1 when a run failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

GROUPS = {
    # Every domain of the TRQAM paper's profile, for TRQAM (task 1 of each).
    "trqam-paper": [("paper", "trqam", f"{d}-task1", None) for d in
                    ("p33", "scene", "c2", "al", "hm", "c3", "c4", "p44", "ag", "hl")],
    # The other methods of the TRQAM table at one domain: cube-triple, on its 10M shards, width 1024.
    "paper-baselines": [("paper", m, "c3-task1", None) for m in ("fql", "dsrl", "ifql", "cgql-l", "qam", "qam-e")],
    # Every domain of the QAM paper's profile (from scratch, width 512), for QAM: the per-domain ratios
    # that price its other methods' domains (bench/reporting/costs.py).
    "qam-paper-domains": [("qam-paper", "qam", f"{d}-task1", None) for d in
                          ("p33", "scene", "c2", "al", "hm", "c3", "c4", "p44", "ag", "hl")],
    # The QAM paper's other methods at puzzle-4x4, on its 100M shards.
    "qam-paper": [("qam-paper", m, "p44-task1", None) for m in
                  ("qam-e", "qam-f", "bam", "fql", "dsrl", "ifql", "cgql", "cgql-m", "cgql-l", "rebrac", "fbrac",
                   "fawac", "fedit", "qsm", "dac")],
    # RLPD is online-only: the profile's 5,000 warm-up steps, then 8 updates.
    "qam-paper-online": [("qam-paper", "rlpd", "c2-task1", 5_008)],
}
# Host calls of 2 updates each (one compiled length, so only the first call compiles), and two
# evaluations of one episode (the first compiles the policy; the second is the one timed per episode).
SCHEDULE = {"pretrain_steps": 4, "offline_steps": 8, "log_every": 2, "eval_every": 4, "eval_episodes": 1}
COLUMNS = ("profile", "method", "domain", "task", "layout", "networks", "critics", "batch", "chunk", "discount",
           "pretrain_s_per_update", "offline_s_per_update", "online_s_per_update", "first_call_s",
           "eval_s_per_episode", "eval_episodes", "eval_first_call_s", "shard_loads", "gflop_per_update", "bc_gflop_per_update",
           "peak_rss_mib", "wall_s", "status")


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def store(self) -> Path:
        return self.root / "results"

    @property
    def data(self) -> Path:
        return self.root / "data"


def runs(groups, data_dir: Path):
    from bench.training.pipeline import RunConfig

    return [RunConfig(method=method, task=task, profile=profile, seed=0, source="auto", dataset_dir=data_dir,
                      online_steps=online or 0, **SCHEDULE)  # offline only unless the group says (paper: 500K online)
            for group in groups for profile, method, task, online in GROUPS[group]]


def write_stand_ins(configs, data_dir: Path) -> None:
    """The stand-in files every run needs, in its protocol's layout (kept when already there)."""
    from bench.config.profiles import get_profile
    from bench.data import stand_in
    from bench.data.loading import large_dataset
    from bench.tasks import resolve_task

    needed = {}
    for config in configs:
        task = resolve_task(config.task)
        spec = large_dataset(task, get_profile(config.profile).large_datasets)
        needed[(task.dataset, spec.folder if spec else "standard")] = (task, spec)
    for (dataset, layout), (task, spec) in needed.items():
        began = time.perf_counter()
        stand_in.write(task, data_dir, large=spec)
        print(f"stand-in {dataset} ({layout}): {time.perf_counter() - began:.1f} s", flush=True)


def update_gflop(config) -> tuple[float, float | None]:
    """GFLOPs of one update of the run's last phase, and of one BC pretraining update (None without
    one), counted on the compiled programs' jaxprs (benchmarks/flops.py) at the run's sizes."""
    import equinox as eqx
    import jax
    import ogbench

    from bench.data.batches import TransitionData, sample_batch
    from bench.data.loading import load_split
    from bench.training.pipeline import Run
    from benchmarks.flops import program_flops

    run = Run(config, progress=False)
    files = run._files(fetch=False)
    env = ogbench.make_env_and_datasets(run.task.name, env_only=True)
    data = TransitionData.from_ogbench(load_split(files.val, run.task, env), sparse_reward=run.sparse_reward)
    key = jax.random.key(0)
    batch = sample_batch(data, key, run.profile.batch_size, run.task.chunk_len, run.profile.discount)

    def gflop(phase) -> float:
        agent = run._create(phase, batch, key, None)
        params, static = eqx.partition(agent, eqx.is_array)
        return program_flops(lambda p, b: eqx.combine(p, static).update(b, key), params, batch) / 1e9

    pretrain = [p for p in run.phases if p.name == "pretrain"]
    return gflop(run.phases[-1]), (gflop(pretrain[0]) if pretrain and run.phases[-1].name != "pretrain" else None)


def row(config, store_root: Path) -> dict:
    """The cost row of one stored run (its records verified: `read_run`)."""
    from bench.data.loading import large_dataset
    from bench.tasks import resolve_task
    from bench.training.pipeline import Run
    from bench.training.runstore import read_run

    run = Run(config, progress=False)
    task, profile = run.task, run.profile
    spec = large_dataset(task, profile.large_datasets)
    base = {"profile": config.profile, "method": config.method, "domain": task.info.abbr, "task": task.name,
            "layout": f"{spec.shards} shards ({spec.folder})" if spec else "standard",
            "networks": "x".join(map(str, profile.hidden_sizes)) + (" +LN" if profile.actor_layer_norm else ""),
            "critics": profile.num_critics, "batch": profile.batch_size, "chunk": resolve_task(config.task).chunk_len,
            "discount": profile.discount}
    directory = config.run_dir()
    if not (directory / "summary.json").exists():
        return base | {"status": "not finished"}
    summary = read_run(directory)["summary"]
    timed = summary.get("timed", {})

    def per_update(phase: str) -> float | str:
        t = timed.get(phase)
        return round(t["update_s"] / t["updates"], 4) if t and t["updates"] else ""

    first = sum(t.get("first_call_s", 0.0) for name, t in timed.items() if name not in ("evaluation", "data"))
    evaluation = timed.get("evaluation", {})
    gflop, bc_gflop = update_gflop(config)
    return base | {
        "pretrain_s_per_update": per_update("pretrain"), "offline_s_per_update": per_update("offline"),
        "online_s_per_update": per_update("online"), "first_call_s": round(first, 1),
        # Seconds per episode of the evaluations after the first (which compiles the policy); a run
        # evaluated once (RLPD: at the end of its online phase) gives its first, compilation included.
        "eval_s_per_episode": round(evaluation["s"] / evaluation["episodes"], 2) if evaluation.get("episodes") else
        round(evaluation["first_call_s"] / evaluation["first_call_episodes"], 2) if evaluation.get(
            "first_call_episodes") else "",
        "eval_episodes": evaluation.get("episodes", 0),
        "eval_first_call_s": round(evaluation.get("first_call_s", 0.0), 1), "shard_loads": timed.get("data", {}).get("shard_loads", ""),
        "gflop_per_update": round(gflop, 3), "bc_gflop_per_update": round(bc_gflop, 3) if bc_gflop else "",
        "peak_rss_mib": summary.get("peak_rss_mib", ""), "wall_s": summary.get("wall_time_s", ""),
        "status": summary.get("status", "?"),
    }


def machine(wall_s: float | None, previous: dict | None, outcomes=()) -> dict:
    from bench import provenance

    if wall_s is None and previous is not None:  # --table-only: the machine that trained them
        return previous
    return {"hardware": provenance.hardware(), "versions": provenance.versions(),
            "code_revision": provenance.code_revision(), "wall_time_s": round(wall_s or 0.0, 1),
            "runs_trained": sum(o.status in ("finished", "diverged") for o in outcomes),
            "runs_kept": sum(o.status == "skipped" for o in outcomes),
            "schedule": SCHEDULE}


def markdown(rows: list[dict], info: dict) -> str:
    hardware = info["hardware"]
    lines = [
        "# The paper profiles, end to end (`nox -s paper-smoke`)",
        "",
        f"Written by `python -m benchmarks.paper_smoke` at revision `{info['code_revision']}` on "
        f"{hardware.get('cpu', '?')} ({hardware.get('cpu_cores', '?')} cores, {hardware.get('memory_gib', '?')} GiB), "
        f"in {info['wall_time_s'] / 60:.1f} min (stand-in data, {info.get('runs_trained', '?')} runs trained and "
        f"evaluated, {info.get('runs_kept', 0)} kept as an earlier invocation finished them, FLOPs counted). Every run was trained by the sweep's own code (one `python -m bench train` program each) at its "
        "profile's sizes, on stand-in files in the official layouts (random-action episodes, labelled "
        f"regenerated), for the schedule {info['schedule']}. The success rates of these runs mean nothing; "
        "their costs are what this table is for. `reproduce --dry-run --profile paper` (and qam-paper) reads "
        "`paper_smoke_costs.csv` to print the expected CPU-hours and a GPU-hour projection by FLOP count.",
        "",
        "Seconds per update exclude each phase's first host call (compilation, `first call s`), and seconds per "
        "evaluation episode the first evaluation (which compiles the policy: `eval first call s`), except for "
        "RLPD, evaluated once at the end of its online phase, whose one evaluation includes it. Memory is the "
        "program's peak resident set. On a GPU every number here changes; a GPU measurement replaces the "
        "projection.",
        "",
        "| profile | method | domain | layout | networks | critics | chunk | discount | s/update (BC) | "
        "s/update (offline) | s/update (online) | first call s | s/eval episode | eval first call s | GFLOP/update | "
        "peak MiB | status |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['profile']} | {r['method']} | {r['domain']} | {r['layout']} | {r['networks']} | {r['critics']} | "
            f"{r['chunk']} | {r['discount']} | {r.get('pretrain_s_per_update', '')} | "
            f"{r.get('offline_s_per_update', '')} | {r.get('online_s_per_update', '')} | {r.get('first_call_s', '')} | "
            f"{r.get('eval_s_per_episode', '')} | {r.get('eval_first_call_s', '')} | {r.get('gflop_per_update', '')} | {r.get('peak_rss_mib', '')} | "
            f"{r['status']} |")
    finished = sum(r["status"] in ("finished", "diverged") for r in rows)
    lines += ["", f"{finished} of {len(rows)} runs finished (a diverged run counts: it ran end to end).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", nargs="+", default=list(GROUPS), choices=list(GROUPS))
    parser.add_argument("--workers", type=int, default=1, help="programs side by side (default 1: the "
                        "timings are of one program alone)")
    parser.add_argument("--out", type=Path, default=Path("reports/benchmarks"))
    parser.add_argument("--root", type=Path, default=None,
                        help="where the stand-in data and the result store go (default $TRQAM_BENCH_CACHE/paper-smoke)")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from the stored runs")
    args = parser.parse_args(argv)
    from bench.data.loading import cache_dir

    paths = Paths(args.root or cache_dir() / "paper-smoke")
    os.environ["TRQAM_BENCH_RESULTS"] = str(paths.store)  # before bench.training is imported: the runs' store
    # Its own BC checkpoints: a BC checkpoint cached by other runs would skip (and so not time) pretraining.
    os.environ["TRQAM_BENCH_BC_CACHE"] = str(paths.root / "bc-checkpoints")
    from bench.training.sweep import SweepSettings, failures_table, sweep

    configs = runs(args.groups, paths.data)
    began = time.perf_counter()
    outcomes = []
    if not args.table_only:
        write_stand_ins(configs, paths.data)
        outcomes = sweep(configs, SweepSettings(workers=args.workers, seeds_per_program=1))
    rows = [row(c, paths.store) for c in configs]
    args.out.mkdir(parents=True, exist_ok=True)
    previous_path = args.out / "paper_smoke_machine.json"
    previous = json.loads(previous_path.read_text()) if previous_path.exists() else None
    info = machine(None if args.table_only else time.perf_counter() - began, previous, outcomes)
    with open(args.out / "paper_smoke_costs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in COLUMNS} for r in rows)
    previous_path.write_text(json.dumps(info, indent=1) + "\n")
    (args.out / "PAPER_SMOKE.md").write_text(markdown(rows, info))
    print(f"wrote {args.out / 'PAPER_SMOKE.md'}, paper_smoke_costs.csv, paper_smoke_machine.json")
    failed = failures_table(outcomes)
    if failed or any(r["status"] not in ("finished", "diverged") for r in rows):
        print("some runs did not finish:\n" + (failed or "\n".join(r["task"] for r in rows)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
