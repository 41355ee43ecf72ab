"""A run's directory: what it records and how it is written.

    config.json       the full configuration (run, profile, agent config)
    environment.json  package versions, hardware, code revision
    data.json         data provenance (official or regenerated, files, manifest)
    metrics.csv       training metrics every `log_every` steps
    evaluations.csv   evaluation results every `eval_every` steps and at phase ends
    summary.json      written last: the run is finished once it exists; it seals the run
                      (`seal`): the sha256 of every record above and of itself
    train.log         the output of the run's process(es) when a sweep ran it
    checkpoint/       agent + loop state for resuming (never committed)

Every file is written atomically (temp file + rename), so an interrupted run never leaves
a half-written record, and nothing is rewritten once summary.json exists. Every JSON file is
strict (no NaN or Infinity: a non-finite number is written as null). `read_run` reads a
finished run back and checks it: the seal, the domain of every success rate, and that the
summary's successes are the evaluation records' own (`Damaged` otherwise).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.files import file_lock, sha256_file, temp_beside

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


def finite(data: Any) -> Any:
    """``data`` with every non-finite float as None (strict JSON has no NaN or Infinity)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite(v) for v in data]
    return data


def json_text(data: Any) -> str:
    """Strict JSON (readers that reject NaN and Infinity read every file the suite writes)."""
    return json.dumps(finite(data), indent=2, sort_keys=False, default=str, allow_nan=False) + "\n"


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json_text(data))


class DamagedRecord(BenchError):
    """A stored record that cannot be read as what it claims to be (truncated, edited, impossible)."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path} is damaged ({reason})")


def read_json(path: Path) -> Any:
    """The JSON in ``path``; `DamagedRecord` (one line naming the file) when it is not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DamagedRecord(path, f"not valid JSON: {exc}") from None


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV record. A torn last line (cut short by a kill or a full disk: every
    record ends with a newline, so a last line without one is incomplete) is dropped, and so is
    a row with fewer fields than the header."""
    return csv_rows(path.read_text()) if path.exists() else []


def csv_rows(text: str) -> list[dict[str, str]]:
    """`read_csv_rows` of a CSV record's text."""
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return []
    header = rows[0]
    return [dict(zip(header, r, strict=True)) for r in rows[1:] if len(r) == len(header)]


# ---- the seal: what a finished run wrote, checksummed when written, verified when read ----
SEALED_RECORDS = ("config.json", "environment.json", "data.json", "metrics.csv", "evaluations.csv")


def _digest(summary: dict) -> str:
    body = {k: v for k, v in summary.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()).hexdigest()


def seal(summary: dict, directory: Path) -> dict:
    """``summary`` with ``records`` (the sha256 of each record of `SEALED_RECORDS` in
    ``directory``) and ``sha256`` (of the summary itself, canonical JSON without that field)."""
    body = json.loads(json_text(summary))  # as it will read back
    body.pop("sha256", None)
    body["records"] = {name: sha256_file(directory / name) for name in SEALED_RECORDS if (directory / name).exists()}
    body["sha256"] = _digest(body)
    return body


def write_summary(directory: Path, summary: dict) -> dict:
    """Seal ``summary`` and write it as ``summary.json``, the last record of a run; returns it sealed."""
    sealed = seal(summary, directory)
    write_json(directory / "summary.json", sealed)
    return sealed


def _fraction(value: Any, what: str, path: Path) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DamagedRecord(path, f"{what} is {value!r}, not a number") from None
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise DamagedRecord(path, f"{what} is {value!r}, outside [0, 1]")
    return number


def evaluated_success(evaluations: list[dict[str, str]], path: Path) -> dict[str, float]:
    """``phase -> success rate`` of each phase's last evaluation, every row checked: a rate in
    [0, 1] that is a whole number of successes out of ``num_episodes`` where that is recorded."""
    last: dict[str, float] = {}
    for i, row in enumerate(evaluations, start=2):
        rate = _fraction(row.get("success_rate"), f"success_rate on line {i}", path)
        episodes = row.get("num_episodes")
        if episodes not in (None, ""):
            try:
                n = int(episodes)
            except ValueError:
                raise DamagedRecord(path, f"num_episodes on line {i} is {episodes!r}") from None
            if n < 1 or abs(rate * n - round(rate * n)) > 1e-6:
                raise DamagedRecord(path, f"success_rate {rate} on line {i} is not a count out of {n} episodes")
        last[row.get("phase", "")] = rate
    return last


def data_identity(data: dict) -> str:
    """``KIND SHA8``: the data kind and a digest of the sha256 of every file a run trained on
    (its ``data.json``); ``unrecorded`` without one. Runs of one dataset with different
    identities trained on different files."""
    kind = data.get("kind")
    if not kind:
        return "unrecorded"
    if kind == "regenerated":
        files = {name: entry.get("sha256", "") for name, entry in (data.get("manifest") or {}).get("files", {}).items()}
    else:
        files = {entry.get("name", ""): entry.get("sha256", "") for entry in data.get("files", [])}
    digest = hashlib.sha256("".join(f"{n}:{h};" for n, h in sorted(files.items())).encode()).hexdigest()[:8]
    return f"{kind} {digest}"


def read_run(directory: Path) -> dict[str, Any]:
    """A finished run's records, verified: ``summary``, ``config``, ``environment``, ``data``,
    ``metrics`` and ``evaluations`` (rows), and ``success_by_phase`` as its evaluation records
    give it. `DamagedRecord` names the first file that fails: not JSON, a seal that does not
    match, a success outside [0, 1], or a summary whose successes are not its evaluations'."""
    directory = Path(directory)
    summary_path = directory / "summary.json"
    summary = read_json(summary_path)
    if not isinstance(summary, dict):
        raise DamagedRecord(summary_path, "not a JSON object")
    if "sha256" not in summary or "records" not in summary:
        raise DamagedRecord(summary_path, "no seal (records and sha256): written by hand or by an older version")
    if _digest(summary) != summary["sha256"]:
        raise DamagedRecord(summary_path, "its sha256 does not match its content: edited after it was written")
    texts = {}  # each sealed record read once: hashed, then parsed from the same bytes
    for name, expected in summary["records"].items():
        path = directory / name
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise DamagedRecord(path, "missing") from None
        if hashlib.sha256(blob).hexdigest() != expected:
            raise DamagedRecord(path, "sha256 differs from the one sealed in summary.json: edited or damaged")
        texts[name] = blob.decode()
    evaluations_path = directory / "evaluations.csv"
    evaluations = csv_rows(texts.get("evaluations.csv", ""))
    evaluated = evaluated_success(evaluations, evaluations_path)
    claimed = summary.get("success_by_phase") or {}
    diverged = summary.get("diverged") or {}
    phases = list(claimed)
    from_phase = phases.index(diverged["phase"]) if diverged.get("phase") in phases else len(phases)
    success = {}
    for i, (phase, value) in enumerate(claimed.items()):
        value = _fraction(value, f"success_by_phase.{phase}", summary_path)
        expected = 0.0 if i >= from_phase else evaluated.get(phase)
        if expected is None or abs(expected - value) > 1e-9:
            raise DamagedRecord(summary_path, f"success_by_phase.{phase} is {value}, its evaluations.csv says "
                                f"{'nothing' if expected is None else expected}")
        success[phase] = expected
    final = summary.get("final_success")
    if phases and (final is None or abs(_fraction(final, "final_success", summary_path) - success[phases[-1]]) > 1e-9):
        raise DamagedRecord(summary_path, f"final_success {final} is not the last phase's success")
    records = {}
    for name in ("config", "environment", "data"):
        try:
            records[name] = json.loads(texts[f"{name}.json"]) if f"{name}.json" in texts else {}
        except json.JSONDecodeError as exc:
            raise DamagedRecord(directory / f"{name}.json", f"not valid JSON: {exc}") from None
    return {"summary": summary, **records, "metrics": csv_rows(texts.get("metrics.csv", "")),
            "evaluations": evaluations, "success_by_phase": success}


class CsvLog:
    """Rows kept in memory and rewritten atomically; columns are the union of all rows."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict[str, Any]] = read_csv_rows(path)  # a torn last row is dropped

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
