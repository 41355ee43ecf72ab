"""TRQAM's update beside the authors' (github.com/yonghdong/trqam), in one process, on one batch.

The authors' agent is imported at run time from a checkout named by ``TRQAM_REFERENCE_DIR``, as
`parity.generate` imports it (never copied here); it needs the ``parity`` extra (flax, distrax,
ml_collections, TensorFlow Probability). Without either the benchmark is skipped, saying which.
Both sides get the same config, built the way the parity fixtures build it: the authors' own
defaults at a profile's sizes (cube-double's shapes: observation 37, action 5, chunks of 5), and
ours from that config through `parity.compare.OURS` (the mapping the parity replays check). Both
updates are compiled ahead of time (the training loop runs many updates per host call, so what
counts is the compiled update, not a call's dispatch); the rounds alternate between the two sides so that a load on
the machine falls on both alike. ``summarize.py`` puts them side by side with the ratio.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
from pathlib import Path

import equinox as eqx
import jax
import pytest

from bench.config.profiles import PROFILES
from benchmarks.common import ACT_DIM, CHUNK, OBS_DIM

ROUNDS = {"quick": 40, "paper": 10}  # about 4 s and 10 s of updates


def reference_dir() -> Path:
    value = os.environ.get("TRQAM_REFERENCE_DIR")
    if not value:
        pytest.skip("the authors' update needs TRQAM_REFERENCE_DIR=<checkout of github.com/yonghdong/trqam>")
    path = Path(value)
    if not (path / "agents" / "trqam.py").is_file():
        pytest.skip(f"TRQAM_REFERENCE_DIR={path} holds no agents/trqam.py: point it at a checkout of yonghdong/trqam")
    missing = [m for m in ("flax", "distrax", "ml_collections") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the authors' agent needs {', '.join(missing)}: pip install -e '.[parity]'")
    return path


def setting_for(size: str):
    from parity.setting import Setting

    profile = PROFILES[size]
    return Setting(obs_dim=OBS_DIM, action_dim=ACT_DIM, chunk_len=CHUNK, batch_size=profile.batch_size,
                   hidden=profile.hidden_sizes, num_critics=profile.num_critics, flow_steps=profile.flow_steps,
                   discount=profile.discount, num_batches=1)


def both_updates(size: str, reference: Path):
    """(the authors' compiled update, ours), each a function of no arguments that runs one update
    on the same batch and blocks until it is done."""
    from parity.compare import OURS
    from parity.generate import plain, reference_config, use_repository
    from parity.setting import make_batches, to_ours

    setting = setting_for(size)
    use_repository(reference)
    module = importlib.import_module("agents.trqam")
    config = reference_config(module, setting, {})
    batch = make_batches(setting)[0]
    theirs = module.TRQAMAgent.create(setting.seed, batch["observations"][0], batch["actions"][0, 0], config)
    their_batch = jax.device_put(batch)

    cls, ours_config = OURS["trqam"].build(plain(config))
    our_batch = to_ours(batch)
    ours = cls.create(our_batch, ours_config, jax.random.key(setting.seed))
    arrays, static = eqx.partition(ours, eqx.is_array)
    key = jax.random.key(1)

    def our_update(arrays, batch, key):
        return eqx.filter(eqx.combine(arrays, static).update(batch, key), eqx.is_array)

    # Both compiled ahead of time: the timed calls run the compiled update and nothing else
    # (no tracing, no cache lookup, no filtering of the agent's tree on either side).
    theirs_compiled = jax.jit(lambda agent, batch: agent.update(batch)).lower(theirs, their_batch).compile()
    ours_compiled = jax.jit(our_update).lower(arrays, our_batch, key).compile()

    def run_theirs():
        jax.block_until_ready(theirs_compiled(theirs, their_batch))

    def run_ours():
        jax.block_until_ready(ours_compiled(arrays, our_batch, key))

    run_theirs(), run_ours()
    return run_theirs, run_ours, setting


@pytest.mark.parametrize("size", ["quick", "paper"])
def test_authors_update(benchmark, size):
    """Ours is timed by pytest-benchmark; the authors' rounds run between ours (alternating), and
    both sides' per-round seconds are stored for the table."""
    import time

    reference = reference_dir()
    run_theirs, run_ours, setting = both_updates(size, reference)
    times = {"authors": [], "ours": []}

    def timed(side, fn):
        start = time.perf_counter()
        fn()
        times[side].append(time.perf_counter() - start)

    def one_round():  # which side goes first alternates, so neither always runs on a just-warmed cache
        sides = [("authors", run_theirs), ("ours", run_ours)]
        for side, fn in sides if len(times["ours"]) % 2 else sides[::-1]:
            timed(side, fn)

    benchmark.pedantic(one_round, rounds=ROUNDS[size], iterations=1, warmup_rounds=1)
    ref_commit = subprocess.run(["git", "-C", str(reference), "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or "unknown"
    benchmark.extra_info.update(
        table="authors", unit="rounds", items_per_call=1, method="trqam", size=size,
        hidden=list(setting.hidden), num_critics=setting.num_critics, batch_size=setting.batch_size,
        authors_seconds=times["authors"][1:], ours_seconds=times["ours"][1:], reference_commit=ref_commit)
