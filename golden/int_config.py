"""Knobs of the integer Transformer (golden/int_model.py), all in one frozen config.

Which module runs in integers is decided per module instance: its kind (emb, attn, ffn, ln, res, proj) must be in
`modules`, and its layer name (e.g. "enc.0.self_attn", "dec.1.res2", "out_proj") must start with one of
`int_layers` (empty = every layer) and with none of `fp32_layers`. A module that is not integer runs in FP32
between a dequantize and a quantize (Lin et al. Fig. 6/7 ablations); "only layer X in INT8" is
IntConfig(int_layers=("X",)) and "everything but X" is IntConfig(fp32_layers=("X",)).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from . import attention, layernorm
from .config import OVERFLOW_MODES, load_hw_config
from .quant import DEFAULT_GRANULARITY, DEFAULT_MATCH, DEFAULT_RESCALE, MATCH_MODES, RESCALE_MODES
from .rounding import DEFAULT_ROUNDING, ROUNDINGS

MODULES = ("emb", "attn", "ffn", "ln", "res", "proj")
GRANULARITIES = ("row", "batch", "block")
DIVISIONS = ("paper", "fixed")
MIN_BITS, MAX_BITS = 6, 10


@dataclass(frozen=True)
class IntConfig:
    """bits: activations and weights (6..10). granularity: activation re-scaling groups, "row" = one scale per
    (sentence, position) = B x T, "batch" = one per sentence (B), "block" = block x block tiles of (T, features).
    match: Eq. 8 scale matching ("paper" ceil-div, "dyadic" 31-bit multiplier + shift); rescale: Eq. 10 ("paper" ceil
    divisor, "pow2" next power of two, "dyadic" 31-bit multiplier + shift). Both also take "tflite" (gemmlowp's
    double rounding with TFLite's QuantizeMultiplier) and "tflite_single" (TFLITE_SINGLE_ROUNDING), which round as
    those libraries define, whatever `rounding` says (SPEC.md). Both default to the dyadic variants: more
    precise than the paper's ceil (SPEC.md) and, for Eq. 10, one cycle per beat in itx_requant instead of a divide. 
    The defaults are golden's own (quant.DEFAULT_*, rounding.DEFAULT_ROUNDING, attention/layernorm.DEFAULT_*), and
    each knob governs every site SPEC.md's knob table lists (attention's and LayerNorm's internal re-scales too).
    acc_bits/overflow: the one accumulator of every wide result, GEMM and element-wise (default hw/config.toml).
    param_bits: biases, LayerNorm gain/bias, poly b/delta (added in the accumulator, so wider than `bits`).
    attn_division/ln_division and *_frac_bits: the integer division of Eq. 12 and Eq. 13 (itx.golden.attention)."""
    bits: int = 8
    granularity: str = DEFAULT_GRANULARITY
    block: int = 8
    match: str = DEFAULT_MATCH
    rescale: str = DEFAULT_RESCALE
    acc_bits: int | None = None
    overflow: str | None = None
    param_bits: int = 16
    modules: frozenset = frozenset(MODULES)
    int_layers: tuple = ()
    fp32_layers: tuple = ()
    attn_division: str = attention.DEFAULT_DIVISION
    attn_frac_bits: int = attention.DEFAULT_FRAC_BITS
    ln_division: str = layernorm.DEFAULT_DIVISION
    ln_frac_bits: int = layernorm.DEFAULT_FRAC_BITS
    rounding: str = DEFAULT_ROUNDING

    def __post_init__(self) -> None:
        hw = load_hw_config()
        object.__setattr__(self, "acc_bits", hw.acc_bits if self.acc_bits is None else self.acc_bits)
        object.__setattr__(self, "overflow", hw.overflow if self.overflow is None else self.overflow)
        object.__setattr__(self, "modules", frozenset(self.modules))
        object.__setattr__(self, "int_layers", tuple(self.int_layers))
        object.__setattr__(self, "fp32_layers", tuple(self.fp32_layers))
        _int_in("bits", self.bits, MIN_BITS, MAX_BITS)
        _int_in("acc_bits", self.acc_bits, 16, 32)
        _int_in("param_bits", self.param_bits, self.bits, 16)
        _int_in("block", self.block, 1, 1 << 16)
        for name, allowed in (("granularity", GRANULARITIES), ("match", MATCH_MODES),
                              ("rescale", RESCALE_MODES), ("overflow", OVERFLOW_MODES),
                              ("attn_division", DIVISIONS), ("ln_division", DIVISIONS), ("rounding", ROUNDINGS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"IntConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        unknown = sorted(self.modules - set(MODULES))
        if unknown:
            raise ValueError(f"IntConfig.modules: unknown module {unknown[0]!r} (known: {', '.join(MODULES)})")

    def is_int(self, kind: str, layer: str) -> bool:
        """Does module `kind` of layer `layer` run in integers?"""
        return (kind in self.modules and (not self.int_layers or layer.startswith(self.int_layers))
                and not layer.startswith(self.fp32_layers or ("\0",)))

    @property
    def fully_integer(self) -> bool:
        return self.modules == frozenset(MODULES) and not self.int_layers and not self.fp32_layers

    def with_(self, **changes) -> "IntConfig":
        return replace(self, **changes)

    def describe(self) -> str:
        """One line with every knob that differs from the default (for logs and BLEU tables)."""
        default = IntConfig()
        diff = [f"{f.name}={_show(getattr(self, f.name))}" for f in fields(self)
                if f.name != "bits" and getattr(self, f.name) != getattr(default, f.name)]
        return " ".join([f"INT{self.bits}"] + diff)


def _show(v) -> str:
    return ",".join(sorted(v)) if isinstance(v, frozenset) else ",".join(v) if isinstance(v, tuple) else str(v)


def _int_in(name: str, v, lo: int, hi: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"IntConfig.{name} must be an integer in {lo}..{hi}, got {v!r}")


def parse_modules(text: str) -> frozenset:
    """"emb,attn,ffn" -> frozenset; "all" = every module, "none" = none (an FP32 run with quantized boundaries)."""
    if text.strip() == "all":
        return frozenset(MODULES)
    if text.strip() == "none":
        return frozenset()
    names = [m.strip() for m in text.split(",")]
    if "" in names:
        raise ValueError(f"--int8-modules: empty module name in {text!r} (known: {', '.join(MODULES)}, all, none)")
    mods = frozenset(names)
    unknown = sorted(mods - set(MODULES))
    if unknown:
        raise ValueError(f"--int8-modules: unknown module {unknown[0]!r} (known: {', '.join(MODULES)}, all, none)")
    return mods
