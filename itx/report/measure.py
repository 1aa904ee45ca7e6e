"""Measurements behind the report, each cached as one JSON file under the cache directory, keyed by a hash of
(what, method, model weights, pair, sentences, knobs, code version): re-runs are instant, partial runs resume, and
any change to golden/ or the data invalidates exactly what it could change. `measure` is the unit of work a
worker process runs (itx/report/execute.py); `compare` the paired significance test between two points."""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np

from itx.golden.config import ROOT
from itx.report.plan import Run

CACHE_FORMAT = 3  # 3: one entry per report point (greedy outputs + teacher-forced metrics); 2: BLEU, MSE apart
# Everything a measured number depends on besides the weights: the golden model, search, scoring and this file.
CODE_FILES = ("golden/*.py", "itx/report/measure.py", "data/spm.model")
# sacrebleu's paired bootstrap (Koehn 2004): resamples and seed (non-zero: sacrebleu treats seed 0 as "unseeded").
BOOTSTRAP = {"resamples": 1000, "seed": 12345}
SIGNIFICANCE = 0.05  # a difference with p >= this is "not significant"


def sha256_of(paths) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).relative_to(ROOT).as_posix().encode() + b"\0" + Path(p).read_bytes())
    return h.hexdigest()


def code_version() -> str:
    return sha256_of(sorted(p for pattern in CODE_FILES for p in ROOT.glob(pattern)))[:16]


def sample(total: int, n: int | None) -> list[int]:
    """n row indices evenly spaced over a split of `total` rows (the split is ordered by help page, so the
    first n rows would come from a handful of pages); every row when n is None."""
    return list(range(total)) if n is None else [i * total // n for i in range(n)]


class Cache:
    """One JSON file per key; a missing, truncated or foreign file is a miss (recomputed), never an error."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)

    def _path(self, key: dict) -> Path:
        return self.dir / (hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32] + ".json")

    def get(self, key: dict):
        try:
            entry = json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None
        return entry.get("value") if isinstance(entry, dict) and entry.get("key") == key else None

    def put(self, key: dict, value):
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self._path(key)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "value": value}, sort_keys=True))
        tmp.replace(path)  # atomic: an interrupted run never leaves a half-written entry
        return value


def log_softmax64(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis in float64, shifted by the row max (no overflow for any finite logits)."""
    x = np.asarray(logits, np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def token_metrics(ref_logits: np.ndarray, logits: np.ndarray, targets: np.ndarray, keep: np.ndarray) -> dict:
    """Sums over the kept target positions: cross-entropy -log q(target) of both models (nats) and
    KL(P || Q) = sum_v p_v (log p_v - log q_v), P the reference (FP32) distribution, Q the measured one."""
    lp, lq = log_softmax64(ref_logits)[keep], log_softmax64(logits)[keep]
    t = targets[keep]
    rows = np.arange(t.size)
    return {"nll_ref": float(-lp[rows, t].sum()), "nll": float(-lq[rows, t].sum()),
            "kl": float((np.exp(lp) * (lp - lq)).sum()), "tokens": int(t.size)}


def real_logits(model, src: np.ndarray, tgt_in: np.ndarray) -> np.ndarray:
    """Teacher-forced logits in real units: an IntTransformer's integer logits dequantized (DequantizedScores)."""
    from itx.golden.int_model import search_view

    view = search_view(model, beam=2)  # the dequantizing view (beam search scores real log-probabilities)
    mem, mask = view.encode(src)
    return np.asarray(view.decode(tgt_in, mem, mask), np.float64)


def compare(hyps: list[str], base: list[str], refs: list[str], resamples: int = BOOTSTRAP["resamples"],
            seed: int = BOOTSTRAP["seed"]) -> dict:
    """hyps against base (FP32) on the same references: sacrebleu's paired bootstrap resampling test
    (significance.PairedTest, test_type "bs": p-value of |ΔBLEU|), the 95% interval of ΔBLEU over the very
    same resamples (sacrebleu's percentile convention, sorted[n // 40] .. sorted[n - 1 - n // 40]) and the
    share of sentences whose output is identical."""
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    if not seed:
        raise ValueError("the bootstrap seed must be non-zero (sacrebleu leaves seed 0 unseeded)")
    saved = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)  # PairedTest reads its seed from here
    try:
        test = PairedTest([("base", base), ("run", hyps)], {"BLEU": BLEU()}, [refs], "bs", resamples)
        signature, scores = test()
    finally:
        if saved is None:
            del os.environ["SACREBLEU_SEED"]
        else:
            os.environ["SACREBLEU_SEED"] = saved
    metric = BLEU()
    # The resamples of sacrebleu's _paired_bs_test: the same generator, seed and call.
    idx = np.random.default_rng(seed).choice(len(hyps), size=(resamples, len(hyps)), replace=True)
    bleu_at = [[metric._compute_score_from_stats(s).score for s in np.asarray(
        metric._extract_corpus_statistics(h, [refs]), np.int64)[idx].sum(1).tolist()] for h in (hyps, base)]
    deltas = np.sort(np.subtract(*bleu_at))
    lo = resamples // 40
    # sacrebleu's statistic |Δ*| - mean |Δ*| > |Δ| is never true when no resample differs (identical outputs), so
    # its p would be the minimum 1 / (resamples + 1): no difference at all is p = 1, not significant.
    p = 1.0 if not deltas.any() else scores["BLEU"][1].p_value
    return {"p": p, "ci": [float(deltas[lo]), float(deltas[resamples - 1 - lo])],
            "identical": sum(a == b for a, b in zip(hyps, base)) / len(hyps),
            "signature": str(signature["BLEU"])}


def teacher_batches(tok, rows: list, pair: str, size: int = 16):
    """(src ids, target input ids, target ids) of the reference translations of split rows (teacher forcing), in
    batches of similar source length (less padding)."""
    from itx.golden.model import pad_batch as padded
    from itx.golden.tokenizer import BOS

    src = [tok.encode_source(r[2], pair[3:]) for r in rows]
    tgt = [tok.encode_target(r[3]) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: (len(src[i]), len(tgt[i]), i))
    for b in range(0, len(order), size):
        idx = order[b: b + size]
        yield padded([src[i] for i in idx]), padded([[BOS] + tgt[i][:-1] for i in idx]), padded([tgt[i] for i in idx])


def teacher_forced(ref, model, tok, rows: list, pair: str, acts: tuple[str, ...] = ()) -> dict:
    """Teacher-forced on the reference translations of rows, padding excluded, `model` against `ref` (FP32;
    model None: ref itself): cross-entropy per target token of the model ("nll") and of ref ("nll_fp32"),
    KL(ref || model) per token ("kl"), nats, and per activation in `acts` the mean squared error ref vs
    dequantized model ("mse")."""
    from itx.golden.tokenizer import PAD

    sums, sq, count = {"nll_ref": 0.0, "nll": 0.0, "kl": 0.0, "tokens": 0}, dict.fromkeys(acts, 0.0), {}
    for src, tgt_in, tgt in teacher_batches(tok, rows, pair):
        got: list[dict] = [{}, {}]
        for m, store in zip((ref, model), got):
            if m is not None:
                m.hook = lambda name, x, store=store: store.__setitem__(name, x) if name in acts else None
        ref_logits = real_logits(ref, src, tgt_in)
        logits = ref_logits if model is None else real_logits(model, src, tgt_in)
        for k, v in token_metrics(ref_logits, logits, tgt, tgt != PAD).items():
            sums[k] += v
        for act in acts:
            if act not in got[0] or act not in got[1]:
                raise ValueError(f"activation {act!r} was not emitted by the models (layer names changed?)")
            a, b = (x.dequantize() if hasattr(x, "dequantize") else np.asarray(x, np.float64) for x in
                    (got[0][act], got[1][act]))
            diff = (a - b)[(src if act.startswith("enc.") else tgt_in) != PAD]
            sq[act] += float(np.sum(diff * diff))
            count[act] = count.get(act, 0) + diff.size
    for m in (ref, model):
        if m is not None:
            m.hook = None
    n = sums["tokens"]
    return {"nll": sums["nll"] / n, "nll_fp32": sums["nll_ref"] / n, "kl": sums["kl"] / n, "tokens": n,
            "mse": {a: sq[a] / count[a] for a in acts}}


class Lab:
    """Loads each model once and measures (method, model, pair, knobs) points on `sentences` pairs of `split`
    evenly spaced (all when None): greedy outputs with BLEU/chrF, teacher-forced cross-entropy, KL and
    activation MSE against the FP32 model, GEMM shapes of a sentence."""

    def __init__(self, sentences: int | None = None, split: str = "test") -> None:
        from itx.golden.tokenizer import Tokenizer
        from itx import data

        if sentences is not None and (isinstance(sentences, bool) or not isinstance(sentences, int)
                                      or sentences < 1):
            raise ValueError(f"--sentences must be an integer >= 1, got {sentences!r}")
        self.n, self.split = sentences, split
        self.tok, self.code = Tokenizer(), code_version()
        self._models: dict[str, tuple] = {}
        self.rows = {}
        for pair in data.PAIRS:
            rows = data.read_tsv(data.split_path(split, pair))
            if sentences is not None and len(rows) < sentences:
                raise ValueError(f"--sentences {sentences}: {split}.{pair} has only {len(rows)} sentence pairs")
            self.rows[pair] = [rows[i] for i in sample(len(rows), sentences)]

    # --- models ------------------------------------------------------------------------------------------------
    def model(self, name: str) -> tuple:
        """(ModelConfig, float32 weights, sha256 of the weights file) of models/<name> or a model directory."""
        if name not in self._models:
            from itx.golden.model import WEIGHTS, load, model_dir

            d = model_dir(name)
            cfg, w = load(d)
            self._models[name] = cfg, w, hashlib.sha256((d / WEIGHTS).read_bytes()).hexdigest()[:16]
        return self._models[name]

    def build(self, run: Run):
        """The object greedy_search drives for this run."""
        from itx.golden.model import FP32Transformer

        cfg, w, _ = self.model(run.model)
        if run.method == "fp32":
            return FP32Transformer(cfg, w)
        if run.method == "qcd":
            from itx.golden.qcd_baseline import QCDTransformer

            return QCDTransformer(cfg, w, **run.options)
        from itx.golden.int_config import IntConfig
        from itx.golden.int_model import IntTransformer

        return IntTransformer(cfg, w, IntConfig(**run.options))

    def key(self, what: str, run: Run, **extra) -> dict:
        """The cache key of a measurement: everything its value depends on."""
        return {"format": CACHE_FORMAT, "what": what, "method": run.method, "model": run.model,
                "weights": self.model(run.model)[2], "pair": run.pair, "split": self.split,
                "sentences": self.n, "knobs": run.options, "code": self.code, **extra}

    # --- measurements ------------------------------------------------------------------------------------------
    def point(self, run: Run, acts: tuple[str, ...] = ()) -> dict:
        """Greedy outputs ("hyps") with corpus BLEU and chrF, and teacher-forced metrics (see teacher)."""
        import sacrebleu

        from itx.golden.model import translate

        rows, model = self.rows[run.pair], self.build(run)
        hyps = translate(model, self.tok, [r[2] for r in rows], run.pair[3:])
        refs = [[r[3] for r in rows]]
        bleu = sacrebleu.metrics.BLEU()
        return {"hyps": hyps, "bleu": bleu.corpus_score(hyps, refs).score, "signature": str(bleu.get_signature()),
                "chrf": sacrebleu.metrics.CHRF().corpus_score(hyps, refs).score, **self.teacher(run, acts, model)}

    def teacher(self, run: Run, acts: tuple[str, ...] = (), model=None) -> dict:
        """teacher_forced(FP32 model of the same weights, the run's model (`model` when already built))."""
        from itx.golden.model import FP32Transformer

        cfg, w, _ = self.model(run.model)
        return teacher_forced(FP32Transformer(cfg, w), None if run.method == "fp32" else
                              model if model is not None else self.build(run),
                              self.tok, self.rows[run.pair], run.pair, acts)

    def gemm_shapes(self, run: Run, sentences: int) -> list[list[int]]:
        """[batch, M, K, N, count] of every integer GEMM while greedily translating each of the first
        `sentences` sentences on its own (batch 1: what one sentence costs the array), summed over shapes."""
        from itx.golden.model import greedy_search

        counts: dict[tuple[int, ...], int] = {}

        def record(name, a, b, c):
            shape = (int(np.prod(c.shape[:-2], dtype=np.int64)), c.shape[-2], a.shape[-1], c.shape[-1])
            counts[shape] = counts.get(shape, 0) + 1

        model = self.build(run)
        model.gemm_hook = record
        for r in self.rows[run.pair][:sentences]:
            greedy_search(model, [self.tok.encode_source(r[2], run.pair[3:])])
        return [[*s, n] for s, n in sorted(counts.items())]


_LABS: dict[tuple, Lab] = {}


def measure(sentences: int | None, split: str, what: str, run: Run, *args):
    """A worker's task: Lab(sentences, split).<what>(run, *args), the Lab kept per process (models load once).
    Returns (weights sha, code version, value) so the caller can check the worker ran the same weights and code."""
    from threadpoolctl import threadpool_limits

    if (sentences, split) not in _LABS:
        _LABS[sentences, split] = Lab(sentences, split)
    lab = _LABS[sentences, split]
    with threadpool_limits(1, user_api="blas"):  # one BLAS thread per worker (spinning threads stall a busy host)
        value = getattr(lab, what)(run, *args)
    return lab.model(run.model)[2], lab.code, value


def storage(weights: dict[str, np.ndarray], bits: int = 8, param_bits: int = 16) -> dict[str, int]:
    """Bytes of the weights: FP32; integer as the integer model holds them (matrices one float32 scale per
    output column, embedding one per row for the lookup plus a per-tensor copy for the output projection, 1-D
    parameters at param_bits with one scale); and integer with one scale per tensor."""
    fp32 = sum(4 * v.size for v in weights.values())
    def val(v: np.ndarray, b: int) -> int:
        return v.size * math.ceil(b / 8)  # whole bytes per value, as stored in memory
    values = sum(val(v, bits if v.ndim == 2 else param_bits) for v in weights.values())
    channel_scales = sum(v.shape[1] if k.endswith(".w") else v.shape[0] if k == "embed" else 1
                         for k, v in weights.items())
    # Per channel, the output projection needs its own per-tensor copy of E^T; per tensor, one copy serves both.
    return {"fp32": fp32, "int_per_channel": values + val(weights["embed"], bits) + 4 * (channel_scales + 1),
            "int_per_tensor": values + 4 * len(weights)}
