"""Success-rate tables of stored runs beside the published numbers (Markdown and CSV).

    python -m bench tables --profile quick --out reports/tables

Aggregation follows docs/PROTOCOL.md: mean over seeds, then over tasks, then over domains.
Per task: mean and standard deviation over seeds (ddof 1) and a bootstrap 95% interval of
the mean (percentile method). Per domain: the mean of the task means, with a stratified
bootstrap interval (seeds resampled within each task, as rliable does; `bench.reporting.aggregate`).
Intervals need three or more seeds in every task; the range of the runs is always given.
Aggregates over all tasks (IQM, mean, median, optimality gap, probability of improvement):
`bench.reporting.aggregate`.

Published numbers (``results/reference/``), each shown only beside runs of its own paper's
protocol (a profile's ``protocol``: ``paper``, ``quick``, ``smoke`` follow the TRQAM
paper's; ``qam-paper`` the QAM paper's):

* QAM paper, per task and per seed: the offline score at 1M steps and the online score
  at 1.5M; shown per task and, per domain, from the authors' own domain series (its mean over
  the five tasks, and its spread over seeds as the authors grouped their runs).
* TRQAM paper, per domain: the offline table (mean and std over 8 seeds, in %).

Differences are measured minus published, in percentage points. A domain row also says
how many of its five tasks were measured: a mean over fewer tasks is not the published
domain mean's equal. For the ``paper`` / ``qam-paper`` profile on official data, each
measured domain with all five tasks is checked against its paper's mean: it matches when
the gap is within ``max(5 pp, 2 x the published std over seeds)``.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.files import REPO, relative_path
from bench.reporting import aggregate
from bench.reporting.runset import RunSet
from bench.tasks import DOMAINS_BY_NAME, resolve_task
from bench.training.runstore import csv_text, write_atomic

REFERENCE_DIR = REPO / "results" / "reference"
QAM_CURVES = "qam_2601.14234_curves.csv"
QAM_DOMAIN_CURVES = "qam_2601.14234_domain_curves.csv"  # the authors' own per-domain seed series
TRQAM_TABLE = "trqam_2605.27079_offline_table.csv"
REPORTED_STEP = {"offline": 1_000_000, "online": 1_500_000}  # QAM curves: the reported evaluations
TOLERANCE_PP = 5.0
CONFIDENCE = 0.95


def paper_name(method: str) -> str:
    """The papers' spelling of a CLI name (``qam-e`` -> ``QAM-E``, ``fedit`` -> ``FEdit``)."""
    special = {"fedit": "FEdit", "rebrac": "ReBRAC"}
    return special.get(method, method.upper())


@dataclass(frozen=True)
class Interval:
    mean: float
    std: float
    low: float | None  # the 95% interval: None with fewer than 3 runs in some task
    high: float | None
    n: int  # runs (seeds) per task, the fewest
    lowest: float  # the range of the runs themselves (printed where there is no interval)
    highest: float


def _bootstrap(samples: list[np.ndarray]) -> tuple[float | None, float | None]:
    """Stratified percentile interval of the mean of per-sample means (`bench.reporting.aggregate`):
    None with fewer than three runs in some sample, where a bootstrap only returns the extremes."""
    if not aggregate.has_interval(samples):
        return None, None
    if all(np.ptp(s) == 0 for s in samples):  # no spread: the interval is the point
        value = float(np.mean([np.mean(s) for s in samples]))
        return value, value
    low, high = aggregate.stratified_interval(aggregate.mean, [np.asarray(s, dtype=float) for s in samples])
    return float(low), float(high)


def task_interval(values: np.ndarray) -> Interval:
    low, high = _bootstrap([values])
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return Interval(float(np.mean(values)), std, low, high, len(values), float(np.min(values)), float(np.max(values)))


def group_interval(per_task: list[np.ndarray]) -> Interval:
    means = [float(np.mean(v)) for v in per_task]
    low, high = _bootstrap(per_task)
    runs = np.concatenate(per_task)
    return Interval(float(np.mean(means)), float(np.std(means, ddof=1)) if len(means) > 1 else 0.0, low, high,
                    min(len(v) for v in per_task), float(np.min(runs)), float(np.max(runs)))


# ---- inputs: the verified, scoped runs of `bench.reporting.runset` -------------------------
def diverged_runs(runs: list[dict]) -> dict[tuple[str, str, str], int]:
    """``(method, task, phase) -> runs that diverged in or before that phase`` (their success
    there is 0: `bench.training.pipeline`)."""
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for run in runs:
        summary = run["summary"]
        if summary.get("status") != "diverged":
            continue
        phases = list(run["success_by_phase"])
        for phase in phases[phases.index(summary["diverged"]["phase"]):]:
            counts[(summary["method"], summary["task"], "offline" if phase == "pretrain" else phase)] += 1
    return counts


def measured_successes(runs: list[dict]) -> dict[tuple[str, str, str], list[float]]:
    """``(method, task, phase) -> successes over seeds``, each from the run's own evaluation
    records (`bench.training.runstore.read_run`)."""
    measured: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for run in runs:
        for phase, success in run["success_by_phase"].items():
            phase = "offline" if phase == "pretrain" else phase  # `bc`: its pretraining is its offline policy
            measured[(run["summary"]["method"], run["summary"]["task"], phase)].append(float(success))
    return measured


def load_qam_reference(reference_dir: Path = REFERENCE_DIR) -> dict[tuple[str, str, str], np.ndarray]:
    """``(PAPER_METHOD, task, phase) -> per-seed success`` at the reported steps."""
    table = {}
    with open(reference_dir / QAM_CURVES, newline="") as f:
        for row in csv.DictReader(f):
            if int(row["step"]) == REPORTED_STEP[row["phase"]]:
                n = int(row["n_seeds"])
                table[(row["method"], row["task"], row["phase"])] = np.array([float(row[f"seed{i}"]) for i in range(n)])
    return table


def load_qam_domain_reference(reference_dir: Path = REFERENCE_DIR) -> dict[tuple[str, str, str], np.ndarray]:
    """``(PAPER_METHOD, domain, phase) -> per-seed domain mean`` at the reported steps, as the QAM
    authors grouped their runs into seeds (`tools/extract_qam_domain_series.py`): the spread over
    these seeds is the published one, which pairing seed i of every task would not give."""
    table = {}
    with open(reference_dir / QAM_DOMAIN_CURVES, newline="") as f:
        for row in csv.DictReader(f):
            if int(row["step"]) == REPORTED_STEP[row["phase"]]:
                n = int(row["n_seeds"])
                table[(row["method"], row["domain"], row["phase"])] = np.array([float(row[f"seed{i}"]) for i in range(n)])
    return table


def load_trqam_reference(reference_dir: Path = REFERENCE_DIR) -> dict[tuple[str, str], tuple[float, float | None]]:
    """``(PAPER_METHOD, domain name or 'all') -> (mean %, std %)`` of the offline table."""
    table = {}
    with open(reference_dir / TRQAM_TABLE, newline="") as f:
        for row in csv.DictReader(f):
            std = row["success_std_pct"]
            table[(row["method"], row["domain"])] = (float(row["success_mean_pct"]), float(std) if std else None)
    return table


# ---- tables --------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def _spread(i: Interval) -> dict:
    """Numeric interval columns (empty without an interval) and the runs' range (always)."""
    return {"ci_low": _pct(i.low), "ci_high": _pct(i.high), "min": _pct(i.lowest), "max": _pct(i.highest)}


PROTOCOL_PAPERS = {
    "trqam": "the TRQAM paper (arXiv 2605.27079, Table 1: offline, per domain, 8 seeds)",
    "qam": "the QAM paper (arXiv 2601.14234: offline at 1M and online at 1.5M steps, per task, 12 seeds)",
}


def build(measured, qam_ref, trqam_ref, *, profile: str, official: bool, protocol: str = "trqam",
          kl_budgets: dict[tuple[str, str], set[str]] | None = None,
          diverged: dict[tuple[str, str, str], int] | None = None,
          planned_seeds: int | None = None,
          revisions: dict[tuple[str, str], set[str]] | None = None,
          qam_domain_ref: dict[tuple[str, str, str], np.ndarray] | None = None) -> dict[str, list[dict]]:
    """Rows of the per-task, per-domain and overall tables (values in %). Each run is compared
    with the paper whose protocol it followed (``protocol``) and no other: the TRQAM paper
    publishes per-domain offline means, the QAM paper per-task, per-seed curves.
    ``kl_budgets``: ``(method, task) -> labels`` of TRQAM's KL budget (`run_kl_budgets`);
    ``diverged``: ``(method, task, phase) -> diverged runs`` (counted with success 0);
    ``planned_seeds``: the profile's seeds per task, to say when a mean covers fewer."""
    if protocol not in PROTOCOL_PAPERS:
        raise ValueError(f"unknown protocol {protocol!r}; one of {sorted(PROTOCOL_PAPERS)}")
    kl_budgets, diverged, revisions = kl_budgets or {}, diverged or {}, revisions or {}
    qam_domain_ref = load_qam_domain_reference() if qam_domain_ref is None else qam_domain_ref

    def seeds(n: int) -> str:
        return f"{n} of {planned_seeds}" if planned_seeds and n < planned_seeds else str(n)
    with_qam = protocol == "qam"
    full_paper_run = official and profile in ("paper", "qam-paper")

    def budget(method: str, tasks: list[str]) -> dict:
        labels = sorted(set().union(*(kl_budgets.get((method, t), set()) for t in tasks)))
        return {"kl_budget": "; ".join(labels)} if method == "trqam" or labels else {"kl_budget": ""}

    tasks_rows, domain_rows, overall_rows = [], [], []
    by_domain: dict[tuple[str, str, str], list[tuple[str, np.ndarray]]] = defaultdict(list)
    for (method, task, phase), values in sorted(measured.items()):
        interval = task_interval(np.array(values))
        domain = resolve_task(task).domain
        by_domain[(method, domain, phase)].append((task, np.array(values)))
        row = {"method": method, "task": task, "phase": phase, "seeds": seeds(interval.n),
               "diverged": diverged.get((method, task, phase), 0), "mean": _pct(interval.mean),
               "std": _pct(interval.std) if interval.n > 1 else "", **_spread(interval)}
        if with_qam:
            ref = qam_ref.get((paper_name(method), task, phase))
            row |= {"qam_paper": _pct(None if ref is None else float(np.mean(ref))),
                    "diff_qam": "" if ref is None else f"{100 * (interval.mean - float(np.mean(ref))):+.1f}"}
        row |= budget(method, [task])
        if revisions:
            row["revision"] = ", ".join(sorted(revisions.get((method, task), set())))
        tasks_rows.append(row)
    per_method_domains: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
    for (method, domain, phase), entries in sorted(by_domain.items()):
        samples = [values for _, values in entries]
        interval = group_interval(samples)
        info = DOMAINS_BY_NAME.get(domain)
        row = {"method": method, "domain": info.abbr if info else domain, "phase": phase,
               "tasks_measured": f"{len(samples)}/5", "seeds": seeds(interval.n),
               "diverged": sum(diverged.get((method, task, phase), 0) for task, _ in entries),
               "mean": _pct(interval.mean), **_spread(interval)}
        published: tuple[float, float | None] | None = None  # (mean %, std % over seeds)
        if with_qam:
            series = qam_domain_ref.get((paper_name(method), domain, phase))
            if series is not None:  # the domain mean of each published seed, grouped as the authors grouped them
                per_seed = 100 * series
                published = (float(np.mean(per_seed)), float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None)
            row |= {"qam_paper": "" if published is None else f"{published[0]:.1f}",
                    "diff_qam": "" if published is None else f"{100 * interval.mean - published[0]:+.1f}"}
        else:
            published = trqam_ref.get((paper_name(method), domain)) if phase == "offline" else None
            row |= {"trqam_paper": "" if published is None else f"{published[0]:.1f}"
                    + ("" if published[1] is None else f" ± {published[1]:.1f}"),
                    "diff_trqam": "" if published is None else f"{100 * interval.mean - published[0]:+.1f}"}
        row["match"] = ""
        if full_paper_run and published is not None and len(samples) == 5:
            tolerance = max(TOLERANCE_PP, 2 * (published[1] or 0.0))
            row["match"] = "yes" if abs(100 * interval.mean - published[0]) <= tolerance else "no"
        domain_rows.append(row | budget(method, [task for task, _ in entries]))
        per_method_domains[(method, phase)].append(np.array([np.mean(s) for s in samples]))
    for (method, phase), domain_means in sorted(per_method_domains.items()):
        overall = float(np.mean([np.mean(d) for d in domain_means]))
        overall_rows.append({"method": method, "phase": phase, "domains": len(domain_means), "mean": _pct(overall)})
    aggregates, improvement = aggregate_rows(measured)
    return {"tasks": tasks_rows, "domains": domain_rows, "overall": overall_rows, "aggregates": aggregates,
            "improvement": improvement}


def scores_by_method(measured) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    found: dict[tuple[str, str], dict[str, np.ndarray]] = defaultdict(dict)
    for (method, task, phase), values in measured.items():
        found[(method, phase)][task] = np.asarray(values, dtype=float)
    return found


def aggregate_rows(measured, reference_method: str = "trqam") -> tuple[list[dict], list[dict]]:
    """rliable's statistics over every measured task and seed (`bench.reporting.aggregate`): one row per
    (method, phase, statistic), in %, and the probability that ``reference_method`` improves on
    each other method over the tasks both were measured on (a probability, 0 to 1)."""
    by_method = scores_by_method(measured)
    rows = []
    for (method, phase), tasks in sorted(by_method.items()):
        scores = [tasks[t] for t in sorted(tasks)]
        runs = np.concatenate(scores)
        for name, statistic in aggregate.METRICS.items():
            e = aggregate.estimate(statistic, scores)
            rows.append({"method": method, "phase": phase, "statistic": name, "tasks": e["tasks"],
                         "seeds_per_task": e["runs_per_task"], "value": _pct(float(e["value"])),
                         "ci_low": _pct(None if e["ci_low"] is None else float(e["ci_low"])),
                         "ci_high": _pct(None if e["ci_high"] is None else float(e["ci_high"])),
                         "min": _pct(float(runs.min())), "max": _pct(float(runs.max()))})
    improvement = []
    for (method, phase), tasks in sorted(by_method.items()):
        reference = by_method.get((reference_method, phase))
        if method == reference_method or reference is None:
            continue
        common = sorted(set(tasks) & set(reference))
        if not common:
            continue
        e = aggregate.estimate(aggregate.probability_of_improvement, [reference[t] for t in common],
                               [tasks[t] for t in common])
        improvement.append({"method": reference_method, "over": method, "phase": phase, "tasks": len(common),
                            "seeds_per_task": e["runs_per_task"], "probability": f"{float(e['value']):.3f}",
                            "ci_low": "" if e["ci_low"] is None else f"{float(e['ci_low']):.3f}",
                            "ci_high": "" if e["ci_high"] is None else f"{float(e['ci_high']):.3f}"})
    return rows, improvement


def _aggregates_markdown(rows: list[dict], improvement: list[dict]) -> list[str]:
    if not rows:
        return []
    cells: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    meta: dict[tuple[str, str], tuple] = {}
    for r in rows:
        interval = f" [{r['ci_low']}, {r['ci_high']}]" if r["ci_low"] else ""
        cells[(r["method"], r["phase"])][r["statistic"]] = r["value"] + interval
        meta[(r["method"], r["phase"])] = (r["tasks"], r["seeds_per_task"], r["min"], r["max"])
    names = list(aggregate.METRICS)
    lines = ["| method | phase | tasks | seeds per task | " + " | ".join(names) + " | runs' range |",
             "|---|---|---|---|" + "---|" * len(names) + "---|"]
    for key, values in cells.items():
        tasks, seeds, low, high = meta[key]
        lines.append(f"| {key[0]} | {key[1]} | {tasks} | {seeds} | " + " | ".join(values[n] for n in names)
                     + f" | {low} to {high} |")
    text = ["## Aggregates over tasks and seeds (rliable's statistics)", "",
            "In %; lower is better for the optimality gap. Intervals: stratified bootstrap, 95%, percentile "
            f"(`bench.reporting.aggregate`), printed only where every task has {aggregate.MIN_RUNS_FOR_INTERVAL} or more seeds; "
            "otherwise the runs' range and the count are all there is.", "", *lines, ""]
    if improvement:
        text += ["Probability of improvement: P(a run of the first method scores above a run of the other on the same "
                 "task), ties counted half, averaged over the tasks both were measured on.", "",
                 "| method | over | phase | tasks | seeds per task | probability | 95% interval |",
                 "|---|---|---|---|---|---|---|"]
        for r in improvement:
            interval = f"[{r['ci_low']}, {r['ci_high']}]" if r["ci_low"] else "none (fewer than 3 seeds per task)"
            text.append(f"| {r['method']} | {r['over']} | {r['phase']} | {r['tasks']} | {r['seeds_per_task']} | "
                        f"{r['probability']} | {interval} |")
        text.append("")
    return text


def run_revisions(runs: list[dict], current: str | None) -> dict[tuple[str, str], set[str]]:
    """``(method, task) -> revisions`` the runs were trained at (from each run's
    ``environment.json``), 12 characters each, ``(other)`` after one that is not ``current``."""
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for run in runs:
        revision = (run["environment"] or {}).get("code_revision")
        label = (revision or "unrecorded")[:12] + ("" if revision == current else " (other)")
        found[(run["summary"]["method"], run["summary"]["task"])].add(label)
    return found


def run_kl_budgets(runs: list[dict]) -> dict[tuple[str, str], set[str]]:
    """``(method, task) -> labels`` of the KL budget each TRQAM run trained with, read from its
    ``config.json``: the value and where it came from (a ``--set`` override, the authors'
    published example, or the paper's default because the per-domain table is unpublished)."""
    from bench.config.hyperparams import kl_budget_source

    budgets: dict[tuple[str, str], set[str]] = defaultdict(set)
    for entry in runs:
        config = entry["config"] or {}
        values = {phase["agent_config"]["kl_budget"] for phase in config.get("phases", [])
                  if "kl_budget" in phase.get("agent_config", {})}
        if not values:
            continue
        run = config["run"]
        overridden = any(o.split("=", 1)[0].strip() == "kl_budget" for o in run.get("overrides", []))
        info = resolve_task(run["task"]).info
        source = "--set" if overridden else kl_budget_source(info.abbr if info else None)
        budgets[(run["method"], run["task"])] |= {f"{v:g} ({source})" for v in values}
    return budgets


def _markdown(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)\n"
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[k]) for k in header) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _with_data(row: dict, data: str) -> dict:
    """``row`` with a ``data`` column after ``method``."""
    out = {}
    for key, value in row.items():
        out[key] = value
        if key == "method":
            out["data"] = data
    return out


def off_protocol(run: dict, init: str) -> str | None:
    """The initialisation of a fine-tuning run that is not its profile's protocol's (``init``),
    e.g. a `train --init bc` run of the QAM paper's from-scratch protocol; None otherwise."""
    from bench.config.methods import get_method
    from bench.errors import BenchError

    try:
        method = get_method(run["summary"]["method"])
    except BenchError:  # a method from a package not installed here: its runs are still tabled
        method = None
    used = run["summary"].get("init")
    return used if method is not None and method.pipeline == "fine-tune" and used not in (None, init) else None


def build_grouped(run_set: RunSet, profile: str, reference_dir: Path = REFERENCE_DIR) -> dict[str, list[dict]]:
    """`build` for each data group of ``run_set``'s default runs (`RunSet.data_groups`), every row
    labelled with the data identity of its runs (per task and domain; per group for the rest).
    Fine-tuning runs initialised otherwise than the profile's protocol are tabled apart, their
    `data` label saying so, and never beside the published numbers."""
    from bench import provenance
    from bench.config.profiles import get_profile

    chosen = get_profile(profile)
    references = load_qam_reference(reference_dir), load_trqam_reference(reference_dir)
    domain_reference = load_qam_domain_reference(reference_dir)
    revision = provenance.code_revision()
    tables: dict[str, list[dict]] = defaultdict(list)
    for group in run_set.data_groups():
        default = [r for r in group.runs if r["default"]]
        parts = [([r for r in default if not off_protocol(r, chosen.init)], (*references, domain_reference), "")]
        for init in sorted({off_protocol(r, chosen.init) for r in default} - {None}):
            parts.append(([r for r in default if off_protocol(r, chosen.init) == init], ({}, {}, {}),
                          f"; init {init}, not the {chosen.protocol.upper()} protocol's {chosen.init}: no published "
                          "numbers"))
        for runs, (qam_ref, trqam_ref, qam_domain_ref), note in parts:
            if not runs:
                continue
            by_task = {r["summary"]["task"]: r["data_id"] + note for r in runs}
            by_domain = {resolve_task(t).domain: d for t, d in by_task.items()}
            ids = sorted(set(by_task.values()))
            everything = ids[0] if len(ids) == 1 else f"{len(ids)} identities: {', '.join(ids)}"
            kinds = {r["data_id"].split()[0] for r in runs}
            built = build(measured_successes(runs), qam_ref, trqam_ref, profile=profile,
                          official=kinds == {"official"}, protocol=chosen.protocol, kl_budgets=run_kl_budgets(runs),
                          diverged=diverged_runs(runs), planned_seeds=len(chosen.seeds),
                          revisions=run_revisions(runs, revision), qam_domain_ref=qam_domain_ref)
            for name, rows in built.items():
                for row in rows:
                    if name == "tasks":
                        data = by_task[row["task"]]
                    elif name == "domains":
                        data = next(d for dom, d in by_domain.items()
                                    if (DOMAINS_BY_NAME[dom].abbr if dom in DOMAINS_BY_NAME else dom) == row["domain"])
                    else:
                        data = everything
                    tables[name].append(_with_data(row, data))
    return {name: tables.get(name, []) for name in ("tasks", "domains", "overall", "aggregates", "improvement")}


def write(run_set: RunSet, out_dir: Path, profile: str, reference_dir: Path = REFERENCE_DIR,
          latex: bool = False) -> list[Path]:
    """``tables.md`` and one CSV per table under ``out_dir`` for the runs of ``run_set``
    (`bench.reporting.runset`); with ``latex``, the main table as ``main_table.tex``
    (`bench.reporting.latex`) too."""
    from bench import provenance
    from bench.config.profiles import get_profile

    protocol = get_profile(profile).protocol
    tables = build_grouped(run_set, profile, reference_dir)
    kinds = {r["data_id"].split()[0] for r in run_set.runs}
    groups = run_set.data_groups()
    paths = []
    for name, rows in tables.items():
        path = out_dir / f"{name}.csv"
        write_atomic(path, csv_text(rows) if rows else "")
        paths.append(path)
    other = "qam" if protocol == "trqam" else "trqam"
    match = (f"`match`: profile `{'paper' if protocol == 'trqam' else 'qam-paper'}` on official data only, "
             f"|gap to the published domain mean| <= max({TOLERANCE_PP:g} pp, 2 x its std over seeds).")
    text = [
        f"# Success rates: profile `{profile}` against the published numbers",
        "",
        f"Generated from the runs under `{relative_path(run_set.root)}`: {run_set.scope.description}. "
        f"{len(run_set.runs)} intact run(s) read, {len(run_set.damaged)} damaged (left out, listed below)"
        + (f", {len(run_set.missing)} planned but not finished" if run_set.missing else "") + ". Values in %;",
        "`ci_low`, `ci_high`: a stratified bootstrap 95% interval of the mean (seeds resampled within each task), "
        f"only where every task has {aggregate.MIN_RUNS_FOR_INTERVAL} or more seeds (with fewer, a bootstrap returns "
        "little more than the extremes); `min`, `max`: the lowest and highest single run, always. Differences are "
        "measured minus published. Every success is the run's own last evaluation (`evaluations.csv`), read through "
        "its seal (`bench.reporting.runset`).",
        f"Data: {', '.join(sorted(kinds)) or 'none'}." + (
            " Runs on regenerated data or a CPU-sized profile are not a reproduction of the papers' numbers."
            if kinds != {"official"} or profile not in ("paper", "qam-paper") else ""),
        "",
        "`data`: the data identity of the runs in the row (kind and a digest of the files' sha256, "
        "`bench.reporting.runset.data_identity`). Runs on different files of one dataset never share a row"
        + (f"; these runs trained on {len(groups)} sets of data, tabled separately: " if len(groups) > 1 else
           ". Data identities: ") + "; ".join(run_set.data_summary()) + ".",
        "",
        f"Compared with {PROTOCOL_PAPERS[protocol]} only: profile `{profile}` follows that paper's protocol"
        f"{'' if profile in ('paper', 'qam-paper') else ' (scaled down)'}. The "
        f"{'QAM' if other == 'qam' else 'TRQAM'} paper's numbers come from another protocol (initialisation, "
        "data, discount, seeds) and are not shown beside these runs.",
        "`diverged`: runs whose training became non-finite, counted in the mean with success 0. `seeds` says "
        "\"n of m\" where fewer runs than the profile plans are stored.",
        f"`revision`: the code revision the runs were trained at; \"(other)\" marks one that is not this "
        f"checkout's (`{provenance.code_revision()}`): `reproduce --rerun-stale` trains those again.",
        "`kl_budget` (TRQAM): the budget each run trained with and its source; \"default\" marks the paper's "
        "default 1.0 used where its per-domain value is unpublished.",
        "",
    ]
    if run_set.origin_lines():
        text += ["Runs not trained in this store (`bench results import`; reused because their configuration and "
                 "their method's code match today's): " + "; ".join(run_set.origin_lines()) + ".", ""]
    if run_set.damaged:
        text += ["## Damaged runs (left out of every number below)", "",
                 *[f"- {line}" for line in run_set.damaged_lines()], ""]
    text += [
        "## Per task", "", _markdown(tables["tasks"]),
        "## Per domain", "",
        f"`tasks_measured` below 5/5: the measured mean covers fewer tasks than the published one. {match}",
        "", _markdown(tables["domains"]),
        "## Overall (mean over the measured domains)", "", _markdown(tables["overall"]),
        *_aggregates_markdown(tables["aggregates"], tables["improvement"]),
    ]
    text += _tradeoff_section(run_set, out_dir, paths)
    if latex:
        from bench.reporting import latex as latex_table
        from bench.reporting.curves import COLOURS

        tex = out_dir / "main_table.tex"
        primary = [r for r in tables["domains"] if r["data"] in {d["data_id"] for d in groups[0].runs}]
        methods = sorted({r["method"] for r in primary},
                         key=lambda m: list(COLOURS).index(m) if m in COLOURS else len(COLOURS))
        write_atomic(tex, latex_table.main_table(
            primary, methods, caption=f"Offline success (%) per domain, profile {profile}, "
            f"{'/'.join(sorted(kinds))} data; measured (published: {PROTOCOL_PAPERS[protocol].split(' (')[0]})"))
        paths.append(tex)
    md = out_dir / "tables.md"
    write_atomic(md, "\n".join(text))
    return [md, *paths]


def _tradeoff_section(run_set: RunSet, out_dir: Path, paths: list[Path]) -> list[str]:
    """``kl_success.csv`` and its Markdown, where the profile's studies put QAM or TRQAM runs
    along the KL-success trade-off (`bench.reporting.tradeoff`; the first data group); nothing otherwise."""
    from bench.reporting import tradeoff

    runs = run_set.data_groups()[0].runs
    tasks = tradeoff.study_tasks(runs)
    if not tasks:
        return []
    rows = tradeoff.settings(tradeoff.points(runs, tasks))
    path = out_dir / "kl_success.csv"
    write_atomic(path, csv_text(tradeoff.table_rows(rows)))
    paths.append(path)
    return ["", f"## Success against realised KL ({', '.join(sorted(tasks))}; default and study runs)", "",
            "Realised KL: the mean path-KL estimate per action step over the second half of fine-tuning "
            "(`bench.reporting.tradeoff`); BC, the policy every run starts from, is 0. Success: final evaluation.", "",
            tradeoff.markdown(rows), ""]
