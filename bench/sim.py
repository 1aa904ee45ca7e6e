"""`itx bench sim`: Icarus and Verilator side by side on one testbench (MAC/s and their ratio), Icarus speed of the
systolic array (simulated cycles/s, MAC/s) and PE utilisation MACs / (PEs x cycles) over K, measured on the
$readmemh fast paths (sim/hdl/itx_tb_layer.v and itx_tb_mem.v, no stalls)."""
from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from itx.golden.config import MAX_ARRAY_DIM, load_hw_config
from itx.golden.vectors import read_hex, read_manifest, write_manifest
from itx.errors import ArgumentParser, int_in, int_tuples
from itx.sim.model_run import LayerBench
from itx.sim.runner import SIMULATORS, MemBench, beat_counts, simulator_available


def _cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def _measure(cfg, rows: int, cols: int, m: int, k: int, n: int, tmp: Path, seed: int) -> tuple[int, float, float]:
    """(cycles, wall seconds, vvp CPU seconds) for one bit-exact-checked GEMM; CPU time is the fair number
    on a shared machine."""
    rng = np.random.default_rng(seed)
    man = read_manifest(write_manifest(tmp / f"{rows}x{cols}-{m}x{k}x{n}",
                                       [("bench", rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n)))],
                                       in_bits=cfg.in_bits, acc_bits=cfg.acc_bits, overflow=cfg.overflow))
    e = man.gemms[0]
    bench = MemBench(cfg, max(m * k, k * n, m * n), rows, cols)
    start, cpu = time.perf_counter(), _cpu()
    res = bench.run(man.file(e, "a"), man.file(e, "b"), m, k, n, tag="bench")
    secs, cpu = time.perf_counter() - start, _cpu() - cpu
    if not np.array_equal(res.got, man.load(e, "c")):
        raise AssertionError(f"{rows}x{cols} {m}x{k}x{n}: RTL result differs from the golden GEMM")
    return res.cycles, secs, cpu


def _versus(cfg, rows: int, cols: int, m: int, k: int, n: int, tmp: Path, seed: int,
            reps: int, sims: list[str]) -> dict[str, list[float]]:
    """Simulator CPU seconds of `reps` interleaved runs of one GEMM per simulator, each bit-exact-checked; the
    builds (Verilator's C++ compile) happen once, before and outside the timing."""
    rng = np.random.default_rng(seed)
    man = read_manifest(write_manifest(tmp / f"vs-{rows}x{cols}-{m}x{k}x{n}",
                                       [("bench", rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n)))],
                                       in_bits=cfg.in_bits, acc_bits=cfg.acc_bits, overflow=cfg.overflow))
    e, caps = man.gemms[0], (*beat_counts(m, k, n, rows, cols), m * n)
    benches = {sim: LayerBench(cfg, caps, sim, rows, cols) for sim in sims}
    cpu: dict[str, list[float]] = {sim: [] for sim in sims}
    for _ in range(reps):
        for sim, bench in benches.items():
            work = tmp / f"vs-{sim}"
            work.mkdir(exist_ok=True)
            start = _cpu()
            bench.run(man, 0, work)
            cpu[sim].append(_cpu() - start)
            if not np.array_equal(read_hex(work / "0.c.hex", (m, n), cfg.acc_bits), man.load(e, "c")):
                raise AssertionError(f"{sim} {rows}x{cols} {m}x{k}x{n}: RTL result differs from the golden GEMM")
    return cpu


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="itx bench sim", description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="4x4,8x8,16x16", help="array shapes RxC, comma separated")
    p.add_argument("--ks", default="64,128,256,512", help="K values of the utilisation sweep")
    p.add_argument("--tiles", type=int_in(1, 1024), default=8, help="output tiles per GEMM (back to back) in the sweep")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reps", type=int_in(1, 100), default=5, help="interleaved runs per simulator (medians)")
    p.add_argument("--vs-gemm", default="64x256x256", help="MxKxN of the Icarus vs Verilator GEMM")
    args = p.parse_args(argv)
    cfg = load_hw_config()
    shapes = int_tuples(args.shapes, "--shapes", "RxC", 1, MAX_ARRAY_DIM)
    ks = [k for (k,) in int_tuples(args.ks, "--ks", "K", 1, 1 << 16)]
    vs = int_tuples(args.vs_gemm, "--vs-gemm", "MxKxN", 1, 4096)
    if len(vs) != 1:
        raise ValueError(f"--vs-gemm: expected one MxKxN, got {args.vs_gemm!r}")
    (vm, vk, vn), = vs
    missing = {sim: reason for sim in SIMULATORS if (reason := simulator_available(sim))}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        print(f"Icarus vs Verilator on one testbench (itx_tb_layer.v), {vm}x{vk}x{vn} GEMM: median simulator CPU "
              f"seconds of {args.reps} interleaved runs (process start and $readmemh included, builds excluded)")
        for sim, reason in missing.items():
            print(f"{sim}: not measured ({reason})")
        sims = [s for s in SIMULATORS if s not in missing]
        print(f"{'array':>7} " + " ".join(f"{s + ' s':>12} {s + ' MAC/s':>16}" for s in sims)
              + (f" {'verilator/icarus':>17}" if len(sims) == 2 else ""))
        for rows, cols in shapes:
            cpu = _versus(cfg, rows, cols, vm, vk, vn, tmp, args.seed, args.reps, sims)
            med = {s: statistics.median(v) for s, v in cpu.items()}
            cells = " ".join(f"{med[s]:>12.3f} {vm * vk * vn / med[s]:>16,.0f}" for s in sims)
            ratio = f" {med['icarus'] / med['verilator']:>16.1f}x" if len(sims) == 2 else ""
            print(f"{rows}x{cols:<5} {cells}{ratio}")
        print()
        print(f"Icarus speed, 20x256 @ 256x256 GEMM (in_bits={cfg.in_bits}, acc_bits={cfg.acc_bits}, "
              f"{cfg.overflow}); wall time includes vvp start and $readmemh")
        print("rates per vvp CPU second (wall seconds in brackets: they include other load on the machine)")
        print(f"{'array':>7} {'cycles':>8} {'CPU s':>6} {'wall s':>7} {'cycles/s':>9} {'MAC/s':>10} {'PE-MAC/s':>10}")
        for rows, cols in shapes:
            cycles, secs, cpu = _measure(cfg, rows, cols, 20, 256, 256, tmp, args.seed)
            macs = 20 * 256 * 256
            print(f"{rows}x{cols:<5} {cycles:>8} {cpu:>6.2f} {f'({secs:.2f})':>7} {cycles / cpu:>9,.0f} "
                  f"{macs / cpu:>10,.0f} {rows * cols * cycles / cpu:>10,.0f}")
        print(f"\nPE utilisation = MACs / (PEs x cycles); single tile, and {args.tiles} tiles back to back")
        print(f"{'array':>7} " + " ".join(f"{'K=' + str(k) + ' 1t':>9} {'K=' + str(k):>7}" for k in ks))
        for rows, cols in shapes:
            cells = []
            for k in ks:
                one = _measure(cfg, rows, cols, rows, k, cols, tmp, args.seed)[0]
                many = _measure(cfg, rows, cols, rows, k, cols * args.tiles, tmp, args.seed)[0]
                cells.append(f"{k / one:>9.3f} {args.tiles * k / many:>7.3f}")
            print(f"{rows}x{cols:<5} " + " ".join(cells))
    return 0
