"""report.json, REPORT.md and the PNG figures from the assembled report data. Byte-deterministic: fixed key
order and float formatting, no timestamps, PNGs saved without software/date metadata."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

from itx.report.plan import MODULE_NAMES

FIGURES = {"per_layer": "fig7_precision_vs_bleu.png", "modules": "fig6_modules.png", "bits": "fig5_bits.png",
           "design": "fig_design_space.png"}
# (json field, column title, format) per table; the same format writes the number into REPORT.md.
COLUMNS = {
    "table2": [("model", "model", "s"), ("pair", "pair", "s"), ("fp32_bleu", "FP32 BLEU", ".2f"),
               ("int8_bleu", "INT8 BLEU", ".2f"), ("delta_bleu", "ΔBLEU", "+.2f"),
               ("delta_std", "σ(ΔBLEU), paired bootstrap", ".2f"),
               ("int8_modules", "integer modules", "s")],
    "storage": [("model", "model", "s"), ("fp32_bytes", "FP32 bytes", "d"),
                ("int8_per_channel_bytes", "INT8 + per-channel scales, bytes", "d"),
                ("int8_per_tensor_bytes", "INT8 + per-tensor scales, bytes", "d"),
                ("compression", "FP32 / INT8 per-channel", ".2f")],
    "per_layer": [("pair", "pair", "s"), ("layer", "layer in INT8", "s"), ("kind", "module", "s"),
                  ("activation", "activation compared", "s"), ("mse", "MSE", ".4g"), ("bleu", "BLEU", ".2f"),
                  ("delta_bleu", "ΔBLEU", "+.2f")],
    "modules": [("pair", "pair", "s"), ("module", "module in INT8", "s"), ("bleu", "BLEU", ".2f"),
                ("delta_bleu", "ΔBLEU", "+.2f")],
    "bits": [("pair", "pair", "s"), ("method", "method", "s"), ("bits", "bits", "d"), ("bleu", "BLEU", ".2f"),
             ("delta_bleu", "ΔBLEU", "+.2f")],
    "design": [("pair", "pair", "s"), ("rescale", "re-scaling", "s"), ("bits", "bits", "d"),
               ("acc_bits", "accumulator bits", "d"), ("bleu", "BLEU", ".2f"), ("delta_bleu", "ΔBLEU", "+.2f")],
    "rtl_check": [("run", "RTL run", "s"), ("array", "array", "s"), ("gemms", "GEMMs", "d"),
                  ("exact", "GEMMs at formula + 1 exactly", "d"), ("formula_cycles", "formula cycles", "d"),
                  ("rtl_cycles", "RTL cycles", "d"), ("formula_cycles_other_gemms", "formula, re-scaled GEMMs", "d"),
                  ("rtl_cycles_other_gemms", "RTL, re-scaled GEMMs", "d")],
    "cycles": [("array", "array", "s"), ("sentences_traced", "sentences traced", "d"),
               ("gemms_per_sentence", "GEMMs / sentence", ".1f"), ("macs_per_sentence", "MACs / sentence", "d"),
               ("cycles_per_sentence", "cycles / sentence", "d"), ("pe_utilisation", "PE utilisation", ".4f")],
}


def markdown_table(rows: list[dict], section: str) -> str:
    cols = COLUMNS[section]
    lines = ["| " + " | ".join(t for _, t, _ in cols) + " |",
             "|" + "|".join("---" if f == "s" else "---:" for *_, f in cols) + "|"]
    lines += ["| " + " | ".join(format(r[k], f) for k, _, f in cols) + " |" for r in rows]
    return "\n".join(lines)


def write_json(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


# --- figures -------------------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "svg.hashsalt": "itx", "figure.dpi": 100})
    return plt


def _save(fig, path: Path, meta: dict, what: str) -> None:
    """Footer with the command and config (wrapped to the figure width), then a metadata-free PNG."""
    note = textwrap.wrap(f"{meta['command']}  |  {what}  |  {meta['sentences']} {meta['split']} sentences/pair, "
                         f"greedy, sacreBLEU  |  code {meta['code_version']}", int(fig.get_figwidth() * 22))
    fig.tight_layout(rect=(0, (8 * len(note) + 6) / (72 * fig.get_figheight()), 1, 1))
    fig.text(0.005, 0.005, "\n".join(note), fontsize=6, color="0.35", ha="left", va="bottom")
    fig.savefig(path, dpi=110, metadata={"Software": None})
    fig.clf()


def _short(layer: str) -> str:
    return layer.replace("self_attn", "sa").replace("cross_attn", "ca").replace("enc.", "e").replace("dec.", "d")


def fig_per_layer(rows, meta, path: Path) -> None:
    plt = _plt()
    pairs = sorted({r["pair"] for r in rows})
    fig, axes = plt.subplots(len(pairs), 1, figsize=(11, 4.5 * len(pairs)), squeeze=False)
    kinds = sorted({r["kind"] for r in rows})
    for ax, pair in zip(axes[:, 0], pairs):
        pts = [r for r in rows if r["pair"] == pair]
        for i, kind in enumerate(kinds):
            sel = [r for r in pts if r["kind"] == kind]
            ax.scatter([r["mse"] for r in sel], [r["delta_bleu"] for r in sel], s=18, color=f"C{i}",
                       label=MODULE_NAMES.get(kind, kind))
        for r in pts:
            ax.annotate(_short(r["layer"]), (r["mse"], r["delta_bleu"]), fontsize=5.5, xytext=(2, 2),
                        textcoords="offset points")
        positive = [r["mse"] for r in pts if r["mse"] > 0]
        ax.set_xscale("symlog", linthresh=min(positive) if positive else 1e-12)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set(xlabel="MSE, FP32 vs dequantized INT8 layer output (activation units², log)",
               ylabel="ΔBLEU vs FP32 (BLEU points)", title=f"{pair}: only this layer in INT8 (Lin et al. Fig. 7)")
        ax.legend(fontsize=6, loc="best")
    _save(fig, path, meta, "model integer, IntConfig default (INT8, row scales, dyadic match and rescale) "
          "on the named layer only; other modules FP32 between quantize/dequantize")


def fig_modules(rows, meta, path: Path) -> None:
    plt = _plt()
    pairs = sorted({r["pair"] for r in rows})
    kinds = list(dict.fromkeys(r["module"] for r in rows))
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(pairs)
    for j, pair in enumerate(pairs):
        vals = [next(r["delta_bleu"] for r in rows if r["pair"] == pair and r["module"] == k) for k in kinds]
        bars = ax.bar([i + j * width for i in range(len(kinds))], vals, width, label=pair)
        ax.bar_label(bars, fmt="%+.2f", fontsize=6)
    ax.set_xticks([i + width * (len(pairs) - 1) / 2 for i in range(len(kinds))],
                  [MODULE_NAMES.get(k, k) if k != "none" else "none\n(boundaries only)" for k in kinds])
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set(ylabel="ΔBLEU vs FP32 (BLEU points)",
           title="Only this module type in INT8 (Lin et al. Fig. 6), model integer")
    ax.legend()
    _save(fig, path, meta, "IntConfig(modules={type}), INT8, row scales; others FP32 between quantize/dequantize")


def fig_bits(rows, fp32: dict, meta, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    names = {"sp": "Scale Propagation (integer)", "qcd": "quantize-compute-dequantize"}
    for i, pair in enumerate(sorted({r["pair"] for r in rows})):
        for method, style in (("sp", "-o"), ("qcd", "--s")):
            sel = [r for r in rows if r["pair"] == pair and r["method"] == method]
            ax.plot([r["bits"] for r in sel], [r["bleu"] for r in sel], style, color=f"C{i}", ms=4,
                    label=f"{pair} {names[method]}")
        ax.axhline(fp32[pair], color=f"C{i}", lw=0.7, ls=":", label=f"{pair} FP32")
    ax.set(xlabel="bits (activations and weights)", ylabel="BLEU", title="BLEU vs bits (Lin et al. Fig. 5 right), "
           "model integer")
    ax.set_xticks(sorted({r["bits"] for r in rows}))
    ax.legend(fontsize=6)
    _save(fig, path, meta, "IntConfig(bits=b) all modules; QCDTransformer(bits=b, bucket=256)")


def fig_design(rows, cycles, fp32: dict, meta, path: Path) -> None:
    plt = _plt()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (rescale, bits) in enumerate(dict.fromkeys((r["rescale"], r["bits"]) for r in rows)):
        sel = [r for r in rows if (r["rescale"], r["bits"]) == (rescale, bits)]
        ax.plot([r["acc_bits"] for r in sel], [r["bleu"] for r in sel], "-o", ms=4, color=f"C{i}",
                label=f"INT{bits}, {rescale} re-scaling")
    pair = rows[0]["pair"]
    ax.axhline(fp32[pair], color="0.5", lw=0.7, ls=":", label=f"FP32 ({pair})")
    ax.set(xlabel="accumulator width (bits)", ylabel="BLEU", title=f"Accumulator width x re-scaling x bits, {pair}")
    ax.set_xticks(sorted({r["acc_bits"] for r in rows}))
    ax.legend(fontsize=6)
    bars = bx.bar([r["array"] for r in cycles], [r["cycles_per_sentence"] for r in cycles], color="C2")
    bx.bar_label(bars, labels=[f"{r['cycles_per_sentence']:,}\n{r['pe_utilisation']:.1%} util."
                               for r in cycles], fontsize=6)
    bx.margins(y=0.15)
    bx.set(xlabel="systolic array (rows x cols)", ylabel="GEMM cycles per sentence",
           title=f"Array cycles per sentence ({cycles[0]['sentences_traced']} traced, {pair}, INT8)")
    _save(fig, path, meta, "model integer, IntConfig(bits, rescale, acc_bits), overflow from hw/config.toml; "
          "cycles: hw/README.md formula, no stalls")


def write_figures(report: dict, out: Path) -> None:
    meta, s = report["meta"], report["sections"]
    fp32 = {r["pair"]: r["fp32_bleu"] for r in s["table2"] if r["model"] == "integer"}
    fig_per_layer(s["per_layer"], meta, out / FIGURES["per_layer"])
    fig_modules(s["modules"], meta, out / FIGURES["modules"])
    fig_bits(s["bits"], fp32, meta, out / FIGURES["bits"])
    fig_design(s["design"], s["cycles"], fp32, meta, out / FIGURES["design"])


# --- REPORT.md -----------------------------------------------------------------------------------------------
def write_markdown(report: dict, path: Path) -> None:
    meta, s, h = report["meta"], report["sections"], report["headlines"]
    worst = "; ".join(f"{pair}: " + ", ".join(f"{w['layer']} ({w['delta_bleu']:+.2f})" for w in ws)
                      for pair, ws in h["worst_layers"].items())
    noise = ", ".join(f"{r['pair']} {r['delta_std']:.2f}" for r in s["table2"] if r["model"] == "integer")
    cliff = ", ".join(f"{k}: {v} bits" for k, v in h["acc_cliff"].items())
    parts = [
        "# INT8 Transformer: what integer arithmetic costs in BLEU",
        "",
        f"Generated by `{meta['command']}` (profile `{meta['profile']}`). Every BLEU is sacreBLEU corpus BLEU "
        f"(`{meta['sacrebleu']}`) of greedy decoding of **{meta['sentences']}** sentence pairs per language pair, evenly spaced over "
        f"the `{meta['split']}` split; ΔBLEU is against the same model in FP32 (numpy). "
        f"Code version `{meta['code_version']}`; weights sha256 "
        + ", ".join(f"{m} `{v}`" for m, v in meta["weights"].items())
        + f"; array config (hw/config.toml): {meta['hw']}. Numbers are also in `report.json`.",
        "",
        "The models are small and under-trained (their FP32 BLEU over the whole test split is in "
        "reports/fp32_bleu.md), so absolute BLEU is low; what matters here is the change integer arithmetic makes.",
        "",
        f"Noise level: the standard deviation of ΔBLEU (fully integer model vs FP32) over 200 paired bootstrap "
        f"resamples of the sentences is {noise}; single-run ΔBLEU smaller than about twice that is not "
        "distinguishable from sampling noise at this N.",
        "",
        f"Headlines: worst single layers {worst}. Narrowest accumulator within 1 BLEU of the widest swept: {cliff}.",
        "",
        "## 1. Precision loss vs BLEU per layer (Lin et al. Fig. 7)",
        "",
        f"![per-layer]({FIGURES['per_layer']})",
        "",
        "One point per layer of the `integer` model: only that layer runs in INT8 "
        "(`IntConfig(int_layers=(layer,))`), every other module runs FP32 between a dequantize and a quantize. "
        "MSE: FP32 vs dequantized INT8 output activation of that layer, teacher-forced on the reference "
        "translations, padding excluded.",
        "",
        markdown_table(s["per_layer"], "per_layer"),
        "",
        "## 2. Per-module contribution (Lin et al. Fig. 6)",
        "",
        f"![modules]({FIGURES['modules']})",
        "",
        "`IntConfig(modules={type})`: only that module type runs in integers. `none`: every module FP32 but "
        "quantized at module boundaries; `all`: the fully integer model.",
        "",
        markdown_table(s["modules"], "modules"),
        "",
        "## 3. Bits sweep (Lin et al. Fig. 5 right)",
        "",
        f"![bits]({FIGURES['bits']})",
        "",
        "Scale Propagation: the fully integer model (`IntConfig(bits=b)`). Baseline: quantize-compute-dequantize "
        "(`golden.qcd_baseline.QCDTransformer`, FP32 compute, affine b-bit buckets of 256 values).",
        "",
        markdown_table(s["bits"], "bits"),
        "",
        "## 4. Design space: accumulator width x re-scaling x bits, array cycles",
        "",
        f"![design]({FIGURES['design']})",
        "",
        f"Overflow mode: {meta['hw'].split('overflow=')[1]} (hw/config.toml). `paper`: Eq. 10 ceil divisor "
        "(sequential divider in itx_requant); `pow2`: next power of two (a shift); `dyadic`: a 31-bit multiplier and "
        "shift per group that maps max|x| to qmax (one cycle per beat in itx_requant, like pow2).",
        "",
        markdown_table(s["design"], "design"),
        "",
        "Cycles: every integer GEMM of greedily translating each traced sentence alone (batch 1), counted with "
        "the hw/README.md timing formula of itx_gemm_ctrl (no stalls, re-scaling unit not included); the RTL "
        "run (reports/sim/) checks that timing on 8x8.",
        "",
        markdown_table(s["cycles"], "cycles"),
        "",
        "The formula against the RTL layer-by-layer run (`itx sim`, reports/sim/): GEMMs without re-scaling "
        "take exactly formula + 1 cycles (the testbench's registered valid); linear layers stream through "
        "itx_requant, which adds the difference shown (1 cycle per beat for dyadic and pow2 re-scaling, the "
        "sequential divider's ACC_BITS + 2 for paper; hw/README.md).",
        "",
        markdown_table(s["rtl_check"], "rtl_check"),
        "",
        "## 5. FP32 vs INT8 BLEU and storage (Lin et al. Table 2)",
        "",
        "INT8: Scale Propagation with every module the model supports in integers (the `vanilla` model's softmax "
        "attention and L2 LayerNorm have no integer form and stay FP32).",
        "",
        markdown_table(s["table2"], "table2"),
        "",
        "Storage of the weights: FP32 = 4 bytes per value. INT8 matrices 1 byte per value, 1-D parameters "
        "(biases, gains, poly b/delta) 2 bytes (16-bit), float32 scales: per channel = one per output column and "
        "per embedding row plus a per-tensor INT8 copy of E^T for the output projection (what the integer model "
        "holds); per tensor = one scale per tensor.",
        "",
        markdown_table(s["storage"], "storage"),
        "",
    ]
    path.write_text("\n".join(parts))
