"""Capture (Lin et al. Fig. 7): FP32 vs dequantized integer activations by layer name, and every integer GEMM of
the integer model, with the re-scaling of each linear layer, written as golden vectors (golden/vectors.py: hex,
.npz and a JSON manifest, the format the RTL testbenches read; golden/VECTORS.md).

Both models run teacher-forced on the same (source, target prefix), so every module boundary pairs up by name. A
batched GEMM is split into the 2-D GEMMs the array runs, named layer[.b<i>][.h<j>] (batch index omitted for one
sentence): `enc.0.self_attn.scores.h3` is head 3's Q K^T. The non-GEMM integer ops (Capture.ops) are named by the
module whose output they compute, in the same scheme, with every head and row of the op in one record (the units
stream rows): `enc.0.self_attn.poly` (Eq. 11: scores, b, delta, mask, n), `enc.0.self_attn.context` (Eq. 12's
normalisation: num = P V, p, v_scale, f), the residual adds and L1 LayerNorms under their module names (x, y / x, g, b);
each also records the model's output `out`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import check_target
from .attention import fixed_point_bits, lift
from .config import HwConfig, load_hw_config
from .errors import UserError
from .int_config import IntConfig
from .int_model import IntTransformer
from .model import FP32Transformer, ModelConfig, pad_batch
from .qtensor import QTensor
from .requant import STAGE_MODES, linear_factors
from .tokenizer import BOS
from .vectors import MANIFEST, VectorGemm, npz_bytes, write_manifest

OPS = "ops.npz"   # the non-GEMM ops' inputs in a vector directory (write_ops)


@dataclass
class Capture:
    fp32: dict[str, np.ndarray] = field(default_factory=dict)
    integer: dict[str, np.ndarray] = field(default_factory=dict)
    gemms: list[VectorGemm] = field(default_factory=list)
    ops: dict[str, dict] = field(default_factory=dict)   # op name -> {"kind": ..., tensor: QTensor | array | int}

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


class Recording(IntTransformer):
    """IntTransformer that adds to each linear layer's captured GEMM the itx_requant factors of its post-GEMM
    act(add(acc, bias)) and the INT8 output, when the RTL's re-scaling unit can compute it (IntConfig.match one of
    its STAGE_MODES), and records the inputs and output of every integer non-GEMM op (Capture.ops)."""

    def __init__(self, *args, cap: Capture, **kwargs):
        super().__init__(*args, hook=self._hook, gemm_hook=cap.gemm_hook, **kwargs)
        self.cap, self.acc = cap, None

    def _hook(self, name, x):
        self.cap.int_hook(name, x)
        if name in self.cap.ops:
            self.cap.ops[name]["out"] = x
        elif name.endswith(".scores") and name.removesuffix(".scores") + ".poly" in self.cap.ops:
            self.cap.ops[name.removesuffix(".scores") + ".poly"]["scores"] = x   # sqrt(d) folded into the scale

    def matmul(self, name, a, b, b_f32=None):
        self.acc = super().matmul(name, a, b, b_f32)
        if name.endswith(".context"):   # P V: the normalisation's numerator, P and V's (matched) scale
            c = self.icfg
            self.cap.ops[name] = {"kind": "attn_norm", "num": self.acc, "p": a, "v_scale": b.scale,
                                  "f": fixed_point_bits(c.attn_division, c.attn_frac_bits)}
        return self.acc

    def poly_attention(self, name, q, kt, v, mask, *f32):
        shape = q.shape[:-1] + kt.shape[-1:]
        self.cap.ops[f"{name}.poly"] = {
            "kind": "poly", "b": self.q[f"{name}.poly_b"], "delta": self.q[f"{name}.poly_delta"], "n": self.cfg.poly_n,
            "mask": np.ones(shape, bool) if mask is None else np.broadcast_to(np.asarray(mask, bool), shape)}
        return super().poly_attention(name, q, kt, v, mask, *f32)

    def residual(self, name, x, y):
        if self.icfg.is_int("res", name):
            self.cap.ops[name] = {"kind": "residual", "x": x, "y": y}
        return super().residual(name, x, y)

    def norm(self, name, x):
        if self.icfg.is_int("ln", name):
            self.cap.ops[name] = {"kind": "layernorm", "x": x, "g": self.q[f"{name}.g"], "b": self.q[f"{name}.b"]}
        return super().norm(name, x)

    def linear(self, name, x):
        y = super().linear(name, x)
        c, last = self.icfg, self.cap.gemms[-1]
        if c.match in STAGE_MODES:
            if last.layer != name:
                raise RuntimeError(f"{name}: linear layer ran no captured GEMM")
            bias = lift(self.q[f"{name}.b"], self.acc.values.ndim, f"{name}.b")
            f, _ = linear_factors(self.acc, bias, c.bits, c.granularity, c.rescale, c.block, c.rounding, c.match,
                                  c.overflow)
            n = last.c.shape[-1]
            self.cap.gemms[-1] = last._replace(requant=(f.flat(n), y.values.reshape(-1, n)))
        return y


def capture(cfg: ModelConfig, weights: dict[str, np.ndarray], icfg: IntConfig, src: list[int],
            tgt: list[int]) -> Capture:
    """Run FP32 and integer models teacher-forced on one sentence (source ids, target ids incl. EOS)."""
    cap = Capture()
    s, t = pad_batch([src]), pad_batch([[BOS] + list(tgt[:-1])])
    FP32Transformer(cfg, weights, hook=cap.fp32).logits(s, t)
    Recording(cfg, weights, icfg, cap=cap).logits(s, t)
    return cap


def ops_arrays(cap: Capture) -> dict[str, np.ndarray]:
    """Capture.ops as flat arrays: <op>/kind, <op>/<t>.values and <op>/<t>.scale of a QTensor, <op>/<t> of the
    rest, and "ops": the op names in the order the model ran them."""
    out = {"ops": np.array(list(cap.ops))}
    for op, rec in cap.ops.items():
        for t, v in rec.items():
            if isinstance(v, QTensor):
                out[f"{op}/{t}.values"], out[f"{op}/{t}.scale"] = v.values, v.scale
            else:
                out[f"{op}/{t}"] = np.asarray(v)
    return out


def write_ops(cap: Capture, path: str | Path) -> Path:
    """ops_arrays as one .npz (reproducible bytes), written whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(npz_bytes(ops_arrays(cap)))
    tmp.replace(path)
    return path


def sentence_ops(model: Path, icfg: IntConfig, src: list[int], tgt: list[int], cache: Path) -> Path:
    """write_ops of one sentence's capture (source ids, target ids incl. EOS) of the model in directory `model`,
    cached in `cache` under a hash of the weights, golden's sources, the ids and the IntConfig (the two models take
    ~15 s)."""
    import hashlib

    from .model import load
    h = hashlib.sha256(repr((src, tgt, icfg.describe())).encode())
    for path in [Path(model) / "weights.npz", *sorted(Path(__file__).parent.glob("*.py"))]:
        h.update(path.read_bytes())
    out = Path(cache) / f"ops-{h.hexdigest()[:16]}.npz"
    return out if out.is_file() else write_ops(capture(*load(model), icfg, src, tgt), out)


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
    starts with one of `layers`), out/activations.npz (fp32/<name>, int/<name>), out/ops.npz (write_ops: the
    non-GEMM ops' inputs) and out/mse.json, written as one set
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
        (manifest.parent / OPS).write_bytes(npz_bytes(ops_arrays(cap)))
        (manifest.parent / "mse.json").write_text(json.dumps({k: {"mse": m, "relative": r}
                                                              for k, (m, r) in cap.mse().items()}, indent=1) + "\n")
    return write_manifest(out, gemms, in_bits=hw.in_bits, acc_bits=icfg.acc_bits, overflow=icfg.overflow,
                          source=source, extra=extra)
