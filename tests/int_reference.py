"""Pure-Python-int references for the golden core: one element at a time, Fractions for division,
numpy float32 scalars only for the float32 scale bookkeeping (IEEE, so identical to the vectorised code)."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

F32 = np.float32


def round_frac(x: Fraction, rounding: str = "half_away") -> int:
    fl = math.floor(x)
    rem = x - fl
    if rounding == "floor" or rem < Fraction(1, 2):
        return fl
    if rem > Fraction(1, 2):
        return fl + 1
    if rounding == "half_even":
        return fl + (fl % 2)
    return fl + 1 if x > 0 else fl        # half away from zero


def div(n: int, d: int, rounding: str = "half_away") -> int:
    return round_frac(Fraction(n, d), rounding)


def qmax(bits: int) -> int:
    return 2 ** (bits - 1) - 1


def quantize_group(rs: list[float], bits: int) -> tuple[list[int], F32]:
    """Eq. 1 on one scale group; an all-zero group gets the scale 2^40 (SPEC.md: never Eq. 8's s_min)."""
    m = max(abs(F32(r)) for r in rs)
    s = F32(qmax(bits)) / m if m > 0 else F32(2.0 ** 40)
    return [max(-qmax(bits), min(qmax(bits), round_frac(Fraction(float(s * F32(r)))))) for r in rs], s


INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


def srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul, as fixedpoint.h writes it: a nudge of 2^30 (ab >= 0) or
    1 - 2^30 (ab < 0), then C's division by 2^31, which truncates toward zero; a = b = INT32_MIN saturates."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    n = ab + (2 ** 30 if ab >= 0 else 1 - 2 ** 30)
    q = abs(n) // 2 ** 31
    return q if n >= 0 else -q


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT: remainder under the mask against a threshold of mask / 2, one more if x < 0
    (Python's & and >> on ints are two's complement, as on int32 for these bits)."""
    assert 0 <= exponent <= 31
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def quantize_multiplier(real) -> tuple[int, int]:
    """TFLite QuantizeMultiplier (quantization_util.cc) of a float: frexp, TfLiteRound (std::round, half away) of
    q 2^31, the 2^31 carry, shift < -31 flushed to (0, 0)."""
    if real == 0:
        return 0, 0
    q, shift = math.frexp(float(real))
    m = round_frac(Fraction(q) * 2 ** 31)
    assert m <= 2 ** 31
    if m == 2 ** 31:
        m, shift = m // 2, shift + 1
    if shift < -31:
        return 0, 0
    return m, shift


def multiply_by_quantized_multiplier(x: int, m: int, shift: int, single: bool = False) -> int:
    """TFLite MultiplyByQuantizedMultiplier (common.cc): TFLITE_SINGLE_ROUNDING's 64-bit product + rounding offset
    >> total_shift, or RoundingDivideByPOT(SRDHM(x 2^left, m), right) (the left shift exact, not int32)."""
    if single:
        total = 31 - shift
        return (x * m + (1 << (total - 1))) >> total
    left, right = max(shift, 0), max(-shift, 0)
    return rounding_divide_by_pot(srdhm(x * 2 ** left, m), right)


def match_one(x: int, s_from: F32, s_to: F32, mode: str) -> int:
    """Eq. 8 (paper), the dyadic multiplier-and-shift or TFLite's, for one element."""
    if mode == "paper":
        return div(x, min(math.ceil(s_from / s_to), 2 ** 32))
    if mode in ("tflite", "tflite_single"):
        return multiply_by_quantized_multiplier(x, *quantize_multiplier(float(s_to) / float(s_from)),
                                                mode == "tflite_single")
    f, e = math.frexp(float(s_to) / float(s_from))
    m = round_frac(Fraction(f) * 2 ** 31)
    sh = 31 - e
    if m == 2 ** 31:
        m, sh = m // 2, sh - 1
    return div(x * m, 2 ** sh)


def rescale_group(xs: list[int], bits: int, mode: str) -> tuple[list[int], Fraction]:
    """Eq. 10 on one group -> (values, factor): s_hat = max(1, ceil(max|x| / qmax)), factor 1 / s_hat; pow2 rounds
    s_hat up to a power of two; dyadic: factor m / 2^sh = floor(qmax 2^sh / max|x|) / 2^sh, m in [2^30, 2^31);
    tflite(_single): factor QuantizeMultiplier(qmax / max|x|), applied by MultiplyByQuantizedMultiplier."""
    big = max(abs(x) for x in xs)
    if mode in ("tflite", "tflite_single"):   # M = qmax / max|x| as a correctly rounded double
        if big <= qmax(bits):
            return list(xs), Fraction(1)
        m, shift = quantize_multiplier(float(Fraction(qmax(bits), big)))
        assert 2 ** 30 <= m < 2 ** 31
        return ([multiply_by_quantized_multiplier(x, m, shift, mode == "tflite_single") for x in xs],
                Fraction(m, 2 ** (31 - shift)))
    if mode == "dyadic":
        if big <= qmax(bits):
            return list(xs), Fraction(1)
        sh = next(sh for sh in range(99) if qmax(bits) * 2 ** sh // big >= 2 ** 30)
        m = qmax(bits) * 2 ** sh // big
        assert m < 2 ** 31
        return [div(x * m, 2 ** sh) for x in xs], Fraction(m, 2 ** sh)
    s_hat = max(1, -(-big // qmax(bits)))
    if mode == "pow2":
        s_hat = 1 << (s_hat - 1).bit_length()
    return [div(x, s_hat) for x in xs], Fraction(1, s_hat)


def to_acc(x: int, acc_bits: int, overflow: str) -> int:
    """One exact result in the acc_bits accumulator: wrapped mod 2^acc_bits or saturated."""
    lo, hi = -(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1) - 1
    return ((x - lo) % 2 ** acc_bits) + lo if overflow == "wrap" else min(hi, max(lo, x))


def gemm(a: list[list[int]], b: list[list[int]], acc_bits: int = 32, overflow: str = "wrap") -> list[list[int]]:
    out = []
    for row in a:
        orow = []
        for j in range(len(b[0])):
            acc = 0
            for k, av in enumerate(row):
                acc += av * b[k][j]
                acc = to_acc(acc, acc_bits, overflow)
            orow.append(acc)
        out.append(orow)
    return out
