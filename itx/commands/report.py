"""`itx report`: reports/REPORT.md + PNG figures + report.json (Lin et al. Fig. 5-7, Table 2, design-space sweep);
every (knob setting, pair) point is an independent task (Dask distributed, or in-process with --workers 0),
cached under reports/cache/ so re-runs are instant and an interrupted run resumes."""
from __future__ import annotations

import time
from pathlib import Path

from itx.golden.config import ROOT

PAIRS = ("en-de", "en-fr")


def command_line(args) -> str:
    """The canonical command that reproduces the numbers (output, cache and worker options do not change them)."""
    pairs = "" if tuple(args.pair or PAIRS) == PAIRS else "".join(f" --pair {p}" for p in args.pair)
    sentences = "" if args.sentences is None else f" --sentences {args.sentences}"
    return f"itx report{sentences} --profile {args.profile}{pairs}"


def write_report(report: dict, out: Path) -> None:
    """Every output file of the report (report.json, the figures, REPORT.md) into out."""
    from itx.golden.atomic import staged_files
    from itx.report import render

    with staged_files(out, "--out") as stage:     # json, figures and markdown appear together or not at all
        render.write_json(report, stage / "report.json")
        render.write_figures(report, stage)
        render.write_markdown(report, stage / "REPORT.md")


def _run(args) -> int:
    from itx.golden.atomic import check_target
    from itx.golden.config import load_hw_config
    from itx.report.build import headlines, measure_report
    from itx.report.execute import Executor
    from itx.report.measure import BOOTSTRAP, Cache, Lab
    from itx.report.plan import PROFILES

    start = time.perf_counter()
    out, pairs = check_target(args.out, None, "--out"), tuple(args.pair or PAIRS)   # before the long work
    check_target(args.cache, None, "--cache")
    lab = Lab(args.sentences)
    profile = PROFILES[args.profile]
    with Executor(Cache(Path(args.cache)), args.workers, args.scheduler, progress=not args.quiet) as ex:
        sections, signatures = measure_report(lab, profile, pairs, ex)
    hw = load_hw_config()
    report = {"meta": {"command": command_line(args), "profile": profile.name,
                       "sentences": {p: len(lab.rows[p]) for p in pairs}, "split": lab.split, "pairs": list(pairs),
                       "sample": "whole split" if args.sentences is None else "evenly spaced",
                       "code_version": lab.code, "bootstrap": BOOTSTRAP, **signatures,
                       "weights": {m: lab.model(m)[2] for m in ("integer", "vanilla")},
                       "hw": f"{hw.rows}x{hw.cols} array, in_bits={hw.in_bits}, acc_bits={hw.acc_bits}, "
                             f"overflow={hw.overflow}"},
              "sections": sections}
    report["headlines"] = headlines(sections)
    write_report(report, out)
    print(f"{out / 'REPORT.md'}: {sum(report['meta']['sentences'].values())} sentence pairs, "
          f"{time.perf_counter() - start:.1f} s")
    return 0


def register(sub) -> None:
    from itx.errors import int_in, nonempty
    from itx.report.execute import default_workers
    from itx.report.plan import PROFILES

    p = sub.add_parser("report", help="BLEU cost of integer arithmetic: REPORT.md, figures, report.json")
    p.add_argument("--sentences", type=int_in(1), default=None,
                   help="test sentence pairs per language pair, evenly spaced (default: the whole split)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="full",
                   help="full: every sweep; ci: a light version (whole-layer points, fewer bits/widths)")
    p.add_argument("--pair", action="append", choices=PAIRS, help="language pair (repeatable; default both)")
    p.add_argument("--out", type=nonempty, default=str(ROOT / "reports"), help="output directory (default reports/)")
    p.add_argument("--cache", type=nonempty, default=str(ROOT / "reports" / "cache"), help="measurement cache directory")
    p.add_argument("--workers", type=int_in(0, 256), default=None,
                   help=f"Dask LocalCluster worker processes, one thread each (default one per core: "
                        f"{default_workers()} here); 0 = in this process, no Dask")
    p.add_argument("--scheduler", default=None,
                   help="address of an existing Dask scheduler (e.g. tcp://host:8786): run the points there")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)
