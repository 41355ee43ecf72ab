"""``reports/REPORT.md``: what a `reproduce` invocation ran, where, on what, and what it found.

Written at the end of `python -m bench reproduce` from the stored results only: the sweep's
outcomes, the run summaries, the tables (`bench.reporting.tables`), the figures (`bench.reporting.figures`) and
the closed-form studies (`bench.reporting.closed_form`).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import provenance
from bench.config.profiles import Profile
from bench.files import relative_path
from bench.reporting import closed_form
from bench.reporting.runset import RunSet
from bench.training.runstore import DamagedRecord, read_run, write_atomic
from bench.training.sweep import Outcome, failures_table

CAN_AND_CANNOT = {
    "quick": (
        "A quick run is a CPU-sized experiment, not a reproduction: small networks ({hidden}, {critics} "
        "critics), {pretrain:,} BC steps and {offline:,} fine-tuning steps instead of 300K + 1M, {seeds} seeds, "
        "on regenerated data (ogbench's scripted oracles, {episodes} episodes) of {tasks}. Its main result is the "
        "**KL-success trade-off** below: QAM across beta and TRQAM across KL budgets on one task, each run placed "
        "by how far fine-tuning moved its policy from BC (realised path KL) against how often it succeeds. It "
        "also shows TRQAM's dual descent tracking its budget on OGBench (realised KL, lambda), the closed-form "
        "checks of the paper's mechanisms, and a **headline table** of the TRQAM table's methods on the same "
        "task: a check that every method trains, is evaluated on real MuJoCo episodes and is tabulated end to "
        "end, at a scale where the methods' ranking means little. It **cannot** show the papers' success rates "
        "or rankings (networks, schedules and data differ), nor what a trust region buys once the critic is "
        "good (the papers' 1M-step regime): after {offline:,} steps the critic is far from converged (numbers "
        "below). 50 evaluation episodes per seed move a success rate by several points from noise alone; every "
        "interval is printed. cube-single is outside the papers' 50 tasks: there is no published number to "
        "compare with, and the tables leave those columns empty."
    ),
    "smoke": "A smoke run only checks that the pipeline runs: its numbers mean nothing.",
    "paper": (
        "The paper profile uses the TRQAM paper's protocol: its networks, schedules, task set, data and "
        "8 seeds, fine-tuning from BC checkpoints. On the official datasets its per-domain means are "
        "checked against the TRQAM paper's table (see `match`), and against no other paper's numbers. On "
        "regenerated data it is not comparable to the published numbers."
    ),
    "qam-paper": (
        "The qam-paper profile uses the QAM paper's protocol: its 17 methods trained from scratch, "
        "discount 0.99 (0.995 on antmaze-giant and humanoidmaze), the standard datasets except the 100M "
        "sets on cube-quadruple and puzzle-4x4, and 12 seeds. On the official datasets its per-task and "
        "per-domain means are compared with the QAM paper's curves (see `match`), and with no other "
        "paper's numbers. On regenerated data it is not comparable to the published numbers."
    ),
}


def _sweep_history(sweeps_dir: Path, profile: str) -> list[str]:
    """One line per stored sweep of this profile: when and where the stored runs were trained."""
    lines = []
    for path in sorted(sweeps_dir.glob(f"{profile}-*.json")):
        record = json.loads(path.read_text())
        counts = record["counts"]
        lines.append(f"  - `{path.name}`: {counts['finished']} trained, {counts.get('diverged', 0)} diverged, "
                     f"{counts['skipped']} skipped, {counts['failed']} failed; sweep wall time {record['wall_time_s'] / 60:.1f} min on "
                     f"`{record['driver']['host']}` ({record['settings']['backend']} backend)")
    return ["- Sweeps stored for this profile (`results/sweeps/`):", *lines] if lines else []


def _data_section(runs: list[dict]) -> list[str]:
    """One line per data identity the runs trained on (`bench.reporting.runset.data_identity`)."""
    lines = []
    counts = Counter(r["data_id"] for r in runs)
    seen = set()
    for run in runs:
        data = run["data"] or {}
        if run["data_id"] in seen or not data:
            continue
        seen.add(run["data_id"])
        manifest = data.get("manifest") or {}
        n = counts[run["data_id"]]
        if data.get("kind") == "regenerated":
            lines.append(f"  - `{manifest.get('dataset')}` (`{run['data_id']}`, {n} runs): **regenerated** with ogbench "
                         f"{manifest.get('versions', {}).get('ogbench')} oracles, {manifest.get('episodes')} episodes x "
                         f"{manifest.get('recipe', {}).get('episode_length')} steps, seed {manifest.get('seed')} "
                         f"(not the official files)")
        else:
            lines.append(f"  - `{data.get('dataset')}` (`{run['data_id']}`, {n} runs): {data.get('kind')} files")
    return lines or ["  - (no data records)"]


def _assumptions_section(runs: list[dict], profile: Profile) -> list[str]:
    """The choices the authors' code leaves open that these runs made (`bench.config.assumptions`),
    from each run's config.json, each stated as assumed."""
    from bench.config import assumptions

    made = Counter()
    for run in runs:
        for name, value in assumptions.recorded(run["config"], profile).items():
            made[(name, value)] += 1
    if not made:
        return ["- Assumptions: none open under this profile (its authors' code settles every setting)."]
    lines = ["- Assumptions (**assumed, not published**: the authors' code does not settle them; docs/PROTOCOL.md "
             "'Assumptions' gives the evidence, `--assume NAME=VALUE` changes them):"]
    for (name, value), n in sorted(made.items()):
        default = " (default)" if value == assumptions.ASSUMPTIONS[name].default else ""
        lines.append(f"  - `{name}={value}`{default}: {n} of {len(runs)} runs")
    return lines


def _run_environments(runs: list[dict]) -> dict[str, Counter]:
    """What the runs' own ``environment.json`` say: hardware, versions and code revisions, each
    with how many runs it describes."""
    found: dict[str, Counter] = {"hardware": Counter(), "versions": Counter(), "revision": Counter()}
    for run in runs:
        env = run["environment"] or {}
        hw = env.get("hardware", {})
        found["hardware"][f"{hw.get('cpu', '?')} x{hw.get('cpu_cores', '?')} cores, {hw.get('memory_gib', '?')} GiB, "
                          f"JAX `{hw.get('jax_backend', '?')}` ({', '.join(hw.get('jax_devices', []))}), "
                          f"host `{hw.get('host', '?')}`"] += 1
        found["versions"][", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()) or "unrecorded"] += 1
        found["revision"][env.get("code_revision") or "unrecorded"] += 1
    return found


def _where_the_time_went(runs: list[dict], wall_s: dict) -> str:
    """One line: the stored runs' own time by part (their ``time_split_s``, each program counted
    once: seeds trained side by side share it), the regeneration of the datasets they trained on
    (their manifests' ``generation_seconds``, each dataset once) and this invocation's reporting."""
    parts: Counter = Counter()
    datasets: dict[tuple, float | None] = {}
    for run in runs:
        summary = run["summary"]
        share = 1.0 / max(1, len(summary.get("seeds_in_program") or [0]))
        split = summary.get("time_split_s") or {}
        parts["programs' start-up (imports, data loading, evaluation environments)"] += \
            share * float(summary.get("startup_s") or 0.0)
        if summary.get("method") == "bc":
            parts["BC pretraining"] += share * split.get("total", 0.0)
        else:
            parts["compilation (first calls)"] += share * split.get("first_call", 0.0)
            parts["updates"] += share * split.get("updates", 0.0)
            parts["evaluation"] += share * split.get("evaluation", 0.0)
            parts["setup, logging, checkpoints"] += share * sum(split.get(k, 0.0) for k in
                                                                ("setup", "logging", "checkpoints"))
        manifest = (run["data"] or {}).get("manifest") or {}
        if manifest.get("kind") == "regenerated":
            datasets[(manifest.get("dataset"), manifest.get("created_utc"))] = manifest.get("generation_seconds")
    recorded = [v for v in datasets.values() if v is not None]
    unrecorded = len(datasets) - len(recorded)
    if not datasets:
        data = "no regenerated data"
    else:
        data = f"data regeneration {sum(recorded) / 60:.1f} min ({len(recorded)} dataset(s)"
        data += f"; {unrecorded} made before generation times were recorded)" if unrecorded else ")"
    return ("- Where the time went (the runs' own records, each program counted once; fine-tuning runs' "
            f"updates include any BC phase they ran themselves): {data}, "
            + ", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in parts.items())
            + f"; this invocation's tables, figures and report {wall_s['outputs'] / 60:.1f} min.")


def _counted(counter: Counter, total: int) -> str:
    return "; ".join(f"{value} ({n} of {total} runs)" for value, n in counter.most_common())


def _new_against_committed(prepared, run_set: RunSet, tables_dir: Path) -> list[str]:
    """Per method: the runs trained again in this invocation against the runs they replaced
    (a fresh clone's committed runs, or runs of another configuration), and the published
    value the tables show; a line saying why when there is nothing to compare."""
    import csv

    current_runs = {r["dir"].resolve(): r for r in run_set.runs}
    new: dict[str, list[float]] = {}
    old: dict[str, list[float]] = {}
    revisions: dict[str, set[str]] = {}
    unreadable = []
    for item in prepared or ():
        if item.replaced is None or not (item.replaced / "summary.json").exists():
            continue
        current = current_runs.get(item.run.run_dir().resolve())
        if current is None:
            continue
        try:
            replaced = read_run(item.replaced)
        except DamagedRecord as exc:
            unreadable.append(f"`{item.replaced}` ({exc.path.name} {exc.reason})")
            continue
        label = item.run.method + ("" if not item.run.overrides else " " + " ".join(item.run.overrides))
        phase = list(current["success_by_phase"])[-1]
        new.setdefault(label, []).append(current["success_by_phase"][phase])
        old.setdefault(label, []).append(list(replaced["success_by_phase"].values())[-1])
        revisions.setdefault(label, set()).add(str(item.revision or "unrecorded")[:12])
    if not new:
        why = ("no run of this invocation replaced a stored run of another result store or configuration (on an "
               "empty store, or a store that trained every run itself, there is nothing committed to compare with)")
        if unreadable:
            why += f"; the replaced runs could not be read: {'; '.join(unreadable)}"
        return ["## New against committed", "", f"Nothing to compare: {why}.", ""]
    published: dict[str, str] = {}
    domains = tables_dir / "domains.csv"
    if domains.exists():
        with open(domains, newline="") as f:
            for row in csv.DictReader(f):
                value = row.get("trqam_paper") or row.get("qam_paper") or ""
                if value and row["phase"] == "offline":
                    published.setdefault(row["method"], f"{row['domain']}: {value}")
    lines = ["## New against committed", "",
             "Runs trained in this invocation in place of stored runs of another result store (the committed "
             "runs, on a fresh clone) or of another configuration; the old runs are kept under "
             "`results/replaced/`. Final success in %, mean over the runs; published: the value the tables "
             "show for the profile's paper (empty where the task is not among the paper's).", "",
             "| method | runs | new | committed | committed at revision | published |", "|---|---|---|---|---|---|"]
    for label in sorted(new):
        lines.append(f"| {label} | {len(new[label])} | {100 * np.mean(new[label]):.1f} | {100 * np.mean(old[label]):.1f} | "
                     f"{', '.join(sorted(revisions[label]))} | {published.get(label.split()[0], '')} |")
    return [*lines, ""]


def write(path: Path, *, profile: Profile, command: str, selection: dict, outcomes: list[Outcome],
          run_set: RunSet, tables_dir: Path, figures: list[Path], closed_dir: Path, wall_s: dict[str, float],
          prepared=None) -> Path:
    """REPORT.md for the runs of ``run_set`` (`bench.reporting.runset`: this invocation's matrix,
    verified), read once for the tables, the figures and this report."""
    base = path.parent
    runs_root = run_set.root
    results_dir = runs_root.parent.parent
    summaries = [r["summary"] for r in run_set.runs]
    run_dirs = [r["dir"] for r in run_set.runs]
    counts = Counter(o.status for o in outcomes)
    environments = _run_environments(run_set.runs)
    current_revision = provenance.code_revision()
    hidden = "x".join(str(h) for h in profile.hidden_sizes)
    statement = CAN_AND_CANNOT.get(profile.name, "").format(
        hidden=hidden, critics=profile.num_critics, pretrain=profile.pretrain_steps, offline=profile.offline_steps,
        seeds=len(selection.get("seeds") or profile.seeds), episodes=profile.regeneration.episodes,
        tasks=", ".join(selection.get("tasks") or profile.tasks))
    # Seeds trained by one program share its wall time: count it once.
    run_seconds = sum(float(s.get("wall_time_s", 0.0)) / len(s.get("seeds_in_program") or [0]) for s in summaries)
    lines = [
        f"# Report: profile `{profile.name}`",
        "",
        f"Written by `{command}` on {datetime.now(UTC).isoformat(timespec='seconds')}, from the stored results only.",
        "",
        "## What this run can and cannot show",
        "",
        statement,
        "",
        *_tradeoff_section(run_set, profile, figures, base),
        "## Provenance",
        "",
        "Every provenance line below comes from the stored runs' own records (`environment.json`, "
        "`data.json`), not from the machine that wrote this report.",
        "",
        f"- Hardware: {_counted(environments['hardware'], len(run_dirs))}.",
        f"- Versions: {_counted(environments['versions'], len(run_dirs))}.",
        f"- Code revision of the runs: {_counted(environments['revision'], len(run_dirs))}"
        + ("" if set(environments["revision"]) <= {current_revision} else
           f"; this report was written at `{current_revision}`: runs of another revision are marked in the "
           "tables' `revision` column, and `reproduce --rerun-stale` trains them again") + ".",
        f"- Matrix: methods {', '.join(selection['methods'])}; tasks {', '.join(selection['tasks'])}; "
        f"seeds {', '.join(map(str, selection['seeds']))}; plus the profile's studies "
        f"({', '.join(f'{s.method} {s.key} in {list(s.values)}' for s in selection.get('studies', profile.studies)) or 'none'}).",
        f"- Runs in this report: {run_set.scope.description}; {len(run_set.runs)} intact, {len(run_set.damaged)} "
        f"damaged (left out of every number), {len(run_set.missing)} planned but not finished. Other runs of the "
        f"store (`{relative_path(runs_root, base.parent)}`) are not in this report.",
        f"- Runs in this invocation: {counts.get('finished', 0)} trained, {counts.get('diverged', 0)} diverged "
        f"(results: success 0), {counts.get('skipped', 0)} already finished before it (kept, not redone), "
        f"{counts.get('failed', 0)} failed.",
        f"- Wall time of this invocation: {wall_s['total'] / 60:.1f} min (sweep {wall_s['sweep'] / 60:.1f} min, "
        f"closed-form studies {wall_s['closed_form'] / 60:.1f} min, tables, figures and report "
        f"{wall_s['outputs'] / 60:.1f} min). Sum of the stored programs' own wall times: {run_seconds / 60:.1f} min "
        "(seeds trained by one program counted once; programs overlap when several workers run side by side).",
        _where_the_time_went(run_set.runs, wall_s),
        *_sweep_history(results_dir / "sweeps", profile.name),
        *_assumptions_section(run_set.runs, profile),
        *([f"- Imported runs (`bench results import`, reused: configuration and method code match): "
           f"{'; '.join(run_set.origin_lines())}."] if run_set.origin_lines() else []),
        "- Data (runs on different files of one dataset are tabled apart, by their data identity):",
        *_data_section(run_set.runs),
        f"- Every run's directory (config, versions, hardware, data provenance, metrics, evaluations, log) is "
        f"under `{runs_root}`; the index of all stored runs is `{results_dir / 'index.csv'}`.",
        "",
    ]
    if run_set.damaged:
        lines += ["## Damaged runs", "", "These runs failed their check when read (a record edited after it was "
                  "written, truncated, or impossible); they are in no table, figure or mean. Move them aside and "
                  "train them again with `reproduce --rerun-stale`.", "",
                  *[f"- {line}" for line in run_set.damaged_lines(base.parent)], ""]
    diverged = [(d, s) for d, s in zip(run_dirs, summaries, strict=True) if s.get("status") == "diverged"]
    if diverged:
        lines += ["## Diverged runs", "", "Each is a result: counted in the tables with success 0 from the phase it "
                  "diverged in (column `diverged`), never retried.", "",
                  "| run | diverged at | non-finite | last good checkpoint |", "|---|---|---|---|"]
        for directory, summary in diverged:
            info, last = summary["diverged"], summary["diverged"].get("last_good_checkpoint")
            last_text = f"{last['phase']} step {last['step']}" if last else "none"
            lines.append(f"| `{relative_path(directory, runs_root)}` | {info['phase']} step {info['step']} | "
                         f"{', '.join(info['metrics'])} | {last_text} |")
        lines.append("")
    lines += _new_against_committed(prepared, run_set, tables_dir)
    failed = failures_table(outcomes)
    if failed:
        lines += ["## Failed runs", "", "These runs did not finish; their logs say why. Rerun the same command to "
                  "retry them (finished runs are kept).", "", failed, ""]
    tables_md = (tables_dir / "tables.md").read_text().split("\n", 1)[1] if (tables_dir / "tables.md").exists() else ""
    lines += ["## Success rates", "", f"From `{relative_path(tables_dir, base.parent)}/` (CSV files beside it).",
              tables_md.replace("\n## ", "\n### "), ""]
    lines += ["## Figures", ""]
    for png in [f for f in figures if f.suffix == ".png"]:
        lines += [f"### {png.stem.replace('_', ' ')}", "", f"![{png.stem}]({relative_path(png, base)})", ""]
    lines += ["## The closed-form problem", "", *closed_form_summary(closed_dir), ""]
    text = "\n".join(lines)
    write_atomic(path, text)
    return path


def _tradeoff_section(run_set: RunSet, profile: Profile, figures: list[Path], base: Path) -> list[str]:
    """The KL-success trade-off in words and numbers (`bench.reporting.tradeoff`), where the profile's
    studies put QAM or TRQAM runs along it (the runs of the first data group)."""
    from bench.reporting import tradeoff

    runs = run_set.data_groups()[0].runs
    tasks = tradeoff.study_tasks(runs)
    if not tasks:
        return []
    found = tradeoff.points(runs, tasks)
    png = next((f for f in figures if f.name == "kl_success.png"), None)
    return [
        "## What the runs show: success against realised KL", "",
        f"On {', '.join(sorted(tasks))}: every BC, QAM and TRQAM run of this profile (the headline runs and the "
        f"studies: {', '.join(f'{s.method} {s.key} in {list(s.values)}' for s in profile.studies)}), "
        "each placed by the realised path KL per action step (the mean estimate over the second half of "
        "fine-tuning) against its final success. Computed from the stored runs by `bench.reporting.tradeoff`; the table "
        "is in the success rates below.", "",
        *([f"![kl_success]({relative_path(png, base)})", ""] if png else []),
        *tradeoff.findings(found, profile.discount), "",
        "What this cannot show: whether the trade-off keeps this shape once the critic has converged (then a "
        "larger KL may buy success, which is what the papers' 1M-step runs measure), nor a ranking of QAM "
        "against TRQAM: two seeds per setting and 50 episodes per seed separate only large effects.", "",
    ]


def closed_form_summary(closed_dir: Path) -> list[str]:
    """A few sentences with the numbers of the stored closed-form studies."""
    tracking = closed_form.read(closed_dir, "kl_tracking")
    sensitivity = closed_form.read(closed_dir, "budget_sensitivity")
    errors = closed_form.read(closed_dir, "critic_error")
    if not (tracking and sensitivity and errors):
        return ["Not computed in this invocation (`--no-closed-form`, or the smoke profile)."]
    last = {mode: [r for r in tracking if r["mode"] == mode][-1] for mode in ("internal", "external")}
    tail = {mode: float(np.mean([r["path_kl"] for r in tracking if r["mode"] == mode][-10:]))
            for mode in ("internal", "external")}  # the last 10 logged estimates (100 updates)
    lines = [
        "On the 2-D Gaussian problem of docs/ALGORITHMS.md s5 (exact base flow, quadratic critic; "
        "`results/closed-form/`):",
        "",
        f"- KL tracking at budget {last['internal']['budget']:g}: TRQAM's path-KL estimate averages "
        f"{tail['internal']:.4f} over its last 100 updates (EMA {last['internal']['kl_ema']:.4f}, lambda "
        f"{last['internal']['lambda']:.3f}); the external-KL ablation's averages {tail['external']:.4f} (its EMA is "
        f"held at {last['external']['kl_ema']:.4f} by the clip at 2 x budget, lambda {last['external']['lambda']:.3f} "
        "and rising).",
        "- Budget sensitivity (realised KL / mean Q of the samples / mean Q of the exact tilt with that KL): "
        + "; ".join(f"budget {r['budget']:g}: {r['realised_kl']:.3f} / {r['mean_q']:.3f} / {r['exact_tilt_mean_q']:.3f}"
                    for r in sensitivity) + f" (base policy: {sensitivity[0]['base_mean_q']:.3f}).",
        "- Lemma 1 (KL by which a critic error delta . a with |delta . a| <= 0.5 moves the solution, "
        "measured / exact): " + "; ".join(f"{r['method']} {r['setting']}: {r['measured_shift_kl']:.4f} / "
                                          f"{r['analytic_shift_kl']:.4f}" for r in errors) + ".",
    ]
    return lines
