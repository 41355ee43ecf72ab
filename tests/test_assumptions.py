"""The choices the authors' code leaves open (issue 30, item 4): each a named switch with its
evidence, recorded in every run's config (so in its identity), listed in docs/PROTOCOL.md and
stated in the report's provenance as assumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.config import assumptions
from bench.config.methods import get_method
from bench.config.profiles import PROFILES, get_profile
from bench.errors import BenchError
from bench.tasks import resolve_task
from bench.training.pipeline import Run, RunConfig, plan_phases
from bench.training.sweep import plan, train_command

REPO = Path(__file__).resolve().parents[1]


def test_every_switch_names_its_evidence_and_the_protocol_doc_lists_them_per_profile():
    text = (REPO / "docs" / "PROTOCOL.md").read_text()
    assert assumptions.markdown(list(PROFILES.values())) in text
    assert set(assumptions.ASSUMPTIONS) == {"sparse_reward", "trqam_kl_budget", "trqam_table_baselines",
                                            "bc_checkpoint", "kl_study_tasks"}
    for a in assumptions.ASSUMPTIONS.values():
        assert "github.com" in a.evidence or "paper" in a.evidence
        # open under the TRQAM protocol's paper profile; the QAM repository settles each for qam-paper
        assert assumptions.applies(a, get_profile("paper"))
        assert not assumptions.applies(a, get_profile("qam-paper"))


@pytest.mark.parametrize("items, message", [
    (["sparse=dense"], r"does not name an assumption \(did you mean: sparse_reward\?\)"),
    (["sparse_reward"], "does not name an assumption"),
    (["sparse_reward=dense", "sparse_reward=sparse"], "names sparse_reward twice"),
    (["sparse_reward=off"], "choose one of sparse, dense"),
    (["trqam_kl_budget=-1"], "finite number > 0"),
    (["trqam_kl_budget=inf"], "finite number > 0"),
])
def test_a_bad_assumption_is_one_line(items, message):
    with pytest.raises(BenchError, match=message):
        assumptions.parse(items, get_profile("paper"))


def test_qam_paper_leaves_none_open_and_says_so():
    with pytest.raises(BenchError, match="profile 'qam-paper' does not leave it open"):
        RunConfig(method="qam", task="scene-task1", profile="qam-paper", assume=("sparse_reward=dense",))
    assert RunConfig(method="qam", task="scene-task1", profile="qam-paper").assumptions() == {}


def test_defaults_are_the_profiles_own_run_and_other_values_get_their_own_directory():
    base = RunConfig(method="trqam", task="p33-task1", profile="paper")
    same = RunConfig(method="trqam", task="p33-task1", profile="paper",
                     assume=("sparse_reward=sparse", "trqam_kl_budget=1.0"))
    assert same.assume == () and same.run_dir() == base.run_dir() and same == base
    other = RunConfig(method="trqam", task="p33-task1", profile="paper",
                      assume=("trqam_kl_budget=0.50", "sparse_reward=dense"))
    assert other.assume == ("sparse_reward=dense", "trqam_kl_budget=0.5")  # sorted, normalised
    assert other.run_dir().name == "seed0-assume_sparse_reward=dense-assume_trqam_kl_budget=0.5"
    assert base.assumptions() == {"sparse_reward": "sparse", "trqam_kl_budget": "1", "trqam_table_baselines":
                                  "qam-paper", "bc_checkpoint": "per-task-seed", "kl_study_tasks": "task1"}
    # quick has no KL study over domains: that switch is not open there
    assert "kl_study_tasks" not in RunConfig(method="qam", task="cube-single-play-singletask-task1-v0", profile="quick").assumptions()


def _agent_config(method: str, task: str, *assume: str, overrides: tuple[str, ...] = ()):
    run = RunConfig(method=method, task=task, profile="paper", assume=assume, overrides=overrides)
    t = resolve_task(task)
    return plan_phases(get_method(method), run.resolved_profile(t), t, run)[-1].config


def test_kl_budget_and_table_baselines_change_the_nine_domains_and_never_cube_triple():
    assert _agent_config("trqam", "p33-task1").kl_budget == 1.0
    assert _agent_config("trqam", "p33-task1", "trqam_kl_budget=0.25").kl_budget == 0.25
    assert _agent_config("trqam", "c3-task1", "trqam_kl_budget=0.25").kl_budget == 0.5  # published
    # --set always wins over an assumption
    assert _agent_config("trqam", "p33-task1", "trqam_kl_budget=0.25", overrides=("kl_budget=2",)).kl_budget == 2.0

    assert _agent_config("qam", "scene-task1").inv_temp == 1
    assert _agent_config("qam", "scene-task1", "trqam_table_baselines=trqam-repo").inv_temp == 0.3
    assert _agent_config("qam", "c3-task1", "trqam_table_baselines=trqam-repo").inv_temp == 3  # the README's
    assert _agent_config("fql", "p44-task1", "trqam_table_baselines=trqam-repo").alpha == 100.0
    cgql = _agent_config("cgql-l", "hm-task1", "trqam_table_baselines=trqam-repo")
    assert (cgql.mode, cgql.inv_temp, cgql.guidance, cgql.noisy_coef) == ("linex", 1.0, 0.1, 0.001)
    assert _agent_config("dsrl", "scene-task1", "trqam_table_baselines=trqam-repo").noise_scale == 1.0
    assert _agent_config("ifql", "hm-task1", "trqam_table_baselines=trqam-repo").kappa == 0.9
    assert _agent_config("qam-e", "scene-task1", "trqam_table_baselines=trqam-repo") == \
        _agent_config("qam-e", "scene-task1")  # not a TRQAM-repository default


def test_sparse_reward_switch_reaches_the_run():
    sparse = Run(RunConfig(method="trqam", task="p33-task1", profile="paper"), progress=False)
    dense = Run(RunConfig(method="trqam", task="p33-task1", profile="paper", assume=("sparse_reward=dense",)),
                progress=False)
    assert sparse.sparse_reward and not dense.sparse_reward
    assert sparse.config_record()["task"]["sparse_reward"] is True
    assert dense.config_record()["task"]["sparse_reward"] is False
    assert dense.config_record()["assumptions"]["sparse_reward"] == "dense"
    # a dense-reward domain stays dense under either value
    assert not Run(RunConfig(method="trqam", task="c2-task1", profile="paper"), progress=False).sparse_reward


def test_one_bc_checkpoint_per_task_shares_the_first_seeds_pretraining():
    fine = RunConfig(method="trqam", task="scene-task1", profile="paper", seed=5, assume=("bc_checkpoint=per-task",))
    assert fine.bc_seed == 0 and fine.phase_seed("pretrain") == 0 and fine.phase_seed("offline") == 5
    assert RunConfig(method="trqam", task="scene-task1", profile="paper", seed=5).phase_seed("pretrain") == 5
    # the bc method's own run keeps its seed; so does an explicit --bc-seed
    assert RunConfig(method="bc", task="scene-task1", profile="paper", seed=5,
                     assume=("bc_checkpoint=per-task",)).bc_seed is None
    assert RunConfig(method="trqam", task="scene-task1", profile="paper", seed=5, bc_seed=3,
                     assume=("bc_checkpoint=per-task",)).bc_seed == 3


def test_the_kl_study_tasks_and_the_sweep_commands_carry_the_assumptions():
    profile = get_profile("paper")
    default = plan(profile, methods=["trqam"], domains=["scene"], seeds=[0])
    every = plan(profile, methods=["trqam"], domains=["scene"], seeds=[0], assume=["kl_study_tasks=all"])
    studied = lambda runs: {r.task for r in runs if r.overrides}  # noqa: E731
    assert studied(default) == {"scene-play-singletask-task1-v0"}
    assert studied(every) == {f"scene-play-singletask-task{k}-v0" for k in range(1, 6)}
    command = train_command([every[0]])
    assert command[command.index("--assume") + 1] == "kl_study_tasks=all"


def test_a_record_written_before_assumptions_were_recorded_is_the_defaults_run(tmp_path):
    """Committed runs predate the field: they ran under the defaults and stay current; a run under
    another value is stale for the default's directory (never served as it)."""
    config = RunConfig(method="trqam", task="cube-single-play-singletask-task1-v0", profile="smoke", out=tmp_path / "run")
    run = Run(config, progress=False)
    record = run.config_record()
    record.pop("assumptions")
    record["run"].pop("assume")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(record))
    assert run.stored(run.seeds[0]).state == "unfinished"

    record["assumptions"] = {**run.config.assumptions(), "sparse_reward": "dense"}
    (tmp_path / "run" / "config.json").write_text(json.dumps(record))
    stored = run.stored(run.seeds[0])
    assert stored.state == "stale" and any("assumptions.sparse_reward: dense -> sparse" in r for r in stored.reasons)


def test_the_report_states_the_assumptions_as_assumed():
    from bench.reporting.report import _assumptions_section

    profile = get_profile("paper")
    default = {"config": Run(RunConfig(method="trqam", task="p33-task1", profile="paper"),
                             progress=False).config_record()}
    dense = {"config": Run(RunConfig(method="trqam", task="p33-task1", profile="paper",
                                     assume=("sparse_reward=dense",)), progress=False).config_record()}
    lines = _assumptions_section([default, dense], profile)
    assert "assumed, not published" in lines[0]
    assert "  - `sparse_reward=dense`: 1 of 2 runs" in lines
    assert "  - `sparse_reward=sparse` (default): 1 of 2 runs" in lines
    assert _assumptions_section([], get_profile("qam-paper"))[0].startswith("- Assumptions: none open")
