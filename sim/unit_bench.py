"""Shared pieces of the non-GEMM unit testbenches (sim/tb_poly.py, sim/tb_attn_norm.py): a valid/ready beat driver
with seeded stalls whose input monitor records what the DUT accepted, an output monitor with seeded back-pressure,
an in-order checker naming op, row, lane, expected and got, and the functional coverage (cocotb-coverage) of
handshake stalls and accumulator facts, exported as YAML beside the test results."""
from __future__ import annotations

import json
import os
import random

import numpy as np
from cocotb.triggers import RisingEdge
from cocotb_coverage.coverage import CoverPoint

from itx.golden.errors import Mismatch

CFG = json.loads(os.environ.get("ITX_TB", "{}"))
RUN_LENGTHS = ("0", "1", "2-3", "4+")


def run_length(n: int) -> str:
    return "0" if n == 0 else "1" if n == 1 else "2-3" if n < 4 else "4+"


def acc_fact(exact: np.ndarray, acc_bits: int, saturate: bool) -> str:
    """How the accumulator's reduction (itx.golden.config.to_accumulator) treated a group of exact values."""
    exact = np.asarray(exact, np.int64)
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    if exact.size == 0 or (exact.min() >= lo and exact.max() <= hi):
        return "fits"
    return "saturate" if saturate else "wrap"


def headroom(exact: np.ndarray, acc_bits: int) -> str:
    """Bits a group of exact values uses (signed) against the accumulator's: <= half, below, all, beyond."""
    big = int(np.abs(np.asarray(exact, np.int64)).max(initial=0))
    used = big.bit_length() + 1
    if used <= acc_bits // 2:
        return "<=half"
    return "below" if used < acc_bits else "all" if used == acc_bits else "beyond"


HEADROOM = ("<=half", "below", "all", "beyond")
ACC_FACTS = ("fits", "wrap", "saturate")


def is_tie(x: np.ndarray, m: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """x m / 2^sh lies exactly halfway between two integers (a rounding tie of a multiplier-shift)."""
    p = np.abs(np.asarray(x, np.int64) * np.asarray(m, np.int64))
    sh = np.asarray(sh, np.int64)
    return (sh > 0) & ((p & ((np.int64(1) << sh) - 1)) == (np.int64(1) << np.maximum(sh - 1, 0)))


def stall_points(prefix: str):
    """Cover points of a unit's handshakes: input idle runs before a beat, output back-pressure runs while valid."""
    return [CoverPoint(f"{prefix}.stall.in_idle_run", xf=lambda d: d.get("in_idle"), bins=list(RUN_LENGTHS)),
            CoverPoint(f"{prefix}.stall.in_wait_run", xf=lambda d: d.get("in_wait_run"), bins=list(RUN_LENGTHS)),
            CoverPoint(f"{prefix}.stall.out_blocked_run", xf=lambda d: d.get("out_blocked"), bins=list(RUN_LENGTHS)),
            CoverPoint(f"{prefix}.stall.in_backpressure", xf=lambda d: d.get("in_wait"), bins=[False, True]),
            CoverPoint(f"{prefix}.reset.mid_stream", xf=lambda d: d.get("reset"), bins=[True])]


class UnitBench:
    """A unit under test: its parameters (ITX_TB) checked against the DUT's port widths, seeded random sources, the
    clock and a synchronous reset."""

    def __init__(self, dut, widths: dict[str, int]):
        self.dut, self.params = dut, CFG["params"]
        for port, width in widths.items():
            assert len(getattr(dut, port)) == width, f"port {port}: {len(getattr(dut, port))} bits, expected {width}"
        self.rng = random.Random(CFG["seed"])
        self.np_rng = np.random.default_rng(CFG["seed"])

    async def start(self) -> None:
        await start_clock_and_reset(self.dut)

    async def reset(self, cycles: int = 2) -> None:
        await pulse_reset(self.dut, cycles)


async def start_clock_and_reset(dut) -> None:
    """A 10 ns clock, valid and ready low, then a synchronous reset (every unit bench's start)."""
    import cocotb
    from cocotb.clock import Clock

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.in_valid.value = 0
    dut.out_ready.value = 0
    await pulse_reset(dut)


async def pulse_reset(dut, cycles: int = 2) -> None:
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


class Driver:
    """The one input driver of the unit benches: presents beats (dicts port -> value) one at a time, idles with
    probability p_idle before each (seeded), holds valid until accepted; records (index, idle run, cycles waited for
    in_ready) of every accepted beat."""

    def __init__(self, dut, rng: random.Random, p_idle: float):
        self.dut, self.rng, self.p_idle = dut, rng, p_idle
        self.accepted: list[tuple[int, int, int]] = []

    @property
    def stalls(self) -> list[int]:
        """The idle run before each accepted beat (coverage)."""
        return [idle for _, idle, _ in self.accepted]

    async def run(self, beats: list[dict]) -> None:
        dut = self.dut
        for i, beat in enumerate(beats):
            idle = 0
            while self.rng.random() < self.p_idle:
                dut.in_valid.value = 0
                idle += 1
                await RisingEdge(dut.clk)
            for port, value in beat.items():
                getattr(dut, port).value = value
            dut.in_valid.value = 1
            await RisingEdge(dut.clk)
            wait = 0
            while not dut.in_ready.value:
                wait += 1
                await RisingEdge(dut.clk)
            self.accepted.append((i, idle, wait))
        dut.in_valid.value = 0


class Monitor:
    """Drives out_ready (low with probability p_block, seeded) and records (out_data, out_last, blocked run) of
    every output beat; `count` beats, then out_ready low."""

    def __init__(self, dut, rng: random.Random, p_block: float):
        self.dut, self.rng, self.p_block = dut, rng, p_block
        self.beats: list[tuple[int, int, int]] = []

    async def run(self, count: int) -> None:
        dut, blocked = self.dut, 0
        while len(self.beats) < count:
            ready = self.rng.random() >= self.p_block
            dut.out_ready.value = int(ready)
            await RisingEdge(dut.clk)
            if dut.out_valid.value:
                if ready:
                    self.beats.append((int(dut.out_data.value), int(dut.out_last.value), blocked))
                    blocked = 0
                else:
                    blocked += 1
        dut.out_ready.value = 0


def check_rows(what: str, want: np.ndarray, got: np.ndarray, rows: np.ndarray) -> int:
    """Zero-tolerance comparison of expected and received values ([beats, lanes]); names op, row, lane, values."""
    bad = np.argwhere(got != want)
    if bad.size:
        i, j = (int(v) for v in bad[0])
        raise Mismatch(f"{what}: beat {i} (row {int(rows[i])}) lane {j}: expected {int(want[i, j])}, got "
                       f"{int(got[i, j])} [{len(bad)} of {want.size} values differ]")
    return want.size


async def run_stream(dut, rng: random.Random, beats: list[dict], want: np.ndarray, rows: np.ndarray, lanes: int,
                     bits: int, what: str, p_in: float, p_out: float, budget: int, sample,
                     sends: np.ndarray | None = None) -> int:
    """Drive `beats` (each with in_last) and check every output beat, in order, against want[beat] (lanes values of
    `bits`) and out_last against in_last; sends[beat]: does the beat produce an output beat (default: all do).
    `sample(facts)` sees each accepted beat's handshake facts. Raises on a mismatch or when the unit has not answered
    within `budget` cycles per beat."""
    sends = np.ones(len(beats), bool) if sends is None else np.asarray(sends, bool)
    from cocotb.triggers import with_timeout
    import cocotb
    from itx.sim.kit import unpack

    from cocotb.utils import get_sim_time

    drv, mon = Driver(dut, rng, p_in), Monitor(dut, rng, p_out)
    t0 = get_sim_time("ns")
    cocotb.start_soon(drv.run(beats))
    await with_timeout(mon.run(int(sends.sum())), int(len(beats) * budget / (1 - max(p_in, p_out)) * 4 + 400) * 10,
                       "ns")
    dut._log.info("%s: %d beats in %d cycles (stall p %.2f / %.2f)", what, len(beats),
                  (get_sim_time("ns") - t0) // 10, p_in, p_out)
    for _, idle, wait in drv.accepted:
        sample({"in_idle": run_length(idle), "in_wait_run": run_length(wait), "in_wait": wait > 0})
    for _, _, blocked in mon.beats:
        sample({"out_blocked": run_length(blocked)})
    order = np.array([i for i, _, _ in drv.accepted if sends[i]])
    got = np.array([unpack(word, lanes, bits) for word, _, _ in mon.beats], dtype=np.int64)
    lasts = [last for _, last, _ in mon.beats]
    want_last = [int(beats[i]["in_last"]) for i in order]
    if lasts != want_last:
        k = next(j for j, (a, b) in enumerate(zip(lasts, want_last)) if a != b)
        raise Mismatch(f"{what}: out_last of beat {k}: expected {want_last[k]}, got {lasts[k]}")
    return check_rows(what, want[order], got, rows[order])
