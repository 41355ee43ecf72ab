"""The one set of stored runs that tables, figures and the report read: found, verified and
scoped once per invocation.

    runs = runset.load(results / "runs" / "quick", Scope.of(planned_run_dirs, "methods ..."))

* **Verified**: every finished run is read by `bench.training.runstore.read_run`, which checks
  its seal (the sha256 of each record, written with summary.json), the domain of every success
  rate and that the summary's successes are its own evaluation records'. A run that fails is
  listed in ``damaged`` with the file and the reason, and is in no mean.
* **Scoped**: a `Scope` names exactly the run directories an invocation planned (its methods x
  tasks x seeds x variants); runs of the store outside it are not read. Without one, every run
  under the root is (``python -m bench tables`` on a whole store).
* **Grouped by data**: a run's data identity is its files' sha256
  (`bench.training.runstore.data_identity`). Runs of one
  dataset on different files never share a cell: `data_groups` splits the set so that each group
  holds one identity per dataset (the identity with the most runs first), and every table row
  names the identity of its runs.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError
from bench.files import relative_path
from bench.training import bundle
from bench.training.runstore import DamagedRecord, data_identity, read_run

SUMMARY_GLOB = "*/*/seed*/summary.json"  # METHOD/TASK/seedN[-variant]/summary.json


@dataclass(frozen=True)
class Scope:
    """Which run directories an output covers (``dirs``; None: every run under the root) and
    how to say so (``description``, e.g. the invocation's matrix)."""

    dirs: frozenset[Path] | None = None
    description: str = "every finished run stored under the root"

    @classmethod
    def of(cls, dirs, description: str) -> Scope:
        return cls(frozenset(Path(d).resolve() for d in dirs), description)

    def admits(self, directory: Path) -> bool:
        return self.dirs is None or directory.resolve() in self.dirs


@dataclass(frozen=True)
class Damaged:
    """A run left out of every table: the file that failed its check and why."""

    directory: Path
    file: str
    reason: str


def _run_entry(directory: Path) -> dict:
    record = read_run(directory)
    config = record["config"] or {}
    run = config.get("run", {})
    phases = config.get("phases") or [{}]
    summary = record["summary"]
    dataset = (record["data"] or {}).get("dataset") or (record["data"] or {}).get("manifest", {}).get("dataset") \
        or summary.get("data", {}).get("dataset", "")
    return {
        "dir": directory, "summary": summary, "config": config, "environment": record["environment"],
        "data": record["data"], "metrics": record["metrics"], "evaluations": record["evaluations"],
        "success_by_phase": record["success_by_phase"],
        "overrides": dict(o.split("=", 1) for o in run.get("overrides", [])),
        "default": re.fullmatch(r"seed\d+", directory.name) is not None,
        "variant": directory.name.partition("-")[2],
        "agent_config": phases[-1].get("agent_config", {}),
        "data_id": data_identity(record["data"] or {}), "dataset": dataset,
        "origin": bundle.origin_of(directory),  # None: trained in this store; else `bench results import`'s record
    }


@dataclass
class RunSet:
    """Verified, scoped runs (`load`): ``runs`` in scope and intact, ``damaged`` in scope and not,
    ``missing`` planned directories without a finished run."""

    root: Path
    scope: Scope
    runs: list[dict]
    damaged: list[Damaged] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)

    def default_runs(self) -> list[dict]:
        """The profile's default runs (``seedN``); study and other variants are left out."""
        return [r for r in self.runs if r["default"]]

    def data_groups(self) -> list[RunSet]:
        """The set split so that each part holds one data identity per dataset: the identity with
        the most runs (then the first by name) in the first part, the next in the second, ..."""
        by_dataset: dict[str, Counter] = defaultdict(Counter)
        for r in self.runs:
            by_dataset[r["dataset"]][r["data_id"]] += 1
        rank = {(dataset, data_id): i for dataset, counts in by_dataset.items()
                for i, (data_id, _) in enumerate(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))}
        parts: dict[int, list[dict]] = defaultdict(list)
        for r in self.runs:
            parts[rank[(r["dataset"], r["data_id"])]].append(r)
        return [RunSet(self.root, self.scope, parts[i]) for i in sorted(parts)] or [self]

    def origin_lines(self) -> list[str]:
        """One line per store the imported runs of this set came from (none when all were trained here)."""
        counts = Counter(bundle.describe(r["origin"]) for r in self.runs if r.get("origin"))
        return [f"{n} run{'s' if n != 1 else ''} {where}" for where, n in sorted(counts.items())]

    def data_summary(self) -> list[str]:
        """One line per data identity: kind, digest, dataset and how many runs trained on it."""
        counts = Counter((r["dataset"], r["data_id"]) for r in self.runs)
        return [f"`{data_id}` ({dataset}): {n} run{'s' if n != 1 else ''}"
                for (dataset, data_id), n in sorted(counts.items())]

    def damaged_lines(self, base: Path | None = None) -> list[str]:
        return [f"`{relative_path(d.directory, base)}`: {d.file} {d.reason}" for d in self.damaged]


def load(root: Path, scope: Scope | None = None) -> RunSet:
    """Every finished run under ``root`` that ``scope`` admits, each read and verified once."""
    scope = scope or Scope()
    runs, damaged = [], []
    found = sorted(p.parent for p in Path(root).glob(SUMMARY_GLOB))
    for directory in found:
        if not scope.admits(directory):
            continue
        try:
            runs.append(_run_entry(directory))
        except DamagedRecord as exc:
            damaged.append(Damaged(directory, exc.path.name, exc.reason))
    finished = {d.resolve() for d in found}
    missing = sorted(d for d in (scope.dirs or ()) if d not in finished)
    if not runs and not damaged:
        raise BenchError(f"no finished runs under {root}" + ("" if scope.dirs is None else f" among the "
                         f"{len(scope.dirs)} this invocation planned") + "; run `python -m bench reproduce` (or train) first")
    return RunSet(Path(root), scope, runs, damaged, missing)
