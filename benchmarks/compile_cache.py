"""First-call (compilation) times with JAX's persistent compilation cache off, cold and warm (issue 32).

    python -m benchmarks.compile_cache [--method trqam] [--profile quick] [--out reports/benchmarks]

Trains the same short run three times, each program on its own (`python -m bench train`, a fresh
result store each time, the same regenerated data): with the cache off, on an empty cache (cold:
it compiles and writes), and on the cache the cold run filled (warm: it loads). Reads each run's
summary: the first host call of every phase (compilation with its first updates), the first
evaluation (the policy's compilation with its episodes) and the program's wall time. Writes
``compile_cache.json`` and ``COMPILE_CACHE.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASK = "cube-single-play-singletask-task1-v0"
SCHEDULE = ["--pretrain-steps", "200", "--offline-steps", "200", "--eval-interval", "200", "--eval-episodes", "2",
            "--log-interval", "10"]  # the first host call: compilation and 10 updates


def run(method: str, profile: str, cache: str, root: Path) -> dict:
    store = Path(tempfile.mkdtemp(dir=root, prefix="store-"))
    env = {**os.environ, "TRQAM_BENCH_RESULTS": str(store), "TRQAM_BENCH_COMPILE_CACHE": cache,
           "TRQAM_BENCH_BC_CACHE": str(store / "bc")}  # BC pretrains (and compiles) every time
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench", "train", "--method", method, "--task", TASK, "--profile",
                           profile, "--out", str(store / "run"), *SCHEDULE], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    timed = json.loads((store / "run" / "summary.json").read_text())["timed"]
    phases = {name: round(t["first_call_s"], 2) for name, t in timed.items() if "first_call_updates" in t}
    return {"first_call_s": phases, "first_evaluation_s": round(timed["evaluation"]["first_call_s"], 2),
            "compile_total_s": round(sum(phases.values()) + timed["evaluation"]["first_call_s"], 2),
            "program_wall_s": round(wall, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="trqam")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--out", type=Path, default=Path("reports/benchmarks"))
    parser.add_argument("--note", default="", help="what else the machine was doing, written under the table")
    args = parser.parse_args(argv)
    from bench import provenance
    from bench.config.profiles import get_profile
    from bench.data.loading import resolve_files
    from bench.tasks import resolve_task

    profile = get_profile(args.profile)  # the data first (regenerated once if missing): not in any timing
    resolve_files(resolve_task(TASK), profile.source, None, profile.regeneration, large=profile.large_datasets)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cache = root / "xla"
        results = {"off": run(args.method, args.profile, "off", root),
                   "cold": run(args.method, args.profile, str(cache), root),
                   "warm": run(args.method, args.profile, str(cache), root)}
        entries = sum(1 for _ in cache.rglob("*-cache"))
    info = {"method": args.method, "profile": args.profile, "task": TASK, "schedule": SCHEDULE,
            "code_revision": provenance.code_revision(), "hardware": provenance.hardware(),
            "cache_entries": entries, **results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compile_cache.json").write_text(json.dumps(info, indent=1) + "\n")
    lines = ["# JAX's persistent compilation cache: off, cold, warm (`python -m benchmarks.compile_cache`)", "",
             f"Written at revision `{info['code_revision']}` on {info['hardware'].get('cpu', '?')} "
             f"({info['hardware'].get('cpu_cores', '?')} cores). One `python -m bench train --method {args.method} "
             f"--profile {args.profile}` program on {TASK} ({' '.join(SCHEDULE)}), three times, each in a fresh "
             "result store: the cache off, on an empty cache (cold), on the cache the cold run filled (warm, "
             f"{entries} entries). Seconds of each phase's first host call (compilation and its first updates) and of "
             "the first evaluation (the policy's compilation and its episodes), from the runs' summaries.", "",
             "| cache | BC first call | offline first call | first evaluation | compilation in all | program wall |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['first_call_s'].get('pretrain', '')} | {r['first_call_s'].get('offline', '')} | "
                     f"{r['first_evaluation_s']} | {r['compile_total_s']} | {r['program_wall_s']} |")
    if args.note:
        lines += ["", f"Conditions: {args.note}"]
    (args.out / "COMPILE_CACHE.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
