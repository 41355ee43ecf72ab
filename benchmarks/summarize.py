"""Turn pytest-benchmark's JSON into reports/benchmarks/BENCHMARKS.md, with the machine named.

    python -m benchmarks.summarize reports/benchmarks/latest.json reports/benchmarks/BENCHMARKS.md ["COMMAND"]

Records of `test_speed.py` carry a ``table`` key and get their own tables (updates against
the matmul ceiling, vectorised seeds, TRQAM's breakdown, the training loop's time split);
the rest are listed as rates. Every number comes from the JSON; the goals of issue 7 are
checked against it here, not asserted anywhere.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

CEILING_GOAL = 0.60  # TRQAM's paper-size update, share of the matmul ceiling
SEEDS_GOAL = 3.0  # per-seed throughput of 8 vectorised seeds over 1, quick size


def _rate(b: dict) -> float:
    """Items per second from the fastest round (the least disturbed by other load)."""
    return b["extra_info"].get("items_per_call", 1) / b["stats"]["min"]


def _updates(records: list[dict]) -> list[str]:
    ceiling = records[0]["extra_info"]["ceiling_gflop_per_s"]
    lines = ["## Updates against the matmul ceiling", "",
             f"Matmul ceiling measured in the same run: **{ceiling:,.1f} GFLOP/s** (float32 square products, "
             "best of 512/1024/2048, `benchmarks/flops.py`).", "",
             "One seed, K updates per host call through `bench.training.compiled.train_steps` (batch sampling included), "
             "fastest of 3 calls. `GFLOP/update` counts the program's jaxpr with every scan body times its trip "
             "count; `XLA, loops once` is XLA's cost analysis of the same program, which counts each loop body "
             "once (the two agree when the jaxpr count also takes loops once).", "",
             "| method | size | ms / update | GFLOP / update | XLA, loops once | achieved GFLOP/s | of ceiling |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for b in sorted(records, key=lambda b: (b["extra_info"]["size"] != "quick", b["extra_info"]["method"])):
        info = b["extra_info"]
        seconds = b["stats"]["min"] / info["items_per_call"]
        achieved = info["gflop_per_update"] / seconds
        lines.append(f"| {info['method']} | {info['size']} | {seconds * 1e3:,.1f} | {info['gflop_per_update']:,.2f} "
                     f"| {info['xla_gflop_loops_once']:,.2f} | {achieved:,.1f} | {achieved / ceiling:.0%} |")
    trqam = [b for b in records if b["extra_info"]["method"] == "trqam" and b["extra_info"]["size"] == "paper"]
    if trqam:
        info = trqam[0]["extra_info"]
        share = info["gflop_per_update"] / (trqam[0]["stats"]["min"] / info["items_per_call"]) / ceiling
        verdict = "met" if share >= CEILING_GOAL else "**not met**"
        lines += ["", f"Goal: TRQAM's paper-size update at >= {CEILING_GOAL:.0%} of the ceiling: {share:.1%}, {verdict}."]
    return lines


def _seeds(records: list[dict]) -> list[str]:
    by_method: dict[str, dict[tuple[int, str], float]] = defaultdict(dict)
    for b in records:
        info = b["extra_info"]
        by_method[info["method"]][info["seeds"], info.get("seed_axis", "vmap") if info["seeds"] > 1 else "one"] = \
            _rate(b)
    columns = sorted({c for rates in by_method.values() for c in rates}, key=lambda c: (c[0], c[1] != "vmap"))
    many = [c for c in columns if c[0] > 1]
    lines = ["## Seeds in one program (quick size)", "",
             "Seed-updates per second with S seeds trained by one program (5 updates per call, fastest of 2 calls), "
             "the seed axis walked two ways (`bench.training.compiled`, ``seed_axis``): **vmap**, every product batched "
             "over the seeds' parameters, optimiser states and keys; **map**, the seeds one after another inside "
             "the program. The speed-up is per-seed throughput over S = 1.", "",
             "| " + " | ".join(["method", *(f"S={s} {a} seed-updates/s" if s > 1 else f"S={s} seed-updates/s"
                                           for s, a in columns),
                                *(f"S={s} {a} speed-up" for s, a in many)]) + " |",
             "|---|" + "---:|" * (len(columns) + len(many))]
    for method, rates in sorted(by_method.items()):
        base = rates.get((1, "one"))
        cells = [f"{rates[c]:,.1f}" if c in rates else "" for c in columns]
        ups = [f"{rates[c] / base:.2f}x" if base and c in rates else "" for c in many]
        lines.append(f"| {method} | " + " | ".join(cells + ups) + " |")
    lines.append("")
    for axis in sorted({a for s, a in many if s == 8}, key=lambda a: a != "vmap"):
        eight = {m: r[8, axis] / r[1, "one"] for m, r in by_method.items() if (1, "one") in r and (8, axis) in r}
        met = [m for m, x in eight.items() if x >= SEEDS_GOAL]
        lines.append(f"Goal: 8 seeds at >= {SEEDS_GOAL:g}x the per-seed throughput of one, {axis}: met by "
                     f"{len(met)} of {len(eight)} methods (range {min(eight.values()):.2f}x to "
                     f"{max(eight.values()):.2f}x).  ")
    return lines


def _breakdown(record: dict) -> list[str]:
    lines = ["## Where TRQAM's paper-size update spends its time", "",
             "Each part compiled and timed alone (fastest of 3), with its FLOPs; parts overlap in the whole "
             "update, which XLA fuses, so they do not add up to it exactly.", "",
             "| part | ms | GFLOP | GFLOP/s |", "|---|---:|---:|---:|"]
    for row in record["extra_info"]["rows"]:
        lines.append(f"| {row['part']} | {row['ms']:,.1f} | {row['gflop']:,.2f} | {row['gflop_per_s']:,.1f} |")
    return lines


def _loop(record: dict) -> list[str]:
    info = record["extra_info"]
    parts = [k for k in ("setup", "first_call", "updates", "evaluation", "logging", "checkpoints") if k in info]
    other = info["total"] - sum(info[k] for k in parts)
    lines = ["## The training loop's time", "",
             f"A real run through `bench.training.pipeline` ({info['items_per_call']} TRQAM steps at the quick size on "
             "regenerated cube-single data, 100 updates per host call, one evaluation of 50 episodes at the end), "
             "in seconds:", "",
             "| " + " | ".join(parts) + " | other | total |", "|" + "---:|" * (len(parts) + 2),
             "| " + " | ".join(f"{info[k]:,.2f}" for k in parts) + f" | {other:,.2f} | {info['total']:,.2f} |", "",
             f"Outside the compiled updates (after {'creating the agents and ' if 'setup' in info else ''}"
             "the first, compiling call; evaluation apart): "
             f"**{info['outside_share']:.1%}** of the loop's time."]
    return lines


def _authors(records: list[dict]) -> list[str]:
    import statistics

    commit = records[0]["extra_info"].get("reference_commit", "unknown")
    lines = ["## TRQAM's update beside the authors'", "",
             f"The authors' `TRQAMAgent.update` (github.com/yonghdong/trqam at `{commit[:10]}`, imported at run time "
             "from `$TRQAM_REFERENCE_DIR`) and ours (`parity.compare.OURS['trqam']`, built from the same config), "
             "one update on the same batch, compiled first, rounds alternating between the two (`test_authors.py`). "
             "Median and fastest of the rounds; the ratio is ours over theirs by the median (below 1: ours is faster).",
             "", "| size | networks | critics | batch | authors ms (median / fastest) | ours ms (median / fastest) "
             "| ours / authors |", "|---|---|---:|---:|---:|---:|---:|"]
    for b in sorted(records, key=lambda b: b["extra_info"]["size"] != "quick"):
        info = b["extra_info"]
        theirs, ours = statistics.median(info["authors_seconds"]), statistics.median(info["ours_seconds"])
        lines.append(f"| {info['size']} | {len(info['hidden'])}x{info['hidden'][0]} | {info['num_critics']} "
                     f"| {info['batch_size']} | {theirs * 1e3:,.1f} / {min(info['authors_seconds']) * 1e3:,.1f} "
                     f"| {ours * 1e3:,.1f} / {min(info['ours_seconds']) * 1e3:,.1f} | {ours / theirs:.3f} |")
    return lines


def summarize(data: dict, command: str = "nox -s bench") -> str:
    machine = data["machine_info"]
    cpu = machine.get("cpu", {})
    tables: dict[str, list[dict]] = defaultdict(list)
    for b in data["benchmarks"]:
        tables[b.get("extra_info", {}).get("table", "other")].append(b)
    device = next((b["extra_info"]["device"] for b in data["benchmarks"] if "device" in b.get("extra_info", {})),
                  "cpu")
    lines = ["# Benchmarks", "",
             f"Measured {data['datetime']} by `{command}` on {cpu.get('brand_raw', machine.get('processor'))}"
             f" ({cpu.get('count', '?')} cores), {machine.get('python_implementation')} "
             f"{machine.get('python_version')}, JAX device {device}.", ""]
    if tables.get("updates"):
        lines += _updates(tables["updates"]) + [""]
    if tables.get("seeds"):
        lines += _seeds(tables["seeds"]) + [""]
    if tables.get("authors"):
        lines += _authors(tables["authors"]) + [""]
    for record in tables.get("breakdown", []):
        lines += _breakdown(record) + [""]
    for record in tables.get("loop", []):
        lines += _loop(record) + [""]
    if tables.get("other"):
        lines += ["## Other rates", "", "| benchmark | rate (fastest round) | unit | mean time per call | rounds | details |",
                  "|---|---|---|---|---|---|"]
        for b in tables["other"]:
            info = dict(b.get("extra_info", {}))
            items, unit = info.pop("items_per_call", 1), info.pop("unit", "calls")
            details = ", ".join(f"{k}={v}" for k, v in info.items())
            lines.append(f"| {b['name']} | {items / b['stats']['min']:,.1f} | {unit}/s | {b['stats']['mean'] * 1e3:,.1f} ms "
                         f"| {b['stats']['rounds']} | {details} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    target.write_text(summarize(json.loads(source.read_text()), *sys.argv[3:4]))  # [the command that measured it]
    print(target.read_text())
