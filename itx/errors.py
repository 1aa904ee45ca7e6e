"""The CLI's error contract, in one place: every command's exceptions map to one stderr line and an exit code.

  0  success                       1  verification failed (itx.golden.errors.Mismatch: name, index, expected, got)
  2  bad input: `itx CMD: error: <what>, <where>` (UserError, argparse, OSError, MemoryError)
  3  internal error: a bug in itx; the traceback is printed, then one line saying so
  130 interrupted (Ctrl-C / SIGINT): staged outputs are discarded (golden/atomic.py), nothing half-written

A ValueError raised by a `raise` statement in itx's own code (golden/, sim/, itx/, bench/) is a UserError that
predates the name; a ValueError from inside numpy or another library is an internal error: input reached it
unvalidated.
"""
from __future__ import annotations

import argparse
import math
import linecache
import sys
import traceback
from pathlib import Path

from itx.golden.errors import Mismatch, UserError

ROOT = Path(__file__).resolve().parent.parent
OK, FAILED, BAD_INPUT, INTERNAL, INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(UserError):
    """An argparse error, already prefixed with the (sub)command's prog."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block); subparsers inherit the class."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: error: {message}")


def one_line(text: str) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip()) or "(no message)"


def _raised_by_itx(exc: BaseException) -> bool:
    """Was exc raised by a `raise` statement in this repository's code (not inside a library)?"""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    path = Path(tb.tb_frame.f_code.co_filename).resolve()
    inside = path.is_relative_to(ROOT) and "site-packages" not in path.parts
    return inside and linecache.getline(str(path), tb.tb_lineno).lstrip().startswith("raise")


def classify(exc: BaseException) -> tuple[int, str]:
    """(exit code, message) of an exception escaping a command."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED, "interrupted; no output was written"
    if isinstance(exc, Mismatch):
        return FAILED, one_line(exc)
    if isinstance(exc, UserError) or (isinstance(exc, ValueError) and _raised_by_itx(exc)):
        return BAD_INPUT, one_line(exc)
    if isinstance(exc, OSError):
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        return BAD_INPUT, one_line(f"{where}: {exc.strerror or exc}" if where else (exc.strerror or exc))
    if isinstance(exc, MemoryError):
        return BAD_INPUT, "out of memory: the input is too large for this machine (reduce the shape or count)"
    return INTERNAL, f"internal error (a bug in itx, please report it with the traceback above): " \
                     f"{type(exc).__name__}: {one_line(exc)}"


def report(prog: str, exc: BaseException, stream=None) -> int:
    """Print exc per the contract (a traceback first for internal errors); returns the exit code."""
    stream = stream or sys.stderr
    code, msg = classify(exc)
    if code == INTERNAL:
        traceback.print_exception(exc, file=stream)
    if isinstance(exc, UsageError):
        print(msg, file=stream)
    else:
        print(f"{prog}: {'error: ' if code == BAD_INPUT else ''}{msg}", file=stream)
    return code


# ---- argument types: a bad value becomes "argument --x: <why>" (argparse names the option) -------------------
def int_in(lo: int, hi: int | None = None):
    """argparse type: an integer in lo..hi (hi None: no upper bound)."""
    def parse(text: str) -> int:
        try:
            val = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if val < lo or (hi is not None and val > hi):
            raise argparse.ArgumentTypeError(f"must be in {lo}..{hi}, got {val}" if hi is not None else
                                             f"must be >= {lo}, got {val}")
        return val
    parse.__name__ = "int"
    return parse


def float_in(lo: float, hi: float | None = None, lo_open: bool = False):
    """argparse type: a finite number in [lo, hi] (lo_open: lo excluded; hi None: no upper bound)."""
    def parse(text: str) -> float:
        try:
            val = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(val) or val < lo or (lo_open and val == lo) or (hi is not None and val > hi):
            low = f"> {lo}" if lo_open else f">= {lo}"
            raise argparse.ArgumentTypeError(f"must be {low}" + ("" if hi is None else f" and <= {hi}") + f", got {text}")
        return val
    parse.__name__ = "float"
    return parse


def int_tuples(text: str, option: str, form: str, lo: int = 1, hi: int | None = None) -> list[tuple[int, ...]]:
    """'RxC,...' (form names the numbers of an entry, e.g. "MxKxN"; entries joined by commas) -> [(R, C), ...], each
    number in lo..hi; a malformed entry is a one-line error naming the option and the entry."""
    dims, out = form.count("x") + 1, []
    for item in text.split(","):
        parts = item.strip().lower().split("x")
        if len(parts) != dims or not all(d.isdigit() and lo <= int(d) and (hi is None or int(d) <= hi) for d in parts):
            bound = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise ValueError(f"{option}: expected {form} with integers {bound}, got {item!r}")
        out.append(tuple(int(d) for d in parts))
    return out


def nonempty(text: str) -> str:
    """argparse type: a non-empty path or name (an empty path would silently mean the current directory, an empty
    layer prefix every layer)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text
