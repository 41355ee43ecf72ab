"""The data path on real files: official-format loading, shards, sources, bad files."""

from __future__ import annotations

import json
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import ogbench
import pytest

from bench.data.loading import Regeneration, load_split, resolve_files
from bench.errors import BenchError
from bench.tasks import resolve_task
from bench.training.pipeline import ShardedData

TASK = resolve_task("cube-single-play-singletask-task1-v0")
SMALL = Regeneration(episodes=4, episode_length=100, seed=0)


@pytest.fixture(scope="module")
def env():
    return ogbench.make_env_and_datasets(TASK.name, env_only=True)


def _copy(src_dir, dst_dir, names=("cube-single-play-v0.npz", "cube-single-play-v0-val.npz")):
    dst_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(src_dir / name, dst_dir / name)
    return dst_dir


def test_official_files_load_through_ogbench(smoke_dataset_dir, env):
    files = resolve_files(TASK, "official", smoke_dataset_dir, SMALL)
    assert files.kind == "official" and len(files.train) == 1
    data = load_split(files.train[0], TASK, env)
    assert data["observations"].shape == (400, env.observation_space.shape[0])
    assert set(data) >= {"observations", "actions", "rewards", "masks", "terminals", "next_observations"}
    assert data["terminals"].sum() == 4  # one per episode


def test_official_provenance_records_rows_shards_and_sha256(smoke_dataset_dir, bench_cache):
    from bench.files import sha256_file

    files = resolve_files(TASK, "official", smoke_dataset_dir, SMALL)
    record = files.provenance
    # Rows as stored: 4 episodes of 101 observations (the loader makes 400 transitions of them).
    assert record["kind"] == "official" and record["shards"] == 1 and record["train_rows"] == 404
    by_name = {f["name"]: f for f in record["files"]}
    for name, split in (("cube-single-play-v0.npz", "train"), ("cube-single-play-v0-val.npz", "val")):
        path = smoke_dataset_dir / name
        assert by_name[name]["split"] == split
        assert by_name[name]["sha256"] == sha256_file(path) and by_name[name]["bytes"] == path.stat().st_size
        with np.load(path) as f:
            assert by_name[name]["rows"] == f["observations"].shape[0]
    # The second resolution reads the checksum from the cache, keyed by path, size and mtime.
    assert list((bench_cache / "checksums").glob("*.json"))
    assert resolve_files(TASK, "official", smoke_dataset_dir, SMALL).provenance == record


def test_auto_prefers_official_then_regenerates(smoke_dataset_dir, tmp_path, bench_cache, monkeypatch):
    from bench.data import loading

    assert resolve_files(TASK, "auto", smoke_dataset_dir, SMALL).kind == "official"
    monkeypatch.setattr(loading, "DEFAULT_OFFICIAL_DIR", tmp_path)  # no official files where they are looked for
    files = resolve_files(TASK, "auto", None, SMALL)
    assert files.kind == "regenerated" and files.provenance["manifest"]["kind"] == "regenerated"
    # Second time: reused from the cache, same files.
    assert resolve_files(TASK, "auto", None, SMALL).train == files.train


def test_the_manifest_decides_the_label_wherever_the_files_lie(regenerated_dataset_dir, bench_cache, capsys):
    """The suite's regenerated files passed with --dataset-dir are labelled regenerated, never
    official; --source official refuses them; --source regenerated honours --dataset-dir."""
    auto = resolve_files(TASK, "auto", regenerated_dataset_dir, SMALL)
    assert auto.kind == "regenerated" and auto.provenance["manifest"]["kind"] == "regenerated"
    assert auto.train[0].parent == regenerated_dataset_dir
    with pytest.raises(BenchError, match="holds the suite's regenerated 'cube-single-play-v0'"):
        resolve_files(TASK, "official", regenerated_dataset_dir, SMALL)
    explicit = resolve_files(TASK, "regenerated", regenerated_dataset_dir, SMALL)
    assert explicit.kind == "regenerated" and explicit.train == auto.train


def test_regenerated_source_refuses_a_directory_of_official_files(smoke_dataset_dir):
    with pytest.raises(BenchError, match="it holds official files"):
        resolve_files(TASK, "regenerated", smoke_dataset_dir, SMALL)


def test_auto_says_when_it_falls_back_to_regenerated_data(tmp_path, bench_cache, capsys, monkeypatch):
    """Without --dataset-dir: the default official directory holds nothing, so auto regenerates and
    says so (a directory the user named is never swapped: see the issue-29 tests below)."""
    from bench.data import loading

    monkeypatch.setattr(loading, "DEFAULT_OFFICIAL_DIR", tmp_path)
    files = resolve_files(TASK, "auto", None, SMALL)
    assert files.kind == "regenerated"
    assert f"data: no 'cube-single-play-v0' files in {tmp_path}; --source auto uses regenerated data" in (
        capsys.readouterr().err)


def test_missing_official_files_explain_where_to_put_them(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(ogbench, "download_datasets", offline)
    with pytest.raises(BenchError, match=r"cube-single-play-v0.npz' and 'cube-single-play-v0-val.npz' there"):
        resolve_files(TASK, "official", tmp_path, SMALL)


def test_concurrent_runs_download_an_official_file_once(smoke_dataset_dir, tmp_path, monkeypatch):
    """Four runs of one domain asking for absent official files at once: one downloads (here a
    slow copy standing in for OGBench's server), the others wait and then find the files."""
    import threading
    import time

    calls = []

    def slow_download(names, directory):
        calls.append(names)
        time.sleep(0.5)  # long enough that the others arrive while it runs
        _copy(smoke_dataset_dir, Path(directory))

    monkeypatch.setattr(ogbench, "download_datasets", slow_download)
    (tmp_path / "official").mkdir()
    found, errors = [], []

    def run():
        try:
            found.append(resolve_files(TASK, "official", tmp_path / "official", SMALL))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(calls) == 1 and len(found) == 4
    assert {f.kind for f in found} == {"official"}


def test_shards_rotate_every_interval(smoke_dataset_dir, tmp_path, env):
    shard_dir = tmp_path / "shards"
    shard_dir.mkdir()
    shutil.copy(smoke_dataset_dir / "cube-single-play-v0.npz", shard_dir / "cube-single-play-v0-000.npz")
    with np.load(smoke_dataset_dir / "cube-single-play-v0.npz") as f:
        second = {k: f[k] for k in f.files}
    second["observations"] = second["observations"] + 1.0  # distinguishable shard
    np.savez_compressed(shard_dir / "cube-single-play-v0-001.npz", **second)
    shutil.copy(smoke_dataset_dir / "cube-single-play-v0-val.npz", shard_dir / "cube-single-play-v0-val.npz")

    files = resolve_files(TASK, "official", shard_dir, SMALL)
    assert [p.name for p in files.train] == ["cube-single-play-v0-000.npz", "cube-single-play-v0-001.npz"]
    assert files.provenance["shards"] == 2 and files.provenance["train_rows"] == 2 * 404
    data = ShardedData(files, TASK, env, interval=1000, sparse_reward=TASK.sparse_reward)
    assert [data.shard_index(s) for s in (0, 999, 1000, 1999, 2000)] == [0, 0, 1, 1, 0]
    first_obs = np.asarray(data.at_step(0).observations[0])
    np.testing.assert_allclose(np.asarray(data.at_step(1000).observations[0]), first_obs + 1.0)


def test_corrupt_file(smoke_dataset_dir, tmp_path, env):
    bad = _copy(smoke_dataset_dir, tmp_path / "d") / "cube-single-play-v0.npz"
    bad.write_bytes(b"this is not a zip file" * 100)
    with pytest.raises(BenchError, match=rf"{bad}.*corrupt"):
        load_split(bad, TASK, env)


def test_truncated_file(smoke_dataset_dir, tmp_path, env):
    bad = _copy(smoke_dataset_dir, tmp_path / "d") / "cube-single-play-v0.npz"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(BenchError, match=rf"{bad}.*(corrupt|truncated)"):
        load_split(bad, TASK, env)


def test_missing_file(tmp_path, env):
    with pytest.raises(BenchError, match="does not exist"):
        load_split(tmp_path / "cube-single-play-v0.npz", TASK, env)


def test_missing_keys(tmp_path, env):
    path = tmp_path / "cube-single-play-v0.npz"
    np.savez(path, observations=np.zeros((10, 28), np.float32), actions=np.zeros((10, 5), np.float32))
    with pytest.raises(BenchError, match="lacks key.*terminals, qpos, qvel"):
        load_split(path, TASK, env)


def _rewrite(src, dst, **changes):
    with np.load(src) as f:
        arrays = {k: f[k] for k in f.files}
    arrays.update({k: fn(arrays[k]) for k, fn in changes.items()})
    np.savez_compressed(dst, **arrays)
    return dst


def test_wrong_shapes(smoke_dataset_dir, tmp_path, env):
    path = _rewrite(smoke_dataset_dir / "cube-single-play-v0.npz", tmp_path / "cube-single-play-v0.npz",
                    observations=lambda o: o[:, :-3])
    with pytest.raises(BenchError, match=r"'observations' has shape \(400, 25\), expected \(400, 28\)"):
        load_split(path, TASK, env)


def test_nan_values(smoke_dataset_dir, tmp_path, env):
    def poison(a):
        a = a.copy()
        a[7, 2] = np.nan
        return a

    path = _rewrite(smoke_dataset_dir / "cube-single-play-v0.npz", tmp_path / "cube-single-play-v0.npz",
                    actions=poison)
    with pytest.raises(BenchError, match=r"'actions' holds 1 NaN/inf"):
        load_split(path, TASK, env)


def test_corrupt_regenerated_cache_is_detected(bench_cache):
    files = resolve_files(TASK, "regenerated", None, SMALL)
    original = files.train[0].read_bytes()
    try:
        files.train[0].write_bytes(original[:-10] + b"0123456789")
        with pytest.raises(BenchError, match="corrupt.*delete"):
            resolve_files(TASK, "regenerated", None, SMALL)
    finally:
        files.train[0].write_bytes(original)


def test_a_cache_filled_under_other_versions_is_never_reused(bench_cache, monkeypatch):
    """Regenerated arrays depend on numpy's version (bench.data.datagen): a cache filled under one
    lock is not used under another, and files whose manifest names other versions are refused."""
    import json

    from bench.data import datagen

    here = resolve_files(TASK, "regenerated", None, SMALL)
    assert here.provenance["manifest"]["versions"] == datagen.versions()
    other = {**datagen.versions(), "numpy": "0.0.1"}
    monkeypatch.setattr(datagen, "versions", lambda: other)
    there = resolve_files(TASK, "regenerated", None, SMALL)  # regenerated into its own directory
    assert there.train[0].parent != here.train[0].parent
    assert there.provenance["manifest"]["versions"] == other
    manifest = datagen.manifest_path(there.train[0].parent, TASK.dataset)
    record = {**json.loads(manifest.read_text()), "versions": datagen.versions() | {"numpy": "9"}}
    manifest.write_text(json.dumps({**record, "binding": datagen.binding(record)}))  # a genuine one, other versions
    with pytest.raises(BenchError, match=r"regenerated under .*numpy.*delete .* and regenerate"):
        resolve_files(TASK, "regenerated", None, SMALL)


def test_antmaze_cannot_be_regenerated(bench_cache):
    with pytest.raises(BenchError, match="cannot be regenerated"):
        resolve_files(resolve_task("al-task1"), "regenerated", None, SMALL)


def test_a_runs_data_identity_is_checked_against_the_files_now(smoke_dataset_dir, regenerated_dataset_dir, tmp_path):
    """Part of a run's identity (bench.training.pipeline.data_differences): the regenerated manifest,
    or the sha256 of each official file, recorded in data.json against the files now."""
    import json

    from bench.data.datagen import manifest_path
    from bench.training.pipeline import data_differences

    regenerated = resolve_files(TASK, "regenerated", regenerated_dataset_dir, SMALL).provenance
    assert data_differences(json.loads(json.dumps(regenerated))) == []
    official_dir = _copy(smoke_dataset_dir, tmp_path / "official")
    official = resolve_files(TASK, "official", official_dir, SMALL).provenance
    assert data_differences(official) == []
    with np.load(official_dir / "cube-single-play-v0.npz") as f:
        changed = {k: f[k] for k in f.files}
    changed["observations"] = changed["observations"] + 1.0
    np.savez_compressed(official_dir / "cube-single-play-v0.npz", **changed)
    assert data_differences(official) == [
        f"data: cube-single-play-v0.npz in {official_dir} changed since the run (sha256)"]
    manifest = manifest_path(regenerated_dataset_dir, "cube-single-play-v0")
    record = json.loads(manifest.read_text())
    record["files"]["cube-single-play-v0.npz"]["sha256"] = "0" * 64
    stale = {**regenerated, "manifest": {**regenerated["manifest"], "files": record["files"]}}
    assert data_differences(stale) == [f"data: the regenerated files in {regenerated_dataset_dir} changed since the run"]


# ---- issue 29: a dataset the user named is used or refused; provenance is checked ---------------
def test_a_named_dataset_dir_missing_its_validation_file_is_refused(smoke_dataset_dir, tmp_path):
    import shutil

    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(smoke_dataset_dir / f"{TASK.dataset}.npz", partial)  # its -val.npz left out
    with pytest.raises(BenchError, match=rf"{TASK.dataset}-val.npz is missing"):
        resolve_files(TASK, "auto", partial, SMALL)
    from bench.training.pipeline import RunConfig, train

    with pytest.raises(BenchError, match="-val.npz is missing"):  # through `train`: nothing trained, nothing written
        train(RunConfig("bc", TASK.name, profile="smoke", dataset_dir=partial, out=tmp_path / "run"), progress=False)
    assert not (tmp_path / "run").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BenchError, match="holds no files of"):  # named, empty: refused, not regenerated
        resolve_files(TASK, "auto", empty, SMALL)


@pytest.mark.parametrize(("field", "value"), [("episodes", 400), ("seed", 7)])
def test_an_edited_manifest_is_refused(regenerated_dataset_dir, tmp_path, field, value):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(regenerated_dataset_dir, copy)
    path = copy / f"{TASK.dataset}.manifest.json"
    manifest = json.loads(path.read_text())
    manifest[field] = value  # the file hashes untouched
    path.write_text(json.dumps(manifest))
    with pytest.raises(BenchError, match="was changed after it was written"):
        resolve_files(TASK, "auto", copy, SMALL)


def test_a_manifest_whose_episodes_disagree_with_the_rows_is_refused(regenerated_dataset_dir, tmp_path):
    """Rebound by hand (its binding recomputed), a manifest still cannot claim episodes the files do not hold."""
    import shutil

    from bench.data import datagen

    copy = tmp_path / "copy"
    shutil.copytree(regenerated_dataset_dir, copy)
    path = copy / f"{TASK.dataset}.manifest.json"
    manifest = json.loads(path.read_text())
    manifest["episodes"] += 1
    manifest["binding"] = datagen.binding(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(BenchError, match="rows but its manifest reports"):
        resolve_files(TASK, "auto", copy, SMALL)


def test_stand_in_shards_of_a_100_shard_layout_are_regenerated_and_a_switch_costs_one_load(tmp_path, env):
    """The paper-smoke stand-ins (bench.data.stand_in): the protocol's shard folder, read by the real
    loader, labelled regenerated by their manifest; training over it holds one shard at a time and
    loads each shard once per switch."""
    from bench.data import stand_in
    from bench.data.loading import LargeDataset
    from bench.training.pipeline import ShardedData

    spec = LargeDataset("cube-single-play-100m-v0", "cube-single-play-v0", 100, "stand-in for the test")
    stand_in.write(TASK, tmp_path, large=spec, episodes_per_file=1, episode_length=20)
    files = resolve_files(TASK, "auto", tmp_path / spec.folder, SMALL)
    assert files.kind == "regenerated" and len(files.train) == 100
    data = ShardedData(files, TASK, env, interval=10, sparse_reward=False)
    for step in range(0, 1000, 5):
        data.at_step(step)
    assert data.loads == 100  # each of the 100 switches one load, never a shard twice in a row
    data.at_step(995)
    assert data.loads == 100
    data.at_step(1000)  # back to shard 0: one more load
    assert data.loads == 101
