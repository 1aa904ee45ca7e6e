"""cocotb testbench of itx_residual (run through sim/test_residual.py; configured by env ITX_TB as JSON).

Rows of x and z at their own scales stream in with seeded random stalls and back-pressure; the input monitor hands
every accepted row to golden (itx.golden.ops.add with dyadic Eq. 8 matching, then itx.golden.quant.rescale per row, what
IntTransformer.residual runs) and the checker compares every element and the row's output scale in order.
Functional coverage (cocotb-coverage) is written to the build directory as residual.yml."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import cocotb
import numpy as np
from cocotb_coverage.coverage import CoverPoint

from itx.golden.ops import add
from itx.golden.qtensor import QTensor
from itx.golden.quant import rescale
from itx.golden.rounding import ROUNDINGS
from itx.sim.requant import rounding_code
from itx.sim.rowbench import RowBench, lanes_word, measure_cycles, stream_tests
from itx.sim.unit_bench import start_clock_and_reset
from itx.sim.rowunits import KNOBS, captured_rows, match_factor, output_scale, residual_cycles
from itx.sim import replay as rp
from itx.sim.kit import unpack
from itx.sim.coverage import headroom_bins, rounding_tie, stall_bin, write_coverage

CFG = json.loads(os.environ.get("ITX_TB", "{}"))


@dataclass
class Row:
    x: np.ndarray
    sx: np.float32
    z: np.ndarray
    sz: np.float32
    rounding: str = "half_away"
    rescale: str = "dyadic"
    tag: str = "random"


class ResidualBench(RowBench):
    ports = ["cfg_n", "in_x", "in_z", "in_xm", "in_xsh", "in_zm", "in_zsh", "in_rnd", "in_pow2"]

    def __init__(self, dut):
        super().__init__(dut, CFG, "itx_residual", output_scale)
        p = self.params
        self.in_bits, self.acc_bits = p["IN_BITS"], p["ACC_BITS"]
        self.overflow = "saturate" if p["SATURATE"] else "wrap"
        self.vw = min(self.in_bits + 1, self.acc_bits)
        self.lo, self.hi = -(1 << (self.in_bits - 1)), (1 << (self.in_bits - 1)) - 1

    def beats(self, r: Row) -> list[dict[str, int]]:
        s = np.minimum(r.sx, r.sz)
        (xm, xsh), (zm, zsh) = match_factor(r.sx, s), match_factor(r.sz, s)
        n = len(r.x)
        return [{"cfg_n": n, "in_x": lanes_word(r.x[i:i + self.lanes], self.lanes, self.in_bits, self.rng),
                 "in_z": lanes_word(r.z[i:i + self.lanes], self.lanes, self.in_bits, self.rng),
                 "in_xm": xm, "in_xsh": xsh, "in_zm": zm, "in_zsh": zsh, "in_rnd": rounding_code(r.rounding),
                 "in_pow2": int(r.rescale == "pow2")} for i in range(0, n, self.lanes)]

    def row_length(self, beat: dict[str, int]) -> int:
        return beat["cfg_n"]

    def cycles(self, r: Row) -> int:
        return 2 * -(-len(r.x) // self.lanes) + self.vw + 40

    def accepted_row(self, beats) -> tuple[np.ndarray, np.ndarray]:
        n = beats[0]["cfg_n"]
        x = np.concatenate([unpack(b["in_x"], self.lanes, self.in_bits) for b in beats])[:n]
        z = np.concatenate([unpack(b["in_z"], self.lanes, self.in_bits) for b in beats])[:n]
        return x.astype(np.int64), z.astype(np.int64)

    def golden(self, r: Row, x: np.ndarray, z: np.ndarray) -> QTensor:
        one = np.ones((1, 1), np.float32)
        return rescale(add(QTensor(x[None], one * r.sx, self.in_bits), QTensor(z[None], one * r.sz, self.in_bits),
                           "dyadic", r.rounding, self.acc_bits, self.overflow), self.out_bits, "row", r.rescale,
                       None, r.rounding)

    def expect(self, beats, r: Row):
        x, z = self.accepted_row(beats)
        out = self.golden(r, x, z)
        return (f"{r.tag} n={len(x)} {r.rounding} {r.rescale}", lambda j: f"x {x[j]} at {r.sx}, z {z[j]} at {r.sz}",
                out.values[0], out.scale.reshape(()), np.minimum(r.sx, r.sz))

    def sample_stream(self, stalls: list[int], backpressured: int) -> None:
        [sample_stall(s) for s in stalls]
        sample_backpressure(backpressured)

    def sample(self, r: Row, beats) -> None:
        x, z = self.accepted_row(beats)
        s = np.minimum(r.sx, r.sz)
        (xm, xsh), (zm, zsh) = match_factor(r.sx, s), match_factor(r.sz, s)
        one = np.ones((1, 1), np.float32)
        xq, zq = QTensor(x[None], one * r.sx, self.in_bits), QTensor(z[None], one * r.sz, self.in_bits)
        v = add(xq, zq, "dyadic", r.rounding, self.acc_bits, self.overflow).values
        sample_overflow(self.overflow, bool(np.any(v != add(xq, zq, "dyadic", r.rounding, 32, "wrap").values)))
        sample_row(r.rounding, r.rescale, rounding_tie(x * xm, xsh) or rounding_tie(z * zm, zsh),
                   int(np.abs(v).max(initial=0)).bit_length(), self.vw, not v.any(),
                   int(np.abs(v).max(initial=0)) <= (1 << (self.out_bits - 1)) - 1, len(x) % self.lanes == 0)


@CoverPoint("residual.match_tie", xf=lambda rnd, mode, tie, *a: (rnd, tie),
            bins=[(r, t) for r in ROUNDINGS for t in (True, False)])
@CoverPoint("residual.rescale", xf=lambda rnd, mode, tie, used, avail, zero, fits, full: (mode, fits),
            bins=[(m, f) for m in KNOBS["rescale"] for f in (True, False)])
@CoverPoint("residual.headroom", xf=lambda rnd, mode, tie, used, avail, *a: headroom_bins(used, avail),
            bins=["<=1/2", "<=3/4", "<full", "full"])
@CoverPoint("residual.zero_row", xf=lambda rnd, mode, tie, used, avail, zero, *a: zero, bins=[True, False])
@CoverPoint("residual.ragged_beat", xf=lambda *a: a[-1], bins=[True, False])
def sample_row(rnd, mode, tie, used, avail, zero, fits, full):
    """One accepted row's coverage."""


@CoverPoint("residual.sum_overflow", xf=lambda overflow, hit: hit, bins=[True, False])
def sample_overflow(overflow, hit):
    """Did the row's sum leave the accumulator (wrapped or saturated)?"""


@CoverPoint("residual.stall_in", xf=stall_bin, bins=["0", "1", "2-3", "4+"])
def sample_stall(idle):
    """One input beat's idle run."""


@CoverPoint("residual.backpressure", xf=lambda waited: waited > 0, bins=[True])
def sample_backpressure(waited):
    """Did output beats wait on out_ready in a test?"""


def random_rows(tb: ResidualBench, count: int) -> list[Row]:
    rng, rows = tb.np_rng, []
    for k in range(count):
        n = int(rng.integers(1, 3 * tb.lanes + 2))
        big = int(rng.integers(1, tb.hi + 1))
        x, z = rng.integers(-big, big + 1, n), rng.integers(tb.lo, tb.hi + 1, n)
        sx, sz = (np.float32(rng.uniform(0.5, 4) * 2.0 ** rng.integers(-3, 8)) for _ in range(2))
        rows.append(Row(x, sx, z, sz, ROUNDINGS[k % 3], KNOBS["rescale"][(k // 3) % 2]))
    return rows


def edge_rows(tb: ResidualBench) -> list[Row]:
    """All-zero, constant, max-magnitude (either sign, the asymmetric minimum too), a row that fits (identity
    re-scale), q + 1, ties of Eq. 8 (ratio 1/2: odd values halve to .5) in every rounding, equal scales, n = 1."""
    n, lo, hi, q = 2 * tb.lanes + 1, tb.lo, tb.hi, (1 << (tb.out_bits - 1)) - 1
    full = lambda v: np.full(n, v, np.int64)   # noqa: E731
    odd = np.arange(-n, n, 2) | 1
    rows = []
    for rounding in ROUNDINGS:
        for mode in KNOBS["rescale"]:
            rows += [Row(full(0), np.float32(1), full(0), np.float32(2), rounding, mode, "zero"),
                     Row(full(5), np.float32(3), full(5), np.float32(3), rounding, mode, "constant"),
                     Row(full(hi), np.float32(1), full(hi), np.float32(1), rounding, mode, "max"),
                     Row(full(lo), np.float32(1), full(lo), np.float32(1), rounding, mode, "min"),
                     Row(np.r_[q // 2, full(0)[1:]], np.float32(1), np.r_[q - q // 2, full(0)[1:]], np.float32(1),
                         rounding, mode, "fits"),
                     Row(np.r_[-(q // 2) - 1, full(1)[1:]], np.float32(1), np.r_[-(q - q // 2), full(1)[1:]],
                         np.float32(1), rounding, mode, "q+1"),
                     Row(odd[:n], np.float32(2), odd[::-1][:n], np.float32(1), rounding, mode, "tie"),
                     Row(np.array([hi]), np.float32(7), np.array([lo]), np.float32(0.3), rounding, mode, "n=1")]
    return rows


random_stream, edge_cases, reset_mid_stream = stream_tests(ResidualBench, random_rows, edge_rows, 12)


@cocotb.test(skip="capture" not in CFG)
async def real_sentence(dut):
    """IntTransformer.residual's inputs of a real sentence (rows of (x, s_x), (z, s_z)), default knobs."""
    rows = [Row(x, sx, z, sz, "half_away", "dyadic", f"{name} row {i}")
            for name, r in captured_rows(np.load(CFG["capture"]), "residual").items()
            for i, (x, sx, z, sz) in enumerate(zip(r["x"], r["sx"], r["z"], r["sz"]))]
    await ResidualBench(dut).test(rows, "real_sentence")


@cocotb.test(skip="replay" not in CFG)
async def replay(dut):
    """`itx sim model`: every residual add of the captured sentence from golden's inputs, no stalls; the output rows
    and their scales against the model's (sim/replay.py)."""
    tb, data, knobs, results = ResidualBench(dut), np.load(CFG["capture"]), rp.knobs(CFG), []
    await start_clock_and_reset(dut)
    inputs = captured_rows(data, "residual")
    for op in rp.ops_of(data, "residual", CFG):
        r = inputs[op]
        rows = [Row(*v, knobs["rounding"], knobs["rescale"])
                for v in zip(r["x"], r["sx"], r["z"], r["sz"])]
        beats = [b for row in rows for b in tb.beats(row)]
        words, scales, cycles = await rp.stream(dut, beats, len(beats), ("out_m", "out_sh"))
        want = data[f"{op}/out.values"]
        got = rp.rows_of(words, len(rows), want.shape[-1], tb.lanes, tb.out_bits)
        got_s = [output_scale(s, m, sh) for s, (m, sh) in zip(np.minimum(r["sx"], r["sz"]), scales)]
        results.append(rp.result(op, "residual", "out", want, got, cycles, (data[f"{op}/out.scale"], got_s)))
    rp.write(CFG, results)


@cocotb.test()
async def cycles(dut):
    """Latency and back-to-back interval of identical rows, no stalls, against itx.sim.rowunits.residual_cycles."""
    tb = ResidualBench(dut)
    await tb.start()
    for n in sorted({1, tb.lanes, 3 * tb.lanes + 1, 256}):
        for mode in KNOBS["rescale"]:
            x = np.full(n, tb.hi, np.int64)
            row = Row(x, np.float32(1), x, np.float32(1), "half_away", mode)
            got = await measure_cycles(tb, [row] * 3)
            divides = mode == "dyadic" and tb.golden(row, x, x).scale.reshape(()) != np.float32(1)   # max|v| > q
            want = residual_cycles(n, tb.lanes, tb.in_bits, tb.acc_bits, divides)
            dut._log.info("cycles n=%d %s: latency %d, interval %d", n, mode, *got)
            assert got == want, f"n={n} {mode}: (latency, interval) {got}, formula {want}"


@cocotb.test()
async def coverage_report(dut):
    """Writes the coverage of the tests above (runs last)."""
    write_coverage("residual", CFG)
