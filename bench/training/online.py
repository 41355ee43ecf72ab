"""The online phase of offline-to-online fine-tuning (docs/PROTOCOL.md, 'Online phase').

Step t = 1 .. N of the phase:

1. When the action queue is empty, the policy is queried for a chunk of h actions, which
   is executed open loop (RLPD acts uniformly at random while t <= warm-up).
2. ``env.step``; the transition (``mask = 1 - terminated``) is appended to the journal on
   disk, then to the replay buffer. A finished episode is followed by a reset whose seed
   is a function of (run seed, t).
3. Once t >= warm-up (5,000 steps in the published protocol), one update on a batch from
   the buffer: the offline data plus the first t online transitions, sampled uniformly
   (RLPD: a fixed offline fraction). The batch key is ``fold_in(update_keys, t)``.
4. Logging, evaluation every ``online_eval_every`` steps and at the end, checkpoints: the
   same as the offline phase (`bench.training.pipeline._Loop.after_step`).

The seeds of a group run this side by side, each with its own environment, journal and
online part of the buffer (`bench.data.replay.SeedBuffers`): at every step each collects one
transition, then one compiled program updates every seed (and one acts for every seed
that needs a new chunk), walking the seeds as `bench.training.compiled` says (``seed_axis``).

Kill and resume. A seed's journal holds every transition it collected (k of them); its
checkpoint holds the agent after some step c <= k (the seeds of a group share c, and
may differ in k). A resumed run loads the agent at c and the k
transitions, and redoes the updates c+1 .. k on the buffer as it was at each of those
steps (same keys), so it reaches exactly the agent the killed run had after step k. The
simulator's state is not saved, so the interrupted episode ends at its last recorded
transition (a terminal without termination: its mask stays 1, like a time limit) and a
new episode begins. Nothing collected is lost or duplicated; from step k on, the resumed
run is a valid run of the protocol, not the bitwise continuation of the killed one.
"""

from __future__ import annotations

import csv
import functools
import io
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from bench.data.batches import sparse_rewards
from bench.data.replay import SeedBuffers, TransitionJournal, add_transitions, online_storage
from bench.errors import BenchError
from bench.files import derived_seed
from bench.training import compiled
from bench.training.runstore import write_atomic

JOURNAL_NAME = "online-transitions.bin"


class _Collector:
    """One seed's side of the online phase on the host: its environment, its journal (read
    back on a resume), its episode and its queue of actions."""

    def __init__(self, run, env, first: int, steps: int):
        self.run, self.env, self.seed = run, env, run.config.seed
        self.action_dim = env.action_space.shape[0]
        self.journal = TransitionJournal(run.checkpoint.dir / JOURNAL_NAME, env.observation_space.shape[0],
                                         self.action_dim)
        self.records = self.journal.read()
        self.collected = len(self.records)
        if self.collected < first or self.collected > steps:
            raise BenchError(
                f"online journal {self.journal.path} holds {self.collected} transitions but the checkpoint is at "
                f"online step {first} of {steps}; the run directory is inconsistent: move it aside "
                "and start the run again"
            )
        terminal = self.journal.column_slices["terminal"].start
        # Episodes finished by each recorded step, as the killed run saw them.
        self.episodes_done = np.cumsum(self.records[:, terminal]) if self.collected else np.zeros(0)
        if 0 < self.collected < steps and self.records[-1, terminal] == 0.0:
            self.journal.end_episode_at(self.collected - 1)  # the killed run's episode ends where its records end
            self.records[-1, terminal] = 1.0
        self.episodes = int(self.records[:, terminal].sum())
        self.observation, self.queue = None, []

    def close(self) -> None:
        self.journal.close()
        self.env.close()


class OnlineLoop:
    """Runs (or resumes) the online phase of the runs of a seed group, side by side: each
    seed steps its own environment, and at every step one compiled program updates all of
    them (`bench.training.compiled.online_update`); `summaries` describe the phase afterwards, one
    per seed."""

    def __init__(self, loop, env_factory: Callable[[], Any]):
        self.loop, self.env_factory = loop, env_factory
        self.owner = loop.owner
        self.summaries: list[dict[str, Any]] | None = None

    def run(self, phase, phase_index: int, agents, first: int, step_keys, val_keys):
        """``agents`` stacked, every seed standing at online step ``first``; returns them at
        the phase's end. A seed whose journal holds steps past ``first`` (it was killed after
        its checkpoint) replays them from the journal instead of stepping its environment."""
        profile, task, method = self.owner.profile, self.owner.task, phase.method
        seed_axis = self.owner.seed_axis
        keys = jax.vmap(jax.random.split)(step_keys)  # [S, 2]
        update_keys, act_keys = keys[:, 0], keys[:, 1]
        warmup = profile.online_warmup
        collectors: list[_Collector] = []
        try:
            for run in self.loop.seeds:
                env = self.env_factory()
                try:
                    collectors.append(_Collector(run, env, first, phase.steps))
                except BaseException:
                    env.close()
                    raise
            journal = collectors[0].journal  # the record layout, the same for every seed
            buffers = SeedBuffers.create(
                self.loop.train_data.at_step(0),
                online_storage([c.journal.transitions(c.records) for c in collectors], phase.steps), first)
            obs_dim = journal.obs_dim
            self.loop.start_window()
            first_update = True  # the first update of this invocation compiles (timed apart)
            for t in range(first + 1, phase.steps + 1):
                rows, extra = [], []
                # The others replay their journal; a diverged seed (its actions are NaN) steps nothing.
                stepping = [c for c in collectors if t > c.collected and c.run.diverged is None]
                for c in stepping:
                    if c.observation is None:
                        c.observation, _ = c.env.reset(seed=derived_seed(c.seed, phase_index, t))
                needs_policy = [c for c in stepping if not c.queue and not (method.random_warmup and t <= warmup)]
                if needs_policy:  # one program acts for every seed; those with queued actions ignore theirs
                    observations = np.zeros((len(collectors), 1, obs_dim), np.float32)
                    for i, c in enumerate(collectors):
                        if c in needs_policy:
                            observations[i, 0] = c.observation
                    actions = np.asarray(compiled.sample_seed_actions(
                        agents, jnp.asarray(observations), act_keys, jnp.asarray(t), seed_axis), np.float64)
                for i, c in enumerate(collectors):
                    if c.run.diverged is not None and t > c.collected:  # a placeholder row in its own buffer
                        rows.append(c.journal.record(np.zeros(obs_dim), np.zeros(c.action_dim), 0.0, False, False,
                                                     np.zeros(obs_dim)))
                        extra.append({"online/transitions": c.collected, "online/episodes": c.episodes})
                        continue
                    if c not in stepping:  # replayed from the journal
                        rows.append(c.records[t - 1])
                        extra.append({"online/transitions": t, "online/episodes": int(c.episodes_done[t - 1])})
                        continue
                    if not c.queue:
                        if method.random_warmup and t <= warmup:
                            chunk = np.random.default_rng(derived_seed(c.seed, phase_index, t, 1)).uniform(
                                -1.0, 1.0, (task.chunk_len, c.action_dim))
                        else:
                            chunk = actions[i].reshape(task.chunk_len, c.action_dim)
                        c.queue = list(np.clip(chunk, -1.0, 1.0))
                    action = c.queue.pop(0)
                    next_observation, reward, terminated, truncated, _ = c.env.step(action)
                    if self.owner.sparse_reward:  # the run's (its --assume sparse_reward)
                        reward = float(sparse_rewards(reward))
                    row = c.journal.record(c.observation, action, reward, bool(terminated), bool(truncated),
                                           next_observation)
                    c.journal.append(row)  # on disk before it is used
                    rows.append(row)
                    if terminated or truncated:
                        c.episodes, c.observation, c.queue = c.episodes + 1, None, []
                    else:
                        c.observation = next_observation
                    extra.append({"online/transitions": t, "online/episodes": c.episodes})
                # Row t-1 of every seed's online part (a replayed row is written again, unchanged).
                buffers = add_transitions(self._rotate(buffers, t), journal.as_transition(np.stack(rows)))
                metrics = None
                if t >= warmup:
                    began = time.perf_counter()
                    agents, metrics = jax.block_until_ready(compiled.online_update(
                        agents, buffers, update_keys, jnp.asarray(t), profile.batch_size, task.chunk_len,
                        profile.discount, method.offline_fraction, seed_axis))
                    self.loop.time_updates(phase.name, time.perf_counter() - began, 1, first_update)
                    first_update = False
                self.loop.after_step(phase, phase_index, t, functools.cache(lambda i, a=agents: compiled.unstack(a, i)),
                                     metrics, val_keys, extra)
                if all(c.run.diverged is not None for c in collectors):
                    break
            self.summaries = [self._write_episodes(c, phase, method, warmup, buffers) for c in collectors]
            return agents
        finally:
            for c in collectors:
                c.close()

    def _rotate(self, buffers: SeedBuffers, t: int) -> SeedBuffers:
        """The 10M/100M sets: the offline part is the shard of the moment."""
        shard = self.loop.train_data.at_step(t)
        return buffers if shard is buffers.offline else eqx.tree_at(lambda b: b.offline, buffers, shard)

    def _write_episodes(self, collector: _Collector, phase, method, warmup: int, buffers: SeedBuffers
                        ) -> dict[str, Any]:
        """A seed's episodes.csv (one row per training episode, from its journal) and its phase summary."""
        journal = collector.journal
        columns = journal.transitions(journal.read())
        rows, start, ret = [], 0, 0.0
        for i in range(len(columns["terminals"])):
            ret += float(columns["rewards"][i])
            ended = columns["terminals"][i] == 1.0
            if ended or i == len(columns["terminals"]) - 1:
                if columns["masks"][i] == 0.0:
                    end = "goal"
                elif columns["truncated"][i] == 1.0:
                    end = "time limit"
                else:
                    end = "interrupted" if ended else "phase end"
                rows.append({"episode": len(rows), "first_step": start + 1, "last_step": i + 1,
                             "length": i + 1 - start, "return": round(ret, 4), "success": int(end == "goal"),
                             "end": end})
                start, ret = i + 1, 0.0
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=["episode", "first_step", "last_step", "length", "return",
                                                  "success", "end"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(collector.run.dir / "episodes.csv", text.getvalue())
        finished = [r for r in rows if r["end"] in ("goal", "time limit")]
        return {
            "steps": phase.steps,
            "warmup": warmup,
            "updates": max(0, phase.steps - warmup + 1),
            "transitions": len(columns["terminals"]),
            "episodes": len(finished),
            "train_success_rate": float(np.mean([r["success"] for r in finished])) if finished else None,
            "interrupted_episodes": sum(r["end"] == "interrupted" for r in rows),
            "sampling": "uniform over offline + online" if method.offline_fraction is None
            else f"{method.offline_fraction:g} offline / {1 - method.offline_fraction:g} online",
            "random_warmup_actions": method.random_warmup,
            "buffer_rows": {"offline": buffers.offline.size, "online_capacity": buffers.capacity},
        }
