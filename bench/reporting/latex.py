"""The main table as a LaTeX tabular (`python -m bench tables --latex`): offline success per
domain (rows) and method (columns), measured mean over tasks and seeds with the published
value of the profile's paper in parentheses where there is one, the best measured value of
each domain in bold. Plain `tabular` with `\\hline`: it compiles in a minimal document
(`\\documentclass{article}` and nothing else).
"""

from __future__ import annotations

import re

_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
            "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def escape(text: str) -> str:
    return re.sub(r"[&%$#_{}~^\\]", lambda m: _SPECIAL[m.group()], text)


def main_table(domain_rows: list[dict], methods: list[str], *, caption: str) -> str:
    """``domain_rows``: the per-domain table of `bench.reporting.tables.build` (values in %)."""
    rows = [r for r in domain_rows if r["phase"] == "offline"]
    domains = list(dict.fromkeys(r["domain"] for r in rows))
    methods = [m for m in methods if any(r["method"] == m for r in rows)]
    cell = {(r["domain"], r["method"]): r for r in rows}
    lines = [f"% {escape(caption)}", r"\begin{tabular}{l" + "r" * len(methods) + "}", r"\hline",
             " & ".join(["Domain", *(escape(m.upper()) for m in methods)]) + r" \\", r"\hline"]
    for domain in domains:
        measured = {m: float(cell[(domain, m)]["mean"]) for m in methods if (domain, m) in cell}
        best = max(measured.values(), default=None)
        entries = [escape(domain)]
        for m in methods:
            if m not in measured:
                entries.append("--")
                continue
            value = f"{measured[m]:.1f}"
            if measured[m] == best:
                value = rf"\textbf{{{value}}}"
            published = cell[(domain, m)].get("trqam_paper") or cell[(domain, m)].get("qam_paper") or ""
            if published:
                value += f" ({escape(published.split()[0])})"
            entries.append(value)
        lines.append(" & ".join(entries) + r" \\")
    lines += [r"\hline", r"\end{tabular}", ""]
    return "\n".join(lines)
