"""itx_gemm_ctrl's input beat layout (driven through itx.sim.kit's StreamDriver)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from itx.sim.kit import pack


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
