"""Verification kit: check *your own* RTL bit for bit against itx's golden vectors with cocotb 2.x.

The pieces follow cocotb's examples/matrix_multiplier, each doing one thing:

- `read_vectors` turns a vector manifest (`itx vectors gemm --out DIR`) into numpy arrays; every file's
  structure, range and sha256 is checked (golden/vectors.py) before a value is used.
- `StreamDriver` offers beats on a valid/ready interface, `Backpressure` drives a ready with random stalls,
  `StreamMonitor` reports every beat a handshake accepted (valid and ready high at a rising clock edge).
  Stalls are drawn from a seeded `random.Random`: the same seed gives the same cycles.
- `Scoreboard` is an in-order checker: a model callback on the *input* monitor adds expected values computed from
  what the DUT accepted (not from the stimulus list), the output monitor's results are compared with them with
  zero tolerance; a difference raises itx.golden.errors.Mismatch naming tensor, index, expected and got.
- `run` builds the RTL and runs a cocotb test module through cocotb_tools.runner (Icarus by default), passing
  `args` to the testbench (`test_args()` there) and failing unless every cocotb test ran and passed;
  `parameters` reads a DUT's parameters back from the simulator.

examples/third_party_matmul/ is a complete user of this module (its README has the short version).
"""
from __future__ import annotations

import json
import os
import random
import sys
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Self
from xml.etree import ElementTree

import numpy as np

import cocotb
from cocotb.handle import LogicArrayObject, LogicObject
from cocotb.task import Task
from cocotb.triggers import Event, RisingEdge, SimTimeoutError, with_timeout
from cocotb.types import LogicArray

from itx.golden.errors import Mismatch
from itx.golden.errors import compare as golden_compare
from itx.golden.gemm import gemm
from itx.golden.vectors import read_manifest

Signal = LogicObject | LogicArrayObject
Beat = Mapping[str, int]
ARGS_ENV = "ITX_TB"  # JSON of `run(args=...)`, read in the simulator by test_args()


# ---- vectors ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GemmVectors:
    """One GEMM of a manifest: C = A @ B as int64 arrays (A is M x K, B is K x N, C is M x N)."""
    layer: str
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray


@dataclass(frozen=True)
class VectorSet:
    """A whole manifest: the datapath it was computed for and its GEMMs, in file order."""
    path: Path
    in_bits: int
    acc_bits: int
    overflow: str  # "wrap" or "saturate" at acc_bits
    gemms: tuple[GemmVectors, ...]

    def gemm(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The golden model, itx.golden.gemm.gemm at this set's widths: use it on what the DUT accepted."""
        return gemm(a, b, acc_bits=self.acc_bits, overflow=self.overflow, in_bits=self.in_bits)


def read_vectors(path: str | Path) -> VectorSet:
    """Read a manifest (or its directory) and every matrix it lists, each validated and sha256-checked.

    Raises ValueError/UserError with one line naming the file and field for a bad or empty set."""
    man = read_manifest(path).nonempty()
    gemms = tuple(GemmVectors(e.layer, *(man.load(e, w) for w in "abc")) for e in man.gemms)
    return VectorSet(man.path, man.in_bits, man.acc_bits, man.overflow, gemms)


# ---- lanes --------------------------------------------------------------------------------------------------------

def pack(values: Iterable[int], bits: int) -> int:
    """Bus word with lane i = values[i] in two's complement, lane 0 in the low bits."""
    mask, word = (1 << bits) - 1, 0
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * bits)
    return word


def unpack(word: int, lanes: int, bits: int) -> list[int]:
    """Signed lanes of a bus word (inverse of pack)."""
    half, mask = 1 << (bits - 1), (1 << bits) - 1
    return [((word >> (i * bits)) & mask) - ((word >> (i * bits)) & half) * 2 for i in range(lanes)]


# ---- stream components --------------------------------------------------------------------------------------------

def _rng(rng: int | random.Random) -> random.Random:
    return rng if isinstance(rng, random.Random) else random.Random(rng)


def _stall(p: float) -> float:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"stall probability must be in [0, 1), got {p}")
    return p


class StreamDriver:
    """Offers beats on a valid/ready interface, in order; each cycle is left idle with probability `stall`.

    `data` maps beat keys to DUT inputs; a beat stays on the bus with valid high until ready accepts it
    (ready=None: an interface without back-pressure, every offered beat is taken)."""

    def __init__(self, clk: Signal, valid: Signal, ready: Signal | None, data: Mapping[str, Signal], *,
                 stall: float = 0.0, rng: int | random.Random = 0) -> None:
        self.clk, self.valid, self.ready, self.data = clk, valid, ready, dict(data)
        self.stall, self.rng = _stall(stall), _rng(rng)
        self.sent = 0  # beats accepted so far

    async def send(self, beats: Sequence[Beat], stop_after: int | None = None) -> int:
        """Drive beats (or only the first `stop_after`) until accepted; returns how many were accepted."""
        limit = len(beats) if stop_after is None else min(stop_after, len(beats))
        i = 0
        while i < limit:
            offer = self.rng.random() >= self.stall
            if offer:
                for key, handle in self.data.items():
                    handle.value = beats[i][key]
            self.valid.value = int(offer)
            await RisingEdge(self.clk)
            while offer and self.ready is not None and not self.ready.value:
                await RisingEdge(self.clk)
            i += offer
            self.sent += offer
        self.valid.value = 0
        return i


class _Background:
    """A component running as one cocotb task between start() and stop()."""
    _task: Task[None] | None = None

    def start(self) -> Self:
        if self._task is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._task = cocotb.start_soon(self._run())
        return self

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        raise NotImplementedError


class Backpressure(_Background):
    """Drives a ready input: low with probability `stall` each cycle; low again after stop()."""

    def __init__(self, clk: Signal, ready: Signal, *, stall: float = 0.0, rng: int | random.Random = 0) -> None:
        self.clk, self.ready, self.stall, self.rng = clk, ready, _stall(stall), _rng(rng)

    def stop(self) -> None:
        super().stop()
        self.ready.value = 0

    async def _run(self) -> None:
        while True:
            self.ready.value = int(self.rng.random() >= self.stall)
            await RisingEdge(self.clk)


class StreamMonitor(_Background):
    """Passive: at every rising edge where valid and ready are 1, samples `data` (as unsigned ints) into a beat
    and calls each callback with it. Use one on the DUT's inputs (feeding the model) and one on its outputs."""

    def __init__(self, clk: Signal, valid: Signal, ready: Signal | None, data: Mapping[str, Signal], *,
                 name: str = "monitor") -> None:
        self.clk, self.valid, self.ready, self.data, self.name = clk, valid, ready, dict(data), name
        self.callbacks: list[Callable[[dict[str, int]], Any]] = []
        self.count = 0  # beats seen

    def add_callback(self, callback: Callable[[dict[str, int]], Any]) -> Self:
        """Call `callback(beat)` for every accepted beat (beat: data key -> unsigned int); returns self."""
        self.callbacks.append(callback)
        return self

    async def _run(self) -> None:
        while True:
            await RisingEdge(self.clk)  # values the DUT sampled at this edge
            if self.valid.value == 1 and (self.ready is None or self.ready.value == 1):
                beat = {}
                for key, handle in self.data.items():
                    value = handle.value
                    if not value.is_resolvable:
                        raise Mismatch(f"{self.name}: beat {self.count}: {key} is {value} (not 0/1) on a handshake")
                    beat[key] = value.to_unsigned() if isinstance(value, LogicArray) else int(value)
                self.count += 1
                for callback in self.callbacks:
                    callback(beat)


# ---- checking -----------------------------------------------------------------------------------------------------

def compare(tensor: str, expected: np.ndarray, got: np.ndarray, at: Sequence[int] = ()) -> None:
    """Zero tolerance (itx.golden.errors.compare): Mismatch at the first differing element, naming tensor, index,
    expected and got.

    `at` places a slice in its tensor for the message: row i of a matrix compared with at=(i, 0) reports
    tensor[i, j] (leading entries prefix the index, the rest offset it)."""
    diff = golden_compare(None, tensor, expected, got)
    if diff is not None:
        lead = len(at) - len(diff.index)
        where = tuple(at[:lead]) + tuple(o + i for o, i in zip(at[lead:], diff.index)) if at else diff.index
        raise Mismatch(str(replace(diff, index=where)))


class Scoreboard:
    """In-order checker: expect() queues a named expected tensor (from a model of the accepted inputs), check()
    compares the DUT's next result with the oldest one. finish() fails if anything expected never came out or if
    nothing was compared at all."""

    def __init__(self, name: str = "scoreboard") -> None:
        self.name = name
        self.checked = 0
        self._expected: deque[tuple[str, np.ndarray, tuple[int, ...]]] = deque()
        self._progress = Event()

    def expect(self, tensor: str, values: np.ndarray, at: Sequence[int] = ()) -> None:
        """Queue the next expected result; `at` as in compare (where this slice sits in `tensor`)."""
        self._expected.append((tensor, np.asarray(values), tuple(at)))

    @property
    def pending(self) -> int:
        return len(self._expected)

    def check(self, got: np.ndarray) -> None:
        if not self._expected:
            raise Mismatch(f"{self.name}: result {self.checked} came out before any accepted input explains it")
        tensor, want, at = self._expected.popleft()
        compare(tensor, want, got, at)
        self.checked += 1
        self._progress.set()

    async def wait(self, count: int, timeout_ns: float | None = None) -> None:
        """Until `count` results have been checked; Mismatch if that takes more than timeout_ns of sim time
        (results lost in the DUT, or inputs the model never saw)."""
        async def progress() -> None:
            while self.checked < count:
                self._progress.clear()
                await self._progress.wait()

        try:
            await (progress() if timeout_ns is None else with_timeout(progress(), timeout_ns, "ns"))
        except SimTimeoutError:
            raise Mismatch(f"{self.name}: {self.checked} of {count} results came out within {timeout_ns} ns "
                           f"({len(self._expected)} more expected by the model)") from None

    def finish(self) -> None:
        if self._expected:
            raise Mismatch(f"{self.name}: {len(self._expected)} expected results never came out, the first "
                           f"{self._expected[0][0]}")
        if not self.checked:
            raise Mismatch(f"{self.name}: compared nothing; verification that compared nothing has not passed")


# ---- parameters and the runner ------------------------------------------------------------------------------------

def parameters(dut: Any, names: Iterable[str], expected: Mapping[str, int] | None = None) -> dict[str, int]:
    """The DUT's parameter values as the simulator built them (Icarus exposes them; Verilator only with
    /*verilator public*/). A name it does not expose falls back to `expected`; a value differing from
    `expected` (a stale build) is an AssertionError."""
    out = {}
    for name in names:
        try:
            value = getattr(dut, name).value
        except AttributeError:
            if expected is None or name not in expected:
                raise AssertionError(f"{dut._name}: parameter {name} is not visible in the simulator") from None
            out[name] = int(expected[name])
            continue
        out[name] = value if isinstance(value, int) else value.to_signed()
        if expected is not None and name in expected and out[name] != int(expected[name]):
            raise AssertionError(f"{dut._name}: parameter {name} = {out[name]}, built for {expected[name]}")
    return out


def test_args() -> dict:
    """In the simulator: the `args` that `run` was given."""
    return json.loads(os.environ.get(ARGS_ENV, "{}"))


test_args.__test__ = False  # not a pytest test


def build_key(parameters: Mapping[str, int]) -> str:
    """Directory-name form of a parameter set: builds of different parameters never share a directory."""
    return "-".join(f"{k.lower()}{v}" for k, v in sorted(parameters.items())) or "defaults"


def run(*, toplevel: str, sources: Sequence[str | Path], test_module: str, parameters: Mapping[str, int] | None = None,
        args: Mapping | None = None, sim: str = "icarus", build_dir: str | Path | None = None,
        module_dir: str | Path | None = None, testcase: str | None = None, seed: int = 0, waves: bool = False,
        build_args: Sequence[str] = ()) -> Path:
    """Build `sources` with `parameters` and run the cocotb tests of `test_module` (importable from `module_dir`,
    e.g. the folder of the pytest file) against `toplevel`; AssertionError unless at least one test ran and all
    passed. build_dir defaults to sim_build/<sim>/<toplevel>-<parameters>. Returns the results XML."""
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    parameters = dict(parameters or {})
    key = build_key(parameters)
    build_dir = Path(build_dir or Path("sim_build") / sim / f"{toplevel}-{key}{'-waves' if waves else ''}")
    runner = get_runner(sim)
    runner.build(sources=[Path(s) for s in sources], hdl_toplevel=toplevel, parameters=parameters,
                 build_dir=build_dir, build_args=list(build_args), waves=waves, timescale=("1ns", "1ps"),
                 log_file=build_dir / "build.log")
    path = [str(Path(module_dir).resolve())] if module_dir else []
    results = build_dir / f"results-{testcase or 'all'}.xml"
    results.unlink(missing_ok=True)  # never read an earlier run's verdict
    sys.path[:0] = path  # the runner hands sys.path to the simulator's Python as PYTHONPATH
    try:
        runner.test(test_module=test_module, hdl_toplevel=toplevel, testcase=testcase, seed=seed,
                    extra_env={ARGS_ENV: json.dumps(dict(args or {}))}, waves=waves, build_dir=build_dir,
                    test_dir=build_dir, results_xml=str(results))
    except SystemExit:  # under pytest the runner exits on a failure; the results file says which and why
        pass
    finally:
        del sys.path[:len(path)]
    if not results.is_file():
        raise AssertionError(f"{sim} {toplevel} {key}: the simulation ended without results (log above)")
    total, failed = get_results(results)
    if total == 0 or failed:
        raise AssertionError(f"{sim} {toplevel} {key}: {failed} of {total} cocotb tests failed: "
                             f"{'; '.join(_failures(results)) or 'none ran'} (log above; results {results})")
    return results


def _failures(results: Path) -> list[str]:
    """'test: message' of every failed or erroring testcase of a cocotb results file."""
    out = []
    for case in ElementTree.parse(results).getroot().iter("testcase"):
        for bad in (*case.findall("failure"), *case.findall("error")):
            out.append(f"{case.get('name')}: {bad.get('message') or bad.get('type')}")
    return out
