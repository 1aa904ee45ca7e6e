"""pytest entry: cocotb testbench of the attention normalisation unit hw/itx_attn_norm.v (sim/tb_attn_norm.py), bit
for bit against itx.golden.attention.attention_output, widths (lanes, accumulator, overflow, bits) and back-pressure
swept; one build also runs the attention ops of test sentence 0. Coverage: sim_build/coverage/norm.yml."""
from __future__ import annotations

import pytest

from itx.golden.capture import sentence_ops
from itx.golden.config import load_hw_config
from itx.golden.int_config import IntConfig
from itx.golden.model import model_dir
from itx.options import sentence_ids
from itx.sim.coverage import assert_covered, build_name, run_unit
from itx.sim.poly import attention_ops, norm_parameters
from itx.sim.rtl import SIM_BUILD
from itx.sim.runner import simulator_available

# One xdist worker runs every build of this unit, in order, then the coverage test that merges them
# (conftest.py: -n distributes by group).
pytestmark = pytest.mark.xdist_group("attn_norm")

CFG = load_hw_config()
OPS = ("enc.0.self_attn", "dec.0.self_attn")
# (lanes, acc_bits, overflow, bits, p_stall, real sentence): the configured datapath first
CASES = [(CFG.cols, CFG.acc_bits, CFG.overflow, CFG.in_bits, 0.3, True),
         (3, 16, "saturate", 8, 0.5, False),
         (2, 16, "wrap", 6, 0.0, False),
         (4, 24, "saturate", 10, 0.2, False)]
BUILDS = [build_name(norm_parameters(acc, bits, ovf, lanes)) for lanes, acc, ovf, bits, _, _ in CASES]
# Bins the swept stimulus does not reach, and why; any other uncovered bin fails test_norm_coverage.
KNOWN_HOLES: dict[str, set[str]] = {}


@pytest.fixture(scope="module")
def sentence0():
    """The attention ops of test sentence 0 (en-de) as golden captured them, checked against itx.golden.attention."""
    ops = sentence_ops(model_dir("integer"), IntConfig(), *sentence_ids("test", "en-de", 0), SIM_BUILD / "capture")
    return attention_ops(ops, OPS, IntConfig())


@pytest.mark.parametrize("lanes,acc_bits,overflow,bits,p_stall,real", CASES)
def test_attn_norm_icarus(request, lanes, acc_bits, overflow, bits, p_stall, real):
    """Random and edge rows, a row sum beyond the accumulator, every supported knob value, reset mid-division."""
    run_norm(request, "icarus", lanes, acc_bits, overflow, bits, p_stall, real)


@pytest.mark.slow
def test_attn_norm_verilator(request):
    """The configured datapath's build under Verilator (about 100 s to build)."""
    run_norm(request, "verilator", *CASES[0])


def run_norm(request, sim, lanes, acc_bits, overflow, bits, p_stall, real):
    tb = {"seed": 3 + lanes + acc_bits, "rows": 5, "p_in": p_stall, "p_out": p_stall, "sentence": 0,
          "capture_ops": list(OPS)}
    run_unit(sim, "tb_attn_norm", "itx_attn_norm", norm_parameters(acc_bits, bits, overflow, lanes), tb,
             request.getfixturevalue("sentence0") if real else None)


def test_norm_coverage():
    """Merged coverage of the builds above (sim_build/coverage/norm.yml): every bin is hit but the known holes."""
    if simulator_available("icarus"):
        pytest.skip("no simulation ran")
    assert_covered("norm", BUILDS, KNOWN_HOLES)
