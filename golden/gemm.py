"""Exact integer GEMM with a configurable accumulator (SPEC.md, "GEMM").

PLACEHOLDER API (to be made fast): gemm(a, b, acc_bits=32, overflow="wrap") -> int64 array.
"""
from __future__ import annotations

import numpy as np


def _wrap(x: int, bits: int) -> int:
    m = 1 << bits
    x &= m - 1
    return x - m if x >= m >> 1 else x


def gemm_reference(a, b, acc_bits: int = 32, overflow: str = "wrap") -> list[list[int]]:
    """Pure-Python-int reference: the ordered accumulation (k = 0..K-1) a PE performs."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    a = [[int(v) for v in row] for row in np.asarray(a).tolist()]
    b = [[int(v) for v in row] for row in np.asarray(b).tolist()]
    out = []
    for row in a:
        orow = []
        for j in range(len(b[0]) if b else 0):
            acc = 0
            for k, av in enumerate(row):
                acc += av * b[k][j]
                acc = _wrap(acc, acc_bits) if overflow == "wrap" else min(hi, max(lo, acc))
            orow.append(acc)
        out.append(orow)
    return out


def gemm(a: np.ndarray, b: np.ndarray, acc_bits: int = 32, overflow: str = "wrap") -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    return np.asarray(gemm_reference(a, b, acc_bits, overflow), dtype=np.int64).reshape(a.shape[0], b.shape[1])
