"""cocotb stream drivers and monitor for itx_gemm_ctrl's valid/ready handshakes (random stalls on both)."""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from cocotb.triggers import RisingEdge

from itx.sim.runner import beat_lanes


def pack(values, bits: int) -> int:
    """Lane i of the bus = values[i] in two's complement."""
    mask, word = (1 << bits) - 1, 0
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * bits)
    return word


def unpack(word: int, lanes: int, bits: int) -> list[int]:
    half, mask = 1 << (bits - 1), (1 << bits) - 1
    return [((word >> (i * bits)) & mask) - ((word >> (i * bits)) & half) * 2 for i in range(lanes)]


@dataclass
class Beat:
    dims: tuple[int, int, int]  # (M, K, N) for cfg_m/k/n
    a: int
    b: int


def gemm_beats(a: np.ndarray, b: np.ndarray, rows: int, cols: int, bits: int) -> list[Beat]:
    """Input beats for A @ B in the controller's order (tm-major, tn, k) of itx.sim.runner.beat_lanes' words."""
    (m, k), n = a.shape, b.shape[1]
    a_words, b_words = ([pack(lanes, bits) for lanes in w] for w in beat_lanes(a, b, rows, cols))
    return [Beat((m, k, n), a_words[tm * k + kk], b_words[tn * k + kk])
            for tm in range(len(a_words) // k) for tn in range(len(b_words) // k) for kk in range(k)]


class InputDriver:
    """Presents beats on in_*; with probability p_stall leaves a cycle idle. Holds valid until accepted."""

    def __init__(self, dut, rng: random.Random, p_stall: float):
        self.dut, self.rng, self.p_stall = dut, rng, p_stall
        self.sent = 0

    async def run(self, beats: list[Beat], stop_after: int | None = None) -> None:
        dut = self.dut
        i = 0
        limit = len(beats) if stop_after is None else min(stop_after, len(beats))
        while i < limit:
            valid = self.rng.random() >= self.p_stall
            if valid:
                beat = beats[i]
                dut.cfg_m.value, dut.cfg_k.value, dut.cfg_n.value = beat.dims
                dut.in_a.value = beat.a
                dut.in_b.value = beat.b
            dut.in_valid.value = int(valid)
            await RisingEdge(dut.clk)
            while valid and not dut.in_ready.value:
                await RisingEdge(dut.clk)
            i += valid
            self.sent = i
        dut.in_valid.value = 0


class OutputMonitor:
    """Drives out_ready (stalled with probability p_stall) and records (row values, out_last) per beat."""

    def __init__(self, dut, rng: random.Random, p_stall: float, cols: int, acc_bits: int):
        self.dut, self.rng, self.p_stall = dut, rng, p_stall
        self.cols, self.acc_bits = cols, acc_bits
        self.beats: list[tuple[list[int], int]] = []

    async def run(self, count: int) -> None:
        dut = self.dut
        while len(self.beats) < count:
            ready = self.rng.random() >= self.p_stall
            dut.out_ready.value = int(ready)
            await RisingEdge(dut.clk)
            if ready and dut.out_valid.value:
                word = dut.out_data.value.to_unsigned()
                self.beats.append((unpack(word, self.cols, self.acc_bits), int(dut.out_last.value)))
        dut.out_ready.value = 0
