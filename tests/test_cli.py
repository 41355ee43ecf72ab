"""The command line: help, and one-line errors without tracebacks for bad input."""

from __future__ import annotations

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
