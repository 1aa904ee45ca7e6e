"""pytest entry: cocotb testbench of the re-scaling unit hw/itx_requant.v (sim/tb_requant.py) via cocotb's runner,
bit for bit against the golden model, at the configured width and at a narrow lane count."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from itx.golden.config import load_hw_config
from itx.golden.requant import multiply_shift
from itx.golden.tflite import TFLITE_MODES, multiply_by_quantized_multiplier
from itx.sim.requant import requant_parameters
from itx.sim.runner import run_cocotb, simulator_available

CFG = load_hw_config()


@pytest.mark.parametrize("mode", TFLITE_MODES)
def test_stage_model_is_tflites_multiply(mode):
    """No simulator: the RTL stage model (itx.golden.requant.multiply_shift, sh = 31 - shift) is itx.golden.tflite's
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
    run_cocotb("tb_requant", requant_parameters(CFG, lanes), {"rows": 40, "seed": 11 + lanes}, seed=11 + lanes,
               top="itx_requant")


@pytest.mark.parametrize("out_bits", [6, 10])
def test_requant_icarus_out_bits(out_bits):
    """An INT6 / INT10 datapath (OUT_BITS = hw/config.toml's in_bits): the same tests, clamped to out_bits."""
    reason = simulator_available("icarus")
    if reason:
        pytest.skip(reason)
    params = requant_parameters(replace(CFG, in_bits=out_bits), 3)
    assert params["OUT_BITS"] == out_bits
    run_cocotb("tb_requant", params, {"rows": 12, "seed": 11 + out_bits}, seed=11 + out_bits, top="itx_requant")


@pytest.mark.parametrize("acc_bits,overflow", [(16, "wrap"), (16, "saturate"), (24, "saturate")])
def test_requant_icarus_narrow_accumulator(acc_bits, overflow):
    """One accumulator per configuration: built with ACC_BITS / SATURATE, the bias add wraps or clips like golden's
    add at that width (linear layers with sums leaving the accumulator, coarse biases matched in two steps)."""
    reason = simulator_available("icarus")
    if reason:
        pytest.skip(reason)
    params = requant_parameters(replace(CFG, acc_bits=acc_bits, overflow=overflow), 3)
    assert (params["ACC_BITS"], params["SATURATE"]) == (acc_bits, int(overflow == "saturate"))
    run_cocotb("tb_requant", params, {"rows": 12, "seed": acc_bits}, seed=acc_bits, top="itx_requant")
