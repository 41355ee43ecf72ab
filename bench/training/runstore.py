"""A run's directory: what it records and how it is written.

    config.json       the full configuration (run, profile, agent config)
    environment.json  package versions, hardware, code revision
    data.json         data provenance (official or regenerated, files, manifest)
    metrics.csv       training metrics every `log_every` steps
    evaluations.csv   evaluation results every `eval_every` steps and at phase ends
    summary.json      written last: the run is finished once it exists
    train.log         the output of the run's process(es) when a sweep ran it
    checkpoint/       agent + loop state for resuming (never committed)

Every file is written atomically (temp file + rename), so an interrupted run never leaves
a half-written record, and nothing is rewritten once summary.json exists.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.files import file_lock, temp_beside

PHASE_ORDER = ("pretrain", "offline", "online")


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def csv_text(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """``rows`` as CSV text; the columns are ``columns`` or the union of the rows' keys, in order."""
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


class CsvLog:
    """Rows kept in memory and rewritten atomically; columns are the union of all rows."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.exists():
            with open(path, newline="") as f:
                self.rows = [dict(r) for r in csv.DictReader(f)]

    def truncate_after(self, phase: str, step: int) -> None:
        """Drop rows logged after (phase, step): they are redone when a run resumes."""
        limit = (PHASE_ORDER.index(phase), step)
        self.rows = [
            r for r in self.rows if (PHASE_ORDER.index(r["phase"]), int(r["step"])) <= limit
        ]
        self._write()

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._write()

    def _write(self) -> None:
        write_atomic(self.path, csv_text(self.rows))


@contextlib.contextmanager
def exclusive(directory: Path) -> Iterator[None]:
    """Hold ``directory/run.lock`` while training: a second process on the same run (two sweeps
    started by mistake) gets a clear error instead of interleaving checkpoints. The lock goes
    with the process, so a killed run never leaves it held."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(file_lock(directory / "run.lock", wait=False))
        except BlockingIOError:
            raise BenchError(f"run directory {directory} is in use by another process; "
                             "let that run finish (or stop it) and run this again") from None
        yield
