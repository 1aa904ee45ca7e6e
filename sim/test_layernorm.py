"""pytest entry: cocotb testbench of the L1 LayerNorm unit hw/itx_layernorm.v (sim/tb_layernorm.py), bit for bit
against itx.golden.layernorm.l1_layernorm at the configured widths and narrow/wide variants, back-pressure swept; one run
takes the LayerNorm inputs of sentence 0 of the trained model (the first ops; all 14 with -m slow). Coverage:
sim_build/coverage/layernorm.yml."""
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
pytestmark = pytest.mark.xdist_group("layernorm")

CFG = load_hw_config()
# (lanes, in_bits, acc_bits, overflow, p_stall, real sentence ops): the configured datapath first
CASES = [(CFG.cols, CFG.in_bits, CFG.acc_bits, CFG.overflow, 0.3, {"real_ops": 2, "real_rows": 3}),
         (3, 6, 16, "saturate", 0.6, None),
         (1, 10, 24, "wrap", 0.0, None),
         (4, 10, 16, "wrap", 0.2, None),       # l1 and the sum leave a 16-bit accumulator on the long rows
         (2, 16, 16, "saturate", 0.2, None)]   # in_bits = acc_bits: x - mu can leave it too


def params(lanes: int, in_bits: int, acc_bits: int, overflow: str) -> dict[str, int]:
    return unit_parameters("itx_layernorm", replace(CFG, in_bits=in_bits, acc_bits=acc_bits, overflow=overflow),
                           lanes, max_n=256)


BUILDS = [build_name(params(*c[:4])) for c in CASES]
# Bins the swept stimulus does not reach, and why; any other uncovered bin fails test_layernorm_coverage.
KNOWN_HOLES = {"layernorm.numerator_headroom": {"full"}}   # (x - mu) n 2^F of in_bits-wide x never fills NUMW


def sentence0() -> str:
    """Golden's capture of test sentence 0 (en-de, default knobs): its ops' inputs (itx.golden.capture.write_ops)."""
    ids = sentence_ids("test", "en-de", 0)
    return str(sentence_ops(model_dir("integer"), IntConfig(), *ids, SIM_BUILD / "capture"))


def run_layernorm(lanes: int, in_bits: int, acc_bits: int, overflow: str, p_stall: float, real: dict | None,
                  sim: str = "icarus") -> None:
    tb = {"seed": lanes, "p_in": p_stall, "p_out": p_stall, "rows": 36, **(real or {})}
    run_unit(sim, "tb_layernorm", "itx_layernorm", params(lanes, in_bits, acc_bits, overflow), tb,
             sentence0() if real is not None else None)


@pytest.mark.parametrize("lanes,in_bits,acc_bits,overflow,p_stall,real", CASES)
def test_layernorm_icarus(lanes, in_bits, acc_bits, overflow, p_stall, real):
    run_layernorm(lanes, in_bits, acc_bits, overflow, p_stall, real)


@pytest.mark.slow
def test_layernorm_sentence0_all_ops():
    """Every LayerNorm of sentence 0 (14 ops, every row) at the configured widths."""
    run_layernorm(CFG.cols, CFG.in_bits, CFG.acc_bits, CFG.overflow, 0.1, {})


@pytest.mark.slow
def test_layernorm_verilator():
    """The configured datapath's build under Verilator, real sentence ops included."""
    run_layernorm(*CASES[0], sim="verilator")


def test_layernorm_coverage():
    """Merged coverage of the builds above (sim_build/coverage/layernorm.yml): every bin is hit but the known holes."""
    if simulator_available("icarus"):
        pytest.skip("no simulation ran")
    assert_covered("layernorm", BUILDS, KNOWN_HOLES)
