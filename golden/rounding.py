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
    return _rounded(n, d, (d & 1) == 0, rounding, lambda x, out: np.floor_divide(x, d, out=out))


def round_div_or_zero(n, d, rounding: str = "half_away") -> np.ndarray:
    """round_div(n, d) where d > 0 and 0 where d == 0 (a fully masked attention row, a constant LayerNorm row)."""
    d = np.asarray(d, dtype=np.int64)
    out = round_div(n, np.maximum(d, 1), rounding)
    return out if (d > 0).all() else np.where(d > 0, out, 0)


def round_shift(n, sh, rounding: str = "half_away") -> np.ndarray:
    """n / 2^sh rounded by the named mode: round_div for d = 2^sh, with shifts (the RTL's rounding shift).

    Exact for |n| < 2^62 and 0 <= sh <= 62."""
    check_rounding(rounding)
    n, sh = np.asarray(n, dtype=np.int64), np.asarray(sh, dtype=np.int64)
    even = True if sh.min(initial=1) > 0 else sh > 0
    return _rounded(n, np.left_shift(np.int64(1), sh), even, rounding,
                    lambda x, out: np.right_shift(x, sh, out=out))  # arithmetic shift: floor division by 2^sh


def _rounded(n: np.ndarray, d: np.ndarray, even: np.ndarray, rounding: str, floor_div) -> np.ndarray:
    """round(n / d) from floor_div(x, out) = floor(x / d) (numpy out= semantics); even: d % 2 == 0 (or True)."""
    if rounding == "floor":
        return floor_div(n, None)
    if rounding == "half_away":
        # floor((n + h - [n < 0 and d even]) / d), h = floor(d / 2): for n >= 0 ties go up, for n < 0 they go down
        x = n + (d >> 1)
        x -= (n < 0) if even is True else (n < 0) & even
        return floor_div(x, x if x.ndim else None)
    q = floor_div(n, None)   # half_even: q = floor(n / d), r = n - q d in [0, d); up past half, or at half to even q
    twice = 2 * (n - q * d)
    return q + ((twice > d) | ((twice == d) & ((q & 1) == 1)))


def ceil_div(n, d) -> np.ndarray:
    """ceil(n / d) for int64 n >= 0 and d > 0."""
    return -(-np.asarray(n, dtype=np.int64) // np.asarray(d, dtype=np.int64))
