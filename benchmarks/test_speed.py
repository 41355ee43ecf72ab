"""How close the updates come to the machine's arithmetic limit, and what seeds per program buy.

Run with `nox -s bench`; `summarize.py` turns the records into the tables of
reports/benchmarks/BENCHMARKS.md. Every update here is the training loop's own program,
`bench.training.compiled.train_steps` (K updates per call in a `lax.scan`, S seeds vmapped or mapped,
batches sampled inside the program), on a synthetic dataset with cube-double's shapes.

* `test_update`: every method at the quick and paper sizes: time per update, FLOPs per
  update (trip-count-aware count of the jaxpr, and XLA's cost analysis, which counts loop
  bodies once), achieved FLOP/s and its ratio to the matmul ceiling measured in this run.
* `test_vectorised_seeds`: per-seed update throughput with S = 1, 4 and 8 seeds per program,
  the seeds vmapped or mapped (`bench.training.compiled`'s ``seed_axis``).
* `test_trqam_breakdown`: where TRQAM's paper-size update spends its time, and the critic
  layout change that removed the largest waste (members outer, `CriticEnsemble.on_batch`).
* `test_training_loop_split`: a real training run (quick profile, cube-single): the share of
  wall time spent outside the compiled update.
"""

from __future__ import annotations

import dataclasses
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

from bench.config.methods import METHODS
from bench.config.profiles import PROFILES
from bench.data.batches import sample_batch
from bench.training import compiled
from benchmarks.common import CHUNK, make_agent, synthetic_data
from benchmarks.flops import matmul_ceiling, program_flops, xla_flops

SIZES = ("quick", "paper")


@pytest.fixture(scope="module")
def data():
    return synthetic_data(100_000)


@pytest.fixture(autouse=True)
def _release_programs():
    """Drop each test's compiled programs after it: a process holding this module's hundred
    and more CPU executables at once was once aborted by XLA while compiling the next one."""
    yield
    jax.clear_caches()


@pytest.fixture(scope="module")
def ceiling() -> dict[str, float]:
    """The matmul ceiling, measured once at the start of this module's run."""
    return matmul_ceiling()


def _device() -> str:
    device = jax.devices()[0]
    return f"{device.platform}: {device.device_kind}"


def _program(data, size: str, count: int, seed_axis: compiled.SeedAxis = "auto"):
    """``run(params, keys)``: ``count`` updates of the stacked agents (the loop's program)."""
    profile = PROFILES[size]

    def run(agents, keys):
        return compiled.train_steps(agents, data, keys, jnp.asarray(0), count, profile.batch_size, CHUNK,
                                    profile.discount, seed_axis)
    return run


def _time(call, rounds: int) -> float:
    """The fastest of ``rounds`` calls (seconds)."""
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        jax.block_until_ready(call())
        best = min(best, time.perf_counter() - began)
    return best


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("method", sorted(METHODS))
def test_update(benchmark, data, ceiling, method, size):
    """One seed, K updates per call: time, FLOPs and the share of the matmul ceiling."""
    count = 10 if size == "quick" else 3
    agents = compiled.stack([make_agent(method, size, data)])
    keys = jax.random.split(jax.random.key(1), 1)
    run = _program(data, size, count)
    params, static = eqx.partition(agents, eqx.is_array)

    def of_params(p, k):
        return run(eqx.combine(p, static), k)

    flops = program_flops(of_params, params, keys) / count
    executable = jax.jit(of_params).lower(params, keys).compile()
    flops_once = xla_flops(executable)
    jax.block_until_ready(executable(params, keys))
    benchmark.pedantic(lambda: jax.block_until_ready(executable(params, keys)), rounds=3, iterations=1)
    profile = PROFILES[size]
    benchmark.extra_info.update(
        table="updates", unit="updates", items_per_call=count, method=method, size=size,
        hidden_sizes=list(profile.hidden_sizes), num_critics=profile.num_critics, batch_size=profile.batch_size,
        gflop_per_update=round(flops / 1e9, 3), xla_gflop_loops_once=round(flops_once / 1e9, 3),
        ceiling_gflop_per_s=round(ceiling["flop_per_s"] / 1e9, 1), device=_device(),
    )


@pytest.mark.parametrize(("seeds", "seed_axis"), [(1, "one"), (4, "vmap"), (4, "map"), (8, "vmap"), (8, "map")])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_vectorised_seeds(benchmark, data, method, seeds, seed_axis):
    """S seeds in one program at the quick size, the seed axis vmapped or mapped (one seed
    needs neither): seed-updates per second."""
    count = 5
    agents = compiled.stack([make_agent(method, "quick", data, s) for s in range(seeds)])
    keys = jax.random.split(jax.random.key(1), seeds)
    run = _program(data, "quick", count, "auto" if seeds == 1 else seed_axis)
    jax.block_until_ready(run(agents, keys))  # compile
    benchmark.pedantic(lambda: jax.block_until_ready(run(agents, keys)), rounds=2, iterations=1)
    benchmark.extra_info.update(table="seeds", unit="seed-updates", items_per_call=count * seeds, method=method,
                                seeds=seeds, seed_axis=seed_axis, size="quick", device=_device())


def _batch_outer_q(critic, obs, actions):
    """The critic evaluation before the layout change: vmap over the batch, members inside."""
    return jax.vmap(critic)(obs, actions)


def _part(name: str, fn, subject) -> dict:
    """Time (best of 3) and FLOPs of ``fn(subject)`` compiled alone."""
    params, static = eqx.partition(subject, eqx.is_array)
    jitted = jax.jit(lambda p: fn(eqx.combine(p, static)))
    flops = program_flops(lambda p: fn(eqx.combine(p, static)), params)
    jax.block_until_ready(jitted(params))
    seconds = _time(lambda: jitted(params), rounds=3)
    return {"part": name, "ms": round(seconds * 1e3, 1), "gflop": round(flops / 1e9, 2),
            "gflop_per_s": round(flops / seconds / 1e9, 1)}


def test_trqam_breakdown(benchmark, data):
    """The parts of TRQAM's paper-size update, each compiled alone, with FLOPs and rates;
    and the critic evaluated in the old (batch outer) and new (members outer) layouts."""
    agent = make_agent("trqam", "paper", data)
    batch = sample_batch(data, jax.random.key(2), 256, CHUNK, 0.99)
    key = jax.random.key(3)
    inputs = eqx.filter_jit(lambda a, b, k: a.actor_inputs(b, k))(agent, batch, key)

    def optimiser(a):
        params = eqx.filter(a.nets, eqx.is_array)
        updates, state = a.optimizer(a.config).update(params, a.opt_state, params)
        return eqx.apply_updates(a.nets, updates), state

    parts = {
        "whole update": lambda a: a.update(batch, key),
        "actor inputs: SDE rollout, grad_a Q, lean adjoint": lambda a: a.actor_inputs(batch, key),
        "critic loss and gradient (with the TD target's Euler sampling)":
            lambda a: eqx.filter_grad(lambda n: a.critic_loss(n, batch, key)[0])(a.nets),
        "  of which: the TD target's Euler sampling": lambda a: a.next_actions(a.nets, batch.next_observations, key),
        "actor loss and gradient (adjoint matching)":
            lambda a: eqx.filter_grad(lambda n: a.actor_loss(n, batch, inputs, key)[0])(a.nets),
        "BC flow loss and gradient": lambda a: eqx.filter_grad(lambda n: a.flow_loss(n, batch, inputs, key))(a.nets),
        "Adam step (clipped)": optimiser,
    }
    critic = agent.nets["critic"]
    obs, actions = batch.observations, batch.actions
    layouts = {
        "critic forward+backward, batch outer (before)": lambda c: eqx.filter_grad(
            lambda c: jnp.sum(_batch_outer_q(c, obs, actions) ** 2))(c),
        "critic forward+backward, members outer (now)": lambda c: eqx.filter_grad(
            lambda c: jnp.sum(c.on_batch(obs, actions) ** 2))(c),
        "grad_a Q, batch outer (before)": lambda c: jax.grad(lambda a: jnp.sum(_batch_outer_q(c, obs, a)))(actions),
        "grad_a Q, members outer (now)": lambda c: jax.grad(lambda a: jnp.sum(c.on_batch(obs, a)))(
            actions),
    }
    rows = [_part(name, fn, subject) for table, subject in ((parts, agent), (layouts, critic))
            for name, fn in table.items()]
    params, static = eqx.partition(agent, eqx.is_array)
    whole = jax.jit(lambda p: eqx.combine(p, static).update(batch, key))
    benchmark.pedantic(lambda: jax.block_until_ready(whole(params)), rounds=1, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(table="breakdown", unit="updates", items_per_call=1, rows=rows)


def test_training_loop_split(benchmark, tmp_path):
    """TRQAM from scratch, 500 offline steps at the quick size on regenerated cube-single data,
    through the real loop (`bench.training.pipeline`), evaluated once at the end: where the wall time
    goes, and the share of the loop's time (after creating the agents and the first,
    compiling call; evaluation apart) spent outside the compiled updates (logging,
    validation, checkpoints, host calls)."""
    from bench.config import profiles
    from bench.training.pipeline import RunConfig, train

    profile = dataclasses.replace(PROFILES["quick"], name="bench-loop", offline_steps=500, eval_every=10**9,
                                  checkpoint_every=250)
    profiles.PROFILES["bench-loop"] = profile
    try:
        summaries = []
        benchmark.pedantic(lambda: summaries.append(train(RunConfig(
            "trqam", "cube-single-play-singletask-task1-v0", profile="bench-loop", init="scratch",
            out=tmp_path / f"run{len(summaries)}"), progress=False)), rounds=1, iterations=1)
    finally:
        del profiles.PROFILES["bench-loop"]
    split = summaries[-1]["time_split_s"]
    # The loop between compile and evaluation ("setup": creating the agents; absent from older summaries).
    steady = split["total"] - split.get("setup", 0.0) - split["first_call"] - split["evaluation"]
    benchmark.extra_info.update(table="loop", unit="steps", items_per_call=500, **split,
                                outside_share=round(1 - split["updates"] / steady, 4))
