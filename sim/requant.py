"""The golden side of hw/itx_requant.v: per-element factors (dyadic multiplier/shift, matched bias, Eq. 10 divisor
or multiplier/shift) chosen by golden.quant, their RTL parameters, and the unit's arithmetic composed from
golden.rounding.round_div.

The RTL does the per-element arithmetic; group statistics (max|x| per row, the divisor or multiplier) come from
here."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.config import HwConfig
from golden.qtensor import QTensor
from golden.quant import (_MAX_SHIFT, DYADIC_BITS, dyadic_factors, floor_log2, match_along, match_scales,
                          rescale_divisor, rescale_multiplier)
from golden.rounding import ROUNDINGS, check_rounding, round_div

SH_BITS = 6   # shifts 0..63 cover the dyadic range (golden rounds shifts > 62 to 0 before the RTL sees them)


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

    def flat(self, n: int) -> "Factors":
        """Reshape every factor to (-1, n): the 2-D GEMM view of a batched tensor."""
        f = {k: getattr(self, k).reshape(-1, n) for k in ("mul", "sh", "bias", "rmul", "rsh", "div")}
        return Factors(**f, divide=self.divide, rounding=self.rounding)


def _rescale_part(t: np.ndarray, bits: int, granularity: str, mode: str, block: int | None) -> dict:
    """Eq. 10's second-stage factors of golden.quant.rescale(mode) for the group sums t, per element."""
    ones, zeros = np.ones(t.shape, np.int64), np.zeros(t.shape, np.int64)
    if mode == "dyadic":
        m, sh = (np.broadcast_to(v, t.shape).astype(np.int64)
                 for v in rescale_multiplier(t, bits, granularity, block))
        return {"rmul": m, "rsh": sh, "div": ones, "divide": False}
    if mode not in ("paper", "pow2"):
        raise ValueError(f"rescale mode must be one of paper, pow2, dyadic (itx_requant's Eq. 10), got {mode!r}")
    s_hat = np.broadcast_to(rescale_divisor(t, bits, granularity, mode, block), t.shape).astype(np.int64)
    if mode == "pow2":
        return {"rmul": ones, "rsh": floor_log2(s_hat), "div": ones, "divide": False}
    return {"rmul": ones, "rsh": zeros, "div": s_hat, "divide": True}


def rescale_factors(x: np.ndarray, bits: int, granularity: str = "row", mode: str = "paper",
                    block: int | None = None, rounding: str = "half_away") -> Factors:
    """Eq. 10 alone (golden.quant.rescale): identity matching, then the group divisor."""
    x = np.asarray(x, dtype=np.int64)
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    return Factors(ones, zeros, zeros, **_rescale_part(x, bits, granularity, mode, block),
                   rounding=check_rounding(rounding))


def linear_factors(acc: QTensor, bias: QTensor, bits: int, granularity: str = "row", mode: str = "paper",
                   block: int | None = None, rounding: str = "half_away") -> tuple[Factors, np.ndarray]:
    """Post-GEMM of a linear layer, act(add(match_along(acc, -1), bias)) as golden/int_model.py does it with
    dyadic matching: acc's values go to the common scale by (mul, sh) in the RTL, the bias (a parameter) arrives
    matched. Returns the factors and the golden sum t, whose group divisor they carry."""
    along = match_along(acc, -1, "dyadic", rounding)
    acc_m, bias_m = match_scales([along, bias], "dyadic", rounding)
    if np.any(acc_m.scale < along.scale):
        raise ValueError("linear_factors: bias scale below the accumulator's matched scale; the RTL re-scaling "
                         "unit applies one dyadic step, golden would round twice")
    mul, sh = dyadic_factors(acc.scale, along.scale)
    small = sh > _MAX_SHIFT                      # golden: the product rounds to 0
    mul = np.broadcast_to(np.where(small, 0, mul), acc.shape).astype(np.int64)
    sh = np.broadcast_to(np.where(small, 0, sh), acc.shape).astype(np.int64)
    t = acc_m.values + bias_m.values
    biasv = np.broadcast_to(bias_m.values, acc.shape).astype(np.int64)
    return Factors(mul, sh, biasv, **_rescale_part(t, bits, granularity, mode, block),
                   rounding=check_rounding(rounding)), t


def _wrap(v: np.ndarray, bits: int) -> np.ndarray:
    half = 1 << (bits - 1)
    return ((v + half) & ((1 << bits) - 1)) - half


def requant_model(x: np.ndarray, f: Factors, acc_bits: int, out_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """What itx_requant computes, from golden round_div: (y saturated to out_bits, overflow flag). Out of the
    accumulator range, t wraps to acc_bits before the second stage (and the flag is set)."""
    r = f.rounding
    t = round_div(np.asarray(x, dtype=np.int64) * f.mul, np.left_shift(np.int64(1), f.sh), r) + f.bias
    tw = _wrap(t, acc_bits)
    y = round_div(tw, f.div, r) if f.divide else round_div(tw * f.rmul, np.left_shift(np.int64(1), f.rsh), r)
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    return np.clip(y, lo, hi), (t != tw) | (y < lo) | (y > hi)


def rounding_code(rounding: str) -> int:
    """itx_round's RND input: the index in golden.rounding.ROUNDINGS."""
    return ROUNDINGS.index(check_rounding(rounding))
