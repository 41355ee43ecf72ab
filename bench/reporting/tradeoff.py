"""The KL-success trade-off: how far each fine-tuned policy moved from its BC start, against
how often it succeeds (the main job's study; `figures.kl_success`, the report's section).

Every point is computed from a stored run's own files:

* **realised KL**: the mean of ``actor/path_kl`` (the path-KL estimate of docs/ALGORITHMS.md,
  per action step, the quantity TRQAM's budget constrains) over the logged steps of the second
  half of the run's offline phase. QAM and TRQAM log it; BC, the reference policy, is the zero
  point.
* **success**: the run's final success rate; a diverged run counts 0 (`bench.training.pipeline`).
* **interval**: a Wilson score 95% interval over the episodes pooled across a setting's seeds
  (binomial noise only: with two seeds, seed-to-seed spread cannot be estimated, and the
  figure shows each seed as its own point).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

# The methods on the trade-off and the config value that moves each along it.
KNOBS = {"trqam": "kl_budget", "qam": "inv_temp"}
Z95 = 1.959963984540054


def wilson(successes: int, episodes: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (``successes`` of ``episodes``)."""
    if episodes <= 0:
        return math.nan, math.nan
    p = successes / episodes
    denominator = 1 + z**2 / episodes
    centre = (p + z**2 / (2 * episodes)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / episodes + z**2 / (4 * episodes**2))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends where rounding would miss them
    high = 1.0 if successes == episodes else min(1.0, centre + half)
    return low, high


def realised_kl(metrics: list[dict], offline_steps: int) -> float | None:
    """Mean ``actor/path_kl`` over the logged offline steps after ``offline_steps / 2``."""
    values = [float(row["actor/path_kl"]) for row in metrics
              if row.get("phase") == "offline" and row.get("actor/path_kl") not in (None, "")
              and int(row["step"]) > offline_steps / 2]
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


@dataclass(frozen=True)
class Point:
    """One run on the trade-off."""

    method: str
    setting: str  # "kl_budget=0.25", "inv_temp=1", "BC"
    value: float | None  # the knob's value (None for BC)
    task: str
    seed: int
    kl: float | None  # realised path KL per action step (0 for BC; None when nothing was logged)
    success: float
    episodes: int
    diverged: bool
    q_first: float | None  # critic/q_mean at the first and last logged offline step
    q_last: float | None
    q_last_change: float | None  # change of critic/q_mean per 100 steps over the last quarter
    lambda_last: float | None = None  # TRQAM's dual variable at the last logged offline step
    lambda_first: float | None = None  # its starting value (the run's dual.init_lam)
    dual_lr: float | None = None  # its step size (the run's dual.dual_lr)
    steps: int = 0  # offline fine-tuning steps


def q_trace(metrics: list[dict]) -> tuple[float | None, float | None, float | None]:
    """``critic/q_mean`` at the first and last logged offline step, and its change per 100 steps
    over the last quarter of the logged steps (None where nothing was logged)."""
    rows = [(int(r["step"]), float(r["critic/q_mean"])) for r in metrics
            if r.get("phase") == "offline" and r.get("critic/q_mean") not in (None, "")]
    if not rows:
        return None, None, None
    last_step = rows[-1][0]
    tail = [(s, q) for s, q in rows if s >= 0.75 * last_step]
    change = None
    if len(tail) >= 2 and tail[-1][0] > tail[0][0]:
        change = 100 * (tail[-1][1] - tail[0][1]) / (tail[-1][0] - tail[0][0])
    return rows[0][1], rows[-1][1], change


def points(runs: list[dict], tasks: set[str] | None = None) -> list[Point]:
    """The trade-off's points among ``runs`` (`bench.reporting.figures.load_runs`): every BC, QAM and
    TRQAM run (default and study runs alike) on ``tasks`` (all tasks when None)."""
    found = []
    for run in runs:
        summary = run["summary"]
        method = summary["method"]
        if (method != "bc" and method not in KNOBS) or (tasks is not None and summary["task"] not in tasks):
            continue
        episodes = int(summary.get("eval_episodes") or 0)
        if summary.get("final_success") is None:
            continue  # a record without its final evaluation
        if method == "bc":
            setting, value, kl, q = "BC", None, 0.0, (None, None, None)
        else:
            key = KNOBS[method]
            if key not in run["agent_config"]:
                continue  # a record without its config: not placeable
            value = float(run["agent_config"][key])
            setting = f"{key}={value:g}"
            kl = realised_kl(run["metrics"], int(summary.get("steps", {}).get("offline", 0)))
            q = q_trace(run["metrics"])
        lambdas = [float(r["trqam/lambda"]) for r in run["metrics"]
                   if r.get("phase") == "offline" and r.get("trqam/lambda") not in (None, "")]
        found.append(Point(method, setting, value, summary["task"], int(summary["seed"]), kl,
                           float(summary["final_success"]), episodes, summary.get("status") == "diverged", *q,
                           lambda_last=lambdas[-1] if lambdas else None,
                           lambda_first=(run["agent_config"].get("dual") or {}).get("init_lam"),
                           dual_lr=(run["agent_config"].get("dual") or {}).get("dual_lr"),
                           steps=int(summary.get("steps", {}).get("offline", 0))))
    return found


def study_tasks(runs: list[dict]) -> set[str]:
    """The tasks where the trade-off was studied: those of runs with a QAM or TRQAM override."""
    return {r["summary"]["task"] for r in runs
            if r["summary"]["method"] in KNOBS and KNOBS[r["summary"]["method"]] in r["overrides"]}


@dataclass(frozen=True)
class Setting:
    """The seeds of one method at one knob value, pooled."""

    method: str
    setting: str
    value: float | None
    runs: int
    diverged: int
    kl_mean: float | None
    kl_min: float | None
    kl_max: float | None
    success_mean: float
    successes: int
    episodes: int
    ci_low: float
    ci_high: float


def settings(found: list[Point]) -> list[Setting]:
    """Points grouped by (method, setting): BC first, then each method by its knob's value."""
    groups: dict[tuple[str, str], list[Point]] = defaultdict(list)
    for p in found:
        groups[(p.method, p.setting)].append(p)
    rows = []
    for (method, setting), group in groups.items():
        kls = [p.kl for p in group if p.kl is not None]
        successes = sum(round(p.success * p.episodes) for p in group)
        episodes = sum(p.episodes for p in group)
        low, high = wilson(successes, episodes)
        rows.append(Setting(method, setting, group[0].value, len(group), sum(p.diverged for p in group),
                            float(np.mean(kls)) if kls else None, min(kls) if kls else None,
                            max(kls) if kls else None, float(np.mean([p.success for p in group])), successes,
                            episodes, low, high))
    order = {"bc": 0, "qam": 1, "trqam": 2}
    return sorted(rows, key=lambda r: (order.get(r.method, 3), r.value or 0.0))


def rank_correlation(found: list[Point]) -> tuple[float, float, int] | None:
    """Spearman's rho (and its two-sided p-value) between realised KL and success over the
    fine-tuned runs (BC excluded: it did not move); None with fewer than four runs."""
    pairs = [(p.kl, p.success) for p in found if p.method != "bc" and p.kl is not None]
    if len(pairs) < 4 or len({s for _, s in pairs}) < 2:
        return None
    from scipy.stats import spearmanr

    result = spearmanr([k for k, _ in pairs], [s for _, s in pairs])
    return float(result.statistic), float(result.pvalue), len(pairs)


def table_rows(rows: list[Setting]) -> list[dict]:
    """The CSV form of `settings` (numbers only; percentages as fractions)."""
    return [{"method": r.method, "setting": r.setting, "runs": r.runs, "diverged": r.diverged,
             "realised_kl_mean": "" if r.kl_mean is None else f"{r.kl_mean:.6g}",
             "realised_kl_min": "" if r.kl_min is None else f"{r.kl_min:.6g}",
             "realised_kl_max": "" if r.kl_max is None else f"{r.kl_max:.6g}",
             "success_mean": f"{r.success_mean:.4f}", "successes": r.successes, "episodes": r.episodes,
             "ci_low": f"{r.ci_low:.4f}", "ci_high": f"{r.ci_high:.4f}"} for r in rows]


def _kl_text(r: Setting) -> str:
    if r.kl_mean is None:
        return "not logged"
    if r.method == "bc":
        return "0 (the reference)"
    return f"{r.kl_mean:.3g}" + (f" ({r.kl_min:.3g} to {r.kl_max:.3g})" if r.runs > 1 else "")


def markdown(rows: list[Setting]) -> str:
    lines = ["| method | setting | runs | realised KL per action step (seed range) | success % | "
             "successes / episodes | 95% interval (Wilson, pooled episodes) | diverged |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.method} | {r.setting} | {r.runs} | {_kl_text(r)} | {100 * r.success_mean:.1f} | "
                     f"{r.successes} / {r.episodes} | {100 * r.ci_low:.1f} to {100 * r.ci_high:.1f} | {r.diverged} |")
    return "\n".join(lines)


def findings(found: list[Point], discount: float) -> list[str]:
    """Plain sentences with the numbers of the stored runs: what the trade-off shows, and the
    critic's state that explains it. Every number is computed here from ``found``."""
    rows = settings(found)
    if not any(r.method != "bc" for r in rows):
        return ["No QAM or TRQAM runs with a logged path KL: nothing to say about the trade-off."]
    lines = []
    bc = next((r for r in rows if r.method == "bc"), None)
    if bc is not None:
        lines.append(f"- **BC** (the zero point, KL 0): {100 * bc.success_mean:.1f}% "
                     f"({bc.successes} of {bc.episodes} episodes; 95% interval {100 * bc.ci_low:.1f} to "
                     f"{100 * bc.ci_high:.1f}).")
    moved = [p for p in found if p.method != "bc" and p.kl is not None]
    for label, chosen in (("realised KL below 0.01", [p for p in moved if p.kl < 0.01]),
                          ("realised KL from 0.01 to 0.1", [p for p in moved if 0.01 <= p.kl < 0.1]),
                          ("realised KL of 0.1 or more", [p for p in moved if p.kl >= 0.1])):
        if chosen:
            successes = sum(round(p.success * p.episodes) for p in chosen)
            episodes = sum(p.episodes for p in chosen)
            low, high = wilson(successes, episodes)
            names = sorted({f"{p.method} {p.setting}" for p in chosen})
            lines.append(f"- Fine-tuned runs with {label}: {100 * successes / max(1, episodes):.1f}% "
                         f"({successes} of {episodes} episodes, {len(chosen)} runs: {', '.join(names)}; "
                         f"95% interval {100 * low:.1f} to {100 * high:.1f}).")
    correlation = rank_correlation(found)
    if correlation is not None:
        rho, p_value, n = correlation
        direction = ("falls as the realised KL grows" if rho < 0 else "rises as the realised KL grows") \
            if p_value < 0.05 else "shows no significant monotone relation with the realised KL"
        lines.append(f"- Over the {n} fine-tuned runs, success {direction} (Spearman rho {rho:+.2f}, "
                     f"p = {p_value:.2g}).")
    for r in rows:
        if r.method == "trqam" and r.kl_mean is not None and r.value:
            text = f"- TRQAM at budget {r.value:g}: realised KL {r.kl_mean:.3g} ({r.kl_mean / r.value:.2f} x the budget)"
            group = [p for p in found if p.method == "trqam" and p.setting == r.setting
                     and None not in (p.lambda_last, p.lambda_first, p.dual_lr)]
            if r.kl_mean < 0.5 * r.value and group:
                steps, lr = max(p.steps for p in group), group[0].dual_lr
                text += (f"; lambda ended at {np.mean([p.lambda_last for p in group]):.3g} (from "
                         f"{group[0].lambda_first:g}): the dual step lambda += {lr:g} (KL - budget) lowers it by at most "
                         f"{lr:g} x budget per update, {lr * r.value * steps:.2g} over these {steps:,} steps, so this "
                         "budget is not reached at this length (docs/ALGORITHMS.md s3)")
            lines.append(text + ".")
    qs = [p for p in moved if p.q_last is not None]
    if qs:
        fixed_point = -1.0 / (1.0 - discount)
        last = [p.q_last for p in qs]
        first = [p.q_first for p in qs if p.q_first is not None]
        changes = [p.q_last_change for p in qs if p.q_last_change is not None]
        q_last, q_first = float(np.mean(last)), float(np.mean(first)) if first else math.nan
        moving = float(np.mean(changes)) if changes else None
        text = (f"- **The critic**: over these runs the mean Q of the batch went from {q_first:.1f} at the first "
                f"logged step to {q_last:.1f} (range {min(last):.1f} to {max(last):.1f}) at the last"
                + (f", still moving by {moving:+.2f} per 100 steps over the last quarter" if moving is not None else "")
                + f". With reward -1 per step until success and discount {discount:g}, a state from which the task "
                f"is never solved is worth {fixed_point:.0f}")
        if q_last > 0.5 * fixed_point and moving is not None and abs(moving) > 0.01 * abs(q_last):
            text += (f" ({100 * (bc.success_mean if bc else 0):.0f}% of BC's episodes succeed, so most states are "
                     "close to that): the critic is still far from its fixed point and moving, so it ranks actions "
                     "by how far its training has got rather than by how well they solve the task, and a policy "
                     "that follows it further from BC (a larger realised KL) follows that error further "
                     "(Lemma 1, docs/ALGORITHMS.md s3: the error's effect grows with beta).")
        else:
            text += ": the critic is at or near that scale and no longer moving fast; the trade-off above is not "
            text += "explained by an unconverged critic alone."
        lines.append(text)
    return lines
