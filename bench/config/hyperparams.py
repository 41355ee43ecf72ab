"""Per-domain hyperparameters of every method, with their sources.

Source of every value below unless noted: the QAM paper's per-domain table (arXiv
2601.14234, as transcribed in docs/PROTOCOL.md 'Hyperparameters'; beta = inv_temp). The TRQAM
paper's per-domain KL budgets (its Table 4) are not public: every domain uses the paper's
default budget 1.0 until they are (docs/ALGORITHMS.md s3), and `--set kl_budget=...` overrides it.

Domains are keyed by the TRQAM table's abbreviations. Tasks outside the ten benchmark
domains (e.g. cube-single) use the values of `FALLBACK_DOMAIN`, recorded in the run config.
"""

from __future__ import annotations

FALLBACK_DOMAIN = "c2"

# Common values (docs/PROTOCOL.md 'Hyperparameters').
COMMON = {
    "num_critics": 10,
    "rho": 0.5,  # 0 on humanoidmaze (both papers)
    "tau": 0.005,
    "grad_clip": 1.0,  # QAM, TRQAM, BAM, QSM/DAC (docs/ALGORITHMS.md s1)
}
RHO_OVERRIDES = {"hm": 0.0, "hl": 0.0}

# TRQAM: KL budget per action step. cube-triple: 0.5, the authors' published example
# (github.com/yonghdong/trqam README). Every other domain: 1.0, the paper's default
# (docs/ALGORITHMS.md s3), because the paper's per-domain table is unpublished (TRQAM_KL_BUDGET_IS_DEFAULT).
TRQAM_KL_BUDGET = {d: 1.0 for d in ("p33", "scene", "c2", "al", "hm", "c4", "p44", "ag", "hl")} | {"c3": 0.5}
TRQAM_KL_BUDGET_IS_DEFAULT = {d: d != "c3" for d in TRQAM_KL_BUDGET}

QAM_BETA = {"p33": 3, "scene": 1, "c2": 1, "al": 10, "hm": 3, "c3": 3, "c4": 1, "p44": 30, "ag": 3, "hl": 3}
QAM_E = {  # (beta, edit_scale)
    "p33": (1, 0.1), "scene": (1, 0.0), "c2": (1, 0.0), "al": (1, 0.1), "hm": (3, 0.1),
    "c3": (3, 0.1), "c4": (3, 0.1), "p44": (0.1, 0.9), "ag": (10, 0.1), "hl": (3, 0.1),
}
QAM_F = {  # (beta, fql_alpha)
    "p33": (3, 0), "scene": (1, 300), "c2": (1, 0), "al": (3, 30), "hm": (1, 30),
    "c3": (10, 300), "c4": (0.3, 30), "p44": (3, 3), "ag": (3, 30), "hl": (0.3, 30),
}
BAM_BETA = {"p33": 10, "scene": 10, "c2": 10, "al": 30, "hm": 10, "c3": 30, "c4": 10, "p44": 30, "ag": 30, "hl": 30}
FQL_ALPHA = {"p33": 300, "scene": 300, "c2": 300, "al": 3, "hm": 30, "c3": 30, "c4": 100, "p44": 1, "ag": 3, "hl": 30}
FBRAC_ALPHA = {"p33": 0.03, "scene": 100, "c2": 0.1, "al": 0.1, "hm": 30, "c3": 0.03, "c4": 1.0, "p44": 0.3,
               "ag": 0.1, "hl": 10}
FEDIT_EDIT = {"p33": 0.2, "scene": 0.2, "c2": 0.2, "al": 0.2, "hm": 0.5, "c3": 0.3, "c4": 0.4, "p44": 0.8,
              "ag": 0.3, "hl": 0.1}
DSRL_NOISE = {"p33": 1.0, "scene": 0.4, "c2": 1.0, "al": 0.8, "hm": 0.6, "c3": 1.4, "c4": 1.4, "p44": 1.0,
              "ag": 1.2, "hl": 0.8}
FAWAC_BETA = {"p33": 0.8, "scene": 6.4, "c2": 0.8, "al": 6.4, "hm": 6.4, "c3": 0.8, "c4": 0.8, "p44": 0.8,
              "ag": 0.8, "hl": 0.8}
IFQL_KAPPA = {"p33": 0.95, "scene": 0.9, "c2": 0.9, "al": 0.9, "hm": 0.7, "c3": 0.95, "c4": 0.95, "p44": 0.9,
              "ag": 0.8, "hl": 0.8}
REBRAC = {  # (alpha, actor noise: acting and target-policy smoothing)
    "p33": (0.1, 0), "scene": (0.03, 0), "c2": (0.01, 0), "al": (0.01, 0), "hm": (0.01, 0),
    "c3": (0.01, 0.2), "c4": (0.01, 0.2), "p44": (0.01, 0.2), "ag": (0.01, 0), "hl": (0.01, 0.1),
}
CGQL_GUIDANCE = {"p33": 0.1, "scene": 0.1, "c2": 0.01, "al": 0.1, "hm": 0.01, "c3": 0.1, "c4": 0.1, "p44": 0.1,
                 "ag": 0.1, "hl": 0.01}
CGQL_M = {  # (guidance, noisy)
    "p33": (0.1, 0.1), "scene": (0.1, 0.1), "c2": (0.01, 0.001), "al": (0.1, 0.1), "hm": (0.1, 0.1),
    "c3": (0.1, 0.001), "c4": (0.01, 0.1), "p44": (1.0, 0.001), "ag": (0.1, 0.001), "hl": (0.1, 0.1),
}
CGQL_L = {  # (guidance, noisy)
    "p33": (0.1, 0.001), "scene": (0.1, 0.1), "c2": (0.01, 0.001), "al": (0.1, 0.001), "hm": (0.1, 0.1),
    "c3": (0.1, 0.001), "c4": (0.01, 0.1), "p44": (1.0, 0.001), "ag": (0.1, 0.001), "hl": (0.1, 0.1),
}
CGQL_INV_TEMP = 10
QSM = {  # (beta, alpha)
    "p33": (10, 30), "scene": (3, 30), "c2": (1, 10), "al": (10, 10), "hm": (10, 30),
    "c3": (10, 10), "c4": (1, 10), "p44": (10, 1), "ag": (10, 10), "hl": (10, 30),
}
DAC_ALPHA = {"p33": 1, "scene": 1, "c2": 3, "al": 0.3, "hm": 1, "c3": 0.3, "c4": 1, "p44": 1, "ag": 0.3, "hl": 0.3}


def kl_budget_source(abbr: str | None) -> str:
    """Where TRQAM's budget for a domain comes from, as tables print it."""
    key = domain_key(abbr)
    return "default: per-domain value unpublished" if TRQAM_KL_BUDGET_IS_DEFAULT[key] else "authors' example"


def domain_key(abbr: str | None) -> str:
    """The table key for a task's domain: its abbreviation, or the fallback domain."""
    return abbr if abbr in QAM_BETA else FALLBACK_DOMAIN

# RLPD: the weight of its behaviour-cloning term (github.com/ColinQiyangLi/qam,
# experiments/reproduce_rlpd.py, per domain; 0 where the authors set 0).
RLPD_BC_ALPHA = {"p33": 0.01, "scene": 0.3, "c2": 0.1, "al": 0.0, "hm": 0.03,
                 "c3": 0.0, "c4": 0.0, "p44": 0.0, "ag": 0.01, "hl": 0.0}
