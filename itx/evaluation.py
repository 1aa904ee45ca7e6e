"""BLEU evaluation as a library (itx eval, demo, translate, bench and the tests use it): the precisions a model can
run in, corpus BLEU of a split, and BLAS limited to one thread."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from itx.options import int_config

PAIRS = ("en-de", "en-fr")
MODELS = ("vanilla", "integer")


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


def one_blas_thread():
    """Context limiting BLAS to one thread (OpenBLAS threads spin against other processes on a busy 2-core
    machine: 1000x slower small GEMMs measured)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


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
