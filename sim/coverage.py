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


def summarize(root: Path, name: str) -> list[str]:
    """Merge every <root>/*/<name>.yml (one per width configuration run): root/<name>.summary.txt lists, per
    coverage point, the bins no configuration hit, and the configurations each bin was missed in. Returns the bins
    no configuration hit."""
    import yaml

    hits: dict[str, dict[str, int]] = {}
    missed: dict[tuple[str, str], list[str]] = {}
    for path in sorted(root.glob(f"*/{name}.yml")):
        for point, item in yaml.safe_load(path.read_text()).items():
            for b, n in (item.get("bins:_hits") or {}).items() if isinstance(item, dict) else ():
                hits.setdefault(point, {}).setdefault(str(b), 0)
                hits[point][str(b)] += n
                if n < item.get("at_least", 1):
                    missed.setdefault((point, str(b)), []).append(path.parent.name)
    never = [f"{p}: {b}" for p, bins in sorted(hits.items()) for b, n in bins.items() if n == 0]
    lines = [f"{name}: {sum(len(b) for b in hits.values())} bins, {len(never)} hit in no configuration"]
    lines += [f"  never: {h}" for h in never]
    lines += [f"  missed in {', '.join(cfgs)}: {p}: {b}" for (p, b), cfgs in sorted(missed.items())
              if f"{p}: {b}" not in never]
    (root / f"{name}.summary.txt").write_text("\n".join(lines) + "\n")
    return never
