"""The interface every method implements, and the training batch it consumes.

An agent is an immutable Equinox module holding its networks and optimiser state.
Training is a pure function of (agent, batch, key); the harness jits it at the boundary.

    agent = Method.create(example_batch, config, key)
    agent, metrics = agent.update(batch, key)          # one gradient step
    actions = agent.sample_actions(observations, key)  # [B, h*|A|], in [-1, 1]
    save_agent(path, agent); agent = load_agent(path, template)
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray


class Batch(eqx.Module):
    """A batch of action chunks of length h (flattened to ``action_dim = h * |A|``).

    ``rewards`` is the discounted chunk reward ``sum_{i<h} gamma^i r_{t+i}`` (steps after
    an episode end contribute nothing), ``masks`` the min of the chunk's masks (0 once a
    goal is reached), ``next_observations`` the observation at t+h, and ``valid[:, i]``
    is 0 when step i of the chunk lies past the end of the episode.
    """

    observations: Float[Array, "batch obs_dim"]
    actions: Float[Array, "batch action_dim"]
    rewards: Float[Array, " batch"]
    masks: Float[Array, " batch"]
    next_observations: Float[Array, "batch obs_dim"]
    valid: Float[Array, "batch chunk"]


Metrics = dict[str, Float[Array, ""]]
AgentT = TypeVar("AgentT", bound=eqx.Module)


class Agent(Protocol):
    """What every method provides (see `baselines.bc.FlowBC` for the simplest)."""

    @classmethod
    def create(cls, example_batch: Batch, config: Any, key: PRNGKeyArray) -> Self: ...

    def update(self, batch: Batch, key: PRNGKeyArray) -> tuple[Self, Metrics]:
        """One gradient step; returns the new agent and scalar metrics."""
        ...

    def validation_metrics(self, batch: Batch, key: PRNGKeyArray) -> Metrics:
        """The training losses on a held-out batch, without updating."""
        ...

    def sample_actions(
        self, observations: Float[Array, "batch obs_dim"], key: PRNGKeyArray
    ) -> Float[Array, "batch action_dim"]:
        """Actions (flattened chunks) for a batch of observations, clipped to [-1, 1]."""
        ...


def checksum_path(path: str | Path) -> Path:
    """Where `save_agent` keeps the sha256 of ``path``: ``PATH.sha256`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


class CorruptAgentFile(ValueError):
    """A saved agent whose bytes do not match its recorded sha256 (or that has none)."""


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_agent(path: str | Path, agent: eqx.Module) -> None:
    """Serialise an agent's arrays to ``path`` atomically (temp file, then rename), then its
    sha256 to `checksum_path`, which `load_agent` checks."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, agent)
    data = buffer.getvalue()
    _write_atomic(path, data)
    _write_atomic(checksum_path(path), hashlib.sha256(data).hexdigest().encode() + b"\n")


def agent_file_problem(path: str | Path) -> str | None:
    """Why the agent file at ``path`` cannot be trusted (missing, no checksum, sha256
    mismatch), or None when its bytes are the ones `save_agent` wrote."""
    path = Path(path)
    if not path.is_file():
        return f"{path} does not exist"
    recorded = checksum_path(path)
    if not recorded.is_file():
        return f"{path} has no checksum ({recorded.name})"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != recorded.read_text().strip():
        return f"{path} is corrupt: its sha256 differs from the one recorded when it was saved"
    return None


def load_agent(path: str | Path, template: AgentT) -> AgentT:
    """Load arrays saved by `save_agent` into an agent of the same structure, after checking
    the file's sha256 (`CorruptAgentFile` otherwise)."""
    problem = agent_file_problem(path)
    if problem is not None:
        raise CorruptAgentFile(problem)
    with open(path, "rb") as f:
        return eqx.tree_deserialise_leaves(f, template)
