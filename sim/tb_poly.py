"""cocotb testbench of itx_poly (run through sim/test_poly.py; configured by env ITX_TB as JSON).

Rows of scores stream through valid/ready with seeded random stalls on both sides; every lane of every output beat is
compared bit for bit, in order, with itx.golden.attention.poly of the rows the DUT accepted (itx.sim.poly.poly_vectors gives
the unit's per-row factors from golden's intermediate scales). Functional coverage (cocotb-coverage) of accumulator
wrap / saturate hits, headroom, rounding ties per stage, masked rows and stalls goes to sim_build/coverage/."""
from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge
from cocotb_coverage.coverage import CoverPoint, coverage_section

from itx.golden.qtensor import QTensor
from itx.golden.rounding import ROUNDINGS
from itx.golden.tflite import TFLITE_MODES
from itx.sim.coverage import write_coverage
from itx.sim.poly import RTL_RESCALE_MODES, PolyVectors, captured, poly_vectors
from itx.golden.requant import STAGE_MODES
from itx.sim.requant import rounding_code, stage_code
from itx.sim import replay as rp
from itx.sim.kit import pack
from itx.sim.unit_bench import (ACC_FACTS, CFG, HEADROOM, Driver, UnitBench, acc_fact,
                            headroom, is_tie, run_stream, stall_points)

STAGES = ("M1", "M2", "R", "M4")
TIE_BINS = [f"{s}:{r}" for s in STAGES for r in ROUNDINGS + TFLITE_MODES]
POLY_COVER = coverage_section(
    *stall_points("poly"),
    *(CoverPoint(f"poly.acc.{site}", xf=lambda d, s=site: d.get(s), bins=list(ACC_FACTS))
      for site in ("add_b", "power", "add_delta")),
    *(CoverPoint(f"poly.headroom.{site}", xf=lambda d, s=site: d.get(f"room_{s}"), bins=list(HEADROOM))
      for site in ("add_b", "power", "add_delta")),
    CoverPoint("poly.tie", xf=lambda d: d.get("ties", ()), rel=lambda val, b: b in val, inj=False, bins=TIE_BINS),
    CoverPoint("poly.mask.row", xf=lambda d: d.get("mask_row"), bins=["none masked", "partly", "fully masked"]),
    CoverPoint("poly.eq10", xf=lambda d: d.get("eq10"), bins=["fits (identity)", "re-scaled"]),
    CoverPoint("poly.mode", xf=lambda d: d.get("mode"),
               bins=[f"{m}/{r}" for m in STAGE_MODES for r in RTL_RESCALE_MODES]),
)


@POLY_COVER
def sample(facts: dict) -> None:
    """Coverage sampling point (the cover points read `facts`)."""


class PolyBench(UnitBench):
    def __init__(self, dut):
        p = CFG["params"]
        self.lanes, self.acc, self.bits, self.n = p["LANES"], p["ACC_BITS"], p["OUT_BITS"], p["N"]
        self.mul_bits, self.sh_bits, self.saturate = p["MUL_BITS"], p["SH_BITS"], bool(p["SATURATE"])
        super().__init__(dut, {"in_x": self.lanes * self.acc, "in_m1": self.lanes * self.mul_bits,
                               "in_keep": self.lanes, "out_data": self.lanes * self.acc, "in_b": self.acc})
        self.lo, self.hi = -(1 << (self.acc - 1)), (1 << (self.acc - 1)) - 1
        self.overflow = "saturate" if self.saturate else "wrap"

    # ---- stimulus ------------------------------------------------------------------------------------------
    def scores(self, heads: int, tq: int, tk: int, pow2_scales: bool = False) -> tuple[QTensor, np.ndarray]:
        """Random scores [1, heads, tq, tk] of mixed magnitudes with per-element scales (query row x key column, as
        Q K^T has), edge rows first: all zero, fully masked, the accumulator extremes, max|x| at both signs; and a
        random mask. pow2_scales: every scale a power of two (every multiplier-shift then meets ties)."""
        rng, shape = self.np_rng, (1, heads, tq, tk)
        mag = rng.integers(0, self.acc - 1, size=shape[:-1] + (1,))
        x = np.clip(rng.integers(-(1 << 62), 1 << 62, size=shape) >> (62 - mag), self.lo, self.hi)
        keep = rng.random(shape) < 0.8
        flat_x, flat_k = x.reshape(-1, tk), keep.reshape(-1, tk)
        flat_x[0], flat_k[0] = 0, True                                       # all-zero row
        flat_k[1] = False                                                    # fully masked row
        flat_x[2], flat_k[2] = self.hi, True                                 # max-magnitude rows
        flat_x[3], flat_k[3] = np.where(np.arange(tk) % 2, self.lo, self.hi), True
        flat_x[4] = rng.integers(-2, 3, size=tk)                             # tiny values: Eq. 10 identity
        if pow2_scales:
            rs = np.float32(2.0) ** rng.integers(-6, 4, (1, 1, tq, 1))
            cs = np.float32(2.0) ** rng.integers(-3, 3, (1, 1, 1, tk))
        else:
            rs = rng.uniform(2 ** -10, 1, (1, 1, tq, 1)).astype(np.float32)
            cs = rng.uniform(0.25, 4, (1, 1, 1, tk)).astype(np.float32)
        return QTensor(x, (rs * cs).astype(np.float32), self.acc), keep

    def param(self, heads: int, pow2_scales: bool, lo: int = -8) -> QTensor:
        """A poly b or delta: one 16-bit value per head, one scale (a power of two >= 2^lo with pow2_scales)."""
        s = 2.0 ** float(self.np_rng.integers(lo, 8)) if pow2_scales else float(self.np_rng.uniform(2 ** -8, 2 ** 8))
        return QTensor(self.np_rng.integers(-(1 << 15) + 1, 1 << 15, (heads, 1, 1)), np.float32(s), 16)

    def beats(self, v: PolyVectors) -> tuple[list[dict], np.ndarray, np.ndarray, list[dict]]:
        """One beat per LANES scores of a row (padding lanes masked: their expected output is 0), the expected values
        per beat, the row of each beat, and each beat's coverage facts."""
        L, rows, tk = self.lanes, v.x.shape[0], v.x.shape[1]
        beats, want, row_of, facts = [], [], [], []
        st = v.stages
        mmode, rmode = stage_code(v.match), stage_code(v.rescale if v.rescale in STAGE_MODES else "dyadic")
        label = {"dyadic": v.rounding}
        for r in range(rows):
            for c0 in range(0, tk, L):
                sl = slice(c0, min(c0 + L, tk))
                pad = L - (sl.stop - sl.start)

                def lanes(a, bits, fill=0):
                    return pack(list(a[r, sl]) + [fill] * pad, bits)
                beats.append({"in_x": lanes(v.x, self.acc), "in_keep": lanes(v.keep.astype(np.int64), 1),
                              "in_m1": lanes(v.m1, self.mul_bits), "in_sh1": lanes(v.sh1, self.sh_bits),
                              "in_m2": int(v.m2[r]), "in_sh2": int(v.sh2[r]),
                              "in_b": int(v.b[r]) & ((1 << self.acc) - 1),
                              "in_rmul": int(v.rmul[r]), "in_rsh": int(v.rsh[r]), "in_m4": int(v.m4[r]),
                              "in_sh4": int(v.sh4[r]), "in_delta": int(v.delta[r]) & ((1 << self.acc) - 1),
                              "in_rnd": rounding_code(v.rounding), "in_mmode": mmode, "in_rmode": rmode,
                              "in_last": 0})
                want.append(list(v.want[r, sl]) + [0] * pad)
                row_of.append(r)
                kept = v.keep[r]
                ties = set()
                xin, xm, pw = st["match_in"]
                mlabel = label.get(v.match, v.match)
                rlabel = label.get(v.rescale if v.rescale in STAGE_MODES else "dyadic", v.rescale)
                for name, x, m, sh, lab in (("M1", xin[r, sl], v.m1[r, sl], v.sh1[r, sl], mlabel),
                                            ("M2", xm[r, sl], v.m2[r], v.sh2[r], mlabel),
                                            ("R", st["r"][r, sl], v.rmul[r], v.rsh[r], rlabel),
                                            ("M4", pw[r, sl], v.m4[r], v.sh4[r], mlabel)):
                    if is_tie(x, m, sh).any():
                        ties.add(f"{name}:{lab}")
                facts.append({
                    "add_b": acc_fact(st["add_b"][r, sl], self.acc, self.saturate),
                    "power": acc_fact(st["pow_exact"][r, sl], self.acc, self.saturate),
                    "add_delta": acc_fact(st["add_delta_exact"][r, sl], self.acc, self.saturate),
                    "room_add_b": headroom(st["add_b"][r, sl], self.acc),
                    "room_power": headroom(st["pow_exact"][r, sl], self.acc),
                    "room_add_delta": headroom(st["add_delta_exact"][r, sl], self.acc),
                    "ties": ties, "mode": f"{v.match}/{v.rescale}",
                    "mask_row": None if c0 else "none masked" if kept.all() else "fully masked" if not kept.any()
                    else "partly",
                    "eq10": None if c0 else "fits (identity)" if (v.rmul[r], v.rsh[r]) in ((1, 0), (1 << 30, 30))
                    else "re-scaled"})
        beats[-1]["in_last"] = 1
        return beats, np.array(want, dtype=np.int64), np.array(row_of), facts

    async def check(self, v: PolyVectors, what: str, p_in: float | None = None, p_out: float | None = None) -> int:
        """Stream v's rows (stall probabilities default to the build's) and compare every lane of every beat."""
        p_in, p_out = CFG["p_in"] if p_in is None else p_in, CFG["p_out"] if p_out is None else p_out
        beats, want, rows, facts = self.beats(v)
        n = await run_stream(self.dut, self.rng, beats, want, rows, self.lanes, self.acc, what, p_in, p_out, 2, sample)
        for f in facts:   # every beat was accepted and checked (run_stream compares all of them, in order)
            sample(f)
        return n

    def vectors(self, scores: QTensor, keep, b: QTensor, delta: QTensor, match: str, rescale: str,
                rounding: str) -> PolyVectors:
        return poly_vectors(scores, b, delta, self.n, self.bits, keep, match, rounding, rescale, self.acc,
                            self.overflow)


def runs() -> list[tuple[str, str, str]]:
    """(match, rescale, rounding): every stage-mode pair with half_away, every rounding with the default modes."""
    out = [(m, r, "half_away") for m in STAGE_MODES for r in RTL_RESCALE_MODES]
    return out + [("dyadic", r, rnd) for r in ("dyadic", "pow2") for rnd in ROUNDINGS if rnd != "half_away"]


@cocotb.test()
async def random_rows(dut):
    """Random and edge rows (all zero, fully masked, accumulator extremes, tiny), random masks, every knob value the
    unit supports; zero mismatches."""
    tb = PolyBench(dut)
    await tb.start()
    n = 0
    for k, (match, rescale, rounding) in enumerate(runs()):
        heads, tq, tk = 2, CFG["tq"], int(tb.np_rng.integers(1, 2 * tb.lanes + 2))
        scores, keep = tb.scores(heads, max(tq, 5), tk)
        v = tb.vectors(scores, keep, tb.param(heads, False), tb.param(heads, False), match, rescale, rounding)
        n += await tb.check(v, f"poly {match}/{rescale} {rounding} (run {k}, Tk {tk})")
    dut._log.info("random_rows: %d values bit-exact", n)
    write_coverage("poly", CFG)


@cocotb.test()
async def ties(dut):
    """Power-of-two scales everywhere: every matching and Eq. 10 stage meets exact ties; every rounding."""
    tb = PolyBench(dut)
    await tb.start()
    n = 0
    for match, rescale, rounding in [("dyadic", r, rnd) for r in ("dyadic", "pow2") for rnd in ROUNDINGS] + \
            [(m, r, "half_away") for m in TFLITE_MODES for r in ("pow2", m)]:
        scores, keep = tb.scores(2, max(CFG["tq"], 5), tb.lanes + 1, pow2_scales=True)
        scores = QTensor(scores.values >> (tb.acc // 2), scores.scale, tb.acc)   # small values: ties in R and M4 too
        b, delta = tb.param(2, True), tb.param(2, True)
        # delta's scale half the median row's power scale: M4 then divides those rows' powers by 2 (odd ones tie)
        s_pw = tb.vectors(scores, keep, b, delta, match, rescale, rounding).stages["pw_scale"]
        delta = QTensor(delta.values, np.float32(np.median(s_pw)) / np.float32(2), 16)
        v = tb.vectors(scores, keep, b, delta, match, rescale, rounding)
        n += await tb.check(v, f"poly ties {match}/{rescale} {rounding}", 0.5, 0.5)
    # TFLite's Eq. 10 ties: max|ReLU| = 2 qmax makes its multiplier exactly 1/2 (QuantizeMultiplier (2^30, 0)), so odd
    # values tie; one scale everywhere and b matched to 0 (a far larger scale) keep the scores as they are up to R
    qmax = (1 << (tb.bits - 1)) - 1
    x = np.tile(np.r_[2 * qmax, 2 * np.arange(tb.lanes) + 1], (1, 2, 2, 1))
    zero_b = QTensor(np.zeros((2, 1, 1), np.int64), np.float32(2.0 ** 20), 16)
    for mode in TFLITE_MODES:
        v = tb.vectors(QTensor(x, np.float32(1), tb.acc), None, zero_b, tb.param(2, False), mode, mode, "half_away")
        n += await tb.check(v, f"poly Eq. 10 ties {mode}")
    dut._log.info("ties: %d values bit-exact", n)
    write_coverage("poly", CFG)


@cocotb.test(skip="capture" not in CFG)
async def real_sentence(dut):
    """The attention ops of a real sentence of the trained model (itx.golden.capture, default knobs)."""
    tb = PolyBench(dut)
    await tb.start()
    data, n = np.load(CFG["capture"]), 0
    for op in CFG["capture_ops"]:
        t = {k: captured(data, f"{op}.poly", k, b) for k, b in (("scores", tb.acc), ("b", 16), ("delta", 16))}
        v = tb.vectors(t["scores"], data[f"{op}.poly/mask"], t["b"], t["delta"], "dyadic", "dyadic", "half_away")
        n += await tb.check(v, f"poly {op} (sentence {CFG['sentence']})")
    dut._log.info("real_sentence: %d values bit-exact", n)
    write_coverage("poly", CFG)


@cocotb.test(skip="replay" not in CFG)
async def replay(dut):
    """`itx sim model`: every Poly of the captured sentence from golden's inputs, no stalls; Poly(x) against
    itx.golden.attention.poly of those inputs (whose Eq. 10 re-scale is the model's P: itx.sim.poly.attention_ops)."""
    tb, data, k, results = PolyBench(dut), np.load(CFG["capture"]), rp.knobs(CFG), []
    await tb.start()
    for op in rp.ops_of(data, "poly", CFG):
        t = {name: captured(data, op, name, b) for name, b in (("scores", tb.acc), ("b", 16), ("delta", 16))}
        v = tb.vectors(t["scores"], data[f"{op}/mask"], t["b"], t["delta"], k["match"], k["rescale"], k["rounding"])
        beats = tb.beats(v)[0]
        words, _, cycles = await rp.stream(dut, beats, len(beats))
        got = rp.rows_of(words, v.x.shape[0], v.x.shape[1], tb.lanes, tb.acc)
        results.append(rp.result(op, "poly", "poly", v.want.reshape(t["scores"].shape), got, cycles))
    rp.write(CFG, results)


@cocotb.test()
async def reset_mid_stream(dut):
    """rst in the middle of a stream (with a beat held in the output register): out_valid drops, and the next
    stream after it is exact."""
    tb = PolyBench(dut)
    await tb.start()
    scores, keep = tb.scores(2, 6, tb.lanes * 2)
    v = tb.vectors(scores, keep, tb.param(2, False), tb.param(2, False), "dyadic", "dyadic", "half_away")
    beats, _, _, _ = tb.beats(v)
    drv = Driver(dut, tb.rng, 0.2)
    task = cocotb.start_soon(drv.run(beats))
    while not (drv.accepted and dut.out_valid.value):   # out_ready is low: the output register holds a beat
        await RisingEdge(dut.clk)
    task.cancel()
    dut.in_valid.value = 0
    await tb.reset()
    assert not dut.out_valid.value, "out_valid still high after rst"
    sample({"reset": True})
    n = await tb.check(v, "poly after reset")
    dut._log.info("reset_mid_stream: %d values bit-exact", n)
    write_coverage("poly", CFG)
