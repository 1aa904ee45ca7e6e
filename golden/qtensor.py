"""QTensor: integer values bundled with their float32 scales, r = values / scale (Lin et al. Eq. 2)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_BITS, MAX_BITS = 2, 32


def check_bits(bits, name: str = "bits", lo: int = MIN_BITS, hi: int = MAX_BITS) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not lo <= bits <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {bits!r}")
    return int(bits)


def qmax(bits: int) -> int:
    """Largest magnitude of the symmetric range: 2^(bits-1) - 1 (Lin's 2^p - 1 with p = bits - 1)."""
    return (1 << (bits - 1)) - 1


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
        values = np.asarray(self.values)
        if values.dtype == np.bool_ or not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"QTensor.values must be an integer array, got dtype {values.dtype}"
                             " (the data path refuses floats)")
        if values.dtype == np.uint64 and values.size and values.max() > np.iinfo(np.int64).max:
            raise ValueError("QTensor.values: uint64 entry exceeds int64")
        values = values.astype(np.int64)
        lo, hi = -(1 << (bits - 1)), qmax(bits)
        out = (values < lo) | (values > hi)
        if out.any():
            i = first_bad(out)
            raise ValueError(f"QTensor.values[{i}] = {values[i]} outside the signed {bits}-bit range {lo}..{hi}")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "scale", _checked_scale(self.scale, values.shape))
        object.__setattr__(self, "bits", bits)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    def dequantize(self) -> np.ndarray:
        """Eq. 2, D(x, s) = x / s, in float64 (leaves the integer domain: for checks and outputs only)."""
        return self.values / self.scale.astype(np.float64)


def _checked_scale(scale, shape: tuple[int, ...]) -> np.ndarray:
    scale = np.asarray(scale)
    if not (np.issubdtype(scale.dtype, np.floating) or np.issubdtype(scale.dtype, np.integer)):
        raise ValueError(f"QTensor.scale must be a real array, got dtype {scale.dtype}")
    scale = scale.astype(np.float32)
    if scale.ndim == 0:
        scale = scale.reshape((1,) * len(shape))
    if scale.ndim != len(shape) or any(s not in (1, v) for s, v in zip(scale.shape, shape)):
        raise ValueError(f"QTensor.scale shape {scale.shape} does not broadcast (keepdims) to values shape {shape}")
    bad = ~np.isfinite(scale) | (scale <= 0)
    if bad.any():
        i = first_bad(bad)
        raise ValueError(f"QTensor.scale[{i}] = {scale[i]} must be finite and > 0 (float32)")
    return scale
