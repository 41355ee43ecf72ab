"""The closed-form studies' store: a stored study is kept while the code that computes it is
unchanged, and computed again (saying why) when that code changes or its record is missing."""

from __future__ import annotations

import json

from bench import provenance
from bench.reporting import closed_form


def test_source_fingerprint_follows_the_code_and_not_the_checkout(tmp_path):
    for checkout in ("a", "b"):
        package = tmp_path / checkout / "pkg"
        package.mkdir(parents=True)
        (package / "soc.py").write_text("x = 1\n")
        (package / "notes.txt").write_text(checkout)  # not Python: not part of the code
    a, b = tmp_path / "a" / "pkg", tmp_path / "b" / "pkg"
    assert provenance.source_fingerprint(a) == provenance.source_fingerprint(b)
    (b / "soc.py").write_text("x = 2\n")
    assert provenance.source_fingerprint(a) != provenance.source_fingerprint(b)
    (b / "soc.py").write_text("x = 1\n")
    (b / "dual.py").write_text("")  # a new module is a change too
    assert provenance.source_fingerprint(a) != provenance.source_fingerprint(b)


def test_a_stored_study_is_kept_until_its_code_changes(tmp_path, monkeypatch):
    calls = []

    def study():
        calls.append(1)
        return [{"budget": 0.05, "realised_kl": 0.05 + 0.001 * len(calls)}]

    monkeypatch.setattr(closed_form, "STUDIES", {"kl_tracking": study})
    logged = []
    fingerprint = closed_form.code_fingerprint()

    [path] = closed_form.ensure(tmp_path, log=logged.append)
    record = json.loads((tmp_path / "kl_tracking.json").read_text())
    assert len(calls) == 1 and record["code_fingerprint"] == fingerprint and "not stored" in logged[0]
    stored = path.read_text()

    closed_form.ensure(tmp_path, log=logged.append)  # same code: kept, nothing computed or logged
    assert len(calls) == 1 and path.read_text() == stored and len(logged) == 2

    record["code_fingerprint"] = "0" * 64  # as if stored before trqam/ changed
    (tmp_path / "kl_tracking.json").write_text(json.dumps(record))
    closed_form.ensure(tmp_path, log=logged.append)
    assert len(calls) == 2 and path.read_text() != stored and "stored by other code" in logged[2]

    (tmp_path / "kl_tracking.json").unlink()  # a CSV without its record is not trusted either
    closed_form.ensure(tmp_path, log=logged.append)
    assert len(calls) == 3 and "without a readable record" in logged[4]

