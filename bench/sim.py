"""`itx bench sim`: Icarus speed of the systolic array (simulated cycles/s, MAC/s) and PE utilisation
MACs / (PEs x cycles) over K, measured on the $readmemh fast path (sim/hdl/itx_tb_mem.v, no stalls)."""
from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from itx.golden.config import MAX_ARRAY_DIM, load_hw_config
from itx.golden.vectors import read_manifest, write_manifest
from itx.errors import ArgumentParser, int_in, int_tuples
from itx.sim.runner import MemBench


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


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="itx bench sim", description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="4x4,8x8,16x16", help="array shapes RxC, comma separated")
    p.add_argument("--ks", default="64,128,256,512", help="K values of the utilisation sweep")
    p.add_argument("--tiles", type=int_in(1, 1024), default=8, help="output tiles per GEMM (back to back) in the sweep")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    cfg = load_hw_config()
    shapes = int_tuples(args.shapes, "--shapes", "RxC", 1, MAX_ARRAY_DIM)
    ks = [k for (k,) in int_tuples(args.ks, "--ks", "K", 1, 1 << 16)]
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
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
