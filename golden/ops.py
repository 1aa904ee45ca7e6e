"""Table 1 of Lin et al.: the INT8 equivalents of concat, transpose, element-wise mul, add, matmul,
x^n, |x| and ReLU. Every op takes and returns QTensor; scales are bookkept apart in float32."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .config import OVERFLOW_MODES, load_hw_config, to_accumulator
from .gemm import gemm
from .qtensor import QTensor, check_bits, checked_scale
from .quant import DEFAULT_MATCH, check_qtensor, match_along, match_scales
from .rounding import DEFAULT_ROUNDING

WIDE = 1 << 62   # an exact int64 intermediate must stay below this (power's x^n; SPEC.md "Accumulator")


@lru_cache(maxsize=1)
def acc_defaults() -> tuple[int, str]:
    """(acc_bits, overflow) from hw/config.toml: the accumulator every wide result lives in."""
    cfg = load_hw_config()
    return cfg.acc_bits, cfg.overflow


def accumulator(acc_bits: int | None = None, overflow: str | None = None) -> tuple[int, str]:
    """(acc_bits, overflow) checked, each defaulting to hw/config.toml: the accumulator every wide result lives in."""
    d_acc, d_over = acc_defaults()
    acc_bits = check_bits(d_acc if acc_bits is None else acc_bits, "acc_bits", 16, 32)
    overflow = d_over if overflow is None else overflow
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"overflow must be one of {OVERFLOW_MODES}, got {overflow!r}")
    return acc_bits, overflow


def _wide(op: str, values: np.ndarray, scale: np.ndarray, acc: tuple[int, str], in_bits: int | None = None,
          scale_valid: bool = False) -> QTensor:
    """Result in the accumulator (Alg. 1 line 1: "store x in INT32"): wrapped or saturated to acc = (acc_bits,
    overflow), like every op of the data path (config.to_accumulator). A sum of in_bits-bit operands with in_bits <
    acc_bits provably fits, so its values are not scanned; scale_valid: scale is an operand's scale or s_min of them
    (valid for values' shape), so it is not re-checked; a computed scale that is not finite is a one-line error."""
    acc_bits, overflow = acc
    if in_bits is None or in_bits >= acc_bits:
        values = to_accumulator(values, acc_bits, overflow)
    if scale_valid:
        return QTensor.trusted(values, scale, acc_bits)
    try:
        return QTensor.trusted(values, checked_scale(scale, values.shape), acc_bits)
    except ValueError as exc:
        raise ValueError(f"{op}: result scale out of float32 range: {exc}") from None


def _same_ndim(op: str, a: QTensor, b: QTensor) -> None:
    if a.values.ndim != b.values.ndim:
        raise ValueError(f"{op}: a and b must have equal ndim, got shapes {a.shape} and {b.shape}")


def concat(tensors, axis: int = -1) -> QTensor:
    """{[x1, x2], [s1, s2]}: values and scales concatenated together (scales expanded along `axis`)."""
    tensors = [check_qtensor(t, f"tensors[{i}]") for i, t in enumerate(tensors)]
    try:
        values = np.concatenate([t.values for t in tensors], axis=axis)
        ax = axis % values.ndim
        common = np.broadcast_shapes(*(t.scale.shape[:ax] + (1,) + t.scale.shape[ax + 1:] for t in tensors))
        scale = np.concatenate([np.broadcast_to(t.scale, common[:ax] + (t.shape[ax],) + common[ax + 1:])
                                for t in tensors], axis=ax)
    except (ValueError, np.exceptions.AxisError) as exc:
        raise ValueError(f"concat: tensors of shapes {[t.shape for t in tensors]} along axis {axis}: {exc}") from None
    return QTensor.trusted(values, scale, max(t.bits for t in tensors))  # each value fits its own, narrower bits


def transpose(x: QTensor, axes: tuple[int, ...] | None = None) -> QTensor:
    """{x^T, s^T}; default swaps the last two axes (the matrix transpose of Table 1)."""
    x = check_qtensor(x, "x")
    if axes is None:
        if x.values.ndim < 2:
            raise ValueError(f"transpose: x needs ndim >= 2, got shape {x.shape}")
        axes = tuple(range(x.values.ndim - 2)) + (x.values.ndim - 1, x.values.ndim - 2)
    try:
        return QTensor.trusted(np.transpose(x.values, axes), np.transpose(x.scale, axes), x.bits)  # same values
    except ValueError as exc:
        raise ValueError(f"transpose: axes {axes} for shape {x.shape}: {exc}") from None


def mul(a: QTensor, b: QTensor, acc_bits: int | None = None, overflow: str | None = None) -> QTensor:
    """{x1 . x2, s1 . s2}: element-wise product of values and of scales (exact in int64: |x| <= 2^31)."""
    a, b = check_qtensor(a, "a"), check_qtensor(b, "b")
    _same_ndim("mul", a, b)
    try:
        values = a.values * b.values
    except ValueError:
        raise ValueError(f"mul: shapes {a.shape} and {b.shape} do not broadcast") from None
    with np.errstate(over="ignore"):  # an infinite scale product is reported by _wide's scale check, one line
        scale = a.scale * b.scale
    return _wide("mul", values, scale, accumulator(acc_bits, overflow))


def add(a: QTensor, b: QTensor, mode: str = DEFAULT_MATCH, rounding: str = DEFAULT_ROUNDING,
        acc_bits: int | None = None, overflow: str | None = None) -> QTensor:
    """{x1 + x2, s_min} after {x_i, s_min} = M(x_i, s_i) (Eq. 8)."""
    a, b = check_qtensor(a, "a"), check_qtensor(b, "b")
    _same_ndim("add", a, b)
    acc = accumulator(acc_bits, overflow)
    ma, mb = match_scales([a, b], mode, rounding)
    return _wide("add", ma.values + mb.values, ma.scale, acc, in_bits=max(a.bits, b.bits), scale_valid=True)


def matmul(a: QTensor, b: QTensor, mode: str = DEFAULT_MATCH, rounding: str = DEFAULT_ROUNDING,
           acc_bits: int | None = None, overflow: str | None = None) -> QTensor:
    """{x1 x x2, s1 x s2}: a (..., M, K) @ b (..., K, N) after M(x, s, d) along K on both operands, so the
    output scale is the outer product of a's row scales and b's column scales. The integer GEMM is
    itx.golden.gemm.gemm with the configured accumulator (its overflow mode is the one place values may wrap)."""
    a, b = check_qtensor(a, "a"), check_qtensor(b, "b")
    _same_ndim("matmul", a, b)
    acc = accumulator(acc_bits, overflow)
    if a.values.ndim < 2 or a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: a {a.shape} and b {b.shape} need ndim >= 2 and a.shape[-1] == b.shape[-2]")
    a, b = match_along(a, -1, mode, rounding), match_along(b, -2, mode, rounding)
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dims of a {a.shape} and b {b.shape} do not broadcast") from None
    out = gemm(a.values, b.values, acc_bits=acc[0], overflow=acc[1])  # batch dims broadcast in one call
    return _wide("matmul", out, a.scale * b.scale, acc, in_bits=acc[0])   # gemm wrapped or saturated it


def power(x: QTensor, n: int, acc_bits: int | None = None, overflow: str | None = None) -> QTensor:
    """Eq. 9 for r^n: {x^n, s^n}; s^n is n-1 float32 multiplications left to right. x^n is exact in int64 (max|x|^n
    must be < 2^62, else a one-line error: rescale x first), then wrapped or saturated into the accumulator."""
    x = check_qtensor(x, "x")
    n = check_bits(n, "n", 1, 63)
    acc = accumulator(acc_bits, overflow)
    peak = int(np.abs(x.values).max(initial=0)) ** n
    if peak >= WIDE:
        raise ValueError(f"power: max|x|^{n} = {peak} leaves the exact 62-bit intermediate; rescale x first")
    scale = x.scale
    for _ in range(n - 1):
        scale = scale * x.scale
    return _wide("power", x.values ** n, scale, acc)


def absolute(x: QTensor, acc_bits: int | None = None, overflow: str | None = None) -> QTensor:
    """Eq. 9 for |r|: {|x|, s} (s > 0); in the accumulator since |-2^(bits-1)| needs one more bit."""
    x = check_qtensor(x, "x")
    return _wide("absolute", np.abs(x.values), x.scale, accumulator(acc_bits, overflow), scale_valid=True)


def relu(x: QTensor) -> QTensor:
    """Eq. 9 for ReLU: {ReLU(x), s}; the range only shrinks, so bits are kept."""
    x = check_qtensor(x, "x")
    return QTensor.trusted(np.maximum(x.values, 0), x.scale, x.bits)
