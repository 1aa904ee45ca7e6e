"""L1 Layer Normalization (Lin et al. Eq. 13) in integers."""
from __future__ import annotations

import numpy as np

from .attention import fixed_point_bits, lift
from .config import to_accumulator
from .ops import WIDE, accumulator, add, mul
from .qtensor import QTensor
from .quant import DEFAULT_GRANULARITY, DEFAULT_MATCH, DEFAULT_RESCALE, check_qtensor, match_along, rescale
from .rounding import DEFAULT_ROUNDING, round_div, round_div_or_zero

C_L1 = np.float32(np.sqrt(np.pi / 2))   # Hoffer et al.: E|z| = sigma * sqrt(2/pi) for Gaussian z
MAX_N = 1 << 16
DEFAULT_DIVISION, DEFAULT_FRAC_BITS = "fixed", 7   # Eq. 13's division: the one default (IntConfig.ln_*)


def l1_layernorm(x: QTensor, g: QTensor, b: QTensor, bits: int = 8, division: str = DEFAULT_DIVISION,
                 frac_bits: int = DEFAULT_FRAC_BITS, mode: str = DEFAULT_MATCH, rounding: str = DEFAULT_ROUNDING,
                 rescale_mode: str = DEFAULT_RESCALE, granularity: str = DEFAULT_GRANULARITY,
                 block: int | None = None, acc_bits: int | None = None, overflow: str | None = None) -> QTensor:
    """Eq. 13, L1LN(x) = g . (x - mu) / (C * ||x - mu||_1 / n) + b along the last dim (size n).

    mu = round(sum x / n); "paper": mad = round(sum|x - mu| / n), y = round((x - mu) / mad), scale C;
    "fixed": y = round((x - mu) * n * 2^F / sum|x - mu|), scale C * 2^F (mad never rounded). A row with mad = 0 gives
    y = 0. The sums, x - mu, y, g y and + b live in the (acc_bits, overflow) accumulator; (x - mu) n 2^F is an exact
    int64 intermediate that must stay below 2^62 (else a one-line error). Output re-scaled to `bits` (Alg. 1) with
    the given granularity and Eq. 10 mode."""
    acc = accumulator(acc_bits, overflow)
    x = match_along(check_qtensor(x, "x"), -1, mode, rounding)
    f = fixed_point_bits(division, frac_bits)
    n = x.shape[-1]
    if not 1 <= n <= MAX_N:
        raise ValueError(f"l1_layernorm: last dim of x must be in 1..{MAX_N}, got shape {x.shape}")
    total = to_accumulator(x.values.sum(axis=-1, keepdims=True), *acc)
    c = to_accumulator(x.values - round_div(total, n, rounding), *acc)
    l1 = to_accumulator(np.abs(c).sum(axis=-1, keepdims=True), *acc)
    if division == "paper":
        num, den = c, round_div(l1, n, rounding)
    else:
        peak = int(np.abs(c).max(initial=0)) * n << f
        if peak >= WIDE:
            raise ValueError(f"l1_layernorm: max|x - mu| n 2^F = {peak} leaves the exact 62-bit numerator")
        num, den = (c * n) << f, l1
    y = to_accumulator(round_div_or_zero(num, den, rounding), *acc)
    y = QTensor.trusted(y, np.full((1,) * y.ndim, C_L1 * np.float32(1 << f)), acc[0])
    out = add(mul(y, lift(g, y.values.ndim, "g"), *acc), lift(b, y.values.ndim, "b"), mode, rounding, *acc)
    return rescale(out, bits, granularity, rescale_mode, block, rounding)
