"""Yosys synthesis of the RTL units (sim/synth.py): the stat parser and CMOS area model on a captured real `stat -json`
report, and real syntheses whose cell counts must follow the RTL's structure."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from itx.cli import main
from itx.sim.synth import (CMOS_TRANSISTORS, DesignPoint, available, cmos_transistors, design_area, nand2_eq, parse_stat,
                       synthesize)

STAT = Path(__file__).parent / "data" / "stat_itx_pe_4x16.json"   # itx_pe IN_BITS 4 ACC_BITS 16, itx.sim.synth.SCRIPT
needs_yosys = pytest.mark.skipif(available() is not None, reason=str(available()))


def test_parser_and_area_model_on_captured_stat():
    """The cells of a real report, and our weights give exactly Yosys's own CMOS transistor count."""
    text = STAT.read_text()
    cells = parse_stat(text)
    assert cells == {"$_AND_": 63, "$_DFF_P_": 32, "$_MUX_": 2, "$_NAND_": 156, "$_NOR_": 6, "$_NOT_": 7,
                     "$_OR_": 30, "$_XNOR_": 32, "$_XOR_": 25}
    yosys = int(json.loads(text)["design"]["estimated_num_transistors"])
    assert cmos_transistors(cells) == yosys == 2440
    assert nand2_eq(cells) == 2440 / 4


def test_parser_drops_scopeinfo_and_rejects_garbage():
    stat = json.loads(STAT.read_text())
    stat["design"]["num_cells_by_type"]["$scopeinfo"] = 9
    assert "$scopeinfo" not in parse_stat(json.dumps(stat))
    for bad in ("", "{}", "Number of cells: 3", '{"design": {"num_cells_by_type": {"$_AND_": "x"}}}'):
        with pytest.raises(ValueError, match="stat"):
            parse_stat(bad)


def test_unmodelled_cell_is_an_error():
    with pytest.raises(ValueError, match=r"\$_DFFE_PP_"):
        cmos_transistors({"$_NAND_": 1, "$_DFFE_PP_": 2})
    assert set(CMOS_TRANSISTORS) >= {"$_NAND_", "$_DFF_P_", "$_XOR_", "$_MUX_"}


@pytest.mark.parametrize("mode,tied", [("pow2", ".in_rmul({2{31'd1}})"), ("paper", ".in_divide(1'b1)"),
                                       ("tflite", ".in_rmode(2'd1)"), ("tflite_single", ".in_rmode(2'd2)")])
def test_single_mode_wrapper_ties_the_mode_inputs(mode, tied):
    """A single-mode re-scaling unit is itx_requant with its mode inputs driven by constants (no longer ports);
    "all" is the RTL as written."""
    from itx.sim.synth import UNITS, _wrapper

    unit, point = UNITS["requant"], DesignPoint(cols=2, rescale=mode)
    text = _wrapper(unit, unit.params(point), unit.ties(point))
    assert tied in text and ".in_mmode(2'd0)" in text
    assert not any(f" {port}," in text for port in unit.ties(point))
    assert unit.ties(DesignPoint(rescale="all")) == {}


@needs_yosys
def test_pe_registers_and_multiplier_scale_with_widths():
    """A PE holds acc and res (2 x ACC_BITS flip-flops, whatever IN_BITS); its logic (the IN_BITS^2 multiplier) more
    than doubles from 4-bit to 8-bit operands; Yosys's transistor count equals ours."""
    small, big = (synthesize("pe", DesignPoint(in_bits=b, acc_bits=16)) for b in (4, 8))
    for r in (small, big):
        assert r["cells"]["$_DFF_P_"] == 2 * 16
        assert int(r["yosys_transistors"]) == r["transistors"]
    logic = [r["total_cells"] - r["cells"]["$_DFF_P_"] for r in (small, big)]
    assert logic[1] > 2 * logic[0]
    wide = synthesize("pe", DesignPoint(in_bits=8, acc_bits=24))
    assert wide["cells"]["$_DFF_P_"] == 48 and wide["nand2_eq"] > big["nand2_eq"]


@needs_yosys
def test_small_array_and_cache():
    """A 2x2 array at IN_BITS 8 / ACC_BITS 16 holds four PEs plus operand registers, controller and output rows;
    the second call is a cache hit with the same numbers."""
    point = DesignPoint(rows=2, cols=2, in_bits=8, acc_bits=16)
    arr, pe = synthesize("array", point), synthesize("pe", point)
    assert arr["cells"]["$_DFF_P_"] > 4 * pe["cells"]["$_DFF_P_"] + 2 * 16   # + result rows (2 x 2 x ACC_BITS)
    assert arr["nand2_eq"] > 4 * pe["nand2_eq"]
    start = time.perf_counter()
    again = synthesize("array", point)
    assert again["cached"] and time.perf_counter() - start < 1.0
    assert {k: v for k, v in again.items() if k != "cached"} == {k: v for k, v in arr.items() if k != "cached"}


def test_every_unit_of_the_model_is_synthesizable_by_name():
    """The non-GEMM units of `itx sim model` are rows of UNITS, each built from its top's whole hierarchy with the
    parameters the simulations use."""
    from itx.sim.synth import UNITS

    assert set(UNITS) == {"pe", "array", "requant", "poly", "attn_norm", "residual", "layernorm"}
    assert UNITS["layernorm"].files == ("itx_acc_reduce.v", "itx_divider.v", "itx_dyadic.v", "itx_layernorm.v",
                                        "itx_round.v", "itx_round_divider.v", "itx_round_shift.v",
                                        "itx_row_rescale.v")
    p = DesignPoint(cols=4, in_bits=6, acc_bits=24, max_n=64)
    assert UNITS["layernorm"].params(p)["MAX_N"] == 64 and UNITS["poly"].params(p)["LANES"] == 4


RESIDUAL = DesignPoint(cols=1, in_bits=4, acc_bits=16, max_n=4)   # one 4-bit lane: VW = 5-bit sums


@needs_yosys
def test_residual_holds_its_row_buffer_and_factor():
    """itx_residual buffers a row for its re-scale (itx_row_rescale: DEPTH = ceil(MAX_N / LANES) beats of LANES x VW
    bits) and registers the row's factor (MUL_BITS + SH_BITS): at least that many flip-flops survive synthesis."""
    r = synthesize("residual", RESIDUAL)
    assert r["cells"]["$_DFF_P_"] >= 4 * 5 + 31 + 6
    assert int(r["yosys_transistors"]) == r["transistors"]


@needs_yosys
def test_residual_row_buffer_scales_with_max_n():
    """Doubling MAX_N from 4 to 8 on one 4-bit lane adds at least 4 x 5 buffer flip-flops."""
    small, big = (synthesize("residual", replace(RESIDUAL, max_n=n)) for n in (4, 8))
    assert big["cells"]["$_DFF_P_"] - small["cells"]["$_DFF_P_"] >= 4 * 5 and big["nand2_eq"] > small["nand2_eq"]


@needs_yosys
def test_requant_single_mode_units_and_design_area():
    """One lane, 16-bit accumulator (about 30 s of Yosys for all three syntheses on a loaded 2-core machine): pow2's constant
    rmul = 1 folds the second multiplier away, so it is smaller than dyadic; a design point's area sums the array,
    the re-scaling unit and the non-GEMM units."""
    area = {m: synthesize("requant", DesignPoint(cols=1, acc_bits=16, rescale=m))["nand2_eq"] for m in ("pow2",
                                                                                                     "dyadic")}
    assert area["pow2"] < area["dyadic"]
    point = design_area(1, 1, 8, 16, "pow2", max_n=8)
    assert point["parts"]["requant"] == area["pow2"] and point["nand2_eq"] == sum(point["parts"].values())
    assert set(point["parts"]) == {"array", "requant", "poly", "attn_norm", "residual", "layernorm"}


@pytest.mark.parametrize("argv,field", [(["--acc-bits", "40"], "acc_bits"), (["--array", "0x2"], "--array"),
                                        (["--rescale", "all", "--in-bits", "1"], "in_bits")])
def test_bad_options_one_line_exit_2(capsys, tmp_path, argv, field):
    assert main(["synth", "--unit", "pe", *argv, "--json", str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert field in err and "\n" not in err and not (tmp_path / "s.json").exists()
