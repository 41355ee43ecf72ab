"""Aggregate statistics over tasks and seeds, as rliable defines them (Agarwal et al., 2021,
"Deep RL at the edge of the statistical precipice"; the `rliable` package).

Written against numpy and scipy rather than importing rliable, whose `arch` dependency
fails to import with pandas 3; `tests/test_aggregate.py` checks every statistic against
rliable itself on fixed inputs (the test environment pins pandas < 3 for it).

Scores are success rates in [0, 1], one list of runs (seeds) per task: ``list[np.ndarray]``,
task ``t`` holding ``n_t`` runs. On a rectangular input (every task the same runs) each
statistic equals rliable's:

* ``mean``: the mean over tasks of each task's mean over runs (`aggregate_mean`);
* ``median``: the median over tasks of the task means (`aggregate_median`);
* ``iqm``: the interquartile mean of all runs of all tasks, 25% trimmed at each end
  (`aggregate_iqm`: ``scipy.stats.trim_mean(..., 0.25, axis=None)``);
* ``optimality_gap``: ``1 - mean(min(score, 1))`` over all runs (`aggregate_optimality_gap`);
* ``probability_of_improvement(x, y)``: the mean over tasks of P(X > Y) + P(X = Y) / 2 for
  one run of each (the Mann-Whitney U statistic over ``n_x n_y``);
* ``performance_profile``: the fraction of all runs with a score above each threshold tau
  (`run_score_distribution`).

Intervals: the stratified bootstrap (runs resampled with replacement within each task,
tasks kept), percentile method, 95%; for the probability of improvement both methods'
runs are resampled independently. With fewer than ``MIN_RUNS_FOR_INTERVAL`` runs in some
task there is no interval: a bootstrap over two seeds only returns their extremes, so the
tables print the range and the count instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import trim_mean

MIN_RUNS_FOR_INTERVAL = 3
CONFIDENCE = 0.95
REPS = 2000
Scores = Sequence[np.ndarray]  # one 1-D array of runs per task


# Each statistic takes one array per task of shape (..., n_t) and reduces the last axis and the
# tasks, so the same code computes the point estimate (no leading axis) and all bootstrap
# resamples at once (a leading axis of reps).
def mean(scores: Scores) -> np.ndarray:
    return np.mean(np.stack([np.mean(s, axis=-1) for s in scores], axis=-1), axis=-1)


def median(scores: Scores) -> np.ndarray:
    return np.median(np.stack([np.mean(s, axis=-1) for s in scores], axis=-1), axis=-1)


def iqm(scores: Scores) -> np.ndarray:
    return trim_mean(np.concatenate(scores, axis=-1), proportiontocut=0.25, axis=-1)


def optimality_gap(scores: Scores, gamma: float = 1.0) -> np.ndarray:
    return gamma - np.mean(np.minimum(np.concatenate(scores, axis=-1), gamma), axis=-1)


METRICS: dict[str, Callable[[Scores], np.ndarray]] = {
    "IQM": iqm, "mean": mean, "median": median, "optimality gap": optimality_gap}


def probability_of_improvement(x: Scores, y: Scores) -> np.ndarray:
    """Average over tasks of P(X > Y) + P(X = Y) / 2 (``x``, ``y``: the same tasks, in order)."""
    per_task = []
    for xs, ys in zip(x, y, strict=True):
        greater = np.mean(xs[..., :, None] > ys[..., None, :], axis=(-2, -1))
        ties = np.mean(xs[..., :, None] == ys[..., None, :], axis=(-2, -1))
        per_task.append(greater + 0.5 * ties)
    return np.mean(np.stack(per_task, axis=-1), axis=-1)


def performance_profile(scores: Scores, taus: np.ndarray) -> np.ndarray:
    """Fraction of all runs scoring above each tau: shape (..., len(taus))."""
    flat = np.concatenate(scores, axis=-1)
    return np.mean(flat[..., None, :] > np.asarray(taus)[:, None], axis=-1)


def has_interval(*groups: Scores) -> bool:
    return all(len(s) >= MIN_RUNS_FOR_INTERVAL for scores in groups for s in scores)


def _resample(scores: Scores, rng: np.random.Generator, reps: int) -> list[np.ndarray]:
    """Each task's runs drawn with replacement, ``reps`` times: arrays of shape (reps, n_t)."""
    return [np.asarray(s)[rng.integers(0, len(s), size=(reps, len(s)))] for s in scores]


def stratified_interval(statistic: Callable[..., np.ndarray], *groups: Scores, reps: int = REPS,
                        confidence: float = CONFIDENCE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of ``statistic(*groups)`` under the stratified bootstrap (each
    group's runs resampled within each task, independently across groups)."""
    rng = np.random.default_rng(seed)
    samples = statistic(*[_resample(g, rng, reps) for g in groups])
    alpha = (1 - confidence) / 2
    return np.quantile(samples, alpha, axis=0), np.quantile(samples, 1 - alpha, axis=0)


def estimate(statistic: Callable[..., np.ndarray], *groups: Scores, **kwargs) -> dict:
    """Point estimate and, with enough runs per task, its interval; otherwise the range of the
    runs and how many there are (``runs_per_task``: the fewest in any task)."""
    groups = tuple([np.asarray(s, dtype=float) for s in g] for g in groups)
    value = statistic(*groups)
    result = {"value": value, "ci_low": None, "ci_high": None,
              "runs_per_task": min(len(s) for g in groups for s in g), "tasks": len(groups[0])}
    if has_interval(*groups):
        result["ci_low"], result["ci_high"] = stratified_interval(statistic, *groups, **kwargs)
    return result
