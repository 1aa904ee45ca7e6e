"""Capture (Lin et al. Fig. 7): FP32 vs dequantized integer activations by layer name, and every integer GEMM of
the integer model, with the re-scaling of each linear layer, written as golden vectors (golden/vectors.py: hex,
.npz and a JSON manifest, the format the RTL testbenches read; golden/VECTORS.md).

Both models run teacher-forced on the same (source, target prefix), so every module boundary pairs up by name. A
batched GEMM is split into the 2-D GEMMs the array runs, named layer[.b<i>][.h<j>] (batch index omitted for one
sentence): `enc.0.self_attn.scores.h3` is head 3's Q K^T.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import check_target
from .attention import lift
from .config import HwConfig, load_hw_config
from .errors import UserError
from .int_config import IntConfig
from .int_model import IntTransformer
from .model import FP32Transformer, ModelConfig, pad_batch
from .qtensor import QTensor
from .requant import STAGE_MODES, linear_factors
from .tokenizer import BOS
from .vectors import MANIFEST, VectorGemm, npz_bytes, write_manifest


@dataclass
class Capture:
    fp32: dict[str, np.ndarray] = field(default_factory=dict)
    integer: dict[str, np.ndarray] = field(default_factory=dict)
    gemms: list[VectorGemm] = field(default_factory=list)

    def int_hook(self, name: str, x) -> None:
        self.integer[name] = x.dequantize() if isinstance(x, QTensor) else np.asarray(x, np.float64)

    def gemm_hook(self, name: str, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
        """Split a batched GEMM into the 2-D GEMMs the array runs, named layer[.b<i>][.h<j>]."""
        if a.ndim == 2:
            self.gemms.append(VectorGemm(name, a, b, c))
            return
        for idx in np.ndindex(*c.shape[:-2]):
            tag = "".join(f".{p}{i}" for p, i in zip("bh", idx) if not (p == "b" and c.shape[0] == 1))
            self.gemms.append(VectorGemm(name + tag, a[idx], b[idx], c[idx]))

    def mse(self) -> dict[str, tuple[float, float]]:
        """name -> (MSE, MSE / mean square of the FP32 activation) for every name both models emitted."""
        out = {}
        for name, ref in self.fp32.items():
            if name in self.integer and self.integer[name].shape == ref.shape:
                err = float(np.mean((self.integer[name] - ref.astype(np.float64)) ** 2))
                out[name] = (err, err / max(float(np.mean(ref.astype(np.float64) ** 2)), 1e-30))
        return out

    @property
    def rescaled(self) -> int:
        """How many GEMMs carry their re-scaling (factors and expected Y)."""
        return sum(g.requant is not None for g in self.gemms)


class _Recording(IntTransformer):
    """IntTransformer that adds to each linear layer's captured GEMM the itx_requant factors of its post-GEMM
    act(add(acc, bias)) and the INT8 output, when the RTL's re-scaling unit can compute it (IntConfig.match one of
    its STAGE_MODES)."""

    def __init__(self, *args, cap: Capture, **kwargs):
        super().__init__(*args, hook=cap.int_hook, gemm_hook=cap.gemm_hook, **kwargs)
        self.cap, self.acc = cap, None

    def matmul(self, name, a, b, b_f32=None):
        self.acc = super().matmul(name, a, b, b_f32)
        return self.acc

    def linear(self, name, x):
        y = super().linear(name, x)
        c, last = self.icfg, self.cap.gemms[-1]
        if c.match in STAGE_MODES:
            if last.layer != name:
                raise RuntimeError(f"{name}: linear layer ran no captured GEMM")
            bias = lift(self.q[f"{name}.b"], self.acc.values.ndim, f"{name}.b")
            f, _ = linear_factors(self.acc, bias, c.bits, c.granularity, c.rescale, c.block, c.rounding, c.match)
            n = last.c.shape[-1]
            self.cap.gemms[-1] = last._replace(requant=(f.flat(n), y.values.reshape(-1, n)))
        return y


def capture(cfg: ModelConfig, weights: dict[str, np.ndarray], icfg: IntConfig, src: list[int],
            tgt: list[int]) -> Capture:
    """Run FP32 and integer models teacher-forced on one sentence (source ids, target ids incl. EOS)."""
    cap = Capture()
    s, t = pad_batch([src]), pad_batch([[BOS] + list(tgt[:-1])])
    FP32Transformer(cfg, weights, hook=cap.fp32).logits(s, t)
    _Recording(cfg, weights, icfg, cap=cap).logits(s, t)
    return cap


def check_capture(out: str | Path, icfg: IntConfig, hw: HwConfig) -> Path:
    """Refuse before the model runs: an output that cannot be replaced, or an IntConfig the datapath cannot hold."""
    if icfg.bits > hw.in_bits:
        raise UserError(f"--bits {icfg.bits} exceeds the datapath's in_bits {hw.in_bits} (--in-bits / --hw-config)")
    if (icfg.acc_bits, icfg.overflow) != (hw.acc_bits, hw.overflow):
        raise UserError(f"the integer model's accumulator (acc_bits {icfg.acc_bits}, {icfg.overflow}) is not the "
                        f"datapath's ({hw.acc_bits}, {hw.overflow}); give --acc-bits / --overflow once for both")
    return check_target(out, MANIFEST, "vector directory")


def write(cap: Capture, out: str | Path, icfg: IntConfig, source: dict | None = None, hw: HwConfig | None = None,
          layers: tuple[str, ...] = ()) -> Path:
    """out/manifest.json with the hex and .npz files of every captured GEMM (optionally only those whose name
    starts with one of `layers`), out/activations.npz (fp32/<name>, int/<name>) and out/mse.json, written as one set
    (golden/atomic.py) with reproducible bytes. hw: the datapath (default hw/config.toml). `source`: what was
    captured (recorded in the manifest)."""
    hw = hw or load_hw_config()
    check_capture(out, icfg, hw)
    gemms = [g for g in cap.gemms if not layers or g.layer.startswith(layers)]
    if not gemms:
        names = [g.layer for g in cap.gemms[:3]]
        raise UserError(f"--layer {' '.join(layers)}: selects none of the {len(cap.gemms)} GEMMs of the sentence "
                        f"(names look like {', '.join(names)}, ...); a run that compares nothing has not passed")

    def extra(manifest: Path) -> None:
        acts = {**{f"fp32/{k}": v for k, v in cap.fp32.items()}, **{f"int/{k}": v for k, v in cap.integer.items()}}
        (manifest.parent / "activations.npz").write_bytes(npz_bytes(acts))
        (manifest.parent / "mse.json").write_text(json.dumps({k: {"mse": m, "relative": r}
                                                              for k, (m, r) in cap.mse().items()}, indent=1) + "\n")
    return write_manifest(out, gemms, in_bits=hw.in_bits, acc_bits=icfg.acc_bits, overflow=icfg.overflow,
                          source=source, extra=extra)
