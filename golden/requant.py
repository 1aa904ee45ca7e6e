"""The golden side of hw/itx_requant.v: per-element factors (dyadic multiplier/shift, matched bias, Eq. 10 divisor
or multiplier/shift) chosen by itx.golden.quant, and the unit's arithmetic composed from itx.golden.rounding.round_div.

The RTL does the per-element arithmetic; group statistics (max|x| per row, the divisor or multiplier) come from
here. golden/vectors.py writes these factors as vector files; sim/requant.py holds the unit's parameters and codes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import to_accumulator
from .ops import accumulator
from .qtensor import QTensor
from .quant import (_MAX_SHIFT, DYADIC_BITS, dyadic_factors, floor_log2, match_along, match_scales, rescale_divisor,
                    rescale_multiplier, tflite_rescale_multiplier)
from .rounding import check_rounding, round_div, round_shift
from .tflite import TFLITE_MODES

SH_BITS = 6   # shifts 0..63 cover the dyadic range (golden rounds shifts > 62 to 0 before the RTL sees them)
# itx_requant's in_mmode / in_rmode codes (index): the arithmetic of a multiplier-shift stage. "dyadic": one rounding
# by `rounding` (also pow2's shift and the identity); the TFLite modes: itx.golden.tflite with (m, shift) = (mul, 31 - sh)
STAGE_MODES = ("dyadic",) + TFLITE_MODES


@dataclass(frozen=True)
class Factors:
    """Per-element inputs of itx_requant for an (M, N) accumulator tile set:
    y = R(A(round(round(x*mul/2^sh)*mul2/2^sh2) + bias)), A the accumulator's wrap or saturation and R(t) =
    round(t*rmul/2^rsh) or, if `divide`, round(t/div); one rounding mode for every division. (mul2, sh2) is the
    second Eq. 8 step where the bias is coarser than the column-matched accumulator ((1, 0) otherwise)."""
    mul: np.ndarray
    sh: np.ndarray
    mul2: np.ndarray
    sh2: np.ndarray
    bias: np.ndarray
    rmul: np.ndarray
    rsh: np.ndarray
    div: np.ndarray
    divide: bool
    rounding: str
    match_mode: str = "dyadic"     # STAGE_MODES: the first multiplier-shift's arithmetic
    rescale_mode: str = "dyadic"   # and the second's

    def flat(self, n: int) -> "Factors":
        """Reshape every factor to (-1, n): the 2-D GEMM view of a batched tensor."""
        f = {k: getattr(self, k).reshape(-1, n) for k in ("mul", "sh", "mul2", "sh2", "bias", "rmul", "rsh", "div")}
        return Factors(**f, divide=self.divide, rounding=self.rounding, match_mode=self.match_mode,
                       rescale_mode=self.rescale_mode)


def _rescale_part(t: np.ndarray, bits: int, granularity: str, mode: str, block: int | None) -> dict:
    """Eq. 10's second-stage factors of itx.golden.quant.rescale(mode) for the group sums t, per element."""
    ones, zeros = np.ones(t.shape, np.int64), np.zeros(t.shape, np.int64)
    if mode in TFLITE_MODES:   # TFLite's (multiplier, shift) as the RTL's (rmul, rsh = 31 - shift)
        m, shift = (np.broadcast_to(v, t.shape).astype(np.int64)
                    for v in tflite_rescale_multiplier(t, bits, granularity, block))
        return {"rmul": m, "rsh": DYADIC_BITS - shift, "div": ones, "divide": False, "rescale_mode": mode}
    if mode == "dyadic":
        m, sh = (np.broadcast_to(v, t.shape).astype(np.int64)
                 for v in rescale_multiplier(t, bits, granularity, block))
        return {"rmul": m, "rsh": sh, "div": ones, "divide": False}
    if mode not in ("paper", "pow2"):
        raise ValueError(f"rescale mode must be one of paper, pow2, dyadic, {', '.join(TFLITE_MODES)} (itx_requant's "
                         f"Eq. 10), got {mode!r}")
    s_hat = np.broadcast_to(rescale_divisor(t, bits, granularity, mode, block), t.shape).astype(np.int64)
    if mode == "pow2":
        return {"rmul": ones, "rsh": floor_log2(s_hat), "div": ones, "divide": False}
    return {"rmul": ones, "rsh": zeros, "div": s_hat, "divide": True}


def rescale_factors(x: np.ndarray, bits: int, granularity: str = "row", mode: str = "paper",
                    block: int | None = None, rounding: str = "half_away") -> Factors:
    """Eq. 10 alone (itx.golden.quant.rescale): identity matching, then the group divisor."""
    x = np.asarray(x, dtype=np.int64)
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    return Factors(ones, zeros, ones, zeros, zeros, **_rescale_part(x, bits, granularity, mode, block),
                   rounding=check_rounding(rounding))


def _match_step(s_from: np.ndarray, s_to: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """One Eq. 8 multiplier-shift of itx.golden.quant.divide_to from scale s_from to s_to, per element: its dyadic
    (m, sh), also TFLite's QuantizeMultiplier (m, 31 - sh); a shift past _MAX_SHIFT (golden: the product rounds to
    0, TFLite's flush) becomes m = 0; equal scales the identity (1, 0), as in divide_to (their (m, sh) = (2^30, 30)
    is 1 too)."""
    mul, sh = dyadic_factors(s_from, s_to)
    same, small = np.equal(s_from, s_to), sh > _MAX_SHIFT
    return (np.broadcast_to(np.where(same, 1, np.where(small, 0, mul)), shape).astype(np.int64),
            np.broadcast_to(np.where(same | small, 0, sh), shape).astype(np.int64))


def linear_factors(acc: QTensor, bias: QTensor, bits: int, granularity: str = "row", mode: str = "paper",
                   block: int | None = None, rounding: str = "half_away", match: str = "dyadic",
                   overflow: str | None = None) -> tuple[Factors, np.ndarray]:
    """Post-GEMM of a linear layer, act(add(match_along(acc, -1), bias)) as golden/int_model.py does it with
    `match` = dyadic or a TFLite matching, in acc's accumulator (acc.bits wide, `overflow`): acc's values go to the
    column-matched scale by (mul, sh) and, where the bias is coarser, on to the bias scale by (mul2, sh2), each
    step rounding as golden's does; the bias (a parameter) arrives matched. Returns the factors and the golden sum
    t in the accumulator, whose group divisor they carry."""
    if match not in STAGE_MODES:
        raise ValueError(f"the RTL re-scaling unit matches scales by one of {STAGE_MODES}; got match={match!r}")
    acc_bits, overflow = accumulator(acc.bits, overflow)
    along = match_along(acc, -1, match, rounding)
    acc_m, bias_m = match_scales([along, bias], match, rounding)
    mul, sh = _match_step(acc.scale, along.scale, acc.shape)
    mul2, sh2 = _match_step(along.scale, acc_m.scale, acc.shape)
    t = to_accumulator(acc_m.values + bias_m.values, acc_bits, overflow)
    biasv = np.broadcast_to(bias_m.values, acc.shape).astype(np.int64)
    return Factors(mul, sh, mul2, sh2, biasv, **_rescale_part(t, bits, granularity, mode, block),
                   rounding=check_rounding(rounding), match_mode=match), t


def requant_model(x: np.ndarray, f: Factors, acc_bits: int, out_bits: int, *,
                  overflow: str) -> tuple[np.ndarray, np.ndarray]:
    """What itx_requant computes, from golden round_div, for any factors: (y saturated to out_bits, saturation
    flag). The matched sum t is reduced to the acc_bits accumulator by `overflow` (itx.golden.config.to_accumulator) before the
    second stage, as golden's add does; the flag marks a y that golden's re-scaling never produces."""
    r = f.rounding
    # Eq. 8 factors are <= 1, so the first step's result fits the accumulator; the unit keeps acc_bits of it (wraps)
    a = to_accumulator(multiply_shift(np.asarray(x, dtype=np.int64), f.mul, f.sh, f.match_mode, r), acc_bits, "wrap")
    t = to_accumulator(multiply_shift(a, f.mul2, f.sh2, f.match_mode, r) + f.bias, acc_bits, overflow)
    y = round_div(t, f.div, r) if f.divide else multiply_shift(t, f.rmul, f.rsh, f.rescale_mode, r)
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    return np.clip(y, lo, hi), (y < lo) | (y > hi)


def multiply_shift(x: np.ndarray, m: np.ndarray, sh: np.ndarray, mode: str, rounding: str) -> np.ndarray:
    """One itx_dyadic stage for any factors (sh 0..63, |x m| < 2^62): mode "dyadic" round_div(x m, 2^sh); the TFLite
    modes round x m / 2^s1 half up (ties toward +infinity), s1 = sh (tflite_single) or min(sh, 31) (tflite: SRDHM),
    then tflite divides by the remaining 2^(sh - s1) half away (RoundingDivideByPOT). For TFLite factors these are
    itx.golden.tflite.multiply_by_quantized_multiplier(x, m, 31 - sh) (tested equal)."""
    p = x * m
    if mode == "dyadic":
        return round_div(p, np.left_shift(np.int64(1), sh), rounding)
    s1 = np.minimum(sh, 31) if mode == "tflite" else np.asarray(sh)
    half = np.where(s1 > 0, np.left_shift(np.int64(1), np.maximum(s1 - 1, 0)), 0)
    first = (p + half) >> s1
    return round_shift(first, sh - s1, "half_away") if mode == "tflite" else first

