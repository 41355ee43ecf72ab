"""Tables of stored runs beside the published numbers, from real files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from bench.errors import BenchError
from bench.reporting.tables import REFERENCE_DIR, write

C2 = "cube-double-play-singletask-task{}-v0"


def _run(root, method, task, seed, success, phase="offline", kind="regenerated", suffix="", **extra):
    run = root / method / task / f"seed{seed}{suffix}"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"method": method, "task": task, "seed": seed,
                                                   "success_by_phase": {phase: success}, "data": {"kind": kind},
                                                   **extra}))


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _published_qam(task, phase="offline", method="QAM"):
    step = {"offline": "1000000", "online": "1500000"}[phase]
    with open(REFERENCE_DIR / "qam_2601.14234_curves.csv", newline="") as f:
        for row in csv.DictReader(f):
            if (row["task"], row["method"], row["phase"], row["step"]) == (task, method, phase, step):
                return 100 * np.mean([float(row[f"seed{i}"]) for i in range(int(row["n_seeds"]))])
    raise AssertionError("not in the reference file")


def test_qam_protocol_runs_are_compared_with_the_qam_paper_only(tmp_path):
    runs = tmp_path / "runs"
    for seed, success in enumerate([0.2, 0.4, 0.6]):
        _run(runs, "qam", C2.format(1), seed, success)
    _run(runs, "qam", C2.format(1), 9, 0.99, suffix="-online10000")  # another experiment: left out
    _run(runs, "bc", C2.format(1), 0, 0.04, phase="pretrain")
    write(runs, tmp_path / "out", "qam-paper")
    tasks = {(r["method"], r["phase"]): r for r in _rows(tmp_path / "out" / "tasks.csv")}
    qam = tasks[("qam", "offline")]
    assert qam["seeds"] == "3 of 12" and qam["mean"] == "40.0" and qam["std"] == "20.0"  # 12 planned
    low, high = float(qam["ci_low"]), float(qam["ci_high"])  # numeric columns, 3 seeds: an interval
    assert 20.0 <= low < 40.0 < high <= 60.0 and (qam["min"], qam["max"]) == ("20.0", "60.0")
    published = _published_qam(C2.format(1))
    assert float(qam["qam_paper"]) == pytest.approx(published, abs=0.05)
    assert float(qam["diff_qam"]) == pytest.approx(40.0 - published, abs=0.1)
    bc = tasks[("bc", "offline")]
    assert bc["mean"] == "4.0" and bc["ci_low"] == bc["ci_high"] == "" and bc["min"] == bc["max"] == "4.0"
    domain = {r["method"]: r for r in _rows(tmp_path / "out" / "domains.csv")}["qam"]
    assert domain["tasks_measured"] == "1/5" and domain["match"] == ""
    domain_published = np.mean([_published_qam(C2.format(k)) for k in range(1, 6)])
    assert float(domain["qam_paper"]) == pytest.approx(domain_published, abs=0.05)
    assert "trqam_paper" not in domain  # another protocol's numbers are not shown beside these runs
    text = (tmp_path / "out" / "tables.md").read_text()
    assert "regenerated" in text and "not a reproduction" in text and "Compared with the QAM paper" in text


def test_trqam_protocol_runs_are_compared_with_the_trqam_table_only(tmp_path):
    runs = tmp_path / "runs"
    _run(runs, "qam", C2.format(1), 0, 0.4)
    write(runs, tmp_path / "out", "quick")
    (task,) = _rows(tmp_path / "out" / "tasks.csv")
    assert "qam_paper" not in task  # the TRQAM paper publishes per domain only
    (domain,) = _rows(tmp_path / "out" / "domains.csv")
    assert domain["trqam_paper"] == "71.0 ± 2.0" and "qam_paper" not in domain and domain["match"] == ""
    assert "Compared with the TRQAM paper" in (tmp_path / "out" / "tables.md").read_text()


def _config(run_dir, method, task, kl_budget, overrides=()):
    (run_dir / "config.json").write_text(json.dumps({
        "run": {"method": method, "task": task, "overrides": list(overrides)},
        "phases": [{"name": "pretrain", "agent_config": {"flow_steps": 10}},
                   {"name": "offline", "agent_config": {"kl_budget": kl_budget}}]}))


def test_trqam_rows_say_which_kl_budget_and_whether_it_is_the_unpublished_default(tmp_path):
    runs = tmp_path / "runs"
    c3 = "cube-triple-play-singletask-task1-v0"
    for task, budget, overrides in ((C2.format(1), 1.0, ()), (c3, 0.5, ()), (C2.format(2), 0.25, ("kl_budget=0.25",))):
        _run(runs, "trqam", task, 0, 0.5)
        _config(runs / "trqam" / task / "seed0", "trqam", task, budget, overrides)
    write(runs, tmp_path / "out", "quick")
    tasks = {r["task"]: r["kl_budget"] for r in _rows(tmp_path / "out" / "tasks.csv")}
    assert tasks[C2.format(1)] == "1 (default: per-domain value unpublished)"
    assert tasks[c3] == "0.5 (authors' example)"
    assert tasks[C2.format(2)] == "0.25 (--set)"
    domains = {r["domain"]: r["kl_budget"] for r in _rows(tmp_path / "out" / "domains.csv")}
    assert domains["c2"] == "0.25 (--set); 1 (default: per-domain value unpublished)"


@pytest.mark.parametrize(("success", "verdict"), [(0.81, "yes"), (0.60, "no")])
def test_paper_profile_checks_each_full_domain_against_the_trqam_table(tmp_path, success, verdict):
    runs = tmp_path / "runs"
    for k in range(1, 6):  # TRQAM c2: 81 +- 3 published; tolerance max(5, 2 x 3) = 6 pp
        for seed in range(2):
            _run(runs, "trqam", C2.format(k), seed, success + (0.01 if seed else -0.01), kind="official")
    write(runs, tmp_path / "out", "paper")
    (domain,) = _rows(tmp_path / "out" / "domains.csv")
    assert domain["tasks_measured"] == "5/5" and domain["match"] == verdict
    assert float(domain["diff_trqam"]) == pytest.approx(100 * success - 81.0, abs=0.01)
    (overall,) = _rows(tmp_path / "out" / "overall.csv")
    assert float(overall["mean"]) == pytest.approx(100 * success, abs=0.01)


def test_no_runs_is_a_clear_error(tmp_path):
    with pytest.raises(BenchError, match="no finished runs"):
        write(tmp_path / "empty", tmp_path / "out", "quick")


def test_diverged_runs_count_as_zero_and_are_counted(tmp_path):
    runs = tmp_path / "runs"
    _run(runs, "qam", C2.format(1), 0, 0.5)
    _run(runs, "qam", C2.format(1), 1, 0.0, status="diverged",
         diverged={"phase": "offline", "step": 15, "metrics": ["critic/loss"], "last_good_checkpoint": None})
    write(runs, tmp_path / "out", "quick")
    (task,) = _rows(tmp_path / "out" / "tasks.csv")
    assert task["diverged"] == "1" and task["mean"] == "25.0" and task["seeds"] == "2"
    (domain,) = _rows(tmp_path / "out" / "domains.csv")
    assert domain["diverged"] == "1"


def test_two_seeds_give_a_range_not_an_interval_and_aggregates_follow_rliable(tmp_path):
    runs = tmp_path / "runs"
    for k, values in ((1, [0.2, 0.4]), (2, [0.0, 0.6])):
        for seed, success in enumerate(values):
            _run(runs, "qam", C2.format(k), seed, success)
            _run(runs, "trqam", C2.format(k), seed, success + 0.1)
    write(runs, tmp_path / "out", "quick")
    domain = {r["method"]: r for r in _rows(tmp_path / "out" / "domains.csv")}["qam"]
    assert domain["ci_low"] == domain["ci_high"] == "" and (domain["min"], domain["max"]) == ("0.0", "60.0")
    aggregates = {(r["method"], r["statistic"]): r for r in _rows(tmp_path / "out" / "aggregates.csv")}
    qam_iqm = aggregates[("qam", "IQM")]
    assert qam_iqm["value"] == "30.0" and qam_iqm["ci_low"] == "" and qam_iqm["seeds_per_task"] == "2"  # trim 1 of 4 each end
    assert aggregates[("qam", "optimality gap")]["value"] == "70.0"
    improvement = _rows(tmp_path / "out" / "improvement.csv")
    assert [(r["method"], r["over"], r["probability"], r["ci_low"]) for r in improvement] == [
        ("trqam", "qam", "0.750", "")]  # per task: 3 of 4 pairs above (task 1), 3 of 4 (task 2)
    text = (tmp_path / "out" / "tables.md").read_text()
    assert "Aggregates over tasks and seeds" in text and "none (fewer than 3 seeds per task)" in text


def _latex_rows(tex: str) -> list[list[str]]:
    """The cells of the tabular in a minimal document, by a LaTeX parser (strict: unbalanced
    braces or environments raise)."""
    from pylatexenc.latexwalker import (
        LatexEnvironmentNode,
        LatexMacroNode,
        LatexSpecialsNode,
        LatexWalker,
    )

    document = "\\documentclass{article}\n\\begin{document}\n" + tex + "\n\\end{document}\n"
    nodes, _, _ = LatexWalker(document, tolerant_parsing=False).get_latex_nodes()
    body = next(n for n in nodes if isinstance(n, LatexEnvironmentNode) and n.environmentname == "document")
    tabular = next(n for n in body.nodelist if isinstance(n, LatexEnvironmentNode) and n.environmentname == "tabular")
    rows, cells, cell = [], [], []
    for node in tabular.nodelist:
        if isinstance(node, LatexSpecialsNode) and node.specials_chars == "&":
            cells.append("".join(cell).strip())
            cell = []
        elif isinstance(node, LatexMacroNode) and node.macroname == "\\":
            rows.append([*cells, "".join(cell).strip()])
            cells, cell = [], []
        elif not (isinstance(node, LatexMacroNode) and node.macroname == "hline"):
            cell.append(node.latex_verbatim())
    spec = tabular.nodeargd.argnlist[-1].latex_verbatim().strip("{}")
    return rows, spec


def test_latex_main_table_parses_with_the_best_value_per_domain_in_bold(tmp_path):
    runs = tmp_path / "runs"
    for k in range(1, 3):
        _run(runs, "qam", C2.format(k), 0, 0.5)
        _run(runs, "trqam", C2.format(k), 0, 0.7)
    _run(runs, "fql", "cube-single-play-singletask-task1-v0", 0, 0.1)
    write(runs, tmp_path / "out", "quick", latex=True)
    rows, spec = _latex_rows((tmp_path / "out" / "main_table.tex").read_text())
    assert spec == "lrrr" and all(len(r) == 4 for r in rows)
    assert rows[0] == ["Domain", "TRQAM", "QAM", "FQL"]  # the suite's method order
    by_domain = {r[0]: r[1:] for r in rows[1:]}
    assert by_domain["c2"][1].startswith("50.0 (") and by_domain["c2"][0].startswith("\\textbf{70.0} (")
    assert by_domain["cube-single-play"] == ["--", "--", "\\textbf{10.0}"]  # no published value: none shown
