"""The command line: help, and one-line errors without tracebacks for bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _bench(*args):
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", ["train", "datagen"])
def test_help_explains_every_option(command):
    result = _bench(command, "--help")
    assert result.returncode == 0
    for option in {"train": ["--method", "--task", "--profile", "--seed", "--dataset-dir", "--source", "--out"],
                   "datagen": ["--episodes", "--seed", "--out"]}[command]:
        assert option in result.stdout


def test_methods_lists_every_method_name():
    result = _bench("methods")
    assert result.returncode == 0
    listed = {line.split()[0] for line in result.stdout.splitlines()}
    assert listed == set("bc fql dsrl ifql cgql cgql-m cgql-l qam qam-e qam-f bam trqam rebrac fbrac fawac fedit "
                         "qsm dac rlpd".split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--method", "fqll", "--task", "c2-task1"], "unknown method 'fqll' (did you mean: fql"),
        (["train", "--method", "bc", "--task", "cube-dubble-play-singletask-task1-v0"],
         "unknown task 'cube-dubble-play-singletask-task1-v0' (did you mean: cube-double-play-singletask-task1-v0"),
        (["datagen", "cube-tripple-play-v0", "--episodes", "1"], "unknown dataset 'cube-tripple-play-v0' (did you mean: cube-triple-play"),
        (["train", "--method", "rlpd", "--task", "c2-task1"], "method 'rlpd' is online-only: pass --online-steps N"),
        (["train", "--method", "bc", "--task", "c2-task1", "--online-steps", "100"], "method 'bc' has no online phase"),
        (["train", "--method", "fql", "--task", "c2-task1", "--online-steps", "-5"], "--online-steps must be 0"),
        (["train", "--method", "trqam", "--task", "c2-task1", "--set", "kl_bugdet=2"], "does not name a field of TRQAMConfig"),
    ],
)
def test_bad_names_give_one_line_errors(args, message):
    result = _bench(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_dataset_dir_is_a_clear_error(tmp_path):
    result = _bench("train", "--method", "bc", "--task", "c2-task1", "--source", "official",
                    "--dataset-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_paper_profile_refuses_the_standard_set_in_place_of_the_10m_shards(tmp_path):
    """Cube-triple's paper protocol trains on 10 shards of the 100M release: a directory holding
    only the standard cube-triple set stops the main job with one line, before any training."""
    for name in ("cube-triple-play-v0.npz", "cube-triple-play-v0-val.npz"):
        (tmp_path / name).write_bytes(b"standard set")
    results = tmp_path / "results"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "reproduce", "--profile", "paper", "--tasks", "c3-task1", "--methods",
         "trqam", "--seeds", "0", "--dataset-dir", str(tmp_path), "--no-studies", "--no-closed-form"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TRQAM_BENCH_RESULTS": str(results)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "cube-triple-play-v0-000.npz .. cube-triple-play-v0-009.npz" in lines[0]
    assert str(tmp_path / "cube-triple-play-10m-v0") in lines[0]
    assert not results.exists() or not any(results.rglob("config.json"))  # nothing trained


def test_qam_paper_dry_run_lists_the_qam_papers_matrix(tmp_path):
    env = {**os.environ, "TRQAM_BENCH_RESULTS": str(tmp_path)}
    command = [sys.executable, "-m", "bench", "reproduce", "--profile", "qam-paper", "--dry-run"]
    short = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert short.returncode == 0, short.stderr
    groups = [line for line in short.stdout.splitlines() if " runs (over " in line]
    assert len(groups) == 17 * 10 and all("60 runs (over 5 tasks, 12 seeds): 60 train" in g for g in groups)
    result = subprocess.run([*command, "--verbose"], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    runs = [line.split() for line in result.stdout.splitlines() if "-> " in line]
    assert len(runs) == 17 * 50 * 12
    assert {r[0] for r in runs} == set("qam qam-e qam-f bam fql dsrl ifql cgql cgql-m cgql-l rebrac fbrac fawac fedit "
                                       "qsm dac rlpd".split())
    assert sorted({int(r[3]) for r in runs}) == [10001 * k for k in range(1, 13)]
    assert all(line.endswith("-> train") for line in result.stdout.splitlines() if "-> " in line)  # empty store
    # Without the 100M shards of cube-quadruple and puzzle-4x4, the dry run says so per task.
    missing = [line for line in result.stdout.splitlines() if line.startswith("data ") and "100m-v0" in line]
    assert len(missing) == 10 and all("are missing" in line for line in missing)
    assert f"{17 * 50 * 12} runs: {17 * 50 * 12} to train, 0 kept" in result.stdout


def test_qam_paper_profile_is_the_qam_protocol():
    from bench.config.profiles import get_profile
    from bench.tasks import resolve_task

    profile = get_profile("qam-paper")
    assert profile.init == "scratch" and profile.hidden_sizes == (512,) * 4 and profile.discount == 0.99
    assert profile.offline_steps == 1_000_000 and profile.online_steps == 500_000
    assert profile.for_task(resolve_task("ag-task1")).discount == 0.995
    assert profile.for_task(resolve_task("hm-task1")).discount == 0.995
    assert profile.for_task(resolve_task("c4-task1")).hidden_sizes == (512,) * 4


def test_from_scratch_actor_fast_is_its_own_network():
    """The QAM paper's reference initialises actor_fast independently; only the targets are tied."""
    import jax
    import numpy as np

    from parity.setting import ONE_UPDATE, make_batches, to_ours
    from trqam.qam import QAM, QAMConfig

    agent = QAM.create(to_ours(make_batches(ONE_UPDATE)[0]), QAMConfig(hidden_sizes=(16,), num_critics=2),
                       jax.random.key(0))
    slow, fast, target = (np.asarray(m.mlp.layers[0].weight) for m in
                          (agent.nets["actor_slow"], agent.nets["actor_fast"], agent.targets["actor_slow"]))
    assert not np.allclose(slow, fast)
    np.testing.assert_array_equal(slow, target)


# ---- validation before any training (one line naming the value and what is allowed) -------
@pytest.mark.parametrize(
    ("overrides", "seed", "message"),
    [
        ((), -1, "--seed -1 is not allowed: seeds are integers from 0"),
        (("kl_budget=-1",), 0, "TRQAMConfig.kl_budget = -1.0 is not allowed: it must be a number > 0"),
        (("num_critics=0",), 0, "TRQAMConfig.num_critics = 0 is not allowed: it must be an integer >= 1"),
        (("lam_min=-0.1",), 0, "DualConfig.lam_min = -0.1 is not allowed"),
        (("chunk_len=3",), 0, "chunk_len is the task's action-chunk length"),
        (("discount=0.9",), 0, "discount is the profile's"),
        (("kl_budget=inf",), 0, "kl_budget must be a finite number"),
        (("kl_budget=1e400",), 0, "kl_budget must be a finite number"),
        (("learning_rate=inf",), 0, "learning_rate must be a finite number"),
        (("learning_rate=nan",), 0, "learning_rate must be a finite number"),
        (("kl_budget=0.5", "kl_budget=1"), 0, "--set names kl_budget twice"),
        (("inv_temp=0.5", "kl_budget=0.005"), 0, None),  # fractional values where the table holds integers
    ],
)
def test_bad_values_are_refused_before_anything_is_written(tmp_path, overrides, seed, message):
    from bench.errors import BenchError
    from bench.training.pipeline import Run, RunConfig

    config = RunConfig(method="trqam", task="c2-task1", profile="smoke", seed=seed, overrides=overrides,
                       out=tmp_path / "run")
    if message is None:
        run = Run(config)
        assert run.phases[-1].config.inv_temp == 0.5 and run.phases[-1].config.kl_budget == 0.005
        return
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace("+", r"\+")):
        Run(config)
    assert not (tmp_path / "run").exists()


def test_every_method_default_config_passes_validation():
    from bench.config.methods import METHODS, check_config
    from bench.config.profiles import PROFILES
    from bench.tasks import DOMAINS, resolve_task

    for profile in PROFILES.values():
        for domain in DOMAINS:
            task = resolve_task(f"{domain.abbr}-task1")
            for method in METHODS.values():
                check_config(method.make_config(profile.for_task(task), task))


@pytest.mark.slow
def test_a_damaged_compressed_dataset_is_one_line_before_any_record(smoke_dataset_dir, tmp_path):
    """Random bytes inside a member of the compressed npz (a valid zip directory, a broken
    deflate stream): one line naming the file, and no run records written."""
    import shutil
    import zipfile

    data = tmp_path / "data"
    data.mkdir()
    for name in ("cube-single-play-v0.npz", "cube-single-play-v0-val.npz"):
        shutil.copy(smoke_dataset_dir / name, data / name)
    path = data / "cube-single-play-v0.npz"
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("observations.npy")
    raw = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    raw[start:start + 256] = os.urandom(256)
    path.write_bytes(bytes(raw))
    result = _bench("train", "--method", "bc", "--task", "cube-single-play-singletask-task1-v0", "--profile", "smoke",
                    "--source", "official", "--dataset-dir", str(data), "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    assert str(path) in result.stderr and "Traceback" not in result.stderr
    assert not any((tmp_path / "run").glob("*.json"))


def test_nox_sessions_build_from_the_running_python_and_refuse_an_unsupported_one(monkeypatch):
    """Every session uses the interpreter nox runs on (so 3.11, 3.12 and 3.13 all work) and
    fails with one line, rather than being skipped, on a Python outside 3.11 to 3.13."""
    import ast
    import importlib.util
    import types
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "noxfile.py"
    tree = ast.parse(path.read_text())
    sessions = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.decorator_list]
    assert len(sessions) >= 6
    for function in sessions:
        (decorator,) = function.decorator_list
        keywords = [ast.unparse(k) for k in decorator.keywords]
        assert "python=PYTHON" in keywords, function.name  # a session may also name itself (paper-smoke)
        assert all(k == "python=PYTHON" or k.startswith("name=") for k in keywords), function.name
        assert "_check_python(session)" in ast.unparse(function), function.name

    stub = types.ModuleType("nox")
    stub.options = types.SimpleNamespace()
    stub.session = lambda **kwargs: (lambda f: f)
    stub.Session = object
    monkeypatch.setitem(sys.modules, "nox", stub)
    spec = importlib.util.spec_from_file_location("noxfile_under_test", path)
    noxfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noxfile)
    assert noxfile.PYTHON is None

    class Session:
        def error(self, message):
            raise RuntimeError(message)

    for version in ((3, 11, 0), (3, 12, 1), (3, 13, 0)):
        monkeypatch.setattr(sys, "version_info", version)
        noxfile._check_python(Session())  # accepted
        assert noxfile.constraints_file().exists()  # and installed from its own lock file
    monkeypatch.setattr(sys, "version_info", (3, 10, 9))
    with pytest.raises(RuntimeError, match="is not supported: run nox from Python 3.11 to 3.13"):
        noxfile._check_python(Session())


def _lock(version: str) -> dict[str, str]:
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "requirements" / f"constraints-py{version}.txt"
    pins = [line.split("==") for line in path.read_text().splitlines() if "==" in line]
    return {name.lower().replace("_", "-"): pin for name, pin in pins}


@pytest.mark.parametrize("version", ["3.11", "3.12", "3.13"])
def test_every_lock_pins_each_dependency_at_or_above_its_declared_floor(version):
    """pyproject's floors are the versions tested: each lock file pins every dependency the
    package declares (core and test extras), at a version its floor admits."""
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    lock = _lock(version)
    for text in project["dependencies"] + project["optional-dependencies"]["test"]:
        requirement = Requirement(text)
        name = requirement.name.lower().replace("_", "-")
        assert name in lock, f"{name} is not pinned in constraints-py{version}.txt"
        assert requirement.specifier.contains(lock[name], prereleases=True), (name, lock[name], str(requirement))


@pytest.mark.skipif("NOX_CURRENT_SESSION" not in os.environ, reason="only a nox session installs from the lock")
def test_the_nox_session_runs_the_locked_versions():
    from importlib.metadata import version

    lock = _lock(f"{sys.version_info[0]}.{sys.version_info[1]}")
    for name in ("jax", "jaxlib", "equinox", "optax", "numpy", "ogbench", "mujoco", "scipy", "matplotlib"):
        assert version(name) == lock[name], name


# ---- issue 29: one line where one line is promised ----------------------------------------------
def test_a_list_flag_given_twice_is_refused():
    result = _bench("train", "--method", "trqam", "--task", "c2-task1", "--set", "kl_budget=0.5", "--set", "kl_budget=1")
    assert result.returncode == 2 and "--set was given 2 times" in result.stderr and "Traceback" not in result.stderr


def test_a_list_flag_with_no_value_is_refused():
    for command in (["train", "--method", "bc", "--task", "c2-task1", "--seeds"],
                    ["reproduce", "--profile", "smoke", "--seeds"]):
        result = _bench(*command)
        assert result.returncode == 2 and "--seeds was given no value" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("errno_name", "advice"), [("EROFS", "read-only"), ("ENOSPC", "the disk is full")])
def test_a_file_system_that_refuses_writes_is_one_line(bench_cache, tmp_path, monkeypatch, capsys, errno_name,
                                                       advice):
    """A read-only store or a full disk while a run writes its records: one line naming the file,
    what happened and what to do (the probes of issue 29 mount a real read-only and a real full
    file system; here the refusal comes from the write itself)."""
    import errno

    from bench import cli
    from bench.training import runstore

    code = getattr(errno, errno_name)

    def refuse(fd):
        raise OSError(code, os.strerror(code), str(tmp_path / "run" / "config.json"))

    monkeypatch.setattr(runstore.os, "fsync", refuse)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--method", "bc", "--task", "cube-single-play-singletask-task1-v0", "--profile", "smoke",
                  "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "Traceback" not in err, err
    last = err.splitlines()[-1]  # after the data's progress lines: the one line that says what went wrong
    assert last.startswith(f"error: cannot use {tmp_path / 'run' / 'config.json'}") and advice in last, err
    assert err.count("error:") == 1
