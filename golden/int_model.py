"""Integer Transformer (Lin et al. 2020): golden/model.py's encoder-decoder with every tensor a QTensor.

Same module structure and layer names as FP32Transformer, so activations pair up by name (capture.py) and the same
greedy_search / beam_search drive it. Data path, with every module integer (IntConfig, golden/int_config.py):
  weights quantized once at load (Sec. 3.1: one scale per output column; embedding one per vocab row),
  matmul = INT8 x INT8 -> itx.golden.gemm accumulator, then bias add with scale matching (Eq. 8) and re-scaling (Eq. 10,
  Alg. 1), polynomial attention (Eq. 11-12), L1 LayerNorm (Eq. 13), residual adds with matching, integer logits.
Floats appear only in the scale bookkeeping (float32 scales beside the integers). A module switched off in the
IntConfig runs FP32Transformer's code between a dequantize and a quantize.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .attention import attention_output, fixed_point_bits, lift, poly
from .gemm import gemm, prepare
from . import kernels
from .int_config import IntConfig
from .layernorm import l1_layernorm
from .model import check_layer_prefixes, FP32Transformer, ModelConfig, emit, load
from .ops import add, relu, transpose
from .qtensor import QTensor, checked_scale
from .quant import check_qtensor, divide_to, match_along, quantize, rescale


class QBatch(QTensor):
    """A QTensor whose leading (sentence) axis can be indexed and repeated, so itx.golden.model.beam_search can
    replicate the encoder memory (np.repeat) and reorder cached keys/values (cache["k"][rows]).
    Selected, repeated or re-laid-out values of a valid QTensor are valid: such results are QTensor.trusted."""

    def _scale_rows(self, f):
        return self.scale if self.scale.shape[0] == 1 else f(self.scale)

    def __getitem__(self, rows) -> "QBatch":
        return QBatch.trusted(self.values[rows], self._scale_rows(lambda s: s[rows]), self.bits)

    def repeat(self, n: int, axis: int = 0) -> "QBatch":
        if axis != 0:
            raise ValueError(f"QBatch.repeat: only axis 0 (sentences) is supported, got {axis}")
        return QBatch.trusted(np.repeat(self.values, n, 0), self._scale_rows(lambda s: np.repeat(s, n, 0)), self.bits)


def batch(x: QTensor) -> QBatch:
    return x if isinstance(x, QBatch) else QBatch.trusted(x.values, x.scale, x.bits)


class KVCache(QBatch):
    """Self-attention keys or values [B, H, T, dh] of the positions decoded so far, in capacity-doubling buffers, so a
    decoding step appends its positions in place instead of copying the whole cache (O(T) per step).

    With match=(mode, rounding) (the values) it also keeps `matched` = M(v, s, T) (Table 1's matching along the keys,
    which the P V GEMM of Eq. 12 needs): a new position is divided to the running minimum scale once, and only the
    sentences whose minimum a new position lowers are re-matched from their raw values. Matching is element-wise in
    (value, scale, minimum), so `matched` is exactly match_along(self, 2) at every step. [rows] (beam search's
    reordering) reorders the buffers and the matched copy alike. `f32` is the float32 copy of the GEMM operand (the
    keys, or the matched values), kept in step, so itx.golden.gemm does not re-convert the whole cache every step."""

    @classmethod
    def start(cls, x: QTensor, match: tuple[str, str] | None = None) -> "KVCache":
        s = np.broadcast_to(x.scale, x.scale.shape[:2] + x.shape[2:3] + x.scale.shape[3:])
        empty = cls._view({"buf": np.empty_like(x.values), "sbuf": np.empty_like(s), "fbuf": np.empty(x.shape, np.float32),
                           "mbuf": None if match is None else np.empty_like(x.values)}, x.bits, 0, match, None)
        return empty.append(x)

    @classmethod
    def _view(cls, bufs: dict, bits: int, n: int, match, smin) -> "KVCache":
        t = cls.trusted(bufs["buf"][:, :, :n], bufs["sbuf"][:, :, :n], bits)   # views of valid values/scales
        for k, v in (("bufs", bufs), ("match", match), ("smin", smin)):
            object.__setattr__(t, k, v)
        return t

    @property
    def matched(self) -> QTensor:
        n = self.shape[2]
        return QTensor.trusted(self.bufs["mbuf"][:, :, :n], self.smin, self.bits)  # |x / d| <= |x| for a factor <= 1

    @property
    def f32(self) -> np.ndarray:
        """float32 copy of the GEMM operand: values (no match) or matched values."""
        return self.bufs["fbuf"][:, :, :self.shape[2]]

    def append(self, x: QTensor) -> "KVCache":
        """This cache with x's positions added (written into the shared buffers: only the newest object is live)."""
        n0 = self.shape[2]
        n = n0 + x.shape[2]
        bufs = self.bufs
        if n > bufs["buf"].shape[2]:                          # grow: double the capacity
            cap = max(2 * bufs["buf"].shape[2], n)
            bufs = {k: None if b is None else _grown(b, n0, cap) for k, b in bufs.items()}
        buf, fbuf = bufs["buf"], bufs["fbuf"]
        buf[:, :, n0:n] = x.values
        bufs["sbuf"][:, :, n0:n] = x.scale
        bits = max(self.bits, x.bits)
        if self.match is None:
            fbuf[:, :, n0:n] = x.values
            return KVCache._view(bufs, bits, n, None, None)
        new_min = x.scale.min(axis=2, keepdims=True)
        smin = new_min if self.smin is None else np.minimum(self.smin, new_min)
        mbuf = bufs["mbuf"]
        mbuf[:, :, n0:n] = fbuf[:, :, n0:n] = divide_to(x.values, x.scale, smin, *self.match)
        if self.smin is not None:
            lowered = np.flatnonzero((smin < self.smin).reshape(smin.shape[0], -1).any(axis=1))
            if lowered.size:
                pick = _rows(lowered)
                sb = pick(bufs["sbuf"])[:, :, :n0]
                mbuf[lowered, :, :n0] = fbuf[lowered, :, :n0] = divide_to(buf[lowered, :, :n0], sb, pick(smin),
                                                                          *self.match)
        return KVCache._view(bufs, bits, n, self.match, smin)

    def __getitem__(self, rows) -> "KVCache":
        pick = _rows(rows)
        bufs = {k: None if b is None else (b[rows] if k != "sbuf" else pick(b)) for k, b in self.bufs.items()}
        return KVCache._view(bufs, self.bits, self.shape[2], self.match, pick(self.smin))


def _rows(rows):
    """Select sentences `rows` of a per-sentence array; one shared by all sentences (leading dim 1) stays."""
    return lambda a: a if a is None or a.shape[0] == 1 else a[rows]


def _grown(buf: np.ndarray, n: int, cap: int) -> np.ndarray:
    out = np.empty(buf.shape[:2] + (cap,) + buf.shape[3:], buf.dtype)
    out[:, :, :n] = buf[:, :, :n]
    return out


def split_heads(x: QTensor, h: int) -> QTensor:
    """[B, T, d] -> [B, H, T, d/H]; a scale dim of 1 (shared across features) stays 1."""
    def split(a: np.ndarray) -> np.ndarray:
        b, t, d = a.shape
        return a.reshape(b, t, min(h, d), d // min(h, d)).transpose(0, 2, 1, 3)
    return QTensor.trusted(split(x.values), split(x.scale), x.bits)


def merge_heads(x: QTensor) -> QTensor:
    """[B, H, T, d/H] -> [B, T, d] (scale broadcast to full width only where it varies across heads)."""
    b, h, t, dh = x.shape
    s = x.scale.transpose(0, 2, 1, 3)
    s = s.reshape(s.shape[0], s.shape[1], 1) if s.shape[2:] == (1, 1) else \
        np.broadcast_to(s, s.shape[:2] + (h, dh)).reshape(s.shape[0], s.shape[1], h * dh)
    return QTensor.trusted(x.values.transpose(0, 2, 1, 3).reshape(b, t, h * dh), s, x.bits)


class IntTransformer:
    """encode()/decode() like FP32Transformer; decode returns the integer logits (int64, one scale per row when
    the output projection is integer, so argmax on the integers is argmax of the real logits; see SPEC.md).
    hook(name, QTensor) sees every module boundary; gemm_hook(name, a, b, c) every integer GEMM."""

    def __init__(self, cfg: ModelConfig, weights: dict[str, np.ndarray], icfg: IntConfig | None = None,
                 hook=None, gemm_hook=None) -> None:
        self.cfg, self.icfg = cfg, icfg or IntConfig()
        self.hook, self.gemm_hook = hook, gemm_hook
        self.fp = FP32Transformer(cfg, weights)
        check_layer_prefixes(cfg, self.icfg.int_layers, "--int8-layers (IntConfig.int_layers)")
        check_layer_prefixes(cfg, self.icfg.fp32_layers, "--fp32-layers (IntConfig.fp32_layers)")
        for kind, need, have in (("attn", "poly", cfg.attention), ("ln", "l1", cfg.norm)):
            if have != need and kind in self.icfg.modules:
                raise ValueError(f"integer {kind} needs a model with {need} (this one has {have}); "
                                 f"leave {kind!r} out of the integer modules")
        self.kernels = kernels.enabled(self.icfg)   # compiled epilogues (golden/kernels.py), same bits
        self.q = self._quantize_weights(weights)
        for k in self.q:
            if k.endswith(".w") or k == "out_proj":
                prepare(self.q[k].values, self.q[k].bits)

    @classmethod
    def from_dir(cls, model_dir: Path | str, icfg: IntConfig | None = None, **hooks) -> "IntTransformer":
        return cls(*load(model_dir), icfg, **hooks)

    def _quantize_weights(self, w: dict[str, np.ndarray]) -> dict[str, QTensor]:
        """Once at load: matrices [in, out] per output column (Lin 3.1), the embedding per vocab row for the
        lookup and per tensor for the output projection (one logit scale per row), positions per row,
        1-D parameters per tensor at param_bits."""
        bits, pbits = self.icfg.bits, self.icfg.param_bits
        q = {"embed": quantize(w["embed"], bits, "row"), "out_proj": quantize(w["embed"].T, bits, "tensor"),
             "pos": quantize(self.fp.pos, bits, "row")}
        h = self.cfg.n_heads
        for k, v in w.items():
            if k.endswith(".w"):
                q[k] = transpose(quantize(v.T, bits, "row"))
            elif k.endswith(("poly_b", "poly_delta")):
                q[k] = quantize(v.reshape(h, 1, 1), pbits, "tensor")
            elif k != "embed":
                q[k] = quantize(v, pbits, "tensor")
        return q

    # --- integer primitives --------------------------------------------------------------------------------
    def act(self, x: QTensor) -> QTensor:
        """Alg. 1 re-scaling of an activation to `bits` with the configured granularity and divisor."""
        c = self.icfg
        return rescale(x, c.bits, c.granularity, c.rescale, c.block, c.rounding)

    def add(self, a: QTensor, b: QTensor) -> QTensor:
        c = self.icfg
        return add(a, lift(b, a.values.ndim, "b"), c.match, c.rounding, c.acc_bits, c.overflow)

    def matmul(self, name: str, a: QTensor, b: QTensor, b_f32: np.ndarray | None = None) -> QTensor:
        """itx.golden.ops.matmul semantics (match along K, gemm, scale = outer product) with a batched GEMM and the
        gemm_hook; b may be a 2-D weight shared by every row of a; b_f32: b's float32 copy (KVCache.f32)."""
        c = self.icfg
        a, mb = match_along(a, -1, c.match, c.rounding), match_along(b, -2, c.match, c.rounding)
        b_f32, b = b_f32 if mb is b else None, mb
        av = a.values.reshape(-1, a.shape[-1]) if b.values.ndim == 2 else a.values  # one 2-D GEMM: BLAS-friendly
        out = gemm(av, b.values, c.acc_bits, c.overflow, in_bits=max(a.bits, b.bits), in_range=True,  # QTensors
                   b_f32=b_f32)
        out = out.reshape(a.shape[:-1] + b.shape[-1:]) if b.values.ndim == 2 else out
        if self.gemm_hook is not None:
            self.gemm_hook(name, av, b.values, out.reshape(av.shape[:-1] + out.shape[-1:]))
        return QTensor.trusted(out, checked_scale(a.scale * b.scale, out.shape), c.acc_bits)  # gemm: in acc_bits

    def quantize(self, x: np.ndarray) -> QTensor:
        c = self.icfg
        return quantize(x, c.bits, c.granularity, c.block if c.granularity == "block" else None, c.rounding)

    def fp32(self, name: str, fn, *xs):
        """Module `name` in FP32 (ablation): dequantize the QTensor inputs, run fn, quantize the output."""
        return emit(self.hook, name, self.quantize(fn(*(x.dequantize().astype(np.float32)
                                                        if isinstance(x, QTensor) else x for x in xs))))

    # --- modules (names as in FP32Transformer) -------------------------------------------------------------
    def embedding(self, name: str, ids: np.ndarray, start: int = 0) -> QTensor:
        """E[ids] * sqrt(d) + PE: a table lookup of pre-quantized rows, sqrt(d) folded into the scale."""
        ids = np.asarray(ids)
        if not np.issubdtype(ids.dtype, np.integer) or ids.ndim != 2:
            raise ValueError(f"{name}: token ids must be a 2-D integer array, got {ids.ndim}-D {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.cfg.vocab_size):
            raise ValueError(f"{name}: token ids must be in 0..{self.cfg.vocab_size - 1}")
        if start + ids.shape[1] > self.cfg.max_len:
            raise ValueError(f"sequence length {start + ids.shape[1]} exceeds max_len {self.cfg.max_len}")
        if not self.icfg.is_int("emb", name):
            return self.fp32(name, lambda: self.fp.embedding(name, ids, start))
        e, pos = self.q["embed"], self.q["pos"]
        tok = QTensor(e.values[ids], e.scale[ids] / np.float32(math.sqrt(self.cfg.d_model)), e.bits)
        span = slice(start, start + ids.shape[1])
        pe = QTensor.trusted(pos.values[None, span], pos.scale[None, span], pos.bits)
        return emit(self.hook, name, self.act(self.add(tok, pe)))

    def norm(self, name: str, x: QTensor) -> QTensor:
        if not self.icfg.is_int("ln", name):
            return self.fp32(name, lambda v: self.fp.norm(name, v), x)
        c, g, b = self.icfg, self.q[f"{name}.g"], self.q[f"{name}.b"]
        y = kernels.l1_layernorm(x, g, b, c) if self.kernels else None
        if y is None:
            y = l1_layernorm(x, g, b, c.bits, c.ln_division, c.ln_frac_bits, c.match, c.rounding, c.rescale,
                             c.granularity, c.block, c.acc_bits, c.overflow)
        return emit(self.hook, name, y)

    def linear(self, name: str, x: QTensor) -> QTensor:
        """act(x W + b). The per-column weight scales are matched along the features first (Table 1's
        M(x, s, d)), so activations keep one scale per granularity group; the bias (param_bits) then joins the
        accumulator through scale matching (Eq. 8)."""
        c, bias = self.icfg, self.q[f"{name}.b"]
        acc = self.matmul(name, x, self.q[f"{name}.w"])
        y = kernels.linear(acc, bias, c) if self.kernels else None
        if y is None:
            y = self.act(self.add(match_along(acc, -1, c.match, c.rounding), bias))
        return emit(self.hook, name, y)

    def attention(self, name: str, x: QTensor, mem: QTensor, mask: np.ndarray, cache: dict | None = None,
                  grow: bool = True):
        """Multi-head polynomial attention; cache as FP32Transformer.attention: with grow (self-attention) the
        integer K/V of earlier positions are extended, without (cross-attention) K^T ("kt") and V of mem are computed
        once, V already matched along the keys (so poly_attention's match is a no-op), both prepared GEMM operands."""
        if not self.icfg.is_int("attn", name):
            return self.fp32(name, lambda a, m: self.fp.attention(name, a, m, mask, cache, grow), x, mem)
        h, c = self.cfg.n_heads, self.icfg
        q = split_heads(self.linear(f"{name}.q", x), h)
        f32 = (None, None)
        if cache is not None and not grow and "kt" in cache:
            kt, v = cache["kt"], cache["v"]
        else:
            k, v = split_heads(self.linear(f"{name}.k", mem), h), split_heads(self.linear(f"{name}.v", mem), h)
            if cache is not None and grow:
                if "k" in cache:
                    k, v = cache["k"].append(k), cache["v"].append(v)
                else:
                    k, v = KVCache.start(k), KVCache.start(v, (c.match, c.rounding))
                cache["k"], cache["v"] = k, v
                f32, v = (np.swapaxes(k.f32, -1, -2), v.f32), v.matched
            kt = transpose(k)
            if not grow:
                v = match_along(v, -2, c.match, c.rounding)
            if cache is not None and not grow:
                cache["kt"], cache["v"] = kt, batch(v)
                prepare(kt.values, kt.bits), prepare(v.values, v.bits)
        ctx = emit(self.hook, f"{name}.context", self.poly_attention(name, q, kt, v, mask, *f32))
        return self.linear(f"{name}.o", merge_heads(ctx))

    def poly_attention(self, name: str, q: QTensor, kt: QTensor, v: QTensor, mask: np.ndarray,
                       kt_f32: np.ndarray | None = None, v_f32: np.ndarray | None = None) -> QTensor:
        """Eq. 12 as itx.golden.attention.poly_attention (keys given transposed, kt = K^T), with this model's batched,
        captured GEMMs: Poly(Q K^T / sqrt(d)) V / sum_j Poly(.), numerator pre-shifted by frac_bits ("fixed").
        kt_f32, v_f32: float32 copies of kt and v (a KVCache's)."""
        c = self.icfg
        f = fixed_point_bits(c.attn_division, c.attn_frac_bits)
        scores = self.matmul(f"{name}.scores", q, kt, kt_f32)
        scale = checked_scale(scores.scale * np.float32(math.sqrt(q.shape[-1])), scores.shape)
        scores = emit(self.hook, f"{name}.scores", QTensor.trusted(scores.values, scale, scores.bits))
        b, delta = self.q[f"{name}.poly_b"], self.q[f"{name}.poly_delta"]
        p = kernels.poly_probs(scores, b, delta, self.cfg.poly_n, mask, c) if self.kernels else None
        if p is None:
            p = poly(match_along(scores, -1, c.match, c.rounding), b, delta, self.cfg.poly_n, c.bits, mask, c.match,
                     c.rounding, c.rescale, c.acc_bits, c.overflow)
            p = rescale(p, c.bits, "row", c.rescale, None, c.rounding)
        p = match_along(emit(self.hook, f"{name}.poly", p), -1, c.match, c.rounding)
        v = match_along(v, -2, c.match, c.rounding)
        num = self.matmul(f"{name}.context", p, v, v_f32)
        out = kernels.context(num, p, v, f, c) if self.kernels else None
        if out is None:
            out = attention_output(num, p, v.scale, f, c.bits, c.rescale, c.rounding, c.acc_bits, c.overflow)
        return out

    def ffn(self, name: str, x: QTensor) -> QTensor:
        if not self.icfg.is_int("ffn", name):
            return self.fp32(name, lambda v: self.fp.ffn(name, v), x)
        hid = emit(self.hook, f"{name}.relu", relu(self.linear(f"{name}.w1", x)))
        return self.linear(f"{name}.w2", hid)

    def residual(self, name: str, x: QTensor, y: QTensor) -> QTensor:
        if not self.icfg.is_int("res", name):
            return self.fp32(name, np.add, x, y)
        out = kernels.residual(x, y, self.icfg) if self.kernels else None
        return emit(self.hook, name, self.act(self.add(x, y)) if out is None else out)

    def project(self, h: QTensor) -> QTensor | np.ndarray:
        """Logits h E^T. Integer: E^T has one scale, so each row of logits has one scale (its h row's after
        matching along d) and its int64 values order like the real logits. FP32 ablation: float logits."""
        if not self.icfg.is_int("proj", "out_proj"):
            return emit(self.hook, "out_proj", h.dequantize() @ self.fp.w["embed"].T.astype(np.float64))
        return emit(self.hook, "out_proj", self.matmul("out_proj", h, self.q["out_proj"]))

    # --- stacks: FP32Transformer's own encode / decode_hidden, run on this class's integer modules ---------------
    decode_hidden = FP32Transformer.decode_hidden
    logits = FP32Transformer.logits

    def encode(self, src: np.ndarray) -> tuple[QBatch, np.ndarray]:
        mem, mask = FP32Transformer.encode(self, np.asarray(src))
        return batch(mem), mask

    def decode(self, tgt_in: np.ndarray, mem: QTensor, src_mask: np.ndarray, cache: list | None = None,
               start: int = 0) -> np.ndarray:
        """Logits [B, T, V] of target positions start..start+T-1 (int64 when the projection is integer)."""
        logits = self.project(self.decode_hidden(tgt_in, check_qtensor(mem, "mem"), src_mask, cache, start))
        return logits.values if isinstance(logits, QTensor) else logits


class DequantizedScores:
    """Beam-search view of an IntTransformer: decode() returns the dequantized logits, because beam scoring
    (log-softmax over the vocabulary) happens outside the integer data path (SPEC.md, "Integer Transformer")."""

    def __init__(self, model: IntTransformer) -> None:
        self.model, self.cfg = model, model.cfg

    def encode(self, src):
        return self.model.encode(src)

    def decode(self, tgt_in, mem, src_mask, cache=None, start=0) -> np.ndarray:
        logits = self.model.project(self.model.decode_hidden(tgt_in, mem, src_mask, cache, start))
        return logits.dequantize() if isinstance(logits, QTensor) else logits


def search_view(model, beam: int):
    """The object greedy (beam 1: integer argmax) or beam search should drive."""
    return DequantizedScores(model) if beam > 1 and isinstance(model, IntTransformer) else model

