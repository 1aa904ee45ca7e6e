"""cocotb testbench of itx_layernorm (run through sim/test_layernorm.py; configured by env ITX_TB as JSON).

Rows of x with their gain g and bias b (per-tensor scales) stream in with seeded random stalls and back-pressure; the
input monitor hands every accepted row to itx.golden.layernorm.l1_layernorm (Eq. 13 + Alg. 1's re-scale) and the checker
compares every element and the row's output scale in order. Functional coverage (cocotb-coverage) goes to the
build's coverage directory as layernorm.yml; its bins are classified from golden's intermediate values."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import cocotb
import numpy as np
from cocotb_coverage.coverage import CoverPoint

from itx.golden.config import to_accumulator
from itx.golden.layernorm import l1_layernorm
from itx.golden.qtensor import QTensor
from itx.golden.rounding import ROUNDINGS, round_div, round_div_or_zero
from itx.sim.coverage import division_tie, headroom_bins, stall_bin, write_coverage
from itx.sim.requant import rounding_code
from itx.sim.rowbench import RowBench, lanes_word, measure_cycles, stream_tests
from itx.sim.unit_bench import start_clock_and_reset
from itx.sim.rowunits import KNOBS, captured_rows, PARAM_BITS, layernorm_cycles, layernorm_factors, output_scale
from itx.sim import replay as rp
from itx.sim.kit import unpack

CFG = json.loads(os.environ.get("ITX_TB", "{}"))
STEPS = ("total", "c", "l1", "y", "t")   # the reductions whose overflow is classified (SPEC.md order)


@dataclass
class Row:
    x: np.ndarray
    g: np.ndarray
    gs: np.float32
    b: np.ndarray
    bs: np.float32
    division: str = "fixed"
    f: int = 7
    rounding: str = "half_away"
    rescale: str = "dyadic"
    tag: str = "random"

    @property
    def frac(self) -> int:
        return self.f if self.division == "fixed" else 0


class LayerNormBench(RowBench):
    ports = ["cfg_n", "in_x", "in_g", "in_b"]

    def __init__(self, dut):
        super().__init__(dut, CFG, "itx_layernorm", output_scale)
        p = self.params
        self.in_bits, self.acc_bits = p["IN_BITS"], p["ACC_BITS"]
        self.overflow = "saturate" if p["SATURATE"] else "wrap"
        self.lo, self.hi = -(1 << (self.in_bits - 1)), (1 << (self.in_bits - 1)) - 1
        self.max_n = p["MAX_N"]
        self.numw = self.acc_bits + self.max_n.bit_length() + 16   # itx_layernorm's NUMW: the signed numerator

    def beats(self, r: Row) -> list[dict[str, int]]:
        (gm, gsh), (bm, bsh), _ = layernorm_factors(r.gs, r.bs, r.frac)
        n, w = len(r.x), self.lanes
        cfg = {"cfg_n": n, "cfg_f": r.frac, "cfg_paper": int(r.division == "paper"), "cfg_gm": gm, "cfg_gsh": gsh,
               "cfg_bm": bm, "cfg_bsh": bsh, "in_rnd": rounding_code(r.rounding), "in_pow2": int(r.rescale == "pow2")}
        # the row's settings are taken with its first beat: later beats carry garbage there
        junk = {k: self.rng.randrange(0, 2) for k in ("cfg_paper", "in_pow2")}
        return [{**(cfg if i == 0 else {**cfg, **junk, "cfg_n": self.rng.randrange(1, self.max_n + 1)}),
                 "in_x": lanes_word(r.x[i:i + w], w, self.in_bits, self.rng),
                 "in_g": lanes_word(r.g[i:i + w], w, PARAM_BITS, self.rng),
                 "in_b": lanes_word(r.b[i:i + w], w, PARAM_BITS, self.rng)} for i in range(0, n, w)]

    def row_length(self, beat: dict[str, int]) -> int:
        return beat["cfg_n"]

    def cycles(self, r: Row) -> int:
        beats = -(-len(r.x) // self.lanes)
        return beats * (self.acc_bits + 30) + 4 * self.acc_bits + 80

    def accepted_row(self, beats):
        n, w = beats[0]["cfg_n"], self.lanes
        cat = lambda port, bits: np.concatenate([unpack(b[port], w, bits) for b in beats])[:n].astype(np.int64)  # noqa
        return cat("in_x", self.in_bits), cat("in_g", PARAM_BITS), cat("in_b", PARAM_BITS)

    def golden(self, r: Row, x, g, b) -> QTensor:
        return l1_layernorm(QTensor(x[None], np.ones((1, 1), np.float32), self.in_bits),
                            QTensor(g, np.full(1, r.gs, np.float32), PARAM_BITS),
                            QTensor(b, np.full(1, r.bs, np.float32), PARAM_BITS), self.out_bits, r.division, r.f,
                            "dyadic", r.rounding, r.rescale, "row", None, self.acc_bits, self.overflow)

    def expect(self, beats, r: Row):
        x, g, b = self.accepted_row(beats)
        out = self.golden(r, x, g, b)
        s = layernorm_factors(r.gs, r.bs, r.frac)[2]
        return (f"{r.tag} n={len(x)} {r.division} F={r.frac} {r.rounding} {r.rescale}",
                lambda j: f"x {x[j]}, g {g[j]}, b {b[j]}", out.values[0], out.scale.reshape(()), s)

    def sample_stream(self, stalls: list[int], backpressured: int) -> None:
        [sample_stall(s) for s in stalls]
        sample_backpressure(backpressured)

    def sample(self, r: Row, beats) -> None:
        """Coverage from golden's intermediate values of Eq. 13 (itx.golden.layernorm's steps, classified here)."""
        x, g, b = self.accepted_row(beats)
        acc = (self.acc_bits, self.overflow)
        n = len(x)
        exact = {"total": x.sum()}
        total = to_accumulator(exact["total"], *acc)
        mu = round_div(total, n, r.rounding)
        exact["c"] = x - mu
        c = to_accumulator(exact["c"], *acc)
        exact["l1"] = np.abs(c).sum()
        l1 = to_accumulator(exact["l1"], *acc)
        num, den = (c, round_div(l1, n, r.rounding)) if r.division == "paper" else ((c * n) << r.frac, l1)
        exact["y"] = round_div_or_zero(num, den, r.rounding)
        y = to_accumulator(exact["y"], *acc)
        exact["t"] = y * g
        for step in STEPS:
            v = np.asarray(exact[step])
            sample_overflow(step, bool(np.any(v != to_accumulator(v, *acc))))
        sample_row(r.rounding, r.division, r.rescale, division_tie(total, n), int(den) > 0 and division_tie(num, den),
                   int(l1) == 0, int(den) <= 0, headroom_bins(int(exact["l1"]).bit_length(), self.acc_bits - 1),
                   headroom_bins(int(np.abs(num).max(initial=0)).bit_length() + 1, self.numw))


@CoverPoint("layernorm.overflow", xf=lambda step, hit: (step, hit),
            bins=[(s, h) for s in STEPS for h in (True, False)])
def sample_overflow(step, hit):
    """One reduction of one row: did it wrap or saturate?"""


@CoverPoint("layernorm.mu_tie", xf=lambda rnd, *a: (rnd, a[2]), bins=[(r, t) for r in ROUNDINGS for t in (True, False)])
@CoverPoint("layernorm.y_tie", xf=lambda rnd, *a: (rnd, a[3]), bins=[(r, t) for r in ROUNDINGS for t in (True, False)])
@CoverPoint("layernorm.knobs", xf=lambda rnd, div, mode, *a: (div, mode),
            bins=[(d, m) for d in KNOBS["ln_division"] for m in KNOBS["rescale"]])
@CoverPoint("layernorm.zero_deviation", xf=lambda *a: a[5], bins=[True, False])
@CoverPoint("layernorm.divisor_not_positive", xf=lambda *a: a[6], bins=[True, False])
@CoverPoint("layernorm.l1_headroom", xf=lambda *a: a[7], bins=["<=1/2", "<=3/4", "<full", "full"])
@CoverPoint("layernorm.numerator_headroom", xf=lambda *a: a[8], bins=["<=1/2", "<=3/4", "<full", "full"])
def sample_row(rnd, division, mode, mu_tie, y_tie, zero_dev, den_not_pos, l1_room, num_room):
    """One accepted row's coverage."""


@CoverPoint("layernorm.stall_in", xf=stall_bin, bins=["0", "1", "2-3", "4+"])
def sample_stall(idle):
    """One input beat's idle run."""


@CoverPoint("layernorm.backpressure", xf=lambda waited: waited > 0, bins=[True])
def sample_backpressure(waited):
    """Did output beats wait on out_ready in a test?"""


def params_of(tb: LayerNormBench, n: int) -> tuple[np.ndarray, np.float32, np.ndarray, np.float32]:
    """A gain near 1 and a small bias, quantized per tensor at PARAM_BITS like IntTransformer's parameters, at
    scales that put either one at the matched minimum."""
    rng, q = tb.np_rng, (1 << (PARAM_BITS - 1)) - 1
    g = rng.integers(-q, q + 1, n)
    b = rng.integers(-q, q + 1, n) >> int(rng.integers(0, 12))
    return g, np.float32(q / rng.uniform(0.5, 3)), b, np.float32(q / rng.uniform(0.01, 1) * 2.0 ** rng.integers(-8, 8))


def random_rows(tb: LayerNormBench, count: int) -> list[Row]:
    rng, rows = tb.np_rng, []
    for k in range(count):
        n = int(rng.integers(1, 3 * tb.lanes + 2))
        big = int(rng.integers(0, tb.hi + 1))
        x = rng.integers(-big, big + 1, n) + int(rng.integers(-big // 2 - 1, big // 2 + 1))
        x = np.clip(x, tb.lo, tb.hi)
        rows.append(Row(x, *params_of(tb, n), KNOBS["ln_division"][k % 2], int(rng.integers(0, 17)),
                        ROUNDINGS[(k // 2) % 3], KNOBS["rescale"][(k // 6) % 2]))
    return rows


def edge_rows(tb: LayerNormBench) -> list[Row]:
    """All-zero rows, constant rows (zero deviation), n = 1, max-magnitude alternating rows (the widest l1, and at
    the longest row the accumulator's edge), ties of mu (n = 2, odd sum), zero bias, F = 0 and 16, every knob."""
    lo, hi, w = tb.lo, tb.hi, tb.lanes
    n = 2 * w + 1
    long = min(tb.max_n, 160)
    alt = lambda m: np.where(np.arange(m) % 2 == 0, hi, lo).astype(np.int64)   # noqa: E731
    rows = []
    for division in KNOBS["ln_division"]:
        for rounding in ROUNDINGS:
            for mode in KNOBS["rescale"]:
                knobs = (division, 16 if rounding == "floor" else 0 if rounding == "half_even" else 7, rounding, mode)
                g, gs, b, bs = params_of(tb, long)
                rows += [Row(np.zeros(n, np.int64), g[:n], gs, b[:n], bs, *knobs, "zero"),
                         Row(np.full(n, hi // 3, np.int64), g[:n], gs, b[:n], bs, *knobs, "constant"),
                         Row(np.array([lo]), g[:1], gs, b[:1], bs, *knobs, "n=1"),
                         Row(alt(n), g[:n], gs, b[:n], bs, *knobs, "max-magnitude"),
                         Row(np.array([0, 1]), g[:2], gs, b[:2], bs, *knobs, "mu tie"),
                         Row(np.array([hi, lo, 0]), g[:3], gs, np.zeros(3, np.int64), bs, *knobs, "zero bias"),
                         Row(np.arange(n) - n // 2, np.full(n, (1 << (PARAM_BITS - 1)) - 1), gs, b[:n], bs, *knobs,
                             "max gain")]
        g, gs, b, bs = params_of(tb, long)   # the longest rows once per division: the widest sums
        rows += [Row(alt(long), g, gs, b, bs, division, 16, tag="long max-magnitude"),
                 Row(np.full(long, lo, np.int64), g, gs, b, bs, division, 3, "floor", "pow2",
                     "long constant minimum")]
    return rows


random_stream, edge_cases, reset_mid_stream = stream_tests(LayerNormBench, random_rows, edge_rows, 10)


@cocotb.test(skip="capture" not in CFG)
async def real_sentence(dut):
    """IntTransformer.norm's inputs of a real sentence (rows of x, the layer's g and b), default knobs."""
    ops = list(captured_rows(np.load(CFG["capture"]), "layernorm").items())[:CFG.get("real_ops", 99)]
    rows = [Row(x, r["g"], r["gs"], r["b"], r["bs"], tag=f"{k} row {i}")
            for k, r in ops for i, x in enumerate(r["x"][:CFG.get("real_rows", 99)])]
    await LayerNormBench(dut).test(rows, "real_sentence")


@cocotb.test(skip="replay" not in CFG)
async def replay(dut):
    """`itx sim model`: every LayerNorm of the captured sentence from golden's inputs, no stalls; the output rows and
    their scales against the model's (sim/replay.py)."""
    tb, data, k, results = LayerNormBench(dut), np.load(CFG["capture"]), rp.knobs(CFG), []
    await start_clock_and_reset(dut)
    inputs = captured_rows(data, "layernorm")
    for op in rp.ops_of(data, "layernorm", CFG):
        r = inputs[op]
        rows = [Row(x, r["g"], r["gs"], r["b"], r["bs"], k["ln_division"], k["ln_frac_bits"], k["rounding"],
                    k["rescale"]) for x in r["x"]]
        beats = [b for row in rows for b in tb.beats(row)]
        words, scales, cycles = await rp.stream(dut, beats, len(beats), ("out_m", "out_sh"))
        want = data[f"{op}/out.values"]
        got = rp.rows_of(words, len(rows), want.shape[-1], tb.lanes, tb.out_bits)
        s = layernorm_factors(r["gs"], r["bs"], rows[0].frac)[2]
        got_s = [output_scale(s, m, sh) for m, sh in scales]
        results.append(rp.result(op, "layernorm", "out", want, got, cycles, (data[f"{op}/out.scale"], got_s)))
    rp.write(CFG, results)


@cocotb.test()
async def cycles(dut):
    """Latency and back-to-back interval of identical rows, no stalls, against itx.sim.rowunits.layernorm_cycles."""
    tb = LayerNormBench(dut)
    await tb.start()
    for n in sorted({1, tb.lanes, 3 * tb.lanes + 1, min(tb.max_n, 32 * tb.lanes)}):
        for division in KNOBS["ln_division"]:
            for mode in KNOBS["rescale"]:
                g, gs, b, bs = params_of(tb, n)
                row = Row(tb.np_rng.integers(tb.lo, tb.hi + 1, n), g, gs, b, bs, division, 7, "half_away", mode)
                got = await measure_cycles(tb, [row] * 3)
                divides = mode == "dyadic" and tb.golden(row, row.x, g, b).scale.reshape(()) != \
                    layernorm_factors(gs, bs, row.frac)[2]
                want = layernorm_cycles(n, tb.lanes, tb.acc_bits, tb.max_n, division == "paper", divides)
                dut._log.info("cycles n=%d %s %s: latency %d, interval %d", n, division, mode, *got)
                assert got == want, f"n={n} {division} {mode}: (latency, interval) {got}, formula {want}"


@cocotb.test()
async def coverage_report(dut):
    """Writes the coverage of the tests above (runs last)."""
    write_coverage("layernorm", CFG)
