"""QTensor: integer values bundled with their float32 scales, r = values / scale (Lin et al. Eq. 2)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_BITS, MAX_BITS = 2, 32
_MIN, _MAX = np.minimum.reduce, np.maximum.reduce  # the ufunc reductions without ndarray.min's Python wrapper


def check_bits(bits, name: str = "bits", lo: int = MIN_BITS, hi: int = MAX_BITS) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not lo <= bits <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {bits!r}")
    return int(bits)


def qmax(bits: int) -> int:
    """Largest magnitude of the symmetric range: 2^(bits-1) - 1 (Lin's 2^p - 1 with p = bits - 1)."""
    return (1 << (bits - 1)) - 1


def keepdims_of(small: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Is `small` a keepdims reduction of `shape` (same ndim, every dim 1 or equal)?"""
    if len(small) != len(shape):
        return False
    for s, v in zip(small, shape):
        if s != 1 and s != v:
            return False
    return True


def first_bad(mask: np.ndarray) -> tuple[int, ...]:
    """Index of the first True entry, for error messages."""
    return tuple(int(i) for i in np.argwhere(mask)[0])


@dataclass(frozen=True, eq=False)
class QTensor:
    """values: int64, each in the signed `bits` range; scale: float32, finite, > 0, same ndim as values
    with every dim 1 or equal to the values dim (keepdims layout), so r = values / scale broadcasts."""
    values: np.ndarray
    scale: np.ndarray
    bits: int

    def __post_init__(self) -> None:
        bits = check_bits(self.bits, "QTensor.bits")
        values = checked_values(self.values, bits)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "scale", checked_scale(self.scale, values.shape))
        object.__setattr__(self, "bits", bits)

    @classmethod
    def trusted(cls, values: np.ndarray, scale: np.ndarray, bits: int) -> "QTensor":
        """No checks, for golden internals on hot paths: `values` must be an int64 array proven to lie in the `bits`
        range and `scale` a valid float32 keepdims array (each call site says why; a freshly computed scale goes
        through checked_scale)."""
        t = object.__new__(cls)
        t.__dict__.update(values=values, scale=scale, bits=bits)  # what the frozen dataclass's __init__ stores
        return t

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    def dequantize(self) -> np.ndarray:
        """Eq. 2, D(x, s) = x / s, in float64 (leaves the integer domain: for checks and outputs only)."""
        return self.values / self.scale.astype(np.float64)


def checked_values(values, bits: int) -> np.ndarray:
    """values as int64; a one-line ValueError unless integers within the signed `bits` range."""
    values = np.asarray(values)
    if values.dtype != np.int64:
        if values.dtype == np.bool_ or not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"QTensor.values must be an integer array, got dtype {values.dtype}"
                             " (the data path refuses floats)")
        if values.dtype == np.uint64 and values.size and values.max() > np.iinfo(np.int64).max:
            raise ValueError("QTensor.values: uint64 entry exceeds int64")
        values = values.astype(np.int64)
    lo, hi = -(1 << (bits - 1)), qmax(bits)
    if values.size and (_MIN(values, axis=None) < lo or _MAX(values, axis=None) > hi):  # the mask: message only
        i = first_bad((values < lo) | (values > hi))
        raise ValueError(f"QTensor.values[{i}] = {values[i]} outside the signed {bits}-bit range {lo}..{hi}")
    return values


def checked_scale(scale, shape: tuple[int, ...]) -> np.ndarray:
    """scale as float32 in the keepdims layout of `shape`; a one-line ValueError unless finite and > 0."""
    if not (type(scale) is np.ndarray and scale.dtype == np.float32 and keepdims_of(scale.shape, shape)):
        scale = _scale_layout(scale, shape)
    if not (_MIN(scale, axis=None, initial=np.inf) > 0 and _MAX(scale, axis=None, initial=0) < np.inf):  # NaN fails
        i = first_bad(~np.isfinite(scale) | (scale <= 0))
        raise ValueError(f"QTensor.scale[{i}] = {scale[i]} must be finite and > 0 (float32)")
    return scale


def _scale_layout(scale, shape: tuple[int, ...]) -> np.ndarray:
    """scale as a float32 array in the keepdims layout of `shape` (one-line errors otherwise)."""
    scale = np.asarray(scale)
    if scale.dtype != np.float32:
        if not (np.issubdtype(scale.dtype, np.floating) or np.issubdtype(scale.dtype, np.integer)):
            raise ValueError(f"QTensor.scale must be a real array, got dtype {scale.dtype}")
        scale = scale.astype(np.float32)
    if scale.ndim == 0:
        scale = scale.reshape((1,) * len(shape))
    if not keepdims_of(scale.shape, shape):
        raise ValueError(f"QTensor.scale shape {scale.shape} does not broadcast (keepdims) to values shape {shape}")
    return scale
