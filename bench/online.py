"""The online phase of offline-to-online fine-tuning (PROTOCOL.md, 'Online phase').

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
   same as the offline phase (`bench.training._Loop.after_step`).

Kill and resume. The journal holds every transition collected (k of them); the checkpoint
holds the agent after some step c <= k. A resumed run loads the agent at c and the k
transitions, and redoes the updates c+1 .. k on the buffer as it was at each of those
steps (same keys), so it reaches exactly the agent the killed run had after step k. The
simulator's state is not saved, so the interrupted episode ends at its last recorded
transition (a terminal without termination: its mask stays 1, like a time limit) and a
new episode begins. Nothing collected is lost or duplicated; from step k on, the resumed
run is a valid run of the protocol, not the bitwise continuation of the killed one.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from bench import compiled
from bench.batches import sparse_rewards
from bench.errors import BenchError
from bench.files import derived_seed
from bench.replay import ReplayBuffer, TransitionJournal, add_transition, online_storage
from bench.runstore import write_atomic

JOURNAL_NAME = "online-transitions.bin"


class OnlineLoop:
    """Runs (or resumes) the online phase of one run; `summary` describes it afterwards."""

    def __init__(self, loop, env_factory: Callable[[], Any]):
        self.loop, self.env_factory = loop, env_factory
        self.owner = loop.owner
        self.summary: dict[str, Any] | None = None

    def run(self, phase, phase_index: int, agent, first: int, step_keys, val_keys):
        profile, task = self.owner.profile, self.owner.task
        run = self.loop.seeds[0]  # the online phase trains one seed per program
        method, seed = phase.method, run.config.seed
        update_keys, act_keys = jax.random.split(step_keys)
        warmup = profile.online_warmup
        env = self.env_factory()
        obs_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
        journal = TransitionJournal(run.checkpoint.dir / JOURNAL_NAME, obs_dim, action_dim)
        try:
            records = journal.read()
            collected = len(records)
            if collected < first or collected > phase.steps:
                raise BenchError(
                    f"online journal {journal.path} holds {collected} transitions but the checkpoint is at "
                    f"online step {first} of {phase.steps}; the run directory is inconsistent: move it aside "
                    "and start the run again"
                )
            terminal = journal.column_slices["terminal"].start
            episodes_done = np.cumsum(records[:, terminal]) if collected else np.zeros(0)  # as the killed run saw it
            if 0 < collected < phase.steps and records[-1, terminal] == 0.0:
                journal.end_episode_at(collected - 1)  # the killed run's episode ends where its records end
                records[-1, terminal] = 1.0
            buffer = ReplayBuffer.create(self.loop.train_data.at_step(0),
                                         online_storage(journal.transitions(records), phase.steps), collected)

            def update(agent, buffer, t):
                if t < warmup:
                    return agent, None
                return compiled.online_update(agent, buffer, jax.random.fold_in(update_keys, t), profile.batch_size,
                                      task.chunk_len, profile.discount, method.offline_fraction)

            def rotate(buffer, t):  # the 10M/100M sets: the offline part is the shard of the moment
                shard = self.loop.train_data.at_step(t)
                return buffer if shard is buffer.offline else eqx.tree_at(lambda b: b.offline, buffer, shard)

            self.loop.start_window()
            # Redo the updates the killed run made after its last checkpoint, on the buffer as it was.
            for t in range(first + 1, collected + 1):
                buffer = rotate(buffer, t)
                agent, metrics = update(agent, buffer.with_size(t), t)
                self.loop.after_step(phase, phase_index, t, lambda i, a=agent: a, metrics, [val_keys],
                                     {"online/transitions": t, "online/episodes": int(episodes_done[t - 1])})

            # Interact.
            episodes = int(records[:, terminal].sum())
            observation, queue = None, []
            for t in range(collected + 1, phase.steps + 1):
                if observation is None:
                    observation, _ = env.reset(seed=derived_seed(seed, phase_index, t))
                if not queue:
                    if method.random_warmup and t <= warmup:
                        chunk = np.random.default_rng(derived_seed(seed, phase_index, t, 1)).uniform(
                            -1.0, 1.0, (task.chunk_len, action_dim))
                    else:
                        actions = compiled.sample_actions(agent, jnp.asarray(observation, jnp.float32)[None],
                                                  jax.random.fold_in(act_keys, t))
                        chunk = np.asarray(actions, np.float64).reshape(task.chunk_len, action_dim)
                    queue = list(np.clip(chunk, -1.0, 1.0))
                action = queue.pop(0)
                next_observation, reward, terminated, truncated, _ = env.step(action)
                if task.sparse_reward:
                    reward = float(sparse_rewards(reward))
                row = journal.record(observation, action, reward, bool(terminated), bool(truncated),
                                     next_observation)
                journal.append(row)  # on disk before it is used
                buffer = add_transition(rotate(buffer, t), journal.as_transition(row))
                if terminated or truncated:
                    episodes, observation, queue = episodes + 1, None, []
                else:
                    observation = next_observation
                agent, metrics = update(agent, buffer, t)
                self.loop.after_step(phase, phase_index, t, lambda i, a=agent: a, metrics, [val_keys],
                                     {"online/transitions": t, "online/episodes": episodes})
            self.summary = self._write_episodes(journal, phase, method, warmup, buffer)
            return agent
        finally:
            journal.close()
            env.close()

    def _write_episodes(self, journal: TransitionJournal, phase, method, warmup: int, buffer) -> dict[str, Any]:
        """episodes.csv (one row per training episode, from the journal) and the phase summary."""
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
        write_atomic(self.loop.seeds[0].dir / "episodes.csv", text.getvalue())
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
            "buffer_rows": {"offline": buffer.offline.size, "online_capacity": buffer.capacity},
        }
