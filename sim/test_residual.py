"""pytest entry: cocotb testbench of the residual adder hw/itx_residual.v (sim/tb_residual.py), bit for bit against
golden (add + rescale) at the configured widths and narrow/wide variants, back-pressure swept; one run takes the
residual inputs of sentence 0 of the trained model (itx.golden.capture). Coverage: sim_build/coverage/residual.yml."""
from __future__ import annotations

from dataclasses import replace

import pytest

from itx.golden.capture import sentence_ops
from itx.golden.config import load_hw_config
from itx.golden.int_config import IntConfig
from itx.golden.model import model_dir
from itx.options import sentence_ids
from itx.sim.coverage import assert_covered, build_name, run_unit
from itx.sim.rowunits import unit_parameters
from itx.sim.rtl import SIM_BUILD
from itx.sim.runner import simulator_available

# One xdist worker runs every build of this unit, in order, then the coverage test that merges them
# (conftest.py: -n distributes by group).
pytestmark = pytest.mark.xdist_group("residual")

CFG = load_hw_config()
# (lanes, in_bits, acc_bits, overflow, p_stall, real sentence): the configured datapath first
CASES = [(CFG.cols, CFG.in_bits, CFG.acc_bits, CFG.overflow, 0.3, True),
         (3, 6, 16, "saturate", 0.6, False),
         (1, 10, 24, "wrap", 0.0, False),
         (4, 16, 16, "wrap", 0.2, False),      # in_bits = acc_bits: the sum can wrap (golden reduces it)
         (2, 16, 16, "saturate", 0.2, False)]  # ... or saturate


def params(lanes: int, in_bits: int, acc_bits: int, overflow: str) -> dict[str, int]:
    return unit_parameters("itx_residual", replace(CFG, in_bits=in_bits, acc_bits=acc_bits, overflow=overflow), lanes,
                           max_n=256)


BUILDS = [build_name(params(*c[:4])) for c in CASES]


def sentence0() -> str:
    """Golden's capture of test sentence 0 (en-de, default knobs): its ops' inputs (itx.golden.capture.write_ops)."""
    ids = sentence_ids("test", "en-de", 0)
    return str(sentence_ops(model_dir("integer"), IntConfig(), *ids, SIM_BUILD / "capture"))


@pytest.mark.parametrize("lanes,in_bits,acc_bits,overflow,p_stall,real", CASES)
def test_residual_icarus(lanes, in_bits, acc_bits, overflow, p_stall, real):
    run_residual(lanes, in_bits, acc_bits, overflow, p_stall, real)


@pytest.mark.slow
def test_residual_verilator():
    """The configured datapath's build under Verilator, real sentence ops included."""
    run_residual(*CASES[0], sim="verilator")


def run_residual(lanes, in_bits, acc_bits, overflow, p_stall, real, sim="icarus"):
    tb = {"seed": lanes, "p_in": p_stall, "p_out": p_stall, "rows": 40}
    run_unit(sim, "tb_residual", "itx_residual", params(lanes, in_bits, acc_bits, overflow), tb,
             sentence0() if real else None)


def test_residual_coverage():
    """Merged coverage of the builds above (sim_build/coverage/residual.yml): every bin is hit."""
    if simulator_available("icarus"):
        pytest.skip("no simulation ran")
    assert_covered("residual", BUILDS, {})
