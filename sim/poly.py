"""The golden side of hw/itx_poly.v (Eq. 11) and hw/itx_attn_norm.v (Eq. 12's row sum, division and re-scale): per
row, the scale-matching factors and Eq. 10 factors the units multiply by, read off golden's own intermediate scales
and row maxima (itx.golden.attention, itx.golden.quant), and the expected outputs from itx.golden.attention.poly and
attention_output themselves. The RTL does every per-element step; row statistics and factor selection are here, as
for itx_requant (sim/requant.py).

Supported knobs (the RTL's multiplier-shift stages, itx_dyadic_mode): match dyadic / tflite / tflite_single;
rescale pow2 / dyadic / tflite / tflite_single ("paper" needs a divider per element: refused, one line); every
rounding; acc_bits 16..32 and both overflow modes (RTL parameters); attention division paper or fixed (F 0..16)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from itx.golden.attention import attention_output, attention_quotient, lift, poly
from itx.golden.config import to_accumulator
from itx.golden.int_config import IntConfig
from itx.golden.ops import absolute, add, power, relu
from itx.golden.qtensor import QTensor
from itx.golden.quant import _MAX_SHIFT, DYADIC_BITS, dyadic_factors, match_along, match_scales, rescale
from itx.golden.rounding import check_rounding
from itx.golden.requant import SH_BITS, STAGE_MODES, rescale_factors

RTL_RESCALE_MODES = ("pow2", "dyadic") + STAGE_MODES[1:]
MAX_FRAC_BITS = 16   # itx.golden.attention.fixed_point_bits' range


def check_knobs(match: str | None, rescale_mode: str, rounding: str) -> None:
    """One-line errors for knob values the units do not implement."""
    if match is not None and match not in STAGE_MODES:
        raise ValueError(f"match={match!r}: the RTL matches scales by one of {STAGE_MODES}")
    if rescale_mode not in RTL_RESCALE_MODES:
        raise ValueError(f"rescale={rescale_mode!r}: the RTL re-scales by one of {RTL_RESCALE_MODES} "
                         "(a multiplier-shift)")
    check_rounding(rounding)


def factor(s_from: np.ndarray, s_to: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 8 factor (m, sh) taking scale s_from to s_to <= s_from, as itx_dyadic_mode takes it in every stage mode
    (TFLite's QuantizeMultiplier is (m, 31 - sh) of it); a ratio whose product rounds to 0 (sh > 62) is (0, 0)."""
    m, sh = dyadic_factors(s_from, s_to)
    small = sh > _MAX_SHIFT
    return np.where(small, 0, m), np.where(small, 0, sh)


def _row(a: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A per-row factor (constant along the last axis of `shape`) as a flat [rows] array."""
    full = np.broadcast_to(a, shape).reshape(-1, shape[-1])
    if (full != full[:, :1]).any():
        raise ValueError(f"{what}: not constant along a row (the unit takes it per row)")
    return full[:, 0].astype(np.int64)


def _eq10(values: np.ndarray, bits: int, mode: str, rounding: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-row Eq. 10 multiplier-shift (rmul, rsh) of itx.golden.quant.rescale(mode) for rows of `values`."""
    f = rescale_factors(values.reshape(-1, values.shape[-1]), bits, "row", mode, rounding=rounding)
    return f.rmul[:, 0].astype(np.int64), f.rsh[:, 0].astype(np.int64)


@dataclass(frozen=True)
class PolyVectors:
    """Inputs of itx_poly for rows of scores, and itx.golden.attention.poly's values (flat [rows, T] / [rows])."""
    x: np.ndarray
    keep: np.ndarray
    m1: np.ndarray
    sh1: np.ndarray
    m2: np.ndarray
    sh2: np.ndarray
    b: np.ndarray
    rmul: np.ndarray
    rsh: np.ndarray
    m4: np.ndarray
    sh4: np.ndarray
    delta: np.ndarray
    rounding: str
    match: str
    rescale: str
    want: np.ndarray
    stages: dict   # golden's intermediates (flat values) for the coverage model


def poly_vectors(scores: QTensor, b: QTensor, delta: QTensor, n: int, bits: int, mask=None, match: str = "dyadic",
                 rounding: str = "half_away", rescale_mode: str = "dyadic", acc_bits: int = 32,
                 overflow: str = "wrap") -> PolyVectors:
    """itx_poly's inputs for poly(match_along(scores, -1), b, delta, ...) as golden/int_model.py runs it, and its
    expected values. Each factor is read off golden's intermediate scales: M1 match_along's, M2 and b' the Eq. 8
    add of b, R Eq. 10 of the masked ReLU, M4 and |delta|' the Eq. 8 add of |delta|."""
    check_knobs(match, rescale_mode, rounding)
    acc = (acc_bits, overflow)
    shape, nd = scores.shape, scores.values.ndim
    keep = np.ones(shape, bool) if mask is None else np.broadcast_to(np.asarray(mask, bool), shape)
    xm = match_along(scores, -1, match, rounding)
    m1, sh1 = (np.broadcast_to(v, shape).reshape(-1, shape[-1]) for v in factor(scores.scale, xm.scale))
    bl = lift(b, nd, "b")
    xs, bs = match_scales([xm, bl], match, rounding)
    m2, sh2 = factor(xm.scale, xs.scale)
    y = add(xm, bl, match, rounding, *acc)
    r = QTensor.trusted(np.where(keep, relu(y).values, 0), y.scale, y.bits)
    q = rescale(r, bits, "row", rescale_mode, None, rounding)
    rmul, rsh = _eq10(r.values, bits, rescale_mode, rounding)
    pw = power(q, n, *acc)
    dl = absolute(lift(delta, nd, "delta"), *acc)
    ps, ds = match_scales([pw, dl], match, rounding)
    m4, sh4 = factor(pw.scale, ps.scale)
    want = poly(xm, b, delta, n, bits, mask, match, rounding, rescale_mode, acc_bits, overflow)
    flat = (-1, shape[-1])
    # before the accumulator's reductions (coverage: wrap / saturate hits, headroom) and each stage's input (ties)
    stages = {"add_b": np.broadcast_to(xs.values + bs.values, shape).reshape(flat),
              "pow_exact": (q.values ** n).reshape(flat),
              "add_delta_exact": np.broadcast_to(ps.values + ds.values, shape).reshape(flat),
              "match_in": [scores.values.reshape(flat), xm.values.reshape(flat), pw.values.reshape(flat)],
              "r": r.values.reshape(flat), "pw_scale": pw.scale}
    return PolyVectors(scores.values.reshape(flat), keep.reshape(flat), m1.astype(np.int64), sh1.astype(np.int64),
                       _row(m2, shape, "M2"), _row(sh2, shape, "M2"), _row(bs.values, shape, "b'"), rmul, rsh,
                       _row(m4, shape, "M4"), _row(sh4, shape, "M4"), _row(ds.values, shape, "|delta|'"),
                       rounding, match, rescale_mode, want.values.reshape(flat), stages)


@dataclass(frozen=True)
class NormVectors:
    """Inputs of itx_attn_norm for rows of P (flat [rows, Tk]) and num = P V ([rows, dv]), the per-row Eq. 10
    factors of the quotient, and itx.golden.attention.attention_output's values."""
    p: np.ndarray
    num: np.ndarray
    f: int
    rmul: np.ndarray
    rsh: np.ndarray
    rounding: str
    rescale: str
    want: np.ndarray
    den_exact: np.ndarray    # sum_j P before the accumulator's reduction (coverage)
    quotient: np.ndarray     # the quotient in the accumulator (golden), what R re-scales


def norm_vectors(num: QTensor, p: QTensor, v_scale: np.ndarray, f: int, bits: int, rescale_mode: str = "dyadic",
                 rounding: str = "half_away", acc_bits: int = 32, overflow: str = "wrap") -> NormVectors:
    """itx_attn_norm's inputs for attention_output(num, p, v_scale, f, ...) and its expected values."""
    check_knobs(None, rescale_mode, rounding)
    if not 0 <= f <= MAX_FRAC_BITS:
        raise ValueError(f"frac_bits {f}: the unit shifts the numerator by 0..{MAX_FRAC_BITS}")
    out = attention_quotient(num, p, f, rounding, acc_bits, overflow)
    rmul, rsh = _eq10(out, bits, rescale_mode, rounding)
    want = attention_output(num, p, v_scale, f, bits, rescale_mode, rounding, acc_bits, overflow)
    return NormVectors(p.values.reshape(-1, p.shape[-1]), num.values.reshape(-1, num.shape[-1]), f, rmul, rsh,
                       rounding, rescale_mode, want.values.reshape(-1, num.shape[-1]),
                       p.values.sum(axis=-1).reshape(-1), out.reshape(-1, num.shape[-1]))


def poly_parameters(acc_bits: int, bits: int, n: int, overflow: str, lanes: int) -> dict[str, int]:
    """itx_poly's parameters for a golden configuration."""
    return {"LANES": lanes, "ACC_BITS": acc_bits, "OUT_BITS": bits, "N": n, "SATURATE": int(overflow == "saturate"),
            "MUL_BITS": DYADIC_BITS, "SH_BITS": SH_BITS}


def norm_parameters(acc_bits: int, bits: int, overflow: str, lanes: int) -> dict[str, int]:
    """itx_attn_norm's parameters for a golden configuration (P arrives at `bits`, the output leaves at `bits`)."""
    return {"LANES": lanes, "ACC_BITS": acc_bits, "IN_BITS": bits, "OUT_BITS": bits,
            "SATURATE": int(overflow == "saturate"), "MUL_BITS": DYADIC_BITS, "SH_BITS": SH_BITS}


def accumulator_hit(exact: np.ndarray, acc_bits: int) -> np.ndarray:
    """Did to_accumulator change each value (wrap or saturate hit)?"""
    exact = np.asarray(exact, np.int64)
    return to_accumulator(exact, acc_bits, "wrap") != exact


def probabilities(scores: QTensor, b: QTensor, delta: QTensor, n: int, mask, c: IntConfig,
                  poly_values: np.ndarray | None = None) -> QTensor:
    """P as IntTransformer.poly_attention computes it: Poly (Eq. 11) of the row-matched scores, re-scaled per row to
    c.bits (Eq. 10). poly_values: Poly(x) as itx_poly computed it (the unit stops before Eq. 10), re-scaled instead
    of golden's (itx.sim.chain)."""
    x = poly(match_along(scores, -1, c.match, c.rounding), b, delta, n, c.bits, mask, c.match, c.rounding, c.rescale,
             c.acc_bits, c.overflow)
    if poly_values is not None:
        x = QTensor.trusted(np.asarray(poly_values, np.int64).reshape(x.shape), x.scale, x.bits)
    return rescale(x, c.bits, "row", c.rescale, None, c.rounding)


def attention_ops(path, ops: tuple[str, ...], icfg: IntConfig) -> Path:
    """The attention modules `ops` (e.g. enc.0.self_attn) of golden's captured sentence (itx.golden.capture.write_ops'
    npz at `path`, captured with icfg): each must have its <op>.poly or <op>.context record (a full capture has both),
    and itx.golden.attention's poly / attention_output of the captured inputs must give the model's own P and
    context, so a capture that drifted from itx.golden.attention fails here. Returns `path` for the cocotb process
    (tb_poly / tb_attn_norm)."""
    data, c = np.load(path), icfg
    for op in ops:
        if f"{op}.poly/kind" not in data and f"{op}.context/kind" not in data:
            raise ValueError(f"{path}: attention op {op!r} not captured (ops: {', '.join(map(str, data['ops']))})")
        if f"{op}.poly/kind" in data:
            t = {k: captured(data, f"{op}.poly", k, b) for k, b in (("scores", c.acc_bits), ("b", c.param_bits),
                                                                     ("delta", c.param_bits), ("out", c.bits))}
            p = probabilities(t["scores"], t["b"], t["delta"], int(data[f"{op}.poly/n"]), data[f"{op}.poly/mask"], c)
            if not np.array_equal(p.values, t["out"].values):
                raise AssertionError(f"{op}: itx.golden.attention.poly of the captured scores differs from the "
                                     "model's P")
        if f"{op}.context/kind" not in data:
            continue
        n = {k: captured(data, f"{op}.context", k, b) for k, b in (("num", c.acc_bits), ("p", c.bits),
                                                                    ("out", c.bits))}
        ctx = attention_output(n["num"], n["p"], data[f"{op}.context/v_scale"], int(data[f"{op}.context/f"]), c.bits,
                               c.rescale, c.rounding, c.acc_bits, c.overflow)
        if not np.array_equal(ctx.values, n["out"].values):
            raise AssertionError(f"{op}: itx.golden.attention.attention_output of the capture differs from the model's")
    return Path(path)


def captured(data, op: str, tensor: str, bits: int) -> QTensor:
    """A QTensor of itx.golden.capture.ops_arrays' npz, checked to fit `bits`."""
    return QTensor(data[f"{op}/{tensor}.values"], data[f"{op}/{tensor}.scale"], bits)
