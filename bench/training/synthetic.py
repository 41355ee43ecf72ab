"""Synthetic run records: the files `bench.training.pipeline` leaves in a run directory, written
with made-up numbers by the same writers (`bench.training.runstore`), sealed the same way, and
marked ``"synthetic": true`` in the summary and the environment.

For tests of everything downstream of training (tables, figures, the report, the index) and for
the reporting benchmark's 3,360-run store (``benchmarks/synthetic_store.py``). Never written
under ``results/``: `write_run` refuses a directory inside the repository's result store.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.files import REPO
from bench.training.runstore import csv_text, write_atomic, write_json, write_summary

PHASE_STEPS = {"pretrain": 1000, "offline": 1000, "online": 1000}


def synthetic_data(dataset: str, digest: str = "0" * 64, kind: str = "regenerated") -> dict:
    """A ``data.json`` record naming ``dataset``'s files with sha256 ``digest`` (another digest:
    other files of the same dataset)."""
    if kind == "regenerated":
        return {"kind": "regenerated", "dataset": dataset, "directory": "/synthetic",
                "manifest": {"kind": "regenerated", "dataset": dataset, "episodes": 1, "seed": 0,
                             "recipe": {"episode_length": 1000}, "versions": {"ogbench": "synthetic"},
                             "files": {f"{dataset}.npz": {"sha256": digest, "size": 0},
                                       f"{dataset}-val.npz": {"sha256": digest, "size": 0}}}}
    return {"kind": "official", "dataset": dataset, "directory": "/synthetic", "shards": 1,
            "files": [{"name": f"{dataset}.npz", "split": "train", "sha256": digest},
                      {"name": f"{dataset}-val.npz", "split": "val", "sha256": digest}]}


def write_run(directory: Path, *, method: str, task: str, seed: int, success: float, profile: str = "quick",
              phase: str | None = None, evaluations: Sequence[tuple[str, int, float]] | None = None,
              episodes: int = 50, overrides: Sequence[str] = (), agent_config: dict | None = None,
              data: dict | None = None, metrics: Sequence[dict[str, Any]] = (), diverged: dict | None = None,
              revision: str = "synthetic", init: str | None = None) -> Path:
    """A finished, sealed run in ``directory``. ``evaluations`` (phase, step, success) default to one
    evaluation of ``phase`` (``pretrain`` for bc, else ``offline``) at its last step with ``success``."""
    directory = Path(directory)
    if directory.resolve().is_relative_to((REPO / "results").resolve()):
        raise ValueError(f"synthetic runs are never written under the result store ({directory})")
    from bench.tasks import resolve_task

    phase = phase or ("pretrain" if method == "bc" else "offline")
    if evaluations is None:
        evaluations = [(phase, PHASE_STEPS[phase], success)]
    phases = list(dict.fromkeys(p for p, _, _ in evaluations)) or [phase]
    dataset = resolve_task(task).dataset
    write_json(directory / "config.json", {
        "run": {"method": method, "task": task, "profile": profile, "seed": seed, "overrides": list(overrides)},
        "phases": [{"name": p, "steps": PHASE_STEPS[p], "agent_config": agent_config or {}} for p in phases]})
    write_json(directory / "environment.json", {"synthetic": True, "code_revision": revision, "versions": {},
                                                "hardware": {"host": "synthetic"}})
    write_json(directory / "data.json", data or synthetic_data(dataset))
    write_atomic(directory / "metrics.csv", csv_text(list(metrics)) if metrics else "phase,step\n")
    write_atomic(directory / "evaluations.csv", csv_text(
        [{"phase": p, "step": s, "num_episodes": episodes, "success_rate": r} for p, s, r in evaluations],
        ["phase", "step", "num_episodes", "success_rate"]))
    last: dict[str, float] = {}
    for p, _, r in evaluations:
        last[p] = r
    if diverged is not None:
        for p in phases[phases.index(diverged["phase"]):]:
            last[p] = 0.0
    write_summary(directory, {
        "method": method, "task": task, "seed": seed, "profile": profile, "synthetic": True,
        "status": "diverged" if diverged else "finished", "diverged": diverged, "init": init,
        "final_success": last[phases[-1]], "success_by_phase": last,
        "steps": {p: PHASE_STEPS[p] for p in phases}, "eval_episodes": episodes,
        "data": {"kind": (data or {}).get("kind", "regenerated"), "dataset": dataset},
        "seeds_in_program": [seed], "wall_time_s": 1.0, "hardware": {"host": "synthetic"}})
    return directory
