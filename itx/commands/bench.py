"""`itx bench NAME`: run a benchmark from the bench/ package (bench/NAME.py exposes main(argv))."""
from __future__ import annotations

import argparse
import importlib
import pkgutil

import itx.bench


def _names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__))


def register(sub) -> None:
    p = sub.add_parser("bench", help="speed benchmarks, measured side by side in one run")
    p.add_argument("name", choices=_names(), help="which benchmark")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    p.set_defaults(func=lambda a: importlib.import_module(f"bench.{a.name}").main(a.args))
