"""pytest entry: cocotb testbench of the re-scaling unit hw/itx_requant.v (sim/tb_requant.py) via cocotb's runner,
bit for bit against the golden model, at the configured width and at a narrow lane count."""
from __future__ import annotations

import numpy as np
import pytest

from itx.golden.config import load_hw_config
from itx.golden.tflite import TFLITE_MODES, multiply_by_quantized_multiplier
from itx.sim import kit
from itx.sim.requant import multiply_shift, requant_parameters
from itx.sim.rtl import RTL_SOURCES, SIM_BUILD, rtl_module
from itx.sim.runner import simulator_available

TOP = "itx_requant"
CFG = load_hw_config()


def run_requant_tb(params: dict[str, int], tb_config: dict, sim: str = "icarus") -> None:
    """Build itx_requant with `params` and run every cocotb test of sim/tb_requant.py; fail on any failure."""
    missing = sorted(set(params) - set(rtl_module(TOP).params))
    if missing:
        raise ValueError(f"hw/{TOP}.v: missing parameter(s) {missing}")
    kit.run(toplevel=TOP, sources=RTL_SOURCES, test_module="itx.sim.tb_requant", parameters=params,
            args={**tb_config, "params": params}, sim=sim,
            build_dir=SIM_BUILD / sim / f"{TOP}-{kit.build_key(params)}", seed=tb_config["seed"])


@pytest.mark.parametrize("mode", TFLITE_MODES)
def test_stage_model_is_tflites_multiply(mode):
    """No simulator: the RTL stage model (itx.sim.requant.multiply_shift, sh = 31 - shift) is itx.golden.tflite's
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

