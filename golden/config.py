"""Array geometry and datapath widths, read from hw/config.toml (shared with the RTL build)."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HW_CONFIG = ROOT / "hw" / "config.toml"
OVERFLOW_MODES = ("wrap", "saturate")


@dataclass(frozen=True)
class HwConfig:
    rows: int = 8
    cols: int = 8
    in_bits: int = 8
    acc_bits: int = 32
    overflow: str = "wrap"

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"array: rows and cols must be >= 1, got {self.rows}x{self.cols}")
        if not 2 <= self.in_bits <= 16:
            raise ValueError(f"datapath.in_bits must be in 2..16, got {self.in_bits}")
        if not 16 <= self.acc_bits <= 32:
            raise ValueError(f"datapath.acc_bits must be in 16..32, got {self.acc_bits}")
        if self.overflow not in OVERFLOW_MODES:
            raise ValueError(f"datapath.overflow must be one of {OVERFLOW_MODES}, got {self.overflow!r}")


def load_hw_config(path: str | Path = HW_CONFIG) -> HwConfig:
    """Parse the TOML config; a missing file or field is a one-line error naming it."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    try:
        arr, dp = raw["array"], raw["datapath"]
        return HwConfig(rows=int(arr["rows"]), cols=int(arr["cols"]), in_bits=int(dp["in_bits"]),
                        acc_bits=int(dp["acc_bits"]), overflow=str(dp["overflow"]))
    except KeyError as exc:
        raise ValueError(f"{path}: missing field {exc.args[0]!r}") from None


def to_accumulator(values, acc_bits: int, overflow: str):
    """Exact int64 results as an acc_bits accumulator holds them (SPEC.md, "Accumulator"): "wrap" reduces mod
    2^acc_bits into [-2^(acc_bits-1), 2^(acc_bits-1)), "saturate" clips to that range. The one reduction of every
    element-wise op, row sum and quotient of the data path (golden/gemm.py wraps or saturates its ordered MACs itself);
    values already in range are returned as they are (two reductions, no temporaries)."""
    values = np.asarray(values, dtype=np.int64)
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    if not values.size or (lo <= np.minimum.reduce(values, axis=None) and np.maximum.reduce(values, axis=None) <= hi):
        return values
    if overflow == "saturate":
        return np.clip(values, lo, hi)
    if overflow != "wrap":
        raise ValueError(f"overflow must be one of {OVERFLOW_MODES}, got {overflow!r}")
    return ((values - lo) & ((1 << acc_bits) - 1)) + lo
