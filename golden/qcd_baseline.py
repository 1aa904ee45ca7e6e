"""Quantize-compute-dequantize baseline (Prato et al. 2019): FP32 compute with every matmul operand and module
output passed through affine k-bit quantization with bucketing and straight back (fake quantization).

Contrast with golden/int_model.py: here the data path stays float and only the values are snapped to the k-bit
grid; Lin et al.'s integer model keeps integers end to end and bookkeeps scales apart.
"""
from __future__ import annotations

import numpy as np

from .model import FP32Transformer, ModelConfig


def affine_qcd(x: np.ndarray, bits: int = 8, bucket: int = 256) -> np.ndarray:
    """Prato et al. Sec. 3: per bucket of `bucket` consecutive values (along the flattened last dim),
    x_q = round((x - min) / d), d = (max - min) / (2^bits - 1); returns the dequantized x_q * d + min (float32)."""
    if not 2 <= bits <= 16 or bucket < 1:
        raise ValueError(f"affine_qcd: bits must be in 2..16 and bucket >= 1, got bits={bits}, bucket={bucket}")
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("affine_qcd: x has NaN/Inf entries")
    flat = x.reshape(-1)
    pad = -flat.size % bucket
    b = np.pad(flat, (0, pad), mode="edge").reshape(-1, bucket)
    lo, hi = b.min(1, keepdims=True), b.max(1, keepdims=True)
    d = np.where(hi > lo, (hi - lo) / np.float32((1 << bits) - 1), np.float32(1))
    q = np.rint((b - lo) / d) * d + lo
    return q.reshape(-1)[: flat.size].reshape(x.shape).astype(np.float32)


class QCDTransformer(FP32Transformer):
    """FP32Transformer with fake-quantized weights (once, at load) and activations: the input of every linear
    layer, Q/K/V heads (the attention matmul operands), every LayerNorm, embedding and residual output.
    Gap: the attention probabilities (inputs of probs @ V) stay FP32 (FP32Transformer computes them inline)."""

    def __init__(self, cfg: ModelConfig, weights: dict[str, np.ndarray], bits: int = 8, bucket: int = 256,
                 hook=None) -> None:
        self.bits, self.bucket = bits, bucket
        fq = {k: affine_qcd(v, bits, bucket) if v.ndim == 2 else v for k, v in weights.items()}
        super().__init__(cfg, fq, hook)

    def qcd(self, x: np.ndarray) -> np.ndarray:
        return affine_qcd(x, self.bits, self.bucket)

    def embedding(self, name, ids, start=0):
        return self.qcd(super().embedding(name, ids, start))

    def norm(self, name, x):
        return self.qcd(super().norm(name, x))

    def linear(self, name, x):
        return super().linear(name, self.qcd(x))

    def heads(self, x):
        return super().heads(self.qcd(x))

    def residual(self, name, x, y):
        return self.qcd(super().residual(name, x, y))
