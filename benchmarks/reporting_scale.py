"""The paper profile's scale, after training: planning and reporting 3,360 runs (issue 29).

    python -m benchmarks.reporting_scale [--out reports/benchmarks/REPORTING_SCALE.md] [--keep DIR]

Writes, into a temporary directory (never under results/):

* every dataset the ``paper`` profile names, in the official layout (the standard
  ``DATASET.npz`` / ``-val.npz`` pairs and the 10M/100M shard folders), each file a tiny npz of
  the right name and arrays: present, so that planning verifies them, and small;
* a result store holding the profile's 3,360 runs as finished, sealed run directories
  (`bench.training.synthetic`: every record marked ``"synthetic": true``), each with the paper
  schedule's rows: metrics every 5,000 of 300K + 1M steps, evaluations every 50,000.

Then it measures, each in a fresh process (wall time and peak resident memory of the process
tree, `resource.getrusage(RUSAGE_CHILDREN)`), on the machine it runs on:

1. ``reproduce --profile paper --dry-run`` with every dataset present and an empty store;
2. the same against the 3,360-run store;
3. ``report --profile paper``: the tables, figures and REPORT.md of the 3,360 runs, read once.

and writes the numbers, the bounds of issue 29 and the machine to ``--out``. The synthetic
numbers in the tables it produces mean nothing; only the costs are the result.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BOUNDS = {"dry run (datasets present, empty store)": (30.0, 1.0), "dry run (3,360 runs stored)": (30.0, 1.0),
          "tables, figures and report of 3,360 runs": (120.0, 2.0)}  # (seconds, GiB)


def _tiny_npz(path: Path, rows: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, observations=np.zeros((rows, 2), np.float32), actions=np.zeros((rows, 1), np.float32),
             terminals=np.zeros(rows, np.float32))


def write_datasets(root: Path, profile_name: str = "paper") -> dict[str, dict]:
    """Every dataset ``profile_name`` trains on, official layout; returns each dataset's data.json."""
    from bench.config.profiles import get_profile
    from bench.data.loading import large_dataset
    from bench.files import sha256_file
    from bench.tasks import resolve_task

    profile = get_profile(profile_name)
    records: dict[str, dict] = {}
    for name in profile.tasks:
        task = resolve_task(name)
        spec = large_dataset(task, profile.large_datasets)
        if spec is not None:
            folder = root / spec.folder
            train = [folder / shard for shard in spec.shard_names()]
            val = folder / f"{spec.prefix}-val.npz"
            dataset = spec.folder
        else:
            train, val, dataset = [root / f"{task.dataset}.npz"], root / f"{task.dataset}-val.npz", task.dataset
        if dataset in records:
            records[task.name] = records[dataset]
            continue
        for path in (*train, val):
            if not path.exists():
                _tiny_npz(path)
        records[dataset] = {"kind": "official", "dataset": dataset, "directory": str(train[0].parent),
                            "files": [{"name": p.name, "split": "train", "sha256": sha256_file(p)} for p in train]
                            + [{"name": val.name, "split": "val", "sha256": sha256_file(val)}]}
        records[task.name] = records[dataset]
    return records


def write_store(results: Path, data: dict[str, dict], profile_name: str = "paper") -> int:
    """The profile's whole matrix as finished, sealed, synthetic runs under ``results/runs``."""
    from bench.config.profiles import get_profile
    from bench.training.sweep import plan
    from bench.training.synthetic import write_run

    profile = get_profile(profile_name)
    runs = plan(profile)
    rng = np.random.default_rng(0)
    metric_steps = list(range(profile.log_every, profile.pretrain_steps + 1, profile.log_every))
    offline_steps = list(range(profile.log_every, profile.offline_steps + 1, profile.log_every))
    for i, run in enumerate(runs):
        task_data = data[run.task]
        phase = "pretrain" if run.method == "bc" else "offline"
        steps = profile.pretrain_steps if phase == "pretrain" else profile.offline_steps
        evaluations = [(phase, s, round(float(rng.integers(0, 51)) / 50, 2))
                       for s in range(profile.eval_every, steps + 1, profile.eval_every)]
        metrics = [{"phase": "pretrain", "step": s, "actor/flow_loss": 0.1} for s in metric_steps]
        if phase == "offline":
            metrics += [{"phase": "offline", "step": s, "actor/flow_loss": 0.1, "critic/loss": 1.0,
                         "critic/q_mean": -50.0, "actor/path_kl": 0.5, "trqam/lambda": 1.0, "trqam/kl_ema": 0.5}
                        for s in offline_steps]
        name = run.run_dir().name
        agent_config = {"kl_budget": 1.0} if run.method == "trqam" else {"inv_temp": 1.0}
        for override in run.overrides:
            key, _, value = override.partition("=")
            agent_config[key] = float(value)
        write_run(results / "runs" / profile_name / run.method / run.task / name, method=run.method, task=run.task,
                  seed=run.seed, success=evaluations[-1][2], profile=profile_name, evaluations=evaluations,
                  overrides=run.overrides, agent_config=agent_config, data=task_data, metrics=metrics)
        if (i + 1) % 500 == 0:
            print(f"  {i + 1} of {len(runs)} synthetic runs written", flush=True)
    return len(runs)


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak resident GiB (the largest process of the command's tree) and its last line."""
    script = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
              "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
              "w = time.perf_counter() - t; "
              "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode); "
              "sys.stderr.write(p.stdout[-2000:])")
    done = subprocess.run([sys.executable, "-c", script, *command], capture_output=True, text=True, env=env, cwd=REPO)
    wall, peak_kib, code = done.stdout.split()
    if code != "0":
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    last = next((line for line in reversed(done.stderr.splitlines()) if line.strip()), "")
    return float(wall), int(peak_kib) / 2**20, last


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "benchmarks" / "REPORTING_SCALE.md")
    parser.add_argument("--keep", type=Path, default=None, help="write the store here and keep it")
    args = parser.parse_args(argv)
    from bench import provenance

    work = args.keep or Path(tempfile.mkdtemp(prefix="trqam-bench-scale-"))
    try:
        began = time.perf_counter()
        datasets, store, empty = work / "datasets", work / "results", work / "empty-results"
        data = write_datasets(datasets)
        count = write_store(store, data)
        empty.mkdir(exist_ok=True)
        setup_s = time.perf_counter() - began
        env = {**os.environ, "PYTHONPATH": str(REPO), "TRQAM_BENCH_CACHE": str(work / "cache")}
        bench = [sys.executable, "-m", "bench"]
        dry = [*bench, "reproduce", "--profile", "paper", "--dry-run", "--dataset-dir", str(datasets)]
        results = {
            "dry run (datasets present, empty store)": measure(dry, {**env, "TRQAM_BENCH_RESULTS": str(empty)}),
            "dry run (3,360 runs stored)": measure(dry, {**env, "TRQAM_BENCH_RESULTS": str(store)}),
            "tables, figures and report of 3,360 runs": measure(
                [*bench, "report", "--profile", "paper", "--reports", str(work / "reports")],
                {**env, "TRQAM_BENCH_RESULTS": str(store)}),
        }
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    hardware = provenance.hardware()
    lines = [
        "# Planning and reporting at the paper profile's scale",
        "",
        f"Measured by `python -m benchmarks.reporting_scale` on {time.strftime('%Y-%m-%d')} at revision "
        f"`{provenance.code_revision()}`, on {hardware.get('cpu')} x{hardware.get('cpu_cores')} cores, "
        f"{hardware.get('memory_gib')} GiB ({platform.python_version()}). A synthetic store of {count} finished, "
        "sealed runs of the `paper` matrix (every record marked synthetic, written to a temporary directory, never "
        "under results/; metrics every 5,000 of 300K + 1M steps, evaluations every 50,000) and every dataset of the "
        f"profile present in the official layout (tiny files); setting them up took {setup_s:.0f} s. Each command "
        "ran in a fresh process; peak memory is the largest resident set of its process tree.",
        "",
        "| command | wall time (s) | bound (s) | peak memory (GiB) | bound (GiB) | within | last line it printed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (wall, peak, last) in results.items():
        seconds, gib = BOUNDS[name]
        ok = "yes" if wall <= seconds and peak <= gib else "**no**"
        lines.append(f"| {name} | {wall:.1f} | {seconds:g} | {peak:.2f} | {gib:g} | {ok} | {last[:140]} |")
    lines += ["", "Bounds: issue 29 (`reproduce --profile paper --dry-run` with every dataset present at most 30 s "
              "and 1 GiB; the tables, figures and report of the 3,360 runs at most 2 minutes and 2 GiB, the runs "
              "read once per invocation).", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
