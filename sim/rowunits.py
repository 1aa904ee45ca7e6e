"""The golden side of the row units hw/itx_residual.v and hw/itx_layernorm.v: their parameters from hw/config.toml,
the Eq. 8 factors (dyadic multiplier-shifts taken from the float32 scales, like the weights: scale bookkeeping is not
part of the integer data path), the knob values each unit implements, and the output scale from the factor the unit
reports. Expected values always come from golden (itx.golden.ops.add + rescale, itx.golden.layernorm.l1_layernorm)."""
from __future__ import annotations


import numpy as np

from itx.golden.config import HwConfig
from itx.golden.layernorm import C_L1
from itx.golden.quant import _MAX_SHIFT, DYADIC_BITS, dyadic_factors
from itx.golden.requant import SH_BITS
from itx.sim.rtl import rtl_module

PARAM_BITS = 16        # LayerNorm gain and bias: IntConfig.param_bits' maximum (they enter the accumulator)
F_MAX = 16             # itx.golden.attention.fixed_point_bits: frac_bits 0..16
# The knob values the RTL implements (hw/README.md); every other value is refused by golden_knobs.
KNOBS = {"match": ("dyadic",), "rescale": ("dyadic", "pow2"), "rounding": ("half_away", "half_even", "floor"),
         "overflow": ("wrap", "saturate"), "ln_division": ("paper", "fixed"), "granularity": ("row",)}


def unit_parameters(top: str, cfg: HwConfig, lanes: int | None = None, max_n: int = 1024) -> dict[str, int]:
    """Parameters of itx_residual / itx_layernorm: one lane per array column, in_bits in and out, the accumulator and
    overflow of hw/config.toml; fails if the RTL lacks one."""
    params = {"LANES": lanes or cfg.cols, "IN_BITS": cfg.in_bits, "ACC_BITS": cfg.acc_bits,
              "SATURATE": int(cfg.overflow == "saturate"), "OUT_BITS": cfg.in_bits, "MAX_N": max_n,
              "MUL_BITS": DYADIC_BITS, "SH_BITS": SH_BITS}
    if top == "itx_layernorm":
        params["PARAM_BITS"] = PARAM_BITS
    missing = sorted(set(params) - set(rtl_module(top).params))
    if missing:
        raise ValueError(f"hw/{top}.v: missing parameter(s) {missing}")
    return params


def check_knobs(**knobs: str) -> None:
    """One line naming the knob for a value the row units do not implement."""
    for name, value in knobs.items():
        if value not in KNOBS[name]:
            raise ValueError(f"{name}={value!r}: the RTL row units implement {', '.join(KNOBS[name])}")


def match_factor(s_from, s_to) -> tuple[int, int]:
    """Eq. 8's dyadic (m, sh) taking scale s_from to s_to (itx.golden.quant.divide_to): shifts past 62 round every
    product to 0 in golden, so they become (0, 0)."""
    m, sh = (int(v) for v in dyadic_factors(np.float32(s_from), np.float32(s_to)))
    return (0, 0) if sh > _MAX_SHIFT else (m, sh)


def layernorm_factors(g_scale, b_scale, f: int) -> tuple[tuple[int, int], tuple[int, int], np.float32]:
    """Eq. 13's matching of g y (scale C 2^F s_g, float32 products in golden's order) and b: their (m, sh) to
    s = min of the two, and s."""
    with np.errstate(over="ignore"):
        s_yg = np.float32(C_L1 * np.float32(1 << f)) * np.float32(g_scale)
    s = np.minimum(s_yg, np.float32(b_scale))
    return match_factor(s_yg, s), match_factor(b_scale, s), s


def output_scale(s, m: int, sh: int) -> np.float32:
    """The re-scaled row's scale s m / 2^sh (itx.golden.quant.rescale: dyadic, and pow2 with m = 1)."""
    return np.float32(np.ldexp(np.float64(s) * m, -sh))


def _per_row(values: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values [rows, n], scales [rows]) of a tensor with one scale per row."""
    n = values.shape[-1]
    if scale.shape[-1] != 1:
        raise ValueError(f"row units take one scale per row, got scale shape {scale.shape}")
    return values.reshape(-1, n), np.broadcast_to(scale, values.shape[:-1] + (1,)).reshape(-1)


def captured_rows(data, kind: str) -> dict[str, dict[str, np.ndarray]]:
    """The ops of `kind` ("residual" / "layernorm") in itx.golden.capture.ops_arrays' npz, in the model's order, as the
    row units take them: residual x, sx, z, sz (rows and per-row scales of both addends); LayerNorm x, sx and the
    layer's g, gs, b, bs (flat values, one scale)."""
    out = {}
    for op in map(str, data["ops"]):
        if str(data[f"{op}/kind"]) != kind:
            continue
        (x, sx), rec = _per_row(data[f"{op}/x.values"], data[f"{op}/x.scale"]), {}
        if kind == "residual":
            z, sz = _per_row(data[f"{op}/y.values"], data[f"{op}/y.scale"])
            rec = {"z": z, "sz": sz}
        else:
            for k in "gb":
                rec[k], rec[f"{k}s"] = data[f"{op}/{k}.values"].reshape(-1), data[f"{op}/{k}.scale"].reshape(())
        out[op] = {"x": x, "sx": sx, **rec}
    if not out:
        raise ValueError(f"the capture holds no {kind} op")
    return out


def _beats(n: int, lanes: int) -> int:
    return -(-n // lanes)


def residual_cycles(n: int, lanes: int, in_bits: int, acc_bits: int, divides: bool) -> tuple[int, int]:
    """itx_residual, no stalls: (latency from a row's first beat in to its last beat out, interval between rows
    streamed back to back). B = ceil(n / lanes) beats in, the factor (1 cycle; + VW + 32 for the dyadic division of a
    row with max|v| > q, VW = min(in_bits + 1, acc_bits)), B beats out; the next row enters after the last beat."""
    b, vw = _beats(n, lanes), min(in_bits + 1, acc_bits)
    interval = 2 * b + 1 + (vw + 32 if divides else 0)
    return interval + 1, interval


def layernorm_cycles(n: int, lanes: int, acc_bits: int, max_n: int, paper: bool, divides: bool) -> tuple[int, int]:
    """itx_layernorm, no stalls: (latency, interval) as residual_cycles. Per row B (in) + ACC_BITS + 3 (mean) + B
    (l1) [+ ACC_BITS + 2 for paper's mad] + B (NUMW + 3) (lane divisions, NUMW = ACC_BITS + clog2(MAX_N + 1) + 16,
    and the push into the re-scale unit), which re-scales while the next row enters: latency adds B + 2 beats out and,
    for a dyadic row with max|o| > q, its division (ACC_BITS + 32)."""
    b, numw = _beats(n, lanes), acc_bits + max_n.bit_length() + 16
    interval = b * (numw + 5) + acc_bits + 3 + (acc_bits + 2 if paper else 0)
    return interval + b + 2 + (acc_bits + 32 if divides else 0), interval
