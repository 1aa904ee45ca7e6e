"""hw/itx_requant.v's parameters and input codes; the factors and the unit's arithmetic are golden's
(golden/requant.py)."""
from __future__ import annotations

from itx.golden.config import HwConfig
from itx.golden.quant import DYADIC_BITS
from itx.golden.requant import SH_BITS, STAGE_MODES
from itx.golden.rounding import ROUNDINGS, check_rounding


def requant_parameters(cfg: HwConfig, lanes: int | None = None) -> dict[str, int]:
    """itx_requant parameters: one lane per array column, the accumulator (width and overflow) in, in_bits out."""
    return {"LANES": lanes or cfg.cols, "ACC_BITS": cfg.acc_bits, "SATURATE": int(cfg.overflow == "saturate"),
            "OUT_BITS": cfg.in_bits,
            "MUL_BITS": DYADIC_BITS, "SH_BITS": SH_BITS}


def stage_code(mode: str) -> int:
    """itx_requant's in_mmode / in_rmode: the index in itx.golden.requant.STAGE_MODES."""
    if mode not in STAGE_MODES:
        raise ValueError(f"stage mode must be one of {STAGE_MODES}, got {mode!r}")
    return STAGE_MODES.index(mode)


def rounding_code(rounding: str) -> int:
    """itx_round's RND input: the index in itx.golden.rounding.ROUNDINGS."""
    return ROUNDINGS.index(check_rounding(rounding))
