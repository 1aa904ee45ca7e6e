"""cocotb testbench of itx_requant (run through sim/test_requant.py; configured by itx.sim.kit.test_args()).

Beats stream through valid/ready with random stalls on both sides; every output lane and overflow flag is
compared bit for bit with the golden model: itx.golden.quant.rescale (Eq. 10: every mode, the TFLite ones included),
itx.golden.ops.add + rescale (dyadic or TFLite Eq. 8 matching of a linear layer's bias add) and, for arbitrary factors
and edge values, the unit's arithmetic in every stage mode (itx.golden.requant.requant_model)."""
from __future__ import annotations

import itertools
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from itx.golden.ops import add
from itx.golden.qtensor import QTensor
from itx.golden.quant import RESCALE_MODES, match_along, rescale
from itx.golden.rounding import ROUNDINGS
from itx.golden.tflite import TFLITE_MODES
from itx.golden.requant import STAGE_MODES, Factors, linear_factors, requant_model, rescale_factors
from itx.sim.requant import rounding_code, stage_code
from itx.sim.kit import Backpressure, Scoreboard, StreamDriver, StreamMonitor, compare, pack, test_args, unpack

CFG = test_args()


FACTORS = ("mul", "sh", "mul2", "sh2", "bias", "rmul", "rsh", "div")   # Factors' per-element fields = in_<name>


class Bench:
    def __init__(self, dut):
        self.dut = dut
        p = CFG["params"]
        self.lanes, self.acc, self.out = p["LANES"], p["ACC_BITS"], p["OUT_BITS"]
        self.overflow = "saturate" if p["SATURATE"] else "wrap"
        self.width = {"data": self.acc, "bias": self.acc, "div": self.acc, "mul": p["MUL_BITS"],
                      "mul2": p["MUL_BITS"], "rmul": p["MUL_BITS"], "sh": p["SH_BITS"], "sh2": p["SH_BITS"],
                      "rsh": p["SH_BITS"]}
        for port, width in (("in_data", self.lanes * self.acc), ("in_mul2", self.lanes * p["MUL_BITS"]),
                            ("out_data", self.lanes * self.out), ("out_ovf", self.lanes)):
            assert len(getattr(dut, port)) == width, f"port {port}: {len(getattr(dut, port))} bits, expected {width}"
        self.rng = random.Random(CFG.get("seed", 0))
        self.np_rng = np.random.default_rng(CFG.get("seed", 0))
        self.lo, self.hi = -(1 << (self.acc - 1)), (1 << (self.acc - 1)) - 1
        self.qmax = (1 << (self.out - 1)) - 1
        self.inputs = {k: getattr(dut, f"in_{k}") for k in (*self.width, "divide", "rnd", "mmode", "rmode", "last")}

    async def start(self) -> None:
        cocotb.start_soon(Clock(self.dut.clk, 10, unit="ns").start())
        self.dut.in_valid.value = 0
        self.dut.out_ready.value = 0
        self.dut.rst.value = 1
        for _ in range(2):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0

    def acc_values(self, shape: tuple[int, int]) -> np.ndarray:
        """Accumulator values of mixed magnitudes, with the extremes and zero sprinkled in."""
        mag = self.np_rng.integers(0, self.acc, size=shape[0])[:, None]
        x = self.np_rng.integers(-(1 << 62), 1 << 62, size=shape) >> (62 - mag)
        edges = np.array([self.lo, self.hi, 0, 1, -1, self.lo + 1])
        pick = self.np_rng.random(shape) < 0.1
        return np.where(pick, self.np_rng.choice(edges, size=shape), np.clip(x, self.lo, self.hi))

    def edge_groups(self, x: np.ndarray) -> np.ndarray:
        """x with its first rows (the row groups of Eq. 10) at the edges: max|x| = qmax (fits: untouched),
        max|x| = qmax + 1 either sign (the smallest group re-scaled), the accumulator minimum and maximum, all 0."""
        x, q, last = x.copy(), self.qmax, x.shape[1] - 1
        x[:6] = self.np_rng.integers(-q, q + 1, size=(6, x.shape[1]))
        x[0, 0], x[0, last] = q, -q
        x[1, 0], x[2, last] = q + 1, -(q + 1)
        x[3, 0], x[4, last], x[5] = self.lo, self.hi, 0
        return x

    def beats(self, x: np.ndarray, f: Factors) -> list[dict[str, int]]:
        """One input beat per row of x: data and factors in lanes 0.. (the lanes past a row 0), the modes."""
        cols = x.shape[1]
        rows = {"data": x, **{k: getattr(f, k) for k in FACTORS}}
        return [{**{k: pack(list(v[i]) + [0] * (self.lanes - cols), self.width[k]) for k, v in rows.items()},
                 "divide": int(f.divide), "rnd": rounding_code(f.rounding), "mmode": stage_code(f.match_mode),
                 "rmode": stage_code(f.rescale_mode), "last": int(i == len(x) - 1)} for i in range(len(x))]

    def model(self, beat: dict[str, int], cols: int) -> tuple[np.ndarray, np.ndarray]:
        """itx.golden.requant.requant_model of one accepted beat: (y, saturation flags) of its `cols` lanes."""
        row = {k: np.array(unpack(beat[k], self.lanes, self.width[k])[:cols])[None] for k in self.width}
        for k in ("mul", "mul2", "rmul", "sh", "sh2", "rsh", "div"):     # unsigned fields
            row[k] &= (1 << self.width[k]) - 1
        f = Factors(**{k: row[k] for k in FACTORS}, divide=bool(beat["divide"]),
                    rounding=ROUNDINGS[beat["rnd"]], match_mode=STAGE_MODES[beat["mmode"]],
                    rescale_mode=STAGE_MODES[beat["rmode"]])
        y, ovf = requant_model(row["data"], f, self.acc, self.out, overflow=self.overflow)
        return y[0], ovf[0]

    async def check(self, x: np.ndarray, f: Factors, want: np.ndarray, what: str, p_in: float = 0.3,
                    p_out: float = 0.3) -> int:
        """Stream x (rows of up to `lanes` columns) with factors f through the unit (kit driver with random stalls,
        back-pressure on out_ready); the scoreboard expects requant_model of each beat the input monitor saw
        accepted and checks y, the overflow flags and out_last of each output beat. `want` is the independent
        golden of the whole tile (rescale, add + rescale, ...), which that model must reproduce."""
        dut, rows, cols = self.dut, x.shape[0], x.shape[1]
        assert cols <= self.lanes
        beats = self.beats(x, f)
        y_model = np.array([self.model(b, cols)[0] for b in beats])
        compare(f"{what}: requant_model vs golden y", want, y_model)
        sb = Scoreboard(f"itx_requant {what}")
        accepted = []

        def expect(beat: dict[str, int]) -> None:
            y, ovf = self.model(beat, cols)
            i = len(accepted)
            accepted.append(beat)
            sb.expect(f"{what}: y", y, (i, 0))
            sb.expect(f"{what}: overflow", ovf.astype(np.int64), (i, 0))
            sb.expect(f"{what}: out_last", np.array(beat["last"]), ())

        def output(beat: dict[str, int]) -> None:
            sb.check(np.array(unpack(beat["data"], self.lanes, self.out)[:cols]))
            sb.check(np.array([(beat["ovf"] >> c) & 1 for c in range(cols)]))
            sb.check(np.array(beat["last"]))

        monitors = [StreamMonitor(dut.clk, dut.in_valid, dut.in_ready, self.inputs, name="input").add_callback(expect),
                    StreamMonitor(dut.clk, dut.out_valid, dut.out_ready, {"data": dut.out_data, "ovf": dut.out_ovf,
                                                                          "last": dut.out_last},
                                  name="output").add_callback(output)]
        for m in monitors:
            m.start()
        sink = Backpressure(dut.clk, dut.out_ready, stall=p_out, rng=self.rng).start()
        sent = await StreamDriver(dut.clk, dut.in_valid, dut.in_ready, self.inputs, stall=p_in,
                                  rng=self.rng).send(beats)
        per_beat = self.acc + 4 if f.divide else 2
        await sb.wait(3 * rows, int(rows * per_beat / (1 - max(p_in, p_out)) * 20 + 200) * 10)
        sink.stop()
        for m in monitors:
            m.stop()
        sb.finish()
        assert sent == len(accepted) == rows, f"{what}: {sent} beats sent, {len(accepted)} accepted, {rows} rows"
        return x.size


@cocotb.test()
async def rescale_eq10(dut):
    """itx.golden.quant.rescale, per row, paper (sequential divider), pow2 (shift), dyadic (multiplier + shift) and the
    TFLite modes (multiplier + shift, double or single rounding), every rounding; edge groups included."""
    tb = Bench(dut)
    await tb.start()
    n = 0
    for mode in RESCALE_MODES:
        for rounding in ROUNDINGS:
            x = tb.edge_groups(tb.acc_values((CFG["rows"], tb.lanes)))
            want = rescale(QTensor(x, np.float32(1), tb.acc), tb.out, "row", mode, rounding=rounding).values
            f = rescale_factors(x, tb.out, "row", mode, rounding=rounding)
            n += await tb.check(x, f, want, f"rescale {mode} {rounding}")
    dut._log.info("rescale_eq10: %d values bit-exact", n)


@cocotb.test()
async def linear_dyadic(dut):
    """A linear layer as golden/int_model.py runs it: act(add(match_along(x W, -1), b)) in the unit's accumulator
    (ACC_BITS, SATURATE), the per-column accumulator scales matched along the features and the bias joining by
    dyadic matching, finer (one matching step) or coarser (the accumulator matched a second time, mul2/sh2), then
    Eq. 10 in every mode, every rounding; per-row activation scales times per-column weight scales. The TFLite
    matchings with their own Eq. 10 and with dyadic's (the modes are per stage)."""
    tb = Bench(dut)
    await tb.start()
    n = 0
    runs = [("dyadic", mode, rounding, coarse) for mode in RESCALE_MODES for rounding in ROUNDINGS
            for coarse in (False, True)] + \
           [(match, mode, "half_away", coarse) for match in TFLITE_MODES for mode in (match, "dyadic")
            for coarse in (False, True)]
    two_step = 0
    for match, mode, rounding, coarse in runs:
        rows = CFG["rows"]
        x = tb.acc_values((rows, tb.lanes))      # the sum may leave the accumulator: wrapped or clipped, as golden
        s = (tb.np_rng.uniform(0.5, 2, (rows, 1)) * tb.np_rng.uniform(0.5, 2, (1, tb.lanes))).astype(np.float32)
        acc = QTensor(x, s * np.float32(2.0 ** tb.np_rng.integers(-4, 12)), tb.acc)
        pbits = min(16, tb.acc)
        ratio = tb.np_rng.uniform(0.05, 0.9, (1, tb.lanes)) if coarse else tb.np_rng.uniform(1, 4, (1, tb.lanes))
        bias = QTensor(tb.np_rng.integers(-(1 << (pbits - 1)), 1 << (pbits - 1), (1, tb.lanes)),
                       ratio.astype(np.float32) * (acc.scale.min() if coarse else acc.scale.max()), pbits)
        matched = add(match_along(acc, -1, match, rounding), bias, match, rounding, tb.acc, tb.overflow)
        want = rescale(matched, tb.out, "row", mode, rounding=rounding).values
        f, _ = linear_factors(acc, bias, tb.out, "row", mode, rounding=rounding, match=match, overflow=tb.overflow)
        two_step += int((f.sh2 != 0).any())
        n += await tb.check(x, f, want, f"linear {match}/{mode} {rounding} {'coarse' if coarse else 'fine'} bias")
    assert two_step == len(runs) // 2, f"{two_step} of {len(runs)} runs used the second matching step"
    dut._log.info("linear_dyadic: %d values bit-exact", n)


@cocotb.test()
async def edge_factors(dut):
    """Arbitrary factors at the edges: x = min/max accumulator, 0, +-1; mul, mul2 and rmul 0, 1, 2^30, 2^31 - 1;
    shifts 0, 1, 30..33, 62 with ties; bias extremes (the sum wrapped or clipped to the accumulator); divisors 1, 2,
    3, the accumulator maximum; saturation to OUT_BITS (flagged); every pair of stage modes (one rounding, tflite,
    tflite_single) for the multiplier-shifts."""
    tb = Bench(dut)
    await tb.start()
    shape = (CFG["rows"], tb.lanes)
    rng = tb.np_rng
    xs = np.array([tb.lo, tb.hi, 0, 1, -1, 3, -3, 5, -5, tb.hi >> 11, tb.lo >> 11])
    muls = np.array([0, 1, 1 << 30, (1 << 31) - 1, 3, (1 << 30) + 1])
    shifts = np.array([0, 1, 2, 30, 31, 32, 33, 61, 62])
    n = 0
    runs = [(False, rounding, mm, rm) for rounding in ROUNDINGS for mm, rm in itertools.product(STAGE_MODES, repeat=2)
            if rounding == "half_away" or (mm, rm) == ("dyadic", "dyadic")] + \
           [(True, rounding, "dyadic", "dyadic") for rounding in ROUNDINGS]
    for divide, rounding, mmode, rmode in runs:
        x = rng.choice(xs, size=shape)
        # the second step is often the identity (1, 0), as in a model, so extreme sums reach the bias add
        mul2 = np.where(rng.random(shape) < 0.5, 1, rng.choice(muls, size=shape))
        sh2 = np.where(mul2 == 1, 0, rng.choice(shifts, size=shape))
        bias = rng.choice(np.array([0, 1, -1, tb.lo, tb.hi, 127, -128]), size=shape)
        rsh = rng.choice(np.array([0, 1, 2, 24, 30, 31, 32, 33, 62]), size=shape)
        div = rng.choice(np.array([1, 2, 3, 7, 255, tb.hi, tb.hi + 1]), size=shape)
        rmul = rng.choice(muls, size=shape)
        f = Factors(rng.choice(muls, size=shape), rng.choice(shifts, size=shape), mul2, sh2, bias,
                    np.where(divide, 1, rmul), np.where(divide, 0, rsh), np.where(divide, div, 1), divide, rounding,
                    mmode, rmode)
        want, ovf = requant_model(x, f, tb.acc, tb.out, overflow=tb.overflow)
        assert ovf.any() and not ovf.all(), "edge set must exercise both flagged and clean lanes"
        n += await tb.check(x, f, want, f"edges divide={divide} {rounding} {mmode}/{rmode}", 0.5, 0.5)
    dut._log.info("edge_factors: %d values bit-exact", n)
