"""Parity with the authors' code: the committed fixtures (tests/parity, written by
`nox -s parity` from github.com/yonghdong/trqam and github.com/ColinQiyangLi/qam) replayed
through our agents.

Each fixture holds the reference's parameters, batches and random draws; our agent loads
the parameters, replays the draws and must reproduce every recorded quantity (network
outputs, TD-target actions, adjoint rollout and adjoints, gradients, metrics, parameters
and dual variables after one update and after 200) to relative 1e-5 after one update and
1e-4 after 200 (parity/compare.py says why).
"""

from __future__ import annotations

import pytest

from parity.compare import FIXTURES, compare_fixture, fixture_paths

PATHS = fixture_paths()
# The methods whose fixtures must be present (each in both settings): the TRQAM table's
# seven, then the QAM paper's other ten.
REQUIRED = {"trqam", "qam", "qam-e", "fql", "dsrl", "ifql", "cgql-l",
            "qam-f", "bam", "cgql", "cgql-m", "rebrac", "fawac", "fbrac", "fedit", "qsm", "dac", "rlpd"}


def test_every_required_method_has_fixtures():
    present = {path.stem for path in PATHS}
    missing = {f"{m}-{s}" for m in REQUIRED for s in ("one_update", "trajectory")} - present
    assert not missing, f"no parity fixture for {sorted(missing)} in {FIXTURES}"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_matches_reference(path):
    rows = compare_fixture(path)
    assert any(r.quantity.startswith("metric") for r in rows), "no logged metric was compared"
    assert any(" update" in r.quantity and "after" in r.quantity for r in rows), "no parameters were compared"
    failures = [f"{r.quantity}: ours {r.ours:.7g}, reference {r.reference:.7g}, rel {r.rel:.2e} > {r.tolerance:.0e}"
                for r in rows if not r.ok]
    assert not failures, "\n".join(failures)


# ---- reference behaviour the fixtures do not cover ------------------------------------------
def _plain_qam_pair(variant_cls, variant_config):
    import jax
    import numpy as np

    from parity.setting import ONE_UPDATE, make_batches, to_ours
    from trqam.qam import QAM, QAMConfig

    batch = to_ours(make_batches(ONE_UPDATE)[0])
    fields = dict(hidden_sizes=(32, 32), num_critics=2, chunk_len=ONE_UPDATE.chunk_len, inv_temp=1.0)
    qam = QAM.create(batch, QAMConfig(**fields), jax.random.key(0))
    variant = variant_cls.create(batch, variant_config(**fields), jax.random.key(0))
    for agent in (qam, variant):
        assert set(agent.nets) == {"critic", "actor_slow", "actor_fast"}
    key = jax.random.key(1)
    (qam_after, _), (variant_after, _) = qam.update(batch, key), variant.update(batch, key)
    for a, b in zip(jax.tree.leaves(qam_after.nets), jax.tree.leaves(variant_after.nets), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(qam.sample_actions(batch.observations, key)),
                                  np.asarray(variant.sample_actions(batch.observations, key)))


def test_qam_f_with_fql_alpha_zero_is_plain_qam():
    """Puzzle-3x3 and cube-double: the reference builds no one-step policy and runs QAM."""
    from trqam.qam import QAMF, QAMFConfig

    _plain_qam_pair(QAMF, lambda **f: QAMFConfig(**f, fql_alpha=0.0))


def test_qam_e_with_edit_scale_zero_is_plain_qam():
    """Scene and cube-double: no edit policy at all, as in the reference."""
    from trqam.qam import QAME, QAMEConfig

    _plain_qam_pair(QAME, lambda **f: QAMEConfig(**f, edit_scale=0.0))


# ---- the per-domain configurations the profiles run (issue 30, item 5) -------------------------
def _domain_records() -> dict[str, dict]:
    import json

    fixtures = json.loads((FIXTURES / "provenance.json").read_text())["fixtures"]
    return {name: r for name, r in fixtures.items() if "profile" in r}


def test_every_method_has_a_fixture_at_a_domain_the_profiles_run():
    """Each method is replayed at least once through the config a profile that runs it builds at
    one of its domains, from the authors' per-domain values (not the method's default)."""
    from bench.config.profiles import get_profile
    from parity.generate import DOMAIN_FIXTURES

    records = _domain_records()
    assert {f"{f.name}.npz" for f in DOMAIN_FIXTURES} <= set(records), "run nox -s parity -- --domain-fixtures"
    assert {r["method"] for r in records.values()} == REQUIRED
    for name, record in records.items():
        assert record["method"] in get_profile(record["profile"]).methods, name
        assert (FIXTURES / name).is_file(), name


def test_a_wrong_per_domain_value_fails_the_domain_fixture(monkeypatch):
    from bench.config import hyperparams as hp

    path = FIXTURES / "fql@al-paper.npz"
    assert all(r.ok for r in compare_fixture(path))
    monkeypatch.setitem(hp.FQL_ALPHA, "al", 30)  # the value of another domain (hm)
    assert not all(r.ok for r in compare_fixture(path))
    monkeypatch.undo()
    monkeypatch.setitem(hp.RHO_OVERRIDES, "hm", 0.5)  # humanoidmaze's rho 0 forgotten
    assert not all(r.ok for r in compare_fixture(FIXTURES / "ifql@hm-paper.npz"))
