"""itx bench report: seconds per report point (itx/report/measure.py Lab.point: greedy outputs and teacher-forced
metrics) with the exact savings across points (Lab reuse: the FP32 reference logits computed once, a narrow
accumulator's point taking the 32-bit run's batches that never needed more bits) against recomputing every point,
side by side on the same sentences, outputs checked equal; and how many batches each accumulator width reuses."""
from __future__ import annotations

from argparse import ArgumentParser
import time

from itx.bench.gemm import median_times

POINTS = ({}, {"bits": 6}, {"acc_bits": 28}, {"acc_bits": 20})   # IntConfig knobs of the timed sp points


def main(argv: list[str] | None = None) -> int:
    from itx.evaluation import one_blas_thread
    from itx.report.measure import Lab
    from itx.report.plan import Run

    p = ArgumentParser(prog="itx bench report", description=__doc__.split(":", 1)[1].strip(),
                       epilog="Times are medians of interleaved repetitions; one BLAS thread.")
    p.add_argument("--pair", choices=("en-de", "en-fr"), default="en-de")
    p.add_argument("--sentences", type=int, default=50, help="evenly spaced test sentences (default 50)")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions (default 3)")
    args = p.parse_args(argv)
    if args.sentences < 1 or args.repeat < 1:
        raise ValueError(f"--sentences and --repeat must be >= 1, got {args.sentences}, {args.repeat}")
    runs = [Run.of("sp", "integer", args.pair, **k) for k in POINTS]
    with one_blas_thread():
        saving, plain = Lab(args.sentences), Lab(args.sentences, reuse=False)
        t0 = time.perf_counter()
        saving.teacher(Run.of("fp32", "integer", args.pair))
        t_ref = time.perf_counter() - t0
        t0 = time.perf_counter()
        peaks = saving.accumulator_peaks(runs[0])
        t_peak = time.perf_counter() - t0
        fns = [f for run in runs for f in (lambda run=run: plain.point(run), lambda run=run: saving.point(run))]
        times = median_times(fns, args.repeat)
        same = all(plain.point(run) == saving.point(run) for run in runs)
    print(f"{args.sentences} {args.pair} test sentences, integer model; one-time costs of the savings: FP32 "
          f"reference logits {t_ref:.2f} s, 32-bit run recorded on the numpy path {t_peak:.2f} s")
    for run, off, on in zip(runs, times[::2], times[1::2]):
        print(f"  sp {run.knobs:18s} recomputed {off:7.2f} s   with savings {on:7.2f} s   ratio {off / on:5.2f}")
    print("(the 32-bit point {} takes its batches from the record, the one-time cost above, as a report does)")
    print(f"outputs identical with and without the savings: {same}")
    for part, done in peaks.items():
        bits = sorted(b for b, _ in done)
        print(f"accumulator bits the 32-bit run's {part} batches needed: {bits}; reused at widths >= {bits[-1]} "
              f"(all {len(bits)}), none below {bits[0]}")
    return 0 if same else 1
