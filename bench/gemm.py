"""`itx bench gemm`: exact INT8 GEMM (itx.golden.gemm) on every available backend vs numpy float32 GEMM, same shapes,
same run.

Per backend (ITX_GEMM values, itx.golden.gemm.BACKENDS): "exact" converts both int8 operands every call; "prepared" is
how the integer model runs its weight GEMMs (itx.golden.gemm.prepare: B range-checked and converted, for the library
pre-packed, once), the float32 GEMM being given float32 operands. Ratios are float32 time / exact time (> 1: the
exact GEMM is faster). BLAS and the library run with the same thread count (--threads)."""
from __future__ import annotations

import os
import statistics
import time

import numpy as np

from itx.golden import gemm as G
from itx.errors import ArgumentParser, int_tuples

# The model's encoder-sized GEMMs, then decode steps (M = 1 and 16 sentences x 1 position): projections, FFN, logits.
DEFAULT_SHAPES = "64x512x512,256x512x2048,512x2048x512,1x256x256,16x256x256,1x256x5000,16x256x5000"


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    """'MxKxN,...' -> [(M, K, N), ...]; a malformed entry is a one-line error naming it."""
    return int_tuples(text, "--shapes", "MxKxN")


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


def available_backends() -> list[str]:
    """The backends that are installed and pass their self-check here (one notice on stderr for any that is not)."""
    names = [name for name in G.BACKENDS if G.set_backend(name) == name]
    G.set_backend()
    return names


def timed_on(name: str, fn):
    """fn run with backend `name` in effect (the switch is a dict update, ~1 us)."""
    def run():
        G.set_backend(name)
        return fn()
    return run


def main(argv: list[str] | None = None) -> int:
    from threadpoolctl import threadpool_limits

    p = ArgumentParser(prog="itx bench gemm", description=__doc__.split(":", 1)[1].strip(),
                                epilog="1 GOP = 2*M*K*N/1e9 operations; times are medians of interleaved runs.")
    p.add_argument("--shapes", default=DEFAULT_SHAPES, help=f"comma-separated MxKxN (default {DEFAULT_SHAPES})")
    p.add_argument("--repeat", type=int, default=15, help="timed repetitions per kernel (default 15)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS (and so library) threads (default 1, the integer model's policy: on a busy 2-core "
                        "machine 2-thread OpenBLAS spin-waits, measured 0.07 GOP/s)")
    p.add_argument("--seed", type=int, default=0, help="operand seed (default 0)")
    args = p.parse_args(argv)
    if args.repeat < 1:
        raise ValueError(f"--repeat must be >= 1, got {args.repeat}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    shapes = parse_shapes(args.shapes)
    with threadpool_limits(args.threads, user_api="blas"):
        return _run(shapes, args)


def _run(shapes, args) -> int:
    env = {k: os.environ.get(k, "unset") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", G.BACKEND_ENV)}
    backends = available_backends()
    print(f"numpy {np.__version__}; {blas_info()}; " + " ".join(f"{k}={v}" for k, v in env.items()))
    print(f"{G.describe_backend()}; timed here: {', '.join(backends)}")
    cols = "".join(f" {name + ' GOP/s':>17} {'ratio':>6} {'prepared':>9} {'ratio':>6}" for name in backends)
    print(f"{'M x K x N':>16} {'f32 ms':>9} {'f32 GOP/s':>10}{cols}")
    rng = np.random.default_rng(args.seed)
    best = []
    for m, k, n in shapes:
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        af, bf = a.astype(np.float32), b.astype(np.float32)
        bp = G.prepare(b.copy())
        want = a.astype(np.int64) @ b.astype(np.int64)   # numpy's int64 matmul: exact, no BLAS
        fns = [lambda: np.matmul(af, bf)]
        for name in backends:
            G.set_backend(name)
            if not (np.array_equal(G.gemm(a, b), want) and np.array_equal(G.gemm(a, bp), want)):
                raise RuntimeError(f"bench gemm: backend {name} is not exact on {m}x{k}x{n}")
            fns += [timed_on(name, lambda: G.gemm(a, b)), timed_on(name, lambda: G.gemm(a, bp))]
        t_f32, *ts = median_times(fns, args.repeat)
        G.set_backend()
        gop = 2 * m * k * n / 1e9
        line = "".join(f" {gop / t:17.2f} {t_f32 / t:6.3f} {gop / tp:9.2f} {t_f32 / tp:6.3f}"
                       for t, tp in zip(ts[::2], ts[1::2]))
        print(f"{f'{m}x{k}x{n}':>16} {t_f32 * 1e3:9.3f} {gop / t_f32:10.2f}{line}")
        best.append(t_f32 / min(ts[1::2]))
    print(f"exact-prepared / float32 ratio, best backend per shape: min {min(best):.3f}, "
          f"median {statistics.median(best):.3f} (goal >= 2.0 on every shape)")
    return 0
