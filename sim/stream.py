"""itx_gemm_ctrl's input beat layout (driven through itx.sim.kit's StreamDriver)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from itx.sim.kit import pack
from itx.sim.runner import beat_lanes


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
