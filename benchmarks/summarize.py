"""Turn pytest-benchmark's JSON into a Markdown table of rates, with the machine named.

    python -m benchmarks.summarize reports/benchmarks/latest.json reports/benchmarks/BENCHMARKS.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def summarize(data: dict) -> str:
    machine = data["machine_info"]
    cpu = machine.get("cpu", {})
    lines = [
        "# Benchmarks",
        "",
        f"Measured {data['datetime']} by `nox -s bench` on {cpu.get('brand_raw', machine.get('processor'))}"
        f" ({cpu.get('count', '?')} cores), {machine.get('python_implementation')} {machine.get('python_version')},"
        " JAX on CPU.",
        "",
        "`gflops_per_update_lb` is XLA's cost analysis of the compiled update. XLA counts the body of a",
        "loop once whatever its trip count, so the Euler steps and SDE rollouts inside an update are",
        "counted once each: the figure (and `achieved_gflop_per_s_lb`) is a lower bound.",
        "",
        "| benchmark | rate (mean) | unit | mean time per call | rounds | details |",
        "|---|---|---|---|---|---|",
    ]
    for b in data["benchmarks"]:
        info = dict(b.get("extra_info", {}))
        items, unit = info.pop("items_per_call", 1), info.pop("unit", "calls")
        mean = b["stats"]["mean"]
        if "gflops_per_update_lb" in info:  # XLA's FLOP count (a lower bound) times the measured rate
            info["achieved_gflop_per_s_lb"] = round(info["gflops_per_update_lb"] * items / mean, 1)
        details = ", ".join(f"{k}={v}" for k, v in info.items())
        lines.append(f"| {b['name']} | {items / mean:,.1f} | {unit}/s | {mean * 1e3:,.1f} ms "
                     f"| {b['stats']['rounds']} | {details} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    target.write_text(summarize(json.loads(source.read_text())))
    print(target.read_text())
