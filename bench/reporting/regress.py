"""The CI regression gate: a pinned small matrix, run fresh, against committed bands.

    python -m bench regress            (nox -s regress; .ci/run runs it after the tests)

``results/regress/bands.csv`` pins the matrix: one row per run (method, task, profile, seed)
with the lowest final success rate that still counts as healthy (``min_success``), the value
it was set from (``measured``) and where that value came from. Every run is trained from
scratch in a work directory (default ``.regress/``, emptied first), with its own BC checkpoint
cache, so nothing measured by older code is reused; only the regenerated datasets are shared. A BC
checkpoint that several pinned runs start from is pretrained first by a ``bc`` run of its own
(`bench.training.sweep.bc_producers`: in the table, not gated, but it must finish), so that the pinned
runs then fine-tune side by side.
The gate fails (exit code 1) when a run ends below its band or does not finish, and prints a
table of every row.

A band is set from a measured value m of 50 evaluation episodes as
``m - 3 * sqrt(m (1 - m) / 50) - 0.05`` (three binomial standard deviations and 5 points for
numerical differences between machines), so it catches a broken method, not noise.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError
from bench.files import REPO
from bench.training.pipeline import RunConfig
from bench.training.runstore import DamagedRecord, read_run, write_atomic
from bench.training.sweep import SweepSettings, bc_producers, sweep

BANDS = REPO / "results" / "regress" / "bands.csv"  # configuration: read from the repository wherever the store lives
WORK_DIR = Path(".regress")
COLUMNS = ("method", "task", "profile", "seed", "overrides", "min_success", "measured", "source")


def band_from(measured: float, episodes: int = 50) -> float:
    return max(0.0, measured - 3 * math.sqrt(measured * (1 - measured) / episodes) - 0.05)


@dataclass(frozen=True)
class Band:
    method: str
    task: str
    profile: str
    seed: int
    min_success: float
    measured: str = ""
    source: str = ""
    overrides: tuple[str, ...] = ()  # --set KEY=VALUE of the pinned run (column: space-separated)

    def run(self, work_dir: Path) -> RunConfig:
        suffix = "".join(f"-{o}" for o in self.overrides)
        return RunConfig(method=self.method, task=self.task, profile=self.profile, seed=self.seed,
                         overrides=self.overrides, out=work_dir / "runs" / self.method / self.task / f"seed{self.seed}{suffix}")


def read_bands(path: Path) -> list[Band]:
    if not path.exists():
        raise BenchError(f"no regression bands at {path}; create it with columns {', '.join(COLUMNS)}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("method", "task", "profile", "seed", "min_success") if c not in (reader.fieldnames or [])]
        if missing:
            raise BenchError(f"{path} lacks the column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
        bands = [Band(r["method"], r["task"], r["profile"], int(r["seed"]), float(r["min_success"]),
                      r.get("measured", ""), r.get("source", ""), tuple((r.get("overrides") or "").split()))
                 for r in reader]
    if not bands:
        raise BenchError(f"{path} has no rows: nothing to check")
    return bands


def check(bands_path: Path = BANDS, work_dir: Path = WORK_DIR, workers: int | None = None,
          keep: bool = False) -> tuple[bool, str]:
    """Train the pinned runs fresh and compare them with their bands: (passed, Markdown table)."""
    bands = read_bands(bands_path)
    if work_dir.exists() and not keep:
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    runs = [b.run(work_dir.resolve()) for b in bands]
    # The BC checkpoint the pinned runs share is pretrained by its own program first (not gated),
    # so that they fine-tune side by side instead of one after the other.
    producers = bc_producers(runs, work_dir.resolve() / "runs")
    previous = os.environ.get("TRQAM_BENCH_BC_CACHE")
    os.environ["TRQAM_BENCH_BC_CACHE"] = str((work_dir / "bc-checkpoints").resolve())  # inherited by the runs
    try:
        outcomes = {o.run_dir: o for o in sweep([*producers, *runs], SweepSettings(workers=workers))}
    finally:
        if previous is None:
            os.environ.pop("TRQAM_BENCH_BC_CACHE")
        else:
            os.environ["TRQAM_BENCH_BC_CACHE"] = previous
    lines = ["| method | overrides | task | profile | seed | measured now | band (min) | set from | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    passed = True
    for band, run in zip(bands, runs, strict=True):
        success, problem = _final_success(run, outcomes)
        ok = success is not None and success >= band.min_success
        passed &= ok
        now, verdict = ("-", problem) if success is None else (f"{success:.2f}", "ok" if ok else "REGRESSED")
        lines.append(f"| {band.method} | {' '.join(band.overrides)} | {band.task} | {band.profile} | {band.seed} | {now} "
                     f"| {band.min_success:.2f} | {band.measured} | {verdict} |")
    for producer in producers:  # reported, not gated by a band; it must finish for the others to run
        success, problem = _final_success(producer, outcomes)
        passed &= success is not None
        now, verdict = ("-", problem) if success is None else (f"{success:.2f}", "not gated (trains the shared BC checkpoint)")
        lines.append(f"| bc |  | {producer.task} | {producer.profile} | {producer.seed} | {now} | - | - | {verdict} |")
    table = "\n".join(lines) + "\n"
    write_atomic(work_dir / "regress.md", table)
    return passed, table


def _final_success(run: RunConfig, outcomes: dict) -> tuple[float | None, str]:
    """The run's final success from its own evaluation records, through its seal; else None and why."""
    if not (run.run_dir() / "summary.json").exists():
        return None, f"FAILED (log: {outcomes[str(run.run_dir())].log})"
    try:
        return list(read_run(run.run_dir())["success_by_phase"].values())[-1], ""
    except DamagedRecord as exc:
        return None, f"DAMAGED ({exc.path.name} {exc.reason})"
