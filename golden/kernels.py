"""Compiled (numba) equivalents of the integer model's five hottest module epilogues, one loop per row instead of
~50 numpy passes each; bit-identical to the numpy functions they reproduce, which stay the reference (SPEC.md,
"Compiled kernels"; tests/test_kernels.py checks the equality on random and real tensors, values and scales).

They implement the default knobs only (dyadic matching and re-scaling, half_away rounding, one scale per row) on
tensors with one scale per row, and the TFLite Eq. 10 modes (rescale = tflite, tflite_single) at the sites that
follow IntConfig.rescale (linear, residual); the TFLite matchings, and LayerNorm's and attention's re-scales in
the TFLite modes, run numpy. IntTransformer uses them when numba
is installed (the `fast` extra) and ITX_KERNELS is not 0, and the numpy path for everything else. Every
accumulator result is wrapped or saturated to IntConfig.acc_bits / .overflow exactly as
itx.golden.config.to_accumulator does; each kernel returns the first row whose exact 62-bit intermediate overflows
or that gets no valid scale (or -1); the caller then runs the numpy path, which raises its one-line error."""
from __future__ import annotations

import math
import os

import numpy as np

try:
    import numba
except ImportError:  # numba is optional: without it the numpy reference runs (enabled() is False)
    numba = None
njit = numba.njit(cache=True) if numba else (lambda f: f)   # cached in __pycache__: compiled once per checkout
inline = numba.njit(cache=True, inline="always") if numba else (lambda f: f)

from .attention import fixed_point_bits
from .config import to_accumulator
from .layernorm import C_L1
from .ops import WIDE
from .qtensor import QTensor, qmax
from .quant import dyadic_factors
from .tflite import TFLITE_MODES

_MIN = np.minimum.reduce

KNOBS = {"match": ("dyadic",), "rescale": ("dyadic",) + TFLITE_MODES, "rounding": ("half_away",),
         "granularity": ("row",)}


def _acc(icfg) -> tuple[int, bool]:
    """The kernels' accumulator arguments: (acc_bits, saturate)."""
    return icfg.acc_bits, icfg.overflow == "saturate"


def enabled(icfg) -> bool:
    """Do the kernels apply to this IntConfig (and are they installed and not switched off by ITX_KERNELS=0)?"""
    return (numba is not None and os.environ.get("ITX_KERNELS", "1") != "0"
            and all(getattr(icfg, k) in v for k, v in KNOBS.items()))


def _rescale_code(icfg) -> int:
    """The kernels' Eq. 10 mode argument: 0 dyadic, 1 tflite, 2 tflite_single."""
    return KNOBS["rescale"].index(icfg.rescale)


def _rows(x: QTensor) -> tuple[np.ndarray, np.ndarray] | None:
    """(values [M, n], scales [M]) of a tensor with one scale per row, else None."""
    if x.scale.shape[-1] != 1 or x.values.ndim < 2:
        return None
    lead = x.shape[:-1]
    return x.values.reshape(-1, x.shape[-1]), np.broadcast_to(x.scale, lead + (1,)).reshape(-1)


def _result(y: np.ndarray, scale: np.ndarray, shape: tuple[int, ...], bits: int) -> QTensor:
    # trusted: every row re-scaled into `bits` (|y| <= qmax) at a finite positive float32 scale, as the numpy path's
    return QTensor.trusted(y.reshape(shape), scale.reshape(shape[:-1] + (1,)), bits)


def linear(acc: QTensor, bias: QTensor, icfg) -> QTensor | None:
    """IntTransformer.linear after its GEMM (acc at scale s_x s_w), or None: then the numpy path runs (and raises its
    one-line error for a row that leaves the accumulator)."""
    n = acc.shape[-1]
    if acc.values.ndim < 2 or bias.values.size != n or bias.scale.size != 1:
        return None
    c, s = acc.values.reshape(-1, n), np.broadcast_to(acc.scale, acc.shape).reshape(-1, n)
    y, scale, bad = linear_epilogue(c, s, bias.values.reshape(-1), np.float32(bias.scale.reshape(())),
                                    qmax(icfg.bits), *_acc(icfg), _rescale_code(icfg))
    return None if bad >= 0 else _result(y, scale, acc.shape, icfg.bits)


def residual(x: QTensor, z: QTensor, icfg) -> QTensor | None:
    """IntTransformer.residual's act(add(x, z)) for two tensors with one scale per row, or None."""
    xr, zr = _rows(x), _rows(z)
    if xr is None or zr is None or x.shape != z.shape:
        return None
    y, scale, bad = residual_rows(*xr, *zr, qmax(icfg.bits), _rescale_code(icfg))
    return None if bad >= 0 else _result(y, scale, x.shape, icfg.bits)


def l1_layernorm(x: QTensor, g: QTensor, b: QTensor, icfg) -> QTensor | None:
    """itx.golden.layernorm.l1_layernorm with division "fixed" for x with one scale per row, or None. The per-tensor
    scales of y, g and b give scalar Eq. 8 factors, computed here by quant.dyadic_factors."""
    xr = _rows(x)
    if xr is None or icfg.rescale != "dyadic" or icfg.ln_division != "fixed" or not g.shape == b.shape == x.shape[-1:] \
            or g.scale.size != 1 or b.scale.size != 1:
        return None
    f = fixed_point_bits(icfg.ln_division, icfg.ln_frac_bits)
    with np.errstate(over="ignore"):
        s_yg = C_L1 * np.float32(1 << f) * g.scale.reshape(())   # mul's scale, float32 products in its order
    if not np.isfinite(s_yg):
        return None
    s = np.minimum(s_yg, b.scale.reshape(()))
    (gm, gsh), (bm, bsh) = (tuple(int(v) for v in dyadic_factors(t, s)) for t in (s_yg, b.scale.reshape(())))
    y, scale, bad = layernorm_rows(xr[0], f, g.values, gm, min(gsh, 63), b.values, bm, min(bsh, 63), s,
                                   qmax(icfg.bits), *_acc(icfg))
    return None if bad >= 0 else _result(y, scale, x.shape, icfg.bits)


def _per_head(t: QTensor, heads: int) -> np.ndarray | None:
    """The values of a poly parameter (one scale; one value per head or one in all) as [heads], else None."""
    v = t.values.reshape((1,) * (4 - t.values.ndim) + t.shape) if t.values.ndim <= 4 else None
    if v is None or t.scale.size != 1 or v.shape[0] != 1 or v.shape[2:] != (1, 1) or v.shape[1] not in (1, heads):
        return None
    return np.broadcast_to(v.reshape(-1), (heads,))


def poly_probs(scores: QTensor, b: QTensor, delta: QTensor, n: int, mask, icfg) -> QTensor | None:
    """IntTransformer.poly_attention's probabilities from its scores [B, H, Tq, Tk] (scale s_q s_k sqrt(d)): match
    along the keys, itx.golden.attention.poly, Eq. 10 per row; or None."""
    if scores.values.ndim != 4 or icfg.rescale != "dyadic" or qmax(icfg.bits) ** n >= WIDE:  # power()'s exact int64 bound: never reached
        return None
    hs = scores.shape[1]
    bv, dv = _per_head(b, hs), _per_head(delta, hs)
    if bv is None or dv is None:
        return None
    try:
        keep = np.broadcast_to(True if mask is None else np.asarray(mask), scores.shape)
    except ValueError:
        return None
    if keep.dtype != np.bool_:
        return None
    p, scale, bad = poly_rows(scores.values, np.broadcast_to(scores.scale, scores.shape), keep, bv,
                              np.float32(b.scale.reshape(())), np.abs(dv), np.float32(delta.scale.reshape(())), n,
                              qmax(icfg.bits), *_acc(icfg))
    return None if bad >= 0 else QTensor.trusted(p, scale[..., None], icfg.bits)


def context(num: QTensor, p: QTensor, v: QTensor, f: int, icfg) -> QTensor | None:
    """itx.golden.attention.attention_output from the context GEMM num = P V and P: num 2^f / sum P at V's scale x 2^f,
    Eq. 10 per row; or None."""
    with np.errstate(over="ignore"):
        sv = v.scale * np.float32(1 << f)
    if num.values.ndim != 4 or icfg.rescale != "dyadic" or v.scale.shape[-1] != 1 or not np.isfinite(sv).all():
        return None
    den = to_accumulator(p.values.sum(axis=-1), icfg.acc_bits, icfg.overflow)
    y, scale, bad = context_rows(num.values, den, f, np.broadcast_to(sv[..., 0], den.shape), qmax(icfg.bits),
                                 *_acc(icfg))
    return None if bad >= 0 else QTensor.trusted(y, scale[..., None], icfg.bits)


@inline
def _round_shift_product(x, m, sh):
    """itx.golden.rounding.round_shift_product, half_away: round(x m / 2^sh) for m > 0, 0 <= sh <= 63."""
    p = x * m
    p = p + p - (1 if x < 0 else 0)
    return ((p >> sh) + 1) >> 1


@inline
def _to_acc(v, lo, hi, sat):
    """itx.golden.config.to_accumulator of one value: wrapped mod 2^acc_bits, or saturated."""
    if lo <= v <= hi:
        return v
    if sat:
        return hi if v > hi else lo
    return ((v - lo) & (hi - lo)) + lo


@inline
def _dyadic_factor(t):
    """itx.golden.quant.dyadic_factors from the float64 ratio's bits t, sh clamped to 63 as divide_to does."""
    t += 1 << 21
    return ((t >> 22) & ((1 << 30) - 1)) | (1 << 30), min(1053 - (t >> 52), 63)


@inline
def _round_div(n, d):
    """itx.golden.rounding.round_div, half_away, d > 0: sign(n) floor((|n| + floor(d / 2)) / d)."""
    r = (abs(n) + (d >> 1)) // d
    return -r if n < 0 else r


@inline
def _match_pair(sa, sb, r2, bits2):
    """Eq. 8 for two scales: s = min(sa, sb) and the dyadic factors taking sa and sb to s (r2: a float64 scratch pair,
    bits2 its int64 view) -> (s, ma, sha, mb, shb)."""
    s = min(sa, sb)
    r2[0], r2[1] = np.float64(s) / np.float64(sa), np.float64(s) / np.float64(sb)
    ma, sha = _dyadic_factor(bits2[0])
    mb, shb = _dyadic_factor(bits2[1])
    return s, ma, sha, mb, shb


@inline
def _min_and_ratios(sc, ratio):
    """M(x, s, d) along a row of scales sc: returns s_min and fills ratio with s_min / sc (the factors' float64
    ratios, in their own loop, which vectorizes)."""
    smin = np.float32(np.inf)
    for j in range(sc.size):
        smin = min(smin, sc[j])
    for j in range(sc.size):
        ratio[j] = np.float64(smin) / np.float64(sc[j])
    return smin


@inline
def _rescale_dyadic(v, s, q, y):
    """itx.golden.quant.rescale, mode dyadic, of one row v at scale s into y; returns the new scale."""
    big = 0
    for j in range(v.size):
        big = max(big, abs(v[j]))
    m, sh = np.int64(1), np.int64(0)
    if big > q:   # rescale_multiplier
        sh = np.int64(math.frexp(np.float64(big))[1] - math.frexp(np.float64(q))[1]) + 30
        if (q << sh) // big < (1 << 30):
            sh += 1
        m = (q << sh) // big
    for j in range(v.size):
        y[j] = _round_shift_product(v[j], m, sh)
    return np.float32(math.ldexp(np.float64(s) * m, -sh))


@inline
def _multiply_by_quantized_multiplier(x, m, shift, single):
    """itx.golden.tflite.multiply_by_quantized_multiplier for one int32 x, 0 <= m < 2^31, -31 <= shift <= 1 (SRDHM's
    saturation needs m = INT32_MIN: never)."""
    if single:
        total = 31 - shift
        return (x * m + (np.int64(1) << (total - 1))) >> total
    h = ((x << max(shift, 0)) * m + (1 << 30)) >> 31    # SaturatingRoundingDoublingHighMul
    right = max(-shift, 0)                              # RoundingDivideByPOT: half away from zero
    mask = (np.int64(1) << right) - 1
    return (h >> right) + (1 if (h & mask) > (mask >> 1) + (1 if h < 0 else 0) else 0)


@inline
def _rescale_tflite(v, s, q, y, single):
    """itx.golden.quant.rescale, mode tflite (single: tflite_single), of one row v at scale s into y; returns the new
    scale. tflite_rescale_multiplier: QuantizeMultiplier of qmax / max|x| (frexp, half-away round of q 2^31), of 1.0
    for a row that fits. Neither its 2^31 carry nor its flush can happen here: with max|x| <= 2^31 the ratio is
    >= 2^-31 and at least 2^-31 (relatively) below a power of two, the carry needs it within 2^-32."""
    big = 0
    for j in range(v.size):
        big = max(big, abs(v[j]))
    m, shift = np.int64(1 << 30), np.int64(1)
    if big > q:
        f, e = math.frexp(np.float64(q) / np.float64(big))
        m, shift = np.int64(math.floor(f * 2147483648.0 + 0.5)), np.int64(e)
    for j in range(v.size):
        y[j] = _multiply_by_quantized_multiplier(v[j], m, shift, single)
    return np.float32(math.ldexp(np.float64(s) * m, shift - 31))


@inline
def _rescale_mode(v, s, q, y, rmode):
    """Eq. 10 in the mode _rescale_code names: 0 dyadic, 1 tflite, 2 tflite_single."""
    return _rescale_dyadic(v, s, q, y) if rmode == 0 else _rescale_tflite(v, s, q, y, rmode == 2)


@inline
def _rescale_paper(v, q, y):
    """itx.golden.quant.rescale's values, mode paper (Eq. 10 as written), half_away, of one row v into y (may be v);
    returns the divisor s_hat."""
    big = 0
    for j in range(v.size):
        big = max(big, abs(v[j]))
    d = max((big + q - 1) // q, 1)
    for j in range(v.size):
        y[j] = _round_div(v[j], d)
    return d


@njit
def linear_epilogue(c, sc, bias, sb, q, acc_bits, sat, rmode=0):
    """IntTransformer.linear after its GEMM: c [M, N] at scales sc matched along the features, plus the bias
    (scale sb) after Eq. 8 matching in the accumulator, re-scaled per row (rmode: _rescale_mode) -> (values, row
    scales, first bad row or -1)."""
    rows, n = c.shape
    y, scale = np.empty((rows, n), np.int64), np.empty(rows, np.float32)
    v, ratio, r2 = np.empty(n, np.int64), np.empty(n, np.float64), np.empty(2, np.float64)
    bits, bits2 = ratio.view(np.int64), r2.view(np.int64)
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    for i in range(rows):
        smin = _min_and_ratios(sc[i], ratio)
        s, am, ash, bm, bsh = _match_pair(smin, sb, r2, bits2)
        for j in range(n):
            m, sh = _dyadic_factor(bits[j])
            a = _round_shift_product(_round_shift_product(c[i, j], m, sh), am, ash)
            v[j] = _to_acc(a + _round_shift_product(bias[j], bm, bsh), lo, hi, sat)
        scale[i] = _rescale_mode(v, s, q, y[i], rmode)
        if not 0 < scale[i] < np.inf:
            return y, scale, i
    return y, scale, -1


@njit
def residual_rows(x, sx, z, sz, q, rmode=0):
    """IntTransformer.residual: x + z after Eq. 8 matching per row, re-scaled per row (rmode: _rescale_mode; both
    narrow: no overflow)."""
    rows, n = x.shape
    y, scale = np.empty((rows, n), np.int64), np.empty(rows, np.float32)
    v, r2 = np.empty(n, np.int64), np.empty(2, np.float64)
    bits2 = r2.view(np.int64)
    for i in range(rows):
        s, xm, xsh, zm, zsh = _match_pair(sx[i], sz[i], r2, bits2)
        for j in range(n):
            v[j] = _round_shift_product(x[i, j], xm, xsh) + _round_shift_product(z[i, j], zm, zsh)
        scale[i] = _rescale_mode(v, s, q, y[i], rmode)
        if not 0 < scale[i] < np.inf:
            return y, scale, i
    return y, scale, -1


@njit
def layernorm_rows(x, f, g, gm, gsh, b, bm, bsh, s, q, acc_bits, sat):
    """itx.golden.layernorm.l1_layernorm, division "fixed", on rows of x [M, n]: centre, y = (x - mu) n 2^f / sum|x - mu|
    (0 for a constant row), times g, plus b, both matched to s by the (m, sh) given, every step in the accumulator,
    then Eq. 10 (dyadic) per row -> (values, row scales, first bad row or -1)."""
    rows, n = x.shape
    y, scale = np.empty((rows, n), np.int64), np.empty(rows, np.float32)
    c = np.empty(n, np.int64)
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    wide = (1 << 62) >> f
    for i in range(rows):
        total = np.int64(0)
        for j in range(n):
            total += x[i, j]
        mu = _round_div(_to_acc(total, lo, hi, sat), n)
        l1, peak = np.int64(0), np.int64(0)
        for j in range(n):
            c[j] = _to_acc(x[i, j] - mu, lo, hi, sat)
            l1 += abs(c[j])
            peak = max(peak, abs(c[j]))
        if peak * n >= wide:   # (x - mu) n 2^f leaves the exact 62-bit numerator
            return y, scale, i
        l1 = _to_acc(l1, lo, hi, sat)
        for j in range(n):
            t = _to_acc(_round_div((c[j] * n) << f, l1), lo, hi, sat) if l1 > 0 else 0
            t = _to_acc(t * g[j], lo, hi, sat)
            c[j] = _to_acc(_round_shift_product(t, gm, gsh) + _round_shift_product(b[j], bm, bsh), lo, hi, sat)
        scale[i] = _rescale_dyadic(c, s, q, y[i])
        if not 0 < scale[i] < np.inf:
            return y, scale, i
    return y, scale, -1


@njit
def poly_rows(x, sc, keep, b, sb, delta, sd, n, q, acc_bits, sat):
    """IntTransformer.poly_attention from the scores x [B, H, Tq, Tk] (scales sc) to the probabilities: matched
    along the keys, itx.golden.attention.poly (ReLU(x + b), re-scaled, ^n, + |delta|, masked, in the accumulator) and
    re-scaled per row (dyadic Eq. 10) -> (p, row scales [B, H, Tq], first bad flat row or -1)."""
    bs, hs, tq, tk = x.shape
    p, scale = np.empty(x.shape, np.int64), np.empty((bs, hs, tq), np.float32)
    v, ratio, r2 = np.empty(tk, np.int64), np.empty(tk, np.float64), np.empty(2, np.float64)
    bits, bits2 = ratio.view(np.int64), r2.view(np.int64)
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    for i in range(bs):
        for h in range(hs):
            for t in range(tq):
                row, out, mk = x[i, h, t], p[i, h, t], keep[i, h, t]
                smin = _min_and_ratios(sc[i, h, t], ratio)
                s1, am, ash, bm, bsh = _match_pair(smin, sb, r2, bits2)
                bb = _round_shift_product(b[h], bm, bsh)
                for k in range(tk):
                    m, sh = _dyadic_factor(bits[k])
                    y = _to_acc(_round_shift_product(_round_shift_product(row[k], m, sh), am, ash) + bb, lo, hi, sat)
                    v[k] = max(y, 0) if mk[k] else 0
                s2 = _rescale_dyadic(v, s1, q, v)
                s3 = s2
                for _ in range(n - 1):
                    s3 = np.float32(s3 * s2)
                s4, ym, ysh, dm, dsh = _match_pair(s3, sd, r2, bits2)
                dd = _round_shift_product(delta[h], dm, dsh)
                for k in range(tk):
                    y = _to_acc(_round_shift_product(_to_acc(v[k] ** n, lo, hi, sat), ym, ysh) + dd, lo, hi, sat)
                    v[k] = y if mk[k] else 0
                scale[i, h, t] = _rescale_dyadic(v, s4, q, out)
                if not (0 < s2 and 0 < s3 < np.inf and 0 < scale[i, h, t] < np.inf):
                    return p, scale, (i * hs + h) * tq + t
    return p, scale, -1


@njit
def context_rows(num, den, f, sv, q, acc_bits, sat):
    """itx.golden.attention.attention_output after the context GEMM: num 2^f / den (0 where den <= 0) in the
    accumulator, re-scaled per row from V's scale x 2^f sv (dyadic Eq. 10) -> (values, row scales [B, H, Tq], first
    bad flat row or -1)."""
    bs, hs, tq, dv = num.shape
    y, scale = np.empty(num.shape, np.int64), np.empty((bs, hs, tq), np.float32)
    v = np.empty(dv, np.int64)
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    for i in range(bs):
        for h in range(hs):
            for t in range(tq):
                d = den[i, h, t]
                for k in range(dv):
                    v[k] = _to_acc(_round_div(num[i, h, t, k] << f, d), lo, hi, sat) if d > 0 else 0
                scale[i, h, t] = _rescale_dyadic(v, sv[i, h, t], q, y[i, h, t])
                if not 0 < scale[i, h, t] < np.inf:
                    return y, scale, (i * hs + h) * tq + t
    return y, scale, -1
