"""`bench.reporting.aggregate` against rliable itself on fixed inputs (point estimates exactly,
bootstrap intervals up to Monte Carlo error) and against closed-form cases."""

from __future__ import annotations

import numpy as np
import pytest
from rliable import library as rly
from rliable import metrics

from bench.reporting import aggregate

RNG = np.random.default_rng(7)
# 5 runs x 4 tasks, success rates on the 50-episode grid, with ties (as real success rates have)
X = RNG.integers(0, 51, size=(5, 4)) / 50
Y = np.clip(X - RNG.integers(0, 20, size=(5, 4)) / 50, 0, 1)


def _tasks(matrix: np.ndarray) -> list[np.ndarray]:
    return [matrix[:, t] for t in range(matrix.shape[1])]


@pytest.mark.parametrize(("name", "reference"), [
    ("IQM", metrics.aggregate_iqm), ("mean", metrics.aggregate_mean), ("median", metrics.aggregate_median),
    ("optimality gap", metrics.aggregate_optimality_gap)])
def test_point_estimates_equal_rliables(name, reference):
    assert aggregate.METRICS[name](_tasks(X)) == pytest.approx(reference(X), abs=1e-12)


def test_probability_of_improvement_equals_rliables():
    assert aggregate.probability_of_improvement(_tasks(X), _tasks(Y)) == pytest.approx(
        metrics.probability_of_improvement(X, Y), abs=1e-12)
    assert aggregate.probability_of_improvement(_tasks(X), _tasks(X)) == pytest.approx(0.5)
    assert aggregate.probability_of_improvement([np.ones(3)], [np.zeros(4)]) == 1.0


def test_performance_profile_equals_rliables():
    taus = np.linspace(0, 1, 11)
    ours = aggregate.performance_profile(_tasks(X), taus)
    theirs = rly.create_performance_profile({"x": X}, taus, reps=5)[0]["x"]
    assert ours == pytest.approx(theirs, abs=1e-12)


def test_stratified_intervals_agree_with_rliables_up_to_monte_carlo_error():
    def all_four(scores):
        return np.stack([aggregate.METRICS[k](scores) for k in ("median", "IQM", "mean", "optimality gap")], axis=-1)

    low, high = aggregate.stratified_interval(all_four, _tasks(X), reps=20_000)
    theirs = rly.get_interval_estimates(
        {"x": X}, lambda m: np.array([metrics.aggregate_median(m), metrics.aggregate_iqm(m),
                                      metrics.aggregate_mean(m), metrics.aggregate_optimality_gap(m)]),
        reps=20_000, random_state=np.random.RandomState(0))[1]["x"]
    assert low == pytest.approx(theirs[0], abs=0.02) and high == pytest.approx(theirs[1], abs=0.02)
    # 5,000 resamples for the probability of improvement: rliable's bootstrap of it is about 40 times
    # slower than of the four metrics (measured here), and the two intervals still agree within 0.005.
    poi_low, poi_high = aggregate.stratified_interval(aggregate.probability_of_improvement, _tasks(X), _tasks(Y),
                                                      reps=5_000)
    theirs = rly.get_interval_estimates({"x,y": (X, Y)}, metrics.probability_of_improvement, reps=5_000,
                                        random_state=np.random.RandomState(0))[1]["x,y"]
    assert (poi_low, poi_high) == pytest.approx((theirs[0, 0], theirs[1, 0]), abs=0.02)


def test_no_interval_below_three_runs_per_task():
    two = [np.array([0.1, 0.3]), np.array([0.0, 0.2, 0.4])]
    result = aggregate.estimate(aggregate.mean, two)
    assert result["ci_low"] is None and result["runs_per_task"] == 2 and result["tasks"] == 2
    assert result["value"] == pytest.approx((0.2 + 0.2) / 2)
    three = [np.array([0.1, 0.3, 0.2]), np.array([0.0, 0.2, 0.4])]
    result = aggregate.estimate(aggregate.mean, three)
    assert result["ci_low"] <= result["value"] <= result["ci_high"]


def test_iqm_trims_a_quarter_at_each_end():
    scores = [np.array([0.0, 0.1, 0.2, 0.3]), np.array([0.4, 0.5, 0.6, 1.0])]  # 8 runs: drop 2 low, 2 high
    assert aggregate.iqm(scores) == pytest.approx(np.mean([0.2, 0.3, 0.4, 0.5]))
