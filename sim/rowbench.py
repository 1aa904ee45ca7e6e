"""cocotb pieces of the row-unit testbenches (sim/tb_residual.py, sim/tb_layernorm.py), each one job: the unit
benches' driver (itx.sim.unit_bench.Driver: seeded random stalls), an input monitor that hands every accepted beat to the
model, an output monitor driving out_ready with seeded back-pressure, and an in-order row checker whose mismatch
names row, lane, input, expected and got. Stall runs are recorded for the coverage bins."""
from __future__ import annotations

import random
from collections import deque

import numpy as np
from cocotb.triggers import RisingEdge

from itx.sim.kit import pack, unpack
from itx.sim.unit_bench import Driver, pulse_reset, start_clock_and_reset


def lanes_word(values, lanes: int, bits: int, rng: random.Random | None = None) -> int:
    """One bus word: values in lanes 0.., the remaining lanes random (a unit must ignore lanes past a row) or 0."""
    pad = [rng.randrange(-(1 << (bits - 1)), 1 << (bits - 1)) if rng else 0 for _ in range(lanes - len(values))]
    return pack(list(values) + pad, bits)


def row_beats(values: np.ndarray, lanes: int) -> list[np.ndarray]:
    """The beats of a row: LANES elements each, the last one short."""
    return [values[i:i + lanes] for i in range(0, len(values), lanes)]


class InputMonitor:
    """Every beat the DUT accepts (in_valid & in_ready at a rising edge), as {port: int}, to `sink`."""

    def __init__(self, dut, ports: list[str], sink):
        self.dut, self.ports, self.sink = dut, ports, sink
        self.accepted = 0

    async def run(self) -> None:
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            if dut.in_valid.value and dut.in_ready.value and not dut.rst.value:
                self.accepted += 1
                self.sink({p: int(getattr(dut, p).value) for p in self.ports})


class OutputMonitor:
    """Drives out_ready (low with probability p_stall) and hands each row, (values, m, sh) at out_last, to `sink`."""

    def __init__(self, dut, rng: random.Random, p_stall: float, lanes: int, bits: int, sink):
        self.dut, self.rng, self.p_stall, self.lanes, self.bits, self.sink = dut, rng, p_stall, lanes, bits, sink
        self.part: list[int] = []
        self.backpressured = 0          # beats that waited on out_ready (coverage)

    def clear(self) -> None:
        self.part = []

    async def run(self) -> None:
        dut = self.dut
        while True:
            ready = self.rng.random() >= self.p_stall
            dut.out_ready.value = int(ready)
            await RisingEdge(dut.clk)
            if dut.rst.value or not dut.out_valid.value:
                continue
            if not ready:
                self.backpressured += 1
                continue
            self.part += unpack(int(dut.out_data.value), self.lanes, self.bits)
            if dut.out_last.value:
                self.sink((self.part, int(dut.out_m.value), int(dut.out_sh.value)))
                self.part = []


class RowChecker:
    """In-order comparison of the unit's rows with golden's: values (the row's first n lanes, the rest 0) and the
    row's output scale (from the reported factor); the first difference is an AssertionError naming it."""

    def __init__(self, what: str, scale_of):
        self.what, self.scale_of = what, scale_of
        self.expected: deque = deque()
        self.checked = 0
        self.error: AssertionError | None = None   # the first mismatch, raised by the test (not inside a monitor)

    def clear(self) -> None:
        self.expected.clear()

    def check(self, got) -> None:
        if self.error is None:
            try:
                self._check(*got)
            except AssertionError as exc:
                self.error = exc

    def _check(self, values: list[int], m: int, sh: int) -> None:
        if not self.expected:
            raise AssertionError(f"{self.what}: an output row with no input row left to match it")
        tag, inputs, want, want_scale, s_in = self.expected.popleft()
        n = len(want)
        got_v = np.array(values[:n], dtype=np.int64)
        bad = np.flatnonzero(got_v != want)
        if bad.size:
            j = int(bad[0])
            raise AssertionError(f"{self.what} row {self.checked} ({tag}): element {j} ({inputs(j)}): expected "
                                 f"{int(want[j])}, got {int(got_v[j])} [{bad.size} of {n} differ]")
        if any(values[n:]):
            raise AssertionError(f"{self.what} row {self.checked} ({tag}): padding lanes {values[n:]} not 0")
        got_scale = self.scale_of(s_in, m, sh)
        if got_scale != want_scale:
            raise AssertionError(f"{self.what} row {self.checked} ({tag}): output scale {got_scale} (m {m}, sh {sh}),"
                                 f" expected {want_scale}")
        self.checked += 1


class RowBench:
    """One unit under test: clock and reset, rows streamed through Driver -> DUT -> OutputMonitor -> RowChecker with the
    InputMonitor feeding golden (`expect`), and a reset in mid-stream. A subclass gives `ports` (the input ports the
    monitor samples), `beats(row)` (the input beats of a stimulus row), `row_length(beat)` and `expect(beats, row)`
    (the checker's entry from the accepted beats and the row's scales, which are not on the bus)."""

    ports: list[str] = []

    def __init__(self, dut, cfg: dict, what: str, scale_of):
        self.dut, self.cfg = dut, cfg
        self.params = cfg["params"]
        self.lanes, self.out_bits = self.params["LANES"], self.params["OUT_BITS"]
        self.rng = random.Random(cfg.get("seed", 0))
        self.np_rng = np.random.default_rng(cfg.get("seed", 0))
        self.p_in, self.p_out = cfg.get("p_in", 0.3), cfg.get("p_out", 0.3)
        self.checker = RowChecker(what, scale_of)
        self.meta: deque = deque()         # stimulus rows in the order the driver sends them
        self.part: list[dict[str, int]] = []
        self.started = False

    async def start(self) -> None:
        from cocotb import start_soon

        dut = self.dut
        await start_clock_and_reset(dut)
        self.clear()
        self.monitor = InputMonitor(dut, self.ports, self._accepted)
        self.out = OutputMonitor(dut, self.rng, self.p_out, self.lanes, self.out_bits, self.checker.check)
        start_soon(self.monitor.run())
        start_soon(self.out.run())

    async def reset(self, cycles: int = 2) -> None:
        await pulse_reset(self.dut, cycles)
        self.clear()

    def clear(self) -> None:
        """Forget the rows in flight (after a reset)."""
        self.part = []
        self.meta.clear()
        self.checker.clear()
        if hasattr(self, "out"):
            self.out.clear()

    def _accepted(self, beat: dict[str, int]) -> None:
        self.part.append(beat)
        n = self.row_length(self.part[0])
        if len(self.part) * self.lanes >= n:
            row = self.meta.popleft()
            self.checker.expected.append(self.expect(self.part, row))
            self.sample(row, self.part)
            self.part = []

    def sample(self, row, beats) -> None:
        """Coverage of one accepted row (subclasses)."""

    def sample_stream(self, stalls: list[int], backpressured: int) -> None:
        """Coverage of a test's stall pattern: input idle runs, output beats that waited (subclasses)."""

    async def test(self, rows: list, what: str, reset_after: int | None = None) -> None:
        """A whole cocotb test: start, stream and check the rows (run_rows), sample the stall coverage, log."""
        await self.start()
        n = await self.run_rows(rows, reset_after)
        self.sample_stream(self.stalls, self.out.backpressured)
        self.dut._log.info("%s: %d rows bit-exact", what, n)

    async def run_rows(self, rows: list, reset_after: int | None = None) -> int:
        """Stream rows; with reset_after, assert reset once that many beats were accepted (the rows in flight are
        dropped on both sides), then stream the rows again. Returns the rows checked; fails on the first mismatch."""
        from cocotb import start_soon
        from cocotb.triggers import with_timeout

        dut = self.dut
        beats = [b for r in rows for b in self.beats(r)]
        driver = Driver(dut, self.rng, self.p_in)
        before = self.checker.checked
        self.meta.extend(rows)
        task = start_soon(driver.run(beats))
        if reset_after is not None:
            target = self.monitor.accepted + reset_after
            while self.monitor.accepted < target:
                await RisingEdge(dut.clk)
            task.cancel()
            dut.in_valid.value = 0
            await self.reset()
            before = self.checker.checked
            self.meta.extend(rows)
            task = start_soon(driver.run(beats))
        budget = sum(self.cycles(r) for r in rows) / (1 - max(self.p_in, self.p_out)) * 4 + 500

        async def drained():
            while self.checker.checked - before < len(rows) and self.checker.error is None:
                await RisingEdge(dut.clk)
        await with_timeout(drained(), int(budget) * 10, "ns")
        if self.checker.error is not None:
            raise self.checker.error
        self.stalls = getattr(self, "stalls", []) + driver.stalls
        return len(rows)


async def measure_cycles(bench: RowBench, rows: list) -> tuple[int, int]:
    """(latency, interval) in cycles with no stalls and out_ready always 1: from the first beat of the first row
    accepted to the last output beat of it, and between the last output beats of the last two rows (the steady
    state of identical rows streamed back to back). The rows are checked as in run_rows."""
    dut = bench.dut
    saved = bench.p_in, bench.p_out, bench.out.p_stall
    bench.p_in = bench.p_out = bench.out.p_stall = 0.0
    cycle, ends, first = [0], [], []

    async def count():
        while True:
            await RisingEdge(dut.clk)
            cycle[0] += 1
            if dut.in_valid.value and dut.in_ready.value and not first:
                first.append(cycle[0])
            if dut.out_valid.value and dut.out_ready.value and dut.out_last.value:
                ends.append(cycle[0])
    from cocotb import start_soon
    task = start_soon(count())
    await bench.run_rows(rows)
    task.cancel()
    bench.p_in, bench.p_out, bench.out.p_stall = saved
    return ends[0] - first[0] + 1, ends[-1] - ends[-2]


def stream_tests(bench, random_rows, edge_rows, reset_rows: int) -> tuple:
    """A row unit's three stream tests, as cocotb tests to assign at the bench module's top level: random_stream
    (cfg "rows" random rows, stalls on both sides), edge_cases (edge_rows(tb)) and reset_mid_stream (reset_rows
    random rows, a reset after a third of their beats: the rows in flight are dropped, the stream after it exact)."""
    import cocotb

    async def random_stream(dut):
        tb = bench(dut)
        await tb.test(random_rows(tb, tb.cfg["rows"]), "random_stream")

    async def edge_cases(dut):
        tb = bench(dut)
        await tb.test(edge_rows(tb), "edge_cases")

    async def reset_mid_stream(dut):
        tb = bench(dut)
        rows = random_rows(tb, reset_rows)
        await tb.test(rows, "reset_mid_stream", sum(len(tb.beats(r)) for r in rows) // 3)

    tests = random_stream, edge_cases, reset_mid_stream
    for f in tests:   # cocotb names a test module.qualname: the bench module's
        f.__module__, f.__qualname__ = bench.__module__, f.__name__
    return tuple(cocotb.test(f) for f in tests)
