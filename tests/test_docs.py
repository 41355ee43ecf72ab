"""The documentation (issue 31, item 3): the site builds with --strict, every command it shows
parses (each `python -m bench` subcommand with its flags, each nox session), every internal link
resolves, and the README stays a front page."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md"), REPO / "examples" / "README.md"])
GENERATED = {"reference/cli.md"}  # written by docs/hooks/cli_reference.py at build time
NOX_ONLY = {"--jax-cuda"}  # read by noxfile.py's reproduce session, not passed on


def code_lines(path: Path) -> list[str]:
    """The lines of ``path``'s fenced code blocks."""
    lines, inside = [], False
    for line in path.read_text().splitlines():
        if line.strip().startswith("```"):
            inside = not inside
            continue
        if inside:
            lines.append(line.split(" #")[0].strip())
    return lines


@cache
def bench_help(command: str) -> str:
    from bench.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code in (0, None), command
    return out.getvalue()


def nox_sessions() -> set[str]:
    names = set()
    for node in ast.parse((REPO / "noxfile.py").read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.decorator_list:
            named = [k.value.value for d in node.decorator_list if isinstance(d, ast.Call)
                     for k in d.keywords if k.arg == "name"]
            names.add(named[0] if named else node.name)
    return names


def shown_commands() -> list[tuple[Path, str, list[str]]]:
    """(page, subcommand, flags) of every `python -m bench` and `nox -s reproduce --` line shown."""
    found = []
    for page in PAGES:
        for line in code_lines(page):
            words = shlex.split(line.replace("'", '"'), posix=True) if line else []
            if "bench" in words and words[:2] in (["python", "-m"], ["python3", "-m"]):
                rest = words[words.index("bench") + 1:]
            elif words[:3] == ["nox", "-s", "reproduce"] and "--" in words:
                rest = ["reproduce", *words[words.index("--") + 1:]]
            else:
                continue
            if rest and not rest[0].startswith("-"):
                found.append((page, rest[0], [w.split("=")[0] for w in rest[1:] if w.startswith("--")]))
    return found


def test_every_bench_command_shown_parses_with_its_flags():
    commands = shown_commands()
    assert len(commands) > 30
    for page, command, flags in commands:
        text = bench_help(command)  # `python -m bench COMMAND --help` exits 0
        for flag in flags:
            if flag in NOX_ONLY:
                continue
            assert re.search(rf"{re.escape(flag)}\b", text), f"{page.relative_to(REPO)}: {command} has no {flag}"


def test_every_nox_session_shown_exists():
    sessions = nox_sessions()
    shown = {m.group(1) for page in PAGES for line in code_lines(page) for m in re.finditer(r"nox -s ([\w-]+)", line)}
    shown |= {m.group(1) for page in PAGES for m in re.finditer(r"`nox -s ([\w-]+)", page.read_text())}
    assert shown and shown <= sessions, shown - sessions


def test_every_internal_link_resolves():
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#")[0]
            resolved = (page.parent / path).resolve()
            relative_to_docs = resolved.relative_to(REPO / "docs").as_posix() if resolved.is_relative_to(
                REPO / "docs") else None
            if not resolved.exists() and relative_to_docs not in GENERATED:
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert broken == []


def test_the_readme_is_a_front_page():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    assert "pip install nox" in text and "nox -s tests" in text and "nox -s reproduce" in text


def test_the_link_check_sees_a_broken_link(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text("[there](nowhere.md) and [fine](page.md)\n")
    monkeypatch.setattr(sys.modules[__name__], "PAGES", [page])
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "docs").mkdir()
    with pytest.raises(AssertionError, match="nowhere.md"):
        test_every_internal_link_resolves()


def build_site(site: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)], cwd=REPO,
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_site_builds_strict_with_the_generated_cli_reference(tmp_path):
    site = tmp_path / "site"
    build_site(site)
    cli = (site / "reference" / "cli" / "index.html").read_text()
    assert all(f"<code>{name}</code>" in cli for name in ("train", "reproduce", "new-method", "results"))
    assert "--dry-run" in cli
    assert "FlowQAgent" in (site / "reference" / "api" / "index.html").read_text()
    assert "s/update" in (site / "guides" / "costs" / "index.html").read_text()  # the committed cost table


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None,
                    reason="needs Node.js and npm (the headless browser is an npm package)")
def test_the_built_site_renders_in_a_headless_browser(tmp_path, bench_cache):
    """The home page and the CLI reference, opened in a headless Chromium (tools/site-screenshot,
    installed from the npm registry into the suite's cache); the screenshots are written under
    reports/docs/ when TRQAM_BENCH_SCREENSHOTS names a directory, else beside the site."""
    site = tmp_path / "site"
    build_site(site)
    tool = bench_cache / "site-screenshot"
    if not (tool / "node_modules" / "puppeteer-core").exists():
        shutil.copytree(REPO / "tools" / "site-screenshot", tool, dirs_exist_ok=True)
        installed = subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund"], cwd=tool,
                                   capture_output=True, text=True, timeout=600)
        if installed.returncode != 0 and re.search(r"ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|ECONNRESET|network",
                                                   installed.stderr):
            pytest.skip(f"the npm registry cannot be reached from here: {installed.stderr.strip().splitlines()[-1]}")
        assert installed.returncode == 0, installed.stderr[-2000:]
    shots = Path(os.environ.get("TRQAM_BENCH_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    for page, heading in (("index.html", "trqam-bench"), ("reference/cli/index.html", "CLI reference")):
        out = shots / (page.replace("/", "_").replace("index.html", "").strip("_") or "home")
        out = out.with_suffix(".png")
        result = subprocess.run(["node", str(tool / "shot.mjs"), (site / page).as_uri(), str(out)], cwd=tool,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        rendered = json.loads(result.stdout.strip().splitlines()[-1])
        assert rendered["h1"] == heading and rendered["title"].endswith("trqam-bench")
        assert rendered["codeBlocks"] >= 1
        assert out.stat().st_size > 20_000  # a rendered page, not a blank one
