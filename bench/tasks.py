"""The OGBench tasks the suite knows, with the per-domain facts of docs/PROTOCOL.md.

A *task* is an OGBench singletask name, ``<domain>-singletask-task<k>-v0`` where the
domain includes the dataset type (``cube-double-play``). Its *dataset* is the name of
the files on disk (``cube-double-play-v0.npz`` and ``-val.npz``), and its *environment*
is the gymnasium id without the dataset type (``cube-double-singletask-task1-v0``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench.errors import BenchError, suggest


@dataclass(frozen=True)
class Domain:
    """One of the ten domains of the TRQAM/QAM tables (docs/PROTOCOL.md, 'Tasks')."""

    abbr: str  # the TRQAM table's abbreviation, e.g. "c2"
    name: str  # domain with dataset type, e.g. "cube-double-play"
    chunk_len: int  # h, actions per chunk
    episode_limit: int  # max episode steps of the singletask environment
    sparse_reward: bool  # r <- -1[r != 0]
    paper_dataset: str  # dataset size in the TRQAM paper ("1M", "10M", "100M")


DOMAINS: tuple[Domain, ...] = (
    Domain("al", "antmaze-large-navigate", 1, 1000, False, "1M"),
    Domain("ag", "antmaze-giant-navigate", 1, 1000, False, "10M"),
    Domain("hm", "humanoidmaze-medium-navigate", 1, 2000, False, "1M"),
    Domain("hl", "humanoidmaze-large-navigate", 1, 2000, False, "1M"),
    Domain("scene", "scene-play", 5, 750, True, "1M"),
    Domain("p33", "puzzle-3x3-play", 5, 500, True, "1M"),
    Domain("p44", "puzzle-4x4-play", 5, 500, True, "10M"),
    Domain("c2", "cube-double-play", 5, 500, False, "1M"),
    Domain("c3", "cube-triple-play", 5, 1000, False, "10M"),
    Domain("c4", "cube-quadruple-play", 5, 1000, False, "100M"),
)
DOMAINS_BY_ABBR = {d.abbr: d for d in DOMAINS}
DOMAINS_BY_NAME = {d.name: d for d in DOMAINS}

# The 50 benchmark tasks: 10 domains x tasks 1..5.
TASKS: tuple[str, ...] = tuple(
    f"{d.name}-singletask-task{k}-v0" for d in DOMAINS for k in range(1, 6)
)

# Environments (gymnasium ids without dataset type) ogbench registers in singletask form.
_ROBOTS = ("pointmaze", "antmaze", "humanoidmaze", "antsoccer")
_MAZES = ("medium", "large", "giant", "teleport", "arena")
MANIPULATION_ENVS = (
    "cube-single",
    "cube-double",
    "cube-triple",
    "cube-quadruple",
    "scene",
    "puzzle-3x3",
    "puzzle-4x4",
    "puzzle-4x5",
    "puzzle-4x6",
)
_TASK_RE = re.compile(r"^(?P<domain>[a-z0-9x\-]+?)-singletask(?:-task(?P<k>[1-5]))?-v0$")

# Dataset types ogbench publishes per environment family.
_MANIP_TYPES = ("play", "noisy")
_MAZE_TYPES = ("navigate", "stitch", "explore")


def _known_domains() -> list[str]:
    names = [f"{m}-{t}" for m in MANIPULATION_ENVS for t in _MANIP_TYPES]
    names += [f"{r}-{s}-{t}" for r in _ROBOTS for s in _MAZES for t in _MAZE_TYPES]
    names += [f"{r}-{s}-{t}" for r in ("antsoccer",) for s in ("arena", "medium") for t in ("navigate", "stitch")]
    return names


KNOWN_DOMAINS: frozenset[str] = frozenset(_known_domains())


@dataclass(frozen=True)
class Task:
    """A resolved singletask name and everything the suite derives from it."""

    name: str  # e.g. "cube-double-play-singletask-task1-v0"
    domain: str  # e.g. "cube-double-play"
    task_id: int | None  # 1..5, or None for the default task

    @property
    def dataset(self) -> str:
        """File stem of the dataset, e.g. 'cube-double-play-v0'."""
        return f"{self.domain}-v0"

    @property
    def env_id(self) -> str:
        """gymnasium id of the singletask environment, e.g. 'cube-double-singletask-task1-v0'."""
        base = self.domain.rsplit("-", 1)[0]
        suffix = f"-task{self.task_id}" if self.task_id is not None else ""
        return f"{base}-singletask{suffix}-v0"

    @property
    def info(self) -> Domain | None:
        """Per-domain protocol facts, for the ten benchmark domains."""
        return DOMAINS_BY_NAME.get(self.domain)

    @property
    def chunk_len(self) -> int:
        info = self.info
        if info is not None:
            return info.chunk_len
        return 1 if any(r in self.domain for r in _ROBOTS) else 5

    @property
    def sparse_reward(self) -> bool:
        info = self.info
        if info is not None:
            return info.sparse_reward
        return self.domain.startswith(("scene", "puzzle"))

    @property
    def is_manipulation(self) -> bool:
        return self.domain.startswith(("cube", "scene", "puzzle"))


def resolve_task(name: str) -> Task:
    """Parse and validate a singletask name; raise `BenchError` with suggestions if unknown.

    Accepts the full OGBench name or the short form ``<abbr>-task<k>`` (``c2-task1``).
    """
    short = re.match(r"^(?P<abbr>[a-z0-9]+)-task(?P<k>[1-5])$", name)
    if short and short["abbr"] in DOMAINS_BY_ABBR:
        name = f"{DOMAINS_BY_ABBR[short['abbr']].name}-singletask-task{short['k']}-v0"
    m = _TASK_RE.match(name)
    if m is None or m["domain"] not in KNOWN_DOMAINS:
        candidates = list(
            dict.fromkeys(list(TASKS) + [f"{d}-singletask-task1-v0" for d in sorted(KNOWN_DOMAINS)])
        )
        raise BenchError(
            f"unknown task '{name}'{suggest(name, candidates)}; tasks look like "
            "'cube-double-play-singletask-task1-v0' (or the short form 'c2-task1'); "
            "see `python -m bench tasks` for the list"
        )
    k = m["k"]
    return Task(name=name, domain=m["domain"], task_id=int(k) if k else None)


def resolve_dataset(name: str) -> str:
    """Validate a dataset name such as 'cube-double-play-v0' (the '-v0' may be left out)."""
    stem = name.removesuffix(".npz").removesuffix("-v0")
    if stem not in KNOWN_DOMAINS:
        raise BenchError(
            f"unknown dataset '{name}'{suggest(stem, KNOWN_DOMAINS)}; datasets look like "
            "'cube-double-play-v0'"
        )
    return f"{stem}-v0"
