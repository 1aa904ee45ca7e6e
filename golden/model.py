"""FP32 numpy inference of the exported Transformers (vanilla and Lin et al. 2020 Integer Transformer).

Pre-LN encoder-decoder, shared embeddings, sinusoidal positions. Layer names (also the npz keys' prefixes):
  embed, enc.{i}.{ln1,self_attn,ln2,ffn}, enc.ln_f, dec.{i}.{ln1,self_attn,ln2,cross_attn,ln3,ffn}, dec.ln_f, out_proj
A capture hook (callable (name, array) or dict) sees every module boundary; see `Capture`.
"""
from __future__ import annotations

import json
import math
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from itx.golden.errors import UserError
from itx.golden.tokenizer import BOS, EOS, PAD

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
CONFIG, WEIGHTS, REFERENCE = "config.json", "weights.npz", "reference_logits.npz"
ARCHS = ("vanilla", "integer")
L1_C = math.sqrt(math.pi / 2)  # Lin et al. Eq. 13: C * mean|x - mu| estimates the standard deviation


@dataclass(frozen=True)
class ModelConfig:
    arch: str
    vocab_size: int
    d_model: int
    n_heads: int
    d_ff: int
    enc_layers: int
    dec_layers: int
    attention: str  # "softmax" | "poly"
    norm: str  # "l2" (LayerNorm) | "l1" (L1 LayerNorm)
    ln_eps: float
    poly_n: int = 3
    poly_b_init: float = 1.0
    poly_delta_init: float = 0.01
    max_len: int = 256

    def __post_init__(self) -> None:
        """Every field's type and range: a bad config is one line naming the field, never a ZeroDivisionError,
        an IndexError or a silently empty translation later."""
        for name, lo in (("vocab_size", EOS + 1), ("d_model", 2), ("n_heads", 1), ("d_ff", 1), ("enc_layers", 0),
                         ("dec_layers", 0), ("poly_n", 1), ("max_len", 2)):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or val < lo:
                raise ValueError(f"config: field {name!r} must be an integer >= {lo}, got {val!r}")
        for name in ("ln_eps", "poly_b_init", "poly_delta_init"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val):
                raise ValueError(f"config: field {name!r} must be a finite number, got {val!r}")
        if not self.ln_eps > 0:
            raise ValueError(f"config: field 'ln_eps' must be > 0, got {self.ln_eps!r}")
        for name, allowed in (("arch", ARCHS), ("attention", ("softmax", "poly")), ("norm", ("l2", "l1"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"config: field {name!r} must be one of {'|'.join(allowed)}, got "
                                 f"{getattr(self, name)!r}")
        if self.d_model % 2 or self.d_model % self.n_heads:
            raise ValueError(f"config: field 'd_model' {self.d_model} must be even (sinusoidal positions) and "
                             f"divisible by field 'n_heads' {self.n_heads}")

    def to_dict(self) -> dict:
        return asdict(self)


def sinusoid(max_len: int, d: int) -> np.ndarray:
    """Sinusoidal positions (Vaswani et al. 2017): sin on even, cos on odd channels, float32."""
    pos = np.arange(max_len, dtype=np.float64)[:, None]
    inv = np.exp(-math.log(10000.0) * np.arange(0, d, 2, dtype=np.float64) / d)
    pe = np.zeros((max_len, d))
    pe[:, 0::2], pe[:, 1::2] = np.sin(pos * inv), np.cos(pos * inv)
    return pe.astype(np.float32)


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every weight the model needs, with its shape (matrices are [in, out])."""
    d, f, h = cfg.d_model, cfg.d_ff, cfg.n_heads
    shapes = {"embed": (cfg.vocab_size, d)}

    def norm(p):
        shapes.update({f"{p}.g": (d,), f"{p}.b": (d,)})

    def attn(p):
        for m in "qkvo":
            shapes.update({f"{p}.{m}.w": (d, d), f"{p}.{m}.b": (d,)})
        if cfg.attention == "poly":
            shapes.update({f"{p}.poly_b": (h,), f"{p}.poly_delta": (h,)})

    def ffn(p):
        shapes.update({f"{p}.w1.w": (d, f), f"{p}.w1.b": (f,), f"{p}.w2.w": (f, d), f"{p}.w2.b": (d,)})

    for i in range(cfg.enc_layers):
        norm(f"enc.{i}.ln1"), attn(f"enc.{i}.self_attn"), norm(f"enc.{i}.ln2"), ffn(f"enc.{i}.ffn")
    for i in range(cfg.dec_layers):
        norm(f"dec.{i}.ln1"), attn(f"dec.{i}.self_attn"), norm(f"dec.{i}.ln2"), attn(f"dec.{i}.cross_attn")
        norm(f"dec.{i}.ln3"), ffn(f"dec.{i}.ffn")
    norm("enc.ln_f"), norm("dec.ln_f")
    return shapes


def module_names(cfg: ModelConfig) -> list[str]:
    """Every module instance's layer name, as IntConfig.is_int sees it (the names --int8-layers/--fp32-layers
    prefixes select from)."""
    names = ["enc.embed", "dec.embed"]
    names += [f"enc.{i}.{m}" for i in range(cfg.enc_layers) for m in ("ln1", "self_attn", "res1", "ln2", "ffn", "res2")]
    names += [f"dec.{i}.{m}" for i in range(cfg.dec_layers)
              for m in ("ln1", "self_attn", "res1", "ln2", "cross_attn", "res2", "ln3", "ffn", "res3")]
    return names + ["enc.ln_f", "dec.ln_f", "out_proj"]


def check_layer_prefixes(cfg: ModelConfig, prefixes, option: str) -> None:
    """UserError for an empty prefix or one that selects no layer of this model (it would silently select none)."""
    names = module_names(cfg)
    for p in prefixes:
        if not isinstance(p, str) or not p or not any(n.startswith(p) for n in names):
            raise UserError(f"{option}: {p!r} names no layer of this model ({cfg.enc_layers} encoder, "
                            f"{cfg.dec_layers} decoder layers; names like enc.0.self_attn, dec.1.ffn, out_proj)")


def load_config(path: Path) -> ModelConfig:
    """ModelConfig from config.json; one-line error naming the file and field."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model config missing")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    names = {f.name for f in fields(ModelConfig)}
    if not isinstance(raw, dict) or set(raw) - names:
        raise ValueError(f"{path}: unknown fields {sorted(set(raw) - names) if isinstance(raw, dict) else raw!r}")
    try:
        return ModelConfig(**raw)
    except TypeError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def load(model_dir: Path | str) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    """(config, float32 weights) from model_dir/{config.json, weights.npz}, fully validated."""
    model_dir = Path(model_dir)
    cfg = load_config(model_dir / CONFIG)
    path = model_dir / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model weights missing")
    try:
        with np.load(path, allow_pickle=False) as npz:
            raw = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path}: corrupt or truncated npz ({exc})") from None
    weights = {}
    for key, shape in expected_shapes(cfg).items():
        if key not in raw:
            raise ValueError(f"{path}: missing key {key!r}")
        w = raw.pop(key)
        if w.shape != shape:
            raise ValueError(f"{path}: key {key!r} has shape {w.shape}, expected {shape}")
        if w.dtype.kind != "f" or not np.isfinite(w).all():
            raise ValueError(f"{path}: key {key!r} must be finite floats (dtype {w.dtype})")
        weights[key] = w.astype(np.float32)
    if raw:
        raise ValueError(f"{path}: unexpected keys {sorted(raw)[:3]}")
    return cfg, weights


def emit(hook, name: str, x: np.ndarray) -> np.ndarray:
    """Capture hook: a callable gets (name, array) and what it returns, when not None, replaces the array (the RTL
    in the loop: itx.sim.chain); a dict stores array under name (last call wins)."""
    if callable(hook):
        y = hook(name, x)
        return x if y is None else y
    if hook is not None:
        hook[name] = x
    return x


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x @ W + b, W laid out [in, out]."""
    return x @ w + b


def layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm (Ba et al. 2016): g * (x - mu) / sqrt(var + eps) + b over the last axis."""
    xc = x - x.mean(-1, keepdims=True)
    return g * xc / np.sqrt((xc * xc).mean(-1, keepdims=True) + eps) + b


def l1_layernorm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """L1 LayerNorm, Lin et al. 2020 Eq. 13: g * (x - mu) / (C * mean|x - mu| + eps) + b, C = sqrt(pi/2)."""
    xc = x - x.mean(-1, keepdims=True)
    return g * xc / (np.float32(L1_C) * np.abs(xc).mean(-1, keepdims=True) + eps) + b


def softmax_attention(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Attention weights softmax(QK^T / sqrt(d_h)) over keys; masked keys get weight 0."""
    s = np.where(mask, scores, np.float32(-1e9))
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def poly_attention(scores: np.ndarray, mask: np.ndarray, b: np.ndarray, delta: np.ndarray, n: int) -> np.ndarray:
    """Polynomial attention, Lin et al. 2020 Eq. 11-12: Poly(s) = ReLU(s + b)^n + |delta| (per head),
    weights Poly(s) / sum_j Poly(s_j); masked keys contribute 0."""
    p = np.maximum(scores + b[:, None, None], 0) ** n + np.abs(delta)[:, None, None]
    p = p * mask
    return p / p.sum(-1, keepdims=True)


class FP32Transformer:
    """Numpy FP32 encoder-decoder. encode()/decode() are what greedy_search and beam_search call, so an
    integer model with the same two methods plugs into the same search and evaluation code."""

    def __init__(self, cfg: ModelConfig, weights: dict[str, np.ndarray], hook=None) -> None:
        self.cfg, self.w, self.hook = cfg, weights, hook
        self.pos = sinusoid(cfg.max_len, cfg.d_model)

    @classmethod
    def from_dir(cls, model_dir: Path | str, hook=None) -> "FP32Transformer":
        return cls(*load(model_dir), hook=hook)

    # --- modules -------------------------------------------------------------------------------------------
    def embedding(self, name: str, ids: np.ndarray, start: int = 0) -> np.ndarray:
        """E[ids] * sqrt(d) + PE[start : start + T] (shared embedding matrix)."""
        if start + ids.shape[1] > self.cfg.max_len:
            raise ValueError(f"sequence length {start + ids.shape[1]} exceeds max_len {self.cfg.max_len}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.cfg.vocab_size):
            raise ValueError(f"{name}: token id {int(ids.max())} outside the model's vocabulary (config field "
                             f"'vocab_size' {self.cfg.vocab_size}): tokenizer and model disagree")
        x = self.w["embed"][ids] * np.float32(math.sqrt(self.cfg.d_model)) + self.pos[start: start + ids.shape[1]]
        return emit(self.hook, name, x)

    def norm(self, name: str, x: np.ndarray) -> np.ndarray:
        fn = l1_layernorm if self.cfg.norm == "l1" else layer_norm
        return emit(self.hook, name, fn(x, self.w[f"{name}.g"], self.w[f"{name}.b"], np.float32(self.cfg.ln_eps)))

    def linear(self, name: str, x: np.ndarray) -> np.ndarray:
        return emit(self.hook, name, linear(x, self.w[f"{name}.w"], self.w[f"{name}.b"]))

    def heads(self, x: np.ndarray) -> np.ndarray:
        """[B, T, d] -> [B, H, T, d/H]."""
        b, t, d = x.shape
        return x.reshape(b, t, self.cfg.n_heads, d // self.cfg.n_heads).transpose(0, 2, 1, 3)

    def attention(self, name: str, x: np.ndarray, mem: np.ndarray, mask: np.ndarray,
                  cache: dict | None = None, grow: bool = True) -> np.ndarray:
        """Multi-head attention of queries x over keys/values mem. mask: bool, broadcast to [B, H, Tq, Tk].
        cache (incremental decoding): with grow (self-attention) the new keys/values are appended to the
        cached ones; without (cross-attention) they are computed from mem once and reused."""
        q = self.heads(self.linear(f"{name}.q", x))
        if cache is not None and not grow and "k" in cache:
            k, v = cache["k"], cache["v"]
        else:
            k, v = self.heads(self.linear(f"{name}.k", mem)), self.heads(self.linear(f"{name}.v", mem))
            if cache is not None and grow and "k" in cache:
                k, v = np.concatenate([cache["k"], k], 2), np.concatenate([cache["v"], v], 2)
        if cache is not None:
            cache["k"], cache["v"] = k, v
        scores = emit(self.hook, f"{name}.scores", q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(q.shape[-1])))
        if self.cfg.attention == "poly":
            a = poly_attention(scores, mask, self.w[f"{name}.poly_b"], self.w[f"{name}.poly_delta"], self.cfg.poly_n)
        else:
            a = softmax_attention(scores, mask)
        ctx = emit(self.hook, f"{name}.context", (emit(self.hook, f"{name}.probs", a) @ v))
        return self.linear(f"{name}.o", ctx.transpose(0, 2, 1, 3).reshape(x.shape))

    def ffn(self, name: str, x: np.ndarray) -> np.ndarray:
        """W2 ReLU(W1 x + b1) + b2."""
        h = emit(self.hook, f"{name}.relu", np.maximum(self.linear(f"{name}.w1", x), 0))
        return self.linear(f"{name}.w2", h)

    def residual(self, name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return emit(self.hook, name, x + y)

    # --- stacks --------------------------------------------------------------------------------------------
    def encode(self, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pre-LN encoder over padded source ids [B, S] -> (memory [B, S, d], key mask [B, 1, 1, S])."""
        mask = (src != PAD)[:, None, None, :]
        x = self.embedding("enc.embed", src)
        for i in range(self.cfg.enc_layers):
            p, h = f"enc.{i}", self.norm(f"enc.{i}.ln1", x)
            x = self.residual(f"{p}.res1", x, self.attention(f"{p}.self_attn", h, h, mask))
            x = self.residual(f"{p}.res2", x, self.ffn(f"{p}.ffn", self.norm(f"{p}.ln2", x)))
        return self.norm("enc.ln_f", x), mask

    def decode(self, tgt_in: np.ndarray, mem: np.ndarray, src_mask: np.ndarray, cache: list | None = None,
               start: int = 0) -> np.ndarray:
        """Logits [B, T, V] of target positions start..start+T-1 (see decode_hidden)."""
        return self.project(self.decode_hidden(tgt_in, mem, src_mask, cache, start))

    def project(self, h: np.ndarray) -> np.ndarray:
        """Output projection on the shared embedding: logits = h E^T."""
        return emit(self.hook, "out_proj", h @ self.w["embed"].T)

    def decode_hidden(self, tgt_in: np.ndarray, mem: np.ndarray, src_mask: np.ndarray, cache: list | None = None,
                      start: int = 0) -> np.ndarray:
        """Pre-LN decoder on target positions start..start+T-1 -> final hidden states [B, T, d]. With cache (a list of one
        dict per layer) earlier positions' self-attention keys/values are reused: incremental decoding.
        The layer dict's "k"/"v" are the self-attention's (beam search reorders them); "cross" holds the
        cross-attention's keys/values of mem, computed at the first step."""
        t = tgt_in.shape[1]
        causal = (np.arange(start + t)[None, :] <= start + np.arange(t)[:, None])[None, None]
        x = self.embedding("dec.embed", tgt_in, start)
        for i in range(self.cfg.dec_layers):
            p, h = f"dec.{i}", self.norm(f"dec.{i}.ln1", x)
            x = self.residual(f"{p}.res1", x, self.attention(f"{p}.self_attn", h, h, causal,
                                                             None if cache is None else cache[i]))
            x = self.residual(f"{p}.res2", x, self.attention(f"{p}.cross_attn", self.norm(f"{p}.ln2", x), mem,
                                                             src_mask, cross_cache(cache, i), grow=False))
            x = self.residual(f"{p}.res3", x, self.ffn(f"{p}.ffn", self.norm(f"{p}.ln3", x)))
        return self.norm("dec.ln_f", x)

    def logits(self, src: np.ndarray, tgt_in: np.ndarray) -> np.ndarray:
        """Teacher-forced logits [B, T, V] (what training computes)."""
        mem, mask = self.encode(src)
        return self.decode(tgt_in, mem, mask)


def cross_cache(cache: list | None, i: int) -> dict | None:
    """Layer i's cross-attention cache, kept inside its self-attention dict (see FP32Transformer.decode)."""
    return None if cache is None else cache[i].setdefault("cross", {})


def pad_batch(seqs: list[list[int]]) -> np.ndarray:
    """Right-padded int64 id matrix [B, max len]."""
    out = np.full((len(seqs), max(len(s) for s in seqs)), PAD, dtype=np.int64)
    for r, s in enumerate(seqs):
        out[r, : len(s)] = s
    return out


def max_target_len(src_len: int, cap: int) -> int:
    """Generation limit from the source length (targets are rarely > 1.5x + 10 source pieces)."""
    return min(cap, int(1.5 * src_len) + 10)


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def greedy_search(model, srcs: list[list[int]]) -> list[list[int]]:
    """Argmax decoding of a batch of sources (id lists); outputs stop before EOS or at the length limit."""
    src = pad_batch(srcs)
    mem, mask = model.encode(src)
    limit = np.array([max_target_len(len(s), model.cfg.max_len) for s in srcs])
    cache = [{} for _ in range(model.cfg.dec_layers)]
    tok, out = np.full(len(srcs), BOS), []
    length = np.full(len(srcs), -1)  # -1 while still decoding
    for t in range(limit.max()):
        tok = model.decode(tok[:, None], mem, mask, cache, start=t)[:, -1].argmax(-1)
        out.append(tok)
        length = np.where(length < 0, np.where(tok == EOS, t, np.where(t + 1 >= limit, t + 1, -1)), length)
        if (length >= 0).all():
            break
    out = np.stack(out, 1)
    return [out[r, : length[r]].tolist() for r in range(len(srcs))]


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty ((5 + |Y|) / 6)^alpha (Wu et al. 2016)."""
    return ((5.0 + length) / 6.0) ** alpha


def beam_search(model, srcs: list[list[int]], beam: int = 4, alpha: float = 0.6) -> list[list[int]]:
    """Batched beam search, score = log P(Y) / lp(|Y|) (GNMT). A sentence stops once `beam` hypotheses ended
    in EOS; at its length limit the best `beam` candidates are finished as they are."""
    n = len(srcs)
    mem, mask = model.encode(pad_batch(srcs))
    mem, mask = np.repeat(mem, beam, 0), np.repeat(mask, beam, 0)
    limit = [max_target_len(len(s), model.cfg.max_len) for s in srcs]
    cache = [{} for _ in range(model.cfg.dec_layers)]
    # Only beam 0 is live at the start, so the first step does not pick `beam` copies of one token.
    score = np.tile(np.r_[0.0, np.full(beam - 1, -np.inf)], n)
    hyps, tok = np.zeros((n * beam, 0), dtype=np.int64), np.full(n * beam, BOS)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(n)]
    active = np.ones(n, bool)
    for t in range(max(limit)):
        lp = log_softmax(model.decode(tok[:, None], mem, mask, cache, start=t)[:, -1].astype(np.float64))
        v = lp.shape[-1]
        cand = (score[:, None] + lp).reshape(n, beam * v)
        top = np.argsort(-cand, axis=1, kind="stable")[:, : 2 * beam]
        rows, score, tok = np.arange(n * beam), np.full(n * beam, -np.inf), np.full(n * beam, PAD)
        for i in np.flatnonzero(active):
            slot = i * beam
            for c in top[i]:
                r, w, s = i * beam + c // v, int(c % v), float(cand[i, c])
                if s == -np.inf or slot == (i + 1) * beam:
                    break
                if w == EOS or t + 1 >= limit[i]:
                    ys = hyps[r].tolist() + ([] if w == EOS else [w])
                    finished[i].append((s / length_penalty(len(ys) + 1, alpha), ys))
                    if t + 1 >= limit[i]:
                        slot += 1  # at the limit every kept candidate is final
                else:
                    rows[slot], score[slot], tok[slot] = r, s, w
                    slot += 1
            active[i] = len(finished[i]) < beam and t + 1 < limit[i]
        if not active.any():
            break
        hyps = np.concatenate([hyps[rows], tok[:, None]], 1)
        for c in cache:
            c["k"], c["v"] = c["k"][rows], c["v"][rows]
    return [max(f, key=lambda h: h[0])[1] for f in finished]


def translate(model, tok, texts: list[str], to: str, beam: int = 1, alpha: float = 0.6, batch_size: int = 32,
              progress=None, search=None) -> list[str]:
    """Detokenized translations of texts into language `to`; sources batched by length (output order kept).
    beam 1 is greedy search. progress(n) is called after each batch with its size. search(batch number, run):
    the output ids of a batch, given run() that searches it (a caller that records or reuses batches)."""
    if isinstance(beam, bool) or not isinstance(beam, int) or not 1 <= beam <= model.cfg.vocab_size:
        raise UserError(f"--beam: beam must be >= 1 and at most the vocabulary ({model.cfg.vocab_size}), got {beam!r}")
    if tok.vocab_size != model.cfg.vocab_size:
        raise UserError(f"the tokenizer has {tok.vocab_size} pieces, the model's config field 'vocab_size' says "
                        f"{model.cfg.vocab_size}: they belong to different models")
    srcs = [tok.encode_source(t, to) for t in texts]
    too_long = [i for i, s in enumerate(srcs) if len(s) > model.cfg.max_len]
    if too_long:
        raise ValueError(f"sentence {too_long[0]} has {len(srcs[too_long[0]])} pieces, max_len {model.cfg.max_len}")
    order = sorted(range(len(srcs)), key=lambda i: len(srcs[i]))
    out: list[str] = [""] * len(srcs)
    for b in range(0, len(order), batch_size):
        idx = order[b: b + batch_size]
        batch = [srcs[i] for i in idx]
        def run(batch=batch):
            return greedy_search(model, batch) if beam == 1 else beam_search(model, batch, beam, alpha)
        ids = run() if search is None else search(b // batch_size, run)
        for i, y in zip(idx, ids):
            out[i] = tok.decode(y)
        if progress:
            progress(len(idx))
    return out


def model_dir(name: str) -> Path:
    """models/<name> for a committed model name (vanilla | integer) or a path."""
    return MODELS / name if (MODELS / name).is_dir() or "/" not in name else Path(name)
