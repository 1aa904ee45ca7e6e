"""cocotb testbench of itx_gemm_ctrl (run through sim/test_gemm_ctrl.py; configured by itx.sim.kit.test_args()).

Every GEMM is streamed through the valid/ready handshakes with random stalls on both sides (itx.sim.kit's driver,
back-pressure and monitors). The expected C is the golden GEMM of what the input monitor saw the controller accept,
tile by tile; the output monitor's beats are assembled into C and checked in order by the kit's scoreboard."""
from __future__ import annotations

import random
from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, with_timeout

from itx.golden.gemm import gemm
from itx.sim.kit import Backpressure, Scoreboard, StreamDriver, StreamMonitor, parameters, test_args, unpack
from itx.sim.scoreboard import assemble, tile_rows
from itx.sim.stream import Beat, gemm_beats

CFG = test_args()


def _values(beat: Beat) -> dict[str, int]:
    m, k, n = beat.dims
    return {"cfg_m": m, "cfg_k": k, "cfg_n": n, "in_a": beat.a, "in_b": beat.b}


class GemmModel:
    """Input-monitor callback: collects accepted beats and, once a GEMM's last beat is in, queues its expected C,
    each tile the golden GEMM of the A and B lanes the controller accepted for it (dims as sampled on the first
    beat, like the RTL). `shapes` holds (M, K, N) of every GEMM begun and not yet checked, for the output side."""

    def __init__(self, tb: "Bench", scoreboard: Scoreboard) -> None:
        self.tb, self.sb = tb, scoreboard
        self.beats: list[tuple[int, int]] = []
        self.dims = (0, 0, 0)
        self.shapes: deque[tuple[int, int, int]] = deque()
        self.count = 0

    def accept(self, beat: dict[str, int]) -> None:
        tb = self.tb
        if not self.beats:
            self.dims = (beat["cfg_m"], beat["cfg_k"], beat["cfg_n"])
            self.shapes.append(self.dims)
        self.beats.append((beat["in_a"], beat["in_b"]))
        m, k, n = self.dims
        mt, nt = -(-m // tb.rows), -(-n // tb.cols)
        if len(self.beats) < mt * nt * k:
            return
        c = np.zeros((mt * tb.rows, nt * tb.cols), dtype=np.int64)
        for t in range(mt * nt):
            steps = self.beats[t * k:(t + 1) * k]
            a = np.array([unpack(w, tb.rows, tb.in_bits) for w, _ in steps]).T
            b = np.array([unpack(w, tb.cols, tb.in_bits) for _, w in steps])
            tm, tn = divmod(t, nt)
            c[tm * tb.rows:(tm + 1) * tb.rows, tn * tb.cols:(tn + 1) * tb.cols] = gemm(
                a, b, acc_bits=tb.acc_bits, overflow=tb.overflow, in_bits=tb.in_bits)
        self.sb.expect(f"gemm {self.count} ({m}x{k}x{n}) C", c[:m, :n])
        self.count += 1
        self.beats = []


class ResultCollector:
    """Output-monitor callback: assembles each GEMM's row beats into C, checks out_last, hands C to the scoreboard."""

    def __init__(self, tb: "Bench", model: GemmModel, scoreboard: Scoreboard) -> None:
        self.tb, self.model, self.sb = tb, model, scoreboard
        self.rows: list[list[int]] = []
        self.lasts: list[int] = []

    def accept(self, beat: dict[str, int]) -> None:
        tb = self.tb
        if not self.model.shapes:
            raise AssertionError(f"output beat {beat} before any GEMM was accepted")
        self.rows.append(unpack(beat["out_data"], tb.cols, tb.acc_bits))
        self.lasts.append(beat["out_last"])
        m, k, n = self.model.shapes[0]
        count = len(tile_rows(m, n, tb.rows, tb.cols))
        if len(self.rows) < count:
            return
        where = f"gemm {self.sb.checked} ({m}x{k}x{n})"
        assert self.lasts == [0] * (count - 1) + [1], f"{where}: out_last pattern {self.lasts}"
        self.model.shapes.popleft()
        self.sb.check(assemble(self.rows, m, n, tb.rows, tb.cols))
        self.rows, self.lasts = [], []


class Bench:
    """DUT geometry read from the DUT itself (checked against the requested parameters), plus stimulus."""

    def __init__(self, dut):
        self.dut = dut
        p = parameters(dut, ("ROWS", "COLS", "IN_BITS", "ACC_BITS", "SATURATE"), CFG["params"])
        self.rows, self.cols = p["ROWS"], p["COLS"]
        self.in_bits, self.acc_bits = p["IN_BITS"], p["ACC_BITS"]
        self.overflow = "saturate" if p["SATURATE"] else "wrap"
        widths = {"in_a": self.rows * self.in_bits, "in_b": self.cols * self.in_bits,
                  "out_data": self.cols * self.acc_bits}
        for port, width in widths.items():
            got = len(getattr(dut, port))
            assert got == width, f"port {port} is {got} bits, parameters {p} imply {width}"
        self.inputs = {name: getattr(dut, name) for name in ("cfg_m", "cfg_k", "cfg_n", "in_a", "in_b")}
        seed = CFG.get("seed", 0)
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.lo, self.hi = -(1 << (self.in_bits - 1)), (1 << (self.in_bits - 1)) - 1

    async def start(self) -> None:
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        dut.in_valid.value = 0
        dut.out_ready.value = 0
        await self.reset()

    async def reset(self, cycles: int = 2) -> None:
        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0

    def driver(self, p_stall: float) -> StreamDriver:
        return StreamDriver(self.dut.clk, self.dut.in_valid, self.dut.in_ready, self.inputs, stall=p_stall,
                            rng=self.rng)

    def operand(self, shape: tuple[int, int], kind: str = "random") -> np.ndarray:
        """Random INT operands, or edge patterns: all minimum, mixed extremes."""
        if kind == "min":
            return np.full(shape, self.lo, dtype=np.int64)
        if kind == "extremes":
            return self.np_rng.choice(np.array([self.lo, self.hi, self.lo + 1, -1, 0, 1]), size=shape)
        return self.np_rng.integers(self.lo, self.hi + 1, size=shape)

    def random_gemm(self, max_k: int) -> tuple[np.ndarray, np.ndarray]:
        m = self.rng.randint(1, 2 * self.rows + 1)
        n = self.rng.randint(1, 2 * self.cols + 1)
        k = self.rng.randint(1, max_k)
        kind = self.rng.choice(["random"] * 6 + ["min", "extremes"])
        return self.operand((m, k), kind), self.operand((k, n), self.rng.choice([kind, "random"]))

    async def stream(self, gemms: list[tuple[np.ndarray, np.ndarray]], p_in: float, p_out: float) -> int:
        """Stream GEMMs back to back, check every result and out_last; returns the number of tiles."""
        d = self.dut
        beats = [_values(beat) for a, b in gemms for beat in gemm_beats(a, b, self.rows, self.cols, self.in_bits)]
        out_beats = sum(len(tile_rows(a.shape[0], b.shape[1], self.rows, self.cols)) for a, b in gemms)
        sb = Scoreboard("itx_gemm_ctrl")
        model = GemmModel(self, sb)
        inputs = StreamMonitor(d.clk, d.in_valid, d.in_ready, self.inputs, name="input")
        outputs = StreamMonitor(d.clk, d.out_valid, d.out_ready, {"out_data": d.out_data, "out_last": d.out_last},
                                name="output")
        inputs.add_callback(model.accept).start()
        outputs.add_callback(ResultCollector(self, model, sb).accept).start()
        sink = Backpressure(d.clk, d.out_ready, stall=p_out, rng=self.rng).start()
        cocotb.start_soon(self.driver(p_in).send(beats))
        budget = (len(beats) + out_beats + 4 * (self.rows + self.cols) * len(gemms) + 100)
        budget = int(budget * 20 / (1 - max(p_in, p_out)))
        await sb.wait(len(gemms), timeout_ns=budget * 10)
        sink.stop()
        for _ in range(3):  # nothing more may come out
            await RisingEdge(d.clk)
            assert not d.out_valid.value, "spurious output beat after the last GEMM"
        inputs.stop()
        outputs.stop()
        sb.finish()
        assert model.count == len(gemms), f"controller accepted {model.count} GEMMs, {len(gemms)} were sent"
        return sum(-(-a.shape[0] // self.rows) * -(-b.shape[1] // self.cols) for a, b in gemms)


@cocotb.test(timeout_time=20, timeout_unit="ms")  # a hang fails instead of spinning
async def random_gemms(dut):
    """Random shapes and values (incl. edge patterns), back to back, random stalls on both handshakes."""
    tb = Bench(dut)
    await tb.start()
    tiles, batch = 0, 0
    while tiles < CFG["tiles"]:
        gemms = [tb.random_gemm(CFG["max_k"]) for _ in range(8)]
        p_in, p_out = tb.rng.choice([(0.0, 0.0), (0.3, 0.3), (0.6, 0.1), (0.1, 0.7)])
        tiles += await tb.stream(gemms, p_in, p_out)
        batch += 1
    dut._log.info("random_gemms: %d tiles in %d batches, zero mismatches", tiles, batch)


@cocotb.test(timeout_time=20, timeout_unit="ms")  # a hang fails instead of spinning
async def edge_gemms(dut):
    """All-minimum, mixed extremes, K = 1, K not a multiple of the array, M or N smaller than the array,
    and K long enough to overflow a narrow accumulator (wrap/saturate)."""
    tb = Bench(dut)
    await tb.start()
    r, c = tb.rows, tb.cols
    shapes = [(r, 1, c), (1, 1, 1), (r, r + c + 3, c), (max(1, r - 1), 5, max(1, c - 1)), (1, 2 * (r + c), c),
              (r + 1, 3, 1), (2 * r + 1, r + c - 1, 2 * c + 1), (r, 40, c)]
    gemms = []
    for m, k, n in shapes:
        for ka, kb in (("min", "min"), ("extremes", "extremes"), ("random", "min"), ("random", "random")):
            gemms.append((tb.operand((m, k), ka), tb.operand((k, n), kb)))
    tiles = await tb.stream(gemms, 0.0, 0.0)
    tiles += await tb.stream(gemms, 0.4, 0.4)
    dut._log.info("edge_gemms: %d tiles, zero mismatches", tiles)


@cocotb.test(timeout_time=20, timeout_unit="ms")  # a hang fails instead of spinning
async def reset_mid_stream(dut):
    """Reset while tiles are in flight (input and output side), then a clean GEMM must be exact."""
    tb = Bench(dut)
    await tb.start()
    for cut in (1, tb.rows + tb.cols, 3 * (tb.rows + tb.cols)):
        a, b = tb.operand((2 * tb.rows, 7)), tb.operand((7, 2 * tb.cols))
        beats = [_values(beat) for beat in gemm_beats(a, b, tb.rows, tb.cols, tb.in_bits)]
        drain = Backpressure(dut.clk, dut.out_ready, stall=0.5, rng=tb.rng).start()
        await with_timeout(tb.driver(0.2).send(beats, stop_after=cut), 1000 * (cut + tb.rows + tb.cols), "ns")
        for _ in range(tb.rng.randint(0, tb.rows + tb.cols)):
            await RisingEdge(dut.clk)
        drain.stop()
        await tb.reset(tb.rng.randint(1, 3))
        dut.out_ready.value = 1
        await RisingEdge(dut.clk)
        assert not dut.out_valid.value, f"output still valid after reset (cut after {cut} beats)"
        await tb.stream([tb.random_gemm(CFG["max_k"]), (a, b)], 0.2, 0.2)
