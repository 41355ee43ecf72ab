"""MkDocs hook: the CLI reference page (reference/cli.md), generated at build time from the parser
itself (`bench.cli.commands()`, each subcommand's `--help`), so it never drifts from the code."""

from __future__ import annotations

import contextlib
import io
import os
import sys

from mkdocs.structure.files import File


def help_text(argv: list[str]) -> str:
    from bench.cli import main

    os.environ.setdefault("COLUMNS", "110")
    out, program = io.StringIO(), sys.argv[0]
    sys.argv[0] = "python -m bench"  # the usage line's program name (else mkdocs' own path)
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main(argv)
    finally:
        sys.argv[0] = program
    return out.getvalue().rstrip()


def page() -> str:
    from bench.cli import commands

    lines = ["# CLI reference", "", "Generated from the parser at build time: `python -m bench COMMAND --help`.", "",
             "```text", help_text(["--help"]), "```", ""]
    for name in commands():
        lines += [f"## `{name}`", "", "```text", help_text([name, "--help"]), "```", ""]
    return "\n".join(lines)


def on_files(files, config):
    files.append(File.generated(config, "reference/cli.md", content=page()))
    return files
