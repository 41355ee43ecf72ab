"""The compiled training step: K updates per host call, S seeds per program.

The agents of S seeds are stacked along a leading axis (`stack`) and trained by one
program (`train_steps`): a `lax.scan` over K updates, each sampling its batch inside the
program from ``fold_in(step_key, step)``, so the host only dispatches once per K updates
and the batches are exactly those of a one-update-per-call loop. Every method's update is
a pure function of (agent, batch, key), so every method runs over a seed axis; the
dataset is shared by the seeds (not copied). How the program walks the seed axis
(``seed_axis``):

* ``"vmap"``: `eqx.filter_vmap` over the seeds' parameters, optimiser states and keys, so
  every product is batched over the seeds (what fills an accelerator);
* ``"map"``: `lax.map`, the seeds one after another inside the one program. On a CPU the
  unbatched products are faster than batched ones (`nox -s bench`, "Seeds in one program"),
  while the program still shares one compilation, one dataset and one set of
  evaluation environments among its seeds;
* ``"auto"`` (the default): ``"map"`` on a CPU backend, ``"vmap"`` on any other.

    agents = stack([agent_seed0, agent_seed1])        # leading axis: seeds
    agents, metrics = train_steps(agents, data, step_keys, jnp.asarray(first), count, ...)
    unstack(agents, 1)                                # seed 1's agent, for saving or acting

The other programs of the loop live here too: validation, evaluation's acting, and the
online phase's acting and update (every seed, one update per environment step), which walk
the seed axis the same way (`over_seeds`).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import re
from collections.abc import Sequence
from typing import Literal, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PRNGKeyArray

from bench.data.batches import TransitionData, sample_batch
from bench.data.replay import SeedBuffers
from bench.errors import BenchError
from trqam.agent import Metrics

AgentT = TypeVar("AgentT", bound=eqx.Module)
SeedAxis = Literal["auto", "vmap", "map"]
SEED_AXES = ("auto", "vmap", "map")


def resolve_seed_axis(seed_axis: SeedAxis) -> Literal["vmap", "map"]:
    """``"auto"`` as the layout it stands for on this backend (see the module docstring)."""
    if seed_axis not in SEED_AXES:
        raise BenchError(f"unknown seed axis {seed_axis!r}: choose one of {', '.join(SEED_AXES)}")
    if seed_axis == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return seed_axis


def stack(agents: Sequence[AgentT]) -> AgentT:
    """S agents of one structure as one agent whose arrays have a leading seed axis."""
    params = [eqx.filter(a, eqx.is_array) for a in agents]
    static = eqx.filter(agents[0], eqx.is_array, inverse=True)
    return eqx.combine(jax.tree.map(lambda *xs: jnp.stack(xs), *params), static)


@eqx.filter_jit
def _take(agents: AgentT, index: Int[Array, ""]) -> AgentT:
    return jax.tree.map(lambda x: x[index] if eqx.is_array(x) else x, agents)


def _expand(agent: AgentT) -> AgentT:
    return jax.tree.map(lambda x: x[None] if eqx.is_array(x) else x, agent)


def unstack(agents: AgentT, index: int) -> AgentT:
    """Seed ``index``'s agent out of a stack (one compiled gather, whatever the index)."""
    return _take(agents, jnp.asarray(index, jnp.int32))


@eqx.filter_jit
def train_steps(
    agents: AgentT,
    data: TransitionData,
    step_keys: PRNGKeyArray,  # [S]: each seed's phase key
    first: Int[Array, ""],  # the steps run are first .. first + count - 1 (a traced value: no recompile)
    count: int,
    batch_size: int,
    chunk_len: int,
    discount: float,
    seed_axis: SeedAxis = "auto",
) -> tuple[AgentT, Metrics]:
    """``count`` updates of every seed; returns the agents and each seed's metrics of the last
    update (leaves [S])."""

    def one_seed(agent, step_key):
        def update(agent, step):
            batch_key, update_key = jax.random.split(jax.random.fold_in(step_key, step))
            return agent.update(sample_batch(data, batch_key, batch_size, chunk_len, discount), update_key)

        agent, metrics = jax.lax.scan(update, agent, first + jnp.arange(count))
        return agent, jax.tree.map(lambda m: m[-1], metrics)

    return over_seeds(one_seed, agents, (step_keys,), seed_axis)


def over_seeds(fn, agents: AgentT, per_seed: tuple, seed_axis: SeedAxis):
    """``fn(agent, *args)`` for every seed, inside a compiled program: ``agents`` stacked,
    each leaf of ``per_seed`` with a leading seed axis [S]; every array of the result gets one.
    One seed: no vmap (batched products of batch size 1 are slower on the CPU)."""
    if jax.tree.leaves(per_seed)[0].shape[0] == 1:
        out = fn(_take(agents, 0), *jax.tree.map(lambda x: x[0], per_seed))
        return _expand(out)
    if resolve_seed_axis(seed_axis) == "vmap":
        return eqx.filter_vmap(fn)(agents, *per_seed)
    params, static = eqx.partition(agents, eqx.is_array)
    out_static = []  # the result's non-array part, recorded when the body is traced

    def body(inputs):
        arrays, out = eqx.partition(fn(eqx.combine(inputs[0], static), *inputs[1]), eqx.is_array)
        out_static.append(out)
        return arrays

    arrays = jax.lax.map(body, (params, per_seed))
    return eqx.combine(arrays, out_static[0])


@eqx.filter_jit
def validation_metrics(agent: eqx.Module, data: TransitionData, key: PRNGKeyArray, batch_size: int, chunk_len: int,
                       discount: float) -> Metrics:
    """One agent's training losses on a held-out batch (logged beside the training metrics)."""
    batch_key, loss_key = jax.random.split(key)
    return agent.validation_metrics(sample_batch(data, batch_key, batch_size, chunk_len, discount), loss_key)


@eqx.filter_jit
def online_update(agents: AgentT, buffers: SeedBuffers, update_keys: PRNGKeyArray, step: Int[Array, ""],
                  batch_size: int, chunk_len: int, discount: float, offline_fraction: float | None,
                  seed_axis: SeedAxis = "auto") -> tuple[AgentT, Metrics]:
    """One update of the online phase for every seed (one per environment step), each on a
    batch from its own replay buffer with the key ``fold_in(update_keys[i], step)``."""

    def one_seed(agent, update_key, seed):
        batch_key, key = jax.random.split(jax.random.fold_in(update_key, step))
        batch = buffers.of_seed(seed).sample(batch_key, batch_size, chunk_len, discount, offline_fraction)
        return agent.update(batch, key)

    seeds = jnp.arange(update_keys.shape[0])
    return over_seeds(one_seed, agents, (update_keys, seeds), seed_axis)


@eqx.filter_jit
def sample_actions(agent: eqx.Module, observations, key: PRNGKeyArray):
    """One agent's actions for a batch of observations (evaluation)."""
    return agent.sample_actions(observations, key)


@eqx.filter_jit
def sample_seed_actions(agents: eqx.Module, observations, act_keys: PRNGKeyArray, step: Int[Array, ""],
                        seed_axis: SeedAxis = "auto"):
    """Each seed's actions for its own observations ([S, B, obs_dim]) with the key
    ``fold_in(act_keys[i], step)`` (the online phase's acting)."""
    return over_seeds(lambda agent, obs, key: agent.sample_actions(obs, jax.random.fold_in(key, step)),
                      agents, (observations, act_keys), seed_axis)


class CompileLog(logging.Handler):
    """Records every program XLA compiles while active (``jax.log_compiles``), by name and
    argument signature:

        with CompileLog() as log:
            ...
        log.names       # ['jit(train_steps)', ...]
        log.repeated(['train_steps'])  # compiled twice for the same signature: recompilations
    """

    LOGGER = "jax._src.interpreters.pxla"

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.compiled: list[tuple[str, str]] = []  # (name, argument shapes and types)
        self._stack = contextlib.ExitStack()

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.compiled]

    def emit(self, record: logging.LogRecord) -> None:
        match = re.match(r"Compiling (\S+) with global shapes and types (.*)\. Argument mapping", record.getMessage())
        if match:
            self.compiled.append((match.group(1), match.group(2)))

    def count(self, name: str) -> int:
        return self.names.count(f"jit({name})")

    def repeated(self, names: Sequence[str]) -> list[str]:
        """Those of ``names`` compiled more than once for the same argument signature. (Eager
        primitives recompile per static parameter, which the signature does not show.)"""
        seen = collections.Counter(c for c in self.compiled if c[0] in {f"jit({n})" for n in names})
        return [name for (name, _), n in seen.items() if n > 1]

    def __enter__(self) -> CompileLog:
        logger = logging.getLogger(self.LOGGER)
        self._stack.enter_context(jax.log_compiles())
        logger.addHandler(self)
        self._stack.callback(logger.removeHandler, self)
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()
