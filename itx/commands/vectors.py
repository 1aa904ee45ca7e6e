"""`itx vectors`: write golden GEMM vectors ($readmemh hex + JSON manifest), validate them, run them on the RTL."""
from __future__ import annotations

import re
import time
from dataclasses import replace

import numpy as np

from itx.golden.config import MAX_ARRAY_DIM, OVERFLOW_MODES, load_hw_config
from itx.golden.errors import Mismatch, UserError
from itx.golden.vectors import check_vector_dir, read_manifest, write_manifest
from itx.commands.eval import add_int_args
from itx.errors import int_in, nonempty

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
    cfg = load_hw_config()
    asked = {k: v for k, v in (("in_bits", args.in_bits), ("acc_bits", args.acc_bits), ("overflow", args.overflow))
             if v is not None}
    try:
        cfg = replace(cfg, **asked)     # HwConfig checks the ranges the RTL supports
    except ValueError as exc:
        raise UserError(f"--{'/--'.join(k.replace('_', '-') for k in asked)}: {exc}") from None
    shapes = [_shape(s) for s in args.shape] or [(cfg.rows, 16, cfg.cols)]
    digits = [(b + 3) // 4 + 1 for b in (cfg.in_bits, cfg.acc_bits)]
    disk = sum((m * k + k * n) * digits[0] + m * n * digits[1] for m, k, n in
               (shapes[i % len(shapes)] for i in range(args.count)))
    if disk > MAX_BYTES:
        raise UserError(f"--count {args.count} x --shape: {disk / (1 << 30):.1f} GiB of hex files, more than the "
                        f"{MAX_BYTES >> 30} GiB allowed")
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
    from itx.sim.model_run import read_requant
    from itx.sim.requant import requant_model

    man = read_manifest(args.manifest).nonempty()
    for e in man.gemms:
        man.verify(e)       # every file valid and C recomputed from A, B with the golden GEMM
    requant = read_requant(man)
    for i, rq in requant.items():   # every expected Y recomputed from C and its factors (what itx_requant computes)
        e = man.gemms[i]
        want, _ = requant_model(man.load(e, "c"), rq.factors((e.m, e.n)), man.acc_bits, man.in_bits)
        got = rq.load("y", (e.m, e.n), man.in_bits)
        bad = np.argwhere(want != got)
        if bad.size:
            r, c = (int(v) for v in bad[0])
            raise Mismatch(f"{rq.files['y']}: gemm {e.layer!r} Y[{r}, {c}]: expected {int(want[r, c])} (re-scaling of C "
                           f"by its factors), file has {int(got[r, c])} [{len(bad)} of {got.size} differ]")
    ys = f", every Y of {len(requant)} re-scaled GEMMs equal to the re-scaling of C" if requant else ""
    print(f"{man.path}: {len(man.gemms)} GEMMs, all files valid, every C equal to the golden gemm(A, B){ys}")
    return 0


def _run(args) -> int:
    from itx.sim.runner import run_manifest

    man = read_manifest(args.manifest)
    start = time.perf_counter()
    report = run_manifest(man, load_hw_config(), rows=args.rows, cols=args.cols, seed=args.seed,
                          stall_in=args.stall_in, stall_out=args.stall_out)
    secs = time.perf_counter() - start
    macs = sum(e.m * e.k * e.n for e in man.gemms)
    cycles = sum(c for _, c in report)
    print(f"{man.path}: {len(report)} GEMMs bit-exact, {cycles} cycles, {macs} MACs, {secs:.2f} s "
          f"wall incl. build ({macs / secs:,.0f} MAC/s)")
    return 0


def _model(args) -> int:
    from itx.golden import capture
    from itx.golden.model import load, model_dir
    from itx.golden.tokenizer import Tokenizer
    from itx import data
    from itx.commands.eval import int_config

    rows = data.read_split(args.split, args.pair)
    if not 0 <= args.sentence < len(rows):
        raise ValueError(f"--sentence must be in 0..{len(rows) - 1} for {args.split} {args.pair}, got {args.sentence}")
    check_vector_dir(args.out)
    tok, icfg = Tokenizer(), int_config(args)
    cfg, weights = load(model_dir(args.model))
    _, _, src, ref = rows[args.sentence][:4]
    cap = capture.capture(cfg, weights, icfg, tok.encode_source(src, args.pair[3:]), tok.encode_target(ref))
    path = capture.write(cap, args.out, icfg, source={"sentence": args.sentence, "pair": args.pair,
                                                      "split": args.split, "model": args.model,
                                                      "int_config": icfg.describe()})
    worst = sorted(cap.mse().items(), key=lambda kv: -kv[1][1])[:3]
    print(f"wrote {len(cap.gemms)} GEMMs of {args.model} ({icfg.describe()}) on {args.split} {args.pair} sentence "
          f"{args.sentence} to {path}; activations.npz + mse.json beside it; largest relative MSE: "
          + ", ".join(f"{n} {r:.2e}" for n, (_, r) in worst))
    return 0


def register(sub) -> None:
    p = sub.add_parser("vectors", help="golden GEMM vectors: write, check, run on the RTL")
    vsub = p.add_subparsers(dest="action", required=True)
    g = vsub.add_parser("gemm", help="write random GEMMs (widths from hw/config.toml unless given) with golden "
                        "results")
    g.add_argument("--out", type=nonempty, required=True, help="output directory (manifest.json + *.hex), "
                   "replaced as a whole")
    g.add_argument("--shape", action="append", default=[], help="MxKxN, repeatable (cycled over --count)")
    g.add_argument("--count", type=int_in(1, 100_000), default=1)
    g.add_argument("--seed", type=int_in(0), default=0)
    g.add_argument("--in-bits", type=int, help="operand width (default: hw/config.toml)")
    g.add_argument("--acc-bits", type=int, help="accumulator width (default: hw/config.toml)")
    g.add_argument("--overflow", choices=OVERFLOW_MODES, help="accumulator overflow (default: hw/config.toml)")
    g.set_defaults(func=_gemm)
    m = vsub.add_parser("model", help="capture one test sentence through the integer model: every GEMM as "
                        "vectors, FP32 vs integer activations and their MSE")
    m.add_argument("--sentence", type=int_in(0), required=True, help="index into the split")
    m.add_argument("--out", type=nonempty, required=True, help="output directory, replaced as a whole")
    m.add_argument("--pair", choices=("en-de", "en-fr"), default="en-de")
    m.add_argument("--split", choices=("test", "dev"), default="test")
    m.add_argument("--model", default="integer", help="committed model name or exported model dir")
    add_int_args(m)
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
    r.set_defaults(func=_run)
