"""Quantization (Eq. 1, 2), scale matching (Eq. 8), re-scaling (Eq. 10) and Scale Propagation (Alg. 1)."""
from __future__ import annotations

import functools

import numpy as np

from .qtensor import QTensor, check_bits, checked_scale, first_bad, keepdims_of, qmax
from .rounding import DEFAULT_ROUNDING, ceil_div, check_rounding, round_div, round_shift, round_shift_product
from .tflite import TFLITE_MODES, multiply_by_quantized_multiplier

GRANULARITIES = ("tensor", "row", "batch", "block")
MATCH_MODES = ("paper", "dyadic") + TFLITE_MODES
RESCALE_MODES = ("paper", "pow2", "dyadic") + TFLITE_MODES
# The one default of each knob, used by the functions below, itx.golden.ops/attention/layernorm and IntConfig alike:
# the dyadic variants are more precise than the paper's ceil (SPEC.md) and one cycle per beat in itx_requant.
DEFAULT_MATCH, DEFAULT_RESCALE, DEFAULT_GRANULARITY = "dyadic", "dyadic", "row"
DYADIC_BITS = 31          # multiplier m in [2^30, 2^31): fits a signed 32-bit register
# An all-zero group is exactly 0 at any scale; it gets this one instead of a quantization scale, large enough never to
# be Eq. 8's s_min against a real tensor (max|r| > 127 2^-40), so matching with it never coarsens the other operand
# (a zero bias, gain or initial parameter), and small enough that products of such scales stay finite float32.
ZERO_SCALE = np.float32(2.0 ** 40)
_MAX_DIVISOR = 1 << 32    # |x| < 2^32 so x / d rounds to 0 for any d >= 2^32: clamping keeps int64 safe
_MAX_SHIFT = 62
_ALL, _MIN, _MAX = np.logical_and.reduce, np.minimum.reduce, np.maximum.reduce  # no ndarray methods' Python wrappers


def _choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def check_qtensor(x, name: str) -> QTensor:
    if not isinstance(x, QTensor):
        raise ValueError(f"{name} must be a QTensor, got {type(x).__name__}")
    return x


def group_absmax(a: np.ndarray, granularity: str = "tensor", block: int | None = None) -> np.ndarray:
    """max|a| per scale group, keepdims: tensor (all), row (last dim), batch (all but the first dim),
    block (b x b tiles of the last two dims, ragged edge tiles allowed; returned at full size)."""
    _choice(granularity, GRANULARITIES, "granularity")
    a = np.asarray(a)
    if a.ndim == 0 or a.size == 0:
        raise ValueError(f"granularity {granularity!r} needs a non-empty array with ndim >= 1, got shape {a.shape}")
    if a.ndim < 2 and granularity in ("batch", "block"):
        raise ValueError(f"granularity {granularity!r} needs ndim >= 2, got shape {a.shape}")
    if granularity != "block":
        axis = {"tensor": None, "row": -1, "batch": tuple(range(1, a.ndim))}[granularity]
        # max(max a, -min a) = max|a| without an |a| temporary (negation is exact for the int64/float32 callers)
        return np.maximum(_MAX(a, axis=axis, keepdims=True), -_MIN(a, axis=axis, keepdims=True))
    a = np.abs(a)
    block = check_bits(block, "block", 1, 1 << 30)
    rows, cols = a.shape[-2:]
    pr, pc = -rows % block, -cols % block
    padded = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(0, pr), (0, pc)])
    tiles = padded.reshape(a.shape[:-2] + ((rows + pr) // block, block, (cols + pc) // block, block))
    m = tiles.max(axis=(-3, -1))
    return np.repeat(np.repeat(m, block, axis=-2), block, axis=-1)[..., :rows, :cols]


def _round_float(x: np.ndarray, rounding: str) -> np.ndarray:
    """Round float32 products to integers; float64 keeps |x| + 0.5 exact."""
    x = x.astype(np.float64)
    if rounding == "half_away":
        return np.sign(x) * np.floor(np.abs(x) + 0.5)
    return np.rint(x) if rounding == "half_even" else np.floor(x)


def quantize(r, bits: int = 8, granularity: str = "tensor", block: int | None = None,
             rounding: str = DEFAULT_ROUNDING) -> QTensor:
    """Eq. 1 with the Sec. 3.1 scale: s = (2^(bits-1) - 1) / max|r| per group (float32), x = round(s * r).

    An all-zero group gets x = 0 and s = ZERO_SCALE (no division by zero, no coarsening of what it is matched with)."""
    bits = check_bits(bits, "bits", 2, 16)
    check_rounding(rounding)
    r = np.asarray(r)
    if not (np.issubdtype(r.dtype, np.floating) or np.issubdtype(r.dtype, np.integer)) or r.dtype == np.bool_:
        raise ValueError(f"quantize: r must be a real array, got dtype {r.dtype}")
    bad = ~np.isfinite(r)
    if bad.any():
        i = first_bad(bad)
        raise ValueError(f"quantize: r[{i}] = {r[i]} is not finite")
    r = r.astype(np.float32)
    m = group_absmax(r, granularity, block)
    q = np.float32(qmax(bits))
    with np.errstate(over="ignore"):  # an infinite scale is reported just below, one line
        s = np.where(m > 0, q / np.where(m > 0, m, np.float32(1)), ZERO_SCALE).astype(np.float32)
    if not np.isfinite(s).all():
        raise ValueError(f"quantize: max|r| too small for a finite float32 scale (min max|r| = {m[m > 0].min()})")
    x = np.clip(_round_float(s * r, rounding), -qmax(bits), qmax(bits))  # clip only absorbs float32 rounding at max|r|
    return QTensor(x.astype(np.int64), s, bits)


def dequantize(x: QTensor) -> np.ndarray:
    """Eq. 2, D(x, s) = x / s (float64; leaves the integer domain)."""
    return check_qtensor(x, "x").dequantize()


def dyadic_factors(s_from: np.ndarray, s_to: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(m, sh) with s_to / s_from = m * 2^-sh, m a DYADIC_BITS-bit integer in [2^30, 2^31) (the dyadic Eq. 8
    divisor; also the factors the RTL re-scaling unit multiplies and shifts by).

    With frexp's r = f 2^e (f in [1/2, 1)) of the float64 ratio r: m = f 2^31 rounded half-away, sh = 31 - e, and
    m = 2^31 (a carry) renormalised to 2^30 with sh - 1 (a carry needs r within 2^-32 below a power of two, which
    no ratio of two float32 scales is). Read off r's bits, all in integers: f 2^31 = significand / 2^22 and
    e = biased exponent - 1022 (r is a positive normal float64). Adding 2^21 to the bits rounds the significand; a
    carry out of it increments the exponent field, which is exactly that renormalisation."""
    t = np.asarray(np.divide(s_to, s_from, dtype=np.float64)).view(np.int64)  # 0-d stays an array (out= below)
    t += 1 << 21                 # half-away to 31 significant bits
    m = np.right_shift(t, 22)    # in-place steps from here: large temporaries cost page faults
    m &= (1 << 30) - 1
    m |= 1 << 30                 # the implicit leading bit
    sh = np.subtract(DYADIC_BITS + 1022, np.right_shift(t, 52, out=t), out=t)
    return m, sh


def quantize_multiplier(real) -> tuple[np.ndarray, np.ndarray]:
    """TFLite QuantizeMultiplier (quantization_util.cc) of float64 reals 0 < real < 2^1023: (m, shift) with
    real = m 2^(shift - 31) to 31 bits: q, shift = frexp(real), m = round(q 2^31) half away from zero (TfLiteRound),
    m = 2^31 carried to 2^30 with shift + 1, and shift < -31 (real below ~2^-32) flushed to (0, 0). That m and
    31 - shift are dyadic_factors' (m, sh) for the ratio real / 1, read off the same bits."""
    m, sh = dyadic_factors(np.float64(1), real)
    shift = DYADIC_BITS - sh
    tiny = shift < -31
    return np.where(tiny, 0, m), np.where(tiny, 0, shift)


def divide_to(values: np.ndarray, s_from: np.ndarray, s_to: np.ndarray, mode: str, rounding: str) -> np.ndarray:
    """Re-express values at scale s_from as values at the smaller scale s_to (the Eq. 8 division). |result| <= |values|
    (the factor is <= 1); where s_from == s_to everywhere it is exactly 1 in both modes (paper: ceil(1) = 1; dyadic:
    m 2^-sh = 2^30 2^-30), so the values are returned as they are."""
    if _ALL(np.equal(s_from, s_to), axis=None):
        return values
    if mode in TFLITE_MODES:   # TFLite's MultiplyByQuantizedMultiplier by QuantizeMultiplier(s_to / s_from)
        m, shift = quantize_multiplier(np.divide(s_to, s_from, dtype=np.float64))
        return multiply_by_quantized_multiplier(values, m, shift, mode == "tflite_single")
    if mode == "paper":      # x / ceil(s_i / s_min), ratio in float32 as the paper's scales are float
        d = np.ceil(np.minimum(s_from / s_to, np.float32(_MAX_DIVISOR))).astype(np.int64)
        return round_div(values, d, rounding)
    # dyadic: x' = round(x * m / 2^sh), one rounding
    m, sh = dyadic_factors(s_from, s_to)
    if rounding == "half_away":  # sh clamped to 63: the sign only, i.e. 0, as for any larger shift
        return round_shift_product(values, m, np.minimum(sh, 63, out=sh), rounding)
    if sh.max() <= _MAX_SHIFT:
        return round_shift_product(values, m, sh, rounding)
    small = sh > _MAX_SHIFT    # |x * m| < 2^62 <= 2^(sh-1): rounds to 0
    return np.where(small, 0, round_shift(values * m, np.minimum(sh, _MAX_SHIFT), rounding))


def match_scales(tensors, mode: str = DEFAULT_MATCH, rounding: str = DEFAULT_ROUNDING) -> list[QTensor]:
    """Eq. 8, M(x_i, s_i) = {x_i / ceil(s_i / s_min), s_min}, s_min the element-wise minimum of all scales.

    Values broadcast to the common scale's shape; every output carries exactly s_min."""
    _choice(mode, MATCH_MODES, "mode")
    check_rounding(rounding)
    tensors = [check_qtensor(t, f"tensors[{i}]") for i, t in enumerate(tensors)]
    if not tensors or len({t.values.ndim for t in tensors}) != 1:
        raise ValueError(f"match_scales: need >= 1 tensors of equal ndim, got shapes {[t.shape for t in tensors]}")
    try:
        s_min = functools.reduce(np.minimum, [t.scale for t in tensors])
        out_shapes = [tuple(map(max, t.shape, s_min.shape)) for t in tensors]  # np.broadcast_shapes, equal ndim
        if not all(keepdims_of(t.shape, o) and keepdims_of(s_min.shape, o) for t, o in zip(tensors, out_shapes)):
            raise ValueError
    except ValueError:
        raise ValueError(f"match_scales: shapes do not broadcast: {[t.shape for t in tensors]}") from None
    # trusted: a division by a factor <= 1 keeps each value in its range (divide_to); s_min is a valid scale
    return [QTensor.trusted(divide_to(t.values if t.shape == o else np.broadcast_to(t.values, o), t.scale, s_min,
                                       mode, rounding), s_min, t.bits) for t, o in zip(tensors, out_shapes)]


def match_along(x: QTensor, axis: int, mode: str = DEFAULT_MATCH, rounding: str = DEFAULT_ROUNDING) -> QTensor:
    """M(x, s, d) of Table 1: match the sub-tensors split along `axis` (Eq. 8 with s_min = min over axis),
    so the scale becomes constant along that axis."""
    _choice(mode, MATCH_MODES, "mode")
    x = check_qtensor(x, "x")
    if not -x.values.ndim <= axis < x.values.ndim:
        raise ValueError(f"match_along: axis {axis} out of range for shape {x.shape}")
    if x.scale.shape[axis] == 1:
        return x
    s_min = _MIN(x.scale, axis=axis, keepdims=True)
    # trusted: as in match_scales, the division keeps each value in its range
    return QTensor.trusted(divide_to(x.values, x.scale, s_min, mode, check_rounding(rounding)), s_min, x.bits)


def rescale_divisor(values: np.ndarray, bits: int, granularity: str = "row", mode: str = "paper",
                    block: int | None = None) -> np.ndarray:
    """Eq. 10's s_hat per group (keepdims): max(ceil(max|x| / (2^(bits-1) - 1)), 1), or for mode "pow2" the next
    power of two >= that (also the divisor the RTL re-scaling unit is given)."""
    if mode not in ("paper", "pow2"):
        raise ValueError(f"rescale_divisor: mode must be paper or pow2 (an integer divisor), got {mode!r}")
    return _divisor(group_absmax(values, granularity, block), bits, mode)


def _divisor(big: np.ndarray, bits: int, mode: str) -> np.ndarray:
    """rescale_divisor from the group maxima big = max|x|."""
    s_hat = np.maximum(ceil_div(big, qmax(bits)), 1)
    if mode == "pow2":
        s_hat = np.left_shift(np.int64(1), np.ceil(np.log2(s_hat)).astype(np.int64))
    return s_hat


def floor_log2(p) -> np.ndarray:
    """floor(log2 p) for int64 0 < p < 2^53 (frexp of the exactly converted float64); k for p = 2^k."""
    return np.frexp(np.asarray(p, dtype=np.float64))[1].astype(np.int64) - 1


def rescale_multiplier(values: np.ndarray, bits: int, granularity: str = "row",
                       block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Dyadic Eq. 10 factor per group (keepdims): (m, sh) with m = floor(qmax 2^sh / max|x|) in [2^30, 2^31) (one
    integer division per group), so x m / 2^sh maps max|x| to at most qmax and keeps all but < 2^-30 of the range;
    groups that fit get (1, 0). max|x| <= 2^31 keeps q 2^sh and x m below 2^62."""
    big = group_absmax(values, granularity, block)
    q = qmax(bits)
    fits = big <= q
    big = np.where(fits, q, big)
    # with l = floor(log2), max|x| / q lies in (2^(l_x - l_q - 1), 2^(l_x - l_q + 1)), so sh = 30 + l_x - l_q or one more
    sh = floor_log2(big) + (DYADIC_BITS - 1 - (q.bit_length() - 1))
    sh += ((np.int64(q) << sh) // big < 1 << (DYADIC_BITS - 1))
    m = (np.int64(q) << sh) // big
    return np.where(fits, 1, m), np.where(fits, 0, sh)


def tflite_rescale_multiplier(values: np.ndarray, bits: int, granularity: str = "row",
                              block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """TFLite Eq. 10 factor per group (keepdims): quantize_multiplier of the real ratio M = qmax / max|x| (float64
    division, correctly rounded) where max|x| > qmax, else of 1.0, i.e. (2^30, 1), which multiplies exactly by 1."""
    big = group_absmax(values, granularity, block)
    q = qmax(bits)
    return quantize_multiplier(np.where(big > q, np.divide(q, np.maximum(big, 1), dtype=np.float64), 1.0))


def rescale(x: QTensor, bits: int = 8, granularity: str = DEFAULT_GRANULARITY, mode: str = DEFAULT_RESCALE,
            block: int | None = None, rounding: str = DEFAULT_ROUNDING) -> QTensor:
    """Eq. 10, R(x, s) = {x / s_hat, s / s_hat}, s_hat = ceil(max|x| / (2^(bits-1) - 1)) per group; groups
    that already fit get s_hat = 1 (Alg. 1 line 2). mode "pow2": s_hat = the next power of two >= that.
    mode "dyadic" (better hardware variant): x m / 2^sh with m / 2^sh = qmax / max|x| to 31 bits (rescale_multiplier),
    scale s m / 2^sh, so the group keeps the full +-qmax range that the ceil of Eq. 10 gives away."""
    x = check_qtensor(x, "x")
    bits = check_bits(bits, "bits", 2, 16)
    _choice(mode, RESCALE_MODES, "mode")
    check_rounding(rounding)
    if mode in TFLITE_MODES:
        m, shift = tflite_rescale_multiplier(x.values, bits, granularity, block)
        values = multiply_by_quantized_multiplier(x.values, m, shift, mode == "tflite_single")
        scale = np.ldexp(x.scale.astype(np.float64) * m, shift - DYADIC_BITS).astype(np.float32)
        return QTensor.trusted(values, checked_scale(scale, values.shape), bits)  # |x m 2^(shift-31)| <= qmax, SPEC
    if mode == "dyadic":
        m, sh = rescale_multiplier(x.values, bits, granularity, block)
        values = round_shift_product(x.values, m, sh, rounding)
        scale = np.ldexp(x.scale.astype(np.float64) * m, -sh).astype(np.float32)
        return QTensor.trusted(values, checked_scale(scale, values.shape), bits)  # |x m / 2^sh| <= qmax, rounded too
    big = group_absmax(x.values, granularity, block)
    s_hat = _divisor(big, bits, mode)
    values = round_shift(x.values, floor_log2(s_hat), rounding) if mode == "pow2" else \
        round_div(x.values, s_hat, rounding, bound=int(big.max()))
    scale = np.divide(x.scale, s_hat, dtype=np.float64).astype(np.float32)
    return QTensor.trusted(values, checked_scale(scale, values.shape), bits)  # |x / s_hat| <= qmax, rounded too


def propagate(op, *args, bits: int = 8, granularity: str = DEFAULT_GRANULARITY, mode: str = DEFAULT_RESCALE,
              **kwargs) -> QTensor:
    """Alg. 1 (Scale Propagation): {x, s} = OP({x_i, s_i}) in the wide accumulator, then R(x, s) if
    max|x| > 2^(bits-1) - 1, then narrow to `bits`."""
    return rescale(op(*args, **kwargs), bits, granularity, mode)
