"""The main job's machinery on the smoke profile: matrix narrowing, a killed and rerun sweep,
the Ray backend on a local cluster, the regression gate, the result-store index and the figures."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.config.profiles import get_profile
from bench.errors import BenchError
from bench.training.sweep import plan, programs, waves

REPO = Path(__file__).resolve().parent.parent
TASK = "cube-single-play-singletask-task1-v0"


def test_paper_profile_narrowed_by_domain():
    runs = plan(get_profile("paper"), domains=["scene", "p33"])
    main = [r for r in runs if not r.overrides]
    assert {r.task for r in main} == {f"{d}-singletask-task{k}-v0" for d in ("scene-play", "puzzle-3x3-play")
                                      for k in range(1, 6)}
    assert {r.method for r in main} == {"fql", "dsrl", "ifql", "cgql-l", "qam", "qam-e", "trqam"}
    assert {r.seed for r in main} == set(range(8)) and len(main) == 7 * 10 * 8
    study = [r for r in runs if r.overrides]  # the budget study: task 1 of each chosen domain
    assert {r.task for r in study} == {"scene-play-singletask-task1-v0", "puzzle-3x3-play-singletask-task1-v0"}
    assert {r.overrides for r in study} == {(f"kl_budget={b:g}",) for b in (0.5, 1.5, 2, 2.5, 3, 3.5, 4)}
    assert all(r.source is None and get_profile("paper").source == "official" for r in runs)


def test_narrowing_by_methods_tasks_and_seeds():
    runs = plan(get_profile("quick"), methods=["qam", "bc"], tasks=["c2-task3"], seeds=[5])
    assert [(r.method, r.task, r.seed) for r in runs] == [
        ("qam", "cube-double-play-singletask-task3-v0", 5), ("bc", "cube-double-play-singletask-task3-v0", 5)]
    first, rest = waves(runs)
    assert [r.method for r in first] == ["bc"] and [r.method for r in rest] == ["qam"]  # BC pretrains once
    quick = plan(get_profile("quick"))
    assert {r.method for r in quick} >= {"bc", "trqam", "qam", "qam-e", "fql", "dsrl"}
    assert len({r.seed for r in quick}) >= 2
    # the KL-success study: QAM across beta, TRQAM across budgets, on the headline task and seeds
    studied = {(r.method, r.overrides[0].split("=")[0]) for r in quick if r.overrides}
    assert studied == {("qam", "inv_temp"), ("trqam", "kl_budget")}
    assert {(r.task, r.seed) for r in quick if r.overrides} == {(r.task, r.seed) for r in quick if r.method == "bc"}


def test_runs_differing_only_in_seed_share_a_program():
    runs = plan(get_profile("quick"))
    jobs = programs(runs, seeds_per_program=8)
    assert sum(len(j) for j in jobs) == len(runs) == 26  # 6 methods x 2 seeds + 7 study settings x 2 seeds
    assert all(len({(r.method, r.task, r.overrides) for r in job}) == 1 for job in jobs)
    assert sorted(len(j) for j in jobs) == [2] * 13
    assert [len(j) for j in programs(runs, seeds_per_program=1)] == [1] * 26
    online = plan(get_profile("quick"), methods=["qam"], tasks=["cube-single-play-singletask-task1-v0"],
                  online_steps=100, studies=False)
    assert [len(j) for j in programs(online, seeds_per_program=8)] == [2]  # each seed steps its own environment


def test_unknown_names_are_clear_errors():
    with pytest.raises(BenchError, match="unknown domain 'scen'.*did you mean: scene"):
        plan(get_profile("paper"), domains=["scen"])
    with pytest.raises(BenchError, match="unknown method 'trqm'"):
        plan(get_profile("quick"), methods=["trqm"])
    with pytest.raises(BenchError, match="none of the tasks of profile 'quick' is in domain"):
        plan(get_profile("quick"), domains=["c2"])


def _env(bench_cache: Path, results: Path) -> dict[str, str]:
    return {**os.environ, "TRQAM_BENCH_CACHE": str(bench_cache), "TRQAM_BENCH_RESULTS": str(results),
            "PYTHONPATH": str(REPO)}


def _reproduce(args: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench", "reproduce", "--profile", "smoke", "--no-closed-form",
                             *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **kwargs)


@pytest.mark.slow
def test_killed_sweep_rerun_finishes_the_rest_without_redoing_finished_runs(bench_cache, tmp_path):
    results, reports = tmp_path / "results", tmp_path / "reports"
    env = _env(bench_cache, results)
    args = ["--methods", "bc", "fql", "--seeds", "0", "1", "--workers", "1", "--reports", str(reports)]
    runs_root = results / "runs" / "smoke"
    process = _reproduce(args, env)
    deadline = time.time() + 600
    while len(list(runs_root.glob("*/*/*/summary.json"))) < 2 and time.time() < deadline:
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.5)
    time.sleep(4)  # the third run is under way
    os.killpg(process.pid, signal.SIGKILL)  # the whole process group: the sweep and its run
    process.wait()
    finished = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in runs_root.glob("*/*/*/summary.json")}
    assert 2 <= len(finished) < 4
    rerun = _reproduce(args, env)
    output, _ = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, output
    summaries = sorted(runs_root.glob("*/*/*/summary.json"))
    assert len(summaries) == 4
    for path, (content, mtime) in finished.items():  # kept as they were, not redone
        assert path.read_bytes() == content and path.stat().st_mtime_ns == mtime
    assert output.count("[skipped]") == len(finished) and output.count("[finished]") == 4 - len(finished)
    with open(results / "index.csv", newline="") as f:
        index = list(csv.DictReader(f))
    assert sorted((r["method"], r["seed"]) for r in index) == [("bc", "0"), ("bc", "1"), ("fql", "0"), ("fql", "1")]
    assert {r["data"] for r in index} == {"regenerated"}
    for seed in (0, 1):  # each method's two seeds were trained by one program
        assert "--seeds 0 1" in (runs_root / "fql" / TASK / f"seed{seed}" / "train.log").read_text()
        summary = json.loads((runs_root / "fql" / TASK / f"seed{seed}" / "summary.json").read_text())
        assert summary["seeds_in_program"] == [0, 1]
        # its start-up before the clock (imports, data, evaluation environments): what a sweep adds to wall_time_s
        assert 0 < summary["startup_s"] < 300
    record = json.loads(max((results / "sweeps").glob("smoke-*.json")).read_text())
    assert record["counts"] == {"finished": 4 - len(finished), "diverged": 0, "skipped": len(finished), "failed": 0}
    report = (reports / "REPORT.md").read_text()
    assert "regenerated" in report and "Wall time of this invocation" in report
    assert "[sweep] 4 of 4 runs ended" in output and "min elapsed, done" in output  # the sweep's progress line
    for name in ("main_table", "aggregate_metrics", "performance_profile", "probability_of_improvement",
                 "kl_success", "learning_curves", "kl_tracking", "kl_budget_sensitivity", "collapse"):
        assert (reports / "figures" / "smoke" / f"{name}.png").stat().st_size > 10_000
        assert (reports / "figures" / "smoke" / f"{name}.pdf").exists()
    assert (reports / "tables" / "smoke" / "tasks.csv").exists()


@pytest.mark.slow
def test_one_failed_run_does_not_stop_the_others_and_is_reported_with_its_log(bench_cache, tmp_path):
    import fcntl

    results = tmp_path / "results"
    # The fql run's directory is held by another process (this one): that run fails, alone.
    blocked = results / "runs" / "smoke" / "fql" / TASK / "seed0"
    blocked.mkdir(parents=True)
    with open(blocked / "run.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        process = _reproduce(["--methods", "bc", "fql", "--reports", str(tmp_path / "reports")],
                             _env(bench_cache, results))
        output, _ = process.communicate(timeout=900)
    assert process.returncode == 1, output
    assert (results / "runs" / "smoke" / "bc" / TASK / "seed0" / "summary.json").exists()
    assert "[failed] fql" in output and "in use by another process" in output
    assert str(blocked / "train.log") in output and "in use by another process" in (blocked / "train.log").read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _ray_head(env: dict, cwd: Path, *resources: str) -> Iterator[str]:
    """A local Ray cluster started by Ray's own CLI (a process of its own, which this JAX process
    never forks), stopped on leaving; yields its address."""
    ray_cli = Path(sys.executable).parent / "ray"
    port = _free_port()
    env = {**env, "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "disabled"}  # a local test cluster; otherwise a token left in ~/.ray decides
    subprocess.run([str(ray_cli), "start", "--head", f"--port={port}", *resources, "--include-dashboard=false",
                    "--disable-usage-stats"], check=True, env=env, cwd=cwd, capture_output=True)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(ray_cli), "stop", "--force"], env=env, capture_output=True)


@pytest.mark.slow
def test_ray_backend_runs_a_two_run_smoke_sweep_on_a_local_cluster(bench_cache, tmp_path):
    """Two programs (BC seeds 0 and 1, one process each, so neither waits for the other) on a
    local Ray cluster declaring one GPU, a quarter of it per program (issue 17): each run
    receives and records a JAX memory fraction of 0.9 x 0.25."""
    pytest.importorskip("ray")
    env = _env(bench_cache, tmp_path / "results")
    env["RAY_AUTH_MODE"] = "disabled"
    with _ray_head(env, tmp_path, "--num-cpus=2", "--num-gpus=1") as address:
        process = _reproduce(["--methods", "bc", "--seeds", "0", "1", "--seeds-per-program", "1", "--backend", "ray",
                              "--address", address, "--gpus-per-run", "0.25",
                              "--reports", str(tmp_path / "reports")], env)
        output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output
    record = json.loads(next((tmp_path / "results" / "sweeps").glob("smoke-*.json")).read_text())
    assert record["settings"]["backend"] == "ray" and record["counts"]["finished"] == 2
    for seed in (0, 1):
        run = tmp_path / "results" / "runs" / "smoke" / "bc" / TASK / f"seed{seed}"
        assert (run / "summary.json").exists()
        assert json.loads((run / "environment.json").read_text())["hardware"]["jax_memory_fraction"] == "0.225"


def _dies_once(runs, env=None, trackers=()):
    """A program whose first attempt loses its worker (as a preempted node does)."""
    from bench.training.sweep import Outcome

    marker = Path(runs[0].out) / "attempts"
    marker.parent.mkdir(parents=True, exist_ok=True)
    attempts = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(attempts))
    if attempts == 1:
        os._exit(1)  # the worker process dies; Ray sees a lost worker, not an exception
    return [Outcome(run_dir=str(r.out), method=r.method, task=r.task, seed=r.seed, overrides=(), status="finished",
                    seconds=0.0, host="test", log="") for r in runs]


@pytest.mark.slow
def test_ray_resubmits_a_program_whose_worker_died_as_often_as_retries_allows(tmp_path, monkeypatch):
    """On a cluster started by Ray's CLI, never by this process: Ray starting its node from a
    process with JAX loaded forks it (JAX warns that this can deadlock); the test fails if it does."""
    import jax

    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # no token written to ~/.ray by this local cluster
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    from bench.training.pipeline import RunConfig
    from bench.training.sweep import ProgramPlan, run_ray

    jax.devices()  # JAX's backend is up, so a fork from this process would warn
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import tests/
    outcomes = {}
    with _ray_head(dict(os.environ), tmp_path, "--num-cpus=1") as address, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for retries in (1, 0):
            run = RunConfig("bc", TASK, profile="smoke", out=tmp_path / f"retries{retries}")
            [outcome] = run_ray(ProgramPlan([[run]], {0: set()}), address, 1.0, 0.0, lambda o: None, retries=retries,
                                program=_dies_once)
            outcomes[retries] = (outcome, int((tmp_path / f"retries{retries}" / "attempts").read_text()))
    assert not [w for w in caught if "fork" in str(w.message)], [str(w.message) for w in caught]
    assert outcomes[1][0].status == "finished" and outcomes[1][1] == 2  # resubmitted once, then it ran
    assert outcomes[0][0].status == "failed" and outcomes[0][1] == 1  # no retry: reported as failed
    assert "Ray task failed" in outcomes[0][0].error


@pytest.mark.slow
def test_regression_gate_fails_when_a_band_is_above_the_measured_value(bench_cache, tmp_path):
    def gate(min_success: float) -> subprocess.CompletedProcess:
        bands = tmp_path / f"bands-{min_success}.csv"
        bands.write_text("method,task,profile,seed,min_success,measured,source\n"
                         f"bc,{TASK},smoke,0,{min_success},,test\n")
        return subprocess.run([sys.executable, "-m", "bench", "regress", "--bands", str(bands), "--work",
                               str(tmp_path / "work")], cwd=REPO, env=_env(bench_cache, tmp_path / "results"),
                              capture_output=True, text=True, timeout=900)

    above = gate(1.01)  # no success rate reaches it
    assert above.returncode == 1, above.stdout + above.stderr
    assert "| bc |  | " + TASK + " | smoke | 0 |" in above.stdout and "REGRESSED" in above.stdout
    assert "regression gate FAILED" in above.stderr
    at_zero = gate(0.0)
    assert at_zero.returncode == 0, at_zero.stdout + at_zero.stderr
    assert "| ok |" in at_zero.stdout


def test_committed_bands_pin_a_matrix_that_can_fail():
    from bench.reporting.regress import BANDS, band_from, read_bands

    assert BANDS == REPO / "results" / "regress" / "bands.csv"  # configuration: wherever the store lives
    bands = read_bands(BANDS)
    assert {b.method for b in bands} >= {"qam", "trqam"}  # the headline methods both gated
    for band in bands:
        assert 0.0 < band.min_success < 1.0, band  # a band at 0 could never fail
        assert band.min_success == pytest.approx(band_from(float(band.measured)), abs=0.005)


def test_reproduce_schedule_flags_reach_every_program_command():
    from bench.training.pipeline import RunConfig
    from bench.training.sweep import train_command

    runs = plan(get_profile("smoke"), schedule={"offline_steps": 40, "eval_every": 20, "eval_episodes": None,
                                                "log_every": None, "batch_size": 8})
    assert all(r.offline_steps == 40 and r.batch_size == 8 and r.eval_episodes is None for r in runs)
    for program in programs(runs, seeds_per_program=8):
        command = train_command(program)
        assert command[command.index("--offline-steps") + 1] == "40"
        assert command[command.index("--eval-interval") + 1] == "20"
        assert command[command.index("--batch-size") + 1] == "8" and "--eval-episodes" not in command
    assert RunConfig("fql", "c2-task1", batch_size=8).run_dir().name == "seed0-batch_size=8"
    # reproduce --wandb --tensorboard: every program mirrors its logs; without them none does
    assert train_command(runs[:1], ("wandb", "tensorboard"))[-2:] == ["--wandb", "--tensorboard"]
    assert "--wandb" not in train_command(runs[:1])


@pytest.mark.slow
def test_a_fresh_clone_trains_its_matrix_beside_the_committed_runs(bench_cache, tmp_path):
    """Runs committed from another result store are what a fresh clone's numbers are set
    beside, not its answer: the dry run says so, reproduce trains them again (keeping the old
    ones under results/replaced/), the report sets new against committed, and a second dry run
    finds them finished here."""
    import shutil

    committed, clone = tmp_path / "committed", tmp_path / "clone"
    args = ["--methods", "bc", "--seeds", "0", "--workers", "1"]
    first = _reproduce([*args, "--reports", str(tmp_path / "reports-committed")], _env(bench_cache, committed))
    output, _ = first.communicate(timeout=900)
    assert first.returncode == 0, output
    shutil.copytree(committed / "runs", clone / "runs")  # what a clone of the repository holds
    env = _env(bench_cache, clone)

    def dry_run() -> str:
        result = subprocess.run([sys.executable, "-m", "bench", "reproduce", "--profile", "smoke", *args, "--dry-run"],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout

    before = dry_run()
    assert "train again (foreign)" in before and "in another result store" in before
    assert "1 runs: 1 to train, 0 kept; estimated" in before and "h of program time for 1 of them" in before
    assert "data cube-single-play-v0: regenerated data cached" in before  # once per dataset (--verbose: per task)
    second = _reproduce([*args, "--reports", str(tmp_path / "reports")], env)
    output, _ = second.communicate(timeout=900)
    assert second.returncode == 0, output
    assert "moved to" in output and "[finished] bc" in output
    (old,) = (clone / "replaced").rglob("summary.json")
    assert json.loads(old.read_text()) == json.loads(next((committed / "runs").rglob("summary.json")).read_text())
    report = (tmp_path / "reports" / "REPORT.md").read_text()
    assert "## New against committed" in report and "| bc | 1 |" in report
    assert "from the stored runs' own records" in report
    after = dry_run()
    assert "keep (finished here, at this revision)" in after and "1 runs: 0 to train, 1 kept" in after


@pytest.mark.slow
def test_printed_slurm_commands_train_the_matrix_wave_by_wave(bench_cache, tmp_path):
    """`--print-commands`: the files a SLURM job array runs, run here as the array would (one
    line per task id, the BC wave first): real processes, real runs."""
    results, commands = tmp_path / "results", tmp_path / "commands"
    env = _env(bench_cache, results)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `python` is this interpreter
    process = _reproduce(["--methods", "bc", "fql", "--seeds", "0", "1", "--print-commands", str(commands)], env)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    wave1 = (commands / "wave1.txt").read_text().splitlines()
    wave2 = (commands / "wave2.txt").read_text().splitlines()
    assert [line.split()[:6] for line in wave1] == [["python", "-m", "bench", "train", "--method", "bc"]]
    assert len(wave2) == 1 and "--method fql" in wave2[0] and "--seeds 0 1" in wave2[0]
    assert "sbatch --dependency=afterok:$first --array=1-1" in output
    assert not (results / "runs").exists()  # nothing trained by printing
    for wave in ("wave1.txt", "wave2.txt"):
        array_task = subprocess.run(["bash", str(commands / "slurm_array.sh"), str(commands / wave)], cwd=tmp_path,
                                    env={**env, "SLURM_ARRAY_TASK_ID": "1"}, capture_output=True, text=True, timeout=600)
        assert array_task.returncode == 0, array_task.stdout + array_task.stderr
    for method in ("bc", "fql"):
        for seed in (0, 1):
            assert (results / "runs" / "smoke" / method / TASK / f"seed{seed}" / "summary.json").exists()


def test_the_printed_wave_files_hold_the_programs_the_local_sweep_runs(tmp_path):
    """`--print-commands` and the local sweep share one plan (`program_plan`): wave 1 is the
    programs that train BC checkpoints, wave 2 the rest, line for line the same programs."""
    from bench.training.sweep import program_plan, train_command, write_commands

    runs = plan(get_profile("smoke"), methods=["bc", "fql", "qam"], tasks=["cube-single-play-singletask-task1-v0", "cube-single-play-singletask-task2-v0"], seeds=[0, 1])
    schedule = program_plan(runs, seeds_per_program=2)
    assert [len(wave) for wave in schedule.waves()] == [2, 4]
    assert {job[0].method for job in schedule.waves()[0]} == {"bc"}
    write_commands(runs, tmp_path, seeds_per_program=2)
    for number, wave in enumerate(schedule.waves(), start=1):
        printed = (tmp_path / f"wave{number}.txt").read_text().splitlines()
        assert [line.split()[1:] for line in printed] == [train_command(job)[1:] for job in wave]
    assert not (tmp_path / "wave3.txt").exists()


def test_a_fractional_gpu_share_sets_the_jax_memory_fraction():
    from bench.training.sweep import gpu_share_environment

    assert gpu_share_environment(0.25) == {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.225"}  # 4 per GPU: 90% shared
    assert gpu_share_environment(0.5) == {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.450"}
    assert gpu_share_environment(1.0) == {} and gpu_share_environment(0.0) == {}  # a whole GPU, or none


@pytest.mark.slow
def test_a_program_receives_its_environment_and_records_it(bench_cache, tmp_path):
    from bench.training.pipeline import RunConfig
    from bench.training.sweep import execute, gpu_share_environment

    run = RunConfig("bc", TASK, profile="smoke", out=tmp_path / "run")
    [outcome] = execute([run], env=gpu_share_environment(0.25))
    assert outcome.status == "finished", outcome.error
    hardware = json.loads((tmp_path / "run" / "environment.json").read_text())["hardware"]
    assert hardware["jax_memory_fraction"] == "0.225"


def test_the_sweep_progress_line_counts_runs_and_estimates_the_time_left():
    from collections import Counter

    from bench.training.sweep import Progress

    progress = Progress(total=10, began=0.0, ended=Counter(finished=3, skipped=2, failed=1))
    progress.started(0, now=0.0)
    progress.started(1, now=0.0)
    # 4 runs trained in 8 min: 2 min a run, 4 runs left
    assert progress.line(now=480.0) == ("[sweep] 6 of 10 runs ended (1 failed, 3 finished, 2 skipped); 2 program(s) "
                                        "running; 8.0 min elapsed, ~8 min left")
    assert Progress(total=2, began=0.0, ended=Counter(skipped=2)).line(now=1.0).endswith("done")
    assert Progress(total=2, began=0.0).line(now=1.0).endswith("time left unknown until a run ends")


def test_the_estimate_holds_from_the_first_line_by_stored_programs_times(tmp_path):
    """Issue 32: the first estimate extrapolated one program's time (data regeneration and BC
    included) to every run (~230 min for 45). With stored programs of the profile each program is
    expected to take its method's median; once a program ends here the rest scale by its pace."""
    from bench.training.pipeline import RunConfig
    from bench.training.sweep import Outcome, Progress, stored_program_seconds

    (tmp_path / "index.csv").write_text(
        "profile,method,task,seed,variant,status,final_success,data,data_id,host,hardware,wall_time_s,finished_utc,path\n"
        f"quick,bc,{TASK},0,,finished,0.1,r,r,h,x,600,t,runs/quick/bc/{TASK}/seed0\n"
        f"quick,qam,{TASK},0,b,finished,0.1,r,r,h,x,240,t,runs/quick/qam/{TASK}/seed0-b\n"
        f"quick,qam,{TASK},1,b,finished,0.1,r,r,h,x,240,t,runs/quick/qam/{TASK}/seed1-b\n"  # same program: once
        f"quick,qam,{TASK},0,c,finished,0.1,r,r,h,x,360,t,runs/quick/qam/{TASK}/seed0-c\n"
        f"paper,qam,{TASK},0,,finished,0.1,r,r,h,x,9999,t,runs/paper/qam/{TASK}/seed0\n"
        f"quick,qam,{TASK},0,d,failed,0.0,r,r,h,x,1,t,runs/quick/qam/{TASK}/seed0-d\n")
    stored = stored_program_seconds("quick", [tmp_path, tmp_path / "."])
    assert sorted(stored["qam"]) == [240.0, 360.0] and stored["bc"] == [600.0] and "paper" not in str(stored)
    # A run's start-up (its summary's startup_s) counts too: a program's time before its clock started
    run = tmp_path / "runs" / "quick" / "qam" / TASK / "seed0-c"
    run.mkdir(parents=True)
    (run / "summary.json").write_text('{"wall_time_s": 360.0, "startup_s": 24.0}')
    assert sorted(stored_program_seconds("quick", [tmp_path])["qam"]) == [240.0, 384.0]
    run.joinpath("summary.json").unlink()
    jobs = [[RunConfig("bc", TASK, out=tmp_path / "bc")]] + [[RunConfig("qam", TASK, out=tmp_path / f"q{i}")]
                                                             for i in range(4)]
    progress = Progress(total=5, began=0.0)
    progress.track(jobs)
    progress.expect(jobs, stored, workers=2)
    # 600 s of BC and 4 x 300 s (the median of 240 and 360) over 2 workers: 15 min
    assert progress.line(now=0.0).endswith("~15 min left (from 3 stored program(s) of this profile)")
    progress.started(0, now=0.0)
    progress.stopped(0, now=1200.0)  # BC took twice its expected time here: the rest is expected at that pace
    progress.record(Outcome(str(jobs[0][0].run_dir()), "bc", TASK, 0, (), "finished", 1200.0, "h", ""))
    assert progress.line(now=1200.0).endswith("~20 min left (from 3 stored program(s) of this profile, "
                                              "at this sweep's pace)")
    assert Progress(total=1, began=0.0).line(now=0.0).endswith("time left unknown until a run ends")  # none stored
    # The pace compares like with like: a program's own training time (its summary), not the data
    # regeneration before it, against the stored programs' (the quick job's estimate read ~64 min for 26)
    regenerated_first = Progress(total=5, began=0.0)
    regenerated_first.track(jobs)
    regenerated_first.expect(jobs, stored, workers=2)
    regenerated_first.started(0, now=0.0)
    regenerated_first.stopped(0, now=1200.0)  # 600 s of regeneration, then 600 s of training
    jobs[0][0].run_dir().mkdir(parents=True)
    (jobs[0][0].run_dir() / "summary.json").write_text('{"wall_time_s": 600.0}')
    regenerated_first.record(Outcome(str(jobs[0][0].run_dir()), "bc", TASK, 0, (), "finished", 1200.0, "h", ""))
    assert regenerated_first.line(now=1200.0).endswith("~10 min left (from 3 stored program(s) of this profile, "
                                                       "at this sweep's pace)")
    # Data to regenerate first, as long as its stored regeneration took (issue 32: the quick job's first
    # estimate was 9 min low without it): added to the first wave's time left, kept out of the pace
    leading = Progress(total=5, began=0.0)
    leading.track(jobs)
    leading.expect(jobs, stored, workers=2, regeneration={0: 600.0})
    assert leading.line(now=0.0).endswith("~20 min left (from 3 stored program(s) of this profile and its data "
                                          "regeneration (~10 min as stored))")
    leading.started(0, now=0.0)
    leading.stopped(0, now=1200.0)
    leading.record(Outcome(str(jobs[0][0].run_dir()), "bc", TASK, 0, (), "finished", 1200.0, "h", ""))
    assert leading.line(now=1200.0).endswith("~10 min left (from 3 stored program(s) of this profile and its data "
                                             "regeneration (~10 min as stored), at this sweep's pace)")
    # Nothing stored: once a program has ended, the rest of its method (else its kind: BC pretraining or
    # fine-tuning) are expected to take as long, less what they have run. A fine-tuning program is not
    # expected at a BC program's time (the regress gate's pair read "under a minute left", then ran 6 min)
    alone = Progress(total=5, began=0.0, workers=2)
    alone.track(jobs)
    alone.started(0, now=0.0)
    alone.stopped(0, now=600.0)
    alone.record(Outcome(str(jobs[0][0].run_dir()), "bc", TASK, 0, (), "finished", 600.0, "h", ""))
    alone.started(1, now=600.0)
    alone.started(2, now=600.0)
    assert alone.line(now=900.0).endswith("time left unknown until a qam program ends "
                                          "(from this sweep's 1 ended program(s))")
    alone.stopped(1, now=1200.0)
    alone.record(Outcome(str(jobs[1][0].run_dir()), "qam", TASK, 0, (), "finished", 600.0, "h", ""))
    alone.started(3, now=1200.0)
    # 3 qam programs of 600 s over 2 workers, one of them 600 s in: (0 + 600 + 600) / 2 s = 10 min
    assert alone.line(now=1200.0).endswith("~10 min left (from this sweep's 2 ended program(s))")
    # Programs running past their expected time: the rest is a lower bound, and the line says why
    assert alone.line(now=1400.0).endswith("at least ~8 min left (from this sweep's 2 ended program(s); "
                                           "1 program(s) running longer than expected)")
    other_kind = Progress(total=2, began=0.0)  # a fine-tuning method is expected at another one's time
    other_kind.track([jobs[1], [RunConfig("trqam", TASK, out=tmp_path / "t")]])
    other_kind.started(0, now=0.0)
    other_kind.stopped(0, now=600.0)
    other_kind.record(Outcome(str(jobs[1][0].run_dir()), "qam", TASK, 0, (), "finished", 600.0, "h", ""))
    assert other_kind.line(now=600.0).endswith("~10 min left (from this sweep's 1 ended program(s))")
    last = Progress(total=2, began=0.0, workers=2)  # the last program, past its time: not "at least ~0 min"
    last.track(jobs[1:3])
    last.started(0, now=0.0)
    last.stopped(0, now=600.0)
    last.record(Outcome(str(jobs[1][0].run_dir()), "qam", TASK, 0, (), "finished", 600.0, "h", ""))
    last.started(1, now=600.0)
    assert last.line(now=1000.0).endswith("~3 min left (from this sweep's 1 ended program(s))")
    assert last.line(now=1190.0).endswith("under a minute left (from this sweep's 1 ended program(s))")
    assert last.line(now=1500.0).endswith("time left unknown (from this sweep's 1 ended program(s); "
                                          "1 program(s) running longer than expected)")


def test_the_regeneration_a_plan_waits_for_is_read_from_stored_runs(tmp_path, monkeypatch):
    """`regeneration_leads`: the quick job's BC programs wait for cube-single's regeneration while it is
    not in the cache, as long as its latest stored regeneration at the profile's size took; none once
    it is cached, and none from a regeneration of another size."""
    from bench.training.sweep import program_plan, regeneration_leads

    monkeypatch.setenv("TRQAM_BENCH_CACHE", str(tmp_path / "cache"))
    store = tmp_path / "store"
    rows = []
    for name, episodes, seconds, created in (("a", 200, 300.0, "2026-12-01"), ("b", 200, 250.0, "2026-12-02"),
                                             ("c", 50, 20.0, "2026-12-03")):
        run = store / "runs" / name
        run.mkdir(parents=True)
        manifest = {"dataset": "cube-single-play-v0", "episodes": episodes, "seed": 0, "created_utc": created,
                    "recipe": {"episode_length": 1000}, "generation_seconds": seconds}
        (run / "data.json").write_text(json.dumps({"kind": "regenerated", "manifest": manifest}))
        rows.append(f"quick,bc,{TASK},0,,finished,0.1,regenerated,x,h,x,60,t,runs/{name}\n")
    (store / "index.csv").write_text("profile,method,task,seed,variant,status,final_success,data,data_id,host,"
                                     "hardware,wall_time_s,finished_utc,path\n" + "".join(rows))
    schedule = program_plan(plan(get_profile("quick")), seeds_per_program=8, lanes=2)
    assert regeneration_leads(schedule, [store, tmp_path / "none"]) == {0: 250.0, 1: 250.0}  # the latest at 200
    # moved aside by `prepare` to be trained again (a fresh clone's committed runs): still read there
    (store / "replaced" / "20261207T063000Z").mkdir(parents=True)
    (store / "runs" / "b").rename(store / "replaced" / "20261207T063000Z" / "b")
    assert regeneration_leads(schedule, [store]) == {0: 250.0, 1: 250.0}
    from bench.data.loading import regenerated_dir

    cached = regenerated_dir("cube-single-play-v0", get_profile("quick").regeneration)
    cached.mkdir(parents=True)
    monkeypatch.setattr("bench.data.datagen.read_manifest", lambda *a: {"stand-in": True})
    monkeypatch.setattr("bench.data.loading._regenerated_record", lambda *a: "files")
    assert regeneration_leads(schedule, [store]) == {}  # in the cache: nothing to wait for


def test_a_program_counts_as_running_only_while_it_runs():
    """With one worker, the progress line never counts more than one program running (issue 32: it
    counted every program handed to the pool)."""
    import threading

    from bench.training.sweep import Outcome, ProgramPlan, Progress, run_local

    progress = Progress(total=4)
    jobs = [[f"run{i}"] for i in range(4)]
    plan_ = ProgramPlan(jobs, {}, producers=0)
    progress._runs_left = {i: 1 for i in range(4)}
    progress._program_of = {f"run{i}": i for i in range(4)}
    seen, lock = [], threading.Lock()

    def program(job):
        with lock:
            seen.append(progress.running)
        time.sleep(0.05)
        return [Outcome(job[0], "bc", TASK, 0, (), "finished", 0.05, "here", "")]

    run_local(plan_, 1, progress.record, started=progress.started, run_program=program, stopped=progress.stopped)
    assert seen == [1, 1, 1, 1] and progress.running == 0


def test_a_long_program_gets_heartbeats_naming_what_its_log_shows(tmp_path):
    """No program ends for longer than the heartbeat: the sweep calls it (issue 32: the console
    printed nothing for 19 minutes), and the line it prints is the log's latest progress-bar state."""
    from bench.training.sweep import Outcome, ProgramPlan, last_log_line, run_local

    log = tmp_path / "train.log"
    assert last_log_line(log) == ""  # not written yet
    log.write_text("data: regenerating\nbc:  10%|#  | 10/100\rbc:  40%|####  | 40/100\r")
    assert last_log_line(log) == "bc:  40%|####  | 40/100"
    beats = []

    def program(job):
        time.sleep(0.5)
        return [Outcome(job[0], "bc", TASK, 0, (), "finished", 0.5, "here", "")]

    run_local(ProgramPlan([["run0"]], {}, producers=0), 1, lambda o: None, run_program=program,
              heartbeat=lambda: beats.append(time.perf_counter()), heartbeat_s=0.1)
    assert 2 <= len(beats) <= 6


MOUNTS = """overlay / overlay rw 0 0
tmpfs /tmp tmpfs rw 0 0
server:/export /shared nfs4 rw 0 0
/dev/sda1 /scratch ext4 rw 0 0
"""


def test_a_node_local_cache_on_a_multi_node_cluster_is_named(tmp_path, monkeypatch, capsys):
    from bench.files import filesystem_type, node_local
    from bench.training.sweep import warn_node_local_cache

    assert filesystem_type(Path("/shared/cache/x"), MOUNTS) == "nfs4" and not node_local(Path("/shared/c"), MOUNTS)
    assert filesystem_type(Path("/scratch/c"), MOUNTS) == "ext4" and node_local(Path("/scratch/c"), MOUNTS)
    assert filesystem_type(Path("/home/u"), MOUNTS) == "overlay" and node_local(Path("/home/u"), MOUNTS)
    assert not node_local(Path("/x"), "fuse.mystery / fuse.mystery rw 0 0\n")  # unknown: no false alarm
    assert filesystem_type(tmp_path) is not None  # this machine's own /proc/mounts
    monkeypatch.setenv("TRQAM_BENCH_CACHE", str(tmp_path))
    assert warn_node_local_cache(nodes=1) is None  # one node: nothing to share
    if node_local(tmp_path):
        line = warn_node_local_cache(nodes=3)
        assert line.startswith("warning: the Ray cluster has 3 nodes but TRQAM_BENCH_CACHE") and line in capsys.readouterr().err


def test_a_fine_tuning_program_starts_when_its_own_bc_checkpoint_exists_not_when_all_do():
    """No barrier between waves: task A's fine-tuning starts while task B's BC still trains
    (programs stand in for `execute`, with A's BC quick and B's slow)."""
    import threading

    from bench.training.sweep import Outcome, program_plan, run_local

    runs = plan(get_profile("smoke"), methods=["bc", "fql"], tasks=["cube-single-play-singletask-task1-v0", "cube-single-play-singletask-task2-v0"], seeds=[0])
    schedule = program_plan(runs, seeds_per_program=8)
    labels = [f"{job[0].method}:{job[0].task[-8:-3]}" for job in schedule.programs]
    assert labels == ["bc:task1", "bc:task2", "fql:task1", "fql:task2"]
    assert schedule.needs == {2: {0}, 3: {1}}
    events, lock = [], threading.Lock()

    def fake_program(job):
        label = f"{job[0].method}:{job[0].task[-8:-3]}"
        with lock:
            events.append(("start", label))
        time.sleep(1.5 if label == "bc:task2" else 0.1)
        with lock:
            events.append(("end", label))
        return [Outcome(str(r.run_dir()), r.method, r.task, r.seed, r.overrides, "finished", 0.0, "here", "")
                for r in job]

    outcomes = run_local(schedule, workers=3, report=lambda o: None, run_program=fake_program)
    assert len(outcomes) == 4
    assert events.index(("start", "fql:task1")) < events.index(("end", "bc:task2"))  # no wave barrier
    assert events.index(("end", "bc:task1")) < events.index(("start", "fql:task1"))  # but after its own BC
    assert events.index(("end", "bc:task2")) < events.index(("start", "fql:task2"))


def test_configuration_is_read_from_the_repository_wherever_the_store_lives(tmp_path):
    code = ("from bench.reporting.regress import BANDS; from bench.reporting.tables import REFERENCE_DIR; "
            "print(BANDS); print(REFERENCE_DIR)")
    found = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                           env={**os.environ, "TRQAM_BENCH_RESULTS": str(tmp_path / "empty-store"),
                                "PYTHONPATH": str(REPO)})
    bands, reference = (Path(line) for line in found.stdout.split())
    assert bands == REPO / "results" / "regress" / "bands.csv" and bands.is_file()
    assert reference == REPO / "results" / "reference" and reference.is_dir()


@pytest.mark.slow
def test_a_report_covers_exactly_its_matrix_and_two_reports_at_once_both_finish(bench_cache, tmp_path):
    """A seed trained earlier by a single `train` is in the store, not in `reproduce --seeds 0`'s
    tables; two invocations writing the same reports at once both finish (issue 29, items 1 and 5)."""
    results, reports = tmp_path / "results", tmp_path / "reports"
    env = _env(bench_cache, results)
    earlier = subprocess.run([sys.executable, "-m", "bench", "train", "--method", "bc", "--task", TASK, "--profile",
                              "smoke", "--seed", "2", "--no-progress"], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=900)
    assert earlier.returncode == 0, earlier.stderr
    args = ["--methods", "bc", "--seeds", "0", "--reports", str(reports)]
    first = _reproduce(args, env)
    output, _ = first.communicate(timeout=900)
    assert first.returncode == 0, output
    both = [_reproduce(args, env) for _ in range(2)]  # nothing to train: both write the same reports at once
    outputs = [p.communicate(timeout=900)[0] for p in both]
    assert [p.returncode for p in both] == [0, 0], outputs
    assert "Traceback" not in "".join(outputs)
    assert len(list((results / "sweeps").glob("smoke-*.json"))) == 3  # every invocation keeps its sweep record
    with open(reports / "tables" / "smoke" / "tasks.csv", newline="") as f:
        (row,) = [r for r in csv.DictReader(f) if r["method"] == "bc"]
    assert row["seeds"].split()[0] == "1"  # seed 2, trained by the earlier `train`, is not pooled
    report = (reports / "REPORT.md").read_text()
    assert "seeds 0;" in report and "this invocation's matrix, 1 runs" in report
    assert str(results / "index.csv") in report  # the store it read, wherever it lives
    assert "Nothing to compare" in report  # an empty store: says why there is no "new against committed"
    assert not list(reports.rglob(".*.tmp"))  # no temporary file left behind


def test_bc_producers_fewer_than_the_lanes_are_split_by_seed_and_the_rest_wait_for_each_seed():
    """The quick job's plan on 2 workers: its one `bc` program (seeds 0 and 1) is on every other
    program's critical path, so it becomes two one-seed programs side by side; each fine-tuning
    program (both seeds) waits for both. On one lane, and in printed commands, nothing is split."""
    from bench.training.sweep import fill_lanes, program_plan

    runs = plan(get_profile("quick"))
    one_lane = program_plan(runs, seeds_per_program=8)
    assert [[r.seed for r in job] for job in one_lane.programs[:one_lane.producers]] == [[0, 1]]
    two = program_plan(runs, seeds_per_program=8, lanes=2)
    assert two.producers == 2
    assert [(job[0].method, [r.seed for r in job]) for job in two.programs[:2]] == [("bc", [0]), ("bc", [1])]
    assert two.programs[2:] == one_lane.programs[1:]  # the fine-tuning programs as before
    assert all(two.needs[k] == {0, 1} for k in range(2, len(two.programs)))
    assert sorted(r.seed for job in program_plan(runs, 8, lanes=5).programs[:2] for r in job) == [0, 1]
    jobs = [["a0", "a1", "a2", "a3"], ["b0"]]
    assert fill_lanes(jobs, 4) == [["a0"], ["a1"], ["a2", "a3"], ["b0"]]
    assert fill_lanes(jobs, 1) == jobs and jobs == [["a0", "a1", "a2", "a3"], ["b0"]]  # the input is kept


def test_fine_tuning_runs_sharing_a_bc_checkpoint_wait_for_its_pretraining_only(tmp_path):
    """The regression gate's layout: two fine-tuning runs that start from one BC checkpoint. Alone,
    the first pretrains it and the second waits for that whole program; with the `bc` run that
    `bc_producers` adds, both wait for the pretraining only and fine-tune side by side."""
    from bench.reporting.regress import BANDS, read_bands
    from bench.training.pipeline import RunConfig
    from bench.training.sweep import bc_producers, program_plan

    runs = [band.run(tmp_path / "runs") for band in read_bands(BANDS)]
    assert [r.method for r in runs] == ["qam", "trqam"]
    alone = program_plan(runs, seeds_per_program=8)
    assert [job[0].method for job in alone.programs] == ["qam", "trqam"] and alone.needs == {1: {0}}

    [producer] = bc_producers(runs, tmp_path / "runs")
    assert (producer.method, producer.task, producer.profile, producer.seed) == ("bc", TASK, "regress", 0)
    assert producer.run_dir() == tmp_path / "runs" / "bc" / TASK / "seed0"
    together = program_plan([producer, *runs], seeds_per_program=8)
    assert [job[0].method for job in together.programs] == ["bc", "qam", "trqam"]
    assert together.needs == {1: {0}, 2: {0}}  # neither fine-tuning program waits for the other

    assert bc_producers([producer, *runs], tmp_path) == []  # the matrix trains it already
    assert bc_producers(runs[:1], tmp_path) == []  # one run: nothing to share
    other_seed = RunConfig("trqam", TASK, profile="regress", seed=1)
    assert bc_producers([runs[0], other_seed], tmp_path) == []  # two checkpoints, one run each
