"""Functional-coverage helpers shared by the row-unit testbenches (cocotb-coverage): the bin functions and the report
(coverage_db as YAML plus the list of uncovered bins, beside the test results)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def headroom_bins(used: int, avail: int) -> str:
    """Accumulator headroom: bits a result used of the bits available."""
    if used >= avail:
        return "full"
    return "<=1/2" if 2 * used <= avail else "<=3/4" if 4 * used <= 3 * avail else "<full"


def rounding_tie(p: np.ndarray, sh: int) -> bool:
    """Does some p / 2^sh land exactly halfway between two integers?"""
    return sh > 0 and bool(np.any((np.asarray(p) & ((1 << sh) - 1)) == 1 << (sh - 1)))


def division_tie(n: np.ndarray, d) -> bool:
    """Does some n / d (d > 0) land exactly halfway (2 |n| mod 2d == d)?"""
    d = np.asarray(d, dtype=np.int64)
    return bool(np.any((d > 0) & ((2 * np.abs(np.asarray(n)) % np.maximum(2 * d, 1)) == d)))


def stall_bin(idle: int) -> str:
    return "0" if idle == 0 else "1" if idle == 1 else "2-3" if idle <= 3 else "4+"


def write_coverage(db, name: str, out: Path) -> list[str]:
    """coverage_db's items under `name` as out/<name>.yml and their uncovered bins as out/<name>.holes.txt (one
    'point: bin' a line); returns the holes."""
    out.mkdir(parents=True, exist_ok=True)
    db.export_to_yaml(str(out / f"{name}.yml"))
    holes = []
    for key in sorted(db):
        item = db[key]
        if key.startswith(name + ".") and hasattr(item, "detailed_coverage"):
            holes += [f"{key}: {b}" for b, hits in item.detailed_coverage.items() if hits < item.at_least]
    (out / f"{name}.holes.txt").write_text("".join(h + "\n" for h in holes))
    return holes
