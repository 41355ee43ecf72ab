"""Parity with the authors' code: the committed fixtures (tests/parity, written by
`nox -s parity` from github.com/yonghdong/trqam) replayed through our agents.

Each fixture holds the reference's parameters, batches and random draws; our agent loads
the parameters, replays the draws and must reproduce every recorded quantity (network
outputs, TD-target actions, adjoint rollout and adjoints, gradients, metrics, parameters
and dual variables after one update and after 200) to relative 1e-5 (parity/compare.py).
"""

from __future__ import annotations

import pytest

from parity.compare import FIXTURES, compare_fixture, fixture_paths

PATHS = fixture_paths()
# The TRQAM table's methods whose fixtures must be present (each in both settings).
REQUIRED = {"trqam", "qam", "fql", "ifql"}


def test_every_required_method_has_fixtures():
    present = {path.stem for path in PATHS}
    missing = {f"{m}-{s}" for m in REQUIRED for s in ("one_update", "trajectory")} - present
    assert not missing, f"no parity fixture for {sorted(missing)} in {FIXTURES}"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_matches_reference(path):
    rows = compare_fixture(path)
    assert len(rows) >= 10
    failures = [f"{r.quantity}: ours {r.ours:.7g}, reference {r.reference:.7g}, rel {r.rel:.2e} > {r.tolerance:.0e}"
                for r in rows if not r.ok]
    assert not failures, "\n".join(failures)
