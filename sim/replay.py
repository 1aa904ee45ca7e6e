"""The replay test of the non-GEMM unit benches (`itx sim model`): every op of one kind of a captured sentence
(itx.golden.capture's ops.npz, golden's own inputs of that op) streamed through the unit with no stalls, its output
compared with golden's whole, every mismatch counted (not stopped at), and the cycles from the op's first input beat
to its last output beat; one JSON list of per-op results for itx.sim.ops_run. The cocotb side only: the benches
(sim/tb_*.py) say how an op becomes beats and what golden expects."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from itx.golden.errors import compare
from itx.sim.kit import unpack


async def stream(dut, beats: list[dict], outputs: int, scale_ports: tuple[str, ...] = ()) -> tuple[list, list, int]:
    """Drive `beats` back to back (no stalls, out_ready high) and collect `outputs` output beats: (data words, the
    `scale_ports` values at each out_last, cycles from the first beat presented to the last output beat). Both
    sides sleep on in_ready / out_valid instead of polling every cycle: a unit that computes for thousands of cycles
    per row costs no Python per idle cycle (after RisingEdge(clk) the signals read as they were at the edge)."""
    from cocotb import start_soon
    from cocotb.triggers import RisingEdge, with_timeout
    from cocotb.utils import get_sim_time

    words, scales = [], []
    dut.out_ready.value = 1

    async def drive():
        for beat in beats:
            for port, value in beat.items():
                getattr(dut, port).value = value
            dut.in_valid.value = 1
            await RisingEdge(dut.clk)
            while not dut.in_ready.value:           # not taken at this edge: wait for ready, then the next edge
                await RisingEdge(dut.in_ready)
                await RisingEdge(dut.clk)
        dut.in_valid.value = 0

    async def collect():
        while len(words) < outputs:
            if not dut.out_valid.value:
                await RisingEdge(dut.out_valid)
            await RisingEdge(dut.clk)
            if dut.out_valid.value:
                words.append(int(dut.out_data.value))
                if dut.out_last.value:
                    scales.append(tuple(int(getattr(dut, p).value) for p in scale_ports))

    t0 = get_sim_time("ns")
    start_soon(drive())
    await with_timeout(collect(), 10 * (400 + 200 * len(beats)), "ns")
    return words, scales, int(get_sim_time("ns") - t0) // 10


def rows_of(words: list[int], rows: int, n: int, lanes: int, bits: int) -> np.ndarray:
    """Output beats, each row's ceil(n / lanes) consecutive, as [rows, n] (padding lanes dropped)."""
    beats = -(-n // lanes)
    flat = np.array([unpack(w, lanes, bits) for w in words], dtype=np.int64).reshape(rows, beats * lanes)
    return flat[:, :n]


def result(op: str, kind: str, tensor: str, expected: np.ndarray, got: np.ndarray, cycles: int,
           scale: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """One op's record: shape, cycles, mismatches and the first one (index into the op's output tensor); `scale`:
    (expected, got) output scales, compared when the values match."""
    got = got.reshape(expected.shape)
    d = compare(op, tensor, expected, got)
    compared = tensor if scale is None else f"{tensor}+scale"
    rec = {"op": op, "kind": kind, "shape": list(expected.shape), "cycles": cycles, "compared": compared,
           "mismatches": 0 if d is None else d.count,
           "first": None if d is None else {"tensor": d.tensor, "index": list(d.index), "expected": d.expected,
                                            "got": d.got},
           "_got": {"values": got}}     # what the unit computed, for write's cfg["outputs"] (itx.sim.chain)
    if scale is not None:
        want, have = (np.asarray(s, np.float32).reshape(-1) for s in scale)
        rec["_got"]["scale"] = have
        bad = np.flatnonzero(want != have)
        if d is None and bad.size:
            i = int(bad[0])
            rec.update(mismatches=int(bad.size), first={"tensor": f"{tensor} scale", "index": [i],
                                                        "expected": float(want[i]), "got": float(have[i])})
    return rec


def ops_of(data, kind: str, cfg: dict) -> list[str]:
    """The ops of `kind` in the capture that cfg["ops"] selects, in the model's order."""
    return [op for op in map(str, data["ops"]) if str(data[f"{op}/kind"]) == kind and op in cfg["ops"]]


def knobs(cfg: dict) -> dict:
    """The integer model's knobs the sentence was captured with (itx.sim.ops_run passes IntConfig's)."""
    return cfg.get("knobs", {})


def write(cfg: dict, results: list[dict]) -> None:
    """The replay's results to cfg["replay"] (read by itx.sim.ops_run) and, when cfg["outputs"] names a file, what
    the unit computed for each op (<op>/values, and <op>/scale for the row units) as one .npz."""
    Path(cfg["replay"]).write_text(json.dumps([{k: v for k, v in r.items() if k != "_got"} for r in results],
                                              indent=1) + "\n")
    if cfg.get("outputs"):
        np.savez(cfg["outputs"], **{f"{r['op']}/{k}": v for r in results for k, v in r["_got"].items()})
