"""gemmlowp / TFLite fixed-point re-scaling primitives, vectorised on int64 arrays, exact (SPEC.md, "TFLite
re-scaling"). The definitions are the libraries' scalar int32 ones:

- gemmlowp fixedpoint/fixedpoint.h: SaturatingRoundingDoublingHighMul (SRDHM), RoundingDivideByPOT;
- tensorflow/lite/kernels/internal/common.cc (common.h in older releases): MultiplyByQuantizedMultiplier, its
  default branch (SRDHM then RoundingDivideByPOT: double rounding) and its TFLITE_SINGLE_ROUNDING branch (one 64-bit
  product, + 2^(total_shift - 1), >> total_shift: one rounding, ties toward +infinity);
- QuantizeMultiplier (tensorflow/lite/kernels/internal/quantization_util.cc) is itx.golden.quant.quantize_multiplier.

A multiplier (m, shift) stands for the real m 2^(shift - 31), m in [2^30, 2^31) (or 0)."""
from __future__ import annotations

import numpy as np

from .rounding import round_shift

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
TFLITE_MODES = ("tflite", "tflite_single")   # double rounding (gemmlowp, TFLite's default), TFLITE_SINGLE_ROUNDING


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp SRDHM(a, b) for int32 a, b: the high 32 bits of 2ab, rounded. Its (ab + nudge) / 2^31 with C's
    truncating division and nudge = 2^30 (ab >= 0) or 1 - 2^30 (ab < 0) is floor((ab + 2^30) / 2^31) for every
    sign: ties go toward +infinity. a = b = INT32_MIN (the one overflow, 2^31) saturates to INT32_MAX."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    high = (a * b + (1 << 30)) >> 31
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT(x, exponent), 0 <= exponent <= 31: (x >> e) + [x & mask > mask / 2 + (x < 0)],
    i.e. x / 2^e rounded half away from zero, which is itx.golden.rounding.round_shift(x, e, "half_away")."""
    return round_shift(x, exponent, "half_away")


def multiply_by_quantized_multiplier(x, m, shift, single: bool = False) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier(x, m, shift): x m 2^(shift - 31) rounded, for int32 x, 0 <= m < 2^31 and
    -31 <= shift <= 1 (itx's ratios are <= 1; shift = 1 only for a ratio of exactly 1, (2^30, 1)).

    single=False (default build): RoundingDivideByPOT(SRDHM(x 2^left, m), right), left = max(shift, 0), right =
    max(-shift, 0): two roundings. x 2^left is exact here (TFLite's int32 product would wrap for |x| >= 2^30 when
    left = 1), so a ratio of 1 gives x. single=True (TFLITE_SINGLE_ROUNDING): (x m + 2^(30 - shift)) >> (31 - shift)."""
    x, m, shift = (np.asarray(v, dtype=np.int64) for v in (x, m, shift))
    if shift.size and (shift.max() > 1 or shift.min() < -31):
        raise ValueError(f"multiply_by_quantized_multiplier: shift must be in -31..1, got "
                         f"{int(shift.min())}..{int(shift.max())}")
    if single:
        total = 31 - shift
        return (x * m + np.left_shift(np.int64(1), total - 1)) >> total
    left = np.maximum(shift, 0)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x << left, m), np.maximum(-shift, 0))
