"""`itx sim model`: every GEMM of a real sentence through the RTL (array + re-scaling unit), layer by layer."""
from __future__ import annotations

import re
import time
from pathlib import Path


def _array(text: str) -> tuple[int, int]:
    from itx.golden.config import MAX_ARRAY_DIM

    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match or not all(1 <= int(d) <= MAX_ARRAY_DIM for d in match.groups()):
        raise ValueError(f"--array: expected ROWSxCOLS with integers in 1..{MAX_ARRAY_DIM}, got {text!r}")
    return int(match[1]), int(match[2])


def _shown(path: Path) -> str:
    """A path for the committed run summary: relative to the repository when inside it (no machine's checkout path)."""
    from itx.golden.config import ROOT

    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _model(args) -> int:
    from itx.golden.config import load_hw_config
    from itx.golden.int_config import IntConfig
    from itx.golden.vectors import check_vector_dir, read_manifest
    from itx.sim.model_run import (check_report_path, default_vectors_dir, report_path, rtl_config, run_layers,
                               sentence_vectors, write_report)

    cfg = load_hw_config()
    rows, cols = _array(args.array) if args.array else (cfg.rows, cfg.cols)
    report = check_report_path(Path(args.report) if args.report else report_path(args.sentence))  # before the run
    if args.vectors and (Path(args.vectors) / "manifest.json").is_file():
        if args.rescale:
            raise ValueError(f"--rescale applies to a capture; {args.vectors} already holds vectors (their factors "
                             "are used)")
        man, cap_s = read_manifest(args.vectors), 0.0
        man.check_source("--vectors", sentence=args.sentence, pair=args.pair, model=args.model, layers=args.layer)
        rescale = man.source.get("rescale", "as captured in the vectors")
    else:
        rescale = args.rescale or IntConfig.rescale
        icfg = IntConfig(rescale=rescale)
        cfg = rtl_config(cfg, icfg)   # the RTL's ACC_BITS / SATURATE are the captured configuration's
        out = check_vector_dir(Path(args.vectors) if args.vectors else default_vectors_dir(args.sentence, rescale))
        man, cap_s = sentence_vectors(args.sentence, cfg, out, args.model, args.pair, tuple(args.layer), icfg)
        print(f"captured {len(man.gemms)} GEMMs of sentence {args.sentence} ({rescale} re-scaling) in {cap_s:.1f} s "
              f"-> {man.path}")
    print(f"{'#':>3} {'layer':<34} {'M x K x N':>15} {'cycles':>8} {'util':>6} {'cmp':>4} {'mism':>5}  first mismatch")

    def show(r):
        f = r.first
        first = "" if f is None else f"{f['tensor']}[{f['index'][0]}, {f['index'][1]}] exp {f['expected']} got {f['got']}"
        print(f"{r.index:>3} {r.layer:<34} {'x'.join(map(str, r.shape)):>15} {r.cycles:>8} {r.utilisation:>6.1%} "
              f"{r.tensor:>4} {r.mismatches:>5}  {first}", flush=True)

    start = time.perf_counter()
    results = run_layers(man, cfg, args.sim, rows, cols, args.jobs, progress=show)
    secs = time.perf_counter() - start
    bad = [r for r in results if r.mismatches]
    meta = {"title": f"sentence {args.sentence} ({args.pair}, model {args.model})", "simulator": args.sim,
            "array": f"{rows}x{cols}", "rescale": rescale, "vectors": _shown(man.path), "gemms_run": len(results),
            "gemms_total": len(man.gemms), "cycles": sum(r.cycles for r in results),
            "macs": sum(r.shape[0] * r.shape[1] * r.shape[2] for r in results),
            "rtl_wall_s": round(secs, 2), "status": "MISMATCH" if bad else "bit-exact"}
    jpath, mpath = write_report(results, meta, report)
    print(f"{len(results)} of {len(man.gemms)} GEMMs, {meta['cycles']} cycles, {meta['macs']} MACs, RTL wall time "
          f"{secs:.1f} s under {args.sim}; report {jpath} and {mpath}")
    if bad:
        print(f"FAIL: gemm {bad[0].index} ({bad[0].layer}): {bad[0].mismatches} mismatches; stopped there")
        return 1
    print("PASS: every compared tensor bit-exact")
    return 0


def register(sub) -> None:
    from itx.golden.quant import RESCALE_MODES
    from itx.errors import int_in, nonempty

    p = sub.add_parser("sim", help="RTL simulation of a real model, layer by layer")
    ssub = p.add_subparsers(dest="action", required=True)
    m = ssub.add_parser("model", help="every GEMM of one captured sentence through the RTL, compared bit for bit")
    m.add_argument("--sentence", type=int_in(0), required=True, help="line of the test split (0-based)")
    m.add_argument("--array", help="ROWSxCOLS (default: hw/config.toml)")
    m.add_argument("--sim", choices=("icarus", "verilator"), default="icarus")
    m.add_argument("--model", default="integer", help="models/<name> or a path (default integer)")
    m.add_argument("--pair", default="en-de", choices=("en-de", "en-fr"))
    m.add_argument("--rescale", choices=RESCALE_MODES, help="Eq. 10 re-scaling of the captured integer model "
                   "(IntConfig.rescale) and so of itx_requant: paper ceil divisor (sequential divider), pow2 shift, "
                   "dyadic multiplier + shift (default), tflite / tflite_single (TFLite's multiplier, double / single rounding)")
    m.add_argument("--layer", action="append", default=[], type=nonempty, help="only GEMMs whose name starts with this "
                   "(repeatable), e.g. enc.0.")
    m.add_argument("--vectors", type=nonempty, help="vector directory: read if it holds a manifest (it must record "
                   "this sentence, pair, model and --layer), else captured into it")
    m.add_argument("--report", type=nonempty, help="report path without suffix (default reports/sim/sentence<i>)")
    m.add_argument("--jobs", type=int_in(1, 64), default=1, help="simulator processes in parallel (default 1)")
    m.set_defaults(func=_model)
