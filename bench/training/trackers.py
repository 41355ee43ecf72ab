"""Optional experiment trackers (W&B, TensorBoard) that mirror a run's own records.

A run's files stay the record (`metrics.csv`, `evaluations.csv`, `config.json`, ...); a tracker
receives a copy of every row of those two logs as it is written, with the run's config and
provenance, under the step ``offset of the phase + step`` (pretrain, then offline, then online).
Both are extras and off by default: ``train --wandb`` / ``--tensorboard`` (and the same flags of
``reproduce``).

Resuming: ``trackers.json`` in the run directory holds the W&B run id and, per log, the last
row each tracker received. A run killed and resumed continues the same tracked run (W&B
``resume="allow"`` with the stored id; TensorBoard's next event file in the same directory), and
the rows it recomputes after its checkpoint and had already sent are not sent again (training is
deterministic, so they are the same rows).

W&B honours its own settings: ``WANDB_MODE=offline`` writes the run under ``RUN_DIR/wandb/``
for ``wandb sync`` later (what the tests use), ``WANDB_PROJECT`` (default ``trqam-bench``) and
``WANDB_ENTITY`` where it goes. TensorBoard events go to ``RUN_DIR/tensorboard/``.
"""

from __future__ import annotations

import glob
import json
import math
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from bench.errors import BenchError
from bench.training.runstore import PHASE_ORDER, read_json, write_json

TrackerName = Literal["wandb", "tensorboard"]
LogName = Literal["metrics", "evaluations"]
STATE_FILE = "trackers.json"
EXTRA = {"wandb": ("wandb", "wandb"), "tensorboard": ("tensorboardX", "tensorboard")}  # module, extra


def check_available(names: Sequence[str]) -> None:
    """One line naming the missing package, before any training starts."""
    import importlib.util

    for name in names:
        module, extra = EXTRA[name]
        if importlib.util.find_spec(module) is None:
            raise BenchError(f"--{name} needs the {module} package: pip install 'trqam-bench[{extra}]' "
                             f"(or pip install {module})")


def _numeric(row: dict[str, Any]) -> dict[str, float]:
    """The row's numeric columns (phase and step become the tracker's step)."""
    out = {}
    for key, value in row.items():
        if key in ("phase", "step") or isinstance(value, bool) or value in (None, ""):
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


class Trackers:
    """The trackers of one run directory. ``offsets[phase]``: global step of the phase's step 0."""

    def __init__(self, names: Sequence[TrackerName], run_dir: Path, *, name: str, group: str,
                 record: dict[str, Any], offsets: dict[str, int]):
        check_available(names)
        self.run_dir, self.offsets = Path(run_dir), offsets
        self.state_path = self.run_dir / STATE_FILE
        self.state = read_json(self.state_path) if self.state_path.exists() else {}
        self.sinks: dict[str, Any] = {}
        for tracker in names:
            self.state.setdefault(tracker, {"sent": {}})
            self.sinks[tracker] = _SINKS[tracker](self.run_dir, self.state[tracker], name=name, group=group,
                                                  record=record)
        write_json(self.state_path, self.state)

    def _position(self, row: dict[str, Any]) -> tuple[int, int]:
        return PHASE_ORDER.index(row["phase"]), int(row["step"])

    def log(self, log: LogName, row: dict[str, Any]) -> None:
        """Send ``row`` (of ``log``) to every tracker that has not received it yet."""
        position = self._position(row)
        step = self.offsets[row["phase"]] + int(row["step"])
        values = {f"{log}/{k}": v for k, v in _numeric(row).items()}
        changed = False
        for tracker, sink in self.sinks.items():
            sent = self.state[tracker]["sent"].get(log)
            if sent is not None and tuple(sent) >= position:
                continue  # recomputed after a resume; this tracker has it
            sink.log(values, step, row["phase"])
            self.state[tracker]["sent"][log] = list(position)
            changed = True
        if changed:
            write_json(self.state_path, self.state)

    def finish(self, summary: dict[str, Any] | None = None) -> None:
        for sink in self.sinks.values():
            sink.finish(summary)


class _Wandb:
    def __init__(self, run_dir: Path, state: dict, *, name: str, group: str, record: dict[str, Any]):
        import os
        import secrets

        import wandb

        if "id" not in state:
            state["id"] = secrets.token_hex(6)  # W&B run ids: letters and digits
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "trqam-bench"), id=state["id"],
                              resume="allow", dir=str(run_dir), name=name, group=group, config=record,
                              reinit="create_new")

    def log(self, values: dict[str, float], step: int, phase: str) -> None:
        self.run.log({**values, "phase_index": PHASE_ORDER.index(phase)}, step=step)

    def finish(self, summary: dict[str, Any] | None) -> None:
        if summary is not None:
            for key in ("status", "final_success"):
                if key in summary:
                    self.run.summary[key] = summary[key]
        self.run.finish()


class _TensorBoard:
    def __init__(self, run_dir: Path, state: dict, *, name: str, group: str, record: dict[str, Any]):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(logdir=str(run_dir / "tensorboard"))
        if not state.get("config_written"):
            self.writer.add_text("config", f"```\n{json.dumps(record, indent=1, default=str)}\n```", 0)
            state["config_written"] = True

    def log(self, values: dict[str, float], step: int, phase: str) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def finish(self, summary: dict[str, Any] | None) -> None:
        self.writer.close()


_SINKS = {"wandb": _Wandb, "tensorboard": _TensorBoard}


# ---- reading them back (tests, and a user checking what a tracker received) ---------------
def _records(data: bytes, offset: int) -> list[bytes]:
    """The records of a LevelDB-format log (32 KiB blocks of crc32c(4) length(2) type(1) chunks;
    type 1 full, 2 first, 3 middle, 4 last), the layout of W&B's ``.wandb`` transaction log."""
    block, records, pending, position = 32768, [], b"", offset
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if length == 0 and kind == 0:  # zero padding to the end of the block
            position += left
            continue
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            records.append(pending + chunk)
    return records


def read_wandb_offline(run_dir: Path) -> tuple[str, list[dict[str, float]]]:
    """The run id and history rows (``_step`` and the logged keys) of every offline W&B run
    under ``run_dir/wandb`` (one per invocation of the run: a resumed run adds one), in order."""
    from wandb.proto import wandb_internal_pb2

    ids, rows = set(), []
    for path in sorted(glob.glob(str(Path(run_dir) / "wandb" / "offline-run-*" / "run-*.wandb"))):
        data = Path(path).read_bytes()
        if not data.startswith(b":W&B"):
            raise BenchError(f"{path} is not a W&B transaction log")
        for raw in _records(data, 7):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(raw)
            kind = record.WhichOneof("record_type")
            if kind == "run":
                ids.add(record.run.run_id)
            elif kind == "history":
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                             for item in record.history.item if not (item.key or "").startswith("_") or
                             item.key == "_step"})
    if len(ids) > 1:
        raise BenchError(f"{run_dir}/wandb holds several W&B runs: {sorted(ids)}")
    return (ids.pop() if ids else ""), rows


def read_tensorboard(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in ``run_dir/tensorboard``'s event files: tag -> [(step, value)], in file order."""
    from tensorboardX.proto import event_pb2

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(glob.glob(str(Path(run_dir) / "tensorboard" / "events.out.tfevents.*"))):
        data, position = Path(path).read_bytes(), 0
        while position + 12 <= len(data):  # TFRecord: length(8) crc(4) data crc(4)
            (length,) = struct.unpack("<Q", data[position:position + 8])
            event = event_pb2.Event()
            event.ParseFromString(data[position + 12:position + 12 + length])
            position += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((int(event.step), float(value.simple_value)))
    return scalars


def same_value(a: float, b: float) -> bool:
    """Equal up to float32 (TensorBoard stores scalars as float32)."""
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
