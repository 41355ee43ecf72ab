"""Offline-to-online learning curves from stored runs: a figure (PNG and PDF) and a table.

    python -m bench curves RUN_DIR [RUN_DIR ...] --out reports/curves

Each run's ``evaluations.csv`` gives success against training steps: the offline phase's
gradient steps, then the online phase's environment steps (one update each after the
warm-up), counted on from the end of the offline phase, as the QAM paper's curves are
(offline 50K .. 1M, online 1.05M .. 1.5M; online-only RLPD over the others' online
phase). BC pretraining is not counted. Runs of one
method (several seeds) are averaged per step, with a band of +-1 standard deviation.
Everything drawn comes from the files; nothing is typed in.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.files import temp_beside
from bench.training.runstore import write_atomic

# One colour per method in every figure of the suite.
COLOURS = {
    "bc": "#8c564b", "trqam": "#d62728", "qam": "#1f77b4", "qam-e": "#17becf", "qam-f": "#9edae5",
    "bam": "#aec7e8", "fql": "#2ca02c", "dsrl": "#ff7f0e", "ifql": "#9467bd", "cgql": "#c5b0d5",
    "cgql-m": "#e377c2", "cgql-l": "#f7b6d2", "rebrac": "#bcbd22", "fbrac": "#dbdb8d", "fawac": "#98df8a",
    "fedit": "#ffbb78", "qsm": "#c49c94", "dac": "#393b79", "rlpd": "#7f7f7f",
}


def colour(method: str) -> str:
    return COLOURS.get(method.lower(), "#333333")


def load_curve(run: Path) -> dict:
    """One run: method, task, seed, offline length and its (step, success) evaluations."""
    summary_path, evals_path = run / "summary.json", run / "evaluations.csv"
    if not summary_path.exists() or not evals_path.exists():
        raise BenchError(f"{run} is not a finished run (no summary.json or evaluations.csv); finish it with "
                         "`python -m bench train` first")
    summary = json.loads(summary_path.read_text())
    with open(evals_path, newline="") as f:
        return curve(summary, list(csv.DictReader(f)))


def curve(summary: dict, evaluations: list[dict]) -> dict:
    """`load_curve` of records already read (a run of `bench.reporting.runset`)."""
    offline = summary["steps"].get("offline", 0)
    points = []
    for row in evaluations:
        if row["phase"] == "pretrain":
            continue
        step = int(row["step"]) + (offline if row["phase"] == "online" else 0)
        points.append((step, row["phase"], float(row["success_rate"])))
    return {"method": summary["method"], "task": summary["task"], "seed": summary["seed"],
            "profile": summary["profile"], "data": summary["data"]["kind"], "offline_steps": offline,
            "online_steps": summary["steps"].get("online", 0), "points": points,
            "success_by_phase": summary["success_by_phase"], "online": summary.get("online")}


def _by_method(curves: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for c in curves:
        grouped[c["method"]].append(c)
    return grouped


def plot(curves: list[dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), constrained_layout=True)
    for method, runs in _by_method(curves).items():
        steps = sorted({s for c in runs for s, _, _ in c["points"]})
        values = [[v for c in runs for s2, _, v in c["points"] if s2 == s] for s in steps]
        mean = np.array([np.mean(v) for v in values])
        std = np.array([np.std(v) for v in values])
        shade = colour(method)
        ax.plot(steps, mean, marker="o", ms=3, label=f"{method.upper()} ({len(runs)} seed{'s' * (len(runs) > 1)})",
                color=shade)
        if len(runs) > 1:
            ax.fill_between(steps, mean - std, mean + std, alpha=0.2, color=shade)
    boundaries = {c["offline_steps"] for c in curves if c["online_steps"] and c["offline_steps"]}
    for b in boundaries:
        ax.axvline(b, color="black", lw=0.8, ls="--")
        ax.text(b, 0.97, " online phase", va="top", ha="left", fontsize=8, transform=ax.get_xaxis_transform())
    starts = {c["offline_steps"] + c["online"]["warmup"] for c in curves
              if c["online_steps"] and (c.get("online") or {}).get("warmup")}
    for b in starts:  # before this, the online phase only collects transitions
        ax.axvline(b, color="grey", lw=0.8, ls=":")
        ax.text(b, 0.90, " online updates start", va="top", ha="left", fontsize=8, color="grey",
                transform=ax.get_xaxis_transform())
    tasks = sorted({c["task"] for c in curves})
    kinds = sorted({c["data"] for c in curves})
    profiles = sorted({c["profile"] for c in curves})
    ax.set_title(f"{', '.join(tasks)}\n{'/'.join(profiles)} profile, {'/'.join(kinds)} data", fontsize=9)
    ax.set_xlabel("training steps (offline gradient steps, then online environment steps)")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    return save_figure(fig, out)


def save_figure(fig, out: Path) -> list[Path]:
    """``fig`` as ``out``.png and ``out``.pdf (each written atomically; the PDF without a creation
    date, so the same results give the same file), then closed. Every figure of the suite."""
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix in ("png", "pdf"):
        path = out.with_name(f"{out.name}.{suffix}")
        fd, tmp = temp_beside(path)  # a name of its own: two reports drawing at once never share it
        os.close(fd)
        metadata = {"CreationDate": None} if suffix == "pdf" else None
        try:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", metadata=metadata, format=suffix)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        paths.append(path)
    plt.close(fig)
    return paths


def table(curves: list[dict], figure: Path, sources: list[Path]) -> str:
    kinds = sorted({c["data"] for c in curves})
    lines = [
        "# Offline-to-online learning curves",
        "",
        f"Generated by `python -m bench curves` from {len(curves)} stored run(s); figure: "
        f"[{figure.with_suffix('.png').name}]({figure.with_suffix('.png').name}) (also PDF).",
        f"Data: {', '.join(kinds)}." + (" Regenerated data is OGBench-format data produced with ogbench's own "
                                        "oracles here, not the official datasets." if "regenerated" in kinds else ""),
    ]
    if any(c["profile"] != "paper" for c in curves):
        lines.append("Runs of the smoke or quick profile are small CPU runs with one set of seeds: they show the "
                     "phase working, not the papers' results.")
    warmups = sorted({c["online"]["warmup"] for c in curves if (c.get("online") or {}).get("warmup") is not None})
    if warmups:
        lines.append(f"Online updates start after {', '.join(map(str, warmups))} online steps: evaluations before "
                     "that are of the unchanged offline agent (with new evaluation seeds), so their spread is the "
                     "evaluation noise.")
    lines += [
        "",
        "| method | task | seed | profile | offline steps | success after offline | online steps | success after "
        "online | training episodes (successful) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in curves:
        online = c["online"] or {}
        episodes = (f"{online['episodes']} ({online['train_success_rate']:.2f})"
                    if online.get("train_success_rate") is not None else str(online.get("episodes", "")))
        off, on = c["success_by_phase"].get("offline"), c["success_by_phase"].get("online")
        lines.append(f"| {c['method']} | {c['task']} | {c['seed']} | {c['profile']} | {c['offline_steps']} "
                     f"| {'' if off is None else f'{off:.2f}'} | {c['online_steps']} "
                     f"| {'' if on is None else f'{on:.2f}'} | {episodes} |")
    lines += ["", "Every evaluation (step counted from the start of the offline phase):", "",
              "| method | seed | " + " | ".join(str(s) for s in sorted({s for c in curves for s, _, _ in c["points"]}))
              + " |"]
    steps = sorted({s for c in curves for s, _, _ in c["points"]})
    lines.append("|---|---|" + "---|" * len(steps))
    for c in curves:
        values = {s: v for s, _, v in c["points"]}
        lines.append(f"| {c['method']} | {c['seed']} | "
                     + " | ".join(f"{values[s]:.2f}" if s in values else "" for s in steps) + " |")
    command = "python -m bench curves " + " ".join(str(p) for p in sources) + f" --out {figure}"
    lines += ["", "Runs:", ""] + [f"- `{p}`" for p in sources] + ["", f"Command: `{command}`"]
    return "\n".join(lines) + "\n"


def write(runs: list[Path], out: Path) -> tuple[Path, list[Path]]:
    """The figure ``out``.png/.pdf and the table ``out``.md for ``runs``."""
    if not runs:
        raise BenchError("no run directories given: pass the runs to draw, e.g. results/runs/quick/*/TASK/seed0-online10000")
    curves = [load_curve(Path(r)) for r in runs]
    # Online-only methods (RLPD) are drawn over the others' online phase, as the QAM paper's curves are.
    offset = max((c["offline_steps"] for c in curves), default=0)
    for c in curves:
        if c["offline_steps"] == 0 and offset:
            c["points"] = [(s + offset, phase, v) for s, phase, v in c["points"]]
    figures = plot(curves, out)
    report = out.with_suffix(".md")
    write_atomic(report, table(curves, out, [Path(r) for r in runs]))
    return report, figures
