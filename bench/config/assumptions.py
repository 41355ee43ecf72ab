"""Choices the authors' code does not settle, as named switches (`--assume NAME=VALUE`).

Each `Assumption` names what is open, the evidence on each side, our default and what every
value changes. The values a run uses are recorded in its config.json (``assumptions``), so they
are part of its identity: a run under another value gets its own directory (``-assume_NAME=VALUE``)
and never shares a table cell with the default's. docs/PROTOCOL.md 'Assumptions' is `markdown()`'s
output, and every report lists them as "assumed, not published".

A switch applies to the profiles of the TRQAM paper's protocol (``Profile.protocol == "trqam"``);
under ``qam-paper`` the QAM repository's reproduce scripts settle every one of them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.config import hyperparams as hp
from bench.errors import BenchError, suggest

TRQAM_REPO = "github.com/yonghdong/trqam (02599ce)"
QAM_REPO = "github.com/ColinQiyangLi/qam (f93efd2)"


@dataclass(frozen=True)
class Assumption:
    name: str
    question: str  # what the authors' code leaves open
    evidence: str  # what each source says
    values: Mapping[str, str]  # value -> what it does; the first is the default ("*": any number > 0)
    kl_study_only: bool = False  # only where the profile's KL-budget study leaves out some of its tasks

    @property
    def default(self) -> str:
        return next(iter(self.values))

    def check(self, value: str) -> str:
        """``value`` as recorded, or one line naming what is allowed."""
        if "*" in self.values and value not in self.values:
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not (math.isfinite(number) and number > 0):
                raise BenchError(f"--assume {self.name}={value}: the value must be a finite number > 0 "
                                 f"(default {self.default})")
            return f"{number:g}"
        if value not in self.values:
            raise BenchError(f"--assume {self.name}={value}: choose one of {', '.join(self.values)}")
        return value


ASSUMPTIONS: dict[str, Assumption] = {a.name: a for a in (
    Assumption(
        "sparse_reward",
        "Sparse rewards (r <- -1[r != 0]) on scene, puzzle-3x3 and puzzle-4x4 under the TRQAM paper's protocol.",
        f"{QAM_REPO} experiments/reproduce.py passes --sparse=True on these three domains; {TRQAM_REPO} main.py "
        "defaults to --sparse=False and its README runs cube-triple with --sparse=False; the TRQAM paper does not "
        "say.",
        {"sparse": "the QAM repository's per-domain --sparse (scene, puzzle-3x3, puzzle-4x4 sparse)",
         "dense": "the TRQAM main.py default: every domain keeps the dataset's reward"},
    ),
    Assumption(
        "trqam_kl_budget",
        "TRQAM's KL budget on the nine domains other than cube-triple.",
        f"{TRQAM_REPO} README points to the paper's Table 4 for per-domain values and publishes one, cube-triple's "
        "0.5 (used on cube-triple whatever this switch says); agents/trqam.py defaults to 1.0; Table 4 is not "
        "public.",
        {"1": "the default of agents/trqam.py (and docs/ALGORITHMS.md s3)", "*": "this budget on the nine domains"},
    ),
    Assumption(
        "trqam_table_baselines",
        "The baselines' values of the TRQAM table on the nine domains other than cube-triple.",
        f"{TRQAM_REPO} README gives the cube-triple commands of TRQAM, QAM and QAM-E only (they equal the QAM "
        "paper's values); its agents' defaults differ from the QAM paper's per-domain tables: QAM inv_temp 0.3, "
        "FQL alpha 100, CGQL inv_temp 1.0 with guidance 0.1 and noisy_coef 0.001 (and mode 'simple', which is not "
        "CGQL-L: the row keeps linex), DSRL noise_scale 1.0, IFQL kappa 0.9.",
        {"qam-paper": "the QAM paper's per-domain values (bench.config.hyperparams)",
         "trqam-repo": "the TRQAM repository's agent defaults for qam, fql, cgql-l, dsrl and ifql"},
    ),
    Assumption(
        "bc_checkpoint",
        "How many BC checkpoints the fine-tuning runs of one task start from.",
        f"{TRQAM_REPO} README pretrains one BC checkpoint (seed 10001) and loads it with --pretrained_actor_path; "
        "whether the paper's 8 seeds each pretrained their own is not said.",
        {"per-task-seed": "each seed pretrains its own (bc_seed = seed)",
         "per-task": "one per task, pretrained with the profile's first seed and shared by every seed"},
    ),
    Assumption(
        "kl_study_tasks",
        "The tasks of the KL-budget sensitivity study.",
        "The TRQAM paper sweeps the budget over {0.5, 1, ..., 4}; which tasks the figure pools is not public.",
        {"task1": "task 1 of every domain of the profile", "all": "every task of the profile"},
        kl_study_only=True,
    ),
)}

# The TRQAM repository's agent defaults (trqam_table_baselines=trqam-repo): field -> value per method.
TRQAM_REPO_DEFAULTS: dict[str, dict[str, Any]] = {
    "qam": {"inv_temp": 0.3},
    "fql": {"alpha": 100.0},
    "cgql-l": {"inv_temp": 1.0, "guidance": 0.1, "noisy_coef": 0.001},
    "dsrl": {"noise_scale": 1.0},
    "ifql": {"kappa": 0.9},
}
PUBLISHED_DOMAIN = "c3"  # cube-triple: the one domain whose values the TRQAM repository publishes


def applies(assumption: Assumption, profile) -> bool:
    if profile.protocol != "trqam":
        return False
    # the KL study's tasks: open only where the study could take other tasks than it lists (paper)
    return not assumption.kl_study_only or any(s.key == "kl_budget" and set(s.tasks) != set(profile.tasks)
                                               for s in profile.studies)


def parse(items: Sequence[str], profile) -> tuple[str, ...]:
    """``NAME=VALUE`` strings checked against ``profile``, as the run records them: sorted, values
    normalised, defaults dropped (a run under every default is the profile's own)."""
    chosen: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if name not in ASSUMPTIONS or not sep:
            raise BenchError(f"--assume '{item}' does not name an assumption{suggest(name, ASSUMPTIONS)}; "
                             f"use NAME=VALUE with NAME one of {', '.join(ASSUMPTIONS)} (docs/PROTOCOL.md)")
        if name in chosen:
            raise BenchError(f"--assume names {name} twice; give each assumption once")
        assumption = ASSUMPTIONS[name]
        if not applies(assumption, profile):
            raise BenchError(f"--assume {name}: profile '{profile.name}' does not leave it open (the QAM "
                             "repository settles it for qam-paper; the KL study's tasks only where a profile has "
                             "that study); leave it out")
        chosen[name] = assumption.check(value)
    return tuple(f"{k}={v}" for k, v in sorted(chosen.items()) if v != ASSUMPTIONS[k].default)


def resolve(profile, assume: Sequence[str]) -> dict[str, str]:
    """Every assumption ``profile`` leaves open, at the value ``assume`` gives or its default."""
    given = dict(item.split("=", 1) for item in assume)
    return {a.name: given.get(a.name, a.default) for a in ASSUMPTIONS.values() if applies(a, profile)}


def recorded(config_record: dict, profile) -> dict[str, str]:
    """The assumptions a stored config.json ran under; a record written before they were recorded
    ran under the defaults (every default is what the code did then)."""
    if "assumptions" in config_record:
        return dict(config_record["assumptions"])
    return resolve(profile, ())


# ---- what each one changes ----------------------------------------------------------------------
def sparse_reward(task, chosen: Mapping[str, str]) -> bool:
    """Whether ``task``'s rewards are made sparse under ``chosen``."""
    return task.sparse_reward and chosen.get("sparse_reward", "sparse") == "sparse"


def adjust_config(method: str, config: Any, task, chosen: Mapping[str, str]) -> Any:
    """``config`` with the values ``chosen`` sets for ``method`` on ``task``'s domain (before any
    ``--set``, which always wins). Cube-triple keeps the published values."""
    domain = hp.domain_key(task.info.abbr if task.info is not None else None)
    if domain == PUBLISHED_DOMAIN:
        return config
    if method == "trqam" and "trqam_kl_budget" in chosen:
        config = dataclasses.replace(config, kl_budget=float(chosen["trqam_kl_budget"]))
    if chosen.get("trqam_table_baselines") == "trqam-repo" and method in TRQAM_REPO_DEFAULTS:
        config = dataclasses.replace(config, **TRQAM_REPO_DEFAULTS[method])
    return config


def shared_bc_seed(profile, chosen: Mapping[str, str]) -> int | None:
    """The BC seed every seed's fine-tuning starts from under ``bc_checkpoint=per-task`` (None: its own)."""
    return profile.seeds[0] if chosen.get("bc_checkpoint") == "per-task" else None


def study_tasks(study, profile, chosen: Mapping[str, str]) -> tuple[str, ...]:
    """The tasks of ``study`` under ``chosen`` (the KL study: its own list, or every task)."""
    if study.key == "kl_budget" and chosen.get("kl_study_tasks") == "all":
        return tuple(profile.tasks)
    return study.tasks


# ---- documentation ----------------------------------------------------------------------------
def markdown(profiles: Sequence) -> str:
    """The 'Assumptions' table of docs/PROTOCOL.md: every switch, its evidence, its values, the
    profiles where it is open."""
    lines = ["| switch | open question | evidence | values (first: default) | open under |", "|---|---|---|---|---|"]
    for a in ASSUMPTIONS.values():
        values = "; ".join(f"`{'NUMBER' if v == '*' else v}`: {what}" for v, what in a.values.items())
        where = ", ".join(f"`{p.name}`" for p in profiles if applies(a, p)) or "none"
        lines.append(f"| `{a.name}` | {a.question} | {a.evidence} | {values} | {where} |")
    return "\n".join(lines) + "\n"
