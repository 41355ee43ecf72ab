"""TRQAM, QAM and its variants through the harness, and the two-stage pipeline."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines.bc import FlowBC, FlowBCConfig
from bench.config.methods import METHODS
from bench.training.pipeline import RunConfig, train
from trqam.agent import Batch
from trqam.qam import QAM, QAMConfig

TASK = "cube-single-play-singletask-task1-v0"


def _column(run_dir, name):
    with open(run_dir / "metrics.csv", newline="") as f:
        return [float(r[name]) for r in csv.DictReader(f) if r["phase"] == "offline"]


@pytest.mark.slow
def test_trqam_cli_smoke_run_records_lambda_and_path_kl(bench_cache, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bench", "train", "--method", "trqam", "--task", TASK, "--profile", "smoke",
         "--out", str(tmp_path / "run"), "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["method"] == "trqam" and summary["steps"] == {"pretrain": 30, "offline": 30}
    lam, kl = _column(tmp_path / "run", "trqam/lambda"), _column(tmp_path / "run", "actor/path_kl")
    assert len(lam) == 6 and len(kl) == 6 and all(np.isfinite(kl))
    # Under budget (KL ~ 0 at the start), projected dual descent lowers lambda.
    assert lam[-1] < lam[0] <= 1.0
    for name in ("critic/loss", "critic/q_mean", "actor/adjoint_loss", "actor/adjoint_norm_last",
                 "trqam/kl_ema", "trqam/sigma_scale", "actor/flow_loss"):
        assert all(np.isfinite(_column(tmp_path / "run", name))), name


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(m for m in METHODS if METHODS[m].pipeline in ("fine-tune", "scratch")
                                           and m != "trqam"))  # bc, trqam, rlpd (online-only): their own tests
def test_every_method_trains_and_evaluates(bench_cache, tmp_path, method):
    """`python -m bench train --method M --profile smoke`: training and evaluation on a real task."""
    result = subprocess.run(
        [sys.executable, "-m", "bench", "train", "--method", method, "--task", TASK, "--profile", "smoke",
         "--out", str(tmp_path / method), "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / method / "summary.json").read_text())
    assert summary["method"] == method and 0.0 <= summary["final_success"] <= 1.0
    evaluations = (tmp_path / method / "evaluations.csv").read_text().splitlines()
    assert len(evaluations) >= 2  # header and at least the final evaluation
    if METHODS[method].pipeline == "fine-tune":
        # BC pretraining ran once (in the first run of the session) and is reused from the cache.
        assert summary["pretrain_source"] is not None
    else:  # no flow to pretrain: the offline phase alone, from scratch
        assert summary["steps"] == {"offline": 30} and summary["init"] == "scratch"
    assert np.isfinite(summary["final_metrics"]["critic/loss"])


@pytest.mark.slow
def test_bc_pretraining_is_reused_across_methods(bench_cache, tmp_path):
    first = train(RunConfig("qam", TASK, profile="smoke", seed=7, out=tmp_path / "a"), progress=False)
    second = train(RunConfig("trqam", TASK, profile="smoke", seed=7, out=tmp_path / "b"), progress=False)
    assert first["pretrain_source"] == "trained in this run"
    assert second["pretrain_source"].startswith("cache: ")


@pytest.mark.slow
def test_one_bc_checkpoint_serves_several_seeds(bench_cache, tmp_path):
    runs = [train(RunConfig("trqam", TASK, profile="smoke", seed=s, bc_seed=11, out=tmp_path / f"s{s}"), progress=False)
            for s in (1, 2)]
    assert runs[0]["pretrain_source"] == "trained in this run"
    assert runs[1]["pretrain_source"].startswith("cache: ")
    # Same BC start, different fine-tuning draws.
    assert runs[0]["final_metrics"]["critic/loss"] != runs[1]["final_metrics"]["critic/loss"]


@pytest.mark.slow
def test_training_from_scratch_has_no_pretraining(bench_cache, tmp_path):
    summary = train(RunConfig("qam", TASK, profile="smoke", init="scratch", out=tmp_path / "run"), progress=False)
    assert summary["steps"] == {"offline": 30} and summary["init"] == "scratch"
    assert summary["pretrain_source"] is None


def _batch():
    return Batch(jnp.ones((8, 3)), jnp.zeros((8, 4)), jnp.zeros(8), jnp.ones(8), jnp.ones((8, 3)), jnp.ones((8, 2)))


def test_bc_checkpoint_initialises_every_actor():
    bc = FlowBC.create(_batch(), FlowBCConfig(hidden_sizes=(16,)), jax.random.key(1))
    agent = QAM.create(_batch(), QAMConfig(hidden_sizes=(16,), num_critics=2, chunk_len=2), jax.random.key(2),
                       bc_actor=bc.actor)
    for actor in (agent.nets["actor_slow"], agent.nets["actor_fast"], agent.targets["actor_slow"]):
        assert eqx.tree_equal(actor, bc.actor)


@pytest.mark.parametrize("frozen", [False, True])
def test_frozen_base_stays_put(frozen):
    config = QAMConfig(hidden_sizes=(16,), num_critics=2, chunk_len=2, frozen_base=frozen, tau=0.5)
    agent = QAM.create(_batch(), config, jax.random.key(0))
    base = agent.targets["actor_slow"]
    for i in range(3):
        agent, _ = eqx.filter_jit(lambda a, b, k: a.update(b, k))(agent, _batch(), jax.random.key(i))
    assert bool(eqx.tree_equal(agent.targets["actor_slow"], base)) == frozen


def test_docs_protocol_tables_are_the_values_the_suite_trains_with():
    """docs/PROTOCOL.md's per-domain tables, cell by cell, against bench/config/hyperparams.py."""
    from pathlib import Path

    from bench.config import hyperparams as hp

    text = (Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md").read_text()
    text = text[text.index("## Hyperparameters"):]
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| ")]
    tables = [r for r in rows if r[0].strip() in hp.QAM_BETA]
    assert len(tables) == 20  # ten domains in each of the two per-domain tables

    def numbers(cell):
        return tuple(float(x) for x in cell.split(","))

    columns = {
        1: [lambda d: (hp.QAM_BETA[d],), lambda d: hp.QAM_E[d], lambda d: hp.QAM_F[d], lambda d: (hp.BAM_BETA[d],),
            lambda d: (hp.FQL_ALPHA[d],), lambda d: (hp.FBRAC_ALPHA[d],), lambda d: (hp.FEDIT_EDIT[d],),
            lambda d: (hp.DSRL_NOISE[d],)],
        2: [lambda d: (hp.FAWAC_BETA[d],), lambda d: (hp.IFQL_KAPPA[d],), lambda d: hp.REBRAC[d],
            lambda d: (hp.CGQL_GUIDANCE[d],), lambda d: hp.CGQL_M[d], lambda d: hp.CGQL_L[d], lambda d: hp.QSM[d],
            lambda d: (hp.DAC_ALPHA[d],)],
    }
    for index, row in enumerate(tables):
        domain, cells = row[0].strip(), row[1:]
        for cell, expected in zip(cells, columns[1 if index < 10 else 2], strict=True):
            assert numbers(cell) == tuple(float(x) for x in expected(domain)), (domain, cell)


def test_every_docs_citation_points_at_a_section_that_exists():
    """Code, READMEs and reports cite docs/ALGORITHMS.md by section number (s1..s5, "section
    N") and docs/PROTOCOL.md by section name: each cited section must be there."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    algorithms = (root / "docs" / "ALGORITHMS.md").read_text()
    protocol = (root / "docs" / "PROTOCOL.md").read_text()
    numbered = {int(m) for m in re.findall(r"^## (\d+)\.", algorithms, re.M)}
    named = set(re.findall(r"^## (.+)$", protocol, re.M))
    files = [p for folder in ("trqam", "baselines", "bench", "benchmarks", "parity", "tests")
             for p in (root / folder).rglob("*.py")] + [root / "README.md", *root.glob("*/README.md")]
    cited_sections, cited_names = set(), set()
    for path in files:
        text = path.read_text()
        assert "/".join(("spec", "ALGORITHMS")) not in text and "/".join(("spec", "PROTOCOL")) not in text, path
        cited_sections |= {int(n) for n in re.findall(r"docs/ALGORITHMS\.md,? (?:s|section )(\d)", text)}
        cited_names |= set(re.findall(r"docs/PROTOCOL\.md,? '([^']+)'", text))
    assert cited_sections and cited_sections <= numbered, cited_sections - numbered
    assert cited_names and cited_names <= named, cited_names - named
