"""Three of the TRQAM paper's claims on the closed-form problem (`trqam.gaussian_problem`:
a 2-D Gaussian base policy and a quadratic critic, where the KL-regularised optimum is known
exactly). A CPU-sized OGBench run is too short to show them, so the figures show them here
too, labelled as the closed-form problem. Each study runs the agents' own loss code and is
stored as a CSV under ``results/closed-form/`` with a JSON record of the code, versions and
hardware that computed it. A stored study is kept until `trqam/` or this module changes (their
source fingerprint is recorded), then computed again:

* ``kl_tracking.csv``: lambda and the realised path KL over training, TRQAM (the budget acts
  through sigma, "internal KL") against the "external KL" ablation (QAM's fixed sigma plus
  lambda x KL in the loss), both at budget 0.05 (docs/ALGORITHMS.md s3).
* ``budget_sensitivity.csv``: TRQAM at several budgets: realised KL and the mean Q of its
  samples, beside the exact tilt with that KL.
* ``critic_error.csv``: Lemma 1. The same bounded critic error (delta . a) moves QAM's
  solution at large beta far more than TRQAM's at a small budget: measured KL between the
  solutions with and without the error, beside the analytic 1/2 beta^2 delta' Sigma_beta delta.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bench.training.pipeline import RESULTS_DIR
from bench.training.runstore import csv_text, write_atomic, write_json
from trqam import gaussian_problem as gp
from trqam.dual import DualConfig
from trqam.qam import QAM, QAMConfig
from trqam.trqam import TRQAM, TRQAMConfig

CLOSED_FORM_DIR = RESULTS_DIR / "closed-form"
TRACK_BUDGET = 0.05
TRACK_STEPS = 1500
SENSITIVITY_BUDGETS = (0.02, 0.05, 0.15, 0.4)
ERROR_STEPS = 800
QAM_BETAS = (1.0, 10.0)
ERROR_BUDGET = 0.05
DELTA = (0.25, 0.25)  # |delta . a| <= 0.5 on the action box [-1, 1]^2
DUAL = DualConfig(dual_lr=0.05)  # the reference 0.01 gets there too, in ~3x the steps


def _trqam(budget: float, external: bool = False) -> TRQAMConfig:
    return TRQAMConfig(flow_steps=gp.NUM_STEPS, kl_budget=budget, chunk_len=1, external_kl=external,
                       inv_temp=10.0, dual=DUAL)


def _expected_q(mean: np.ndarray, cov: np.ndarray) -> float:
    d = mean - np.asarray(gp.C)
    return float(-0.5 * (d @ np.asarray(gp.A) @ d + np.trace(np.asarray(gp.A) @ cov)))


def kl_tracking() -> list[dict]:
    rows = []
    for mode, external in (("internal", False), ("external", True)):
        trace: list[dict[str, float]] = []
        gp.fine_tune(gp.make_agent(TRQAM, _trqam(TRACK_BUDGET, external), gp.initial_field(jax.random.key(0))),
                     TRACK_STEPS, trace=trace)
        rows += [{"mode": mode, "budget": TRACK_BUDGET, "step": r["step"], "lambda": r["trqam/lambda"],
                  "kl_ema": r["trqam/kl_ema"], "path_kl": r["actor/path_kl"]} for r in trace]
    return rows


def budget_sensitivity() -> list[dict]:
    rows = []
    for budget in SENSITIVITY_BUDGETS:
        agent, _ = gp.fine_tune(gp.make_agent(TRQAM, _trqam(budget), gp.initial_field(jax.random.key(0))),
                                TRACK_STEPS)
        x = gp.samples(agent.nets["actor_fast"])
        mean, cov = gp.tilted(gp.beta_for_kl(budget))
        rows.append({"budget": budget, "realised_kl": float(agent.dual.kl_ema), "lambda": float(agent.dual.lam),
                     "mean_q": float(gp.q_value(x).mean()), "exact_tilt_mean_q": _expected_q(mean, cov),
                     "base_mean_q": _expected_q(np.asarray(gp.MU), np.asarray(gp.S))})
    return rows


def critic_error() -> list[dict]:
    delta = jnp.asarray(DELTA)
    cases = [("QAM", f"beta={b:g}", b, QAM, QAMConfig(flow_steps=gp.NUM_STEPS, inv_temp=b, chunk_len=1))
             for b in QAM_BETAS]
    beta_trqam = gp.beta_for_kl(ERROR_BUDGET)  # the beta whose tilt has KL = budget (lambda_eff = 1/beta)
    cases.append(("TRQAM", f"budget={ERROR_BUDGET:g}", beta_trqam, TRQAM, _trqam(ERROR_BUDGET)))
    rows = []
    for method, setting, beta, cls, config in cases:
        fits = []
        for critic in (gp.QuadraticCritic(), gp.QuadraticCritic(delta)):
            agent, _ = gp.fine_tune(gp.make_agent(cls, config, gp.initial_field(jax.random.key(0)), critic),
                                    ERROR_STEPS)
            x = gp.samples(agent.nets["actor_fast"])
            fits.append((x.mean(0), np.cov(x.T)))
        _, cov = gp.tilted(beta)
        d = np.asarray(delta)
        rows.append({"method": method, "setting": setting, "beta": beta,
                     "measured_shift_kl": gp.gaussian_kl(*fits[1], *fits[0]),
                     "analytic_shift_kl": float(0.5 * beta**2 * d @ cov @ d)})
    return rows


STUDIES: dict[str, Callable[[], list[dict]]] = {
    "kl_tracking": kl_tracking, "budget_sensitivity": budget_sensitivity, "critic_error": critic_error,
}


def code_fingerprint() -> str:
    """The fingerprint of the code the studies run: the `trqam` package and this module."""
    from bench import provenance

    return provenance.source_fingerprint(Path(gp.__file__).parent, Path(__file__))


def _stale_reason(directory: Path, name: str, fingerprint: str) -> str | None:
    """Why the stored study ``name`` must be computed again, or None when it may be kept."""
    if not (directory / f"{name}.csv").exists():
        return "not stored"
    try:
        record = json.loads((directory / f"{name}.json").read_text())
    except (OSError, ValueError):
        return "stored without a readable record of the code that computed it"
    if record.get("code_fingerprint") != fingerprint:
        return (f"stored by other code (revision {str(record.get('code_revision'))[:12]}; trqam/ or this "
                "module has changed since)")
    return None


def ensure(directory: Path = CLOSED_FORM_DIR, log: Callable[[str], None] = print) -> list[Path]:
    """Compute each study that is missing or was stored by other code; return the CSV paths.
    A stored study is kept only when its record's code fingerprint equals the current one."""
    from bench import provenance

    fingerprint = code_fingerprint()
    paths = []
    for name, study in STUDIES.items():
        path = directory / f"{name}.csv"
        reason = _stale_reason(directory, name, fingerprint)
        if reason is not None:
            log(f"closed-form study {name}: {reason}; computing it")
            began = time.perf_counter()
            rows = study()
            write_atomic(path, csv_text(rows))
            write_json(directory / f"{name}.json", {
                "study": name, "problem": "trqam.gaussian_problem (docs/ALGORITHMS.md s5)",
                "wall_time_s": round(time.perf_counter() - began, 1), "versions": provenance.versions(),
                "hardware": provenance.hardware(), "code_revision": provenance.code_revision(),
                "code_fingerprint": fingerprint,
            })
            log(f"closed-form study {name}: {time.perf_counter() - began:.0f} s -> {path}")
        paths.append(path)
    return paths


def read(directory: Path, name: str) -> list[dict]:
    """A stored study's rows; empty when it has not been computed."""
    if not (directory / f"{name}.csv").exists():
        return []
    with open(directory / f"{name}.csv", newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text
