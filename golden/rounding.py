"""Named integer rounding for every division on the data path (SPEC.md, "Rounding and division")."""
from __future__ import annotations

import numpy as np

ROUNDINGS = ("half_away", "half_even", "floor")
DEFAULT_ROUNDING = "half_away"   # the one default of every rounding knob (golden functions and IntConfig)
_DOMAIN = 1 << 62     # |n| < 2^62, d <= 2^62: round_div / round_shift's domain (checked)
_F64_SAFE = 1 << 51  # |n|, d below this: one float64 division rounds n / d exactly (_float_round_div)
_MIN, _MAX = np.minimum.reduce, np.maximum.reduce


def check_rounding(rounding: str) -> str:
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    return rounding


def round_div(n, d, rounding: str = DEFAULT_ROUNDING, bound: int | None = None) -> np.ndarray:
    """n / d for int64 n and positive int64 d, rounded to an integer by the named mode.

    Exact for |n| < 2^62 and 0 < d <= 2^62 (outside: a one-line ValueError): integer floor division, or where
    |n|, d < 2^51 one float64 division (_float_round_div: the same integers in a third of the time). bound: a known
    bound on max|n| (skips its scan)."""
    check_rounding(rounding)
    n, d = np.asarray(n, dtype=np.int64), np.asarray(d, dtype=np.int64)
    d_min, d_max = (_MIN(d, axis=None), _MAX(d, axis=None)) if d.size else (1, 1)
    if not 0 < d_min <= d_max <= _DOMAIN:
        raise ValueError(f"round_div: divisor must be in 1..2^62, got {d_min if d_min <= 0 else d_max}")
    if d_max < _F64_SAFE:
        out = _float_round_div(n, d, rounding, bound)
        if out is not None:
            return out
    _check_domain("round_div", n)
    return _rounded(n, d, (d & 1) == 0, rounding, lambda x, out: np.floor_divide(x, d, out=out))


def _float_round_div(n: np.ndarray, d: np.ndarray, rounding: str, bound: int | None) -> np.ndarray | None:
    """round(n / d) for 0 < d < 2^51 in one float64 buffer, or None unless max|n| (or bound) < 2^51.

    A correctly rounded x / d of integers |x| < 2^52 is exact if the quotient is an integer or a half-integer;
    otherwise the quotient is >= 1/(2d) away from those and the float error <= |x / d| 2^-53 < 1/(2d): floor, rint
    and truncation of the float quotient are exact. half_away: sign(n) trunc((|n| + floor(d/2)) / d), whose
    numerator is still an exact float64 integer."""
    f = n.astype(np.float64) if _spans(n.shape, d.shape) else \
        np.array(np.broadcast_to(n, np.broadcast_shapes(n.shape, d.shape)), dtype=np.float64)
    out = f.view(np.int64)   # each step below is element-wise, so the int64 result may reuse f's buffer
    if rounding == "half_away":
        np.abs(f, out=f)
        if (_MAX(f, axis=None, initial=0) if bound is None else bound) >= _F64_SAFE:
            return None
        f += d >> 1
        f /= d
        return np.copysign(f, n, out=out, casting="unsafe")  # float -> int64 truncates toward zero
    if (max(_MAX(f, axis=None, initial=0), -_MIN(f, axis=None, initial=0)) if bound is None else bound) >= _F64_SAFE:
        return None
    f /= d
    return (np.floor if rounding == "floor" else np.rint)(f, out=out, casting="unsafe")


def _check_domain(op: str, n: np.ndarray) -> None:
    """|n| < 2^62, the domain where the rounding steps (n + d/2, 2n) stay in int64; two reductions, no temporaries."""
    if n.size and not (-_DOMAIN < _MIN(n, axis=None) and _MAX(n, axis=None) < _DOMAIN):
        bad = n[(n <= -_DOMAIN) | (n >= _DOMAIN)].flat[0]
        raise ValueError(f"{op}: |n| must be < 2^62 (the documented domain), got {bad}")


def _spans(shape: tuple[int, ...], other: tuple[int, ...]) -> bool:
    """Is `shape` already the broadcast of shape and `other` (so in-place steps on a `shape` array can take it)?"""
    return len(other) <= len(shape) and all(o == 1 or o == s for o, s in zip(other[::-1], shape[::-1]))


def round_div_or_zero(n, d, rounding: str = DEFAULT_ROUNDING) -> np.ndarray:
    """round_div(n, d) where d > 0 and 0 where d == 0 (a fully masked attention row, a constant LayerNorm row)."""
    d = np.asarray(d, dtype=np.int64)
    out = round_div(n, np.maximum(d, 1), rounding)
    return out if (d > 0).all() else np.where(d > 0, out, 0)


def round_shift(n, sh, rounding: str = DEFAULT_ROUNDING) -> np.ndarray:
    """n / 2^sh rounded by the named mode: round_div for d = 2^sh, with shifts (the RTL's rounding shift).

    Exact for |n| < 2^62 and 0 <= sh <= 62 (outside: a one-line ValueError)."""
    check_rounding(rounding)
    n, sh = np.asarray(n, dtype=np.int64), np.asarray(sh, dtype=np.int64)
    _check_domain("round_shift", n)
    if sh.size and not 0 <= _MIN(sh, axis=None) <= _MAX(sh, axis=None) <= 62:
        raise ValueError(f"round_shift: shift must be in 0..62, got {sh[(sh < 0) | (sh > 62)].flat[0]}")
    if rounding == "floor":
        return np.right_shift(n, sh)   # arithmetic shift: floor division by 2^sh
    if rounding == "half_away" and _spans(n.shape, sh.shape):
        return halving_shift(twice_toward_zero(n.copy(), n), sh)
    even = True if _MIN(sh, axis=None, initial=1) > 0 else sh > 0
    return _rounded(n, np.left_shift(np.int64(1), sh), even, rounding,
                    lambda x, out: np.right_shift(x, sh, out=out))


def round_shift_product(x: np.ndarray, m: np.ndarray, sh: np.ndarray, rounding: str) -> np.ndarray:
    """round(x m / 2^sh) for a positive multiplier m (a dyadic factor); half_away in place on the product, whose signs
    are x's (twice_toward_zero), and for sh up to 63 (0 beyond 62); the other modes by round_shift (sh <= 62)."""
    if rounding == "half_away":
        return halving_shift(twice_toward_zero(x * m, x), sh)
    return round_shift(x * m, sh, rounding)


def twice_toward_zero(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    """2x - [x < 0] in x's buffer (halving_shift's input), the sign read off `like` (an array of x's signs, e.g. the
    factor of a product x = like * m with m > 0): a bool temporary instead of an int64 one (x >> 63), which matters
    for multi-MB tensors, where every fresh int64 temporary costs page faults."""
    x = np.asarray(x)   # a 0-d product is a numpy scalar
    x += x
    return np.subtract(x, np.less(like, 0), out=x, casting="unsafe")


def halving_shift(x: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """floor((floor(x / 2^sh) + 1) / 2), in x's buffer (x spans sh's shape). For x = 2n - [n < 0] that is n / 2^sh
    rounded half away from zero for every sh >= 0: floor((2n - 2[n < 0]) / 2^sh) = floor(x / 2^sh) for sh >= 1 (x is
    odd where they differ, never a multiple of 2^sh), so it is floor((n + 2^(sh-1) - [n < 0]) / 2^sh), with no 2^sh
    array; sh = 0 gives n. |n| < 2^62 keeps x in int64; sh = 63 leaves only the sign, i.e. 0, as any larger sh."""
    x >>= sh
    x += 1
    x >>= 1
    return x


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
