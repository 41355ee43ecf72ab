"""Peak memory of the online replay buffer at paper size (docs/PROTOCOL.md, 'Online phase').

The paper profile's buffer is the offline set plus 500K online transitions; for the
10M/100M sets only the current 1M shard is resident (shards rotate). Measured in a fresh
process (`benchmarks.replay_memory`) for the largest observation (puzzle-4x4, a 10M set:
one shard) and the largest action (humanoidmaze, a 1M set). The time is that of the whole
measurement; the memory figures are in the details column.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.config.profiles import get_profile

CASES = {"puzzle-4x4 (83-d obs, 10M set: one 1M shard)": (83, 5), "humanoidmaze (69-d obs, 21-d action)": (69, 21)}


@pytest.mark.parametrize("case", list(CASES))
def test_replay_buffer_memory_at_paper_size(benchmark, case):
    obs_dim, action_dim = CASES[case]
    online = get_profile("paper").online_steps
    result = {}

    def measure():
        out = subprocess.run([sys.executable, "-m", "benchmarks.replay_memory", "--obs-dim", str(obs_dim),
                              "--action-dim", str(action_dim), "--offline", "1000000", "--online", str(online)],
                             capture_output=True, text=True, check=True)
        result.update(json.loads(out.stdout.strip().splitlines()[-1]))

    benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(unit="buffers", items_per_call=1, case=case, **result,
                                machine=get_profile("paper").machine)
    assert result["online_capacity"] == 500_000
    assert result["buffer_gib"] < 2.0  # about 1 GiB: far inside the paper machine's 80 GB
