"""Exact integer GEMM with a configurable accumulator (SPEC.md, "GEMM").

Semantics (what one PE of the systolic array computes, Lin et al. 2020 Sec. 3: INT8 x INT8 products summed in an
INT32 accumulator): C[..., i, j] = acc_{K-1}, where acc_{-1} = 0 and, for k = 0..K-1 in that order,
acc_k = ovf(acc_{k-1} + A[..., i, k] * B[..., k, j]) with the product exact and
  "wrap":     ovf(x) = x reduced mod 2^acc_bits into [-2^(acc_bits-1), 2^(acc_bits-1));
  "saturate": ovf(x) = clip(x, -2^(acc_bits-1), 2^(acc_bits-1) - 1), applied after every MAC (order-dependent).
Since wrapping is modular, "wrap" equals wrapping the exact sum once.

Speed: sums are computed by float BLAS only where that is provably exact: every partial sum of a K-chunk is an
integer of magnitude <= chunk * max|a| * max|b| <= 2^24 (float32) or 2^53 (float64), so any summation order the BLAS
picks is exact; chunk sums are added in int64. Saturation is simulated in k order only for the outputs whose bound
sum_k |a_ik| |b_kj| can leave the accumulator range. A right operand reused by many calls (weights) can be
prepare()d: its range check and float copy are then done once.
"""
from __future__ import annotations

import math
import threading
import weakref
from functools import lru_cache

import numpy as np

from golden.config import OVERFLOW_MODES, load_hw_config

_F32_EXACT = 1 << 24  # every integer of magnitude <= 2^24 is a float32 (24-bit significand)
_F64_EXACT = 1 << 53
# Below this many K per float32 chunk the per-chunk overhead outweighs float32's 2x speed over float64.
_MIN_F32_CHUNK = 256
_F32_IN_BITS = 9      # |a|, |b| <= 2^8: chunks of _MIN_F32_CHUNK stay below 2^24, so exact_matmul always takes float32
_SCRATCH = threading.local()
_PREPARED: dict = {}  # id(array) -> _Prepared, see prepare()


def _wrap(x: int, bits: int) -> int:
    m = 1 << bits
    x &= m - 1
    return x - m if x >= m >> 1 else x


def gemm_reference(a, b, acc_bits: int = 32, overflow: str = "wrap") -> list[list[int]]:
    """Pure-Python-int reference: the ordered accumulation (k = 0..K-1) a PE performs."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    a = [[int(v) for v in row] for row in np.asarray(a).tolist()]
    b = [[int(v) for v in row] for row in np.asarray(b).tolist()]
    out = []
    for row in a:
        orow = []
        for j in range(len(b[0]) if b else 0):
            acc = 0
            for k, av in enumerate(row):
                acc += av * b[k][j]
                acc = _wrap(acc, acc_bits) if overflow == "wrap" else min(hi, max(lo, acc))
            orow.append(acc)
        out.append(orow)
    return out


@lru_cache(maxsize=1)
def _default_in_bits() -> int:
    return load_hw_config().in_bits


def _check_width(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"gemm: {name} must be an integer in {lo}..{hi}, got {value!r}")


def _check_shapes(a: np.ndarray, b: np.ndarray) -> None:
    for name, x in (("a", a), ("b", b)):
        if x.ndim < 2:
            raise ValueError(f"gemm: {name} must be at least 2-D ([batch...,] rows, cols), got shape {x.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"gemm: inner dimensions differ: a has shape {a.shape}, b has shape {b.shape}")
    try:
        if a.ndim > 2 or b.ndim > 2:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"gemm: batch dimensions do not broadcast: a has shape {a.shape}, "
                         f"b has shape {b.shape}") from None


def _check_operand(name: str, x: np.ndarray, in_bits: int, scratch: str | None = None) -> tuple[int, np.ndarray | None]:
    """Reject non-integer or out-of-range operands; return a bound on max|x| (sizes the exact chunks) and, when
    `scratch` names a buffer and in_bits <= _F32_IN_BITS, x's float32 copy there for exact_matmul, range-checked on
    that copy (half the bytes of int64, contiguous; rounding to float32 is monotonic and the range ends are exact
    float32 integers, so the copy is in range exactly when x is)."""
    def at(mask: np.ndarray) -> str:  # "name[i, j] = v" for the first flagged element
        idx = np.unravel_index(np.argmax(mask), x.shape)
        return f"{name}[{', '.join(map(str, idx))}] = {x[idx]}"

    if x.dtype.kind not in "iu":
        if x.dtype.kind in "fc" and not np.isfinite(x).all():
            raise ValueError(f"gemm: {at(~np.isfinite(x))}: operands must be finite integers")
        raise ValueError(f"gemm: {name} must have an integer dtype, got {x.dtype}")
    lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
    info = np.iinfo(x.dtype)
    if lo <= info.min and info.max <= hi:  # the dtype alone guarantees the range: skip the scan
        return max(-int(info.min), int(info.max)), None
    if x.size == 0:
        return 0, None
    xf = None
    if scratch is not None and in_bits <= _F32_IN_BITS:
        xf = _scratch(scratch, x.shape, np.float32)
        np.copyto(xf, x, casting="unsafe")
    xmin, xmax = (int(r(x if xf is None else xf, axis=None)) for r in (np.minimum.reduce, np.maximum.reduce))
    if xmin < lo or xmax > hi:
        raise ValueError(f"gemm: {at((x < lo) | (x > hi))} is outside the signed {in_bits}-bit range [{lo}, {hi}]")
    return max(-xmin, xmax), xf


class _Prepared:
    """What prepare() keeps for one array: a weak reference to it, its range bound, its float copies."""

    def __init__(self, b: np.ndarray, in_bits: int, bound: int) -> None:
        self.ref, self.in_bits, self.bound, self.floats = weakref.ref(b), in_bits, bound, {}


def prepare(b: np.ndarray, in_bits: int | None = None) -> np.ndarray:
    """Mark b as a right operand reused unchanged by many gemm calls (weights, an attention memory's keys/values):
    its range is checked once and exact_matmul's float copy of it made once per float type, instead of per call.
    b becomes read-only so that they cannot go stale; the record dies with b. gemm's results are the same."""
    in_bits = _default_in_bits() if in_bits is None else in_bits
    _check_width("in_bits", in_bits, 2, 16)
    if not isinstance(b, np.ndarray) or b.ndim < 2:
        raise ValueError(f"gemm.prepare: b must be an array of ndim >= 2, got {type(b).__name__}")
    b.setflags(write=False)
    _PREPARED[id(b)] = _Prepared(b, in_bits, _check_operand("b", b, in_bits)[0])
    weakref.finalize(b, _PREPARED.pop, id(b), None)
    return b


def _prepared(b: np.ndarray, in_bits: int) -> _Prepared | None:
    p = _PREPARED.get(id(b))
    return p if p is not None and p.ref() is b and p.in_bits <= in_bits else None


def _scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A reused per-thread buffer: fresh multi-MB temporaries per call cost more in page faults than the GEMM."""
    size = math.prod(shape)
    buf = getattr(_SCRATCH, name, None)
    if buf is None or buf.dtype != dtype or buf.size < size:
        buf = np.empty(size, dtype=dtype)
        setattr(_SCRATCH, name, buf)
    return buf[:size].reshape(shape)


def exact_matmul(a: np.ndarray, b: np.ndarray, bound_a: int, bound_b: int, prep: _Prepared | None = None,
                 af: np.ndarray | None = None, bf: np.ndarray | None = None) -> np.ndarray:
    """Exact int64 sum_k a[..., i, k] * b[..., k, j] for |a| <= bound_a, |b| <= bound_b, via exact float BLAS
    (b's float copy taken from prep, prepare()'s record of b, when given; af, bf: float32 copies already made)."""
    k = a.shape[-1]
    prod = bound_a * bound_b
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) if a.ndim > 2 or b.ndim > 2 else ()
    shape = batch + (a.shape[-2], b.shape[-1])
    if prod == 0 or k == 0:
        return np.zeros(shape, dtype=np.int64)
    chunk = _F32_EXACT // prod
    ftype = np.float32 if chunk >= min(k, _MIN_F32_CHUNK) else np.float64
    if ftype is np.float64:
        chunk = _F64_EXACT // prod
    # Chunk sums are added in int32 when the total provably fits (float32 -> int32 is a SIMD cast, -> int64 is not).
    acc_type = np.int32 if k * prod < 1 << 31 else np.int64
    if af is None or ftype is not np.float32:
        af = _scratch("a", a.shape, ftype)
        np.copyto(af, a)
    if prep is not None:
        if ftype not in prep.floats:
            prep.floats[ftype] = b.astype(ftype)
        bf = prep.floats[ftype]
    elif bf is None or ftype is not np.float32:
        bf = _scratch("b", b.shape, ftype)
        np.copyto(bf, b)
    part, acc = _scratch("part", shape, ftype), _scratch("acc", shape, acc_type)
    for k0 in range(0, k, chunk):
        np.matmul(af[..., k0:k0 + chunk], bf[..., k0:k0 + chunk, :], out=part)
        if k0 == 0:
            np.copyto(acc, part, casting="unsafe")  # exact: part is an integer-valued float within acc_type
        else:
            step = _scratch("step", shape, acc_type)
            np.copyto(step, part, casting="unsafe")
            acc += step
    return acc.astype(np.int64)  # a fresh array: the scratch is reused by the next call


def _wrap_array(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's complement reduction mod 2^bits, in place."""
    half = 1 << (bits - 1)
    x += half
    x &= (1 << bits) - 1
    x -= half
    return x


def _saturate_ordered(a: np.ndarray, b: np.ndarray, out: np.ndarray, bound_a: int, bound_b: int,
                      acc_bits: int) -> np.ndarray:
    """Fix up, in k order, the outputs whose bound sum_k |a_ik||b_kj| exceeds the accumulator; others are exact."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    bound = exact_matmul(np.abs(a, dtype=np.int32), np.abs(b, dtype=np.int32), bound_a, bound_b)
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = out.shape[:-2]
    t, i, j = np.nonzero((bound > hi).reshape(-1, m, n))
    if t.size == 0:
        return out
    # Rows of k-major operand copies, flattened over batch, so each step is a 1-D gather.
    ak = np.moveaxis(np.broadcast_to(a, batch + (m, k)).reshape(-1, m, k), 2, 0).reshape(k, -1).astype(np.int64)
    bk = np.moveaxis(np.broadcast_to(b, batch + (k, n)).reshape(-1, k, n), 1, 0).reshape(k, -1).astype(np.int64)
    ia, ib = t * m + i, t * n + j
    acc = np.zeros(t.size, dtype=np.int64)
    prod = np.empty_like(acc)
    for kk in range(k):
        np.multiply(ak[kk, ia], bk[kk, ib], out=prod)
        acc += prod
        np.clip(acc, lo, hi, out=acc)
    out.reshape(-1, m, n)[t, i, j] = acc
    return out


def gemm(a: np.ndarray, b: np.ndarray, acc_bits: int = 32, overflow: str = "wrap",
         in_bits: int | None = None, *, in_range: bool = False, b_f32: np.ndarray | None = None) -> np.ndarray:
    """C = A @ B with signed in_bits operands and an acc_bits accumulator (module docstring; Lin et al. 2020 Sec. 3).

    a: (..., M, K), b: (..., K, N) integer arrays; leading dims broadcast like np.matmul (per-head attention).
    in_bits defaults to hw/config.toml. Returns int64 (..., M, N), bit-identical to gemm_reference.
    in_range: the caller guarantees that a and b are integer arrays within in_bits (QTensor values), so they are not
    scanned (the bound 2^(in_bits-1) sizes the exact chunks instead of the measured max); b_f32, with in_range: b's
    exact float32 copy, kept by a caller that extends b in place (a K/V cache), used when the chunks are float32.
    """
    in_bits = _default_in_bits() if in_bits is None else in_bits
    _check_width("in_bits", in_bits, 2, 16)
    _check_width("acc_bits", acc_bits, 16, 32)
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"gemm: overflow must be one of {OVERFLOW_MODES}, got {overflow!r}")
    a, b = np.asarray(a), np.asarray(b)
    _check_shapes(a, b)
    prep = _prepared(b, in_bits)
    if in_range:
        bound_a, af = 1 << (in_bits - 1), None
        bound_b, bf = (prep.bound, None) if prep else (bound_a, b_f32)
    else:
        bound_a, af = _check_operand("a", a, in_bits, "a")
        bound_b, bf = (prep.bound, None) if prep else _check_operand("b", b, in_bits, "b")
    out = exact_matmul(a, b, bound_a, bound_b, prep, af, bf)
    if a.shape[-1] * bound_a * bound_b < 1 << (acc_bits - 1):  # no partial sum can reach the accumulator limits
        return out
    if overflow == "wrap":
        return _wrap_array(out, acc_bits)
    return _saturate_ordered(a, b, out, bound_a, bound_b, acc_bits)
