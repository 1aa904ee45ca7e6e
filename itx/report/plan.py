"""What the report measures: every BLEU point is a `Run` (method, model, pair, integer-model knobs); a `Profile`
says which sweeps to run ("full" for the committed report, "ci" for the light test version)."""
from __future__ import annotations

import json
from dataclasses import dataclass

METHODS = ("fp32", "sp", "qcd")  # FP32 numpy model | Scale Propagation (IntTransformer) | quantize-compute-dequantize
MODULE_NAMES = {"emb": "embedding", "attn": "attention", "ffn": "FFN", "ln": "LayerNorm", "res": "residual",
                "proj": "output projection"}


@dataclass(frozen=True)
class Run:
    """One BLEU measurement. knobs: JSON text of the IntConfig fields that differ from the default (sp), or of the
    baseline's options (qcd); kept as text so a Run is hashable and its cache key is stable."""
    method: str
    model: str
    pair: str
    knobs: str = "{}"

    @classmethod
    def of(cls, method: str, model: str, pair: str, **knobs) -> "Run":
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        clean = {k: sorted(v) if isinstance(v, (set, frozenset)) else list(v) if isinstance(v, tuple) else v
                 for k, v in knobs.items()}
        return cls(method, model, pair, json.dumps(clean, sort_keys=True))

    @property
    def options(self) -> dict:
        return json.loads(self.knobs)


@dataclass(frozen=True)
class Profile:
    """layers: per-layer points per module instance ("module", e.g. enc.0.self_attn) or per whole layer
    ("block", e.g. enc.0). arrays: (rows, cols) for cycles per sentence; cycle_sentences: sentences traced."""
    name: str
    layers: str
    bits: tuple[int, ...]
    acc_bits: tuple[int, ...]
    rescale: tuple[str, ...]
    design_bits: tuple[int, ...]
    arrays: tuple[tuple[int, int], ...]
    cycle_sentences: int


PROFILES = {
    "full": Profile("full", "module", (6, 7, 8, 9, 10), tuple(range(16, 33)), ("paper", "pow2", "dyadic"),
                    (6, 8, 10), ((8, 8), (16, 16), (32, 32)), 8),
    "ci": Profile("ci", "block", (6, 8), (16, 32), ("dyadic",), (8,), ((8, 8), (16, 16)), 1),
}


def layer_groups(cfg, granularity: str) -> list[tuple[str, str, str]]:
    """(layer prefix for IntConfig.int_layers, module kind, name of its output activation) in model order.
    The output name is what FP32Transformer and IntTransformer both emit at the end of that layer."""
    out = {"attn": ".o", "ffn": ".w2"}
    enc = ("ln1", "ln"), ("self_attn", "attn"), ("res1", "res"), ("ln2", "ln"), ("ffn", "ffn"), ("res2", "res")
    dec = (("ln1", "ln"), ("self_attn", "attn"), ("res1", "res"), ("ln2", "ln"), ("cross_attn", "attn"),
           ("res2", "res"), ("ln3", "ln"), ("ffn", "ffn"), ("res3", "res"))
    groups = [("enc.embed", "emb", "enc.embed")]
    for side, n, subs in (("enc", cfg.enc_layers, enc), ("dec", cfg.dec_layers, dec)):
        if side == "dec":
            groups += [("enc.ln_f", "ln", "enc.ln_f"), ("dec.embed", "emb", "dec.embed")]
        for i in range(n):
            if granularity == "block":
                groups.append((f"{side}.{i}", "layer", f"{side}.{i}.{subs[-1][0]}"))
            else:
                groups += [(f"{side}.{i}.{s}", k, f"{side}.{i}.{s}{out.get(k, '')}") for s, k in subs]
    return groups + [("dec.ln_f", "ln", "dec.ln_f"), ("out_proj", "proj", "out_proj")]


def int_modules(cfg) -> list[str]:
    """Module kinds the integer model can run for this model: integer attention needs poly attention, integer
    LayerNorm needs L1 LayerNorm (Lin et al. Sec. 4); a vanilla model keeps those two in FP32."""
    skip = {"attn"} if cfg.attention != "poly" else set()
    skip |= {"ln"} if cfg.norm != "l1" else set()
    return [m for m in MODULE_NAMES if m not in skip]
