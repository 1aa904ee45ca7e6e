"""Polynomial attention (Lin et al. Eq. 11-12) in integers."""
from __future__ import annotations

import numpy as np

from .config import to_accumulator
from .ops import absolute, accumulator, add, matmul, power, relu, transpose
from .qtensor import QTensor, check_bits
from .quant import DEFAULT_MATCH, DEFAULT_RESCALE, check_qtensor, match_along, rescale
from .rounding import DEFAULT_ROUNDING, round_div_or_zero

DIVISIONS = ("paper", "fixed")
DEFAULT_DIVISION, DEFAULT_FRAC_BITS = "fixed", 8   # Eq. 12's division: the one default (IntConfig.attn_*)


def lift(t: QTensor, ndim: int, name: str) -> QTensor:
    """Prepend unit dims so a parameter (bias, gain) has the ndim of the tensor it combines with."""
    t = check_qtensor(t, name)
    if t.values.ndim > ndim:
        raise ValueError(f"{name}: ndim {t.values.ndim} exceeds the {ndim} of the tensor it applies to")
    pad = (1,) * (ndim - t.values.ndim)
    return QTensor.trusted(t.values.reshape(pad + t.shape), t.scale.reshape(pad + t.scale.shape), t.bits)


def fixed_point_bits(division: str, frac_bits: int) -> int:
    """F for the numerator pre-shift: 0 for division "paper" (as written), frac_bits for "fixed"."""
    if division not in DIVISIONS:
        raise ValueError(f"division must be one of {DIVISIONS}, got {division!r}")
    return check_bits(frac_bits, "frac_bits", 0, 16) if division == "fixed" else 0


def _masked(x: QTensor, keep: np.ndarray | None) -> QTensor:
    return x if keep is None else QTensor.trusted(np.where(keep, x.values, 0), x.scale, x.bits)


def _check_mask(mask, shape: tuple[int, ...]) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise ValueError(f"mask must be a bool array (True = attend), got dtype {mask.dtype}")
    try:
        return np.broadcast_to(mask, shape)
    except ValueError:
        raise ValueError(f"mask shape {mask.shape} does not broadcast to scores shape {shape}") from None


def poly(x: QTensor, b: QTensor, delta: QTensor, n: int = 3, bits: int = 8, mask=None,
         mode: str = DEFAULT_MATCH, rounding: str = DEFAULT_ROUNDING, rescale_mode: str = DEFAULT_RESCALE,
         acc_bits: int | None = None, overflow: str | None = None) -> QTensor:
    """Eq. 11, Poly(x) = ReLU(x + b)^n + |delta|, with ReLU's output re-scaled to `bits` per row before the power
    (an INT32 score cubed would overflow) and masked entries forced to exactly 0 (also no |delta|). mode: Eq. 8
    matching of the adds; rescale_mode: Eq. 10; every op in the (acc_bits, overflow) accumulator."""
    x = check_qtensor(x, "x")
    acc = accumulator(acc_bits, overflow)
    keep = _check_mask(mask, x.shape)
    y = _masked(relu(add(x, lift(b, x.values.ndim, "b"), mode, rounding, *acc)), keep)
    y = power(rescale(y, bits, "row", rescale_mode, None, rounding), n, *acc)
    return _masked(add(y, absolute(lift(delta, x.values.ndim, "delta"), *acc), mode, rounding, *acc), keep)


def attention_output(num: QTensor, p: QTensor, v_scale: np.ndarray, f: int, bits: int = 8,
                     rescale_mode: str = DEFAULT_RESCALE, rounding: str = DEFAULT_ROUNDING,
                     acc_bits: int | None = None, overflow: str | None = None) -> QTensor:
    """Eq. 12's quotient from num = P V (accumulator) and P: den = sum_j P in the accumulator, round(num 2^f / den)
    (num 2^f exact in int64: |num| < 2^31, f <= 16), 0 where den <= 0 (fully masked row), in the accumulator, at
    V's scale x 2^f, then re-scaled to `bits` per row (Alg. 1)."""
    acc_bits, overflow = accumulator(acc_bits, overflow)
    out = attention_quotient(num, p, f, rounding, acc_bits, overflow)
    return rescale(QTensor.trusted(out, v_scale * np.float32(1 << f), acc_bits), bits, "row", rescale_mode, None,
                   rounding)


def attention_quotient(num: QTensor, p: QTensor, f: int, rounding: str = DEFAULT_ROUNDING,
                       acc_bits: int | None = None, overflow: str | None = None) -> np.ndarray:
    """Eq. 12's integer quotient before the re-scale: den = to_acc(sum_j P), to_acc(round(num 2^f / den)), 0 where
    den <= 0 (what the attention-normalisation RTL computes before its Eq. 10 stage)."""
    acc_bits, overflow = accumulator(acc_bits, overflow)
    den = to_accumulator(p.values.sum(axis=-1, keepdims=True), acc_bits, overflow)
    return to_accumulator(round_div_or_zero(num.values << f, den, rounding), acc_bits, overflow)


def poly_attention(q: QTensor, k: QTensor, v: QTensor, b: QTensor, delta: QTensor, n: int = 3,
                   bits: int = 8, mask=None, division: str = DEFAULT_DIVISION, frac_bits: int = DEFAULT_FRAC_BITS,
                   mode: str = DEFAULT_MATCH, rounding: str = DEFAULT_ROUNDING, rescale_mode: str = DEFAULT_RESCALE,
                   acc_bits: int | None = None, overflow: str | None = None) -> QTensor:
    """Eq. 12, PolyAttn = Poly(Q K^T / sqrt(d)) V / sum_j Poly(Q K_j^T / sqrt(d)), shapes q (..., Tq, d),
    k (..., Tk, d), v (..., Tk, dv). The quotient (Poly V) / sum has the scale of V: the Poly scale cancels.
    division "fixed" pre-shifts the numerator by frac_bits (scale x 2^frac_bits). A row whose sum is 0
    (fully masked) outputs 0. Output re-scaled to `bits` per row (Alg. 1)."""
    q, k, v = check_qtensor(q, "q"), check_qtensor(k, "k"), check_qtensor(v, "v")
    f = fixed_point_bits(division, frac_bits)
    acc = accumulator(acc_bits, overflow)
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"poly_attention: q {q.shape}, k {k.shape}, v {v.shape} need matching d and Tk")
    scores = matmul(q, transpose(k), mode, rounding, *acc)
    # 1/sqrt(d) folded into the scale: r / sqrt(d) = x / (s * sqrt(d)); then one scale per query row
    scores = match_along(QTensor(scores.values, scores.scale * np.float32(np.sqrt(q.shape[-1])), scores.bits),
                         -1, mode, rounding)
    p = rescale(poly(scores, b, delta, n, bits, mask, mode, rounding, rescale_mode, *acc), bits, "row", rescale_mode,
                None, rounding)
    p = match_along(p, -1, mode, rounding)
    v = match_along(v, -2, mode, rounding)
    return attention_output(matmul(p, v, mode, rounding, *acc), p, v.scale, f, bits, rescale_mode, rounding, *acc)
