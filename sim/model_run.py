"""Layer-by-layer RTL verification of a real sentence: every integer GEMM of golden's vectors (golden/capture.py:
encoder and decoder, attention projections, per-head scores and context, FFN, output projection) goes through
itx_gemm_ctrl and, for linear layers, itx_requant (sim/hdl/itx_tb_layer.v, all operands $readmemh-preloaded).
Compared bit for bit: the INT32 accumulators of every GEMM and, after re-scaling, the INT8 tensor the next layer
consumes. This module only builds, runs and compares: golden writes every vector (golden/vectors.py), itx
reports (itx/sim_report.py).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from itx.golden.config import HwConfig
from itx.golden.errors import Difference, UserError, compare
from itx.golden.quant import DYADIC_BITS
from itx.golden.requant import SH_BITS
from itx.golden.vectors import FACTOR_FILES, Manifest, read_hex
from itx.sim.requant import rounding_code, stage_code
from itx.sim.rtl import rtl_parameters
from itx.sim.runner import Testbench, beat_counts, gemm_args, memory_size

LAYER_TB = Path(__file__).resolve().parent / "hdl" / "itx_tb_layer.v"


# ---- the RTL run ---------------------------------------------------------------------------------------------
class LayerBench:
    """itx_tb_layer for a config and memory sizes (`caps`: the most beat words of A and B and elements of C of
    any GEMM to run), run once per GEMM of a manifest."""

    def __init__(self, cfg: HwConfig, caps: tuple[int, int, int], sim: str = "icarus",
                 rows: int | None = None, cols: int | None = None):
        params = rtl_parameters(cfg, rows, cols)
        self.rows, self.cols, self.cfg = params["ROWS"], params["COLS"], cfg
        self.tb = Testbench(LAYER_TB, {**params, "MUL_BITS": DYADIC_BITS, "SH_BITS": SH_BITS,
                                       **{k: memory_size(c) for k, c in zip(("AMAX", "BMAX", "CMAX"), caps)}}, sim)
        self.dir = self.tb.dir

    def run(self, man: Manifest, i: int, work: Path) -> tuple[int, int, int]:
        """One GEMM (files validated by the caller); returns (cycles, overflow-flag count, first flagged index);
        outputs land in `work`."""
        e = man.gemms[i]
        args = gemm_args(work / str(i), man.file(e, "a"), man.file(e, "b"), e.m, e.k, e.n, self.rows, self.cols,
                         self.cfg.in_bits)
        rq = e.requant
        if rq is not None:
            args += ["+rq=1", f"+y={work / f'{i}.y.hex'}", f"+divide={int(rq.divide)}",
                     f"+rnd={rounding_code(rq.rounding)}", f"+mmode={stage_code(rq.match_mode)}",
                     f"+rmode={stage_code(rq.rescale_mode)}", *(f"+{k}={man.file(e, k)}" for k in FACTOR_FILES)]
        stats = self.tb.run(args, f"gemm {i} ({e.layer})")
        return stats["cycles"], stats["ovf"], stats["first_ovf"]


@dataclass
class LayerResult:
    index: int
    layer: str
    shape: tuple[int, int, int]
    cycles: int
    utilisation: float
    tensor: str                       # what was compared last: "C" (INT32) or "Y" (INT8 after requant)
    mismatches: int = 0
    first: dict | None = None         # {"tensor", "index", "expected", "got"}

    def found(self, d: Difference | None) -> None:
        """Record a comparison's first difference (itx.golden.errors.compare)."""
        if d is not None:
            self.mismatches, self.first = d.count, {"tensor": d.tensor, "index": list(d.index),
                                                    "expected": d.expected, "got": d.got}


def run_layers(man: Manifest, cfg: HwConfig, sim: str = "icarus", rows: int | None = None,
               cols: int | None = None, jobs: int = 1, progress=None, outputs: dict | None = None) -> list[LayerResult]:
    """Run every GEMM of the manifest (with its re-scaling stage where it has a requant entry) and compare; stops
    at the first GEMM with a mismatch (its result is the last in the list). `outputs`: filled with GEMM index ->
    what the RTL computed, (C, Y or None)."""
    for fld, want in (("in_bits", cfg.in_bits), ("acc_bits", cfg.acc_bits), ("overflow", cfg.overflow)):
        if getattr(man, fld) != want:
            raise UserError(f"{man.path}: field {fld!r} = {getattr(man, fld)!r} does not match the RTL's {want!r} "
                            f"(--{fld.replace('_', '-')} / --hw-config)")
    r, c = rows or cfg.rows, cols or cfg.cols
    sizes = [(*beat_counts(e.m, e.k, e.n, r, c), e.m * e.n) for e in man.nonempty().gemms]
    bench = LayerBench(cfg, tuple(max(col) for col in zip(*sizes)), sim, rows, cols)
    work = bench.dir / "out"
    work.mkdir(exist_ok=True)
    expected = []
    for e in man.gemms:   # validate everything before the simulator reads any of it
        man.load(e, "a"), man.load(e, "b")
        expected.append((man.load(e, "c"), e.requant and (man.factors(e), man.load(e, "y"))))
    results = []
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        runs = [pool.submit(bench.run, man, i, work) for i in range(len(man.gemms))]
        for i, (e, fut, (c_exp, rq)) in enumerate(zip(man.gemms, runs, expected)):
            cycles, ovf, first_ovf = fut.result()
            util = e.m * e.k * e.n / (cycles * bench.rows * bench.cols)
            res = LayerResult(i, e.layer, (e.m, e.k, e.n), cycles, util, "C")
            c_got = read_hex(work / f"{i}.c.hex", (e.m, e.n), cfg.acc_bits)
            y_got = None if rq is None else read_hex(work / f"{i}.y.hex", (e.m, e.n), cfg.in_bits)
            if outputs is not None:
                outputs[i] = (c_got, y_got)
            res.found(compare(e.layer, "C", c_exp, c_got))
            if rq is not None and not res.mismatches:
                res.tensor = "Y"
                res.found(compare(e.layer, "Y", rq[1], y_got))
                if ovf and not res.mismatches:
                    res.mismatches = ovf
                    res.first = {"tensor": "Y overflow flag", "index": list(divmod(first_ovf, e.n)),
                                 "expected": 0, "got": 1}
            results.append(res)
            if progress:
                progress(res)
            if res.mismatches:
                break
    except BaseException:
        bench.tb.stop()            # Ctrl-C or a failure: kill running simulations, drop queued ones
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results
