"""cocotb testbench of itx_attn_norm (run through sim/test_attn_norm.py; configured by env ITX_TB as JSON).

Per query row: its P beats (the row sum), then its num = P V beats (each divided by the sum, re-scaled), streamed with
seeded random stalls on both sides; every lane of every output beat is compared bit for bit, in order, with
itx.golden.attention.attention_output of the rows the DUT accepted (itx.sim.poly.norm_vectors). Coverage (cocotb-coverage):
row sum positive / zero / negative and its wrap or saturation, quotient wrap or saturation and headroom, division ties
per rounding, F, Eq. 10 identity or re-scale, stalls."""
from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge
from cocotb_coverage.coverage import CoverPoint, coverage_section

from itx.golden.config import to_accumulator
from itx.golden.qtensor import QTensor
from itx.golden.rounding import ROUNDINGS, round_div_or_zero
from itx.sim.coverage import write_coverage
from itx.sim.poly import RTL_RESCALE_MODES, NormVectors, captured, norm_vectors
from itx.golden.requant import STAGE_MODES
from itx.sim.requant import rounding_code, stage_code
from itx.sim import replay as rp
from itx.sim.kit import pack, unpack
from itx.sim.unit_bench import (ACC_FACTS, CFG, HEADROOM, Driver, UnitBench, acc_fact, check_rows,
                            headroom, run_length, run_stream, stall_points)

NORM_COVER = coverage_section(
    *stall_points("norm"),
    CoverPoint("norm.den.sign", xf=lambda d: d.get("den"), bins=["positive", "zero (output 0)", "negative (output 0)"]),
    CoverPoint("norm.acc.den", xf=lambda d: d.get("den_acc"), bins=list(ACC_FACTS)),
    CoverPoint("norm.acc.quotient", xf=lambda d: d.get("q_acc"), bins=list(ACC_FACTS)),
    CoverPoint("norm.headroom.quotient", xf=lambda d: d.get("q_room"), bins=list(HEADROOM)),
    CoverPoint("norm.tie", xf=lambda d: d.get("ties", ()), rel=lambda val, b: b in val, inj=False,
               bins=list(ROUNDINGS)),
    CoverPoint("norm.frac_bits", xf=lambda d: d.get("f"), bins=["0", "1..15", "16"]),
    CoverPoint("norm.eq10", xf=lambda d: d.get("eq10"), bins=["fits (identity)", "re-scaled"]),
    CoverPoint("norm.mode", xf=lambda d: d.get("mode"), bins=list(RTL_RESCALE_MODES)),
)


@NORM_COVER
def sample(facts: dict) -> None:
    """Coverage sampling point (the cover points read `facts`)."""


class NormBench(UnitBench):
    def __init__(self, dut):
        p = CFG["params"]
        self.lanes, self.in_bits, self.acc, self.out = p["LANES"], p["IN_BITS"], p["ACC_BITS"], p["OUT_BITS"]
        self.mul_bits, self.sh_bits, self.saturate = p["MUL_BITS"], p["SH_BITS"], bool(p["SATURATE"])
        super().__init__(dut, {"in_p": self.lanes * self.in_bits, "in_num": self.lanes * self.acc,
                               "out_data": self.lanes * self.out, "in_rmul": self.mul_bits})
        self.lo, self.hi = -(1 << (self.acc - 1)), (1 << (self.acc - 1)) - 1
        self.qmax = (1 << (self.in_bits - 1)) - 1
        self.overflow = "saturate" if self.saturate else "wrap"

    def rows(self, count: int, tk: int, dv: int) -> tuple[QTensor, QTensor]:
        """Random P in [0, qmax] (a Poly row after Eq. 10) and num of mixed magnitudes, edge rows first: P all zero
        (den 0), P a single 1 with num at the accumulator extremes (the quotient leaves the accumulator for F > 0),
        P a single 2 with odd num (ties at F = 0), P all qmax."""
        rng = self.np_rng
        p = rng.integers(0, self.qmax + 1, (count, tk)) * (rng.random((count, tk)) < 0.8)
        mag = rng.integers(0, self.acc - 1, (count, 1))
        num = np.clip(rng.integers(-(1 << 62), 1 << 62, (count, dv)) >> (62 - mag), self.lo, self.hi)
        p[0] = 0
        p[1], num[1] = 0, np.where(np.arange(dv) % 2, self.lo, self.hi)
        p[1, 0] = 1
        p[2], num[2] = 0, rng.integers(-50, 50, dv) * 2 + 1
        p[2, 0] = 2
        p[3] = self.qmax
        return QTensor(p, np.float32(1), self.in_bits), QTensor(num, np.float32(1), self.acc)

    def long_row(self, tk: int, dv: int) -> tuple[QTensor, QTensor]:
        """One row of qmax probabilities whose sum exceeds the accumulator (wraps negative or saturates)."""
        n = -(-(1 << (self.acc - 1)) // self.qmax) + 3
        num = self.np_rng.integers(-1000, 1000, (1, dv))
        return QTensor(np.full((1, max(n, tk)), self.qmax), np.float32(1), self.in_bits), QTensor(num, np.float32(1),
                                                                                                     self.acc)

    def vectors(self, p: QTensor, num: QTensor, f: int, rescale: str, rounding: str) -> NormVectors:
        v_scale = np.ones((num.shape[0], 1), np.float32)
        return norm_vectors(num, p, v_scale, f, self.out, rescale, rounding, self.acc, self.overflow)

    def beats(self, v: NormVectors):
        """Per row: its P beats (the first with in_first), then its num beats; expected values per beat (P beats
        send nothing), rows, which beats send, and each sending beat's coverage facts."""
        L = self.lanes
        beats, want, row_of, sends, facts = [], [], [], [], []
        rmode = stage_code(v.rescale if v.rescale in STAGE_MODES else "dyadic")
        den = to_accumulator(v.den_exact, self.acc, self.overflow)
        exact = round_div_or_zero(v.num << v.f, den[:, None], v.rounding)
        for r in range(v.p.shape[0]):
            for c0 in range(0, v.p.shape[1], L):
                chunk = list(v.p[r, c0:c0 + L])
                beats.append({"in_kind": 0, "in_first": int(c0 == 0), "in_p": pack(chunk + [0] * (L - len(chunk)),
                                                                                   self.in_bits), "in_last": 0})
                want.append([0] * L)
                row_of.append(r)
                sends.append(False)
            for c0 in range(0, v.num.shape[1], L):
                sl = slice(c0, min(c0 + L, v.num.shape[1]))
                pad = L - (sl.stop - sl.start)
                beats.append({"in_kind": 1, "in_first": 0, "in_num": pack(list(v.num[r, sl]) + [0] * pad, self.acc),
                              "in_f": v.f, "in_rmul": int(v.rmul[r]), "in_rsh": int(v.rsh[r]),
                              "in_rnd": rounding_code(v.rounding), "in_rmode": rmode, "in_last": 0})
                want.append(list(v.want[r, sl]) + [0] * pad)
                row_of.append(r)
                sends.append(True)
                d = int(den[r])
                twice = (np.abs(v.num[r, sl]) << v.f) % max(d, 1) * 2
                facts.append({"den": "positive" if d > 0 else "zero (output 0)" if d == 0 else "negative (output 0)",
                              "den_acc": acc_fact(v.den_exact[r:r + 1], self.acc, self.saturate),
                              "q_acc": acc_fact(exact[r, sl], self.acc, self.saturate),
                              "q_room": headroom(exact[r, sl], self.acc),
                              "ties": {v.rounding} if d > 0 and (twice == d).any() else set(),
                              "f": "0" if v.f == 0 else "16" if v.f == 16 else "1..15",
                              "eq10": "fits (identity)" if (v.rmul[r], v.rsh[r]) in ((1, 0), (1 << 30, 30))
                              else "re-scaled", "mode": v.rescale})
        beats[-1]["in_last"] = 1
        return beats, np.array(want, dtype=np.int64), np.array(row_of), np.array(sends), facts

    async def check(self, v: NormVectors, what: str, p_in: float | None = None, p_out: float | None = None) -> int:
        p_in, p_out = CFG["p_in"] if p_in is None else p_in, CFG["p_out"] if p_out is None else p_out
        beats, want, rows, sends, facts = self.beats(v)
        n = await run_stream(self.dut, self.rng, beats, want, rows, self.lanes, self.out, what, p_in, p_out,
                             self.acc + 24, sample, sends)
        for f in facts:
            sample(f)
        return n


@cocotb.test()
async def random_rows(dut):
    """Random and edge rows, F = 0, 8, 16, every Eq. 10 mode the unit supports, every rounding; zero mismatches."""
    tb = NormBench(dut)
    await tb.start()
    n = 0
    runs = [(f, r, "half_away") for f in (0, 8, 16) for r in RTL_RESCALE_MODES] + \
           [(f, "dyadic", rnd) for f in (0, 8) for rnd in ROUNDINGS if rnd != "half_away"]
    for k, (f, rescale, rounding) in enumerate(runs):
        tk, dv = int(tb.np_rng.integers(1, 3 * tb.lanes)), int(tb.np_rng.integers(1, 2 * tb.lanes + 1))
        p, num = tb.rows(max(CFG["rows"], 4), tk, dv)
        n += await tb.check(tb.vectors(p, num, f, rescale, rounding),
                            f"norm F={f} {rescale} {rounding} (run {k}, Tk {tk}, dv {dv})")
    dut._log.info("random_rows: %d values bit-exact", n)
    write_coverage("norm", CFG)


@cocotb.test()
async def long_row(dut):
    """A row sum beyond the accumulator: wraps (to a negative den: output 0) or saturates, as golden's to_acc."""
    tb = NormBench(dut)
    await tb.start()
    if tb.acc > 20:
        dut._log.info("long_row: a %d-bit row sum needs > 2^%d probabilities; covered at narrow accumulators", tb.acc,
                      tb.acc - tb.in_bits)
        return
    p, num = tb.long_row(4, tb.lanes + 1)
    n = 0
    for rounding in ROUNDINGS:
        n += await tb.check(tb.vectors(p, num, 8, "dyadic", rounding), f"norm long row {rounding}", 0.1, 0.1)
    dut._log.info("long_row: %d values bit-exact", n)
    write_coverage("norm", CFG)


@cocotb.test(skip="capture" not in CFG)
async def real_sentence(dut):
    """The normalisation of the attention ops of a real sentence (itx.golden.capture, default knobs)."""
    tb = NormBench(dut)
    await tb.start()
    data, n = np.load(CFG["capture"]), 0
    for op in CFG["capture_ops"]:
        rec = f"{op}.context"
        v = norm_vectors(captured(data, rec, "num", tb.acc), captured(data, rec, "p", tb.in_bits),
                         data[f"{rec}/v_scale"], int(data[f"{rec}/f"]), tb.out, "dyadic", "half_away", tb.acc,
                         tb.overflow)
        n += await tb.check(v, f"norm {op} (sentence {CFG['sentence']})")
    dut._log.info("real_sentence: %d values bit-exact", n)
    write_coverage("norm", CFG)


@cocotb.test(skip="replay" not in CFG)
async def replay(dut):
    """`itx sim model`: the normalisation of every attention of the captured sentence from golden's inputs (num = P V,
    P), no stalls; the context against the model's (sim/replay.py)."""
    tb, data, k, results = NormBench(dut), np.load(CFG["capture"]), rp.knobs(CFG), []
    await tb.start()
    for op in rp.ops_of(data, "attn_norm", CFG):
        v = norm_vectors(captured(data, op, "num", tb.acc), captured(data, op, "p", tb.in_bits), data[f"{op}/v_scale"],
                         int(data[f"{op}/f"]), tb.out, k["rescale"], k["rounding"], tb.acc, tb.overflow)
        beats, _, _, sends, _ = tb.beats(v)
        words, _, cycles = await rp.stream(dut, beats, int(sends.sum()))
        want = data[f"{op}/out.values"]
        results.append(rp.result(op, "attn_norm", "out", want, rp.rows_of(words, v.num.shape[0], v.num.shape[1],
                                                                          tb.lanes, tb.out), cycles))
    rp.write(CFG, results)


@cocotb.test()
async def reset_mid_stream(dut):
    """rst while a division is in flight: out_valid stays low, the row sum restarts, the next stream is exact."""
    tb = NormBench(dut)
    await tb.start()
    p, num = tb.rows(4, tb.lanes + 1, tb.lanes)
    v = tb.vectors(p, num, 8, "dyadic", "half_away")
    beats = tb.beats(v)[0]
    drv = Driver(dut, tb.rng, 0.0)
    task = cocotb.start_soon(drv.run(beats))
    while not (drv.accepted and beats[drv.accepted[-1][0]]["in_kind"] == 1):   # a division has started
        await RisingEdge(dut.clk)
    task.cancel()
    dut.in_valid.value = 0
    await tb.reset()
    for _ in range(tb.acc + 20):     # the cancelled division never completes
        await RisingEdge(dut.clk)
        assert not dut.out_valid.value, "out_valid after rst: the cancelled division completed"
    sample({"reset": True})
    n = await tb.check(v, "norm after reset")
    dut._log.info("reset_mid_stream: %d values bit-exact", n)
    write_coverage("norm", CFG)


@cocotb.test()
async def directed_waits(dut):
    """in_ready follows out_ready: with the output register holding a finished row, the next beat waits exactly as
    long as out_ready stays low (1, 2, 3, 4 cycles), then goes in on the edge that takes the output."""
    tb = NormBench(dut)
    await tb.start()
    p, num = tb.rows(4, tb.lanes, tb.lanes)   # one P and one num beat per row
    v = tb.vectors(p, num, 8, "dyadic", "half_away")
    beats, want, rows, sends, _ = tb.beats(v)
    got, out = [], []
    dut.out_ready.value = 0
    for i, beat in enumerate(beats):
        hold = 0
        if i and beats[i - 1]["in_kind"] == 1:         # a division is running: let it finish into the output register
            dut.in_valid.value = 0
            while not dut.out_valid.value:
                await RisingEdge(dut.clk)
            hold = len(got) % 4 + 1
        for port, value in beat.items():
            getattr(dut, port).value = value
        dut.in_valid.value = 1
        for _ in range(hold):
            await RisingEdge(dut.clk)
            assert not dut.in_ready.value, f"beat {i}: in_ready with a full output register and out_ready low"
        dut.out_ready.value = int(bool(hold))
        await RisingEdge(dut.clk)
        assert dut.in_ready.value, f"beat {i}: not accepted on the edge that takes the output"
        if hold:
            out.append(int(dut.out_data.value))
            got.append(hold)
            sample({"in_wait_run": run_length(hold), "in_wait": True})
        dut.out_ready.value = 0
    dut.in_valid.value = 0
    while not dut.out_valid.value:
        await RisingEdge(dut.clk)
    out.append(int(dut.out_data.value))
    order = np.flatnonzero(sends)
    n = check_rows("norm directed waits", want[order], np.array([unpack(w, tb.lanes, tb.out) for w in out]),
                   rows[order])
    dut._log.info("directed_waits: %d values bit-exact, waits %s", n, got)
    write_coverage("norm", CFG)
