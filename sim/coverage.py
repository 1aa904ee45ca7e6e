"""Merge the per-build functional coverage files of a unit (cocotb-coverage YAML, sim/unit_bench.export_coverage) into
one report, sim_build/coverage/<unit>.yml: hits per bin summed over the builds, and the bins no build hit."""
from __future__ import annotations

from pathlib import Path

import yaml

from sim.rtl import SIM_BUILD

COVERAGE_DIR = SIM_BUILD / "coverage"


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
