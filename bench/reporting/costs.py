"""What a profile's runs are expected to cost, from the measured table of `nox -s paper-smoke`
(reports/benchmarks/paper_smoke_costs.csv): CPU-hours on the machine that measured it, and
GPU-hours projected by FLOP count (a projection until a GPU has been measured).

`project(runs)` sums, per run, the updates of each phase times the measured seconds per update of
that (profile, method, domain), the evaluation episodes times the measured seconds per episode, and
for an online phase one environment step per update (the evaluation's seconds per episode over the
domain's episode limit). BC pretraining is counted once per pretraining it would really run: runs
sharing a BC checkpoint (same task, seed, steps and config) share its cost.

Where a (profile, method) was measured at one domain only, its other domains are scaled by the
ratio between the two domains of the profile's reference method (`SCALE_FROM`: TRQAM under `paper`,
QAM under `qam-paper`, each measured on all ten domains at the profile's own sizes), and counted
as scaled. Nothing here trains or reads data.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.files import REPO

COSTS_CSV = REPO / "reports" / "benchmarks" / "paper_smoke_costs.csv"
MACHINE_JSON = REPO / "reports" / "benchmarks" / "paper_smoke_machine.json"
# Assumption (named, not measured): sustained FP32 throughput of one data-centre GPU on these small
# MLP updates (4x512 / 4x1024, batch 256). An H100's dense FP32 peak is about 67 TFLOP/s; updates
# this small keep it far from peak, so a third of it is assumed. Replace with a measurement
# (`nox -s bench` on a GPU) when one exists.
ASSUMED_GPU_TFLOP_S = 20.0
# Per profile, the method measured on every domain, whose ratios between domains scale the others.
SCALE_FROM = {"paper": "trqam", "qam-paper": "qam"}


@dataclass(frozen=True)
class Measured:
    """One row of the cost table: seconds and GFLOPs of one (profile, method, domain)."""

    profile: str
    method: str
    domain: str
    s_per_update: dict[str, float]  # phase -> seconds (pretrain, offline, online; absent: not measured)
    eval_s_per_episode: float | None
    gflop_per_update: float | None  # the run's last phase
    bc_gflop_per_update: float | None

    @classmethod
    def from_row(cls, row: dict[str, str]) -> Measured:
        def number(name: str) -> float | None:
            value = row.get(name, "")
            return float(value) if value not in ("", None) else None

        phases = {p: number(f"{p}_s_per_update") for p in ("pretrain", "offline", "online")}
        return cls(row["profile"], row["method"], row["domain"], {p: v for p, v in phases.items() if v is not None},
                   number("eval_s_per_episode"), number("gflop_per_update"), number("bc_gflop_per_update"))


def load(path: Path = COSTS_CSV) -> dict[tuple[str, str, str], Measured]:
    """The measured rows of finished runs, keyed (profile, method, domain); {} when there is no table."""
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("status") in ("finished", "diverged")]
    return {(r["profile"], r["method"], r["domain"]): Measured.from_row(r) for r in rows}


def machine(path: Path = MACHINE_JSON) -> str:
    """The machine that measured the table, in words."""
    if not path.is_file():
        return "unknown machine"
    hardware = json.loads(path.read_text()).get("hardware", {})
    return f"{hardware.get('cpu', '?')}, {hardware.get('cpu_cores', '?')} cores"


@dataclass
class Projection:
    cpu_s: float = 0.0
    gflop: float = 0.0
    measured: int = 0  # runs priced from their own (profile, method, domain) row
    scaled: int = 0  # runs priced from another domain's row, scaled by TRQAM's ratio
    unpriced: list[str] = field(default_factory=list)  # "method@domain" with no row to price from
    bc_pretrainings: int = 0

    @property
    def cpu_hours(self) -> float:
        return self.cpu_s / 3600

    @property
    def gpu_hours(self) -> float:
        return self.gflop / (ASSUMED_GPU_TFLOP_S * 1e3) / 3600

    def describe(self, table: Path = COSTS_CSV) -> str:
        if not self.measured + self.scaled:
            return (f"no cost projection: no row of {_shown(table)} prices these runs "
                    "(`nox -s paper-smoke` measures paper and qam-paper)")
        priced = self.measured + self.scaled
        text = (f"expected {self.cpu_hours:,.0f} CPU-hours of program time for {priced} runs on the machine that "
                f"measured {_shown(table)} ({machine(table.parent / MACHINE_JSON.name)}; {self.measured} priced at "
                f"their own domain, {self.scaled} scaled by the per-domain ratio of the profile's reference method; "
                f"{self.bc_pretrainings} BC pretrainings counted once each); GPU-hours by FLOP count: "
                f"{self.gpu_hours:,.0f} (a projection at an assumed {ASSUMED_GPU_TFLOP_S:g} TFLOP/s sustained: "
                "no GPU has been measured)")
        if self.unpriced:
            text += f"; not priced (no row for the method): {', '.join(sorted(set(self.unpriced)))}"
        return text


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def _lookup(table: dict, profile: str, method: str, domain: str) -> tuple[Measured, dict[str, float]] | None:
    """The row pricing (profile, method, domain) and per-quantity factors: 1 at its own domain, else
    the profile's reference method's ratio between this domain and the measured one (per update; per episode)."""
    own = table.get((profile, method, domain))
    if own is None and method == "bc":  # BC alone: priced by the BC pretraining of a run at this domain
        own = next((row for (p, _, d), row in sorted(table.items())
                    if p == profile and d == domain and "pretrain" in row.s_per_update), None)
    if own is not None:
        return own, {"update": 1.0, "episode": 1.0, "own": 1.0}
    others = [m for (p, name, _), m in table.items() if p == profile and name == method]
    reference = SCALE_FROM.get(profile)
    for other in others:
        here, there = table.get((profile, reference, domain)), table.get((profile, reference, other.domain))
        if here is None or there is None:
            continue
        update = here.s_per_update.get("offline"), there.s_per_update.get("offline")
        episode = here.eval_s_per_episode, there.eval_s_per_episode
        gflop = here.gflop_per_update, there.gflop_per_update
        if None in update + episode + gflop or 0 in update[1:] + episode[1:] + gflop[1:]:
            continue
        return other, {"update": update[0] / update[1], "episode": episode[0] / episode[1],
                       "gflop": gflop[0] / gflop[1], "own": 0.0}
    return None


def _bc_s_per_update(table: dict, profile: str, domain: str) -> float | None:
    """Seconds per BC pretraining update at (profile, domain), from whichever run there pretrained
    (the BC config is the method's no matter which method fine-tunes after it)."""
    for (p, _, d), row in sorted(table.items()):
        if p == profile and d == domain and "pretrain" in row.s_per_update:
            return row.s_per_update["pretrain"]
    return None


def project(runs: Sequence, table: dict[tuple[str, str, str], Measured] | None = None) -> Projection:
    """The expected cost of training ``runs`` (RunConfigs) from the start, priced from ``table``
    (default: the committed paper-smoke table)."""
    from bench.training.pipeline import Run

    table = load() if table is None else table
    projection = Projection()
    pretrained: set[str] = set()
    planned: dict = {}  # the phases do not depend on the seed: one plan per run setting
    for config in runs:
        setting = dataclasses.replace(config, seed=0, out=None)
        run = planned.get(setting) or planned.setdefault(setting, Run(setting, progress=False))
        domain = run.task.info.abbr
        found = _lookup(table, config.profile, config.method, domain)
        if found is None:
            projection.unpriced.append(f"{config.method}@{domain}")
            continue
        row, factor = found
        if factor["own"]:
            projection.measured += 1
        else:
            projection.scaled += 1
        gflop_factor = factor.get("gflop", 1.0)
        env_step_s = (row.eval_s_per_episode or 0.0) * factor["episode"] / run.task.info.episode_limit
        for phase in run.phases:
            if phase.name == "pretrain" and not phase.evaluate:  # BC before fine-tuning: once per checkpoint
                key = json.dumps([run.task.name, config.phase_seed("pretrain"), phase.steps, repr(phase.config)])
                if key in pretrained:
                    continue
                pretrained.add(key)
                projection.bc_pretrainings += 1
            bc_phase = phase.name == "pretrain"  # BC pretraining, before fine-tuning or as the `bc` run itself
            bc_seconds = _bc_s_per_update(table, config.profile, domain) if bc_phase else None
            if bc_seconds is not None:  # BC's own measurement at this domain (any method's run that pretrained)
                projection.cpu_s += phase.steps * bc_seconds
            else:  # the phase's own timing; an online phase measured offline only takes the offline one
                seconds = row.s_per_update.get(phase.name, row.s_per_update.get("offline"))
                if seconds is None:
                    seconds = next(iter(row.s_per_update.values()), 0.0)
                projection.cpu_s += phase.steps * seconds * factor["update"]
            if phase.name == "online":
                projection.cpu_s += phase.steps * env_step_s
            gflop = (row.bc_gflop_per_update if bc_phase else row.gflop_per_update) or 0.0
            projection.gflop += phase.steps * gflop * gflop_factor
            if phase.evaluate and phase.eval_every:
                evaluations = math.ceil(phase.steps / phase.eval_every)
                projection.cpu_s += (evaluations * run.profile.eval_episodes * (row.eval_s_per_episode or 0.0)
                                     * factor["episode"])
    return projection


def profiles_priced(table: dict | None = None) -> set[str]:
    """The profiles the table has rows for (the dry run prints a projection for these)."""
    table = load() if table is None else table
    return {profile for profile, _, _ in table}


def priced(runs: Iterable, table: dict | None = None) -> str | None:
    """The dry run's cost line for ``runs``, or None when the table prices none of their profiles."""
    table = load() if table is None else table
    runs = list(runs)
    if not runs or not {r.profile for r in runs} & profiles_priced(table):
        return None
    return project(runs, table).describe()
