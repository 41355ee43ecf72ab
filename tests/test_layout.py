"""The import rules the READMEs state, checked on the source: `trqam` imports neither
`baselines` nor `bench`, `baselines` never imports `bench`, and inside `bench` each layer
imports only the layers below it (top-level helpers < data < config < training < reporting < cli)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A module's layer: the first element of its dotted name that names one, else its package.
LAYERS = {"bench.data": 1, "bench.config": 2, "bench.training": 3, "bench.reporting": 4, "bench.cli": 5,
          "bench.__main__": 5}


def layer(module: str) -> int:
    for prefix, rank in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return 0  # bench's top-level helpers: errors, files, provenance, tasks


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package, forbidden", [("trqam", ("baselines", "bench")), ("baselines", ("bench",))])
def test_method_packages_never_import_the_harness(package, forbidden):
    offending = [(module_name(p), name) for p in sources(package) for name in imported_modules(p)
                 if name.split(".")[0] in forbidden]
    assert offending == []


def test_bench_layers_import_only_layers_below():
    offending = []
    for path in sources("bench"):
        importer = module_name(path)
        for name in imported_modules(path):
            if name.startswith("bench.") and layer(name) > layer(importer):
                offending.append((importer, name))
    assert offending == []


def test_the_layer_rule_sees_a_violation(tmp_path):
    """The checker itself: an upward import (data -> training) inside a function is found."""
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    from bench.training.pipeline import train\n    return train\n")
    upward = sorted(name for name in imported_modules(module) if layer(name) > layer("bench.data.loading"))
    assert upward == ["bench.training.pipeline", "bench.training.pipeline.train"]


def test_paths_the_package_computes_from_its_location_are_the_checkouts():
    """The reference tables, the result store's default and the git root are found from the
    package's location, which moved once when bench/ gained subpackages."""
    from bench.files import REPO
    from bench.reporting import study, tables

    assert REPO == ROOT
    assert tables.REFERENCE_DIR == study.REFERENCE == ROOT / "results" / "reference"
    assert (tables.REFERENCE_DIR / "trqam_2605.27079_offline_table.csv").is_file()
