"""cocotb testbench of itx_gemm_ctrl (run through sim/test_gemm_ctrl.py; configured by env ITX_TB as JSON).

Every GEMM is streamed through the valid/ready handshakes with random stalls on both sides and compared
bit for bit with itx.golden.gemm.gemm by the scoreboard."""
from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, with_timeout

from itx.golden.gemm import gemm
from itx.sim.scoreboard import assemble, check_gemm, tile_rows
from itx.sim.stream import InputDriver, OutputMonitor, gemm_beats

CFG = json.loads(os.environ.get("ITX_TB", "{}"))


class Bench:
    """DUT geometry taken from the DUT itself (checked against the requested parameters), plus stimulus."""

    def __init__(self, dut):
        self.dut = dut
        p = CFG["params"]
        self.rows, self.cols = p["ROWS"], p["COLS"]
        self.in_bits, self.acc_bits = p["IN_BITS"], p["ACC_BITS"]
        self.overflow = "saturate" if p["SATURATE"] else "wrap"
        widths = {"in_a": self.rows * self.in_bits, "in_b": self.cols * self.in_bits,
                  "out_data": self.cols * self.acc_bits}
        for port, width in widths.items():
            got = len(getattr(dut, port))
            assert got == width, f"port {port} is {got} bits, parameters {p} imply {width}"
        seed = CFG.get("seed", 0)
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.lo, self.hi = -(1 << (self.in_bits - 1)), (1 << (self.in_bits - 1)) - 1

    async def start(self) -> None:
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        dut.in_valid.value = 0
        dut.out_ready.value = 0
        await self.reset()

    async def reset(self, cycles: int = 2) -> None:
        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0

    def operand(self, shape: tuple[int, int], kind: str = "random") -> np.ndarray:
        """Random INT operands, or edge patterns: all minimum, mixed extremes."""
        if kind == "min":
            return np.full(shape, self.lo, dtype=np.int64)
        if kind == "extremes":
            return self.np_rng.choice(np.array([self.lo, self.hi, self.lo + 1, -1, 0, 1]), size=shape)
        return self.np_rng.integers(self.lo, self.hi + 1, size=shape)

    def random_gemm(self, max_k: int) -> tuple[np.ndarray, np.ndarray]:
        m = self.rng.randint(1, 2 * self.rows + 1)
        n = self.rng.randint(1, 2 * self.cols + 1)
        k = self.rng.randint(1, max_k)
        kind = self.rng.choice(["random"] * 6 + ["min", "extremes"])
        return self.operand((m, k), kind), self.operand((k, n), self.rng.choice([kind, "random"]))

    async def stream(self, gemms: list[tuple[np.ndarray, np.ndarray]], p_in: float, p_out: float) -> int:
        """Stream GEMMs back to back, check every result and out_last; returns the number of tiles."""
        beats, counts = [], []
        for a, b in gemms:
            beats += gemm_beats(a, b, self.rows, self.cols, self.in_bits)
            counts.append(len(tile_rows(a.shape[0], b.shape[1], self.rows, self.cols)))
        driver = InputDriver(self.dut, self.rng, p_in)
        monitor = OutputMonitor(self.dut, self.rng, p_out, self.cols, self.acc_bits)
        cocotb.start_soon(driver.run(beats))
        budget = (len(beats) + sum(counts) + 4 * (self.rows + self.cols) * len(gemms) + 100)
        budget = int(budget * 20 / (1 - max(p_in, p_out)))
        await with_timeout(monitor.run(sum(counts)), budget * 10, "ns")
        tiles, pos = 0, 0
        for g, ((a, b), count) in enumerate(zip(gemms, counts)):
            rows = monitor.beats[pos:pos + count]
            pos += count
            where = f"gemm {g} ({a.shape[0]}x{a.shape[1]}x{b.shape[1]})"
            lasts = [last for _, last in rows]
            assert lasts == [0] * (count - 1) + [1], f"{where}: out_last pattern {lasts}"
            got = assemble([r for r, _ in rows], a.shape[0], b.shape[1], self.rows, self.cols)
            check_gemm(gemm(a, b, acc_bits=self.acc_bits, overflow=self.overflow, in_bits=self.in_bits), got,
                       self.rows, self.cols, where)
            tiles += -(-a.shape[0] // self.rows) * -(-b.shape[1] // self.cols)
        for _ in range(3):  # nothing more may come out
            await RisingEdge(self.dut.clk)
            assert not self.dut.out_valid.value, "spurious output beat after the last GEMM"
        return tiles


@cocotb.test(timeout_time=20, timeout_unit="ms")  # a hang fails instead of spinning
async def random_gemms(dut):
    """Random shapes and values (incl. edge patterns), back to back, random stalls on both handshakes."""
    tb = Bench(dut)
    await tb.start()
    tiles, batch = 0, 0
    while tiles < CFG["tiles"]:
        gemms = [tb.random_gemm(CFG["max_k"]) for _ in range(8)]
        p_in, p_out = tb.rng.choice([(0.0, 0.0), (0.3, 0.3), (0.6, 0.1), (0.1, 0.7)])
        tiles += await tb.stream(gemms, p_in, p_out)
        batch += 1
    dut._log.info("random_gemms: %d tiles in %d batches, zero mismatches", tiles, batch)


@cocotb.test(timeout_time=20, timeout_unit="ms")  # a hang fails instead of spinning
async def edge_gemms(dut):
    """All-minimum, mixed extremes, K = 1, K not a multiple of the array, M or N smaller than the array,
    and K long enough to overflow a narrow accumulator (wrap/saturate)."""
    tb = Bench(dut)
    await tb.start()
    r, c = tb.rows, tb.cols
    shapes = [(r, 1, c), (1, 1, 1), (r, r + c + 3, c), (max(1, r - 1), 5, max(1, c - 1)), (1, 2 * (r + c), c),
              (r + 1, 3, 1), (2 * r + 1, r + c - 1, 2 * c + 1), (r, 40, c)]
    gemms = []
    for m, k, n in shapes:
        for ka, kb in (("min", "min"), ("extremes", "extremes"), ("random", "min"), ("random", "random")):
            gemms.append((tb.operand((m, k), ka), tb.operand((k, n), kb)))
    tiles = await tb.stream(gemms, 0.0, 0.0)
    tiles += await tb.stream(gemms, 0.4, 0.4)
    dut._log.info("edge_gemms: %d tiles, zero mismatches", tiles)


@cocotb.test(timeout_time=20, timeout_unit="ms")  # a hang fails instead of spinning
async def reset_mid_stream(dut):
    """Reset while tiles are in flight (input and output side), then a clean GEMM must be exact."""
    tb = Bench(dut)
    await tb.start()
    for cut in (1, tb.rows + tb.cols, 3 * (tb.rows + tb.cols)):
        a, b = tb.operand((2 * tb.rows, 7)), tb.operand((7, 2 * tb.cols))
        beats = gemm_beats(a, b, tb.rows, tb.cols, tb.in_bits)
        driver = InputDriver(dut, tb.rng, 0.2)
        drain = cocotb.start_soon(OutputMonitor(dut, tb.rng, 0.5, tb.cols, tb.acc_bits).run(len(beats)))
        await with_timeout(driver.run(beats, stop_after=cut), 1000 * (cut + tb.rows + tb.cols), "ns")
        for _ in range(tb.rng.randint(0, tb.rows + tb.cols)):
            await RisingEdge(dut.clk)
        drain.cancel()
        await tb.reset(tb.rng.randint(1, 3))
        dut.out_ready.value = 1
        await RisingEdge(dut.clk)
        assert not dut.out_valid.value, f"output still valid after reset (cut after {cut} beats)"
        await tb.stream([tb.random_gemm(CFG["max_k"]), (a, b)], 0.2, 0.2)
