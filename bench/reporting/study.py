"""The CPU study (issue 18, item 2; the ``cpu-study`` profile): learning curves and a table of
its runs beside the published numbers of the same domain, and STUDY.md saying what they show.

    python -m bench study                      # results/runs/cpu-study -> reports/cpu-study

Everything comes from files: each run's ``config.json``, ``data.json`` and ``evaluations.csv``
(a run still training contributes the evaluations it has, marked in progress), the QAM paper's
per-seed curves and the TRQAM paper's table (``results/reference/``). Three kinds of line are
drawn, each labelled with its protocol, network size and data:

* ours: mean success over the seeds at each evaluation, each seed's value as a point, the
  range over seeds shaded (two seeds cannot give an interval over seeds; the table adds a
  Wilson 95% interval over the episodes pooled across seeds, binomial noise only);
* the QAM paper's curves for the same task at the steps both have (50K is its first
  evaluation), mean over its 12 seeds with a normal 95% interval of that mean;
* the TRQAM paper's domain value (mean of 5 tasks, 8 seeds, +-1 sd) after 1M steps, drawn in a
  panel of its own so that it is never read as a point of a 50K-step curve.

Beside the success rates, STUDY.md states each fine-tuning seed's training at its last logged
step (``metrics.csv``): its realised path KL from BC, TRQAM's budget and dual variable, and its
critic's mean and largest Q against the range a true Q can take under the task's reward.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bench.errors import BenchError
from bench.files import REPO, relative_path
from bench.reporting.curves import colour, save_figure
from bench.reporting.tradeoff import q_trace, realised_kl, wilson
from bench.training.runstore import DamagedRecord, csv_text, read_run, write_atomic

REFERENCE = REPO / "results" / "reference"
QAM_CURVES = REFERENCE / "qam_2601.14234_curves.csv"
TRQAM_TABLE = REFERENCE / "trqam_2605.27079_offline_table.csv"
PUBLISHED_NAME = {"trqam": "TRQAM", "qam": "QAM", "qam-e": "QAM-E", "dsrl": "DSRL", "bc": "BC"}
ORDER = ("trqam", "qam", "qam-e", "dsrl", "bc")


@dataclass
class SeedRun:
    """One seed's run: its evaluations so far and what it was meant to do."""

    method: str
    seed: int
    status: str  # finished, diverged, in progress (or stopped: unfinished in an archive, never to resume)
    planned: int  # steps of its last phase
    phase: str  # its last phase (pretrain for BC, offline for the others)
    evaluations: list[tuple[int, int, int]] = field(default_factory=list)  # (step, successes, episodes)
    config: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    revision: str = "?"  # the code revision that trained it (environment.json)
    trained: int = 0  # the last logged step of its last phase (metrics.csv)
    metrics: list[dict] = field(default_factory=list)  # metrics.csv's rows of its last phase
    cpu: str = "?"  # the processor that trained it (environment.json)

    @property
    def last_step(self) -> int:
        return self.evaluations[-1][0] if self.evaluations else 0

    @property
    def data_id(self) -> str:
        """The first 12 hex digits of its training file's sha256 (data.json): which bytes it trained on."""
        files = self.data.get("manifest", {}).get("files", {})
        train = [record for name, record in sorted(files.items()) if not name.endswith("-val.npz")]
        if train:
            return train[0].get("sha256", "?")[:12]
        official = [f for f in self.data.get("files", []) if f.get("split") == "train"]
        return official[0].get("sha256", "?")[:12] if official else "?"


def load(runs_root: Path, task: str, archived: bool = False,
         damaged: list[str] | None = None) -> dict[str, list[SeedRun]]:
    """Every seed run of ``task`` under ``runs_root`` (METHOD/TASK/seedN), by method. An unfinished
    run is "in progress", or "stopped" when ``archived`` (runs set aside under results/archive/).
    A finished run is read through its seal (`bench.training.runstore.read_run`); one that fails
    is left out and named in ``damaged``."""
    found: dict[str, list[SeedRun]] = {}
    for run_dir in sorted(runs_root.glob(f"*/{task}/seed*")):
        config_path = run_dir / "config.json"
        if not config_path.exists() or not run_dir.name[4:].isdigit():
            continue  # not started, or a study variant (seed0-key=value)
        config = json.loads(config_path.read_text())
        phases = config["phases"]
        last = phases[-1]
        summary_path = run_dir / "summary.json"
        status = "stopped" if archived else "in progress"
        if summary_path.exists():
            try:
                status = read_run(run_dir)["summary"].get("status", "finished")
            except DamagedRecord as exc:
                if damaged is not None:
                    damaged.append(f"`{relative_path(run_dir, REPO)}`: {exc.path.name} {exc.reason}")
                continue
        evaluations = []
        if (run_dir / "evaluations.csv").exists():
            with open(run_dir / "evaluations.csv", newline="") as f:
                for row in csv.DictReader(f):
                    if row["phase"] == last["name"]:
                        episodes = int(row["num_episodes"])
                        evaluations.append((int(row["step"]), round(float(row["success_rate"]) * episodes), episodes))
        metrics = []
        if (run_dir / "metrics.csv").exists():
            with open(run_dir / "metrics.csv", newline="") as f:
                metrics = [r for r in csv.DictReader(f) if r["phase"] == last["name"]]
        trained = max((int(r["step"]) for r in metrics), default=0)
        data = json.loads((run_dir / "data.json").read_text()) if (run_dir / "data.json").exists() else {}
        environment = run_dir / "environment.json"
        machine = json.loads(environment.read_text()) if environment.exists() else {}
        revision = machine.get("code_revision")
        method = config["run"]["method"]
        found.setdefault(method, []).append(SeedRun(method, config["run"]["seed"], status, last["steps"],
                                                    last["name"], evaluations, config, data,
                                                    (revision or "unknown")[:12], trained, metrics,
                                                    machine.get("hardware", {}).get("cpu") or "?"))
    return found


def published_curve(task: str, method: str, max_step: int) -> list[tuple[int, float, float, int]]:
    """The QAM paper's offline curve of ``method`` on ``task`` up to ``max_step``:
    (step, mean, half-width of a normal 95% interval of the mean, seeds)."""
    name = PUBLISHED_NAME.get(method)
    rows = []
    if name is None or not QAM_CURVES.exists():
        return rows
    with open(QAM_CURVES, newline="") as f:
        for row in csv.DictReader(f):
            if row["task"] == task and row["method"] == name and row["phase"] == "offline" \
                    and int(row["step"]) <= max_step:
                values = np.array([float(row[f"seed{i}"]) for i in range(int(row["n_seeds"]))])
                half = 1.96 * values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else math.nan
                rows.append((int(row["step"]), float(values.mean()), float(half), len(values)))
    return rows


def published_final(task: str, method: str) -> tuple[float, int] | None:
    """The QAM paper's success of ``method`` on ``task`` at 1M offline steps (mean, seeds)."""
    found = published_curve(task, method, 1_000_000)
    last = [r for r in found if r[0] == 1_000_000]
    return (last[0][1], last[0][3]) if last else None


def trqam_table(domain: str, method: str) -> tuple[float, float] | None:
    """The TRQAM paper's (mean %, sd %) of ``method`` on ``domain`` (5 tasks, 8 seeds, 1M steps)."""
    name = PUBLISHED_NAME.get(method)
    with open(TRQAM_TABLE, newline="") as f:
        for row in csv.DictReader(f):
            if row["method"] == name and row["domain"] == domain:
                return float(row["success_mean_pct"]), float(row["success_std_pct"])
    return None


@dataclass(frozen=True)
class Line:
    """One method's curve: per evaluation step, the seeds' success rates and pooled counts."""

    method: str
    steps: list[int]
    per_seed: list[list[float]]
    pooled: list[tuple[int, int]]  # (successes, episodes) over the seeds at that step

    def mean(self) -> list[float]:
        return [float(np.mean(v)) for v in self.per_seed]


def line(runs: list[SeedRun]) -> Line:
    """The steps every one of ``runs`` has evaluated (a seed in progress limits the line)."""
    common = sorted(set.intersection(*({s for s, _, _ in r.evaluations} for r in runs))) if runs else []
    per_seed, pooled = [], []
    for step in common:
        at = [next(e for e in r.evaluations if e[0] == step) for r in runs]
        per_seed.append([k / n for _, k, n in at])
        pooled.append((sum(k for _, k, _ in at), sum(n for _, _, n in at)))
    return Line(runs[0].method if runs else "", common, per_seed, pooled)


def data_sets(found: dict[str, list[SeedRun]]) -> dict[str, tuple[str, list[str]]]:
    """The distinct training files the runs used: sha256 prefix -> (when and where they were made,
    the runs on them as 'METHOD seed N')."""
    sets: dict[str, tuple[str, list[str]]] = {}
    for method in sorted(found, key=_rank):
        for r in sorted(found[method], key=lambda r: r.seed):
            manifest = r.data.get("manifest", {})
            versions = ", ".join(f"{pkg} {v}" for pkg, v in sorted(manifest.get("versions", {}).items()))
            made = f"made {manifest.get('created_utc', '?')[:10]} under {versions or '?'}, trained on {r.cpu}"
            sets.setdefault(r.data_id, (made, []))[1].append(f"{'BC' if method == 'bc' else method.upper()} seed {r.seed}")
    return sets


def describe_runs(runs: list[SeedRun]) -> str:
    """Protocol, network size and data of a method's runs, from their config and data records."""
    config = runs[0].config
    profile = config["profile"]
    agent = config["phases"][-1]["agent_config"]
    hidden = "x".join(str(h) for h in agent.get("hidden_sizes", profile["hidden_sizes"]))
    critics = agent.get("num_critics")
    kind = runs[0].data.get("kind", "?")
    init = ("BC pretraining" if runs[0].phase == "pretrain" else
            "BC-initialised" if config["run"].get("init") == "bc" else "from scratch")
    nets = f"{hidden} MLPs" + (f", {critics} critics" if critics and runs[0].phase != "pretrain" else "")
    return f"{init}, {nets}, {kind} 1M data" if kind == "regenerated" else f"{init}, {nets}, {kind} data"


def plot(found: dict[str, list[SeedRun]], task: str, domain: str, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, final) = plt.subplots(1, 2, figsize=(11.0, 4.6), width_ratios=[2.2, 1], constrained_layout=True)
    methods = [m for m in ORDER if m in found] + [m for m in found if m not in ORDER]
    max_step = max((r.planned for m in methods if m != "bc" for r in found[m]), default=0)
    several = len(data_sets(found)) > 1  # then each line names the regeneration it trained on

    def data_of(runs: list[SeedRun]) -> str:
        return "; data " + "/".join(sorted({r.data_id[:8] for r in runs})) if several else ""

    for method in methods:
        runs = found[method]
        shade = colour(method)
        if method == "bc":  # the checkpoint every fine-tuning run starts from: its final success
            finals = [r.evaluations[-1][1] / r.evaluations[-1][2] for r in runs if r.evaluations]
            if finals:
                ax.axhline(float(np.mean(finals)), color=shade, ls=":", lw=1.2,
                           label=f"BC checkpoint, mean of {len(finals)} seed(s) (ours: {describe_runs(runs)}"
                                 f"{data_of(runs)})")
            continue
        drawn = line(runs)
        if not drawn.steps:
            continue
        mean = drawn.mean()
        low = [min(v) for v in drawn.per_seed]
        high = [max(v) for v in drawn.per_seed]
        unfinished = sorted({r.status for r in runs} - {"finished", "diverged"})
        progress = "".join(f", {status}" for status in unfinished)
        ax.plot(drawn.steps, mean, color=shade, marker="o", ms=3,
                label=f"{method.upper()} ours ({len(runs)} seeds, range shaded{progress}{data_of(runs)})")
        if len(runs) > 1:
            ax.fill_between(drawn.steps, low, high, color=shade, alpha=0.18, lw=0)
        for step, values in zip(drawn.steps, drawn.per_seed, strict=True):
            ax.scatter([step] * len(values), values, color=shade, s=8, alpha=0.6, zorder=3)
        for step, value, half, seeds in published_curve(task, method, max_step):
            ax.errorbar([step], [value], yerr=[[min(half, value)], [min(half, 1 - value)]], color=shade,
                        marker="D", mfc="white", ms=6, capsize=3, ls="none",
                        label=f"{method.upper()}, QAM paper at {step // 1000}K ({seeds} seeds, 95% CI; from scratch, "
                              "4x512, official data)")
    names = ", ".join(sorted({describe_runs(found[m]) for m in methods if m != "bc"}))
    ax.set_title(f"{task}\nours: {names}; TRQAM-paper protocol at CPU scale", fontsize=8)
    ax.set_xlabel("fine-tuning gradient steps (after BC pretraining)")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(0, max_step * 1.03 if max_step else 1)
    ax.legend(fontsize=6.5, loc="upper left")

    # Right: published values after 1M steps, beside ours at our last step.
    labels = [m for m in methods if m != "bc"]
    for i, method in enumerate(labels):
        shade = colour(method)
        table = trqam_table(domain, method)
        if table is not None:
            final.errorbar([i - 0.2], [table[0] / 100], yerr=[[min(table[1], table[0]) / 100],
                                                            [min(table[1], 100 - table[0]) / 100]],
                           color=shade, marker="s", ms=6, capsize=3, ls="none")
        qam = published_final(task, method)
        if qam is not None:
            final.scatter([i], [qam[0]], color=shade, marker="D", facecolor="white", s=36, zorder=3)
        drawn = line(found[method])
        if drawn.steps:
            final.scatter([i + 0.2], [drawn.mean()[-1]], color=shade, marker="o", s=30, zorder=3)
    final.set_xticks(range(len(labels)), [m.upper() for m in labels], fontsize=8)
    final.set_ylim(-0.02, 1.02)
    final.set_title("after 1M steps (published) and ours at our last step", fontsize=8)
    from matplotlib.lines import Line2D

    final.legend(handles=[
        Line2D([], [], color="grey", marker="s", ls="none", label="TRQAM paper: 5-task mean, 8 seeds, +-1 sd"),
        Line2D([], [], color="grey", marker="D", mfc="white", ls="none", label="QAM paper: this task, 12 seeds"),
        Line2D([], [], color="grey", marker="o", ls="none", label="ours, at our last evaluation")],
        fontsize=6.5, loc="center left")
    return save_figure(fig, out)


def _pct(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{100 * value:.0f}"


def table_rows(found: dict[str, list[SeedRun]], task: str, domain: str) -> list[dict]:
    """One row per method and evaluation step of ours, with the published values beside."""
    rows = []
    for method in [m for m in ORDER if m in found] + [m for m in found if m not in ORDER]:
        runs = found[method]
        drawn = line(runs)
        published = {s: (v, h, n) for s, v, h, n in published_curve(task, method, 10**9)}
        table = trqam_table(domain, method)
        final = published_final(task, method)
        for step, values, (k, n) in zip(drawn.steps, drawn.per_seed, drawn.pooled, strict=True):
            low, high = wilson(k, n)
            rows.append({
                "method": method, "phase": runs[0].phase, "step": step, "seeds": len(values),
                "success_mean": round(float(np.mean(values)), 4),
                "per_seed": " ".join(f"{v:.2f}" for v in values),
                "wilson_low": round(low, 4), "wilson_high": round(high, 4), "episodes": n,
                "status": ", ".join(sorted({r.status for r in runs})),
                "qam_paper_same_step": "" if step not in published else round(published[step][0], 4),
                "qam_paper_same_step_ci95": "" if step not in published else round(published[step][1], 4),
                "qam_paper_1m": "" if final is None else round(final[0], 4),
                "trqam_paper_domain_pct": "" if table is None else table[0],
                "trqam_paper_domain_sd_pct": "" if table is None else table[1],
                "ours": describe_runs(runs),
            })
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| method | step | ours: mean success % (per seed) | Wilson 95% (pooled episodes) | status | "
             "QAM paper, same task and step (12 seeds, 95% CI) | QAM paper, same task, 1M | "
             "TRQAM paper, domain, 1M (+-sd) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        same = "" if r["qam_paper_same_step"] == "" else \
            f"{100 * r['qam_paper_same_step']:.0f} +- {100 * r['qam_paper_same_step_ci95']:.0f}"
        trqam = "" if r["trqam_paper_domain_pct"] == "" else \
            f"{r['trqam_paper_domain_pct']:.0f} +- {r['trqam_paper_domain_sd_pct']:.0f}"
        at_1m = "" if r["qam_paper_1m"] == "" else f"{100 * r['qam_paper_1m']:.0f}"
        step = f"{r['step'] // 1000}K" + (" (BC pretraining)" if r["phase"] == "pretrain" else "")
        per_seed = " ".join(_pct(float(v)) for v in r["per_seed"].split())
        lines.append(f"| {r['method'].upper()} | {step} | {100 * r['success_mean']:.0f} ({per_seed}) | "
                     f"{100 * r['wilson_low']:.0f}-{100 * r['wilson_high']:.0f} | {r['status']} | {same} | "
                     f"{at_1m} | {trqam} |")
    return "\n".join(lines) + "\n"


def _bc_final(found: dict[str, list[SeedRun]]) -> tuple[int, int, tuple[float, float]] | None:
    """The BC checkpoints' last evaluation, pooled over seeds: (successes, episodes, Wilson 95%)."""
    bc = [r for r in found.get("bc", []) if r.evaluations]
    if not bc:
        return None
    k = sum(r.evaluations[-1][1] for r in bc)
    n = sum(r.evaluations[-1][2] for r in bc)
    return k, n, wilson(k, n)


class _Standing(NamedTuple):
    """One method at the step every fine-tuned method has evaluated."""

    method: str
    k: int  # successes, pooled over the seeds
    n: int  # episodes, pooled
    interval: tuple[float, float]  # Wilson 95% of k/n
    seeds: list[float]  # each seed's success rate


def findings(found: dict[str, list[SeedRun]]) -> list[str]:
    """Plain sentences computed from the runs: where each method stands at the last step all
    fine-tuned methods share, in order, and which intervals overlap."""
    lines = {m: line(r) for m, r in found.items() if m != "bc"}
    fine = {m: drawn for m, drawn in lines.items() if drawn.steps}
    if not fine:
        return ["No fine-tuning run has been evaluated yet."]
    shared = set.intersection(*(set(d.steps) for d in fine.values()))
    if not shared:
        return ["The fine-tuning runs share no evaluation step yet."]
    step = max(shared)
    standing = []
    for method, drawn in fine.items():
        i = drawn.steps.index(step)
        k, n = drawn.pooled[i]
        standing.append(_Standing(method, k, n, wilson(k, n), drawn.per_seed[i]))
    standing.sort(key=lambda entry: (-entry.k / entry.n, _rank(entry.method)))  # best first; ties in ORDER
    text = [f"At {step // 1000}K fine-tuning steps (the last evaluation every method has): " + "; ".join(
        f"{e.method.upper()} {100 * e.k / e.n:.0f}% ({e.k}/{e.n} episodes, Wilson 95% {100 * e.interval[0]:.0f}-"
        f"{100 * e.interval[1]:.0f})" for e in standing) + "."]
    best, runner = standing[0], standing[1] if len(standing) > 1 else None
    if runner is not None and best.k * runner.n == runner.k * best.n:  # the same success rate
        text.append(f"{best.method.upper()} and {runner.method.upper()} are level: at this scale their ordering is "
                    "not resolved.")
    elif runner is not None:
        overlap = best.interval[0] <= runner.interval[1]
        seeds_cross = min(best.seeds) <= max(runner.seeds)  # a seed of the leader at or below one of the other's
        text.append(f"{best.method.upper()} is ahead of {runner.method.upper()}" + (
            ", but their intervals overlap: at this scale the ordering of the first two is not resolved."
            if overlap else ", and their intervals do not overlap" + (
                f", but the seeds do not agree ({best.method.upper()} {_seed_rates(best.seeds)}, "
                f"{runner.method.upper()} {_seed_rates(runner.seeds)}): {SEEDS_NOTE}, so the ordering of the first "
                "two is not resolved."
                if seeds_cross else " and every seed of the first is above every seed of the second.")))
    bc = _bc_final(found)
    elsewhere = off_bc_data(found)
    if elsewhere:
        text.append(f"{', '.join(m.upper() for m in sorted(elsewhere, key=_rank))} trained on another regeneration of "
                    "the data than the others (see the data line above): a difference across the two groups may "
                    "come from the data as well as the method.")
    if bc is not None and any(e.method not in elsewhere for e in standing):
        k, n, (lo, hi) = bc
        same = {e.method: (e.interval, e.seeds) for e in standing if e.method not in elsewhere}
        above, below, split = against_bc(same, (k, n, (lo, hi)))
        who = "they start" if not elsewhere else "the methods on the same data start"
        text.append(f"The BC checkpoints {who} from succeed {100 * k / n:.0f}% ({k}/{n}, Wilson 95% "
                    f"{100 * lo:.0f}-{100 * hi:.0f}). Clearly above BC: {', '.join(above) or 'none'}; "
                    f"clearly below: {', '.join(below) or 'none'}." + _split_sentence(split, same))
    stopped = sorted({m.upper() for m, runs in found.items() for r in runs if r.status == "stopped"})
    if stopped:
        text.append(f"Stopped before finishing, never to resume (archived): {', '.join(stopped)}; their evaluations "
                    "so far are shown.")
    running = sorted({m.upper() for m, runs in found.items() for r in runs if r.status == "in progress"})
    if running:
        text.append(f"Still training: {', '.join(running)}; their later evaluations will follow when the study "
                    "is resumed (`python -m bench reproduce --profile cpu-study`).")
    return text


# Why pooled episodes alone decide nothing: episodes of one seed share its training.
SEEDS_NOTE = "the pooled interval counts episodes, not seeds, and with this few seeds it cannot speak for them"


def _seed_rates(rates: list[float]) -> str:
    """'0% and 76%': each seed's success rate, in seed order."""
    return _and([f"{100 * r:.0f}%" for r in rates])


def against_bc(intervals: dict[str, tuple[tuple[float, float], list[float]]],
               bc: tuple[int, int, tuple[float, float]]) -> tuple[list[str], list[str], list[str]]:
    """The methods clearly above and clearly below BC, and those whose pooled interval clears
    BC's while their seeds do not agree: ``intervals`` maps a method to its pooled Wilson
    interval and its seeds' success rates. Clearly above: the pooled interval lies above BC's
    and every seed beats BC's rate; below, the mirror."""
    k, n, (lo, hi) = bc
    rate = k / n
    above, below, split = [], [], []
    for method, ((low, high), seeds) in intervals.items():
        if low > hi and all(s > rate for s in seeds):
            above.append(method.upper())
        elif high < lo and all(s < rate for s in seeds):
            below.append(method.upper())
        elif low > hi or high < lo:  # the pooled episodes clear BC's interval, the seeds do not agree
            split.append(method)
    return above, below, split


def _split_sentence(split: list[str], intervals: dict[str, tuple[tuple[float, float], list[float]]]) -> str:
    """The sentence on methods whose pooled interval clears BC's but whose seeds disagree."""
    if not split:
        return ""
    return (" " + "; ".join(f"{m.upper()}'s pooled interval clears BC's, but its seeds do not agree "
                            f"({_seed_rates(intervals[m][1])})" for m in split)
            + f": {SEEDS_NOTE}, so {'it is' if len(split) == 1 else 'they are'} not counted as clearly above "
              "or below BC.")


def _and(names: list[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def off_bc_data(found: dict[str, list[SeedRun]]) -> set[str]:
    """The fine-tuning methods with a run on other data (another regeneration) than the BC runs'."""
    bc_data = {r.data_id for r in found.get("bc", [])}
    if not bc_data:
        return set()
    return {m for m, runs in found.items() if m != "bc" and any(r.data_id not in bc_data for r in runs)}


def headline(found: dict[str, list[SeedRun]], planned: tuple[str, ...] = ()) -> str:
    """One paragraph on where the study stands, computed from the runs: the methods that have
    finished (or diverged: a result too) at their last evaluation against the BC checkpoints, and
    those still training or not started. STUDY.md opens with it and the README quotes it verbatim
    (tests/test_study.py checks the README against the committed runs)."""
    done: dict = {}
    unfinished: dict[str, list[str]] = {"in progress": [], "stopped": []}
    for method in sorted((m for m in found if m != "bc"), key=_rank):
        runs, drawn = found[method], line(found[method])
        status = next((r.status for r in runs if r.status in unfinished), None)
        if status is not None:
            unfinished[status].append(f"{method.upper()} (" + (f"last evaluated at {drawn.steps[-1] // 1000}K"
                                                               if drawn.steps else "not yet evaluated") + ")")
        elif drawn.steps:
            k, n = drawn.pooled[-1]
            done[method] = (drawn.steps[-1], k, n, wilson(k, n), drawn.per_seed[-1])
    text = []
    if done:
        names = [m.upper() for m in done]
        steps = sorted({step for step, *_ in done.values()})
        joined = _and(names)
        results = "; ".join(("" if len(steps) == 1 else f"at {step // 1000}K, ") + f"{m.upper()} {100 * k / n:.0f}% "
                            f"({k}/{n} episodes, Wilson 95% {100 * lo:.0f}-{100 * hi:.0f})"
                            for m, (step, k, n, (lo, hi), _) in done.items())
        text.append(f"{joined} {'has' if len(names) == 1 else 'have'} finished "
                    f"{'/'.join(f'{step // 1000}K' for step in steps)} fine-tuning steps; "
                    + (f"at {steps[0] // 1000}K, " if len(steps) == 1 else "") + results)
        bc = _bc_final(found)
        elsewhere = off_bc_data(found)
        other_data = [m for m in done if m in elsewhere]
        compared = {m: v for m, v in done.items() if m not in other_data}
        if bc is not None and compared:
            k, n, (lo, hi) = bc
            who = (("it starts" if len(compared) == 1 else "they start") if not other_data
                   else _and([m.upper() for m in compared])
                   + (" starts" if len(compared) == 1 else " start"))
            text[-1] += (f", against {100 * k / n:.0f}% ({k}/{n}) for the BC checkpoints {who} from "
                         f"(Wilson 95% {100 * lo:.0f}-{100 * hi:.0f}).")
            intervals = {m: (interval, seeds) for m, (_, _, _, interval, seeds) in compared.items()}
            above, below, split = against_bc(intervals, bc)
            text.append(("None is" if len(compared) > 1 else f"{next(iter(compared)).upper()} is not")
                        + " clearly above or below BC (" + ("every interval overlaps" if len(compared) > 1
                                                            else "its interval overlaps") + " BC's)."
                        if not above + below + split
                        else f"Clearly above BC: {', '.join(above) or 'none'}; clearly below: "
                             f"{', '.join(below) or 'none'}." + _split_sentence(split, intervals))
        else:
            text[-1] += "."
        if other_data:
            text.append(f"{_and([m.upper() for m in other_data])} trained on another regeneration of the same "
                        f"recipe and seed (different bytes) than {_and(['BC', *(m.upper() for m in compared)])}, "
                        f"so {'it is' if len(other_data) == 1 else 'they are'} not compared with BC here "
                        "(STUDY.md names each run's data).")
    else:
        text.append("No fine-tuning method has finished yet.")
    if unfinished["in progress"]:
        text.append(f"Still training (resumable): {', '.join(unfinished['in progress'])}.")
    if unfinished["stopped"]:
        text.append(f"Stopped before finishing (archived, never to resume): {', '.join(unfinished['stopped'])}.")
    missing = [m.upper() for m in planned if m not in found]
    if missing:
        text.append(f"Not started: {', '.join(missing)}.")
    text.append("It is evidence at this scale only, never a reproduction of either paper's numbers.")
    return " ".join(text)


def readme_line(found: dict[str, list[SeedRun]], planned: tuple[str, ...] = ()) -> str:
    """The README's line on the study: :func:`headline` behind a pointer to STUDY.md."""
    return f"**Where it stands** (`reports/cpu-study/STUDY.md`): {headline(found, planned)}"


def _stands_at(readme: Path) -> tuple[list[str], int]:
    """``readme``'s lines and the index of its one line starting ``**Where it stands**``."""
    if not readme.is_file():
        raise BenchError(f"--readme {readme}: no such file; pass the README whose study line to rewrite")
    lines = readme.read_text().split("\n")
    at = [i for i, text in enumerate(lines) if text.startswith("**Where it stands**")]
    if len(at) != 1:
        raise BenchError(f"--readme {readme}: {len(at)} lines start '**Where it stands**'; it needs exactly one "
                         "to rewrite")
    return lines, at[0]


def update_readme(readme: Path, found: dict[str, list[SeedRun]], planned: tuple[str, ...] = ()) -> None:
    """Replace the one line of ``readme`` that starts ``**Where it stands**`` with :func:`readme_line`."""
    lines, at = _stands_at(readme)
    lines[at] = readme_line(found, planned)
    write_atomic(readme, "\n".join(lines))


@dataclass(frozen=True)
class TrainingState:
    """A fine-tuning seed's state at its last logged step (metrics.csv), for reading its success."""

    method: str
    seed: int
    step: int
    kl: float | None  # realised path KL per action step, mean over the second half of the steps logged so far
    kl_budget: float | None  # TRQAM's budget (None for the others)
    lam: float | None  # TRQAM's dual variable at the last logged step
    q_first: float | None  # critic/q_mean of the batch at the first and last logged step
    q_last: float | None
    q_change: float | None  # q_mean's change per 100 steps over the last quarter of the logged steps
    q_max: float | None  # critic/q_max of the batch at the last logged step


def training_states(found: dict[str, list[SeedRun]]) -> list[TrainingState]:
    """Every fine-tuning seed's `TrainingState`, from its ``metrics.csv`` rows (in `ORDER`, then by seed)."""
    states = []
    for method in sorted(found, key=_rank):
        for run in sorted(found[method], key=lambda r: r.seed):
            metrics = run.metrics
            if run.phase == "pretrain" or not metrics:
                continue
            last = metrics[-1]
            step = int(last["step"])

            def value(name: str, row: dict = last) -> float | None:
                return float(row[name]) if row.get(name) not in (None, "") else None

            budget = run.config["phases"][-1]["agent_config"].get("kl_budget") if method == "trqam" else None
            states.append(TrainingState(method, run.seed, step, realised_kl(metrics, step),
                                        None if budget is None else float(budget), value("trqam/lambda"),
                                        *q_trace(metrics), value("critic/q_max")))
    return states


def _num(value: float | None, form: str = ".3g") -> str:
    return "" if value is None or not math.isfinite(value) else format(value, form)


def state_markdown(states: list[TrainingState]) -> str:
    lines = ["| method | seed | last logged step | realised KL per action step (2nd half so far) | KL budget | "
             "lambda | critic mean Q: first -> last | change per 100 steps (last quarter) | largest Q in the batch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in states:
        lines.append(f"| {s.method.upper()} | {s.seed} | {s.step:,} | {_num(s.kl)} | {_num(s.kl_budget, 'g')} | "
                     f"{_num(s.lam)} | {_num(s.q_first, '.1f')} -> {_num(s.q_last, '.1f')} | "
                     f"{_num(s.q_change, '+.2f')} | {_num(s.q_max, '+.1f')} |")
    return "\n".join(lines) + "\n"


def state_findings(states: list[TrainingState], discount: float | None, sparse_reward: bool) -> list[str]:
    """Plain sentences from `training_states`: how far each method moved from BC, and what its
    critic says, against the values a true Q can take here."""
    if not states:
        return []
    by_method: dict[str, list[TrainingState]] = {}
    for s in states:
        by_method.setdefault(s.method, []).append(s)

    def mean(values: list[float | None]) -> float | None:
        finite = [v for v in values if v is not None and math.isfinite(v)]
        return float(np.mean(finite)) if finite else None

    moved = []
    for method, group in by_method.items():
        kl = mean([s.kl for s in group])
        if kl is None:
            continue
        budget = group[0].kl_budget
        moved.append(f"{method.upper()} {kl:.3g}" + (f" (budget {budget:g})" if budget is not None else ""))
    text = []
    if moved:
        text.append("Realised path KL from the BC policy per action step (mean over seeds of each seed's mean over "
                    "the second half of the steps it has logged): " + "; ".join(moved) + ".")
    if sparse_reward and discount is not None and 0 < discount < 1:
        floor = -1.0 / (1.0 - discount)
        parts, above = [], []
        for method, group in by_method.items():
            q_last, q_max = mean([s.q_last for s in group]), max((s.q_max for s in group if s.q_max is not None),
                                                                default=None)
            change = mean([s.q_change for s in group])
            if q_last is None:
                continue
            parts.append(f"{method.upper()} mean {q_last:.1f}" + (f", largest {q_max:+.1f}" if q_max is not None else "")
                         + (f", moving {change:+.2f} per 100 steps" if change is not None else ""))
            if q_max is not None and q_max > 0:
                above.append(method.upper())
        if parts:
            text.append(f"The critics at the last logged step (the batch's Q of dataset actions): {'; '.join(parts)}. "
                        f"With reward -1 per step until success and discount {discount:g}, every true Q here lies "
                        f"between {floor:.0f} (never solved) and 0 (solved now)"
                        + (f": {' and '.join(above)} predict{'s' if len(above) == 1 else ''} values above 0, which "
                           f"no policy can reach, so {'that critic overestimates' if len(above) == 1 else 'both critics overestimate' if len(above) == 2 else 'those critics overestimate'} some actions." if above else "."))
    return text


def _rank(method: str) -> int:
    """BC first, then the order of ORDER."""
    return -1 if method == "bc" else ORDER.index(method) if method in ORDER else len(ORDER)


def write(runs_root: Path, out_dir: Path, task: str, domain: str, planned: tuple[str, ...] = (),
          readme: Path | None = None, archived: bool = False) -> list[Path]:
    """The figure, the table (CSV and Markdown) and STUDY.md for the runs under ``runs_root``;
    ``planned``: the methods of the study's profile (those without a run yet are named);
    ``readme``: also rewrite that file's 'Where it stands' line (:func:`update_readme`);
    ``archived``: the runs are an archive's (results/archive/): unfinished ones are stopped, not training."""
    if readme is not None:
        _stands_at(readme)  # a README without its study line: say so before writing anything
    damaged: list[str] = []
    found = load(runs_root, task, archived, damaged)
    if not found:
        raise BenchError(f"no run of {task} under {runs_root}; start the study with "
                         "`python -m bench reproduce --profile cpu-study`")
    out_dir.mkdir(parents=True, exist_ok=True)
    figure = plot(found, task, domain, out_dir / "learning_curves")
    rows = table_rows(found, task, domain)
    write_atomic(out_dir / "study_table.csv", csv_text(rows, None if rows else ["method"]))
    md = markdown(rows)
    write_atomic(out_dir / "study_table.md", md)
    status_lines = []
    for method in sorted(found, key=_rank):
        for r in sorted(found[method], key=lambda r: r.seed):
            status_lines.append(f"| {method.upper()} | {r.seed} | {r.phase} | {r.trained:,} of {r.planned:,} | "
                                f"{r.last_step:,} | {r.status} | {r.revision} | {r.cpu} | {r.data_id} |")
    first = next(iter(found.values()))[0]
    manifest = first.data.get("manifest", {})
    recipe = manifest.get("recipe", {})
    data_line = (f"{first.data.get('kind', '?')} data, {manifest.get('episodes', '?')} episodes of "
                 f"{recipe.get('episode_length', manifest.get('episode_length', '?'))} steps (seed "
                 f"{manifest.get('seed', '?')}), regenerated with ogbench's oracles: the same kind of data as the "
                 "official set, never the same bytes")
    regenerations = data_sets(found)
    if len(regenerations) > 1:
        data_line += (f". **The runs trained on {len(regenerations)} different regenerations** of this recipe and "
                      "seed: " + "; ".join(
                          f"`{data_id}` ({made}: {', '.join(who)})" for data_id, (made, who) in regenerations.items())
                      + ". Same distribution, different bytes, so a difference between these groups may come from "
                      "the data as well as the method (the Runs table names each run's)")
    fine = [r for m, runs in found.items() if m != "bc" for r in runs]
    seeds = sorted({r.seed for runs in found.values() for r in runs})
    scale = (f"{len(seeds)} seeds and {max(r.planned for r in fine) // 1000}K fine-tuning steps" if fine
             else f"{len(seeds)} seeds")
    described = "; ".join(f"{'BC' if m == 'bc' else m.upper()}: {describe_runs(runs)}"
                          for m, runs in sorted(found.items(), key=lambda kv: _rank(kv[0])))
    missing = [m.upper() for m in planned if m not in found]
    states = training_states(found)
    fine_config = next((r.config for m, runs in found.items() if m != "bc" for r in runs), {})
    discount = (fine_config.get("phases") or [{}])[-1].get("agent_config", {}).get("discount")
    sparse = bool(fine_config.get("task", {}).get("sparse_reward"))
    text = [
        "# CPU study: puzzle-3x3 at CPU scale (issue 18)" + (", archived runs" if archived else ""),
        "",
        *([f"These runs were set aside under `{relative_path(runs_root, REPO)}` (see `results/README.md`): "
           "the study goes on in `results/runs/cpu-study/` and `reports/cpu-study/STUDY.md`. A run here that did not "
           "finish is stopped and will not resume.", ""] if archived else []),
        "Written by `python -m bench study` from the runs under "
        f"`{relative_path(runs_root, REPO)}` and the published numbers in `results/reference/`; every number below comes from "
        f"those files. **Evidence at this scale and no more**: smaller networks, {scale} on regenerated "
        "data, against the papers' 4x512 networks, 8-12 seeds and 1M steps on the official data. It is not a "
        "reproduction of either paper's numbers.",
        "",
        f"* Task: `{task}`; {data_line}.",
        f"* Ours: {described}; the TRQAM paper's "
        "protocol (BC pretraining, then offline fine-tuning from the BC checkpoint; each method's per-domain "
        "values from `bench/config/hyperparams.py`). Full configs: each run's `config.json`.",
        "* QAM paper: its released per-seed curves for this task (from scratch, 4x512 networks, 10 critics, "
        "the official 1M set, 12 seeds); only the steps our runs reach are drawn on the curve.",
        "* TRQAM paper: its table's puzzle-3x3 row (mean over its 5 tasks, 8 seeds, +-1 sd, after 1M steps).",
        "",
        "## What the runs show",
        "",
        f"**Where it stands**: {headline(found, planned)}",
        "",
        *[f"* {line}" for line in findings(found)],
        "",
        f"![learning curves]({figure[0].name})",
        "",
        "## Table",
        "",
        md,
        *(["## The state of training", "",
           "Each fine-tuning seed at its last logged step (`metrics.csv`): how far its policy has moved from the BC "
           "policy it started from, TRQAM's budget and dual variable, and its critic. These say why the successes "
           "above are what they are at this scale; they are not success rates.", "",
           state_markdown(states), *[f"* {line}" for line in state_findings(states, discount, sparse)], ""]
          if states else []),
        "## Runs",
        "",
        "| method | seed | phase | steps trained (last logged) | last evaluation | status | code revision | "
        "processor | data (train sha256) |",
        "|---|---|---|---|---|---|---|---|---|",
        *status_lines,
        "",
        *([f"Not started yet: {', '.join(missing)} (they start when a worker is free; rerun "
           "`python -m bench reproduce --profile cpu-study` to continue the study).", ""] if missing else []),
        *(["## Damaged runs (left out of everything above)", "", *[f"- {line}" for line in damaged], ""]
          if damaged else []),
    ]
    write_atomic(out_dir / "STUDY.md", "\n".join(text))
    if readme is not None:
        update_readme(readme, found, planned)
    return [*figure, out_dir / "study_table.csv", out_dir / "study_table.md", out_dir / "STUDY.md",
            *([readme] if readme is not None else [])]
