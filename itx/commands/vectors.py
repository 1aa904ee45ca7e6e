"""`itx vectors`: write golden GEMM vectors ($readmemh hex + JSON manifest), validate them, run them on the RTL."""
from __future__ import annotations

import re
import time

import numpy as np

from itx.golden.config import MAX_ARRAY_DIM
from itx.golden.errors import UserError
from itx.golden.vectors import check_vector_dir, npz_dtype, read_manifest, write_manifest
from itx.errors import int_in, nonempty
from itx.options import add_hw_args, add_sentence_args, hw_config, int_config

# One GEMM's A, B and C as int64 plus their hex text and temporaries: about 40 bytes per element.
BYTES_PER_ELEMENT, MAX_BYTES = 40, 4 << 30


def _shape(text: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)x(\d+)", text)
    if not match or 0 in (dims := tuple(int(g) for g in match.groups())):
        raise ValueError(f"--shape: expected MxKxN with positive integers, got {text!r}")
    m, k, n = dims
    need = BYTES_PER_ELEMENT * (m * k + k * n + m * n)
    if need > MAX_BYTES:
        raise UserError(f"--shape {text}: needs about {need / (1 << 30):.1f} GiB of memory, more than the "
                        f"{MAX_BYTES >> 30} GiB allowed; use a smaller GEMM")
    return dims


def _gemm(args) -> int:
    cfg = hw_config(args)
    shapes = [_shape(s) for s in args.shape] or [(cfg.rows, 16, cfg.cols)]
    # bytes per element: a hex line, plus the value in the .npz
    per = [(b + 3) // 4 + 1 + npz_dtype(b).itemsize for b in (cfg.in_bits, cfg.acc_bits)]
    disk = sum((m * k + k * n) * per[0] + m * n * per[1] for m, k, n in
               (shapes[i % len(shapes)] for i in range(args.count)))
    if disk > MAX_BYTES:
        raise UserError(f"--count {args.count} x --shape: {disk / (1 << 30):.1f} GiB of hex and .npz files, more "
                        f"than the {MAX_BYTES >> 30} GiB allowed")
    check_vector_dir(args.out)
    rng = np.random.default_rng(args.seed)
    lo, hi = -(1 << (cfg.in_bits - 1)), (1 << (cfg.in_bits - 1)) - 1
    gemms = []
    for i in range(args.count):
        m, k, n = shapes[i % len(shapes)]
        gemms.append((f"gemm{i}", rng.integers(lo, hi + 1, (m, k)), rng.integers(lo, hi + 1, (k, n))))
    path = write_manifest(args.out, gemms, in_bits=cfg.in_bits, acc_bits=cfg.acc_bits, overflow=cfg.overflow,
                          seed=args.seed)
    print(f"wrote {len(gemms)} GEMMs to {path}")
    return 0


def _check(args) -> int:
    man = read_manifest(args.manifest).nonempty()
    for e in man.gemms:
        man.verify(e)       # every file valid, C recomputed from A, B, Y from C and its factors, .npz = hex
    rescaled = sum(e.requant is not None for e in man.gemms)
    ys = f", every Y of {rescaled} re-scaled GEMMs equal to the re-scaling of C" if rescaled else ""
    print(f"{man.path}: {len(man.gemms)} GEMMs, all files valid, every C equal to the golden gemm(A, B){ys}, "
          "every .npz equal to its hex files")
    return 0


def _run(args) -> int:
    from itx.sim.runner import run_manifest

    man = read_manifest(args.manifest)
    start = time.perf_counter()
    report = run_manifest(man, hw_config(args), rows=args.rows, cols=args.cols, seed=args.seed,
                          stall_in=args.stall_in, stall_out=args.stall_out)
    secs = time.perf_counter() - start
    macs = sum(e.m * e.k * e.n for e in man.gemms)
    cycles = sum(c for _, c in report)
    print(f"{man.path}: {len(report)} GEMMs bit-exact, {cycles} cycles, {macs} MACs, {secs:.2f} s "
          f"wall incl. build ({macs / secs:,.0f} MAC/s)")
    return 0


def _model(args) -> int:
    from itx.options import capture_sentence

    hw = hw_config(args)
    icfg = int_config(args, hw)
    cap, path = capture_sentence(args, args.out, hw, icfg)
    worst = sorted(cap.mse().items(), key=lambda kv: -kv[1][1])[:3]
    print(f"wrote {len(read_manifest(path).gemms)} GEMMs ({cap.rescaled} with their re-scaling) of {args.model} "
          f"({icfg.describe()}) on {args.split} {args.pair} sentence {args.sentence} to {path}; activations.npz + "
          "mse.json beside it; largest relative MSE: " + ", ".join(f"{n} {r:.2e}" for n, (_, r) in worst))
    return 0


def register(sub) -> None:
    p = sub.add_parser("vectors", help="golden GEMM vectors: write, check, run on the RTL")
    vsub = p.add_subparsers(dest="action", required=True)
    g = vsub.add_parser("gemm", help="write random GEMMs (widths from hw/config.toml or the options) with golden "
                        "results")
    g.add_argument("--out", type=nonempty, required=True, help="output directory (manifest.json + *.hex), "
                   "replaced as a whole")
    g.add_argument("--shape", action="append", default=[], help="MxKxN, repeatable (cycled over --count)")
    g.add_argument("--count", type=int_in(1, 100_000), default=1)
    g.add_argument("--seed", type=int_in(0), default=0)
    add_hw_args(g)
    g.set_defaults(func=_gemm)
    m = vsub.add_parser("model", help="capture one test sentence through the integer model: every GEMM as "
                        "vectors, FP32 vs integer activations and their MSE")
    m.add_argument("--out", type=nonempty, required=True, help="output directory, replaced as a whole")
    add_sentence_args(m)
    m.set_defaults(func=_model)
    c = vsub.add_parser("check", help="validate a manifest and every file it lists (shape, range, sha256)")
    c.add_argument("manifest", type=nonempty)
    c.set_defaults(func=_check)
    r = vsub.add_parser("run", help="run every GEMM of a manifest through the RTL (Icarus) and compare")
    r.add_argument("manifest", type=nonempty)
    r.add_argument("--rows", type=int_in(1, MAX_ARRAY_DIM), help="array rows (default: hw/config.toml)")
    r.add_argument("--cols", type=int_in(1, MAX_ARRAY_DIM), help="array cols (default: hw/config.toml)")
    r.add_argument("--seed", type=int_in(0), default=1, help="seed of the testbench's random stalls")
    r.add_argument("--stall-in", type=int_in(0, 95), default=0, help="input stall percentage")
    r.add_argument("--stall-out", type=int_in(0, 95), default=0, help="output stall percentage")
    add_hw_args(r)
    r.set_defaults(func=_run)
