"""Where a run's data comes from: official OGBench files or regenerated ones.

* ``official``: the files ogbench publishes, read with ogbench's own loader
  (`ogbench.load_dataset` + `relabel_dataset`, exactly what `make_env_and_datasets`
  composes). A dataset is ``<dir>/<dataset>.npz`` + ``<dataset>-val.npz``, or a
  directory of shards ``<domain>-...-NNN.npz`` for the 10M/100M sets (the trainer
  rotates to the next shard every 1,000 steps). Missing files are downloaded by
  ogbench when the network allows; otherwise the error says where to put them.
* ``regenerated``: made by `bench.data.datagen` with ogbench's scripted oracles and cached
  under ``$TRQAM_BENCH_CACHE`` (default ``~/.cache/trqam-bench``), one directory per size,
  seed and (ogbench, MuJoCo, numpy) versions. Never the official
  bytes, and labelled "regenerated" in every run record.
* ``auto``: official if the files are present, otherwise regenerated (cached).
"""

from __future__ import annotations

import os
import socket
import sys
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from bench.errors import BenchError
from bench.files import cached_sha256, file_lock, npz_rows
from bench.tasks import Task

Source = Literal["official", "regenerated", "auto"]
DEFAULT_OFFICIAL_DIR = Path("~/.ogbench/data").expanduser()
REQUIRED_KEYS = ("observations", "actions", "terminals", "qpos", "qvel")
DOWNLOAD_TIMEOUT_S = 30.0


def cache_dir() -> Path:
    return Path(os.environ.get("TRQAM_BENCH_CACHE", "~/.cache/trqam-bench")).expanduser()


@dataclass(frozen=True)
class Regeneration:
    """How much data to regenerate when no official files are used."""

    episodes: int = 1000
    episode_length: int = 1000
    seed: int = 0

    @property
    def tag(self) -> str:
        return f"ep{self.episodes}-len{self.episode_length}-seed{self.seed}"


@dataclass(frozen=True)
class DataFiles:
    """The resolved files of one dataset and where they came from."""

    kind: Literal["official", "regenerated"]
    dataset: str
    train: tuple[Path, ...]  # one file, or the shards in rotation order
    val: Path
    provenance: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LargeDataset:
    """A dataset the TRQAM paper trains on instead of the standard 1M set: the shards
    ``PREFIX-000.npz`` .. ``PREFIX-(N-1).npz`` and a validation file ``*-val.npz`` in
    ``DATASET_DIR/FOLDER/`` (the layout of the authors' README)."""

    folder: str
    prefix: str
    shards: int
    origin: str

    def shard_names(self) -> list[str]:
        return [f"{self.prefix}-{i:03d}.npz" for i in range(self.shards)]


_HORIZON_REDUCTION = "github.com/seohongpark/horizon-reduction ('Using large datasets')"
# TRQAM paper, 'Datasets' (and the authors' README): the domains it trains on 10M/100M data.
TRQAM_PAPER_LARGE: dict[str, LargeDataset] = {
    "c3": LargeDataset("cube-triple-play-10m-v0", "cube-triple-play-v0", 10,
                       f"the first 10 shards of cube-triple-play-100m-v0 from {_HORIZON_REDUCTION}"),
    "p44": LargeDataset("puzzle-4x4-play-10m-v0", "puzzle-4x4-play-v0", 10,
                        f"the first 10 shards of puzzle-4x4-play-100m-v0 from {_HORIZON_REDUCTION}"),
    "c4": LargeDataset("cube-quadruple-play-100m-v0", "cube-quadruple-play-v0", 100,
                       f"all 100 shards of cube-quadruple-play-100m-v0 from {_HORIZON_REDUCTION}"),
    "ag": LargeDataset("antmaze-giant-navigate-10m-v0", "antmaze-giant-navigate-v0", 10,
                       "the TRQAM authors' 10M set (huggingface.co/datasets/yonghoon96/antmaze-giant-navigate-10m-v0)"),
}
# QAM paper (arXiv 2601.14234, 'Datasets'): the standard sets, except the 100M shards on
# cube-quadruple and puzzle-4x4.
QAM_PAPER_LARGE: dict[str, LargeDataset] = {
    "p44": LargeDataset("puzzle-4x4-play-100m-v0", "puzzle-4x4-play-v0", 100,
                        f"all 100 shards of puzzle-4x4-play-100m-v0 from {_HORIZON_REDUCTION}"),
    "c4": TRQAM_PAPER_LARGE["c4"],
}
# A profile's ``large_datasets`` names one of these tables.
LARGE_DATASETS: dict[str, dict[str, LargeDataset]] = {"none": {}, "trqam-paper": TRQAM_PAPER_LARGE,
                                                      "qam-paper": QAM_PAPER_LARGE}


def large_dataset(task: Task, table: str) -> LargeDataset | None:
    """The large dataset protocol ``table`` (a key of LARGE_DATASETS) needs for ``task``, if any."""
    return LARGE_DATASETS[table].get(task.info.abbr) if task.info is not None else None


def large_dataset_files(task: Task, spec: LargeDataset, dataset_dir: Path | None) -> DataFiles:
    """The shards of ``spec``, or one line naming the files expected and where to put them."""
    base = Path(dataset_dir).expanduser() if dataset_dir else DEFAULT_OFFICIAL_DIR
    directory = base / spec.folder
    names = spec.shard_names()
    missing = [name for name in names if not (directory / name).is_file()]
    vals = sorted(directory.glob("*-val.npz")) if directory.is_dir() else []
    if missing or not vals:
        what = f"{len(missing)} of its {spec.shards} shards" if missing else "its validation file"
        raise BenchError(
            f"this protocol trains {task.name} on {spec.origin}, and {what} are missing: expected "
            f"{names[0]} .. {names[-1]} and a *-val.npz in {directory}; put them there (or pass --dataset-dir "
            f"DIR holding {spec.folder}/), or choose another profile; the standard dataset is not substituted"
        )
    train = tuple(directory / name for name in names)
    from bench.data import datagen

    manifest = datagen.read_manifest(directory, task.dataset)
    if manifest is not None:  # the suite's own files in this layout (bench.data.stand_in): labelled by their manifest
        _verify_manifest(manifest, (*train, vals[0]), directory)
        provenance = {"kind": "regenerated", "dataset": spec.folder, "directory": str(directory),
                      "shards": spec.shards, "manifest": manifest}
        return DataFiles("regenerated", spec.folder, train, vals[0], provenance)
    provenance = {"kind": "official", "dataset": spec.folder, "origin": spec.origin, "directory": str(directory),
                  "shards": spec.shards, **official_file_records(train, vals[0])}
    return DataFiles("official", spec.folder, train, vals[0], provenance)


def _official_files(task: Task, directory: Path) -> DataFiles | None:
    single = directory / f"{task.dataset}.npz"
    val = directory / f"{task.dataset}-val.npz"
    if single.exists() and not val.exists():  # half a dataset is refused, never completed from elsewhere
        raise BenchError(f"{val} is missing (its pair {single.name} is in {directory}); put it there, or pass "
                         "another --dataset-dir; nothing was trained")
    if single.exists() and val.exists():
        train: tuple[Path, ...] = (single,)
    else:
        train = tuple(
            sorted(
                p
                for p in directory.glob(f"{task.domain}-*.npz")
                if p.stem[-3:].isdigit() and p.stem[-4] == "-"
            )
        )
        if not train:
            return None
        per_shard_val = train[0].with_name(f"{train[0].stem}-val.npz")
        vals = [per_shard_val] if per_shard_val.exists() else sorted(directory.glob(f"{task.domain}-*val.npz"))
        if not vals:
            raise BenchError(
                f"found {len(train)} shards of '{task.dataset}' in {directory} but no validation "
                f"file; put '{task.dataset}-val.npz' (or '<shard>-val.npz') beside them"
            )
        val = vals[0]
    from bench.data import datagen

    manifest = datagen.read_manifest(directory, task.dataset)
    if manifest is not None:  # the suite's own regenerated files: the manifest decides the label
        _verify_manifest(manifest, (*train, val), directory)
        provenance = {"kind": "regenerated", "dataset": task.dataset, "directory": str(directory), "manifest": manifest}
        return DataFiles("regenerated", task.dataset, train, val, provenance)
    provenance = {"kind": "official", "dataset": task.dataset, "directory": str(directory), "shards": len(train),
                  **official_file_records(train, val)}
    return DataFiles("official", task.dataset, train, val, provenance)


def _verify_manifest(manifest: dict, paths: tuple[Path, ...], directory: Path) -> None:
    """Each file's sha256 against the manifest (which `datagen.read_manifest` has checked against
    its own binding), and the episodes it reports against the rows stored: one line otherwise."""
    rows_per_episode = manifest.get("recipe", {}).get("rows_per_episode")
    for path in paths:
        expected = manifest.get("files", {}).get(path.name, {}).get("sha256")
        if expected is None or not path.exists() or cached_sha256(path, cache_dir() / "checksums") != expected:
            raise BenchError(
                f"regenerated file {path} is missing, not listed in its manifest or corrupt (sha256 differs from "
                f"the manifest); delete {directory} and regenerate it"
            )
        episodes = manifest.get("val_episodes" if path.name.endswith("-val.npz") else "episodes")
        rows = npz_rows(path)
        if rows_per_episode and episodes is not None and rows != episodes * rows_per_episode:
            raise BenchError(f"{path} holds {rows} rows but its manifest reports {episodes} episodes of "
                             f"{rows_per_episode} rows; delete {directory} and regenerate it")


def official_file_records(train: tuple[Path, ...], val: Path) -> dict:
    """What a run's data.json records of official files: each file's name, size, rows (as
    stored: observations, including each episode's last) and sha256 (hashed once per file version, `cached_sha256`), and the total
    training rows."""
    def record(path: Path, split: str) -> dict:
        return {"name": path.name, "split": split, "bytes": path.stat().st_size, "rows": npz_rows(path),
                "sha256": cached_sha256(path, cache_dir() / "checksums")}

    files = [record(p, "train") for p in train] + [record(val, "val")]
    rows = [f["rows"] for f in files if f["split"] == "train"]
    return {"train_rows": sum(rows) if None not in rows else None, "files": files}


def _download_official(task: Task, directory: Path) -> None:
    import ogbench

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        ogbench.download_datasets([task.dataset], str(directory))
    except Exception as exc:  # network errors come in many types
        raise BenchError(
            f"official dataset '{task.dataset}' is not in {directory} and could not be downloaded "
            f"({type(exc).__name__}: {exc}); put '{task.dataset}.npz' and '{task.dataset}-val.npz' "
            f"there (from ogbench.download_datasets(['{task.dataset}']) on a machine with network, "
            "or OGBench's dataset server), pass --dataset-dir DIR, or use --source regenerated"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def regenerated_dir(dataset: str, regen: Regeneration) -> Path:
    """Where the cache keeps ``dataset`` regenerated as ``regen`` describes, under this
    environment's ogbench, MuJoCo and numpy versions: the arrays depend on all three (a
    different numpy gives different observations from the same seed), so a cache filled under
    one lock is never reused under another."""
    from bench.data import datagen

    versions = "-".join(f"{pkg}{version}" for pkg, version in sorted(datagen.versions().items()))
    return cache_dir() / "datasets" / dataset / regen.tag / versions


def _regenerated_files(task: Task, regen: Regeneration, fetch: bool = True) -> DataFiles | None:
    from bench.data import datagen

    if not datagen.regenerable(task.dataset):
        raise BenchError(
            f"'{task.dataset}' cannot be regenerated here (its data comes from pretrained experts "
            "that are only downloadable); use --source official with the official files"
        )
    directory = regenerated_dir(task.dataset, regen)
    if not fetch:  # a look only: no lock (a regeneration under way holds it), nothing generated
        manifest = datagen.read_manifest(directory, task.dataset) if directory.is_dir() else None
        return None if manifest is None else _regenerated_record(task, directory, manifest)
    with file_lock(directory.parent / f"{directory.name}.lock"):
        manifest = datagen.read_manifest(directory, task.dataset)
        if manifest is None:
            datagen.generate(
                task.dataset, episodes=regen.episodes, seed=regen.seed, out_dir=directory,
                episode_length=regen.episode_length,
            )
            manifest = datagen.read_manifest(directory, task.dataset)
            assert manifest is not None, "datagen.generate wrote no manifest"
    return _regenerated_record(task, directory, manifest)


def _regenerated_record(task: Task, directory: Path, manifest: dict) -> DataFiles:
    from bench.data import datagen

    if manifest.get("versions") != datagen.versions():
        raise BenchError(f"{directory} holds data regenerated under {manifest.get('versions')}, not this environment's "
                         f"{datagen.versions()}; delete {directory} and regenerate it")
    train = directory / f"{task.dataset}.npz"
    val = directory / f"{task.dataset}-val.npz"
    _verify_manifest(manifest, (train, val), directory)
    provenance = {"kind": "regenerated", "directory": str(directory), "manifest": manifest}
    return DataFiles("regenerated", task.dataset, (train,), val, provenance)


def resolve_files(
    task: Task, source: Source, dataset_dir: Path | None, regen: Regeneration, *, large: str = "none",
    fetch: bool = True,
) -> DataFiles | None:
    """Pick the dataset files for ``task`` according to ``source``. Under a protocol with large
    datasets (``large``, a key of LARGE_DATASETS) a task it trains on a 10M/100M set gets
    those shards or a refusal, never the standard set.

    The files' own manifest decides their label: files in ``dataset_dir`` with the suite's
    regenerated manifest beside them are "regenerated" wherever they lie. ``official`` takes
    official files only (downloading them when absent); ``regenerated`` takes the regenerated
    files in ``dataset_dir`` when given, else regenerates into the cache; ``auto`` takes what
    ``dataset_dir`` holds, else regenerates, and says so in one line."""
    directory = Path(dataset_dir).expanduser() if dataset_dir else DEFAULT_OFFICIAL_DIR
    if source == "regenerated" and dataset_dir is None:
        return _regenerated_files(task, regen, fetch)
    if dataset_dir is not None and not directory.is_dir():
        raise BenchError(f"--dataset-dir {directory} does not exist or is not a directory")
    spec = large_dataset(task, large)
    if spec is not None and source != "regenerated":
        return large_dataset_files(task, spec, dataset_dir)
    found = _official_files(task, directory) if directory.is_dir() else None
    if source == "regenerated":
        if found is None or found.kind != "regenerated":
            what = "official files (no regenerated manifest beside them)" if found else f"no files of '{task.dataset}'"
            raise BenchError(f"--source regenerated with --dataset-dir {directory}: it holds {what}; drop "
                             "--dataset-dir to regenerate into the cache, or pass --source official or auto")
        return found
    if found is not None and found.kind == "regenerated" and source == "official":
        raise BenchError(f"{directory} holds the suite's regenerated '{task.dataset}' (its manifest is beside it), "
                         "not the official files; pass --source regenerated or auto to train on it, or put the "
                         "official files elsewhere")
    if found is not None:
        return found
    if dataset_dir is not None and source == "auto":  # the directory the user named: used or refused, never swapped
        raise BenchError(f"--dataset-dir {directory} holds no files of '{task.dataset}' ({task.dataset}.npz and "
                         f"{task.dataset}-val.npz, or its shards); put them there, or drop --dataset-dir to use "
                         "the profile's data; nothing was trained")
    if not fetch:
        return _regenerated_files(task, regen, fetch) if source == "auto" else None
    if source == "auto":
        print(f"data: no '{task.dataset}' files in {directory}; --source auto uses regenerated data "
              f"(ogbench's oracles, {regen.tag})", file=sys.stderr, flush=True)
        return _regenerated_files(task, regen)
    directory.mkdir(parents=True, exist_ok=True)
    # Runs of one domain started together would download the same file to the same temporary
    # name: one downloads, the others wait for it and then find the files.
    with file_lock(directory / f".{task.dataset}.download.lock"):
        found = _official_files(task, directory)
        if found is None:
            _download_official(task, directory)
            found = _official_files(task, directory)
    assert found is not None, "ogbench.download_datasets returned without the files"
    return found


def _check_npz(path: Path) -> None:
    """Fail with a clear message on a missing, truncated or incomplete npz file."""
    if not path.exists():
        raise BenchError(f"dataset file {path} does not exist; check --dataset-dir or regenerate it")
    try:
        with np.load(path) as f:
            keys = set(f.files)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise BenchError(
            f"dataset file {path} is corrupt or truncated ({type(exc).__name__}); delete it and "
            "download or regenerate it again"
        ) from None
    missing = [k for k in REQUIRED_KEYS if k not in keys]
    if missing:
        raise BenchError(
            f"dataset file {path} lacks key(s) {', '.join(missing)}; it is not an OGBench dataset "
            "(expected observations, actions, terminals, qpos, qvel)"
        )


def _check_arrays(path: Path, data: dict[str, np.ndarray], obs_dim: int, action_dim: int) -> None:
    n = data["observations"].shape[0]
    expected = {"observations": (n, obs_dim), "actions": (n, action_dim), "next_observations": (n, obs_dim)}
    for key, shape in expected.items():
        if data[key].shape != shape:
            raise BenchError(
                f"dataset file {path}: '{key}' has shape {data[key].shape}, expected {shape} for this "
                "task's environment; the file belongs to another environment or is damaged"
            )
    for key in ("rewards", "masks", "terminals"):
        if data[key].shape != (n,):
            raise BenchError(f"dataset file {path}: '{key}' has shape {data[key].shape}, expected ({n},)")
    for key in ("observations", "actions", "rewards", "next_observations"):
        if not np.all(np.isfinite(data[key])):
            bad = int(np.sum(~np.isfinite(data[key])))
            raise BenchError(
                f"dataset file {path}: '{key}' holds {bad} NaN/inf value(s); the file is damaged, "
                "download or regenerate it again"
            )


def load_split(path: Path, task: Task, env) -> dict[str, np.ndarray]:
    """Load one npz through ogbench's loader and relabel it for the singletask ``env``."""
    from ogbench.relabel_utils import relabel_dataset
    from ogbench.utils import load_dataset

    _check_npz(path)
    try:
        data = load_dataset(str(path), compact_dataset=False, add_info=True)
        relabel_dataset(task.env_id, env, data)
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, KeyError, IndexError) as exc:
        raise BenchError(
            f"dataset file {path} could not be read ({type(exc).__name__}: {exc}); it is corrupt or "
            "not an OGBench dataset: delete it and download or regenerate it again"
        ) from None
    for key in ("qpos", "qvel", "button_states"):
        data.pop(key, None)
    _check_arrays(path, data, env.observation_space.shape[0], env.action_space.shape[0])
    return data
