"""L1 Layer Normalization (Lin et al. Eq. 13) in integers."""
from __future__ import annotations

import numpy as np

from .attention import fixed_point_bits, lift
from .ops import acc_defaults, add, mul
from .qtensor import QTensor
from .quant import check_qtensor, match_along, rescale
from .rounding import round_div, round_div_or_zero

C_L1 = np.float32(np.sqrt(np.pi / 2))   # Hoffer et al.: E|z| = sigma * sqrt(2/pi) for Gaussian z
MAX_N = 1 << 16


def l1_layernorm(x: QTensor, g: QTensor, b: QTensor, bits: int = 8, division: str = "fixed",
                 frac_bits: int = 7, mode: str = "paper", rounding: str = "half_away") -> QTensor:
    """Eq. 13, L1LN(x) = g . (x - mu) / (C * ||x - mu||_1 / n) + b along the last dim (size n).

    mu = round(sum x / n); "paper": mad = round(sum|x - mu| / n), y = round((x - mu) / mad), scale C;
    "fixed": y = round((x - mu) * n * 2^F / sum|x - mu|), scale C * 2^F (mad never rounded).
    A row with mad = 0 gives y = 0. Output re-scaled to `bits` per row (Alg. 1)."""
    x = match_along(check_qtensor(x, "x"), -1, mode, rounding)
    f = fixed_point_bits(division, frac_bits)
    n = x.shape[-1]
    if not 1 <= n <= MAX_N:
        raise ValueError(f"l1_layernorm: last dim of x must be in 1..{MAX_N}, got shape {x.shape}")
    c = x.values - round_div(x.values.sum(axis=-1, keepdims=True), n, rounding)
    l1 = np.abs(c).sum(axis=-1, keepdims=True)
    if division == "paper":
        num, den = c, round_div(l1, n, rounding)
    else:
        num, den = (c * n) << f, l1
    y = round_div_or_zero(num, den, rounding)
    y = QTensor(y, np.full((1,) * y.ndim, C_L1 * np.float32(1 << f)), acc_defaults()[0])
    out = add(mul(y, lift(g, y.values.ndim, "g")), lift(b, y.values.ndim, "b"), mode, rounding)
    return rescale(out, bits, "row")
