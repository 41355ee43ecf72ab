"""The online phase's replay buffer, and the journal that keeps its transitions on disk.

docs/PROTOCOL.md, 'Online phase': the buffer holds the whole offline set (for the 10M/100M
sets, the shard of the moment) plus every online transition, and batches are sampled
uniformly from their union; RLPD alone draws a fixed fraction from each. Online
transitions are stored as the offline ones are: ``masks = 1 - terminated`` (a time-limit
truncation keeps the mask), ``terminals = 1`` on the last transition of an episode.

`ReplayBuffer` lives on the device; the online part is preallocated at its capacity and
written in place (`add_transition`, jitted with buffer donation), so sampling fuses with
the update as in the offline phase and the buffer's size is data, not a shape: one
compiled update serves the whole phase.

Seeds trained side by side (`bench.training.online`) keep one `SeedBuffers`: the offline set once,
and an online part per seed, stacked along a leading seed axis. Every seed collects one
transition per step, so their sizes are equal; `SeedBuffers.of_seed(i)` is seed i's
`ReplayBuffer`, gathering from the stacked arrays without copying them.

`TransitionJournal` appends every transition to a file the moment it is collected, before
the update of that step, so a killed run loses none of them (see `bench.training.online`).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Self

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from bench.data.batches import ACTION_CLIP, TransitionData, chunk_batch
from bench.errors import BenchError
from trqam.agent import Batch


class _Parts(eqx.Module):
    """The offline data and an online part preallocated at its capacity, of which the first
    ``online_size`` rows are filled (what `ReplayBuffer` and `SeedBuffers` share)."""

    offline: TransitionData
    online: TransitionData  # `capacity` rows ([S, capacity] in SeedBuffers)
    online_size: Int[Array, ""]

    @classmethod
    def create(cls, offline: TransitionData, online: TransitionData, online_size: int) -> Self:
        return cls(offline=offline, online=online, online_size=jnp.asarray(online_size, jnp.int32))

    @property
    def capacity(self) -> int:
        return self.online.rewards.shape[-1]


class ReplayBuffer(_Parts):
    """The offline data followed by the online transitions, indexed as one sequence:
    row ``i`` is ``offline[i]`` for ``i < offline.size``, else ``online[i - offline.size]``.
    With ``seed`` set, the online leaves carry a leading seed axis and this buffer is that
    seed's (`SeedBuffers.of_seed`)."""

    seed: Int[Array, ""] | None = None

    def with_size(self, online_size: int) -> ReplayBuffer:
        """The same buffer seen as holding only its first ``online_size`` online transitions."""
        return eqx.tree_at(lambda b: b.online_size, self, jnp.asarray(online_size, jnp.int32))

    def take(self, name: str, idx: Int[Array, ...]) -> Array:
        n_off = self.offline.size
        from_offline = getattr(self.offline, name)[jnp.clip(idx, 0, n_off - 1)]
        column, row = getattr(self.online, name), jnp.clip(idx - n_off, 0, self.capacity - 1)
        from_online = column[row] if self.seed is None else column[self.seed, row]
        in_offline = (idx < n_off).reshape(idx.shape + (1,) * (from_offline.ndim - idx.ndim))
        return jnp.where(in_offline, from_offline, from_online)

    def sample(
        self, key: PRNGKeyArray, batch_size: int, chunk_len: int, discount: float,
        offline_fraction: float | None = None,
    ) -> Batch:
        """Chunks with uniformly drawn starts, each chunk inside the filled rows.

        ``offline_fraction=None``: starts uniform over the union (every method but RLPD).
        Otherwise that fraction of the batch from the offline rows, the rest from the online rows.
        """
        n_off = self.offline.size
        if offline_fraction is None:
            starts = jax.random.randint(key, (batch_size,), 0, n_off + self.online_size - chunk_len + 1)
        else:
            n_from_offline = int(round(batch_size * offline_fraction))
            off_key, on_key = jax.random.split(key)
            starts = jnp.concatenate([
                jax.random.randint(off_key, (n_from_offline,), 0, n_off - chunk_len + 1),
                n_off + jax.random.randint(on_key, (batch_size - n_from_offline,), 0,
                                           self.online_size - chunk_len + 1),
            ])
        return chunk_batch(self, starts, chunk_len, discount)


class SeedBuffers(_Parts):
    """The replay buffers of S seeds trained side by side: the offline data once, and each
    seed's online part along the leading axis of ``online`` (leaves [S, capacity, ...]; made
    by `online_storage` of several seeds). Every seed adds one transition per step, so one
    ``online_size`` serves them all."""

    def of_seed(self, seed: Int[Array, ""]) -> ReplayBuffer:
        """Seed ``seed``'s buffer: its gathers index the stacked arrays (no copy)."""
        return ReplayBuffer(offline=self.offline, online=self.online, online_size=self.online_size,
                            seed=jnp.asarray(seed, jnp.int32))


class Transition(eqx.Module):
    """One environment step as the buffer stores it (leaves [S, ...] for `add_transitions`)."""

    observation: Float[Array, " obs_dim"]
    action: Float[Array, " act_dim"]
    reward: Float[Array, ""]
    mask: Float[Array, ""]  # 1 - terminated
    terminal: Float[Array, ""]  # 1 when the episode ended here (terminated, truncated or interrupted)
    next_observation: Float[Array, " obs_dim"]


@functools.partial(jax.jit, donate_argnums=0, static_argnames="seed_axis")  # only the online arrays are donated
def _write(online: TransitionData, index: Int[Array, ""], t: Transition, seed_axis: bool = False
           ) -> tuple[TransitionData, Int[Array, ""]]:
    """Row ``index`` of the online arrays set to ``t`` (of every seed, with ``seed_axis``);
    returns them and ``index + 1``."""
    at = (slice(None), index) if seed_axis else index
    written = TransitionData(
        observations=online.observations.at[at].set(t.observation),
        actions=online.actions.at[at].set(t.action),
        rewards=online.rewards.at[at].set(t.reward),
        masks=online.masks.at[at].set(t.mask),
        terminals=online.terminals.at[at].set(t.terminal),
        next_observations=online.next_observations.at[at].set(t.next_observation),
    )
    return written, index + 1


def add_transition(buffer: ReplayBuffer, transition: Transition) -> ReplayBuffer:
    """Append one transition (the caller keeps within `capacity`), writing the online arrays
    in place: they are donated, so the previous buffer's online part must not be used again.
    The offline part is not donated: it is shared with the training data."""
    online, size = _write(buffer.online, buffer.online_size, transition)
    return ReplayBuffer(offline=buffer.offline, online=online, online_size=size)


def add_transitions(buffers: SeedBuffers, transitions: Transition) -> SeedBuffers:
    """Append one transition per seed (leaves [S, ...]), in place as `add_transition` does."""
    online, size = _write(buffers.online, buffers.online_size, transitions, seed_axis=True)
    return SeedBuffers(offline=buffers.offline, online=online, online_size=size)


class TransitionJournal:
    """Every online transition of a run, appended to a flat float32 file as it is collected.

    A record is ``[observation, action, reward, mask, terminal, truncated, next_observation]``,
    with the reward as the buffer holds it (sparse for sparse-reward tasks) and ``truncated``
    1 when the environment's time limit ended the episode. A kill can cut
    only the record being written; `read` drops such a partial tail.
    """

    @classmethod
    def open(cls, path: Path) -> TransitionJournal:
        """An existing journal, with the layout recorded beside it."""
        layout = json.loads(Path(path).with_suffix(".json").read_text())
        return cls(path, layout["obs_dim"], layout["action_dim"])

    def __init__(self, path: Path, obs_dim: int, action_dim: int):
        self.path, self.obs_dim, self.action_dim = Path(path), obs_dim, action_dim
        self.width = 2 * obs_dim + action_dim + 4
        o, a = obs_dim, action_dim
        self.column_slices: dict[str, slice] = {  # where each field lies in a record
            "observation": slice(0, o), "action": slice(o, o + a), "reward": slice(o + a, o + a + 1),
            "mask": slice(o + a + 1, o + a + 2), "terminal": slice(o + a + 2, o + a + 3),
            "truncated": slice(o + a + 3, o + a + 4), "next_observation": slice(o + a + 4, 2 * o + a + 4)}
        self._file = None
        layout = self.path.with_suffix(".json")
        expected = {"format": "float32 records", "obs_dim": obs_dim, "action_dim": action_dim,
                    "fields": ["observation", "action", "reward", "mask", "terminal", "truncated",
                               "next_observation"]}
        if layout.exists() and json.loads(layout.read_text()) != expected:
            raise BenchError(f"online journal {self.path} has another layout ({layout}); it belongs to another "
                             "task or version: move the run directory aside and start again")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        layout.write_text(json.dumps(expected) + "\n")

    def read(self) -> np.ndarray:
        """All complete records, ``[n, width]``; a partial record at the end is cut off the file."""
        if not self.path.exists():
            return np.zeros((0, self.width), np.float32)
        record_bytes = 4 * self.width
        size = self.path.stat().st_size
        if size % record_bytes:
            with open(self.path, "r+b") as f:
                f.truncate(size - size % record_bytes)
        return np.fromfile(self.path, dtype=np.float32).reshape(-1, self.width)

    def __len__(self) -> int:
        return self.path.stat().st_size // (4 * self.width) if self.path.exists() else 0

    def record(self, observation, action, reward: float, terminated: bool, truncated: bool,
               next_observation) -> np.ndarray:
        row = np.empty(self.width, np.float32)
        c = self.column_slices
        row[c["observation"]] = observation
        row[c["action"]] = np.clip(action, -ACTION_CLIP, ACTION_CLIP)
        row[c["reward"]] = reward
        row[c["mask"]] = 0.0 if terminated else 1.0
        row[c["terminal"]] = 1.0 if (terminated or truncated) else 0.0
        row[c["truncated"]] = 1.0 if truncated else 0.0
        row[c["next_observation"]] = next_observation
        return row

    def append(self, row: np.ndarray) -> None:
        if self._file is None:
            self._file = open(self.path, "ab")  # noqa: SIM115 (kept open for the phase)
        self._file.write(row.astype(np.float32).tobytes())
        self._file.flush()  # in the OS's hands: survives the process being killed

    def end_episode_at(self, index: int) -> None:
        """Mark record ``index`` as the last of its episode (a run resumed after a kill
        starts a new episode; the interrupted one ends where its transitions end)."""
        self.close()
        offset = 4 * (index * self.width + self.column_slices["terminal"].start)
        with open(self.path, "r+b") as f:
            f.seek(offset)
            f.write(np.float32(1.0).tobytes())
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def transitions(self, records: np.ndarray) -> dict[str, np.ndarray]:
        """Records as the buffer's columns."""
        c = self.column_slices
        return {"observations": records[:, c["observation"]], "actions": records[:, c["action"]],
                "rewards": records[:, c["reward"]][:, 0], "masks": records[:, c["mask"]][:, 0],
                "terminals": records[:, c["terminal"]][:, 0], "truncated": records[:, c["truncated"]][:, 0],
                "next_observations": records[:, c["next_observation"]]}

    def as_transition(self, rows: np.ndarray) -> Transition:
        """A record ``[width]`` (or records ``[S, width]``, one per seed) as the buffer takes it."""
        c = self.column_slices
        return Transition(observation=jnp.asarray(rows[..., c["observation"]]),
                          action=jnp.asarray(rows[..., c["action"]]), reward=jnp.asarray(rows[..., c["reward"]][..., 0]),
                          mask=jnp.asarray(rows[..., c["mask"]][..., 0]),
                          terminal=jnp.asarray(rows[..., c["terminal"]][..., 0]),
                          next_observation=jnp.asarray(rows[..., c["next_observation"]]))


def online_storage(columns: dict[str, np.ndarray] | list[dict[str, np.ndarray]], capacity: int) -> TransitionData:
    """The buffer's online part: ``capacity`` rows, ``columns`` (as `TransitionJournal.transitions`
    returns them) first, zeros after. A list of column sets gives the stacked parts of several
    seeds (`SeedBuffers`), leaves [S, capacity, ...]."""
    stacked = isinstance(columns, list)
    seeds = columns if stacked else [columns]

    def column(name: str) -> jax.Array:
        values = [np.asarray(c[name], np.float32) for c in seeds]
        full = np.zeros((len(seeds), capacity, *values[0].shape[1:]), np.float32)
        for full_part, part in zip(full, values, strict=True):
            full_part[:len(part)] = part
        return jnp.asarray(full if stacked else full[0])

    return TransitionData(observations=column("observations"), actions=column("actions"),
                          rewards=column("rewards"), masks=column("masks"), terminals=column("terminals"),
                          next_observations=column("next_observations"))
