"""Named integer rounding for every division on the data path (SPEC.md, "Rounding and division")."""
from __future__ import annotations

import numpy as np

ROUNDINGS = ("half_away", "half_even", "floor")


def check_rounding(rounding: str) -> str:
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    return rounding


def round_div(n, d, rounding: str = "half_away") -> np.ndarray:
    """n / d for int64 n and positive int64 d, rounded to an integer by the named mode.

    Exact for |n| < 2^62 and 0 < d < 2^62: only integer floor division, never a float.
    """
    check_rounding(rounding)
    n, d = np.asarray(n, dtype=np.int64), np.asarray(d, dtype=np.int64)
    if rounding == "floor":
        return n // d
    q, r = np.divmod(np.abs(n), d)          # |n| = q*d + r, 0 <= r < d
    twice = 2 * r
    up = twice > d
    if rounding == "half_away":
        up |= twice == d
    else:                                   # half_even on |n| is half_even on n: the tie set is symmetric
        up |= (twice == d) & (q % 2 == 1)
    return np.sign(n) * (q + up)


def ceil_div(n, d) -> np.ndarray:
    """ceil(n / d) for int64 n >= 0 and d > 0."""
    return -(-np.asarray(n, dtype=np.int64) // np.asarray(d, dtype=np.int64))
