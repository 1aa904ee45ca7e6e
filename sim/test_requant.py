"""pytest entry: cocotb testbench of the re-scaling unit hw/itx_requant.v (sim/tb_requant.py) via cocotb's runner,
bit for bit against the golden model, at the configured width and at a narrow lane count."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from golden.config import load_hw_config
from sim.requant import requant_parameters
from sim.rtl import RTL_SOURCES, SIM_BUILD, rtl_module
from sim.runner import simulator_available

TOP = "itx_requant"
CFG = load_hw_config()


def run_requant_tb(params: dict[str, int], tb_config: dict, sim: str = "icarus") -> None:
    """Build itx_requant with `params` and run every cocotb test of sim/tb_requant.py; fail on any failure."""
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    missing = sorted(set(params) - set(rtl_module(TOP).params))
    if missing:
        raise ValueError(f"hw/{TOP}.v: missing parameter(s) {missing}")
    build_dir = SIM_BUILD / sim / (TOP + "-" + "-".join(f"{k.lower()}{v}" for k, v in sorted(params.items())))
    runner = get_runner(sim)
    runner.build(sources=list(RTL_SOURCES), hdl_toplevel=TOP, parameters=params, build_dir=build_dir,
                 timescale=("1ns", "1ps"), log_file=build_dir / "build.log")
    root = str(Path(__file__).resolve().parent.parent)
    env = {"ITX_TB": json.dumps({**tb_config, "params": params}),
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    results = runner.test(test_module="sim.tb_requant", hdl_toplevel=TOP, extra_env=env, build_dir=build_dir,
                          test_dir=build_dir, results_xml=str(build_dir / "results.xml"), seed=tb_config["seed"])
    total, failed = get_results(Path(results))
    if total == 0 or failed:
        raise AssertionError(f"{sim} {TOP} {params}: {failed} of {total} cocotb tests failed (log above)")


@pytest.mark.parametrize("lanes", [CFG.cols, 3])
def test_requant_icarus(lanes):
    """Eq. 10 paper/pow2/dyadic with edge groups, dyadic linear bias-add (every Eq. 10 mode), edge factors;
    3 roundings each; zero mismatches."""
    reason = simulator_available("icarus")
    if reason:
        pytest.skip(reason)
    run_requant_tb(requant_parameters(CFG, lanes), {"rows": 40, "seed": 11 + lanes})

