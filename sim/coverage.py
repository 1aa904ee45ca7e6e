"""Functional coverage of the non-GEMM unit benches (cocotb-coverage). Bin functions and per-configuration
reports of the row units (residual, LayerNorm); build runs and the merged per-unit report of the attention units
(Poly, normalisation)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from sim.rtl import SIM_BUILD

COVERAGE_DIR = SIM_BUILD / "coverage"


def build_name(params: dict[str, int], sim: str = "icarus") -> str:
    """The coverage file's build name: the parameters (prefixed by the simulator unless Icarus)."""
    from sim.runner import _key

    return _key(params) if sim == "icarus" else f"{sim}-{_key(params)}"


def run_unit(sim: str, test_module: str, top: str, params: dict[str, int], tb: dict, capture=None) -> None:
    """One build of a unit bench (sim/<test_module>.py, DUT `top`) under `sim`: skipped without the simulator; `tb`
    (seed, stall probabilities, ...) completed with the build name, the coverage directory and the capture file."""
    import pytest

    from sim.runner import run_cocotb, simulator_available

    reason = simulator_available(sim)
    if reason:
        pytest.skip(reason)
    tb = {**tb, "build": build_name(params, sim), "coverage_dir": str(COVERAGE_DIR)}
    if capture is not None:
        tb["capture"] = str(capture)
    run_cocotb(test_module, params, tb, sim=sim, top=top, seed=tb["seed"])


def merge_coverage(unit: str, builds: list[str]) -> tuple[Path, dict[str, list[str]]]:
    """Sum the bin hits of `unit`'s coverage files for `builds` (each written by one cocotb run); write
    <unit>.yml with, per cover point, hits per bin and the uncovered bins; return its path and {point: uncovered}."""
    merged: dict[str, dict[str, int]] = {}
    for build in builds:
        path = COVERAGE_DIR / f"{unit}-{build}.yml"
        if not path.is_file():
            raise ValueError(f"{path}: no coverage written by the {build} run")
        for name, point in yaml.safe_load(path.read_text()).items():
            hits = point.get("bins:_hits")
            if hits is None:          # a cover group (the section's prefix), not a point
                continue
            acc = merged.setdefault(name, {})
            for b, n in hits.items():
                acc[str(b)] = acc.get(str(b), 0) + int(n)
    uncovered = {name: [b for b, n in bins.items() if n == 0] for name, bins in sorted(merged.items())}
    report = {name: {"hits": bins, "uncovered": uncovered[name], "covered": f"{sum(n > 0 for n in bins.values())}/"
                     f"{len(bins)}"} for name, bins in sorted(merged.items())}
    out = COVERAGE_DIR / f"{unit}.yml"
    out.write_text(yaml.safe_dump({"builds": builds, "points": report}, sort_keys=True))
    return out, {k: v for k, v in uncovered.items() if v}


def assert_covered(unit: str, builds: list[str], known_holes: dict[str, set[str]]) -> Path:
    """Merge `unit`'s coverage over `builds` and fail naming every uncovered bin that is not a known hole."""
    path, uncovered = merge_coverage(unit, builds)
    print(f"{path}: uncovered {uncovered}")
    new = {k: sorted(set(v) - known_holes.get(k, set())) for k, v in uncovered.items()}
    assert not any(new.values()), f"uncovered bins (see {path}): { {k: v for k, v in new.items() if v} }"
    return path


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
