"""Functional coverage of the non-GEMM unit benches (cocotb-coverage), one way for every unit: each build's cocotb
run writes sim_build/coverage/<unit>-<build>.yml (write_coverage), merge_coverage sums a unit's builds into
<unit>.yml and the one-line summary <unit>.summary.txt (bins hit / total, holes), assert_covered fails on any hole
that is not a known one. Plus the bin functions of the row units' benches."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from itx.sim.rtl import SIM_BUILD

COVERAGE_DIR = SIM_BUILD / "coverage"


def build_name(params: dict[str, int], sim: str = "icarus") -> str:
    """The coverage file's build name: the parameters (prefixed by the simulator unless Icarus)."""
    from itx.sim.runner import _key

    return _key(params) if sim == "icarus" else f"{sim}-{_key(params)}"


def run_unit(sim: str, test_module: str, top: str, params: dict[str, int], tb: dict, capture=None) -> None:
    """One build of a unit bench (sim/<test_module>.py, DUT `top`) under `sim`: skipped without the simulator; `tb`
    (seed, stall probabilities, ...) completed with the build name, the coverage directory and the capture file."""
    import pytest

    from itx.sim.runner import run_cocotb, simulator_available

    reason = simulator_available(sim)
    if reason:
        pytest.skip(reason)
    tb = {**tb, "build": build_name(params, sim), "coverage_dir": str(COVERAGE_DIR)}
    if capture is not None:
        tb["capture"] = str(capture)
    run_cocotb(test_module, params, tb, sim=sim, top=top, seed=tb["seed"])


def write_coverage(unit: str, cfg: dict) -> Path:
    """In the cocotb process: this build's coverage (every test of the run so far) to
    <cfg coverage_dir>/<unit>-<cfg build>.yml (cfg: the bench's ITX_TB config, completed by run_unit)."""
    from cocotb_coverage.coverage import coverage_db

    out = Path(cfg["coverage_dir"]) / f"{unit}-{cfg['build']}.yml"
    out.parent.mkdir(parents=True, exist_ok=True)
    coverage_db.export_to_yaml(str(out))
    return out


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
    (COVERAGE_DIR / f"{unit}.summary.txt").write_text(summary(unit, merged, uncovered, len(builds)) + "\n")
    return out, {k: v for k, v in uncovered.items() if v}


def summary(unit: str, merged: dict[str, dict[str, int]], uncovered: dict[str, list[str]], builds: int) -> str:
    """'<unit>: H/T bins hit over N builds; holes: point: bin, ...' (the README's coverage line)."""
    total = sum(len(b) for b in merged.values())
    holes = [f"{p}: {b}" for p, bins in uncovered.items() for b in bins]
    return (f"{unit}: {total - len(holes)}/{total} bins hit over {builds} builds; "
            f"holes: {', '.join(holes) if holes else 'none'}")


def assert_covered(unit: str, builds: list[str], known_holes: dict[str, set[str]]) -> Path:
    """Merge `unit`'s coverage over `builds` and fail naming every uncovered bin that is not a known hole."""
    path, uncovered = merge_coverage(unit, builds)
    print((COVERAGE_DIR / f"{unit}.summary.txt").read_text(), end="")
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
