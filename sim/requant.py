"""The golden side of hw/itx_requant.v: per-element factors (dyadic multiplier/shift, matched bias, Eq. 10 divisor
or multiplier/shift) chosen by itx.golden.quant, their RTL parameters, and the unit's arithmetic composed from
itx.golden.rounding.round_div.

The RTL does the per-element arithmetic; group statistics (max|x| per row, the divisor or multiplier) come from
here."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from itx.golden.config import HwConfig
from itx.golden.qtensor import QTensor
from itx.golden.quant import (_MAX_SHIFT, DYADIC_BITS, dyadic_factors, floor_log2, match_along, match_scales,
                          rescale_divisor, rescale_multiplier, tflite_rescale_multiplier)
from itx.golden.rounding import ROUNDINGS, check_rounding, round_div, round_shift
from itx.golden.tflite import TFLITE_MODES

SH_BITS = 6   # shifts 0..63 cover the dyadic range (golden rounds shifts > 62 to 0 before the RTL sees them)
# itx_requant's in_mmode / in_rmode codes (index): the arithmetic of a multiplier-shift stage. "dyadic": one rounding
# by `rounding` (also pow2's shift and the identity); the TFLite modes: itx.golden.tflite with (m, shift) = (mul, 31 - sh)
STAGE_MODES = ("dyadic",) + TFLITE_MODES


def requant_parameters(cfg: HwConfig, lanes: int | None = None) -> dict[str, int]:
    """itx_requant parameters: one lane per array column, accumulator in, in_bits out."""
    return {"LANES": lanes or cfg.cols, "ACC_BITS": cfg.acc_bits, "OUT_BITS": cfg.in_bits,
            "MUL_BITS": DYADIC_BITS, "SH_BITS": SH_BITS}


@dataclass(frozen=True)
class Factors:
    """Per-element inputs of itx_requant for an (M, N) accumulator tile set: y = R(round(x*mul/2^sh) + bias)
    with R(t) = round(t*rmul/2^rsh) or, if `divide`, round(t/div); one rounding mode for every division."""
    mul: np.ndarray
    sh: np.ndarray
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
        f = {k: getattr(self, k).reshape(-1, n) for k in ("mul", "sh", "bias", "rmul", "rsh", "div")}
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
    return Factors(ones, zeros, zeros, **_rescale_part(x, bits, granularity, mode, block),
                   rounding=check_rounding(rounding))


def linear_factors(acc: QTensor, bias: QTensor, bits: int, granularity: str = "row", mode: str = "paper",
                   block: int | None = None, rounding: str = "half_away",
                   match: str = "dyadic") -> tuple[Factors, np.ndarray]:
    """Post-GEMM of a linear layer, act(add(match_along(acc, -1), bias)) as golden/int_model.py does it with
    `match` = dyadic or a TFLite matching: acc's values go to the common scale by (mul, sh) in the RTL, the bias (a
    parameter) arrives matched. Returns the factors and the golden sum t, whose group divisor they carry."""
    if match not in STAGE_MODES:
        raise ValueError(f"the RTL re-scaling unit matches scales by one of {STAGE_MODES}; got match={match!r}")
    along = match_along(acc, -1, match, rounding)
    acc_m, bias_m = match_scales([along, bias], match, rounding)
    if np.any(acc_m.scale < along.scale):
        raise ValueError("linear_factors: bias scale below the accumulator's matched scale; the RTL re-scaling "
                         "unit applies one matching step, golden would round twice")
    # the TFLite modes' QuantizeMultiplier(ratio) is (m, 31 - sh) of these, its flush (shift < -31) is sh > 62
    mul, sh = dyadic_factors(acc.scale, along.scale)
    small = sh > _MAX_SHIFT                      # golden: the product rounds to 0
    mul = np.broadcast_to(np.where(small, 0, mul), acc.shape).astype(np.int64)
    sh = np.broadcast_to(np.where(small, 0, sh), acc.shape).astype(np.int64)
    t = acc_m.values + bias_m.values
    biasv = np.broadcast_to(bias_m.values, acc.shape).astype(np.int64)
    return Factors(mul, sh, biasv, **_rescale_part(t, bits, granularity, mode, block),
                   rounding=check_rounding(rounding), match_mode=match), t


def _wrap(v: np.ndarray, bits: int) -> np.ndarray:
    half = 1 << (bits - 1)
    return ((v + half) & ((1 << bits) - 1)) - half


def requant_model(x: np.ndarray, f: Factors, acc_bits: int, out_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """What itx_requant computes, from golden round_div: (y saturated to out_bits, overflow flag). Out of the
    accumulator range, t wraps to acc_bits before the second stage (and the flag is set)."""
    r = f.rounding
    t = multiply_shift(np.asarray(x, dtype=np.int64), f.mul, f.sh, f.match_mode, r) + f.bias
    tw = _wrap(t, acc_bits)
    y = round_div(tw, f.div, r) if f.divide else multiply_shift(tw, f.rmul, f.rsh, f.rescale_mode, r)
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    return np.clip(y, lo, hi), (t != tw) | (y < lo) | (y > hi)


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


def stage_code(mode: str) -> int:
    """itx_requant's in_mmode / in_rmode: the index in STAGE_MODES."""
    if mode not in STAGE_MODES:
        raise ValueError(f"stage mode must be one of {STAGE_MODES}, got {mode!r}")
    return STAGE_MODES.index(mode)


def rounding_code(rounding: str) -> int:
    """itx_round's RND input: the index in itx.golden.rounding.ROUNDINGS."""
    return ROUNDINGS.index(check_rounding(rounding))
