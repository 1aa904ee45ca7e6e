"""`itx eval`: sacrebleu corpus BLEU of committed models on the test (or dev) split, per pair and model."""
from __future__ import annotations

from pathlib import Path
from typing import Callable


def _fp32(path: Path, args=None):
    from itx.golden.model import FP32Transformer

    return FP32Transformer.from_dir(path)


def _int8(path: Path, args=None):
    from itx.golden.int_model import IntTransformer

    return IntTransformer.from_dir(path, int_config(args))


def _qcd(path: Path, args=None):
    from itx.golden.model import load
    from itx.golden.qcd_baseline import QCDTransformer

    icfg = int_config(args)
    return QCDTransformer(*load(path), bits=icfg.bits, bucket=getattr(args, "bucket", 256))


# precision -> loader(model dir[, parsed knob args]) returning an object with .cfg, .encode(), .decode() (see
# golden/model.py); every precision reuses the same search and scoring.
PRECISIONS: dict[str, Callable[..., object]] = {"fp32": _fp32, "int8": _int8, "qcd": _qcd}


def add_int_args(p) -> None:
    """The IntConfig knobs (golden/int_config.py) as options; shared by eval, vectors model, demo and bench."""
    from itx.golden.int_config import GRANULARITIES, MODULES, IntConfig
    from itx.golden.quant import MATCH_MODES, RESCALE_MODES

    p.add_argument("--bits", type=int, default=8, help="activation and weight bits (6..10)")
    p.add_argument("--granularity", choices=GRANULARITIES, default="row",
                   help="activation scale groups: row = B x T, batch = B, block = block x block tiles")
    p.add_argument("--block", type=int, default=8, help="tile size for --granularity block")
    p.add_argument("--match", choices=MATCH_MODES, default=IntConfig.match, help="Eq. 8 scale matching (the tflite modes as for --rescale)")
    p.add_argument("--rescale", choices=RESCALE_MODES, default=IntConfig.rescale,
                   help="Eq. 10 re-scaling: paper ceil divisor, pow2 shift, dyadic multiplier + shift, tflite / "
                   "tflite_single: TFLite's QuantizeMultiplier with gemmlowp double rounding / TFLITE_SINGLE_ROUNDING "
                   "(all in itx_requant)")
    p.add_argument("--acc-bits", type=int, default=None, help="accumulator bits of every integer op: GEMMs and element-wise (default hw/config.toml)")
    p.add_argument("--overflow", choices=("wrap", "saturate"), default=None,
                   help="accumulator overflow (default hw/config.toml)")
    p.add_argument("--int8-modules", default="all",
                   help=f"modules run in integers: comma list of {','.join(MODULES)}, or all / none")
    p.add_argument("--int8-layers", help="comma list of layer-name prefixes that run in integers "
                   "(default all), e.g. enc.0 or dec.1.ffn")
    p.add_argument("--fp32-layers", help="comma list of layer-name prefixes forced to FP32")
    p.add_argument("--bucket", type=int, default=256, help="QCD baseline: values per affine bucket")


def one_blas_thread():
    """Context limiting BLAS to one thread (OpenBLAS threads spin against other processes on a busy 2-core
    machine: 1000x slower small GEMMs measured)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def int_config(args=None):
    """IntConfig from parsed add_int_args options (defaults when args is None)."""
    from itx.golden.errors import UserError
    from itx.golden.int_config import IntConfig, parse_modules

    if args is None:
        return IntConfig()

    def prefixes(text: str | None, option: str) -> tuple:
        names = () if text is None else tuple(p.strip() for p in text.split(","))
        if "" in names:     # an empty name would select nothing (or everything) silently
            raise UserError(f"{option}: empty layer name in {text!r}")
        return names
    return IntConfig(bits=args.bits, granularity=args.granularity, block=args.block, match=args.match,
                     rescale=args.rescale, acc_bits=args.acc_bits, overflow=args.overflow,
                     modules=parse_modules(args.int8_modules), int_layers=prefixes(args.int8_layers, "--int8-layers"),
                     fp32_layers=prefixes(args.fp32_layers, "--fp32-layers"))
PAIRS = ("en-de", "en-fr")
MODELS = ("vanilla", "integer")


def evaluate(model, tok, pair: str, split: str = "test", beam: int = 1, limit: int | None = None,
             progress: bool = True):
    """(sacrebleu BLEU score, hypotheses) of `model` on the split's first `limit` pairs."""
    import sacrebleu
    from tqdm import tqdm

    from itx.golden.int_model import search_view
    from itx.golden.model import translate
    from itx import data

    rows = data.read_split(split, pair)
    if limit is not None and limit > len(rows):
        raise ValueError(f"--limit {limit}: {split}.{pair} has only {len(rows)} sentence pairs")
    rows = rows[:limit]
    with tqdm(total=len(rows), desc=f"{pair} beam {beam}", disable=not progress, leave=False) as bar:
        hyps = translate(search_view(model, beam), tok, [r[2] for r in rows], pair[3:], beam=beam, progress=bar.update)
    bleu = sacrebleu.metrics.BLEU()
    return bleu.corpus_score(hyps, [[r[3] for r in rows]]), bleu.get_signature(), hyps


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
            f"{int_config(args).describe()}" if args.precision == "int8" else f"QCD{args.bits} bucket={args.bucket}"
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
    p.set_defaults(func=_run)
