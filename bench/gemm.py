"""`itx bench gemm`: exact INT8 GEMM (golden.gemm) vs numpy float32 GEMM, same shapes, same run.

"exact" converts both int8 operands every call; "exact, B prepared" is how the integer model runs its weight GEMMs
(golden.gemm.prepare: B range-checked and converted once), the float32 GEMM being given float32 operands."""
from __future__ import annotations

import os
import statistics
import time

import numpy as np

from golden.gemm import gemm, prepare
from itx.errors import ArgumentParser

DEFAULT_SHAPES = "64x512x512,256x512x2048,512x2048x512"


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    """'MxKxN,...' -> [(M, K, N), ...]; a malformed entry is a one-line error naming it."""
    shapes = []
    for item in text.split(","):
        dims = item.strip().lower().split("x")
        if len(dims) != 3 or not all(d.isdigit() and int(d) > 0 for d in dims):
            raise ValueError(f"--shapes: expected MxKxN with positive integers, got {item!r}")
        shapes.append(tuple(int(d) for d in dims))
    return shapes


def blas_info() -> str:
    from threadpoolctl import threadpool_info

    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(f"BLAS: {i['internal_api']} {i['version']} kernel={i.get('architecture')} "
                     f"threads={i['num_threads']}" for i in libs) or "BLAS: none found"


def median_times(fns: list, repeat: int) -> list[float]:
    """Median seconds of each fn; runs are interleaved so that load from other processes hits all alike."""
    for fn in fns:  # warm-up: BLAS threads, allocator, caches
        fn()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="itx bench gemm", description=__doc__.split(":", 1)[1].strip(),
                                epilog="1 GOP = 2*M*K*N/1e9 operations; times are medians of interleaved runs.")
    p.add_argument("--shapes", default=DEFAULT_SHAPES, help=f"comma-separated MxKxN (default {DEFAULT_SHAPES})")
    p.add_argument("--repeat", type=int, default=15, help="timed repetitions per kernel (default 15)")
    p.add_argument("--seed", type=int, default=0, help="operand seed (default 0)")
    args = p.parse_args(argv)
    if args.repeat < 1:
        raise ValueError(f"--repeat must be >= 1, got {args.repeat}")
    shapes = parse_shapes(args.shapes)
    env = {k: os.environ.get(k, "unset") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print(f"numpy {np.__version__}; {blas_info()}; " + " ".join(f"{k}={v}" for k, v in env.items()))
    print(f"{'M x K x N':>16} {'exact ms':>9} {'exact GOP/s':>12} {'f32 ms':>9} {'f32 GOP/s':>10} {'ratio':>6} "
          f"{'B prepared ms':>14} {'ratio':>6}")
    rng = np.random.default_rng(args.seed)
    for idx, (m, k, n) in enumerate(shapes):
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        af, bf = a.astype(np.float32), b.astype(np.float32)
        bp = prepare(b.copy())
        t_exact, t_f32, t_prep = median_times([lambda: gemm(a, b), lambda: np.matmul(af, bf), lambda: gemm(a, bp)],
                                              args.repeat)
        gop = 2 * m * k * n / 1e9
        print(f"{f'{m}x{k}x{n}':>16} {t_exact * 1e3:9.3f} {gop / t_exact:12.2f} {t_f32 * 1e3:9.3f} "
              f"{gop / t_f32:10.2f} {t_f32 / t_exact:6.3f} {t_prep * 1e3:14.3f} {t_f32 / t_prep:6.3f}")
        if idx == 0:
            a32, b32 = a.astype(np.int32), b.astype(np.int32)
            (t_int,) = median_times([lambda: np.matmul(a32, b32)], min(args.repeat, 3))
            # int32 holds the exact sums while K * 2^14 < 2^31.
            same = np.array_equal(gemm(a, b), np.matmul(a32, b32)) if k < 1 << 17 else "n/a (K too large)"
            print(f"{'':>16} naive numpy int32 matmul: {t_int * 1e3:.3f} ms, {gop / t_int:.3f} GOP/s, "
                  f"ratio {t_f32 / t_int:.4f}; exact GEMM equals it: {same}")
    return 0
