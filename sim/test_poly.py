"""pytest entry: cocotb testbench of the Poly unit hw/itx_poly.v (sim/tb_poly.py), bit for bit against
itx.golden.attention.poly, widths (lanes, accumulator, overflow, Eq. 10 target, degree) and back-pressure swept; one
build also runs the attention ops of test sentence 0 of the trained model. Coverage: sim_build/coverage/poly.yml."""
from __future__ import annotations

import pytest

from itx.golden.capture import sentence_ops
from itx.golden.config import load_hw_config
from itx.golden.int_config import IntConfig
from itx.golden.model import model_dir
from itx.options import sentence_ids
from itx.sim.coverage import assert_covered, build_name, run_unit
from itx.sim.poly import attention_ops, poly_parameters
from itx.sim.rtl import SIM_BUILD
from itx.sim.runner import simulator_available

# One xdist worker runs every build of this unit, in order, then the coverage test that merges them
# (conftest.py: -n distributes by group).
pytestmark = pytest.mark.xdist_group("poly")

CFG = load_hw_config()
OPS = ("enc.0.self_attn", "dec.0.self_attn")   # dec.0: causal mask
# (lanes, acc_bits, overflow, bits, n, p_stall, real sentence): the configured datapath first
CASES = [(CFG.cols, CFG.acc_bits, CFG.overflow, CFG.in_bits, 3, 0.3, True),
         (3, 16, "saturate", 8, 3, 0.5, False),
         (1, 16, "wrap", 8, 3, 0.0, False),
         (5, 24, "saturate", 10, 2, 0.3, False),
         (2, 20, "wrap", 6, 1, 0.1, False)]
BUILDS = [build_name(poly_parameters(acc, bits, n, ovf, lanes)) for lanes, acc, ovf, bits, n, _, _ in CASES]


@pytest.fixture(scope="module")
def sentence0():
    """The attention ops of test sentence 0 (en-de) as golden captured them, checked against itx.golden.attention."""
    ops = sentence_ops(model_dir("integer"), IntConfig(), *sentence_ids("test", "en-de", 0), SIM_BUILD / "capture")
    return attention_ops(ops, OPS, IntConfig())


@pytest.mark.parametrize("lanes,acc_bits,overflow,bits,n,p_stall,real", CASES)
def test_poly_icarus(request, lanes, acc_bits, overflow, bits, n, p_stall, real):
    """Random, edge and tie rows under every supported knob value, reset mid-stream; zero mismatches."""
    run_poly(request, "icarus", lanes, acc_bits, overflow, bits, n, p_stall, real)


@pytest.mark.slow
def test_poly_verilator(request):
    """The configured datapath's build under Verilator (about 100 s to build)."""
    run_poly(request, "verilator", *CASES[0])


def run_poly(request, sim, lanes, acc_bits, overflow, bits, n, p_stall, real):
    tb = {"seed": 5 + lanes + acc_bits, "tq": 5, "p_in": p_stall, "p_out": p_stall, "sentence": 0,
          "capture_ops": list(OPS)}
    run_unit(sim, "tb_poly", "itx_poly", poly_parameters(acc_bits, bits, n, overflow, lanes), tb,
             request.getfixturevalue("sentence0") if real else None)


# Bins the swept stimulus does not reach, and why; any other uncovered bin fails test_poly_coverage.
KNOWN_HOLES: dict[str, set[str]] = {}


def test_poly_coverage():
    """Merged coverage of the builds above (sim_build/coverage/poly.yml): every bin is hit but the known holes."""
    if simulator_available("icarus"):
        pytest.skip("no simulation ran")
    assert_covered("poly", BUILDS, KNOWN_HOLES)
