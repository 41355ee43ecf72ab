"""The KL-success trade-off (`bench.reporting.tradeoff`): closed-form intervals, and the table, figure and
findings drawn from real run directories."""

from __future__ import annotations

import csv
import math

import pytest

from bench.reporting import figures, tradeoff
from bench.reporting.curves import save_figure
from bench.reporting.runset import load
from bench.reporting.tables import write as write_tables
from bench.training.synthetic import write_run

TASK = "cube-single-play-singletask-task1-v0"


def test_wilson_interval_closed_form():
    # Wilson's interval is the set of pi with |p - pi| <= z sqrt(pi (1 - pi) / n): both ends solve it with equality
    low, high = tradeoff.wilson(9, 100)
    for end in (low, high):
        assert abs(0.09 - end) == pytest.approx(tradeoff.Z95 * math.sqrt(end * (1 - end) / 100), rel=1e-9)
    assert low < 0.09 < high and (low, high) == pytest.approx((0.0481, 0.1623), abs=1e-4)
    z2 = tradeoff.Z95**2
    assert tradeoff.wilson(0, 50) == pytest.approx((0.0, z2 / (50 + z2)))  # p = 0: upper end z^2 / (n + z^2)
    assert tradeoff.wilson(50, 50) == pytest.approx((50 / (50 + z2), 1.0))
    assert all(math.isnan(v) for v in tradeoff.wilson(0, 0))


def test_realised_kl_is_the_mean_over_the_second_half_of_the_offline_phase():
    rows = [{"phase": "pretrain", "step": "100", "actor/path_kl": "9"}]
    rows += [{"phase": "offline", "step": str(s), "actor/path_kl": str(s / 1000)} for s in range(100, 1100, 100)]
    rows += [{"phase": "offline", "step": "1000", "actor/path_kl": "nan"}, {"phase": "online", "step": "100",
                                                                             "actor/path_kl": "7"}]
    assert tradeoff.realised_kl(rows, 1000) == pytest.approx((0.6 + 0.7 + 0.8 + 0.9 + 1.0) / 5)
    assert tradeoff.realised_kl([{"phase": "offline", "step": "100", "actor/path_kl": ""}], 1000) is None


def _stored_run(root, method, seed, success, kl=None, overrides=(), agent_config=None, q=(-7.0, -26.0)):
    """A run directory as `bench.training.pipeline` leaves one (`bench.training.synthetic`): config,
    sealed summary, evaluations, metrics over 1000 steps."""
    suffix = "".join(f"-{o}" for o in overrides)
    rows = []
    if method != "bc":
        for step in range(100, 1100, 100):
            q_mean = q[0] + (q[1] - q[0]) * (step - 100) / 900
            rows.append({"phase": "offline", "step": step, "actor/path_kl": kl, "critic/q_mean": q_mean})
    return write_run(root / method / TASK / f"seed{seed}{suffix}", method=method, task=TASK, seed=seed,
                     success=success, overrides=overrides, agent_config=agent_config, metrics=rows)


@pytest.fixture
def stored_tradeoff(tmp_path):
    root = tmp_path / "runs"
    for seed, success in ((0, 0.10), (1, 0.06)):
        _stored_run(root, "bc", seed, success)
        _stored_run(root, "qam", seed, 0.08 - 0.02 * seed, kl=0.005, agent_config={"inv_temp": 1.0})
        _stored_run(root, "qam", seed, 0.0, kl=0.9, overrides=("inv_temp=15",), agent_config={"inv_temp": 15.0})
        _stored_run(root, "trqam", seed, 0.02 * seed, kl=0.95, agent_config={"kl_budget": 1.0})
        _stored_run(root, "trqam", seed, 0.12, kl=0.004 + 0.002 * seed, overrides=("kl_budget=0.005",),
                    agent_config={"kl_budget": 0.005})
    return root


def test_settings_pool_seeds_and_place_bc_at_zero(stored_tradeoff):
    runs = load(stored_tradeoff).runs
    assert tradeoff.study_tasks(runs) == {TASK}
    rows = {(r.method, r.setting): r for r in tradeoff.settings(tradeoff.points(runs, {TASK}))}
    assert set(rows) == {("bc", "BC"), ("qam", "inv_temp=1"), ("qam", "inv_temp=15"), ("trqam", "kl_budget=1"),
                         ("trqam", "kl_budget=0.005")}
    bc = rows[("bc", "BC")]
    assert (bc.kl_mean, bc.successes, bc.episodes) == (0.0, 8, 100)
    assert (bc.ci_low, bc.ci_high) == pytest.approx(tradeoff.wilson(8, 100))
    small = rows[("trqam", "kl_budget=0.005")]
    assert (small.kl_mean, small.kl_min, small.kl_max) == pytest.approx((0.005, 0.004, 0.006))
    assert small.successes == 12 and small.success_mean == pytest.approx(0.12)


def test_findings_state_the_measured_direction_and_the_critic(stored_tradeoff):
    found = tradeoff.points(load(stored_tradeoff).runs, {TASK})
    rho, p_value, n = tradeoff.rank_correlation(found)
    assert n == 8 and rho < -0.5 and p_value < 0.05
    text = "\n".join(tradeoff.findings(found, discount=0.995))
    assert "8.0% (8 of 100 episodes" in text  # BC, pooled
    assert "success falls as the realised KL grows" in text
    assert "realised KL below 0.01: 9.5% (19 of 200 episodes" in text
    assert "realised KL of 0.1 or more: 0.5% (1 of 200 episodes" in text
    assert "TRQAM at budget 0.005: realised KL 0.005 (1.00 x the budget)" in text
    assert "from -7.0 at the first logged step to -26.0" in text and "worth -200" in text
    assert "still far from its fixed point" in text
    converged = [tradeoff.Point(**{**p.__dict__, "q_first": -190.0, "q_last": -199.0, "q_last_change": 0.0})
                 for p in found]
    assert "not explained by an unconverged critic" in "\n".join(tradeoff.findings(converged, 0.995))


def test_no_relation_is_reported_as_none(stored_tradeoff):
    found = [tradeoff.Point(**{**p.__dict__, "success": 0.1}) if p.method != "bc" else p
             for p in tradeoff.points(load(stored_tradeoff).runs, {TASK})]
    assert tradeoff.rank_correlation(found) is None  # every fine-tuned run alike: no ranking to test


def test_tables_and_figure_from_stored_runs(stored_tradeoff, tmp_path):
    write_tables(load(stored_tradeoff), tmp_path / "tables", "quick")
    with open(tmp_path / "tables" / "kl_success.csv", newline="") as f:
        rows = {(r["method"], r["setting"]): r for r in csv.DictReader(f)}
    assert rows[("qam", "inv_temp=15")]["realised_kl_mean"] == "0.9" and rows[("qam", "inv_temp=15")]["successes"] == "0"
    assert float(rows[("bc", "BC")]["ci_high"]) == pytest.approx(tradeoff.wilson(8, 100)[1], abs=1e-4)
    assert "## Success against realised KL" in (tmp_path / "tables" / "tables.md").read_text()
    import matplotlib

    matplotlib.use("Agg")
    inputs = figures.Inputs(load(stored_tradeoff).runs, stored_tradeoff, tmp_path, tmp_path)
    paths = save_figure(figures.kl_success(inputs), tmp_path / "figures" / "kl_success")
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_without_a_study_there_is_no_tradeoff_table(tmp_path):
    root = tmp_path / "runs"
    _stored_run(root, "bc", 0, 0.1)
    _stored_run(root, "trqam", 0, 0.0, kl=0.9, agent_config={"kl_budget": 1.0})
    write_tables(load(root), tmp_path / "tables", "quick")
    assert not (tmp_path / "tables" / "kl_success.csv").exists()
    assert "realised KL" not in (tmp_path / "tables" / "tables.md").read_text()


def test_an_unreached_budget_is_explained_by_the_dual_step_bound(stored_tradeoff):
    found = tradeoff.points(load(stored_tradeoff).runs, {TASK})
    slow = [tradeoff.Point(**{**p.__dict__, "kl": 0.0015, "lambda_last": 0.97, "lambda_first": 1.0, "dual_lr": 0.01,
                              "steps": 1000}) if p.setting == "kl_budget=0.005" else p for p in found]
    text = "\n".join(tradeoff.findings(slow, 0.995))
    assert "TRQAM at budget 0.005: realised KL 0.0015 (0.30 x the budget); lambda ended at 0.97 (from 1)" in text
    assert "at most 0.01 x budget per update, 0.05 over these 1,000 steps" in text
    assert "TRQAM at budget 1: realised KL 0.95 (0.95 x the budget)." in text  # reached: no explanation


# ---- issue 29 item 10: a figure tells 0 from missing, and names every line -------------------------
def _markers_at(ax, value: float, axis: str = "y") -> bool:
    """Whether ``ax`` draws a visible marker at ``value`` (inside its limits)."""
    low, high = ax.get_ylim() if axis == "y" else ax.get_xlim()
    for line in ax.lines:
        if line.get_marker() in (None, "None", "", " "):
            continue
        data = line.get_ydata() if axis == "y" else line.get_xdata()
        if any(abs(float(v) - value) < 1e-9 for v in data) and low < value < high:
            return True
    return False


def test_every_plotted_result_is_visible_at_zero_and_every_line_named(stored_tradeoff, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    for seed in range(2):  # a method that failed every episode, and its lambda traces
        _stored_run(stored_tradeoff, "fql", seed, 0.0)
    from bench.reporting.tables import REFERENCE_DIR

    runs = load(stored_tradeoff).runs
    inputs = figures.Inputs(runs, stored_tradeoff, REFERENCE_DIR, tmp_path)
    main = figures.main_table(inputs).axes[0]
    assert _markers_at(main, 0.0), "fql's 0 draws nothing in the main table"
    aggregate_axes = figures.aggregate_metrics(inputs).axes
    assert all(_markers_at(ax, 0.0, "x") for ax in aggregate_axes[:3]), "fql's IQM/mean/median of 0 are hidden"
    profile = figures.performance_profile(inputs).axes[0]
    fql = next(line for line in profile.lines if line.get_label() == "fql")
    assert fql.get_marker() not in (None, "None", "") and profile.get_ylim()[0] < 0.0
    assert figures.learning_curves(inputs).axes[0].get_ylim()[0] < 0.0
    labels = {t.get_text(): t for t in figures.kl_success(inputs).axes[0].texts}
    beta, budget = labels["beta 15"], labels["budget 1"]  # both near KL 0.9, success 0
    assert beta.xyann[1] * budget.xyann[1] < 0, "beta 15 and budget 1 are written over each other"


def test_the_lambda_panel_names_each_budget(tmp_path):
    import matplotlib

    from bench.reporting.tables import REFERENCE_DIR

    matplotlib.use("Agg")
    root = tmp_path / "runs"
    for budget, overrides in ((1.0, ()), (0.25, ("kl_budget=0.25",))):
        for seed in range(2):
            rows = [{"phase": "offline", "step": s, "trqam/lambda": 1.0 + s / 1000, "trqam/kl_ema": budget}
                    for s in (100, 200)]
            write_run(root / "trqam" / TASK / "-".join([f"seed{seed}", *overrides]), method="trqam", task=TASK,
                      seed=seed, success=0.0, overrides=overrides, agent_config={"kl_budget": budget}, metrics=rows)
    inputs = figures.Inputs(load(root).runs, root, REFERENCE_DIR, tmp_path)
    legend = figures.kl_tracking(inputs).axes[1].get_legend()
    assert legend is not None and sorted(t.get_text() for t in legend.get_texts()) == [
        "budget 0.25 (2 runs)", "budget 1 (2 runs)"]
