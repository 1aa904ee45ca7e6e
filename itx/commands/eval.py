"""`itx eval`: sacrebleu corpus BLEU of committed models on the test (or dev) split, per pair and model."""
from __future__ import annotations

from pathlib import Path
from typing import Callable


def _fp32(path: Path):
    from golden.model import FP32Transformer

    return FP32Transformer.from_dir(path)


# precision -> loader(model dir) returning an object with .cfg, .encode(), .decode() (see golden/model.py);
# an integer model registers here and reuses the same search and scoring.
PRECISIONS: dict[str, Callable[[Path], object]] = {"fp32": _fp32}
PAIRS = ("en-de", "en-fr")
MODELS = ("vanilla", "integer")


def evaluate(model, tok, pair: str, split: str = "test", beam: int = 1, limit: int | None = None,
             progress: bool = True):
    """(sacrebleu BLEU score, hypotheses) of `model` on the split's first `limit` pairs."""
    import sacrebleu
    from tqdm import tqdm

    from golden.model import translate
    from itx import data

    rows = data.read_tsv(data.split_path(split, pair))[:limit]
    with tqdm(total=len(rows), desc=f"{pair} beam {beam}", disable=not progress, leave=False) as bar:
        hyps = translate(model, tok, [r[2] for r in rows], pair[3:], beam=beam, progress=bar.update)
    bleu = sacrebleu.metrics.BLEU()
    return bleu.corpus_score(hyps, [[r[3] for r in rows]]), bleu.get_signature(), hyps


def _run(args) -> int:
    from golden.model import model_dir
    from golden.tokenizer import Tokenizer

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    tok = Tokenizer()
    for name in args.model or MODELS:
        model = PRECISIONS[args.precision](model_dir(name))
        for pair in args.pair or PAIRS:
            score, sig, _ = evaluate(model, tok, pair, args.split, args.beam, args.limit)
            print(f"{name:8s} {args.precision} {pair} {args.split} beam={args.beam}: {score.score:.2f} BLEU  "
                  f"({score})  signature: {sig}", flush=True)
    return 0


def register(sub) -> None:
    p = sub.add_parser("eval", help="corpus BLEU (sacrebleu) of the models on the test split")
    p.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32")
    p.add_argument("--model", action="append", help="vanilla | integer | model dir (repeatable; default both)")
    p.add_argument("--pair", action="append", choices=PAIRS, help="language pair (repeatable; default both)")
    p.add_argument("--split", choices=("test", "dev"), default="test")
    p.add_argument("--beam", type=int, default=1, help="beam size (1 = greedy)")
    p.add_argument("--limit", type=int, default=None, help="only the first N sentence pairs")
    p.set_defaults(func=_run)
