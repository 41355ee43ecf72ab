"""Run profiles: how big and how long a run is.

* ``smoke``: seconds; tiny networks and a tiny regenerated dataset. For tests.
* ``quick``: CPU-sized networks and schedule, minutes per run on a 2-core machine,
  on regenerated data. Calibrated so BC reaches a non-zero success rate on at least one
  manipulation task. Not a reproduction of the papers' numbers.
* ``paper``: the published settings (PROTOCOL.md, 'Hyperparameters'); GPU-cluster work.

Each value of ``paper`` names its source.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from bench.data import Regeneration, Source
from bench.errors import BenchError, suggest
from bench.tasks import Task

ProfileName = Literal["smoke", "quick", "paper"]


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

    def for_task(self, task: Task) -> Profile:
        """Per-domain adjustments of the paper profile (TRQAM paper, 'Hyperparameters')."""
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
    ),
    "quick": Profile(
        name="quick",
        hidden_sizes=(256, 256, 256),
        num_critics=10,
        actor_layer_norm=False,
        batch_size=256,
        learning_rate=3e-4,
        flow_steps=10,
        discount=0.995,
        pretrain_steps=20_000,
        offline_steps=3_000,  # a fine-tuning update costs ~0.1 s on a 2-core CPU (nox -s bench)
        eval_every=10_000,
        online_steps=0,  # offline only by default; `--online-steps 10000` for the committed o2o runs
        online_warmup=5_000,  # PROTOCOL.md: updates start after 5,000 online steps
        online_eval_every=2_000,  # a learning curve within a CPU-sized online phase
        eval_episodes=50,
        eval_envs=25,
        log_every=250,
        checkpoint_every=1_000,
        shard_interval=1_000,
        source="auto",
        regeneration=Regeneration(episodes=200, episode_length=1000, seed=0),
        machine="2-core CPU, 24 GiB RAM",
    ),
    "paper": Profile(
        name="paper",
        hidden_sizes=(512, 512, 512, 512),  # ALGORITHMS.md s1: 4 hidden layers of 512
        num_critics=10,  # PROTOCOL.md: K = 10 critics
        actor_layer_norm=False,  # actor LayerNorm only on 10M/100M sets (for_task)
        batch_size=256,  # PROTOCOL.md: common hyperparameters
        learning_rate=3e-4,  # PROTOCOL.md: Adam lr 3e-4
        flow_steps=10,  # PROTOCOL.md: flow steps 10
        discount=0.995,  # TRQAM paper (humanoidmaze 0.999, see for_task)
        pretrain_steps=300_000,  # TRQAM paper: BC pretraining 300K steps
        offline_steps=1_000_000,  # PROTOCOL.md: 1M offline steps
        eval_every=50_000,  # PROTOCOL.md: every 50K gradient steps
        online_steps=500_000,  # ALGORITHMS.md s3: 1M offline + 500K online fine-tuning steps
        online_warmup=5_000,  # PROTOCOL.md: updates start after 5,000 online steps
        online_eval_every=50_000,  # PROTOCOL.md (the QAM curves: 1.05M .. 1.5M)
        eval_episodes=50,  # PROTOCOL.md: 50 episodes
        eval_envs=50,
        log_every=5_000,
        checkpoint_every=50_000,
        shard_interval=1_000,  # PROTOCOL.md: next shard every 1,000 gradient steps
        source="official",
        regeneration=Regeneration(episodes=1000, episode_length=1000, seed=0),  # the 1M size
        machine="one GPU with 80 GB (A100/H100 class), 64 GB host RAM",
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise BenchError(f"unknown profile '{name}'{suggest(name, PROFILES)}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]
