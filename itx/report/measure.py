"""Measurements behind the report, each cached as one JSON file under the cache directory, keyed by a hash of
(what, method, model weights, pair, sentences, knobs, code version): re-runs are instant, partial runs resume, and
any change to golden/ or the data invalidates exactly what it could change."""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np

from golden.config import ROOT
from itx.report.plan import Run, layer_groups

CACHE_FORMAT = 2  # 2: sentences evenly spaced over the split (1: the first N)
# Everything a BLEU/MSE/shape number depends on besides the weights: the golden model, search and scoring code.
CODE_FILES = ("golden/*.py", "itx/commands/eval.py", "data/spm.model")


def sha256_of(paths) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).relative_to(ROOT).as_posix().encode() + b"\0" + Path(p).read_bytes())
    return h.hexdigest()


def code_version() -> str:
    return sha256_of(sorted(p for pattern in CODE_FILES for p in ROOT.glob(pattern)))[:16]


def sample(total: int, n: int) -> list[int]:
    """n row indices evenly spaced over a split of `total` rows (the split is ordered by help page, so the
    first n rows would come from a handful of pages)."""
    return [i * total // n for i in range(n)]


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


class Lab:
    """Loads each model once and answers cached questions about (method, model, pair) on the first `sentences`
    pairs of `split`: BLEU, per-layer MSE, GEMM shapes of a sentence."""

    def __init__(self, cache_dir: Path, sentences: int, split: str = "test", progress: bool = True) -> None:
        from golden.tokenizer import Tokenizer
        from itx import data

        if isinstance(sentences, bool) or not isinstance(sentences, int) or sentences < 1:
            raise ValueError(f"--sentences must be an integer >= 1, got {sentences!r}")
        self.cache, self.n, self.split, self.progress = Cache(cache_dir), sentences, split, progress
        self.tok, self.code = Tokenizer(), code_version()
        self._models: dict[str, tuple] = {}
        self._fp32_acts: dict[tuple[str, str], list[dict]] = {}
        self.rows = {}
        for pair in data.PAIRS:
            rows = data.read_tsv(data.split_path(split, pair))
            if len(rows) < sentences:
                raise ValueError(f"--sentences {sentences}: {split}.{pair} has only {len(rows)} sentence pairs")
            self.rows[pair] = [rows[i] for i in sample(len(rows), sentences)]

    # --- models ------------------------------------------------------------------------------------------------
    def model(self, name: str) -> tuple:
        """(ModelConfig, float32 weights, sha256 of the weights file) of models/<name> or a model directory."""
        if name not in self._models:
            from golden.model import WEIGHTS, load, model_dir

            d = model_dir(name)
            cfg, w = load(d)
            self._models[name] = cfg, w, hashlib.sha256((d / WEIGHTS).read_bytes()).hexdigest()[:16]
        return self._models[name]

    def build(self, run: Run):
        """The object greedy_search drives for this run."""
        from golden.model import FP32Transformer

        cfg, w, _ = self.model(run.model)
        if run.method == "fp32":
            return FP32Transformer(cfg, w)
        if run.method == "qcd":
            from golden.qcd_baseline import QCDTransformer

            return QCDTransformer(cfg, w, **run.options)
        from golden.int_config import IntConfig
        from golden.int_model import IntTransformer

        return IntTransformer(cfg, w, IntConfig(**run.options))

    def _key(self, what: str, run: Run, **extra) -> dict:
        return {"format": CACHE_FORMAT, "what": what, "method": run.method, "model": run.model,
                "weights": self.model(run.model)[2], "pair": run.pair, "split": self.split, "sentences": self.n,
                "knobs": run.options, "code": self.code, **extra}

    # --- measurements ------------------------------------------------------------------------------------------
    def bleu(self, run: Run) -> dict:
        """{"bleu": sacrebleu corpus BLEU, "signature", "hyps"} of greedy decoding (cached)."""
        key = self._key("bleu", run)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        import sacrebleu
        from tqdm import tqdm

        from golden.model import translate

        rows = self.rows[run.pair]
        with tqdm(total=len(rows), desc=run.pair, disable=not self.progress, leave=False) as bar:
            hyps = translate(self.build(run), self.tok, [r[2] for r in rows], run.pair[3:], progress=bar.update)
        bleu = sacrebleu.metrics.BLEU()
        score = bleu.corpus_score(hyps, [[r[3] for r in rows]])
        return self.cache.put(key, {"bleu": score.score, "signature": str(bleu.get_signature()), "hyps": hyps})

    def bootstrap_std(self, run: Run, base: Run, resamples: int = 200, seed: int = 0) -> float:
        """Standard deviation of BLEU(run) - BLEU(base) over paired bootstrap resamples of the sentences
        (Koehn 2004): how much of a ΔBLEU is sampling noise of the N sentences."""
        import sacrebleu

        refs = [r[3] for r in self.rows[run.pair]]
        a, b = self.bleu(run)["hyps"], self.bleu(base)["hyps"]

        def bleu_at(hyps: list[str], idx: np.ndarray) -> float:
            return sacrebleu.corpus_bleu([hyps[i] for i in idx], [[refs[i] for i in idx]]).score

        rng, deltas = np.random.default_rng(seed), []
        for _ in range(resamples):
            idx = rng.integers(0, len(refs), len(refs))
            deltas.append(bleu_at(a, idx) - bleu_at(b, idx))
        return float(np.std(deltas))

    def _teacher_batches(self, pair: str, size: int = 16):
        """(src ids, target input ids) of the reference translations, in batches (teacher forcing)."""
        from golden.model import pad_batch as padded
        from golden.tokenizer import BOS

        rows = self.rows[pair]
        for b in range(0, len(rows), size):
            chunk = rows[b: b + size]
            yield (padded([self.tok.encode_source(r[2], pair[3:]) for r in chunk]),
                   padded([[BOS] + self.tok.encode_target(r[3])[:-1] for r in chunk]))

    def _activations(self, model, pair: str, names: set[str]) -> list[dict]:
        """Per teacher-forced batch, {name: float64 activation} for the captured names (QTensors dequantized)."""
        out = []
        for src, tgt in self._teacher_batches(pair):
            acts = {}
            model.hook = lambda name, x: acts.__setitem__(name, x) if name in names else None
            model.logits(src, tgt)
            out.append({k: v.dequantize() if hasattr(v, "dequantize") else np.asarray(v, np.float64)
                        for k, v in acts.items()})
        model.hook = None
        return out

    def mse(self, run: Run, act: str) -> float:
        """Mean squared error between the FP32 model's activation `act` and the run's dequantized one over the
        reference translations (teacher forcing; padding positions excluded)."""
        key = self._key("mse", run, act=act)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        ref_key = (run.model, run.pair)
        if ref_key not in self._fp32_acts:
            from golden.model import FP32Transformer

            cfg, w, _ = self.model(run.model)
            names = {g[2] for gran in ("module", "block") for g in layer_groups(cfg, gran)}
            self._fp32_acts[ref_key] = self._activations(FP32Transformer(cfg, w), run.pair, names)
        got = self._activations(self.build(run), run.pair, {act})
        sq, count = 0.0, 0
        for (src, tgt), ref, new in zip(self._teacher_batches(run.pair), self._fp32_acts[ref_key], got):
            keep = (src if act.startswith("enc.") else tgt) != 0
            if act not in ref or act not in new:
                raise ValueError(f"activation {act!r} was not emitted by the models (layer names changed?)")
            diff = (ref[act] - new[act])[keep]
            sq, count = sq + float(np.sum(diff * diff)), count + diff.size
        return self.cache.put(key, sq / count)

    def gemm_shapes(self, run: Run, sentences: int) -> list[list[int]]:
        """[batch, M, K, N] of every integer GEMM while greedily translating each of the first `sentences`
        sentences on its own (batch 1: what one sentence costs the array), summed over identical shapes."""
        key = self._key("gemm_shapes", run, traced=sentences)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        from golden.model import greedy_search

        counts: dict[tuple[int, ...], int] = {}

        def record(name, a, b, c):
            shape = (int(np.prod(c.shape[:-2], dtype=np.int64)), c.shape[-2], a.shape[-1], c.shape[-1])
            counts[shape] = counts.get(shape, 0) + 1

        model = self.build(run)
        model.gemm_hook = record
        for r in self.rows[run.pair][:sentences]:
            greedy_search(model, [self.tok.encode_source(r[2], run.pair[3:])])
        return self.cache.put(key, [[*s, n] for s, n in sorted(counts.items())])


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
