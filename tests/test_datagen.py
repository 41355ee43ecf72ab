"""Tests of bench.data.datagen: regenerated OGBench datasets in the official format."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from bench import provenance
from bench.data import datagen
from bench.errors import BenchError

LENGTH = 100  # transitions per episode, short to keep the tests fast
EPISODES = 2


def _load(singletask: str, dataset_dir: Path):
    import ogbench

    return ogbench.make_env_and_datasets(singletask, dataset_dir=str(dataset_dir))


@pytest.fixture(scope="module")
def cube_single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cube-single-play regenerated with 2 + 1 episodes of 200 steps."""
    out = tmp_path_factory.mktemp("cube_single")
    datagen.generate(
        "cube-single-play-v0",
        episodes=2,
        seed=3,
        out_dir=out,
        episode_length=200,
        workers=1,
        progress=False,
    )
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    "singletask",
    [
        "cube-single-play-singletask-task1-v0",
        "cube-double-play-singletask-task2-v0",
        "scene-play-singletask-task1-v0",
        "puzzle-3x3-play-singletask-task1-v0",
        "pointmaze-medium-navigate-singletask-task1-v0",
        "cube-single-noisy-singletask-task1-v0",
    ],
)
def test_loads_through_ogbench(singletask: str, tmp_path: Path) -> None:
    dataset = singletask.split("-singletask")[0] + "-v0"
    path = datagen.generate(
        dataset,
        episodes=EPISODES,
        seed=0,
        out_dir=tmp_path,
        episode_length=LENGTH,
        workers=1,
        progress=False,
    )
    assert path == tmp_path / f"{dataset}.npz"
    assert (tmp_path / f"{dataset}-val.npz").exists()

    raw = np.load(path)
    expected = {"observations", "actions", "terminals", "qpos", "qvel"}
    if singletask.startswith(("scene", "puzzle")):
        expected.add("button_states")
        assert raw["button_states"].dtype == np.int64
    assert set(raw.files) == expected
    assert raw["observations"].dtype == np.float32 and raw["terminals"].dtype == bool
    assert len(raw["terminals"]) == EPISODES * (LENGTH + 1)

    env, train, val = _load(singletask, tmp_path)
    assert train["observations"].shape == (EPISODES * LENGTH, *env.observation_space.shape)
    assert train["actions"].shape == (EPISODES * LENGTH, *env.action_space.shape)
    assert len(val["observations"]) == 1 * LENGTH  # 10% of 2 episodes, at least one
    for key in ("next_observations", "rewards", "masks", "terminals"):
        assert len(train[key]) == EPISODES * LENGTH
    assert np.all(np.abs(train["actions"]) <= 1.0)


@pytest.mark.slow
def test_seeded_and_independent_of_workers(tmp_path: Path) -> None:
    kwargs = dict(episodes=3, val_episodes=1, episode_length=60, progress=False)

    def arrays(seed: int, workers: int) -> dict[str, np.ndarray]:
        out = tmp_path / f"s{seed}w{workers}"
        datagen.generate("cube-single-play-v0", seed=seed, out_dir=out, workers=workers, **kwargs)
        return {
            split: dict(np.load(out / f"cube-single-play-v0{split}.npz")) for split in ("", "-val")
        }

    one, two, other = arrays(7, 1), arrays(7, 2), arrays(8, 1)
    for split in one:
        for key in one[split]:
            np.testing.assert_array_equal(one[split][key], two[split][key])
    assert not np.array_equal(one[""]["observations"], other[""]["observations"])


@pytest.mark.slow
def test_manifest(cube_single: Path) -> None:
    manifest = datagen.read_manifest(cube_single, "cube-single-play-v0")
    assert manifest is not None
    assert manifest["kind"] == "regenerated"
    assert manifest["dataset"] == "cube-single-play-v0"
    assert (manifest["episodes"], manifest["val_episodes"], manifest["seed"]) == (2, 1, 3)
    assert manifest["recipe"]["oracle"] == "plan"
    assert set(manifest["versions"]) == {"ogbench", "mujoco", "numpy"}
    assert manifest["processor"] == provenance.hardware()["cpu"]  # the bytes depend on it too
    for name in ("cube-single-play-v0.npz", "cube-single-play-v0-val.npz"):
        data = (cube_single / name).read_bytes()
        assert manifest["files"][name] == {
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
    assert datagen.read_manifest(cube_single, "cube-double-play-v0") is None


@pytest.mark.slow
def test_oracle_moves_the_cube(cube_single: Path) -> None:
    raw = np.load(cube_single / "cube-single-play-v0.npz")
    terminals = raw["terminals"]
    assert np.flatnonzero(terminals).tolist() == [200, 401]
    cube_xyz = raw["qpos"][:201, 14:17]
    assert np.linalg.norm(cube_xyz - cube_xyz[0], axis=-1).max() > 0.02
    assert np.all(np.abs(raw["actions"]) <= 1.0)
    assert raw["actions"].std(axis=0).min() > 0.0


@pytest.mark.slow
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_mid_generation_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[BaseException]
) -> None:
    real = datagen._ManipCollector.episode
    calls = []

    def flaky(self, seed: int, split_id: int, index: int) -> dict[str, np.ndarray]:
        calls.append(index)
        if len(calls) > 2:
            raise error("boom")
        return real(self, seed, split_id, index)

    monkeypatch.setattr(datagen._ManipCollector, "episode", flaky)
    with pytest.raises(error):
        datagen.generate(
            "cube-single-play-v0",
            episodes=4,
            seed=0,
            out_dir=tmp_path,
            episode_length=20,
            workers=1,
            progress=False,
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_interrupted_write_leaves_no_partial_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = datagen._write_npz

    def interrupted(directory, final_name, arrays, temps):
        path = real(directory, final_name, arrays, temps)
        if final_name.endswith("-val.npz"):
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(datagen, "_write_npz", interrupted)
    with pytest.raises(KeyboardInterrupt):
        datagen.generate(
            "pointmaze-medium-navigate-v0",
            episodes=2,
            seed=0,
            out_dir=tmp_path,
            episode_length=20,
            workers=1,
            progress=False,
        )
    assert list(tmp_path.iterdir()) == []


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="unknown dataset"):
        datagen.generate("cube-dubble-play-v0", episodes=1, seed=0, out_dir=tmp_path)
    with pytest.raises(BenchError, match="expert"):
        datagen.generate("antmaze-large-navigate-v0", episodes=1, seed=0, out_dir=tmp_path)
    with pytest.raises(BenchError, match="episodes must be at least 1"):
        datagen.generate("cube-double-play-v0", episodes=0, seed=0, out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_regenerable() -> None:
    assert datagen.regenerable("cube-double-play-v0")
    assert datagen.regenerable("puzzle-4x4-noisy")
    assert datagen.regenerable("pointmaze-giant-navigate-v0")
    assert not datagen.regenerable("humanoidmaze-medium-navigate-v0")
    assert not datagen.regenerable("antsoccer-arena-navigate-v0")
    assert not datagen.regenerable("pointmaze-medium-stitch-v0")
    with pytest.raises(BenchError):
        datagen.regenerable("no-such-dataset")
