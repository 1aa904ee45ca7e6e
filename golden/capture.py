"""Capture (Lin et al. Fig. 7): FP32 vs dequantized integer activations by layer name, and every integer GEMM
written as golden vectors (golden/vectors.py: hex + JSON manifest, the format the RTL testbench reads).

Both models run teacher-forced on the same (source, target prefix), so every module boundary pairs up by name.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import load_hw_config
from .int_config import IntConfig
from .int_model import IntTransformer
from .model import FP32Transformer, ModelConfig, pad_batch
from .qtensor import QTensor
from .tokenizer import BOS
from .vectors import write_manifest


@dataclass
class Capture:
    fp32: dict[str, np.ndarray] = field(default_factory=dict)
    integer: dict[str, np.ndarray] = field(default_factory=dict)
    gemms: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def int_hook(self, name: str, x) -> None:
        self.integer[name] = x.dequantize() if isinstance(x, QTensor) else np.asarray(x, np.float64)

    def gemm_hook(self, name: str, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
        """Split a batched GEMM into the 2-D GEMMs the array runs, named layer[.b<i>][.h<j>]."""
        if a.ndim == 2:
            self.gemms.append((name, a, b, c))
            return
        for idx in np.ndindex(*c.shape[:-2]):
            tag = "".join(f".{p}{i}" for p, i in zip("bh", idx) if not (p == "b" and c.shape[0] == 1))
            self.gemms.append((name + tag, a[idx], b[idx], c[idx]))

    def mse(self) -> dict[str, tuple[float, float]]:
        """name -> (MSE, MSE / mean square of the FP32 activation) for every name both models emitted."""
        out = {}
        for name, ref in self.fp32.items():
            if name in self.integer and self.integer[name].shape == ref.shape:
                err = float(np.mean((self.integer[name] - ref.astype(np.float64)) ** 2))
                out[name] = (err, err / max(float(np.mean(ref.astype(np.float64) ** 2)), 1e-30))
        return out


def capture(cfg: ModelConfig, weights: dict[str, np.ndarray], icfg: IntConfig, src: list[int],
            tgt: list[int]) -> Capture:
    """Run FP32 and integer models teacher-forced on one sentence (source ids, target ids incl. EOS)."""
    cap = Capture()
    s, t = pad_batch([src]), pad_batch([[BOS] + list(tgt[:-1])])
    FP32Transformer(cfg, weights, hook=cap.fp32).logits(s, t)
    IntTransformer(cfg, weights, icfg, hook=cap.int_hook, gemm_hook=cap.gemm_hook).logits(s, t)
    return cap


def write(cap: Capture, out: str | Path, icfg: IntConfig, source: dict | None = None) -> Path:
    """out/manifest.json + hex files of every captured GEMM, out/activations.npz (fp32/<name>, int/<name>) and
    out/mse.json, written as one set (golden/atomic.py). The operands must fit the array's in_bits
    (hw/config.toml). `source`: what was captured (recorded in the manifest)."""
    hw = load_hw_config()
    if icfg.bits > hw.in_bits:
        raise ValueError(f"bits {icfg.bits} exceed the array's in_bits {hw.in_bits} (hw/config.toml)")

    def extra(manifest: Path) -> None:
        np.savez(manifest.parent / "activations.npz", **{f"fp32/{k}": v for k, v in cap.fp32.items()},
                 **{f"int/{k}": v for k, v in cap.integer.items()})
        (manifest.parent / "mse.json").write_text(json.dumps({k: {"mse": m, "relative": r}
                                                              for k, (m, r) in cap.mse().items()}, indent=1) + "\n")
    return write_manifest(out, [(n, a, b) for n, a, b, _ in cap.gemms], in_bits=hw.in_bits, acc_bits=icfg.acc_bits,
                          overflow=icfg.overflow, source=source, extra=extra)
