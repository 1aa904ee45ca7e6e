"""`itx report`: reports/REPORT.md + PNG figures + report.json (Lin et al. Fig. 5-7, Table 2, design-space sweep);
measurements cached under reports/cache/ so re-runs are instant and an interrupted run resumes."""
from __future__ import annotations

import time
from pathlib import Path

from golden.config import ROOT

PAIRS = ("en-de", "en-fr")


def command_line(args) -> str:
    """The canonical command that reproduces the numbers (output and cache paths do not change them)."""
    pairs = "" if tuple(args.pair or PAIRS) == PAIRS else "".join(f" --pair {p}" for p in args.pair)
    return f"itx report --sentences {args.sentences} --profile {args.profile}{pairs}"


def _run(args) -> int:
    from tqdm import tqdm

    from golden.atomic import check_target, staged_files
    from golden.config import load_hw_config
    from itx.commands.eval import one_blas_thread
    from itx.report import render
    from itx.report.build import Builder, headlines
    from itx.report.measure import Lab
    from itx.report.plan import PROFILES, Run

    start = time.perf_counter()
    out, pairs = check_target(args.out, None, "--out"), tuple(args.pair or PAIRS)   # before the long work
    check_target(args.cache, None, "--cache")
    lab = Lab(Path(args.cache), args.sentences, progress=not args.quiet)
    profile = PROFILES[args.profile]
    with one_blas_thread():
        dry = Builder(lab, profile, pairs, dry=True)
        dry.sections()
        with tqdm(total=len(dry.runs), desc="report BLEU points", unit="run", disable=args.quiet) as bar:
            sections = Builder(lab, profile, pairs, bar).sections()
    hw = load_hw_config()
    report = {"meta": {"command": command_line(args), "profile": profile.name, "sentences": args.sentences,
                       "split": lab.split, "pairs": list(pairs), "code_version": lab.code,
                       "sacrebleu": lab.bleu(Run.of("fp32", "integer", pairs[0]))["signature"],
                       "weights": {m: lab.model(m)[2] for m in ("integer", "vanilla")},
                       "hw": f"{hw.rows}x{hw.cols} array, in_bits={hw.in_bits}, acc_bits={hw.acc_bits}, "
                             f"overflow={hw.overflow}"},
              "sections": sections}
    report["headlines"] = headlines(sections)
    with staged_files(out, "--out") as stage:     # json, figures and markdown appear together or not at all
        render.write_json(report, stage / "report.json")
        render.write_figures(report, stage)
        render.write_markdown(report, stage / "REPORT.md")
    print(f"{out / 'REPORT.md'}: {len(dry.runs)} BLEU points x {args.sentences} sentences/pair, "
          f"{time.perf_counter() - start:.1f} s")
    return 0


def register(sub) -> None:
    from itx.errors import nonempty
    from itx.report.plan import PROFILES

    p = sub.add_parser("report", help="BLEU cost of integer arithmetic: REPORT.md, figures, report.json")
    p.add_argument("--sentences", type=int, default=48,
                   help="test sentence pairs per language pair (default 48, as in the committed report)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="full",
                   help="full: every sweep; ci: a light version (whole-layer points, fewer bits/widths)")
    p.add_argument("--pair", action="append", choices=PAIRS, help="language pair (repeatable; default both)")
    p.add_argument("--out", type=nonempty, default=str(ROOT / "reports"), help="output directory (default reports/)")
    p.add_argument("--cache", type=nonempty, default=str(ROOT / "reports" / "cache"),
                   help="measurement cache directory")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)
