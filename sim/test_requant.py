"""pytest entry: cocotb testbench of the re-scaling unit hw/itx_requant.v (sim/tb_requant.py) via cocotb's runner,
bit for bit against the golden model, at the configured width and at a narrow lane count."""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from golden.config import load_hw_config
from golden.tflite import TFLITE_MODES, multiply_by_quantized_multiplier
from sim.requant import multiply_shift, requant_parameters
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


@pytest.mark.parametrize("mode", TFLITE_MODES)
def test_stage_model_is_tflites_multiply(mode):
    """No simulator: the RTL stage model (sim.requant.multiply_shift, sh = 31 - shift) is golden.tflite's
    MultiplyByQuantizedMultiplier on TFLite factors: random and extreme int32 x, every shift -31..1."""
    rng = np.random.default_rng(7)
    x = np.r_[rng.integers(-(2 ** 31), 2 ** 31, 20_000) >> rng.integers(0, 32, 20_000), -(2 ** 31), 2 ** 31 - 1, 0]
    m = rng.integers(2 ** 30, 2 ** 31, x.size)
    shift = rng.integers(-31, 2, x.size)
    got = multiply_shift(x, m, 31 - shift, mode, "floor")   # the TFLite modes ignore `rounding`
    np.testing.assert_array_equal(got, multiply_by_quantized_multiplier(x, m, shift, mode == "tflite_single"))


@pytest.mark.parametrize("lanes", [CFG.cols, 3])
def test_requant_icarus(lanes):
    """Eq. 10 every mode (TFLite ones included) with edge groups, linear bias-add (every Eq. 10 mode; TFLite
    matching), edge factors in every stage-mode pair; 3 roundings; zero mismatches."""
    reason = simulator_available("icarus")
    if reason:
        pytest.skip(reason)
    run_requant_tb(requant_parameters(CFG, lanes), {"rows": 40, "seed": 11 + lanes})



@pytest.mark.parametrize("out_bits", [6, 10])
def test_requant_icarus_out_bits(out_bits):
    """An INT6 / INT10 datapath (OUT_BITS = hw/config.toml's in_bits): the same tests, clamped to out_bits."""
    reason = simulator_available("icarus")
    if reason:
        pytest.skip(reason)
    params = requant_parameters(replace(CFG, in_bits=out_bits), 3)
    assert params["OUT_BITS"] == out_bits
    run_requant_tb(params, {"rows": 12, "seed": 11 + out_bits})
