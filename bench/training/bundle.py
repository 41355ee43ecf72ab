"""Result bundles: runs carried from one result store to another, so a comparison needs no retraining.

    python -m bench results export BUNDLE [--profile P] [--methods M ...] [--checkpoints]
    python -m bench results import BUNDLE

A bundle is one tar file: ``bundle.json`` first (its format, its origin: the store, host, hardware
and code revision it was exported from; and the sha256 and size of every other member), then the run
directories as the store holds them (``runs/PROFILE/METHOD/TASK/seedN...``): their sealed records,
metrics and evaluations; checkpoints only with ``--checkpoints``. Only finished runs whose records
verify (`runstore.read_run`) are exported.

Import verifies every member against ``bundle.json`` before writing anything: a tampered, truncated
or foreign file is refused in one line and nothing is imported. Each imported run directory gets an
``origin.json`` (the bundle's origin, its sha256, when it was imported); `index.csv` and the report
name that origin. Whether `reproduce` reuses an imported run is the run store's decision
(`pipeline.Run.stored`): its whole configuration must match and its method's code fingerprint
(`bench.config.methods.code_fingerprint`) must equal today's.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from bench.errors import BenchError
from bench.training.runstore import DamagedRecord, read_run, write_json

FORMAT = "trqam-bench-bundle/1"
MANIFEST = "bundle.json"
ORIGIN = "origin.json"  # written into every imported run directory
SKIPPED = ("checkpoint", ".lock", ".tmp")  # never exported unless --checkpoints (the first)
RUN_DEPTH = 5  # a run directory's path in the store: runs/PROFILE/METHOD/TASK/seedN


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run_directories(results_dir: Path, profile: str | None, methods: Sequence[str] | None) -> list[Path]:
    runs = results_dir / "runs"
    found = sorted(p.parent for p in runs.glob("*/*/*/seed*/summary.json"))
    return [d for d in found
            if (profile is None or d.relative_to(runs).parts[0] == profile)
            and (not methods or d.relative_to(runs).parts[1] in methods)]


def _members(directory: Path, checkpoints: bool) -> list[Path]:
    files = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if not path.is_file() or relative.name == ORIGIN:
            continue
        if relative.parts[0] == "checkpoint" and not checkpoints:
            continue
        if any(part.endswith((".lock", ".tmp")) for part in relative.parts):
            continue
        files.append(path)
    return files


def export(results_dir: Path, bundle: Path, *, profile: str | None = None, methods: Sequence[str] | None = None,
           checkpoints: bool = False) -> dict:
    """Write the finished, intact runs of ``results_dir`` (narrowed to ``profile`` and ``methods``)
    into ``bundle``; returns its manifest. Damaged runs are left out and named."""
    from bench import provenance
    from bench.training.pipeline import store_id

    chosen, damaged = [], []
    for directory in _run_directories(results_dir, profile, methods):
        try:
            read_run(directory)
        except DamagedRecord as exc:
            damaged.append(f"{directory.relative_to(results_dir)} ({exc.path.name} {exc.reason})")
            continue
        chosen.append(directory)
    if not chosen:
        raise BenchError(f"no finished, intact run in {results_dir / 'runs'}"
                         + (f" for profile {profile}" if profile else "") + (f", methods {' '.join(methods)}" if methods else "")
                         + "; nothing exported")
    contents: dict[str, bytes] = {}
    for directory in chosen:
        for path in _members(directory, checkpoints):
            contents[path.relative_to(results_dir).as_posix()] = path.read_bytes()
    hardware = provenance.hardware()
    manifest = {
        "format": FORMAT,
        "origin": {"store_id": store_id(results_dir), "host": hardware.get("host", ""),
                   "hardware": f"{hardware.get('cpu', '')} x{hardware.get('cpu_cores', '')}",
                   "code_revision": provenance.code_revision(),
                   "exported_utc": datetime.now(UTC).isoformat(timespec="seconds")},
        "runs": [d.relative_to(results_dir).as_posix() for d in chosen],
        "checkpoints": checkpoints,
        "files": {name: {"sha256": _sha256(data), "bytes": len(data)} for name, data in contents.items()},
    }
    bundle = Path(bundle)
    bundle.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=bundle.parent, prefix=bundle.name, suffix=".tmp")
    os.close(handle)
    try:
        with tarfile.open(temporary, "w:gz") as tar:
            for name, data in [(MANIFEST, json.dumps(manifest, indent=1).encode()), *contents.items()]:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
        os.replace(temporary, bundle)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    if damaged:
        print(f"left out {len(damaged)} damaged run(s): {'; '.join(damaged[:5])}")
    return manifest


def read(bundle: Path) -> tuple[dict, dict[str, bytes]]:
    """The manifest and files of ``bundle``, every file checked against the manifest; one line
    (BenchError) naming the first problem otherwise."""
    bundle = Path(bundle)
    if not bundle.is_file():
        raise BenchError(f"bundle {bundle} does not exist")
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(bundle, "r:*") as tar:
            for member in tar:
                name = PurePosixPath(member.name)
                if not member.isfile() or name.is_absolute() or ".." in name.parts:
                    raise BenchError(f"bundle {bundle} is refused: member '{member.name}' is not a plain file "
                                     "inside the bundle; nothing was imported")
                files[member.name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:  # zlib: a truncated gzip stream
        raise BenchError(f"bundle {bundle} cannot be read ({type(exc).__name__}: {exc}): truncated or not a "
                         "bundle; export it again; nothing was imported") from None
    try:
        manifest = json.loads(files.pop(MANIFEST))
    except (KeyError, ValueError):
        raise BenchError(f"bundle {bundle} has no readable {MANIFEST}: not a trqam-bench bundle; nothing was "
                         "imported") from None
    if manifest.get("format") != FORMAT:
        raise BenchError(f"bundle {bundle} has format {manifest.get('format')!r}, this version reads {FORMAT!r}; "
                         "nothing was imported")
    listed = manifest.get("files", {})
    for name in sorted(set(listed) | set(files)):
        if name not in files:
            raise BenchError(f"bundle {bundle} is damaged: {name} is listed in {MANIFEST} but missing (truncated?); "
                             "nothing was imported")
        if name not in listed:
            raise BenchError(f"bundle {bundle} is refused: {name} is not listed in {MANIFEST}; nothing was imported")
        data = files[name]
        if len(data) != listed[name]["bytes"] or _sha256(data) != listed[name]["sha256"]:
            raise BenchError(f"bundle {bundle} is damaged: {name} differs from its sha256 in {MANIFEST} (edited or "
                             "corrupted); nothing was imported")
    return manifest, files


def import_bundle(results_dir: Path, bundle: Path) -> list[Path]:
    """Add ``bundle``'s runs to ``results_dir``; returns the run directories added. A run already
    there with the same files is skipped; one there with other files stops the import (one line)
    before anything is written."""
    manifest, files = read(bundle)
    with open(bundle, "rb") as handle:
        bundle_sha = hashlib.file_digest(handle, "sha256").hexdigest()
    by_run: dict[str, dict[str, bytes]] = {run: {} for run in manifest["runs"]}
    for name, data in files.items():
        parts = PurePosixPath(name).parts  # runs/PROFILE/METHOD/TASK/seedN/...
        run = "/".join(parts[:RUN_DEPTH])
        if run not in by_run or len(parts) <= RUN_DEPTH:
            raise BenchError(f"bundle {bundle} is refused: {name} belongs to no run it lists; nothing was imported")
        by_run[run]["/".join(parts[RUN_DEPTH:])] = data
    added, skipped = [], []
    for run, contents in by_run.items():
        target = results_dir / run
        if target.exists():
            same = all((target / rel).is_file() and (target / rel).read_bytes() == data for rel, data in contents.items())
            if not same:
                raise BenchError(f"{target} already holds another run; move it away (or import into another store "
                                 "with TRQAM_BENCH_RESULTS) and import again; nothing was imported")
            skipped.append(run)
    origin = manifest["origin"] | {"bundle": Path(bundle).name, "bundle_sha256": bundle_sha,
                                   "imported_utc": datetime.now(UTC).isoformat(timespec="seconds")}
    staging = Path(tempfile.mkdtemp(dir=results_dir if results_dir.exists() else None, prefix=".import-"))
    try:
        for run, contents in by_run.items():
            if run in skipped:
                continue
            for relative, data in contents.items():
                path = staging / run / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            write_json(staging / run / ORIGIN, origin)
        for run in by_run:
            if run in skipped:
                continue
            target = results_dir / run
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / run, target)
            added.append(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return added


def origin_of(directory: Path) -> dict | None:
    """The origin of an imported run directory, or None for a run trained in this store."""
    path = Path(directory) / ORIGIN
    return json.loads(path.read_text()) if path.is_file() else None


def describe(origin: dict) -> str:
    return (f"imported from {origin.get('host', '?')} ({origin.get('hardware', '?')}), store "
            f"{origin.get('store_id', '?')}, revision {str(origin.get('code_revision', '?'))[:12]}")
