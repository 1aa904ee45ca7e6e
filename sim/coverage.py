"""The pytest side of the non-GEMM unit benches: run one build of a unit's cocotb bench with its coverage file named
after the build, and merge the per-build functional coverage files (cocotb-coverage YAML,
sim/unit_bench.export_coverage) into one report, sim_build/coverage/<unit>.yml: hits per bin summed over the builds,
and the bins no build hit."""
from __future__ import annotations

from pathlib import Path

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
