"""Runs a Profile's measurements through a Lab and assembles the report data (report.json): plain rows of
rounded numbers, so REPORT.md and the figures show exactly what the JSON holds."""
from __future__ import annotations

import json
import math
from pathlib import Path

from itx.report.measure import Lab, storage
from itx.report.plan import MODULE_NAMES, Profile, Run, int_modules, layer_groups

TABLE2_MODELS = ("vanilla", "integer")
ABLATION_MODEL = "integer"  # the model whose every module has an integer form (poly attention, L1 LayerNorm)
RTL_RUN = Path(__file__).resolve().parents[2] / "reports" / "sim" / "sentence0.json"  # `itx sim` layer run


def bleu2(x: float) -> float:
    return round(x, 2)


def sig4(x: float) -> float:
    return float(f"{x:.4g}")


def gemm_cycles(m: int, k: int, n: int, rows: int, cols: int) -> int:
    """Cycles of one GEMM on the output-stationary RxC array, hw/README.md "Timing": T*K + R + C + rows of the
    last tile, T = ceil(M/R)*ceil(N/C); for K < R+C-1 each tile after the first waits R+C-1 cycles (rule 1)."""
    tiles = math.ceil(m / rows) * math.ceil(n / cols)
    return k + (tiles - 1) * max(k, rows + cols - 1) + rows + cols + (m - (math.ceil(m / rows) - 1) * rows)


class Builder:
    """sections() runs every measurement; with dry=True it only collects the distinct BLEU runs (`runs`)."""

    def __init__(self, lab: Lab, profile: Profile, pairs: tuple[str, ...], bar=None, dry: bool = False) -> None:
        self.lab, self.p, self.pairs, self.bar, self.dry = lab, profile, pairs, bar, dry
        self.runs: set[Run] = set()

    def bleu(self, run: Run) -> float:
        if self.dry or run in self.runs:
            self.runs.add(run)
            return 0.0 if self.dry else self.lab.bleu(run)["bleu"]
        self.runs.add(run)
        if self.bar is not None:
            self.bar.set_postfix_str(f"{run.method} {run.model} {run.pair} {run.knobs}"[:70], refresh=True)
        score = self.lab.bleu(run)["bleu"]
        if self.bar is not None:
            self.bar.update()
        return score

    def mse(self, run: Run, act: str) -> float:
        return 0.0 if self.dry else self.lab.mse(run, act)

    def fp32(self, model: str, pair: str) -> float:
        return self.bleu(Run.of("fp32", model, pair))

    def delta(self, run: Run) -> dict:
        b = self.bleu(run)
        return {"bleu": bleu2(b), "delta_bleu": bleu2(b - self.fp32(run.model, run.pair))}

    # --- sections ----------------------------------------------------------------------------------------------
    def table2(self) -> list[dict]:
        rows = []
        for model in TABLE2_MODELS:
            mods = int_modules(self.lab.model(model)[0])
            for pair in self.pairs:
                run = Run.of("sp", model, pair, **({} if len(mods) == len(MODULE_NAMES) else {"modules": mods}))
                base = Run.of("fp32", model, pair)
                rows.append({"model": model, "pair": pair, "fp32_bleu": bleu2(self.bleu(base)),
                             "int8_bleu": bleu2(self.bleu(run)), "int8_modules": ",".join(mods),
                             "delta_std": 0.0 if self.dry else bleu2(self.lab.bootstrap_std(run, base))})
                rows[-1]["delta_bleu"] = bleu2(rows[-1]["int8_bleu"] - rows[-1]["fp32_bleu"])
        return rows

    def storage(self) -> list[dict]:
        rows = []
        for model in TABLE2_MODELS:
            s = storage(self.lab.model(model)[1])
            rows.append({"model": model, "fp32_bytes": s["fp32"], "int8_per_channel_bytes": s["int_per_channel"],
                         "int8_per_tensor_bytes": s["int_per_tensor"],
                         "compression": round(s["fp32"] / s["int_per_channel"], 2)})
        return rows

    def per_layer(self) -> list[dict]:
        rows = []
        cfg = self.lab.model(ABLATION_MODEL)[0]
        for pair in self.pairs:
            for layer, kind, act in layer_groups(cfg, self.p.layers):
                run = Run.of("sp", ABLATION_MODEL, pair, int_layers=[layer])
                rows.append({"pair": pair, "layer": layer, "kind": kind, "activation": act,
                             "mse": sig4(self.mse(run, act)), **self.delta(run)})
        return rows

    def modules(self) -> list[dict]:
        rows = []
        for pair in self.pairs:
            for kind in ("none", *MODULE_NAMES, "all"):
                knobs = {} if kind == "all" else {"modules": [] if kind == "none" else [kind]}
                rows.append({"pair": pair, "module": kind, **self.delta(Run.of("sp", ABLATION_MODEL, pair,
                                                                                 **knobs))})
        return rows

    def bits(self) -> list[dict]:
        rows = []
        for pair in self.pairs:
            for method in ("sp", "qcd"):
                for b in self.p.bits:
                    run = Run.of(method, ABLATION_MODEL, pair, **({} if method == "sp" and b == 8 else {"bits": b}))
                    rows.append({"pair": pair, "method": method, "bits": b, **self.delta(run)})
        return rows

    def design(self) -> list[dict]:
        from golden.int_config import IntConfig

        rows, pair, default = [], self.pairs[0], IntConfig()
        for rescale in self.p.rescale:
            for b in self.p.design_bits:
                for acc in self.p.acc_bits:
                    knobs = {k: v for k, v in (("bits", b), ("rescale", rescale), ("acc_bits", acc))
                             if v != getattr(default, k)}
                    rows.append({"pair": pair, "rescale": rescale, "bits": b, "acc_bits": acc,
                                 **self.delta(Run.of("sp", ABLATION_MODEL, pair, **knobs))})
        return rows

    def cycles(self) -> list[dict]:
        n = min(self.p.cycle_sentences, self.lab.n)
        if self.dry:
            return []
        shapes = self.lab.gemm_shapes(Run.of("sp", ABLATION_MODEL, self.pairs[0]), n)
        macs = sum(b * m * k * nn * count for b, m, k, nn, count in shapes)
        rows = []
        for r, c in self.p.arrays:
            cyc = sum(b * count * gemm_cycles(m, k, nn, r, c) for b, m, k, nn, count in shapes)
            rows.append({"array": f"{r}x{c}", "sentences_traced": n, "gemms_per_sentence": round(
                sum(b * count for b, *_, count in shapes) / n, 1), "macs_per_sentence": round(macs / n),
                "cycles_per_sentence": round(cyc / n), "pe_utilisation": round(macs / (r * c * cyc), 4)})
        return rows

    @staticmethod
    def rtl_check(path=RTL_RUN) -> list[dict]:
        """The cycle formula against the RTL layer-by-layer run (reports/sim/, `itx sim`): GEMMs whose measured
        cycles equal formula + 1 (the testbench's registered valid), and totals. Linear layers also pass
        through itx_requant, whose re-scaling throughput the formula leaves out."""
        try:
            run = json.loads(Path(path).read_text())
            gemms, (rows, cols) = run["gemms"], (int(v) for v in str(run["array"]).split("x"))
            pred = [gemm_cycles(*g["shape"], rows, cols) + 1 for g in gemms]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a readable RTL run summary ({exc})") from None
        rtl = [g["cycles"] for g in gemms]
        exact = [p == c for p, c in zip(pred, rtl)]
        return [{"run": Path(path).stem, "array": run["array"], "gemms": len(gemms), "exact": sum(exact),
                 "formula_cycles": sum(pred), "rtl_cycles": sum(rtl),
                 "rtl_cycles_other_gemms": sum(c for c, e in zip(rtl, exact) if not e),
                 "formula_cycles_other_gemms": sum(p for p, e in zip(pred, exact) if not e)}]

    def sections(self) -> dict:
        return {"rtl_check": self.rtl_check(), "table2": self.table2(), "storage": self.storage(),
                "per_layer": self.per_layer(), "modules": self.modules(), "bits": self.bits(),
                "design": self.design(), "cycles": self.cycles()}


def headlines(s: dict) -> dict:
    """The numbers a reader looks for first: worst layers, module costs, bits and accumulator cliffs."""
    out = {"worst_layers": {}, "acc_cliff": {}}
    for pair in sorted({r["pair"] for r in s["per_layer"]}):
        rows = sorted((r for r in s["per_layer"] if r["pair"] == pair), key=lambda r: (r["delta_bleu"], r["layer"]))
        out["worst_layers"][pair] = [{"layer": r["layer"], "delta_bleu": r["delta_bleu"], "mse": r["mse"]}
                                     for r in rows[:3]]
    for r in s["design"]:
        tag = f"{r['rescale']} INT{r['bits']}"
        full = max((d for d in s["design"] if (d["rescale"], d["bits"]) == (r["rescale"], r["bits"])),
                   key=lambda d: d["acc_bits"])
        # narrowest accumulator within 1 BLEU of the widest one swept
        if r["bleu"] >= full["bleu"] - 1 and r["acc_bits"] < out["acc_cliff"].get(tag, 99):
            out["acc_cliff"][tag] = r["acc_bits"]
    return out
