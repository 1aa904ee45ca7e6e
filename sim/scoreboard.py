"""Bit-exact comparison of RTL results with the golden GEMM; a mismatch names tile, row, column, values."""
from __future__ import annotations

import numpy as np

from itx.golden.errors import Mismatch


def tile_rows(m: int, n: int, rows: int, cols: int) -> list[tuple[int, int, int]]:
    """(tm, tn, row) of every output beat of an M x N result, in the controller's output order."""
    return [(tm, tn, r) for tm in range(-(-m // rows)) for tn in range(-(-n // cols))
            for r in range(min(rows, m - tm * rows))]


def check_gemm(expected: np.ndarray, got: np.ndarray, rows: int, cols: int, where: str) -> None:
    """Raise Mismatch (an AssertionError) at the first differing element (zero tolerance)."""
    if got.shape != expected.shape:
        raise Mismatch(f"{where}: result shape {got.shape}, expected {expected.shape}")
    bad = np.argwhere(got != expected)
    if bad.size:
        i, j = (int(v) for v in bad[0])
        raise Mismatch(
            f"{where}: tile ({i // rows}, {j // cols}) row {i} col {j} (in tile {i % rows}, {j % cols}): "
            f"expected {int(expected[i, j])}, got {int(got[i, j])} [{len(bad)} of {expected.size} elements differ]")


def assemble(beats: list[list[int]], m: int, n: int, rows: int, cols: int) -> np.ndarray:
    """Place output row beats (each `cols` signed values) into the M x N result, dropping columns >= N."""
    order = tile_rows(m, n, rows, cols)
    if len(beats) != len(order):
        raise AssertionError(f"got {len(beats)} output beats, expected {len(order)} for a {m}x{n} result")
    out = np.zeros((m, n), dtype=np.int64)
    for (tm, tn, r), row in zip(order, beats):
        w = min(cols, n - tn * cols)
        out[tm * rows + r, tn * cols:tn * cols + w] = row[:w]
    return out
