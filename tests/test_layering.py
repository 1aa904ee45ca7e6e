"""Data flows one way (README): golden writes every vector -> sim builds, runs, compares -> itx reports. A lower
layer never imports an upper one, and a command module (itx/commands/) is imported by the CLI alone."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# package -> packages it must not import (tests, the top layer, may import anything); golden/, sim/ and bench/ are
# installed as itx.golden, itx.sim and itx.bench, the rest of itx is the top layer
FORBIDDEN = {"golden": ("sim", "itx", "bench"), "sim": ("itx", "bench")}
SUBPACKAGES = ("golden", "sim", "bench")


def _layer(module: str) -> str:
    """The layer an imported module belongs to: golden, sim, bench, itx (the top), or another distribution."""
    parts = module.split(".")
    if parts[0] == "itx":
        return parts[1] if len(parts) > 1 and parts[1] in SUBPACKAGES else "itx"
    return parts[0]


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
            if node.module == "itx":     # from itx import golden
                out.update(f"itx.{a.name}" for a in node.names)
    return out


def _modules(package: str):
    return [p for p in sorted((ROOT / package).glob("*.py")) if not p.name.startswith("test_")]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upper_ones(package):
    bad = [f"{p.relative_to(ROOT)} imports {m}" for p in _modules(package) for m in sorted(_imports(p))
           if _layer(m) in FORBIDDEN[package] and _layer(m) != package]
    assert not bad, bad


def test_command_modules_are_not_libraries():
    users = [p for d in ("golden", "sim", "bench", "itx", "itx/report", "itx/commands")
             for p in sorted((ROOT / d).glob("*.py")) if p.name != "cli.py"]
    bad = [f"{p.relative_to(ROOT)} imports {m}" for p in users for m in sorted(_imports(p))
           if m.startswith("itx.commands")]
    assert not bad, bad
