"""`itx eval`: sacrebleu corpus BLEU of committed models on the test (or dev) split, per pair and model."""
from __future__ import annotations

from itx.evaluation import MODELS, PAIRS, PRECISIONS, evaluate, one_blas_thread
from itx.options import add_int_args, int_config


def _run(args) -> int:
    from itx.golden.tokenizer import Tokenizer

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    with one_blas_thread():
        return _eval(args, Tokenizer())


def _eval(args, tok) -> int:
    from itx.golden.model import model_dir

    names = args.model or (MODELS if args.precision == "fp32" else ("integer",))
    for name in names:
        model = PRECISIONS[args.precision](model_dir(name), args)
        label = args.precision if args.precision == "fp32" else \
            int_config(args).describe() if args.precision == "int8" else \
            f"QCD{int_config(args).bits} bucket={args.bucket}"
        base = None if args.precision == "fp32" else PRECISIONS["fp32"](model_dir(name))
        for pair in args.pair or PAIRS:
            score, sig, hyps = evaluate(model, tok, pair, args.split, args.beam, args.limit)
            line = f"{name:8s} {pair} {args.split} beam={args.beam}: {label} {score.score:.2f} BLEU"
            if base is not None:
                ref, _, ref_hyps = evaluate(base, tok, pair, args.split, args.beam, args.limit)
                ratio = f"{100 * score.score / ref.score:.1f}%" if ref.score else "n/a"
                line += f" | FP32 {ref.score:.2f} BLEU | ratio {ratio}"
            print(f"{line}  ({score})  signature: {sig}", flush=True)
            if base is not None:
                print(versus_fp32(model, base, tok, pair, args, hyps, ref_hyps, score.score - ref.score), flush=True)
    return 0


def versus_fp32(model, base, tok, pair: str, args, hyps: list[str], ref_hyps: list[str], bleu: float) -> str:
    """The line under a non-FP32 result: ΔBLEU with sacrebleu's paired bootstrap 95% interval and p-value,
    chrF, outputs identical to FP32's, and the teacher-forced ΔNLL and KL(FP32 || model) per token.
    bleu: the ΔBLEU already scored."""
    from sacrebleu.metrics import CHRF

    from itx import data
    from itx.report.measure import BOOTSTRAP, SIGNIFICANCE, compare, teacher_forced

    rows = data.read_tsv(data.split_path(args.split, pair))[:args.limit]
    refs = [r[3] for r in rows]
    c, t = compare(hyps, ref_hyps, refs), teacher_forced(base, model, tok, rows, pair)
    chrf, chrf_base = (CHRF().corpus_score(h, [refs]).score for h in (hyps, ref_hyps))
    verdict = "p < 0.05" if c["p"] < SIGNIFICANCE else "not significant"
    return (f"{'':8s} {pair} vs FP32: ΔBLEU {bleu:+.2f}, 95% CI [{c['ci'][0]:+.2f}, {c['ci'][1]:+.2f}], "
            f"p = {c['p']:.4f} ({verdict}; paired bootstrap, {BOOTSTRAP['resamples']} resamples, seed "
            f"{BOOTSTRAP['seed']}) | chrF {chrf:.2f} (FP32 {chrf_base:.2f}) | identical to FP32 "
            f"{c['identical']:.1%} | teacher-forced ΔNLL {t['nll'] - t['nll_fp32']:+.4g} nats/token, "
            f"KL(FP32||{args.precision}) {t['kl']:.4g} nats/token over {t['tokens']} reference tokens")


def register(sub) -> None:
    from itx.errors import int_in

    p = sub.add_parser("eval", help="corpus BLEU (sacrebleu) of the models on the test split")
    p.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32")
    p.add_argument("--model", action="append", help="vanilla | integer | model dir (repeatable; default both "
                   "for fp32, integer otherwise)")
    p.add_argument("--pair", action="append", choices=PAIRS, help="language pair (repeatable; default both)")
    p.add_argument("--split", choices=("test", "dev"), default="test")
    p.add_argument("--beam", type=int_in(1), default=1, help="beam size (1 = greedy, at most the vocabulary)")
    p.add_argument("--limit", type=int, default=None, help="only the first N sentence pairs")
    add_int_args(p)
    p.add_argument("--bucket", type=int_in(1), default=256, help="QCD baseline: values per affine bucket")
    p.set_defaults(func=_run)
