"""End-to-end RTL chain (`itx sim model --chain enc.0`): the ops of one layer run in RTL one after the other, each
fed what the RTL ops before it computed, not golden's values. The model runs as usual (teacher-forced, as the capture
does) and every integer op whose name starts with the prefix has its output replaced by its RTL unit's output on the
inputs the op actually received: linear layers through itx_gemm_ctrl + itx_requant, the per-head Q K^T and P V
through the array, Poly, attention normalisation, residual adds and LayerNorms through their units. Golden keeps
only the bookkeeping between the ops: head split and merge, the factors of every re-scale (computed from the inputs
at hand), ReLU, and the two integer steps without an RTL unit: P's Eq. 10 re-scale after itx_poly and V's Eq. 8
matching along the keys. Every op is still compared with golden on its own inputs (as the op-by-op run), and the
layer's last output with golden's own run of the sentence, so a unit whose output differs, or whose row scales
the next unit could not use, fails at that op and shows at the layer's output."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from itx.golden.capture import Capture, Recording, write_ops
from itx.golden.config import HwConfig
from itx.golden.errors import compare
from itx.golden.int_config import IntConfig
from itx.golden.int_model import IntTransformer
from itx.golden.model import ModelConfig, pad_batch
from itx.golden.qtensor import QTensor
from itx.golden.tokenizer import BOS
from itx.golden.vectors import read_manifest, write_manifest
from itx.sim.model_run import LayerResult, run_layers
from itx.sim.ops_run import OpResult, run_ops
from itx.sim.poly import probabilities
from itx.sim.rtl import SIM_BUILD


@dataclass
class ChainResult:
    steps: list[LayerResult | OpResult]    # every RTL run of the chain, in the order the model ran them
    output: str                            # the layer's last op
    difference: dict | None                # its output against golden's own run: None when identical


class RtlChain(Recording):
    """IntTransformer whose ops under `prefix` are computed by the RTL (see the module docstring)."""

    def __init__(self, cfg: ModelConfig, weights: dict, icfg: IntConfig, hw: HwConfig, prefix: str,
                 sim: str = "icarus", work: Path = SIM_BUILD / "chain", progress=None):
        super().__init__(cfg, weights, icfg, cap=Capture())
        self.hw, self.prefix, self.sim, self.work, self.progress = hw, prefix, sim, Path(work), progress
        self.steps: list[LayerResult | OpResult] = []
        self.outputs: dict[str, QTensor] = {}          # the RTL's output of every chained op, by op name
        shutil.rmtree(self.work, ignore_errors=True)

    def chained(self, name: str) -> bool:
        return name == self.prefix or name.startswith(self.prefix + ".")

    def _step(self, result) -> None:
        result.index = len(self.steps)
        self.steps.append(result)
        if self.progress:
            self.progress(result)

    # --- GEMMs: the array (and the re-scaling unit for a linear layer) on the operands the model holds --------------
    def _gemms(self, first: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """The GEMMs captured since index `first` through itx_gemm_ctrl (+ itx_requant): their (C, Y)."""
        gemms = self.cap.gemms[first:]
        out = self.work / f"gemm{len(self.steps)}"
        write_manifest(out, gemms, in_bits=self.hw.in_bits, acc_bits=self.icfg.acc_bits,
                       overflow=self.icfg.overflow)
        got: dict[int, tuple] = {}
        for r in run_layers(read_manifest(out), self.hw, self.sim, outputs=got):
            self._step(r)
        if len(got) < len(gemms):   # run_layers stops at the first GEMM that differs
            raise ChainBroken(self.steps[-1])
        return [got[i] for i in range(len(gemms))]

    def matmul(self, name, a, b, b_f32=None):
        first = len(self.cap.gemms)
        acc = super().matmul(name, a, b, b_f32)
        if not (self.chained(name) and name.endswith((".scores", ".context"))):
            return acc    # a linear layer's GEMM runs with its re-scaling (linear)
        c = np.stack([c for c, _ in self._gemms(first)]).reshape(acc.shape)
        self.acc = acc = QTensor.trusted(c, acc.scale, acc.bits)
        if name in self.cap.ops:
            self.cap.ops[name]["num"] = acc        # the normalisation's numerator is the array's P V
        return acc

    def linear(self, name, x):
        first = len(self.cap.gemms)
        y = super().linear(name, x)                # records the GEMM with its re-scaling factors
        if not self.chained(name):
            return y
        (_, yv), = self._gemms(first)
        return self._keep(name, QTensor.trusted(yv.reshape(y.shape), y.scale, y.bits))

    # --- the non-GEMM units, at the model's emit of each op's output -------------------------------------------------
    def _hook(self, name, x):
        super()._hook(name, x)                     # records golden's output of these inputs as the op's "out"
        if not self.chained(name) or name not in self.cap.ops:
            return None
        c, rec = self.icfg, self.cap.ops[name]
        path = write_ops(Capture(ops={name: rec}), self.work / f"op{len(self.steps)}.npz")
        (r,) = run_ops(path, c, self.hw, self.sim, outputs=True)
        self._step(r)
        if r.mismatches:
            raise ChainBroken(r)
        if rec["kind"] == "poly":                  # itx_poly stops before Eq. 10: golden re-scales its Poly(x)
            return self._keep(name, probabilities(rec["scores"], rec["b"], rec["delta"], rec["n"], rec["mask"], c,
                                                  r.values))
        scale = x.scale if r.scale is None else r.scale.reshape(x.scale.shape)   # the row units report theirs
        return self._keep(name, QTensor.trusted(r.values.reshape(x.shape), scale, x.bits))

    def _keep(self, name: str, y: QTensor) -> QTensor:
        self.outputs[name] = y
        return y


class ChainBroken(Exception):
    """An RTL op of the chain differed from golden on its inputs: the chain stops there (its result says where)."""

    def __init__(self, result):
        super().__init__(result.first)
        self.result = result


def run_chain(cfg: ModelConfig, weights: dict, icfg: IntConfig, hw: HwConfig, src: list[int], tgt: list[int],
              prefix: str, sim: str = "icarus", progress=None) -> ChainResult:
    """The sentence (source ids, target ids incl. EOS) teacher-forced, the ops under `prefix` chained in RTL; the
    last of them against golden's own run."""
    s, t = pad_batch([src]), pad_batch([[BOS] + list(tgt[:-1])])
    golden: dict = {}
    IntTransformer(cfg, weights, icfg, hook=golden).logits(s, t)
    chain = RtlChain(cfg, weights, icfg, hw, prefix, sim, progress=progress)
    try:
        chain.logits(s, t)
    except ChainBroken:
        return ChainResult(chain.steps, chain.steps[-1].op if isinstance(chain.steps[-1], OpResult)
                           else chain.steps[-1].layer, {"tensor": "chain stopped", "at": chain.steps[-1].first})
    if not chain.outputs:
        raise ValueError(f"--chain {prefix}: no integer op of the model is named {prefix}* (e.g. enc.0, dec.1.ffn)")
    last = list(chain.outputs)[-1]
    want, got = golden[last], chain.outputs[last]
    d = compare(last, "values", want.values, got.values)
    if d is None and not np.array_equal(np.broadcast_to(want.scale, got.scale.shape), got.scale):
        i = int(np.flatnonzero(np.broadcast_to(want.scale, got.scale.shape) != got.scale)[0])
        return ChainResult(chain.steps, last, {"tensor": "scale", "index": [i],
                                               "expected": float(want.scale.flat[i]), "got": float(got.scale.flat[i])})
    return ChainResult(chain.steps, last, None if d is None else {"tensor": d.tensor, "index": list(d.index),
                                                                  "expected": d.expected, "got": d.got})
