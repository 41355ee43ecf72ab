"""The method registry: CLI name -> agent class and its configuration.

CLI names are the papers' table names in lower case. A method listed in `PLANNED`
is part of the suite's scope but not implemented in this version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from baselines.bc import FlowBC, FlowBCConfig
from bench.errors import BenchError, suggest
from bench.profiles import Profile
from bench.tasks import Task


@dataclass(frozen=True)
class Method:
    name: str
    agent_cls: type
    make_config: Callable[[Profile, Task], Any]
    paper: str  # where the method comes from


def _bc_config(profile: Profile, task: Task) -> FlowBCConfig:
    return FlowBCConfig(
        hidden_sizes=profile.hidden_sizes,
        layer_norm=profile.actor_layer_norm,
        learning_rate=profile.learning_rate,
        flow_steps=profile.flow_steps,
    )


METHODS: dict[str, Method] = {
    "bc": Method("bc", FlowBC, _bc_config, "flow behaviour cloning (QAM paper, arXiv 2601.14234)"),
}

# Every name the suite will accept once its issue lands.
PLANNED = (
    "fql dsrl ifql cgql cgql-m cgql-l qam qam-e qam-f bam trqam rebrac fbrac fawac fedit qsm dac rlpd"
).split()


def get_method(name: str) -> Method:
    if name in METHODS:
        return METHODS[name]
    valid = sorted(METHODS) + PLANNED
    if name in PLANNED:
        raise BenchError(
            f"method '{name}' is not implemented in this version of trqam-bench; "
            f"available now: {', '.join(sorted(METHODS))}"
        )
    raise BenchError(f"unknown method '{name}'{suggest(name, valid)}; valid methods: {', '.join(valid)}")
