"""`itx sim model`: every integer op of a real sentence through the RTL, op by op: each GEMM through the array and
the re-scaling unit, then each Poly, attention normalisation, residual add and L1 LayerNorm through its unit, every
unit fed golden's inputs of that op."""
from __future__ import annotations

import re
import time
from pathlib import Path


def _shown(path: Path) -> str:
    """A path for the committed run summary: relative to the repository when inside it (no machine's checkout path)."""
    from itx.golden.config import ROOT

    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _vectors(args, hw):
    """The manifest to run: --vectors if it holds one (recording this sentence), else golden's capture of the
    sentence with the knobs given; returns (manifest, IntConfig description, the IntConfig the non-GEMM units run:
    None when the vectors do not record it)."""
    from itx.golden.errors import UserError
    from itx.golden.int_config import IntConfig
    from itx.golden.requant import STAGE_MODES
    from itx.golden.vectors import MANIFEST, read_manifest
    from itx.options import capture_sentence, given_knobs, int_config
    from itx.sim.ops_run import check_ops_knobs
    from itx.sim.rtl import SIM_BUILD

    if args.vectors and (Path(args.vectors) / MANIFEST).is_file():
        if given_knobs(args):
            raise UserError(f"{given_knobs(args)[0]} applies to a capture; {args.vectors} already holds vectors "
                            "(their factors are used)")
        man = read_manifest(args.vectors)
        man.check_source("--vectors", sentence=args.sentence, pair=args.pair, split=args.split, model=args.model,
                         layers=args.layer)
        knobs = man.source.get("knobs")
        icfg = knobs and IntConfig(**knobs, acc_bits=man.acc_bits, overflow=man.overflow)
        if icfg and not args.gemms_only:
            check_ops_knobs(icfg)
        return man, man.source.get("int_config", "as captured in the vectors"), icfg
    icfg = int_config(args, hw)
    if not args.gemms_only:
        check_ops_knobs(icfg)
    if icfg.match not in STAGE_MODES:
        raise UserError(f"--match {icfg.match}: itx_requant matches scales by one of {', '.join(STAGE_MODES)}")
    label = re.sub(r"[^A-Za-z0-9_.,=-]", "_", icfg.describe())
    out = Path(args.vectors) if args.vectors else \
        SIM_BUILD / "vectors" / f"{args.pair}-sentence{args.sentence}-{label}"
    t0 = time.perf_counter()
    _, path = capture_sentence(args, out, hw, icfg)
    man = read_manifest(path)
    print(f"captured {len(man.gemms)} GEMMs of sentence {args.sentence} ({icfg.describe()}) in "
          f"{time.perf_counter() - t0:.1f} s -> {man.path}")
    return man, icfg.describe(), icfg


def _model(args) -> int:
    from itx.golden.capture import OPS
    from itx.golden.errors import UserError
    from itx.options import array, hw_config
    from itx.sim_report import check_report_path, first_mismatch, report_path, write_report
    from itx.sim.model_run import run_layers
    from itx.sim.ops_run import run_ops

    hw = hw_config(args)
    rows, cols = array(args.array) if args.array else (hw.rows, hw.cols)
    # before the run
    report = check_report_path(Path(args.report) if args.report else report_path(args.pair, args.sentence, args.sim,
                                                                                  args.chain))
    if args.chain:
        return _chain(args, hw, report)
    man, knobs, icfg = _vectors(args, hw)
    ops = man.path.parent / OPS
    if not args.gemms_only:
        if icfg is None or not ops.is_file():
            what = "unit knobs (field source.knobs)" if icfg is None else OPS
            raise UserError(f"--vectors {man.path.parent}: holds no {what} for the non-GEMM ops; capture it again or "
                            "pass --gemms-only")
    print(f"{'#':>3} {'layer':<34} {'M x K x N':>15} {'cycles':>8} {'util':>6} {'cmp':>4} {'mism':>5}  first mismatch")

    def show(r):
        print(f"{r.index:>3} {r.layer:<34} {'x'.join(map(str, r.shape)):>15} {r.cycles:>8} {r.utilisation:>6.1%} "
              f"{r.tensor:>4} {r.mismatches:>5}  {first_mismatch(r)}", flush=True)

    start = time.perf_counter()
    results = run_layers(man, hw, args.sim, rows, cols, args.jobs, progress=show)
    secs = time.perf_counter() - start
    bad = [r for r in results if r.mismatches]
    op_results, op_secs = [], 0.0
    if not args.gemms_only and not bad:
        start = time.perf_counter()
        op_results = run_ops(ops, icfg, hw, args.sim, args.jobs, tuple(args.layer),
                             progress=lambda kind, t: print(f"{kind} unit: ran in {t:.1f} s", flush=True))
        op_secs = time.perf_counter() - start
        print(f"{'#':>3} {'op':<34} {'kind':>10} {'shape':>12} {'cycles':>8} {'mism':>5}  first mismatch")
        for r in op_results:
            print(f"{r.index:>3} {r.op:<34} {r.kind:>10} {'x'.join(map(str, r.shape)):>12} {r.cycles:>8} "
                  f"{r.mismatches:>5}  {first_mismatch(r)}")
    bad_ops = [r for r in op_results if r.mismatches]
    meta = {"title": f"sentence {args.sentence} ({args.pair}, model {args.model})", "simulator": args.sim,
            "array": f"{rows}x{cols}", "int_config": knobs, "vectors": _shown(man.path), "gemms_run": len(results),
            "gemms_total": len(man.gemms), "cycles": sum(r.cycles for r in results),
            "macs": sum(r.shape[0] * r.shape[1] * r.shape[2] for r in results),
            "rtl_wall_s": round(secs, 2), "ops_run": "none (--gemms-only)" if args.gemms_only else len(op_results),
            "ops_cycles": sum(r.cycles for r in op_results), "ops_wall_s": round(op_secs, 2),
            "status": "MISMATCH" if bad or bad_ops else "bit-exact"}
    jpath, mpath = write_report(results, op_results, meta, report)
    print(f"{len(results)} of {len(man.gemms)} GEMMs, {meta['cycles']} cycles, {meta['macs']} MACs, RTL wall time "
          f"{secs:.1f} s; {len(op_results)} non-GEMM ops, {meta['ops_cycles']} cycles, {op_secs:.1f} s; under "
          f"{args.sim}; report {jpath} and {mpath}")
    if bad:
        print(f"FAIL: gemm {bad[0].index} ({bad[0].layer}): {bad[0].mismatches} mismatches; stopped there")
        return 1
    if bad_ops:
        print(f"FAIL: {len(bad_ops)} non-GEMM op(s) differ, first {bad_ops[0].op}: {first_mismatch(bad_ops[0])}")
        return 1
    print("PASS: every compared tensor bit-exact")
    return 0


def _chain(args, hw, report: Path) -> int:
    """--chain: the ops under one prefix in RTL one after the other, each fed the RTL outputs before it."""
    from itx.golden.errors import UserError
    from itx.golden.model import load, model_dir
    from itx.options import int_config, sentence_ids
    from itx.sim.chain import run_chain
    from itx.sim.model_run import LayerResult
    from itx.sim.ops_run import check_ops_knobs
    from itx.sim_report import first_mismatch, write_report

    if args.gemms_only or args.layer or args.vectors or args.array:
        what = next(o for o, v in (("--gemms-only", args.gemms_only), ("--layer", args.layer),
                                   ("--vectors", args.vectors), ("--array", args.array)) if v)
        raise UserError(f"{what} does not apply to --chain (it runs every op under the prefix, from its own capture)")
    icfg = int_config(args, hw)
    check_ops_knobs(icfg)
    ids = sentence_ids(args.split, args.pair, args.sentence)
    print(f"{'#':>3} {'op':<34} {'unit':>10} {'shape':>15} {'cycles':>8} {'mism':>5}  first mismatch")

    def show(r):
        gemm = isinstance(r, LayerResult)
        print(f"{r.index:>3} {r.layer if gemm else r.op:<34} {'array' if gemm else r.kind:>10} "
              f"{'x'.join(map(str, r.shape)):>15} {r.cycles:>8} {r.mismatches:>5}  {first_mismatch(r)}", flush=True)

    start = time.perf_counter()
    try:
        res = run_chain(*load(model_dir(args.model)), icfg, hw, *ids, args.chain, args.sim, progress=show)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    secs = time.perf_counter() - start
    gemms = [r for r in res.steps if isinstance(r, LayerResult)]
    ops = [r for r in res.steps if not isinstance(r, LayerResult)]
    meta = {"title": f"sentence {args.sentence} ({args.pair}, model {args.model}), {args.chain} chained in RTL",
            "simulator": args.sim, "array": f"{hw.rows}x{hw.cols}", "int_config": icfg.describe(),
            "mode": "chain: every op fed the RTL outputs of the ops before it", "gemms_run": len(gemms),
            "cycles": sum(r.cycles for r in gemms), "ops_run": len(ops), "ops_cycles": sum(r.cycles for r in ops),
            "wall_s": round(secs, 2), "output": res.output,
            "output_vs_golden": "identical" if res.difference is None else res.difference,
            "status": "bit-exact" if res.difference is None else "MISMATCH"}
    jpath, mpath = write_report(gemms, ops, meta, report)
    print(f"{len(res.steps)} RTL runs ({len(gemms)} GEMMs, {len(ops)} ops) chained under {args.chain}, {secs:.1f} s "
          f"under {args.sim}; report {jpath} and {mpath}")
    if res.difference is not None:
        print(f"FAIL: {res.output}: {res.difference}")
        return 1
    print(f"PASS: {res.output}, computed op after op in RTL, is golden's bit for bit (values and scales)")
    return 0


def register(sub) -> None:
    from itx.errors import int_in, nonempty
    from itx.options import add_sentence_args
    from itx.sim.runner import SIMULATORS

    p = sub.add_parser("sim", help="RTL simulation of a real model, layer by layer")
    ssub = p.add_subparsers(dest="action", required=True)
    m = ssub.add_parser("model", help="every integer op of one captured sentence through the RTL (GEMMs, then the "
                        "non-GEMM units, each fed golden's inputs of its op), compared bit for bit; "
                        "the integer model's knobs and the datapath options as for `itx vectors model`")
    add_sentence_args(m)
    m.add_argument("--array", help="ROWSxCOLS (default: hw/config.toml)")
    m.add_argument("--sim", choices=SIMULATORS, default="icarus")
    m.add_argument("--vectors", type=nonempty, help="vector directory: read if it holds a manifest (it must record "
                   "this sentence, pair, split, model and --layer), else captured into it")
    m.add_argument("--report", type=nonempty,
                   help="report path without suffix (default reports/sim/<pair>-sentence<i>, "
                        "+ -verilator under Verilator)")
    m.add_argument("--chain", type=nonempty, help="run the ops whose name starts with this (e.g. enc.0) in RTL one "
                   "after the other, each fed the RTL outputs before it; the last against golden's own run")
    m.add_argument("--jobs", type=int_in(1, 64), default=1, help="simulator processes in parallel (default 1)")
    m.add_argument("--gemms-only", action="store_true", help="run the GEMMs alone, not the Poly, attention "
                   "normalisation, residual and LayerNorm units")
    m.set_defaults(func=_model)
