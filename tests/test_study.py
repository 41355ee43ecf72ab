"""The CPU study's report (`bench.reporting.study`) on run directories written as training writes them:
its table, the published values set beside it, and the sentences it derives."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from bench.config.profiles import get_profile
from bench.errors import BenchError
from bench.files import REPO
from bench.reporting.study import QAM_CURVES, load, readme_line, write
from bench.reporting.tradeoff import wilson
from bench.training.runstore import write_summary

TASK = "puzzle-3x3-play-singletask-task1-v0"
DOMAIN = "puzzle-3x3-play"


def _run(root, method, seed, successes, *, finished=True, phase="offline", steps=50_000, every=10_000, data="a" * 64,
         cpu="AMD EPYC"):
    run = root / method / TASK / f"seed{seed}"
    run.mkdir(parents=True)
    agent = {"class": "X", "hidden_sizes": [256, 256], "num_critics": 2}
    (run / "config.json").write_text(json.dumps({
        "run": {"method": method, "seed": seed, "init": "bc"},
        "profile": {"hidden_sizes": [256, 256]},
        "phases": [{"name": phase, "steps": steps, "agent_config": agent}]}))
    (run / "data.json").write_text(json.dumps({"kind": "regenerated", "manifest": {
        "kind": "regenerated", "episodes": 1000, "episode_length": 1000, "seed": 0, "created_utc": "2026-12-01T12:00",
        "versions": {"numpy": "2.4.6"},
        "files": {"puzzle-3x3-play-v0.npz": {"sha256": data}, "puzzle-3x3-play-v0-val.npz": {"sha256": "f" * 64}}}}))
    (run / "environment.json").write_text(json.dumps({"hardware": {"cpu": cpu}, "code_revision": "0123456789abcdef"}))
    with open(run / "evaluations.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phase", "step", "success_rate", "num_episodes"])
        for k, s in enumerate(successes, start=1):
            writer.writerow([phase, k * every, s / 50, 50])
    if finished:  # sealed as the pipeline seals a finished run (`bench.training.runstore.write_summary`)
        last = successes[-1] / 50 if successes else 0.0
        write_summary(run, {"status": "finished", "success_by_phase": {phase: last}, "final_success": last})


def _published(method, step):
    with open(QAM_CURVES, newline="") as f:
        for row in csv.DictReader(f):
            if row["task"] == TASK and row["method"] == method and int(row["step"]) == step:
                return np.mean([float(row[f"seed{i}"]) for i in range(int(row["n_seeds"]))])
    raise AssertionError


def test_study_table_sets_published_values_beside_the_runs(tmp_path):
    root = tmp_path / "runs"
    _run(root, "bc", 0, [1, 2, 2, 3], phase="pretrain", steps=100_000, every=25_000)
    _run(root, "bc", 1, [0, 1, 2, 1], phase="pretrain", steps=100_000, every=25_000)
    _run(root, "qam-e", 0, [5, 10, 20, 30, 40])
    _run(root, "qam-e", 1, [4, 8, 16, 24, 32])
    _run(root, "qam", 0, [1, 1, 2, 2, 3])
    _run(root, "qam", 1, [0, 1, 1], finished=False)  # still training: the line stops at 30K
    write(root, tmp_path / "out", TASK, DOMAIN)

    rows = list(csv.DictReader(open(tmp_path / "out" / "study_table.csv", newline="")))
    qam_e = [r for r in rows if r["method"] == "qam-e"]
    assert [int(r["step"]) for r in qam_e] == [10_000, 20_000, 30_000, 40_000, 50_000]
    last = qam_e[-1]
    assert float(last["success_mean"]) == pytest.approx((40 + 32) / 100)
    assert (float(last["wilson_low"]), float(last["wilson_high"])) == pytest.approx(wilson(72, 100), abs=1e-4)
    assert float(last["qam_paper_same_step"]) == pytest.approx(_published("QAM-E", 50_000), abs=1e-4)
    assert float(last["qam_paper_1m"]) == pytest.approx(_published("QAM-E", 1_000_000), abs=1e-4)
    assert float(last["trqam_paper_domain_pct"]) == 89  # the TRQAM table's puzzle-3x3 row
    assert qam_e[0]["qam_paper_same_step"] == ""  # the paper has no 10K evaluation
    qam = [r for r in rows if r["method"] == "qam"]
    assert [int(r["step"]) for r in qam] == [10_000, 20_000, 30_000] and qam[-1]["status"] == "finished, in progress"

    study = (tmp_path / "out" / "STUDY.md").read_text()
    assert "At 30K fine-tuning steps (the last evaluation every method has): QAM-E 36% (36/100" in study
    assert ("QAM-E is ahead of QAM, and their intervals do not overlap and every seed of the first is above every "
            "seed of the second.") in study
    assert "The BC checkpoints they start from succeed 4% (4/100" in study and "Clearly above BC: QAM-E" in study
    assert "Still training: QAM" in study and "regenerated data, 1000 episodes of 1000 steps" in study
    assert ("**Where it stands**: QAM-E has finished 50K fine-tuning steps; at 50K, QAM-E 72% (72/100 episodes, "
            "Wilson 95% 63-80), against 4% (4/100) for the BC checkpoints it starts from (Wilson 95% 2-10). "
            "Clearly above BC: QAM-E; clearly below: none. Still training (resumable): QAM (last evaluated at "
            "30K).") in study
    assert (tmp_path / "out" / "learning_curves.png").stat().st_size > 10_000


def _metrics(root, method, seed, rows):
    """metrics.csv as training writes it: (step, path_kl, q_mean, q_max, lambda or None) per logged step."""
    with open(root / method / TASK / f"seed{seed}" / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phase", "step", "actor/path_kl", "critic/q_mean", "critic/q_max", "trqam/lambda"])
        for step, kl, q_mean, q_max, lam in rows:
            writer.writerow(["offline", step, kl, q_mean, q_max, "" if lam is None else lam])


def test_study_states_how_far_each_method_moved_and_what_its_critic_predicts(tmp_path):
    """The state-of-training section: realised KL over the second half of the logged steps, the
    critic's drift, and a Q above 0 named as impossible under reward -1 per step."""
    root = tmp_path / "runs"
    for seed in (0, 1):
        _run(root, "trqam", seed, [0, 1], finished=False)
        _run(root, "qam", seed, [1, 1], finished=False)
        for method in ("trqam", "qam"):
            config = json.loads((root / method / TASK / f"seed{seed}" / "config.json").read_text())
            config["phases"][-1]["agent_config"] |= {"discount": 0.995, **({"kl_budget": 0.5} if method == "trqam" else {})}
            config["task"] = {"sparse_reward": True}
            (root / method / TASK / f"seed{seed}" / "config.json").write_text(json.dumps(config))
    # KL 9 in the first half is left out; the second half (steps 3000, 4000) averages 0.4 and 0.6
    _metrics(root, "trqam", 0, [(1000, 9, -10, -1, 1.0), (2000, 9, -20, -2, 0.5), (3000, 0.4, -30, -3, 0.2),
                                (4000, 0.4, -40, -4, 0.1)])
    _metrics(root, "trqam", 1, [(1000, 9, -10, -1, 1.0), (2000, 9, -20, -2, 0.5), (3000, 0.6, -30, -3, 0.2),
                                (4000, 0.6, -40, -4, 0.3)])
    for seed in (0, 1):
        _metrics(root, "qam", seed, [(1000, 2, -10, -1, None), (2000, 2, -5, 0, None), (3000, 2, 0, 1, None),
                                     (4000, 2, 5, 3.5 + seed, None)])
    write(root, tmp_path / "out", TASK, DOMAIN)
    study = (tmp_path / "out" / "STUDY.md").read_text()
    assert "| TRQAM | 0 | 4,000 | 0.4 | 0.5 | 0.1 | -10.0 -> -40.0 | -1.00 | -4.0 |" in study
    assert "per action step (mean over seeds of each seed's mean over the second half of the steps it has " \
           "logged): TRQAM 0.5 (budget 0.5); QAM 2." in study
    assert "TRQAM mean -40.0, largest -4.0, moving -1.00 per 100 steps; QAM mean 5.0, largest +4.5" in study
    assert "between -200 (never solved) and 0 (solved now): QAM predicts values above 0" in study
    assert "TRQAM predict" not in study and "so that critic overestimates some actions" in study
    assert "At 20K fine-tuning steps (the last evaluation every method has): TRQAM 2% (2/100" in study
    assert "TRQAM and QAM are level: at this scale their ordering is not resolved." in study  # never "ahead" on a tie


def test_runs_on_another_regeneration_are_named_and_not_compared_with_bc(tmp_path):
    """Regenerated bytes depend on the processor: runs on another regeneration than BC's are said to
    be, each run's data is named, and BC is the yardstick only for the runs on its own data."""
    root = tmp_path / "runs"
    for seed in (0, 1):
        _run(root, "bc", seed, [1, 1, 1, 1], phase="pretrain", steps=100_000, every=25_000)
        _run(root, "qam", seed, [1, 1, 1, 1, 1])
        _run(root, "dsrl", seed, [40, 40, 40, 40, 40], data="b" * 64, cpu="Intel Xeon")
    write(root, tmp_path / "out", TASK, DOMAIN)
    study = (tmp_path / "out" / "STUDY.md").read_text()
    assert ("**The runs trained on 2 different regenerations** of this recipe and seed: `aaaaaaaaaaaa` (made "
            "2026-12-01 under numpy 2.4.6, trained on AMD EPYC: BC seed 0, BC seed 1, QAM seed 0, QAM seed 1); "
            "`bbbbbbbbbbbb` (made 2026-12-01 under numpy 2.4.6, trained on Intel Xeon: DSRL seed 0, DSRL seed 1)") in study
    assert "| DSRL | 0 | offline | 0 of 50,000 | 50,000 | finished | 0123456789ab | Intel Xeon | bbbbbbbbbbbb |" in study
    assert "DSRL trained on another regeneration of the data than the others" in study
    assert "Clearly above BC: none; clearly below: none." in study  # DSRL's 80% is not set against BC's 2%
    assert ("for the BC checkpoints QAM starts from (Wilson 95% 1-7). QAM is not clearly above or below BC (its "
            "interval overlaps BC's). DSRL trained on another regeneration of the same recipe and seed (different "
            "bytes) than BC and QAM, so it is not compared with BC here") in study
    (root / "dsrl").rename(tmp_path / "dsrl")  # all on one regeneration: no such sentence
    write(root, tmp_path / "out", TASK, DOMAIN)
    study = (tmp_path / "out" / "STUDY.md").read_text()
    assert "regenerations" not in study and "another regeneration" not in study


def test_an_archived_unfinished_run_is_stopped_not_training(tmp_path):
    root = tmp_path / "archive"
    for seed in (0, 1):
        _run(root, "qam", seed, [1, 1, 1, 1, 1])
        _run(root, "dsrl", seed, [0, 0], finished=False)
    write(root, tmp_path / "out", TASK, DOMAIN, archived=True)
    study = (tmp_path / "out" / "STUDY.md").read_text()
    assert "Stopped before finishing (archived, never to resume): DSRL (last evaluated at 20K)." in study
    assert "Still training" not in study and "resumable" not in study and "Not started" not in study
    assert "| DSRL | 0 | offline | 0 of 50,000 | 20,000 | stopped |" in study
    write(root, tmp_path / "out", TASK, DOMAIN, planned=("qam", "dsrl", "trqam"))  # the same runs, not archived
    study = (tmp_path / "out" / "STUDY.md").read_text()
    assert "Still training (resumable): DSRL (last evaluated at 20K). Not started: TRQAM." in study


def test_seeds_that_disagree_are_not_read_as_a_clear_difference(tmp_path):
    """Pooled episodes of two seeds at 0% and 76% clear BC's interval and the runner-up's, but
    the seeds disagree: the study says so and counts neither difference as clear."""
    root = tmp_path / "runs"
    for seed, k in ((0, 2), (1, 2)):
        _run(root, "bc", seed, [k], phase="pretrain", steps=100_000, every=100_000)
    _run(root, "qam", 0, [0])
    _run(root, "qam", 1, [38])
    _run(root, "qam-e", 0, [4])
    _run(root, "qam-e", 1, [1])
    write(root, tmp_path / "out", TASK, DOMAIN)
    study = (tmp_path / "out" / "STUDY.md").read_text()
    assert "QAM 38% (38/100 episodes" in study and "Clearly above BC: none; clearly below: none." in study
    assert "QAM's pooled interval clears BC's, but its seeds do not agree (0% and 76%)" in study
    assert ("QAM is ahead of QAM-E, and their intervals do not overlap, but the seeds do not agree (QAM 0% and 76%, "
            "QAM-E 8% and 2%)") in study
    _run(root, "dsrl", 0, [20])  # both seeds well above BC: clearly above
    _run(root, "dsrl", 1, [25])
    write(root, tmp_path / "out", TASK, DOMAIN)
    assert "Clearly above BC: DSRL; clearly below: none." in (tmp_path / "out" / "STUDY.md").read_text()


def test_readme_quotes_where_the_committed_study_stands():
    """The documentation's summary of the CPU study (docs/results/cpu-study.md) is the sentence the
    committed runs give, not a copy that has fallen behind them."""
    study = get_profile("cpu-study")
    found = load(REPO / "results" / "runs" / "cpu-study", study.tasks[0])
    assert found, "results/runs/cpu-study holds no run"
    stands = readme_line(found, study.methods)
    page = REPO / "docs" / "results" / "cpu-study.md"
    assert stands in page.read_text().split("\n"), (
        f"{page}'s study line is behind the runs; `python -m bench study --readme {page}` rewrites it as:\n"
        f"{stands}")


def test_a_readme_without_its_study_line_is_refused_before_anything_is_written(tmp_path):
    root = tmp_path / "runs"
    _run(root, "qam", 0, [1, 2, 3, 4, 5])
    readme = tmp_path / "README.md"
    readme.write_text("# a README\n")
    with pytest.raises(BenchError, match="lines start '\\*\\*Where it stands"):
        write(root, tmp_path / "out", TASK, DOMAIN, readme=readme)
    assert not (tmp_path / "out").exists() and readme.read_text() == "# a README\n"
    readme.write_text("# a README\n**Where it stands**: old\n")
    write(root, tmp_path / "out", TASK, DOMAIN, readme=readme)
    assert readme.read_text().startswith("# a README\n**Where it stands** (`reports/cpu-study/STUDY.md`): QAM has "
                                         "finished 50K fine-tuning steps; at 50K, QAM 10% (5/50 episodes")


def test_a_damaged_finished_run_is_left_out_and_named(tmp_path):
    root = tmp_path / "runs"
    _run(root, "bc", 0, [1, 2, 2, 3], phase="pretrain", steps=100_000, every=25_000)
    _run(root, "qam", 0, [1, 1, 2, 2, 3])
    _run(root, "qam", 1, [1, 1, 2, 2, 3])
    evaluations = root / "qam" / TASK / "seed1" / "evaluations.csv"
    evaluations.write_text(evaluations.read_text().replace(",0.06,", ",0.96,"))  # edited after it was sealed
    damaged: list[str] = []
    assert [r.seed for r in load(root, TASK, damaged=damaged)["qam"]] == [0]
    assert len(damaged) == 1 and "seed1" in damaged[0] and "evaluations.csv" in damaged[0]
    write(root, tmp_path / "out", TASK, "puzzle-3x3-play")
    assert "## Damaged runs" in (tmp_path / "out" / "STUDY.md").read_text()
