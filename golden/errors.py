"""The two expected failures of itx, named so every layer raises them and the CLI maps them (itx/errors.py).

UserError: bad input (an option, file, field or index), one line that names it -> exit 2.
Mismatch: a comparison found a difference (name, index, expected, got) -> exit 1. It is an AssertionError, so
pytest and cocotb report it as a failed check.
"""
from __future__ import annotations


class UserError(ValueError):
    """Bad input: the message is one line naming the culprit option/file/field/index."""


class Mismatch(AssertionError):
    """Verification found a difference: the message names what differs, where, expected and got."""
