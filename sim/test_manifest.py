"""The $readmemh fast path: a manifest of GEMMs through itx_gemm_ctrl with Verilog-generated random stalls."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from itx.golden.config import load_hw_config
from itx.golden.vectors import read_manifest, write_manifest
from itx.sim.runner import MemBench, run_manifest, simulator_available
from itx.sim.scoreboard import check_gemm

CFG = load_hw_config()
pytestmark = pytest.mark.skipif(simulator_available("icarus") is not None, reason="iverilog not on PATH")


def _manifest(tmp_path, cfg, shapes, seed=5):
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (cfg.in_bits - 1)), (1 << (cfg.in_bits - 1))
    gemms = [(f"layer{i}", rng.integers(lo, hi, (m, k)), rng.integers(lo, hi, (k, n)))
             for i, (m, k, n) in enumerate(shapes)]
    return read_manifest(write_manifest(tmp_path, gemms, in_bits=cfg.in_bits, acc_bits=cfg.acc_bits,
                                        overflow=cfg.overflow, seed=seed))


@pytest.mark.parametrize("rows,cols,stalls", [(None, None, (0, 0)), (6, 10, (30, 50)), (16, 16, (60, 10))])
def test_manifest_bit_exact(tmp_path, rows, cols, stalls):
    man = _manifest(tmp_path, CFG, [(20, 70, 13), (3, 1, 5), (1, 33, 1), (17, 9, 40)])
    report = run_manifest(man, CFG, rows=rows, cols=cols, stall_in=stalls[0], stall_out=stalls[1])
    assert [layer for layer, _ in report] == [e.layer for e in man.gemms]
    assert all(cycles > 0 for _, cycles in report)


def test_manifest_saturating_narrow_accumulator(tmp_path):
    cfg = replace(CFG, acc_bits=16, overflow="saturate")
    man = _manifest(tmp_path, cfg, [(9, 40, 9), (4, 2, 4)])
    run_manifest(man, cfg, rows=4, cols=4, stall_in=20, stall_out=20)


def test_mismatch_is_reported_with_position(tmp_path):
    man = _manifest(tmp_path, CFG, [(10, 5, 11)])
    e = man.gemms[0]
    bench = MemBench(CFG, 110)
    res = bench.run(man.file(e, "a"), man.file(e, "b"), e.m, e.k, e.n, tag="mut")
    wrong = man.load(e, "c")
    wrong[9, 10] += 1
    tile = rf"tile \({9 // bench.rows}, {10 // bench.cols}\) row 9 col 10 .*expected .*, got"
    with pytest.raises(AssertionError, match=tile):
        check_gemm(wrong, res.got, bench.rows, bench.cols, "mut")


def test_manifest_config_mismatch(tmp_path):
    man = _manifest(tmp_path, CFG, [(2, 2, 2)])
    with pytest.raises(ValueError, match="differ from hw/config.toml"):
        run_manifest(man, replace(CFG, acc_bits=16))
