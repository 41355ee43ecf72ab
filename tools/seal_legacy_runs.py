"""Seal run directories written before runs were sealed (before issue 29): one-off migration.

    python tools/seal_legacy_runs.py results/runs results/archive

A legacy ``summary.json`` has no ``records`` / ``sha256``, so `bench.training.runstore.read_run`
lists its run as damaged. This adds the seal to each such run *only when its records are
consistent* (the summary's successes are its ``evaluations.csv``'s, every rate a whole count of
episodes in [0, 1]), and says so in the summary (``sealed_later``: when, by what, what was checked),
so a reader can tell a run sealed at training time from one sealed afterwards. A run that fails
the check is left as it is and listed. Nothing else in the run directory changes.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.training.runstore import (
    DamagedRecord,
    json_text,
    read_json,
    read_run,
    write_atomic,
    write_summary,
)


def seal_legacy(directory: Path) -> str:
    """``sealed``, ``already sealed``, or why the run was left unsealed."""
    path = directory / "summary.json"
    original = path.read_text()
    summary = read_json(path)
    if "sha256" in summary:
        return "already sealed"
    summary["sealed_later"] = {
        "utc": datetime.now(UTC).isoformat(timespec="seconds"), "by": "tools/seal_legacy_runs.py",
        "checked": "success_by_phase and final_success equal evaluations.csv; every success rate in [0, 1] and a "
                   "whole count of num_episodes"}
    write_summary(directory, summary)
    try:
        read_run(directory)
    except DamagedRecord as exc:
        write_atomic(path, original)
        return f"left unsealed: {exc.path.name} {exc.reason}"
    return "sealed"


def main(roots: list[str]) -> int:
    counts: dict[str, int] = {}
    for root in roots:
        for path in sorted(Path(root).rglob("summary.json")):
            outcome = seal_legacy(path.parent)
            counts[outcome.split(":")[0]] = counts.get(outcome.split(":")[0], 0) + 1
            if outcome.startswith("left"):
                print(f"{path.parent}: {outcome}")
    print(json_text(counts), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
