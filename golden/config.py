"""Array geometry and datapath widths, read from hw/config.toml (shared with the RTL build)."""
from __future__ import annotations

import tomllib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HW_CONFIG = ROOT / "hw" / "config.toml"
OVERFLOW_MODES = ("wrap", "saturate")
MAX_ARRAY_DIM = 64      # rows/cols of a simulated array: 4096 PEs already take minutes to build and run
# legal values (inclusive) of each integer field of hw/config.toml; tests sweep the RTL over them
RANGES = {"rows": (1, MAX_ARRAY_DIM), "cols": (1, MAX_ARRAY_DIM), "in_bits": (2, 16), "acc_bits": (16, 32)}


@dataclass(frozen=True)
class HwConfig:
    rows: int = 8
    cols: int = 8
    in_bits: int = 8
    acc_bits: int = 32
    overflow: str = "wrap"

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "in_bits", "acc_bits"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int):
                raise ValueError(f"{_FIELDS[name]} must be an integer, got {val!r}")
        if not isinstance(self.overflow, str):
            raise ValueError(f"datapath.overflow must be a string, got {self.overflow!r}")
        (lo, hi), (in_lo, in_hi), (acc_lo, acc_hi) = RANGES["rows"], RANGES["in_bits"], RANGES["acc_bits"]
        if not (lo <= self.rows <= hi and lo <= self.cols <= hi):
            raise ValueError(f"array.rows and array.cols must be in {lo}..{hi}, got {self.rows}x{self.cols}")
        if not in_lo <= self.in_bits <= in_hi:
            raise ValueError(f"datapath.in_bits must be in {in_lo}..{in_hi}, got {self.in_bits}")
        if not acc_lo <= self.acc_bits <= acc_hi:
            raise ValueError(f"datapath.acc_bits must be in {acc_lo}..{acc_hi}, got {self.acc_bits}")
        if self.overflow not in OVERFLOW_MODES:
            raise ValueError(f"datapath.overflow must be one of {OVERFLOW_MODES}, got {self.overflow!r}")


_FIELDS = {"rows": "array.rows", "cols": "array.cols", "in_bits": "datapath.in_bits",
           "acc_bits": "datapath.acc_bits", "overflow": "datapath.overflow"}


def load_hw_config(path: str | Path | None = None) -> HwConfig:
    """Parse the TOML config (default hw/config.toml); a missing file, a missing field or a value of the wrong
    type or range is a one-line error naming the file and field (no coercion: acc_bits 24.9 is an error)."""
    path = Path(HW_CONFIG if path is None else path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: config file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    values = {}
    for name, dotted in _FIELDS.items():
        table, key = dotted.split(".")
        if not isinstance(raw.get(table), dict) or key not in raw[table]:
            raise ValueError(f"{path}: missing field {dotted!r}")
        values[name] = raw[table][key]
    try:
        return HwConfig(**values)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


class AccumulatorPeak:
    """The width an accumulator needs for the exact values reduced while it is recording (see accumulator_peak):
    bits = the smallest acc_bits whose range [-2^(bits-1), 2^(bits-1)) holds every one of them (1 before any)."""

    def __init__(self) -> None:
        self.bits = 1

    def note(self, lo: int, hi: int) -> None:
        """Exact values from lo to hi entered an accumulator (two's complement width of each end)."""
        self.bits = max(self.bits, int(lo if lo >= 0 else ~lo).bit_length() + 1,
                        int(hi if hi >= 0 else ~hi).bit_length() + 1)


_PEAKS: list[AccumulatorPeak] = []   # the recording AccumulatorPeaks (usually none: nothing is scanned for them)


@contextmanager
def accumulator_peak():
    """Record, within the block, every exact value that enters an accumulator reduction (to_accumulator, and
    itx.golden.gemm's sums or, for "saturate", the bound of its partial sums). Every such op reduces at any width >= the
    yielded peak's bits exactly as at 32 bits, where nothing is reduced: so a computation (all of whose data-path
    ops go through these reductions, i.e. without itx.golden.kernels) whose peak is <= w gives bit-identical results with
    acc_bits = w, every op seeing the same inputs by induction over the ops."""
    peak = AccumulatorPeak()
    _PEAKS.append(peak)
    try:
        yield peak
    finally:
        _PEAKS.remove(peak)


def recording() -> bool:
    """Is an accumulator_peak block active (values otherwise provably in range must be noted then)?"""
    return bool(_PEAKS)


def note_accumulator(lo: int, hi: int) -> None:
    for peak in _PEAKS:
        peak.note(lo, hi)


def to_accumulator(values, acc_bits: int, overflow: str):
    """Exact int64 results as an acc_bits accumulator holds them (SPEC.md, "Accumulator"): "wrap" reduces mod
    2^acc_bits into [-2^(acc_bits-1), 2^(acc_bits-1)), "saturate" clips to that range. The one reduction of every
    element-wise op, row sum and quotient of the data path (golden/gemm.py wraps or saturates its ordered MACs itself);
    values already in range are returned as they are (two reductions, no temporaries)."""
    values = np.asarray(values, dtype=np.int64)
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    if not values.size:
        return values
    vmin, vmax = np.minimum.reduce(values, axis=None), np.maximum.reduce(values, axis=None)
    if _PEAKS:
        note_accumulator(int(vmin), int(vmax))
    if lo <= vmin and vmax <= hi:
        return values
    if overflow == "saturate":
        return np.clip(values, lo, hi)
    if overflow != "wrap":
        raise ValueError(f"overflow must be one of {OVERFLOW_MODES}, got {overflow!r}")
    return ((values - lo) & ((1 << acc_bits) - 1)) + lo
