"""cocotb stream drivers and monitor for itx_gemm_ctrl's valid/ready handshakes (random stalls on both)."""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from cocotb.triggers import RisingEdge


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
    """Input beats for A @ B in the controller's order (tm-major, tn, k); padding lanes are zero."""
    m, k = a.shape
    n = b.shape[1]
    ap = np.zeros((-(-m // rows) * rows, k), dtype=np.int64)
    ap[:m] = a
    bp = np.zeros((k, -(-n // cols) * cols), dtype=np.int64)
    bp[:, :n] = b
    a_words = [[pack(ap[tm * rows:(tm + 1) * rows, kk], bits) for kk in range(k)] for tm in range(len(ap) // rows)]
    b_words = [[pack(bp[kk, tn * cols:(tn + 1) * cols], bits) for kk in range(k)]
               for tn in range(bp.shape[1] // cols)]
    return [Beat((m, k, n), aw[kk], bw[kk]) for aw in a_words for bw in b_words for kk in range(k)]


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
