"""The paper's figures, drawn from stored results alone (PNG and PDF; `nox -s figures`).

    python -m bench figures --profile quick

Inputs: the runs under ``results/runs/PROFILE`` (summaries, ``metrics.csv``,
``evaluations.csv``), the published numbers under ``results/reference/`` and the
closed-form studies under ``results/closed-form/`` (`bench.reporting.closed_form`). One colour per
method throughout (`bench.reporting.curves.COLOURS`). Each figure's title says the profile and the data kind;
panels on the closed-form problem say so.

* ``main_table``: success per domain, grouped bars per method with bootstrap 95% intervals;
  the TRQAM paper's table (bar) and the QAM paper's domain mean (cross) marked where published.
* ``aggregate_metrics``, ``performance_profile``, ``probability_of_improvement``: rliable's
  statistics over all tasks and seeds (`bench.reporting.aggregate`): IQM, mean, median and optimality
  gap with stratified bootstrap intervals, the fraction of runs above each success threshold,
  and P(TRQAM beats each other method), intervals only with 3+ seeds per task.
* ``learning_curves``: success over fine-tuning steps (mean over tasks and seeds, 95% band),
  offline then online; and the QAM paper's published curves for the same domains.
* ``kl_tracking``: TRQAM's lambda and realised KL against its budget over training, and
  internal against external KL on the closed-form problem.
* ``kl_success``: success against the realised path KL (`bench.reporting.tradeoff`): QAM across beta,
  TRQAM across KL budgets, BC at KL 0; each seed a point, each setting its mean with a 95%
  interval.
* ``kl_budget_sensitivity``: success against the KL budget (the profile's budget study), and
  realised KL and mean Q against the budget on the closed-form problem.
* ``collapse``: QAM against TRQAM over training (adjoint loss, success), and Lemma 1's
  critic-error amplification on the closed-form problem.
"""

from __future__ import annotations

import csv
import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.reporting import aggregate, closed_form, tradeoff
from bench.reporting.curves import COLOURS, colour, curve, save_figure
from bench.reporting.runset import RunSet
from bench.reporting.tables import (
    REFERENCE_DIR,
    aggregate_rows,
    build,
    load_qam_domain_reference,
    load_qam_reference,
    load_trqam_reference,
    measured_successes,
    paper_name,
    scores_by_method,
    task_interval,
)
from bench.tasks import DOMAINS_BY_NAME, resolve_task


def _sorted_methods(methods) -> list[str]:
    order = list(COLOURS)
    return sorted(set(methods), key=lambda m: order.index(m) if m in order else len(order))


def _csv_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@dataclass(frozen=True)
class Inputs:
    """What every figure draws from: the stored runs, the published numbers, the closed-form studies."""

    runs: list[dict]  # `bench.reporting.runset`: each verified run's summary, config and logs (one data group)
    runs_root: Path
    reference_dir: Path
    closed_dir: Path
    protocol: str = "trqam"  # the paper whose protocol the profile follows (bench.config.profiles.Profile.protocol)

    @functools.cached_property
    def measured(self) -> dict:
        """``(method, task, phase) -> successes`` of the default runs, read once for every figure."""
        return measured_successes([r for r in self.runs if r["default"]])

    @functools.cached_property
    def aggregates(self) -> tuple[list[dict], list[dict]]:
        """rliable's statistics and the probability of improvement (`bench.reporting.tables.aggregate_rows`),
        bootstrapped once for the three figures that draw them."""
        return aggregate_rows(self.measured)


def _label(runs: list[dict], profile: str, other_groups: int = 0) -> str:
    kinds = sorted({r["data_id"].split()[0] for r in runs})
    note = "" if kinds == ["official"] and profile == "paper" else " (not a reproduction of the papers' numbers)"
    others = f"; runs on {other_groups} other set(s) of data: in the tables only" if other_groups else ""
    return f"profile {profile}, {'/'.join(kinds)} data{note}{others}"


def _plain_log_ticks(axis, values) -> None:
    """Ticks at ``values`` written plainly (0.25, 1, 4) instead of a log axis's 10^x clutter."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    axis.set_major_locator(FixedLocator(sorted(values)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(NullLocator())


def _mean_band(values: list[float]) -> tuple[float, float, float]:
    """Mean and band: the bootstrap 95% interval with three or more values, else their range."""
    interval = task_interval(np.asarray(values))
    if interval.low is None:
        return interval.mean, interval.lowest, interval.highest
    return interval.mean, interval.low, interval.high


# ---- the main table ----------------------------------------------------------------------
def main_table(inputs: Inputs):
    import matplotlib.pyplot as plt

    measured = inputs.measured
    reference_dir = inputs.reference_dir
    rows = [r for r in build(measured, load_qam_reference(reference_dir), load_trqam_reference(reference_dir),
                             profile="", official=False, protocol=inputs.protocol,
                             qam_domain_ref=load_qam_domain_reference(reference_dir))["domains"]
            if r["phase"] == "offline"]
    domains = list(dict.fromkeys(r["domain"] for r in rows))
    methods = _sorted_methods(r["method"] for r in rows)
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(domains) * max(1, len(methods)) / 3), 4.0))
    published_drawn = {"trqam": False, "qam": False}
    for i, method in enumerate(methods):
        for j, domain in enumerate(domains):
            row = next((r for r in rows if r["method"] == method and r["domain"] == domain), None)
            if row is None:
                continue
            x = j + (i - (len(methods) - 1) / 2) * width
            mean = float(row["mean"])
            interval = bool(row["ci_low"])
            low, high = (float(row["ci_low"]), float(row["ci_high"])) if interval else (float(row["min"]),
                                                                                         float(row["max"]))
            ax.bar(x, mean, width, color=colour(method), label=method if j == 0 else None, edgecolor="black",
                   linewidth=0.4)
            ax.plot(x, mean, marker="o", markersize=4, color=colour(method), markeredgecolor="black",
                    markeredgewidth=0.5, linestyle="none")  # a marker on every bar: a 0 is drawn, not missing
            ax.errorbar(x, mean, yerr=[[max(0.0, mean - low)], [max(0.0, high - mean)]], color="black",
                        capsize=2 if interval else 0, linewidth=1 if interval else 0.8,
                        linestyle="none")
            if row.get("trqam_paper"):
                ax.plot([x - width / 2, x + width / 2], [float(row["trqam_paper"].split()[0])] * 2, color="black",
                        linewidth=2, label=None if published_drawn["trqam"] else "TRQAM paper (Table 1)")
                published_drawn["trqam"] = True
            if row.get("qam_paper"):
                ax.plot(x, float(row["qam_paper"]), "kx", label=None if published_drawn["qam"] else "QAM paper (1M)")
                published_drawn["qam"] = True
    ax.set_xticks(range(len(domains)))
    ax.set_xticklabels([f"{d}\n({next(r['tasks_measured'] for r in rows if r['domain'] == d)} tasks)"
                        for d in domains])
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(-3, 100)  # room below 0, so a marker at 0 is not hidden by the axis
    ax.axhline(0, color="0.6", linewidth=0.6)
    if not any(published_drawn.values()):
        ax.text(0.5, 0.97, "no published numbers for these domains", transform=ax.transAxes, ha="center",
                va="top", fontsize=8, color="0.3")
    ax.set_title("Offline success per domain, mean over tasks and seeds; bars: 95% CI with 3+ seeds per task,\n"
                 "otherwise (no caps) the range of the runs", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    return fig


# ---- rliable's statistics -------------------------------------------------------------------
def _offline_scores(inputs: Inputs) -> dict[str, list[np.ndarray]]:
    """method -> one array of offline successes (over seeds) per task, tasks in name order."""
    by_method = scores_by_method(inputs.measured)
    return {method: [tasks[t] for t in sorted(tasks)] for (method, phase), tasks in by_method.items()
            if phase == "offline"}


def aggregate_metrics(inputs: Inputs):
    import matplotlib.pyplot as plt

    rows = [r for r in inputs.aggregates[0]
            if r["phase"] == "offline"]
    methods = _sorted_methods(r["method"] for r in rows)
    names = list(aggregate.METRICS)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 0.45 * len(methods) + 1.6), sharey=True)
    for ax, name in zip(axes, names, strict=True):
        for y, method in enumerate(methods):
            row = next(r for r in rows if r["method"] == method and r["statistic"] == name)
            value = float(row["value"])
            interval = bool(row["ci_low"])
            low, high = (float(row["ci_low"]), float(row["ci_high"])) if interval else (value, value)
            ax.plot([low, high], [y, y], color=colour(method), linewidth=6 if interval else 0, alpha=0.5,
                    solid_capstyle="butt")
            ax.plot(value, y, "o", color=colour(method), markeredgecolor="black", markersize=6)
        ax.set_title(name + (" (lower is better)" if name == "optimality gap" else ""), fontsize=9)
        ax.set_xlabel("success rate (%)")
        ax.set_xlim(-3, max(10.0, ax.get_xlim()[1]))  # a point at 0 stays inside the axes
    axes[0].set_yticks(range(len(methods)))
    axes[0].set_yticklabels(methods)
    seeds = min((r["seeds_per_task"] for r in rows), default=0)
    tasks = max((r["tasks"] for r in rows), default=0)
    fig.text(0.5, -0.02, f"Offline, {tasks} task(s), {seeds}+ seeds per task. Bars: stratified bootstrap 95% intervals"
             + ("" if seeds >= aggregate.MIN_RUNS_FOR_INTERVAL else
                f" (none here: fewer than {aggregate.MIN_RUNS_FOR_INTERVAL} seeds per task; ticks are point estimates)"),
             ha="center", fontsize=8)
    return fig


def performance_profile(inputs: Inputs):
    import matplotlib.pyplot as plt

    scores = _offline_scores(inputs)
    taus = np.linspace(0.0, 1.0, 101)
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    for method in _sorted_methods(scores):
        profile = aggregate.performance_profile(scores[method], taus)
        ax.plot(100 * taus, profile, color=colour(method), label=method, marker="o", markersize=3, markevery=10)
        if aggregate.has_interval(scores[method]):
            low, high = aggregate.stratified_interval(lambda s: aggregate.performance_profile(s, taus), scores[method])
            ax.fill_between(100 * taus, low, high, color=colour(method), alpha=0.2, linewidth=0)
    ax.set_xlabel("success rate threshold tau (%)")
    ax.set_ylabel("fraction of runs with success > tau")
    ax.set_ylim(-0.03, 1.03)  # a method whose every run is 0 is a line of markers at 0, not nothing
    ax.set_title("Performance profile (offline, all tasks and seeds; bands: 95% stratified bootstrap\n"
                 f"where every task has {aggregate.MIN_RUNS_FOR_INTERVAL}+ seeds)", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def probability_of_improvement(inputs: Inputs):
    import matplotlib.pyplot as plt

    rows = [r for r in inputs.aggregates[1]
            if r["phase"] == "offline"]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * max(1, len(rows)) + 1.4))
    if not rows:
        ax.text(0.5, 0.5, "no TRQAM runs beside another method's on the same tasks", transform=ax.transAxes,
                ha="center")
        return fig
    for y, row in enumerate(rows):
        value = float(row["probability"])
        ax.barh(y, value, color=colour(row["over"]), alpha=0.7, edgecolor="black", linewidth=0.4)
        if row["ci_low"]:
            low, high = float(row["ci_low"]), float(row["ci_high"])
            ax.errorbar(value, y, xerr=[[max(0.0, value - low)], [max(0.0, high - value)]], color="black", capsize=3)
    ax.axvline(0.5, color="0.4", linestyle="--", linewidth=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"TRQAM over {r['over']} ({r['tasks']} task(s), {r['seeds_per_task']} seeds)" for r in rows],
                       fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("P(a TRQAM run beats a run of the other method on the same task)")
    ax.set_title("Probability of improvement (offline; whiskers: 95% stratified bootstrap where every task\n"
                 f"has {aggregate.MIN_RUNS_FOR_INTERVAL}+ seeds)", fontsize=9)
    return fig


# ---- learning curves ---------------------------------------------------------------------
def _curve_points(run: dict) -> list[tuple[int, float]]:
    """(fine-tuning step, success): offline steps, then online steps counted on from there."""
    return [(step, success) for step, _, success in curve(run["summary"], run["evaluations"])["points"]]


def _draw_curves(ax, grouped: dict[str, dict[int, list[float]]], bc_level: dict[str, list[float]]):
    for method in _sorted_methods(grouped):
        steps = sorted(grouped[method])
        stats = [_mean_band(grouped[method][s]) for s in steps]
        ax.plot(steps, [100 * s[0] for s in stats], color=colour(method), label=method, marker="o", markersize=3)
        ax.fill_between(steps, [100 * s[1] for s in stats], [100 * s[2] for s in stats], color=colour(method),
                        alpha=0.2, linewidth=0)
    for method, values in bc_level.items():
        ax.axhline(100 * float(np.mean(values)), color=colour(method), linestyle=":", label=f"{method} (final)")


def learning_curves(inputs: Inputs):
    import matplotlib.pyplot as plt

    default = [r for r in inputs.runs if r["default"]]
    grouped: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    bc_level: dict[str, list[float]] = defaultdict(list)
    for run in default:
        method = run["summary"]["method"]
        if method == "bc":
            bc_level[method].append(float(run["summary"]["final_success"]))
            continue
        # one value per (task, seed) at each step; averaged over tasks and seeds
        for step, success in _curve_points(run):
            grouped[method][step].append(success)
    published = _published_curves(inputs.reference_dir, {r["summary"]["task"] for r in default})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    _draw_curves(axes[0], grouped, bc_level)
    online = max((r["summary"]["steps"].get("offline", 0) for r in default if r["summary"]["steps"].get("online")),
                 default=None)
    if online is not None:
        axes[0].axvline(online, color="0.5", linestyle="--", linewidth=0.8, label="online phase starts")
    axes[0].set_title("Measured: success over fine-tuning\n(mean over tasks and seeds; band: 95% CI, or the range below 3 runs)", fontsize=9)
    axes[0].set_xlabel("fine-tuning step (offline gradient steps, then online environment steps)")
    axes[0].set_ylabel("success rate (%)")
    axes[0].set_ylim(-3, 100)  # a curve at 0 stays visible
    axes[0].legend(fontsize=7)
    tasks, curves = published
    for method, by_step in curves.items():
        steps = sorted(by_step)
        means = [100 * float(np.mean(by_step[s])) for s in steps]
        sem = [100 * 1.96 * float(np.std(by_step[s], ddof=1) / np.sqrt(len(by_step[s]))) for s in steps]
        axes[1].plot(steps, means, color=colour(method), label=method)
        axes[1].fill_between(steps, np.subtract(means, sem), np.add(means, sem), color=colour(method), alpha=0.15,
                             linewidth=0)
    axes[1].axvline(1_000_000, color="0.5", linestyle="--", linewidth=0.8)
    domains = sorted({resolve_task(t).domain for t in tasks})
    fallback = not tasks or not {r["summary"]["task"] for r in default} & set(tasks)
    protocol = ("the QAM paper's protocol, as these runs" if inputs.protocol == "qam" else
                "the QAM paper's protocol (from scratch, discount 0.99, 12 seeds), not these runs'")
    axes[1].set_title(f"Published (QAM paper, results/reference/): {', '.join(domains)}, {len(tasks)} tasks,\n"
                      f"mean over tasks and seeds, 95% CI; {protocol}"
                      + ("\n(no measured task is among the papers' tasks: a comparable domain)" if fallback else ""),
                      fontsize=9)
    axes[1].set_xlabel("step (offline 1M, then online)")
    axes[1].set_ylim(0, 100)
    axes[1].legend(fontsize=7, ncol=2)
    return fig


def _published_curves(reference_dir: Path, measured_tasks: set[str], fallback: str = "cube-double-play"):
    """The QAM paper's curves for the measured tasks' domains (all five tasks of each); when no
    measured task is in the paper's domains, those of ``fallback`` (a domain the suite's quick
    tasks resemble), so the published shape is always on the page."""
    domains = {resolve_task(t).domain for t in measured_tasks} & set(DOMAINS_BY_NAME)
    domains = domains or {fallback}
    tasks: set[str] = set()
    curves: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    wanted = {paper_name(m) for m in ("trqam", "qam", "qam-e", "fql", "dsrl", "rlpd")}
    for row in _csv_rows(reference_dir / "qam_2601.14234_curves.csv"):
        if resolve_task(row["task"]).domain not in domains or row["method"] not in wanted:
            continue
        tasks.add(row["task"])
        per_seed = [float(row[f"seed{i}"]) for i in range(int(row["n_seeds"]))]
        curves[row["method"].lower()][int(row["step"])].append(float(np.mean(per_seed)))
    return sorted(tasks), curves


# ---- KL tracking -------------------------------------------------------------------------
def _not_computed(ax) -> None:
    ax.text(0.5, 0.5, "closed-form study not stored\n(`python -m bench reproduce` computes it)",
            transform=ax.transAxes, ha="center", va="center", fontsize=8)


def _legend_or_say(ax, missing: str) -> None:
    """The panel's legend, or, when it has no labelled curve, ``missing`` written on it (not an empty legend)."""
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, missing, transform=ax.transAxes, ha="center", va="center", fontsize=8)


def _trace(run: dict, column: str) -> tuple[list[int], list[float]]:
    rows = [r for r in run["metrics"] if r["phase"] != "pretrain" and r.get(column) not in (None, "")]
    return [int(r["step"]) for r in rows], [float(r[column]) for r in rows]


def kl_tracking(inputs: Inputs):
    import matplotlib.pyplot as plt

    trqam = [r for r in inputs.runs if r["summary"]["method"] == "trqam"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    budgets = sorted({float(r["agent_config"]["kl_budget"]) for r in trqam})
    cmap = plt.get_cmap("Reds")
    named: set[float] = set()
    for run in trqam:
        budget = float(run["agent_config"]["kl_budget"])
        shade = cmap(0.4 + 0.6 * (budgets.index(budget) / max(1, len(budgets) - 1)))
        steps, kl = _trace(run, "trqam/kl_ema")
        axes[0].plot(steps, kl, color=shade, linewidth=0.8)
        steps, lam = _trace(run, "trqam/lambda")
        runs_here = sum(float(r["agent_config"]["kl_budget"]) == budget for r in trqam)
        axes[1].plot(steps, lam, color=shade, linewidth=0.8,
                     label=None if budget in named else f"budget {budget:g} ({runs_here} run{'s' * (runs_here > 1)})")
        named.add(budget)
    for budget in budgets:
        shade = cmap(0.4 + 0.6 * (budgets.index(budget) / max(1, len(budgets) - 1)))
        axes[0].axhline(budget, color=shade, linestyle="--", linewidth=1, label=f"budget {budget:g}")
    axes[0].set_title("TRQAM on OGBench: realised KL (EMA) vs budget", fontsize=9)
    axes[0].set_xlabel("offline fine-tuning step")
    axes[0].set_ylabel("path KL per action step (EMA)")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=7)
    axes[1].set_title("TRQAM on OGBench: lambda (one line per run)", fontsize=9)
    axes[1].set_xlabel("offline fine-tuning step")
    axes[1].set_ylabel("lambda")
    axes[1].set_yscale("log")
    if named:
        axes[1].legend(fontsize=7)
    rows = closed_form.read(inputs.closed_dir, "kl_tracking")
    if not rows:
        _not_computed(axes[2])
        return fig
    for mode, style in (("internal", "-"), ("external", "--")):
        part = [r for r in rows if r["mode"] == mode]
        name = "TRQAM (internal KL)" if mode == "internal" else "external-KL ablation"
        axes[2].plot([r["step"] for r in part], [r["path_kl"] for r in part], style, color=colour("trqam"),
                     linewidth=0.7, alpha=0.6, label=f"{name}: path KL estimate")
        axes[2].plot([r["step"] for r in part], [r["kl_ema"] for r in part], style, color=colour("trqam"),
                     linewidth=2, label=f"{name}: its EMA (clipped at 2 x budget)")
        axes[2].plot([r["step"] for r in part], [r["lambda"] / 10 for r in part], style, color="0.4",
                     linewidth=0.8, label=f"{name}: lambda / 10")
    axes[2].axhline(rows[0]["budget"], color="black", linewidth=1, label=f"budget {rows[0]['budget']:g}")
    axes[2].set_title("Closed-form problem (2-D Gaussian, docs/ALGORITHMS.md s5):\ninternal vs external KL", fontsize=9)
    axes[2].set_xlabel("update")
    axes[2].set_yscale("log")
    axes[2].legend(fontsize=7)
    return fig


# ---- KL against success -------------------------------------------------------------------
KNOB_SYMBOL = {"kl_budget": "budget", "inv_temp": "beta"}


def kl_success(inputs: Inputs):
    import matplotlib.pyplot as plt

    tasks = tradeoff.study_tasks(inputs.runs)
    found = tradeoff.points(inputs.runs, tasks or None)
    rows = tradeoff.settings(found)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    moved = [r for r in rows if r.method != "bc" and r.kl_mean is not None]
    if not moved:
        ax.text(0.5, 0.5, "no QAM or TRQAM runs with a logged path KL", transform=ax.transAxes, ha="center")
        return fig
    for r in rows:
        if r.method == "bc":
            ax.axhline(100 * r.success_mean, color=colour("bc"), linestyle="--", linewidth=1,
                       label=f"BC (KL 0), {r.runs} seeds")
            ax.axhspan(100 * r.ci_low, 100 * r.ci_high, color=colour("bc"), alpha=0.12, linewidth=0)
    labelled = set()
    for method in ("qam", "trqam"):
        chosen = sorted((r for r in moved if r.method == method), key=lambda r: r.kl_mean)
        if not chosen:
            continue
        seeds = [p for p in found if p.method == method and p.kl is not None]
        ax.scatter([p.kl for p in seeds], [100 * p.success for p in seeds], color=colour(method), s=12, alpha=0.45,
                   marker="o" if method == "qam" else "s", linewidth=0)
        ax.plot([r.kl_mean for r in chosen], [100 * r.success_mean for r in chosen], color=colour(method),
                linewidth=0.8, alpha=0.6)
        for r in chosen:
            knob = KNOB_SYMBOL[tradeoff.KNOBS[method]]
            ax.errorbar(r.kl_mean, 100 * r.success_mean,
                        xerr=[[max(0.0, r.kl_mean - r.kl_min)], [max(0.0, r.kl_max - r.kl_mean)]],
                        yerr=[[max(0.0, 100 * (r.success_mean - r.ci_low))],
                              [max(0.0, 100 * (r.ci_high - r.success_mean))]],
                        color=colour(method), marker="o" if method == "qam" else "s", markersize=6, capsize=3,
                        linestyle="none", label=None if method in labelled else
                        f"{method.upper()} across {knob} (mean over seeds; small: each seed)")
            labelled.add(method)
            # QAM's labels above its points, TRQAM's below: settings at the same place never overprint
            ax.annotate(f"{knob} {r.value:g}", (r.kl_mean, 100 * r.success_mean), textcoords="offset points",
                        xytext=(4, 5) if method == "qam" else (4, -11), fontsize=7, color=colour(method))
    ax.set_xscale("log")
    ax.set_xlabel("realised path KL per action step (mean over the second half of fine-tuning; bars: seed range)")
    ax.set_ylabel("final success rate (%)")
    top = max([100 * r.ci_high for r in rows] + [10.0])
    ax.set_ylim(-5, min(100.0, 1.15 * top))  # room below 0 for TRQAM's labels and markers at 0
    ax.axhline(0, color="0.6", linewidth=0.6)
    ax.set_title(f"Success against how far fine-tuning moved the policy from BC\n"
                 f"({', '.join(sorted(tasks)) or 'all tasks'}; intervals: Wilson 95% over pooled episodes)",
                 fontsize=9)
    ax.legend(fontsize=7)
    return fig


# ---- KL-budget sensitivity -----------------------------------------------------------------
def kl_budget_sensitivity(inputs: Inputs):
    import matplotlib.pyplot as plt

    trqam = [r for r in inputs.runs if r["summary"]["method"] == "trqam"]
    study_tasks = {(r["summary"]["task"], r["summary"]["seed"]) for r in trqam if not r["default"]}
    by_budget: dict[float, list[float]] = defaultdict(list)
    for run in trqam:
        if (run["summary"]["task"], run["summary"]["seed"]) in study_tasks:
            by_budget[float(run["agent_config"]["kl_budget"])].append(float(run["summary"]["final_success"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    if by_budget:
        budgets = sorted(by_budget)
        stats = [_mean_band(by_budget[b]) for b in budgets]
        axes[0].errorbar(budgets, [100 * s[0] for s in stats],
                         yerr=[[100 * (s[0] - s[1]) for s in stats], [100 * (s[2] - s[0]) for s in stats]],
                         color=colour("trqam"), marker="o", capsize=3, label="TRQAM")
        for b in budgets:
            axes[0].scatter([b] * len(by_budget[b]), [100 * v for v in by_budget[b]], color=colour("trqam"), s=8,
                            alpha=0.5)
    else:
        axes[0].text(0.5, 0.5, "no budget study in these runs", transform=axes[0].transAxes, ha="center")
    axes[0].set_xscale("log")
    if by_budget:
        _plain_log_ticks(axes[0].xaxis, by_budget)
    axes[0].set_xlabel("KL budget")
    axes[0].set_ylabel("final success rate (%)")
    axes[0].set_ylim(0, 100)
    tasks = sorted({t for t, _ in study_tasks})
    axes[0].set_title(f"OGBench: success vs KL budget\n({len(tasks)} task(s), {len(study_tasks)} task-seed pair(s))",
                      fontsize=9)
    rows = closed_form.read(inputs.closed_dir, "budget_sensitivity")
    if not rows:
        _not_computed(axes[1])
        return fig
    budgets = [r["budget"] for r in rows]
    axes[1].plot(budgets, [r["realised_kl"] for r in rows], "o-", color=colour("trqam"), label="realised KL (EMA)")
    axes[1].plot(budgets, budgets, ":", color="black", label="KL = budget")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    _plain_log_ticks(axes[1].xaxis, budgets)
    _plain_log_ticks(axes[1].yaxis, budgets)
    axes[1].set_xlabel("KL budget")
    axes[1].set_ylabel("KL")
    twin = axes[1].twinx()
    twin.plot(budgets, [r["mean_q"] for r in rows], "s-", color="0.3", label="mean Q of TRQAM samples")
    twin.plot(budgets, [r["exact_tilt_mean_q"] for r in rows], "s--", color="0.6", label="mean Q of the exact tilt")
    twin.axhline(rows[0]["base_mean_q"], color="0.6", linestyle=":", label="mean Q of the base policy")
    twin.set_ylabel("mean Q")
    lines = axes[1].get_legend_handles_labels()
    lines2 = twin.get_legend_handles_labels()
    axes[1].legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="lower right")
    axes[1].set_title("Closed-form problem: realised KL and mean Q vs budget", fontsize=9)
    return fig


# ---- collapse ----------------------------------------------------------------------------
def collapse(inputs: Inputs):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for method in ("qam", "trqam"):
        chosen = [r for r in inputs.runs if r["summary"]["method"] == method and r["default"]]
        losses: dict[int, list[float]] = defaultdict(list)
        success: dict[int, list[float]] = defaultdict(list)
        for run in chosen:
            for step, value in zip(*_trace(run, "actor/adjoint_loss"), strict=True):
                losses[step].append(value)
            for step, value in _curve_points(run):
                success[step].append(value)
        if losses:
            steps = sorted(losses)
            axes[0].plot(steps, [np.mean(losses[s]) for s in steps], color=colour(method), label=method)
        if success:
            steps = sorted(success)
            stats = [_mean_band(success[s]) for s in steps]
            axes[1].plot(steps, [100 * s[0] for s in stats], "o-", color=colour(method), label=method)
            axes[1].fill_between(steps, [100 * s[1] for s in stats], [100 * s[2] for s in stats],
                                 color=colour(method), alpha=0.2, linewidth=0)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("offline fine-tuning step")
    axes[0].set_ylabel("adjoint-matching loss (mean over runs)")
    axes[0].set_title("OGBench: adjoint loss, QAM vs TRQAM", fontsize=9)
    _legend_or_say(axes[0], "no QAM or TRQAM run logged its adjoint-matching loss")
    axes[1].set_xlabel("offline fine-tuning step")
    axes[1].set_ylabel("success rate (%)")
    axes[1].set_ylim(0, 100)
    axes[1].set_title("OGBench: success over training\n(band: 95% CI over tasks x seeds, or the range below 3 runs)", fontsize=9)
    _legend_or_say(axes[1], "no QAM or TRQAM run evaluated during fine-tuning")
    rows = closed_form.read(inputs.closed_dir, "critic_error")
    if not rows:
        _not_computed(axes[2])
        return fig
    betas = np.geomspace(0.1, 20, 100)
    d = np.asarray(closed_form.DELTA)
    from trqam import gaussian_problem as gp

    analytic = [0.5 * b**2 * d @ gp.tilted(b)[1] @ d for b in betas]
    axes[2].plot(betas, analytic, color="black", linewidth=1, label="exact: 1/2 beta^2 delta' Sigma_beta delta")
    for row in rows:
        axes[2].scatter(row["beta"], row["measured_shift_kl"], color=colour(row["method"].lower()), s=40, zorder=3,
                        label=f"{row['method']} {row['setting']} (measured)")
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("beta (TRQAM: the beta whose tilt has KL = budget)")
    axes[2].set_ylabel("KL(solution with error || without)")
    axes[2].set_title("Closed-form problem: Lemma 1,\ncritic error amplified with beta", fontsize=9)
    axes[2].legend(fontsize=7)
    return fig


FIGURES: dict[str, Callable[[Inputs], object]] = {
    "main_table": main_table, "aggregate_metrics": aggregate_metrics, "performance_profile": performance_profile,
    "probability_of_improvement": probability_of_improvement, "kl_success": kl_success, "learning_curves": learning_curves, "kl_tracking": kl_tracking,
    "kl_budget_sensitivity": kl_budget_sensitivity, "collapse": collapse,
}


def write(run_set: RunSet, out_dir: Path, profile: str, closed_dir: Path = closed_form.CLOSED_FORM_DIR,
          reference_dir: Path = REFERENCE_DIR) -> list[Path]:
    """Every figure as PNG and PDF under ``out_dir`` from ``run_set`` (`bench.reporting.runset`; its
    first data group: runs on other data are in the tables, labelled); returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    from bench.config.profiles import get_profile

    groups = run_set.data_groups()
    if not groups[0].runs:
        raise BenchError(f"no intact finished runs under {run_set.root} to draw ({len(run_set.damaged)} damaged)")
    inputs = Inputs(groups[0].runs, run_set.root, reference_dir, closed_dir, get_profile(profile).protocol)
    label = _label(inputs.runs, profile, len(groups) - 1)
    paths = []
    for name, draw in FIGURES.items():
        fig = draw(inputs)
        fig.suptitle(label, fontsize=10, y=1.02)
        fig.tight_layout()
        paths += save_figure(fig, out_dir / name)
    return paths
