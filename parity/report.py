"""Write ``reports/parity/PARITY.md``: every compared quantity of every fixture.

    python -m parity.report [--fixtures tests/parity] [--out reports/parity/PARITY.md]

Runs `parity.compare` on the committed fixtures (no reference code needed) and exits with
status 1 when any quantity is outside its tolerance.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import jax

from parity.compare import FIXTURES, compare_fixture, fixture_paths

OUT = Path(__file__).resolve().parents[1] / "reports" / "parity" / "PARITY.md"


def render(fixtures: Path) -> tuple[str, bool]:
    provenance = json.loads((fixtures / "provenance.json").read_text())
    references = "; ".join(f"{repo} at commit `{commit}`" for repo, commit in provenance["references"].items())
    lines = [
        "# Parity with the authors' code",
        "",
        f"References: {references}; fixtures written by "
        f"`nox -s parity` with {', '.join(f'{k} {v}' for k, v in provenance['versions'].items())}; compared here "
        f"with jax {jax.__version__} on {platform.machine()} ({jax.default_backend()}). Regenerate with "
        "`nox -s parity -- --reference-dir DIR --qam-reference-dir DIR2` (checkouts of the references; add "
        "`--domain-fixtures` for the fixtures named METHOD@DOMAIN-PROFILE); "
        "`nox -s tests` asserts every "
        "row below (tests/test_parity.py).",
        "",
        "Each fixture loads the reference's parameters into our networks and replays its random draws "
        "(parity/README.md). `ours` and `reference` are the value, or the L2 norm of an array; `rel` is "
        "||ours - reference|| / ||reference||.",
        "",
    ]
    results = {path: compare_fixture(path) for path in fixture_paths(fixtures)}
    all_ok = all(r.ok for rows in results.values() for r in rows)
    lines += ["## Summary", "", "| fixture | quantities | largest rel | verdict |", "|---|---:|---:|---|"]
    lines += [f"| {path.stem} | {len(rows)} | {max(r.rel for r in rows):.1e} | "
              f"{'ok' if all(r.ok for r in rows) else 'FAIL'} |" for path, rows in results.items()]
    lines.append("")
    for path, rows in results.items():
        record = provenance["fixtures"][path.name]
        s = record["setting"]
        verdict = "all within tolerance" if all(r.ok for r in rows) else "**OUT OF TOLERANCE**"
        lines += [
            f"## {path.stem}: {verdict}",
            "",
            f"Reference `{record['reference_class']}` of {record['repository']}; obs {s['obs_dim']}, action "
            f"{s['action_dim']} x chunk {s['chunk_len']}, batch {s['batch_size']}, networks "
            f"{'x'.join(map(str, s['hidden']))}, {s['num_critics']} critics, {s['flow_steps']} flow steps; "
            + (f"BC-initialised by {s['bc_updates']} reference BC updates" if record.get("bc_initialised", True)
               else "from the reference's own initialisation (the QAM paper trains from scratch)")
            + f"; {s['updates']} update(s)."
            + (f" At the per-domain configuration of profile `{record['profile']}` on domain `{record['domain']}` "
               f"(the reference's values from the {record['values_from']}; ours from our profile's tables, "
               f"discount {s['discount']})." if "profile" in record else ""),
            "",
            "| quantity | ours | reference | rel | tolerance | verdict |",
            "|---|---:|---:|---:|---:|---|",
        ]
        lines += [f"| {r.quantity} | {r.ours:.6g} | {r.reference:.6g} | {r.rel:.1e} | {r.tolerance:.0e} | "
                  f"{'ok' if r.ok else 'FAIL'} |" for r in rows]
        lines.append("")
    return "\n".join(lines), all_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    text, ok = render(args.fixtures)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}: {'every quantity within tolerance' if ok else 'some quantities OUT OF TOLERANCE'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
