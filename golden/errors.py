"""The two expected failures of itx, named so every layer raises them and the CLI maps them (itx/errors.py).

UserError: bad input (an option, file, field or index), one line that names it -> exit 2.
Mismatch: a comparison found a difference (name, index, expected, got) -> exit 1. It is an AssertionError, so
pytest and cocotb report it as a failed check.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class UserError(ValueError):
    """Bad input: the message is one line naming the culprit option/file/field/index."""


class Mismatch(AssertionError):
    """Verification found a difference: the message names what differs, where, expected and got."""


@dataclass(frozen=True)
class Difference:
    """The first element where a result differs from its expected value (row-major order), and how many differ;
    `layer` None for a tensor that belongs to no model layer (a unit testbench's)."""
    layer: str | None
    tensor: str
    index: tuple[int, ...]
    expected: int
    got: int
    count: int
    size: int

    def __str__(self) -> str:
        return (f"{_name(self.layer, self.tensor)}[{', '.join(map(str, self.index))}]: expected {self.expected}, got "
                f"{self.got} [{self.count} of {self.size} differ]")


def _name(layer: str | None, tensor: str) -> str:
    return tensor if layer is None else f"{layer!r} {tensor}"


def compare(layer: str | None, tensor: str, expected: np.ndarray, got: np.ndarray) -> Difference | None:
    """The one bit-exact comparison of golden and hardware (zero tolerance): None if equal, else where they first
    differ; a shape difference is a Mismatch."""
    expected, got = np.asarray(expected), np.asarray(got)
    if got.shape != expected.shape:
        raise Mismatch(f"{_name(layer, tensor)}: shape {got.shape}, expected {expected.shape}")
    bad = np.argwhere(got != expected)
    if not bad.size:
        return None
    idx = tuple(int(v) for v in bad[0])
    return Difference(layer, tensor, idx, int(expected[idx]), int(got[idx]), len(bad), int(expected.size))
