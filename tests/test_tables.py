"""Tables of stored runs beside the published numbers, from real files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from bench.errors import BenchError
from bench.reporting.runset import load
from bench.reporting.tables import REFERENCE_DIR
from bench.reporting.tables import write as write_tables
from bench.tasks import resolve_task
from bench.training.synthetic import synthetic_data, write_run

C2 = "cube-double-play-singletask-task{}-v0"


def _run(root, method, task, seed, success, phase=None, kind="regenerated", suffix="", diverged=None,
         kl_budget=None, overrides=(), digest="0" * 64, episodes=100, init=None):
    """A finished, sealed run as the pipeline writes one (`bench.training.synthetic`)."""
    data = synthetic_data(resolve_task(task).dataset, digest, kind)
    return write_run(root / method / task / f"seed{seed}{suffix}", method=method, task=task, seed=seed,
                     success=success, phase=phase, data=data, diverged=diverged, overrides=overrides, episodes=episodes,
                     init=init,
                     agent_config=None if kl_budget is None else {"kl_budget": kl_budget})


def write(runs, out, profile, **kwargs):
    """The tables of every run under ``runs``, read through the one loader."""
    return write_tables(load(runs), out, profile, **kwargs)


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


def test_trqam_rows_say_which_kl_budget_and_whether_it_is_the_unpublished_default(tmp_path):
    runs = tmp_path / "runs"
    c3 = "cube-triple-play-singletask-task1-v0"
    for task, budget, overrides in ((C2.format(1), 1.0, ()), (c3, 0.5, ()), (C2.format(2), 0.25, ("kl_budget=0.25",))):
        _run(runs, "trqam", task, 0, 0.5, kl_budget=budget, overrides=overrides)
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
    _run(runs, "qam", C2.format(1), 1, 0.0,
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


# ---- issue 29: a table shows exactly the runs it names, intact --------------------------------
def test_runs_on_other_data_never_share_a_row_and_are_labelled_by_data(tmp_path):
    runs = tmp_path / "runs"
    for seed in range(2):
        _run(runs, "bc", C2.format(1), seed, 0.0)
    _run(runs, "bc", C2.format(1), 8, 0.9, digest="f" * 64)  # trained on other files of the same dataset
    write(runs, tmp_path / "out", "quick")
    rows = {r["data"]: r for r in _rows(tmp_path / "out" / "tasks.csv")}
    assert len(rows) == 2, rows  # two rows, one per data identity
    main, other = (rows[k] for k in sorted(rows, key=lambda k: rows[k]["seeds"], reverse=True))
    assert (main["seeds"], main["mean"]) == ("2", "0.0") and (other["seeds"], other["mean"]) == ("1 of 2", "90.0")
    assert all(r["data"].startswith("regenerated ") for r in rows.values())
    assert "tabled separately" in (tmp_path / "out" / "tables.md").read_text()


def test_a_scope_tables_exactly_the_runs_it_names(tmp_path):
    from bench.reporting.runset import Scope

    runs = tmp_path / "runs"
    planned = [_run(runs, m, C2.format(1), s, 0.5) for m in ("bc", "fql") for s in (0, 1)]
    _run(runs, "bc", C2.format(1), 2, 1.0)  # an earlier single `train`: in the store, not in the matrix
    _run(runs, "qam", C2.format(1), 0, 1.0)  # a method nobody asked for
    write_tables(load(runs, Scope.of(planned, "methods bc, fql; seeds 0, 1")), tmp_path / "out", "quick")
    rows = {r["method"]: r for r in _rows(tmp_path / "out" / "tasks.csv")}
    assert set(rows) == {"bc", "fql"} and rows["bc"]["seeds"] == "2" and rows["bc"]["mean"] == "50.0"
    assert "methods bc, fql; seeds 0, 1" in (tmp_path / "out" / "tables.md").read_text()


@pytest.mark.parametrize("damage", ["summary-success", "summary-out-of-domain", "evaluations", "truncated-summary",
                                    "no-seal"])
def test_an_edited_damaged_or_impossible_record_never_reaches_a_table(tmp_path, damage):
    runs = tmp_path / "runs"
    for seed in range(2):
        _run(runs, "bc", C2.format(1), seed, 0.0)
    victim = runs / "bc" / C2.format(1) / "seed1"
    summary = json.loads((victim / "summary.json").read_text())
    if damage == "summary-success":  # the evaluations still say 0
        summary["success_by_phase"]["pretrain"] = summary["final_success"] = 0.9
        (victim / "summary.json").write_text(json.dumps(summary))
    elif damage == "summary-out-of-domain":
        summary["success_by_phase"]["pretrain"] = summary["final_success"] = 1.7
        (victim / "summary.json").write_text(json.dumps(summary))
    elif damage == "evaluations":
        (victim / "evaluations.csv").write_text("phase,step,num_episodes,success_rate\npretrain,1000,50,0.9\n")
    elif damage == "truncated-summary":
        (victim / "summary.json").write_text((victim / "summary.json").read_text()[:100])
    else:
        summary.pop("sha256")
        (victim / "summary.json").write_text(json.dumps(summary))
    run_set = load(runs)
    assert [d.directory for d in run_set.damaged] == [victim]
    write_tables(run_set, tmp_path / "out", "quick")
    (row,) = _rows(tmp_path / "out" / "tasks.csv")
    assert (row["mean"], row["seeds"]) == ("0.0", "1 of 2")  # the damaged run is in no mean
    text = (tmp_path / "out" / "tables.md").read_text()
    assert "Damaged runs" in text and "seed1" in text


def test_a_success_that_is_no_count_of_episodes_is_impossible(tmp_path):
    from bench.training.runstore import DamagedRecord, read_run

    run = write_run(tmp_path / "run", method="qam", task=C2.format(1), seed=0, success=0.013, episodes=50)
    with pytest.raises(DamagedRecord, match="not a count out of 50 episodes"):
        read_run(run)


def test_report_reads_each_run_once_for_tables_figures_and_report(tmp_path, monkeypatch):
    """`python -m bench report`: one verified read per run feeds the tables, the figures and REPORT.md."""
    import pathlib

    from bench import cli
    from bench.config.profiles import get_profile
    from bench.training import pipeline
    from bench.training.sweep import plan

    results = tmp_path / "results"
    monkeypatch.setattr(pipeline, "RESULTS_DIR", results)
    planned = plan(get_profile("smoke"), seeds=[0, 1])
    for run in planned:
        _run(results / "runs" / "smoke", run.method, run.task, run.seed, 0.5 if run.method != "bc" else 0.0,
             kl_budget=1.0 if run.method == "trqam" else None)
    _run(results / "runs" / "smoke", "bc", planned[0].task, 5, 1.0)  # outside the matrix: never read
    opened: list[str] = []
    for name in ("read_text", "read_bytes"):
        original = getattr(pathlib.Path, name)

        def counting(self, *args, _original=original, **kwargs):
            if self.name in ("summary.json", "evaluations.csv", "metrics.csv", "config.json", "data.json"):
                opened.append(str(self))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, name, counting)
    cli.main(["report", "--profile", "smoke", "--seeds", "0", "1", "--reports", str(tmp_path / "reports")])
    files_per_run = 5  # summary.json, then the four sealed records it names, each read once
    assert len(opened) == files_per_run * len(planned), sorted(opened)
    assert not [p for p in opened if "/seed5/" in p]
    report = (tmp_path / "reports" / "REPORT.md").read_text()
    assert f"{len(planned)} intact" in report and "seeds 0, 1" in report


def test_a_run_initialised_off_its_protocol_is_never_set_beside_the_papers_numbers(tmp_path):
    """Issue 30, item 2: the QAM paper trains from scratch; a BC-initialised run of its profile is
    tabled apart, without the published column."""
    from bench.training.pipeline import RunConfig

    assert RunConfig("qam", C2.format(1), profile="qam-paper").init == "scratch"  # the profile's, by default
    assert RunConfig("qam", C2.format(1), profile="paper").init == "bc"
    runs = tmp_path / "runs"
    _run(runs, "qam", C2.format(1), 0, 0.4, init="scratch")
    _run(runs, "qam", C2.format(1), 1, 0.9, init="bc")
    write(runs, tmp_path / "out", "qam-paper")
    rows = {r["data"]: r for r in _rows(tmp_path / "out" / "tasks.csv")}
    (protocol,) = [r for d, r in rows.items() if "init" not in d]
    (other,) = [r for d, r in rows.items() if "init bc, not the QAM protocol's scratch" in d]
    assert protocol["mean"] == "40.0" and protocol["qam_paper"] != ""
    assert other["mean"] == "90.0" and other["qam_paper"] == "" and other["diff_qam"] == ""


def test_the_published_domain_spread_is_the_authors_own_seed_grouping(tmp_path):
    """Issue 30, item 3: the QAM authors' domain series group their runs into seeds otherwise than
    seed i of every task. On DSRL puzzle-3x3 the two spreads give tolerances of 19.7 and 35.5 pp;
    a run 24.6 pp below the published mean is a mismatch under the authors' own grouping."""
    from bench.reporting.tables import load_qam_domain_reference, load_qam_reference

    series = load_qam_domain_reference()[("DSRL", "puzzle-3x3-play", "offline")]
    tasks = [load_qam_reference()[("DSRL", f"puzzle-3x3-play-singletask-task{k}-v0", "offline")] for k in range(1, 6)]
    paired = np.mean(np.stack(tasks), axis=0)
    assert np.mean(series) == pytest.approx(np.mean(paired))  # the same runs...
    assert 100 * np.std(series, ddof=1) == pytest.approx(9.87, abs=0.01)  # ...grouped into other seeds
    assert 100 * np.std(paired, ddof=1) == pytest.approx(17.73, abs=0.01)
    runs = tmp_path / "runs"
    for k in range(1, 6):
        for seed in range(3):
            _run(runs, "dsrl", f"puzzle-3x3-play-singletask-task{k}-v0", seed, 0.62, kind="official", init="scratch")
    write(runs, tmp_path / "out", "qam-paper")
    (domain,) = _rows(tmp_path / "out" / "domains.csv")
    assert float(domain["diff_qam"]) == pytest.approx(62.0 - 86.63, abs=0.05) and domain["match"] == "no"


def test_the_report_says_where_the_time_went_counting_each_program_and_dataset_once():
    """Issue 32: data regeneration, BC, compilation, updates, evaluation and reporting, from the
    runs' own records; two seeds of one program share its time; a dataset is counted once."""
    from bench.reporting.report import _where_the_time_went

    manifest = {"kind": "regenerated", "dataset": "cube-single-play-v0", "created_utc": "t0", "generation_seconds": 180.0}
    split = {"setup": 6.0, "first_call": 24.0, "updates": 120.0, "evaluation": 60.0, "logging": 3.0,
             "checkpoints": 3.0, "total": 216.0}

    def run(method, seeds, split):
        return {"summary": {"method": method, "seeds_in_program": seeds, "time_split_s": split, "startup_s": 15.0},
                "data": {"kind": "regenerated", "manifest": manifest}}

    runs = [run("bc", [0], {"total": 300.0}), run("qam", [0, 1], split), run("qam", [0, 1], split)]
    line = _where_the_time_went(runs, {"outputs": 90.0})
    assert line.startswith("- Where the time went")
    for part in ("data regeneration 3.0 min (1 dataset(s))", "BC pretraining 5.0 min", "compilation (first calls) 0.4 min",
                 "updates 2.0 min", "evaluation 1.0 min", "setup, logging, checkpoints 0.2 min",
                 "tables, figures and report 1.5 min",
                 "programs' start-up (imports, data loading, evaluation environments) 0.5 min"):  # 15 + 15 s
        assert part in line, (part, line)
    older = {**manifest, "created_utc": "t1"}
    older.pop("generation_seconds")
    runs.append({"summary": {"method": "bc", "seeds_in_program": [1], "time_split_s": {"total": 0.0}},
                 "data": {"kind": "regenerated", "manifest": older}})
    assert "1 made before generation times were recorded" in _where_the_time_went(runs, {"outputs": 0.0})
