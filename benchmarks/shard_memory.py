"""Memory at scale (issue 30): training over a 100-shard layout holds one shard at a time.

    python -m benchmarks.shard_memory [--rows-per-shard 20000] [--out reports/benchmarks]

Two training programs, each in its own process (so each peak is its own), through the real
training loop (`bench.training.pipeline.train`) and the real shard loader:

* ``many``: BC pretraining on puzzle-4x4's 100-shard layout (the QAM paper's 100M folder, in its
  exact file names), switching shard every 10 updates for 1,000 updates: each of the 100 shards is
  loaded once;
* ``one``: the same training on a 1-shard layout holding the same shard.

Both use the smoke profile's sizes (the networks do not matter here; the data does) with the layout
registered in the child process only (`_register`). The shards are stand-in files
(`bench.data.stand_in`: random-action episodes of the real environment, labelled regenerated), every
shard the same ``--rows-per-shard`` rows. Holding one shard at a time means the ``many`` peak stays
within the ``one`` peak (one shard + the validation set + the program) plus the transient of a switch
(`SWITCH_SHARDS` shards: the file's arrays, the converted shard and its device copy, while the old one
is released); keeping the shards would add ~99 of them. Writes ``shard_memory.json`` and ``SHARD_MEMORY.md``; exit 1
when the ``many`` peak exceeds that bound or a switch cost more than one load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASK = "p44-task1"
STEPS, INTERVAL = 1_000, 10  # 100 switches: each shard once
SWITCH_SHARDS = 3  # the allowance for one switch's transient copies, in shard sizes
LAYOUTS = {"many": ("puzzle-4x4-play-100m-v0", 100), "one": ("puzzle-4x4-play-1shard-v0", 1)}


def _register(case: str) -> str:
    """A profile named ``shard-memory-CASE`` (the smoke profile's sizes, on ``case``'s layout at
    puzzle-4x4) in this process only; returns its name."""
    from bench.config import profiles
    from bench.data import loading

    folder, shards = LAYOUTS[case]
    table = f"shard-memory-{case}"
    loading.LARGE_DATASETS[table] = {"p44": loading.LargeDataset(folder, "puzzle-4x4-play-v0", shards,
                                                                 "stand-in shards (benchmarks/shard_memory.py)")}
    profiles.PROFILES[table] = dataclasses.replace(profiles.PROFILES["smoke"], name=table, large_datasets=table,
                                                   shard_interval=INTERVAL, tasks=(TASK,))
    return table


def child(case: str, data_dir: Path, store: Path) -> dict:
    """One training program (run in its own process by `main`): its summary's memory and data timings."""
    os.environ["TRQAM_BENCH_RESULTS"] = str(store)
    os.environ["TRQAM_BENCH_BC_CACHE"] = str(store / "bc-cache")
    profile = _register(case)
    from bench.training.pipeline import RunConfig, train

    config = RunConfig(method="bc", task=TASK, profile=profile, seed=0, source="auto", dataset_dir=data_dir,
                       pretrain_steps=STEPS, eval_every=STEPS, eval_episodes=1, log_every=100)
    return train(config, progress=False)


def shard_mib(data_dir: Path) -> dict[str, float]:
    """The in-memory size of one training shard and of the validation set, as the loader holds them."""
    import ogbench

    from bench.data.batches import TransitionData
    from bench.data.loading import load_split
    from bench.tasks import resolve_task

    task = resolve_task(TASK)
    env = ogbench.make_env_and_datasets(task.name, env_only=True)
    folder = data_dir / LAYOUTS["many"][0]

    def mib(path: Path) -> float:
        data = TransitionData.from_ogbench(load_split(path, task, env), sparse_reward=True)
        return sum(getattr(data, f.name).nbytes for f in dataclasses.fields(data)) / 2**20

    return {"shard_mib": round(mib(folder / "puzzle-4x4-play-v0-000.npz"), 1),
            "val_mib": round(mib(next(folder.glob("*-val.npz"))), 1)}


def write_data(data_dir: Path, rows_per_shard: int) -> None:
    from bench.data import stand_in
    from bench.data.loading import LargeDataset
    from bench.tasks import resolve_task

    task = resolve_task(TASK)
    length = task.info.episode_limit
    for folder, shards in LAYOUTS.values():
        began = time.perf_counter()
        stand_in.write(task, data_dir, large=LargeDataset(folder, "puzzle-4x4-play-v0", shards, "stand-in"),
                       episodes_per_file=max(1, rows_per_shard // length), episode_length=length)
        print(f"stand-in {folder} ({shards} shards): {time.perf_counter() - began:.1f} s", flush=True)


def markdown(result: dict) -> str:
    many, one = result["many"], result["one"]
    return "\n".join([
        "# Memory at scale: 100 shards against one (`python -m benchmarks.shard_memory`)",
        "",
        f"Written at revision `{result['code_revision']}` on {result['hardware'].get('cpu', '?')}. Two training "
        f"programs (BC pretraining, the smoke profile's sizes, {STEPS} updates, a shard switch every {INTERVAL}) "
        f"on puzzle-4x4 stand-in shards of {result['rows_per_shard']:,} rows each (random-action episodes of the "
        "real environment, labelled regenerated), each program in its own process, through the real training loop "
        "and shard loader. Peak memory is each program's peak resident set (`peak_rss_mib` of its summary).",
        "",
        "| layout | shards | shard loads | load s (all) | peak MiB |",
        "|---|---:|---:|---:|---:|",
        f"| {LAYOUTS['many'][0]} | 100 | {many['shard_loads']} | {many['load_s']:.1f} | {many['peak_rss_mib']:.0f} |",
        f"| {LAYOUTS['one'][0]} | 1 | {one['shard_loads']} | {one['load_s']:.1f} | {one['peak_rss_mib']:.0f} |",
        "",
        f"One shard in memory: {result['shard_mib']} MiB; the validation set: {result['val_mib']} MiB. "
        f"The 100-shard program's peak is {many['peak_rss_mib'] - one['peak_rss_mib']:+.0f} MiB from the 1-shard "
        f"program's (which holds one shard + the validation set + the program); holding every shard would add about "
        f"{99 * result['shard_mib']:.0f} MiB. Bound checked: 100-shard peak <= 1-shard peak + {SWITCH_SHARDS} shards (the "
        "transient of a switch: the file's arrays, the converted shard and its device copy) "
        f"({'holds' if result['within_bound'] else 'FAILS'}); one load per switch "
        f"({'holds' if result['one_load_per_switch'] else 'FAILS'}).",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows-per-shard", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("reports/benchmarks"))
    parser.add_argument("--data", type=Path, default=None, help="where the stand-in shards go (default "
                        "$TRQAM_BENCH_CACHE/shard-memory)")
    parser.add_argument("--child", choices=list(LAYOUTS), help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from bench.data.loading import cache_dir

    data_dir = args.data or cache_dir() / "shard-memory" / f"rows{args.rows_per_shard}"
    if args.child:
        summary = child(args.child, data_dir, args.store)
        print(json.dumps({"peak_rss_mib": summary["peak_rss_mib"], **summary["timed"]["data"],
                          "status": summary["status"]}))
        return 0
    from bench import provenance

    write_data(data_dir, args.rows_per_shard)
    result = {"code_revision": provenance.code_revision(), "hardware": provenance.hardware(),
              "rows_per_shard": args.rows_per_shard, **shard_mib(data_dir)}
    with tempfile.TemporaryDirectory() as store:
        for case in LAYOUTS:
            began = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "benchmarks.shard_memory", "--child", case, "--data",
                                   str(data_dir), "--store", str(Path(store) / case),
                                   "--rows-per-shard", str(args.rows_per_shard)],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
                return 1
            result[case] = json.loads(done.stdout.strip().splitlines()[-1]) | {
                "wall_s": round(time.perf_counter() - began, 1)}
            print(f"{case}: {result[case]}", flush=True)
    many, one = result["many"], result["one"]
    result["within_bound"] = many["peak_rss_mib"] <= one["peak_rss_mib"] + SWITCH_SHARDS * result["shard_mib"]
    result["one_load_per_switch"] = many["shard_loads"] == STEPS // INTERVAL and one["shard_loads"] == 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "shard_memory.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "SHARD_MEMORY.md").write_text(markdown(result))
    print(f"wrote {args.out / 'SHARD_MEMORY.md'} and shard_memory.json")
    return 0 if result["within_bound"] and result["one_load_per_switch"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
