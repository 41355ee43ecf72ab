"""Run profiles: how big and how long a run is.

* ``smoke``: seconds; tiny networks and a tiny regenerated dataset. For tests.
* ``quick``: CPU-sized networks and schedule, minutes per run on a 2-core machine,
  on regenerated data. Calibrated so BC reaches a non-zero success rate on at least one
  manipulation task. Not a reproduction of the papers' numbers.
* ``cpu-study``: the quick networks on a domain of the TRQAM table (puzzle-3x3, a regenerated
  1M set) for 50K fine-tuning steps: 4 to 7 hours on 2 cores (projected from the rates measured on
  two machines), resumable (issue 18).
* ``paper``: the published settings (docs/PROTOCOL.md, 'Hyperparameters'); GPU-cluster work.

Each value of ``paper`` names its source.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from bench.data.loading import Regeneration, Source
from bench.errors import BenchError, suggest
from bench.tasks import DOMAINS, Task

ProfileName = Literal["smoke", "quick", "cpu-study", "paper", "qam-paper", "regress"]


@dataclass(frozen=True)
class Study:
    """Extra runs of one method with one config value set to each of ``values`` (the
    KL-budget sensitivity figure): ``method`` x ``tasks`` x ``seeds`` x values."""

    method: str
    key: str  # a field of the method's config
    values: tuple[float, ...]
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]

    def overrides(self) -> list[tuple[str, ...]]:
        return [(f"{self.key}={v:g}",) for v in self.values]


@dataclass(frozen=True)
class Profile:
    name: str
    hidden_sizes: tuple[int, ...]  # actor and critic MLPs
    num_critics: int  # critic ensemble size K
    actor_layer_norm: bool
    batch_size: int
    learning_rate: float
    flow_steps: int
    discount: float
    pretrain_steps: int  # BC pretraining (the `bc` method's whole run)
    offline_steps: int  # offline fine-tuning of the other methods
    eval_every: int
    online_steps: int  # default length of the online phase (0: offline only; --online-steps overrides)
    online_warmup: int  # online steps collected before the first update
    online_eval_every: int  # evaluation interval of the online phase (environment steps)
    eval_episodes: int
    eval_envs: int  # environments stepped side by side during evaluation
    log_every: int
    checkpoint_every: int
    shard_interval: int  # steps between dataset shards for the 10M/100M sets
    source: Source  # default data source
    regeneration: Regeneration  # used when the data is regenerated
    machine: str  # what the profile is sized for (its replay buffer and networks must fit there)
    # The matrix `python -m bench reproduce` runs (narrowed on its command line):
    methods: tuple[str, ...]
    tasks: tuple[str, ...]  # full or short names; ALL_TASKS for the 50 of the TRQAM paper
    seeds: tuple[int, ...]
    studies: tuple[Study, ...] = ()  # extra runs with one config value varied
    pretrain_eval_every: int = 0  # evaluation interval of the `bc` method's run (0: eval_every)
    # Updates per host call (a `lax.scan` in `bench.training.compiled`); a call also ends at every log,
    # evaluation, checkpoint and shard boundary. Speed only: the updates are the same.
    updates_per_call: int = 100
    # The protocol's 10M/100M sets (a key of bench.data.loading.LARGE_DATASETS: the TRQAM paper's on
    # cube-triple, puzzle-4x4, cube-quadruple and antmaze-giant; the QAM paper's on
    # cube-quadruple and puzzle-4x4); never the standard set in their place.
    large_datasets: Literal["none", "trqam-paper", "qam-paper"] = "none"
    # Fine-tuning methods start from a BC checkpoint (TRQAM paper) or from scratch (QAM paper).
    init: Literal["bc", "scratch"] = "bc"
    # The paper whose protocol the profile follows, at its scale or scaled down: its tables
    # compare runs with that paper's published numbers only.
    protocol: Literal["trqam", "qam"] = "trqam"

    def for_task(self, task: Task) -> Profile:
        """Per-domain adjustments of the paper profiles (each paper's 'Hyperparameters')."""
        if self.name == "qam-paper":  # QAM paper: discount 0.995 on antmaze-giant and humanoidmaze
            long_horizon = task.domain.startswith(("antmaze-giant", "humanoidmaze"))
            return replace(self, discount=0.995) if long_horizon else self
        if self.name != "paper":
            return self
        info = task.info
        profile = self
        if info is not None and info.paper_dataset != "1M":
            # Width 1024 and actor LayerNorm on the 10M/100M sets.
            profile = replace(profile, hidden_sizes=(1024,) * 4, actor_layer_norm=True)
        if task.domain.startswith("humanoidmaze"):
            profile = replace(profile, discount=0.999)
        return profile


ALL_TASKS = tuple(f"{d.abbr}-task{k}" for d in DOMAINS for k in range(1, 6))
# The TRQAM paper's offline table (Table 1 of arXiv 2605.27079; results/reference/).
PAPER_METHODS = ("fql", "dsrl", "ifql", "cgql-l", "qam", "qam-e", "trqam")

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        hidden_sizes=(32, 32),
        num_critics=2,
        actor_layer_norm=False,
        batch_size=16,
        learning_rate=3e-4,
        flow_steps=4,
        discount=0.995,
        pretrain_steps=30,
        offline_steps=30,
        eval_every=15,
        online_steps=0,
        online_warmup=10,
        online_eval_every=20,
        eval_episodes=2,
        eval_envs=2,
        log_every=5,
        checkpoint_every=10,
        shard_interval=10,
        source="auto",
        regeneration=Regeneration(episodes=4, episode_length=100, seed=0),
        machine="any CPU",
        methods=("bc", "fql", "trqam"),
        tasks=("cube-single-play-singletask-task1-v0",),
        seeds=(0,),
    ),
    "quick": Profile(
        name="quick",
        # Sized so that `nox -s reproduce` (6 methods x 1 task x 2 seeds, the KL-success study and
        # the closed-form figures) finishes in 20 minutes on 2 CPU cores from an empty cache (issue 32;
        # reports/benchmarks/QUICK_JOB.md): a TRQAM update costs ~57 ms on one core at this size.
        hidden_sizes=(256, 256),
        num_critics=2,
        actor_layer_norm=False,
        batch_size=256,
        learning_rate=3e-4,
        flow_steps=10,
        discount=0.995,
        pretrain_steps=20_000,  # BC reaches a non-zero success rate on cube-single at this length
        # 500 fine-tuning steps, evaluated once at the end (issue 32: the job in 20 minutes). At 1,000
        # steps with an evaluation at 500 the job took 32 min. The stored quick runs of 2026-11/12
        # (results/runs/quick and results/archive/quick-v2..v4) show the same trade-off at their
        # step-500 evaluation as at 1,000 steps: Spearman rho of success against realised KL -0.85,
        # -0.88, -0.85, -0.78 at 500 against -0.75, -0.61, -0.86, -0.35 at 1,000; below KL 0.01 as
        # often as BC or more, at 0.1 or more almost never (QUICK_JOB.md).
        offline_steps=500,
        eval_every=500,  # the end of fine-tuning only: each evaluation is 50 MuJoCo episodes per seed
        pretrain_eval_every=20_000,  # BC's end only
        online_steps=0,  # offline only by default; `--online-steps 10000` for offline-to-online runs
        online_warmup=5_000,  # docs/PROTOCOL.md: updates start after 5,000 online steps
        online_eval_every=2_000,  # a learning curve within a CPU-sized online phase
        eval_episodes=50,
        eval_envs=25,
        log_every=100,
        checkpoint_every=500,
        shard_interval=1_000,
        source="auto",
        regeneration=Regeneration(episodes=200, episode_length=1000, seed=0),
        machine="2-core CPU, 24 GiB RAM",
        methods=("bc", "trqam", "qam", "qam-e", "fql", "dsrl"),
        # One task of one regenerated dataset (one regeneration from an empty cache, ~5 min): the
        # task where BC succeeds most often at this size (quick runs of 2026-11/12: task 1 9%,
        # task 2 4%), so that falls below BC can show.
        tasks=("cube-single-play-singletask-task1-v0",),
        seeds=(0, 1),
        # The KL-success trade-off (issue 18; bench.reporting.tradeoff): QAM across beta and TRQAM across
        # budgets, spanning realised path KLs of about 0.001 to 1 per action step. Chosen from the
        # stored quick runs: QAM at beta 1 realises ~0.005 and the KL grows about as beta^2
        # (docs/ALGORITHMS.md s3, Lemma 1); TRQAM realises 0.9-1.0 x its budget.
        studies=(
            Study("trqam", "kl_budget", (0.001, 0.005, 0.03, 0.25), ("cube-single-play-singletask-task1-v0",), (0, 1)),
            Study("qam", "inv_temp", (0.3, 3.0, 15.0), ("cube-single-play-singletask-task1-v0",), (0, 1)),
        ),
    ),
    "paper": Profile(
        name="paper",
        hidden_sizes=(512, 512, 512, 512),  # docs/ALGORITHMS.md s1: 4 hidden layers of 512
        num_critics=10,  # docs/PROTOCOL.md: K = 10 critics
        actor_layer_norm=False,  # actor LayerNorm only on 10M/100M sets (for_task)
        batch_size=256,  # docs/PROTOCOL.md: common hyperparameters
        learning_rate=3e-4,  # docs/PROTOCOL.md: Adam lr 3e-4
        flow_steps=10,  # docs/PROTOCOL.md: flow steps 10
        discount=0.995,  # TRQAM paper (humanoidmaze 0.999, see for_task)
        pretrain_steps=300_000,  # TRQAM paper: BC pretraining 300K steps
        offline_steps=1_000_000,  # docs/PROTOCOL.md: 1M offline steps
        eval_every=50_000,  # docs/PROTOCOL.md: every 50K gradient steps
        online_steps=500_000,  # docs/ALGORITHMS.md s3: 1M offline + 500K online fine-tuning steps
        online_warmup=5_000,  # docs/PROTOCOL.md: updates start after 5,000 online steps
        online_eval_every=50_000,  # docs/PROTOCOL.md (the QAM curves: 1.05M .. 1.5M)
        eval_episodes=50,  # docs/PROTOCOL.md: 50 episodes
        eval_envs=50,
        log_every=5_000,
        checkpoint_every=50_000,
        shard_interval=1_000,  # docs/PROTOCOL.md: next shard every 1,000 gradient steps
        source="official",
        large_datasets="trqam-paper",
        regeneration=Regeneration(episodes=1000, episode_length=1000, seed=0),  # the 1M size
        machine="one GPU with 80 GB (A100/H100 class), 64 GB host RAM",
        methods=PAPER_METHODS,
        tasks=ALL_TASKS,  # docs/PROTOCOL.md: 50 tasks, 10 domains x 5
        seeds=tuple(range(8)),  # TRQAM paper: 8 seeds
        # docs/ALGORITHMS.md s3: the paper sweeps the budget over {0.5, 1, ..., 4} (1 is the main matrix's).
        # Which tasks its sensitivity figure used is not public; ours: task 1 of every domain.
        studies=(Study("trqam", "kl_budget", (0.5, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0),
                       tuple(f"{d.abbr}-task1" for d in DOMAINS), tuple(range(8))),),
    ),
}

# The QAM paper's protocol (arXiv 2601.14234; docs/PROTOCOL.md) for its 17 methods: every method
# trained from scratch (actor_fast initialised independently of actor_slow, only the targets
# tied), discount 0.99 (0.995 on antmaze-giant and humanoidmaze: for_task), rho 0 on
# humanoidmaze (bench.config.hyperparams), width 512 everywhere, the standard datasets except the
# 100M shards on cube-quadruple and puzzle-4x4, 12 seeds, 1M offline + 500K online steps.
QAM_PAPER_METHODS = ("qam", "qam-e", "qam-f", "bam", "fql", "dsrl", "ifql", "cgql", "cgql-m", "cgql-l", "rebrac",
                     "fbrac", "fawac", "fedit", "qsm", "dac", "rlpd")
PROFILES["qam-paper"] = replace(
    PROFILES["paper"], name="qam-paper", discount=0.99, init="scratch", large_datasets="qam-paper", protocol="qam",
    methods=QAM_PAPER_METHODS, seeds=tuple(10001 * k for k in range(1, 13)), studies=(),
)


# The CI regression gate's pinned run (results/regress/bands.csv): QAM on cube-single at 3x256 with 2
# critics and 3K fine-tuning steps, where it succeeds often enough (0.86 with Python 3.12's lock, 0.84
# with 3.11's) that a broken method shows. The gate ran 10 critics until 2026-12-07 (QAM 0.88, TRQAM
# 0.34). With 2, an update of the gate's two programs side by side takes 104-106 ms against 177-179 ms
# (2026-12-07, AMD EPYC, 2 cores), for .ci/run's 35-minute goal (issue 32). Fewer steps are no way to
# save the time: QAM measured 0.18 at 500, 1,000 and 1,500 steps, 0.40 at 2,000 and 0.60 at 2,500
# before 0.88 at 3,000 (10 critics; with 2: 0.20, 0.42, 0.78 at 1K, 2K, 3K), so a shorter run would
# leave QAM little above where it starts (reports/benchmarks/TEST_TIMES.md has the gate's time).
PROFILES["regress"] = replace(
    PROFILES["quick"], name="regress", hidden_sizes=(256, 256, 256), num_critics=2, offline_steps=3_000,
    eval_every=3_000, pretrain_eval_every=20_000, log_every=250, checkpoint_every=1_000,
    methods=("qam",), tasks=("cube-single-play-singletask-task1-v0",), seeds=(0,), studies=(),
)


# The longer CPU study (issue 18, item 2): a domain of the TRQAM table where the paper's methods
# separate (puzzle-3x3: TRQAM 100, DSRL 100, QAM-E 89, QAM 15; results/reference/), under the TRQAM
# paper's protocol (BC-initialised, the per-domain values of bench.config.hyperparams) at the quick
# networks' size, on a regenerated set of the official size. 50K fine-tuning steps: the first
# step of the QAM paper's published curves, so each curve meets the published ones at one point.
# Cost, measured in the study itself (2026-12-01, 2 cores): the 1M regeneration 41 min and BC
# (2 seeds, 100K steps) 31 min, both with other jobs on the machine; then 4.7-5.0 steps/s for each
# of two fine-tuning programs (2 seeds each) side by side with nothing else running (2.8 while the
# test suite shared the machine), so ~3 h per pair of methods and ~7 h in all: about 1.75x the
# four hours it was sized for from a single-program timing (a narrower network is no faster:
# 128x128 runs at the same rate, the updates are bound by op overheads). On a second machine
# (Intel Xeon, 2 cores, 2026-12-02, nothing else training): the regeneration 13.5 min, BC 4 min
# (about 400 steps/s; 8.6 min as the `bc` run with its four evaluations), DSRL alone about 28
# steps/s, TRQAM and QAM-E side by side about 9 and 8 steps/s each, QAM as the only program about
# 16 steps/s; the stored study's programs took about 7 h between them (overlapping: README).
# Resumable: `reproduce --profile cpu-study` continues every run from its last checkpoint.
# Task 1: the task where the QAM paper's QAM-E and DSRL curves rise first (results/reference/).
PROFILES["cpu-study"] = replace(
    PROFILES["quick"], name="cpu-study", pretrain_steps=100_000, pretrain_eval_every=25_000,
    offline_steps=50_000, eval_every=10_000, log_every=1_000, checkpoint_every=2_000,
    regeneration=Regeneration(episodes=1000, episode_length=1000, seed=0),  # the official 1M size
    machine="2-core CPU, 24 GiB RAM (about 7 hours, projected from measured rates; resumable)",
    methods=("bc", "trqam", "qam", "qam-e", "dsrl"), tasks=("puzzle-3x3-play-singletask-task1-v0",),
    seeds=(0, 1), studies=(),
)


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise BenchError(f"unknown profile '{name}'{suggest(name, PROFILES)}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]
