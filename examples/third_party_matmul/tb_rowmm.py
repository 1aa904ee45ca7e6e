"""cocotb testbench of rowmm: every GEMM of an itx vector set through its three streams, all of them stalling.

The model sees only what the input monitors saw rowmm accept: B as loaded on w_*, each row of A on s_*; the
golden GEMM of those is the expected row of C. Results are checked in order, then every C against the file."""
from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from itx.sim import kit


class RowModel:
    """Input-monitor callbacks: weight beats fill B, each accepted row of A queues its expected row of C."""

    def __init__(self, vec: kit.VectorSet, p: dict[str, int], results: kit.Scoreboard, lasts: kit.Scoreboard):
        self.vec, self.p, self.results, self.lasts = vec, p, results, lasts
        self.b = np.zeros((p["KDIM"], p["NDIM"]), dtype=np.int64)
        self.loaded = self.gemm = self.row = 0

    def weight(self, beat: dict[str, int]) -> None:
        self.b[self.loaded % self.p["KDIM"]] = kit.unpack(beat["data"], self.p["NDIM"], self.p["DW"])
        self.loaded += 1

    def activation(self, beat: dict[str, int]) -> None:
        a = np.array([kit.unpack(beat["data"], self.p["KDIM"], self.p["DW"])])
        layer = self.vec.gemms[self.gemm].layer
        self.results.expect(f"{layer}.c", self.vec.gemm(a, self.b)[0], at=(self.row, 0))
        self.lasts.expect(f"{layer} m_tlast", np.array([beat["last"]]), at=(self.row,))
        self.gemm, self.row = (self.gemm + 1, 0) if beat["last"] else (self.gemm, self.row + 1)


@cocotb.test(timeout_time=1, timeout_unit="ms")  # a hang fails instead of spinning
async def manifest_gemms(dut):
    args = kit.test_args()
    vec = kit.read_vectors(args["vectors"])
    p = kit.parameters(dut, ["DW", "ACCW", "KDIM", "NDIM"])
    assert (p["DW"], p["ACCW"], vec.overflow) == (vec.in_bits, vec.acc_bits, "wrap"), f"{p} vs {vec.path}"
    results, lasts = kit.Scoreboard("rowmm C"), kit.Scoreboard("rowmm m_tlast")
    model, got = RowModel(vec, p, results, lasts), []

    def output(beat: dict[str, int]) -> None:
        got.append(kit.unpack(beat["data"], p["NDIM"], p["ACCW"]))
        results.check(np.array(got[-1]))
        lasts.check(np.array([beat["last"]]))

    clk, stall = dut.aclk, args.get("stall", 0.3)
    weights = kit.StreamDriver(clk, dut.w_tvalid, dut.w_tready, {"data": dut.w_tdata}, stall=stall, rng=1)
    rows = kit.StreamDriver(clk, dut.s_tvalid, dut.s_tready, {"data": dut.s_tdata, "last": dut.s_tlast},
                            stall=stall, rng=2)
    kit.StreamMonitor(clk, dut.w_tvalid, dut.w_tready, weights.data).add_callback(model.weight).start()
    kit.StreamMonitor(clk, dut.s_tvalid, dut.s_tready, rows.data).add_callback(model.activation).start()
    kit.StreamMonitor(clk, dut.m_tvalid, dut.m_tready, {"data": dut.m_tdata, "last": dut.m_tlast}) \
        .add_callback(output).start()
    kit.Backpressure(clk, dut.m_tready, stall=stall, rng=3).start()

    cocotb.start_soon(Clock(clk, 10, unit="ns").start())
    dut.w_tvalid.value = dut.s_tvalid.value = dut.aresetn.value = 0
    await ClockCycles(clk, 2)
    dut.aresetn.value = 1
    for g in vec.gemms:
        await weights.send([{"data": kit.pack(r, p["DW"])} for r in g.b])
        await rows.send([{"data": kit.pack(r, p["DW"]), "last": int(i == len(g.a) - 1)} for i, r in enumerate(g.a)])
    count = sum(len(g.a) for g in vec.gemms)
    await results.wait(count, timeout_ns=100 * count * (p["KDIM"] + 2))   # several times what the stalls need
    results.finish()
    lasts.finish()
    start = 0
    for g in vec.gemms:  # what came out is the manifest's C, row for row: these vectors were verified
        kit.compare(f"{vec.path.parent.name}/{g.layer}.c", g.c, np.array(got[start:start + len(g.a)]))
        start += len(g.a)
    assert start == len(got), f"{len(got) - start} result rows more than the manifest's"
