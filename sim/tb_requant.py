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
from cocotb.triggers import RisingEdge, with_timeout

from itx.golden.ops import add
from itx.golden.qtensor import QTensor
from itx.golden.quant import RESCALE_MODES, match_along, rescale
from itx.golden.rounding import ROUNDINGS
from itx.golden.tflite import TFLITE_MODES
from itx.golden.requant import STAGE_MODES, Factors, linear_factors, requant_model, rescale_factors
from itx.sim.requant import rounding_code, stage_code
from itx.sim.kit import pack, test_args, unpack

CFG = test_args()


class Bench:
    def __init__(self, dut):
        self.dut = dut
        p = CFG["params"]
        self.lanes, self.acc, self.out = p["LANES"], p["ACC_BITS"], p["OUT_BITS"]
        self.mul_bits, self.sh_bits = p["MUL_BITS"], p["SH_BITS"]
        for port, width in (("in_data", self.lanes * self.acc), ("in_mul", self.lanes * self.mul_bits),
                            ("out_data", self.lanes * self.out), ("out_ovf", self.lanes)):
            assert len(getattr(dut, port)) == width, f"port {port}: {len(getattr(dut, port))} bits, expected {width}"
        self.rng = random.Random(CFG.get("seed", 0))
        self.np_rng = np.random.default_rng(CFG.get("seed", 0))
        self.lo, self.hi = -(1 << (self.acc - 1)), (1 << (self.acc - 1)) - 1
        self.qmax = (1 << (self.out - 1)) - 1

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

    async def check(self, x: np.ndarray, f: Factors, want: np.ndarray, want_ovf: np.ndarray, what: str,
                    p_in: float = 0.3, p_out: float = 0.3) -> int:
        """Stream x (rows of up to `lanes` columns) with factors f; compare y and the overflow flags."""
        dut, rows, cols = self.dut, x.shape[0], x.shape[1]
        assert cols <= self.lanes

        def lanes(a: np.ndarray, bits: int, i: int) -> int:
            return pack(list(a[i]) + [0] * (self.lanes - cols), bits)

        got, flags = [], []

        async def drive():
            for i in range(rows):
                while self.rng.random() < p_in:
                    dut.in_valid.value = 0
                    await RisingEdge(dut.clk)
                dut.in_valid.value = 1
                dut.in_data.value = lanes(x, self.acc, i)
                dut.in_mul.value = lanes(f.mul, self.mul_bits, i)
                dut.in_sh.value = lanes(f.sh, self.sh_bits, i)
                dut.in_bias.value = lanes(f.bias, self.acc, i)
                dut.in_rmul.value = lanes(f.rmul, self.mul_bits, i)
                dut.in_rsh.value = lanes(f.rsh, self.sh_bits, i)
                dut.in_div.value = lanes(f.div, self.acc, i)
                dut.in_divide.value = int(f.divide)
                dut.in_rnd.value = rounding_code(f.rounding)
                dut.in_mmode.value = stage_code(f.match_mode)
                dut.in_rmode.value = stage_code(f.rescale_mode)
                dut.in_last.value = int(i == rows - 1)
                await RisingEdge(dut.clk)
                while not dut.in_ready.value:
                    await RisingEdge(dut.clk)
            dut.in_valid.value = 0

        async def collect():
            while len(got) < rows:
                dut.out_ready.value = int(self.rng.random() >= p_out)
                await RisingEdge(dut.clk)
                if dut.out_valid.value and dut.out_ready.value:
                    got.append(unpack(int(dut.out_data.value), self.lanes, self.out)[:cols])
                    flags.append([(int(dut.out_ovf.value) >> c) & 1 for c in range(cols)])
                    assert int(dut.out_last.value) == (len(got) == rows), f"{what}: out_last wrong at beat {len(got)}"
            dut.out_ready.value = 0

        cocotb.start_soon(drive())
        per_beat = self.acc + 4 if f.divide else 2
        await with_timeout(collect(), int(rows * per_beat / (1 - max(p_in, p_out)) * 20 + 200) * 10, "ns")
        got, flags = np.array(got, dtype=np.int64), np.array(flags, dtype=bool)
        for name, g, w in (("y", got, want), ("overflow", flags, want_ovf)):
            bad = np.argwhere(g != w)
            if bad.size:
                i, j = (int(v) for v in bad[0])
                raise AssertionError(f"{what}: {name}[{i}, {j}] (x = {int(x[i, j])}, mul {int(f.mul[i, j])}, sh "
                                     f"{int(f.sh[i, j])}, bias {int(f.bias[i, j])}, rmul {int(f.rmul[i, j])}, rsh "
                                     f"{int(f.rsh[i, j])}, div "
                                     f"{int(f.div[i, j])}, {f.rounding}, modes {f.match_mode}/{f.rescale_mode}): "
                                     f"expected {int(w[i, j])}, got "
                                     f"{int(g[i, j])} [{len(bad)} of {g.size} differ]")
        return got.size


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
            n += await tb.check(x, f, want, np.zeros(x.shape, bool), f"rescale {mode} {rounding}")
    dut._log.info("rescale_eq10: %d values bit-exact", n)


@cocotb.test()
async def linear_dyadic(dut):
    """A linear layer as golden/int_model.py runs it: act(add(match_along(x W, -1), b)), the per-column
    accumulator scales matched along the features and the (finer) bias joining by dyadic matching, then
    Eq. 10 in every mode, every rounding; per-row activation scales times per-column weight scales. The TFLite
    matchings with their own Eq. 10 and with dyadic's (the modes are per stage)."""
    tb = Bench(dut)
    await tb.start()
    n = 0
    runs = [("dyadic", mode, rounding) for mode in RESCALE_MODES for rounding in ROUNDINGS] + \
           [(match, mode, "half_away") for match in TFLITE_MODES for mode in (match, "dyadic")]
    for match, mode, rounding in runs:
        rows = CFG["rows"]
        x = tb.acc_values((rows, tb.lanes)) >> 2   # headroom: golden add() requires the sum to fit
        s = (tb.np_rng.uniform(0.5, 2, (rows, 1)) * tb.np_rng.uniform(0.5, 2, (1, tb.lanes))).astype(np.float32)
        acc = QTensor(x, s * np.float32(2.0 ** tb.np_rng.integers(-4, 12)), tb.acc)
        bias = QTensor(tb.np_rng.integers(-(1 << 15), 1 << 15, (1, tb.lanes)),
                       tb.np_rng.uniform(1, 4, (1, tb.lanes)).astype(np.float32) * acc.scale.max(), 16)
        matched = add(match_along(acc, -1, match, rounding), bias, match, rounding)
        want = rescale(matched, tb.out, "row", mode, rounding=rounding).values
        f, _ = linear_factors(acc, bias, tb.out, "row", mode, rounding=rounding, match=match)
        n += await tb.check(x, f, want, np.zeros(x.shape, bool), f"linear {match}/{mode} {rounding}")
    dut._log.info("linear_dyadic: %d values bit-exact", n)


@cocotb.test()
async def edge_factors(dut):
    """Arbitrary factors at the edges: x = min/max accumulator, 0, +-1; mul and rmul 0, 1, 2^30, 2^31 - 1; shifts
    0, 1, 30..33, 62 with ties; bias extremes (accumulator overflow flagged); divisors 1, 2, 3, 2^31 - 1; saturation;
    every pair of stage modes (one rounding, tflite, tflite_single) for the multiplier-shifts."""
    tb = Bench(dut)
    await tb.start()
    shape = (CFG["rows"], tb.lanes)
    rng = tb.np_rng
    xs = np.array([tb.lo, tb.hi, 0, 1, -1, 3, -3, 5, -5, 1 << 20, -(1 << 20)])
    muls = np.array([0, 1, 1 << 30, (1 << 31) - 1, 3, (1 << 30) + 1])
    n = 0
    runs = [(False, rounding, mm, rm) for rounding in ROUNDINGS for mm, rm in itertools.product(STAGE_MODES, repeat=2)
            if rounding == "half_away" or (mm, rm) == ("dyadic", "dyadic")] + \
           [(True, rounding, "dyadic", "dyadic") for rounding in ROUNDINGS]
    for divide, rounding, mmode, rmode in runs:
        x = rng.choice(xs, size=shape)
        mul = rng.choice(muls, size=shape)
        sh = rng.choice(np.array([0, 1, 2, 30, 31, 32, 33, 61, 62]), size=shape)
        bias = rng.choice(np.array([0, 1, -1, tb.lo, tb.hi, 127, -128]), size=shape)
        rsh = rng.choice(np.array([0, 1, 2, 24, 30, 31, 32, 33, 62]), size=shape)
        div = rng.choice(np.array([1, 2, 3, 7, 255, (1 << 31) - 1, tb.hi + 1]), size=shape)
        rmul = rng.choice(muls, size=shape)
        f = Factors(mul, sh, bias, np.where(divide, 1, rmul), np.where(divide, 0, rsh), np.where(divide, div, 1),
                    divide, rounding, mmode, rmode)
        want, ovf = requant_model(x, f, tb.acc, tb.out)
        assert ovf.any() and not ovf.all(), "edge set must exercise both flagged and clean lanes"
        n += await tb.check(x, f, want, ovf, f"edges divide={divide} {rounding} {mmode}/{rmode}", 0.5, 0.5)
    dut._log.info("edge_factors: %d values bit-exact", n)
