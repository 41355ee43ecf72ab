"""What a record says about the code that wrote it: the revision is dirty only for changed code."""

from __future__ import annotations

from bench import provenance


def test_code_revision_is_dirty_for_changed_code_and_not_for_changed_results(tmp_path, monkeypatch):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    for name in ("trqam/soc.py", "results/closed-form/kl_tracking.csv", "reports/REPORT.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("0\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    monkeypatch.setattr(provenance, "REPO", tmp_path)
    revision = provenance.code_revision.__wrapped__
    commit = revision()
    assert len(commit) == 40
    (tmp_path / "results/closed-form/kl_tracking.csv").write_text("1\n")  # a recomputed study
    (tmp_path / "reports/REPORT.md").write_text("1\n")
    assert revision() == commit
    (tmp_path / "trqam/soc.py").write_text("1\n")
    assert revision() == commit + "+dirty"
