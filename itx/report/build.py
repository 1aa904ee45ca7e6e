"""Runs a Profile's measurements through a Lab and assembles the report data (report.json): plain rows of
rounded numbers, so REPORT.md and the figures show exactly what the JSON holds."""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from itx.report.measure import BOOTSTRAP, SIGNIFICANCE, Lab, storage
from itx.report.plan import MODULE_NAMES, Profile, Run, int_modules, layer_groups

TABLE2_MODELS = ("vanilla", "integer")
ABLATION_MODEL = "integer"  # the model whose every module has an integer form (poly attention, L1 LayerNorm)
RTL_RUN = Path(__file__).resolve().parents[2] / "reports" / "sim" / "en-de-sentence0.json"  # `itx sim model`
SYNTH_RUNS = Path(__file__).resolve().parents[2] / "reports" / "synth"   # `itx synth --json reports/synth/<x>.json`


# What a dry Builder answers while it only records the measurements (see Builder).
DRY_POINT = {"bleu": 0.0, "chrf": 0.0, "nll": 0.0, "nll_fp32": 0.0, "kl": 0.0, "mse": defaultdict(float)}
DRY_COMPARISON = {"ci": [0.0, 0.0], "p": 1.0, "identical": 0.0}


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
    """sections() assembles the report from measured values. A dry Builder (no values) only records what must
    be measured: `points` (run -> activations whose MSE is compared) and `comparisons` ((run, base) pairs)."""

    def __init__(self, lab: Lab, profile: Profile, pairs: tuple[str, ...], points: dict | None = None,
                 comparisons: dict | None = None) -> None:
        self.lab, self.p, self.pairs = lab, profile, pairs
        self.values, self.compared, self.dry = points, comparisons, points is None
        self.points: dict[Run, set[str]] = {}
        self.comparisons: dict[tuple[Run, Run], None] = {}
        self.shapes: list[list[int]] | None = None

    def point(self, run: Run, act: str | None = None) -> dict:
        self.points.setdefault(run, set()).update([act] if act else [])
        return DRY_POINT if self.dry else self.values[run]

    def compare(self, run: Run, base: Run) -> dict:
        self.comparisons[run, base] = None
        return DRY_COMPARISON if self.dry else self.compared[run, base]

    def fp32(self, model: str, pair: str) -> float:
        return self.point(Run.of("fp32", model, pair))["bleu"]

    def delta(self, run: Run) -> dict:
        """BLEU and its difference to FP32 (same model, same sentences) with sacrebleu's paired bootstrap 95%
        interval and p-value, chrF, the share of outputs identical to FP32's, and the teacher-forced ΔNLL and
        KL(FP32 || run) per target token."""
        base = Run.of("fp32", run.model, run.pair)
        p, b, c = self.point(run), self.point(base), self.compare(run, base)
        return {"bleu": bleu2(p["bleu"]), "delta_bleu": bleu2(p["bleu"] - b["bleu"]),
                "ci": [bleu2(x) for x in c["ci"]], "p": round(c["p"], 4), "significant": c["p"] < SIGNIFICANCE,
                "chrf": bleu2(p["chrf"]), "delta_chrf": bleu2(p["chrf"] - b["chrf"]),
                "identical": round(c["identical"], 4), "delta_nll": sig4(p["nll"] - p["nll_fp32"]),
                "kl": sig4(p["kl"])}

    def percent(self, run: Run) -> dict:
        """BLEU as % of FP32's, with the paired bootstrap interval of ΔBLEU carried over."""
        fp32, row = self.fp32(run.model, run.pair), self.delta(run)
        pct = (lambda x: round(100 * x / fp32, 1)) if fp32 else (lambda x: 0.0)
        return {"pct_fp32": pct(self.point(run)["bleu"]), "pct_ci": [pct(fp32 + x) for x in row["ci"]]}

    # --- sections ----------------------------------------------------------------------------------------------
    def table2(self) -> list[dict]:
        rows = []
        for model in TABLE2_MODELS:
            mods = int_modules(self.lab.model(model)[0])
            for pair in self.pairs:
                run = Run.of("sp", model, pair, **({} if len(mods) == len(MODULE_NAMES) else {"modules": mods}))
                rows.append({"model": model, "pair": pair, "fp32_bleu": bleu2(self.fp32(model, pair)),
                             **self.delta(run), **self.percent(run), "int8_modules": ",".join(mods)})
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
                             "mse": sig4(self.point(run, act)["mse"][act]), **self.delta(run)})
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
                    rows.append({"pair": pair, "method": method, "bits": b, **self.delta(run), **self.percent(run)})
        return rows

    def design(self) -> list[dict]:
        """Every (re-scaling, bits, accumulator width) point against FP32, and against the widest accumulator
        of the same re-scaling and bits: is a narrower accumulator significantly different?"""
        from itx.golden.int_config import IntConfig

        rows, pair, default = [], self.pairs[0], IntConfig()
        widest = max(self.p.acc_bits)

        def run_of(rescale, b, acc):
            return Run.of("sp", ABLATION_MODEL, pair, **{k: v for k, v in (("bits", b), ("rescale", rescale),
                                                                            ("acc_bits", acc))
                                                         if v != getattr(default, k)})
        for rescale in self.p.rescale:
            for b in self.p.design_bits:
                for acc in self.p.acc_bits:
                    run, wide = run_of(rescale, b, acc), run_of(rescale, b, widest)
                    c = self.compare(run, wide) if acc != widest else {"p": 1.0}
                    rows.append({"pair": pair, "rescale": rescale, "bits": b, "acc_bits": acc, **self.delta(run),
                                 "delta_widest": bleu2(self.point(run)["bleu"] - self.point(wide)["bleu"]),
                                 "p_widest": round(c["p"], 4), "significant_widest": c["p"] < SIGNIFICANCE})
        return rows

    def cycles_run(self) -> tuple[Run, int]:
        """The run whose GEMMs are traced for the cycle count, and how many sentences."""
        return Run.of("sp", ABLATION_MODEL, self.pairs[0]), min(self.p.cycle_sentences, len(
            self.lab.rows[self.pairs[0]]))

    def cycles(self) -> list[dict]:
        if self.dry:
            return []
        n, shapes = self.cycles_run()[1], self.shapes
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

    @staticmethod
    def syntheses(directory=SYNTH_RUNS) -> list[dict]:
        """Every synthesis result of the `itx synth --json` files in `directory` (sim/synth.py), the NAND2-eq area
        recomputed with its area model from the recorded cells; none when the directory is absent."""
        from itx.sim.synth import UNITS, nand2_eq

        rows = []
        for path in sorted(Path(directory).glob("*.json")):
            try:
                for r in json.loads(path.read_text())["results"]:
                    cells, point = r["cells"], {f: r["point"][f] for f in UNITS[r["unit"]].depends}
                    rows.append({"unit": r["unit"], "point": point,
                                 "configuration": " ".join(f"{k}={v}" for k, v in point.items()),
                                 "cells": sum(cells.values()),
                                 "dff": cells.get("$_DFF_P_", 0), "nand2_eq": round(nand2_eq(cells)),
                                 "yosys": r["yosys"]})
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path}: not an `itx synth --json` file ({exc!r})") from None
        return rows

    @staticmethod
    def area(design: list[dict], cycles: list[dict], synth: list[dict]) -> list[dict]:
        """The design space's third axis: per synthesized GEMM array (itx_gemm_ctrl and its PEs at one in_bits and
        acc_bits, overflow from hw/config.toml), its NAND2-eq area and GEMM cycles per sentence next to the ΔBLEU of
        the design point of those widths under the default re-scaling (the array does not depend on the mode)."""
        from itx.golden.config import load_hw_config
        from itx.golden.int_config import IntConfig

        overflow, per_array = load_hw_config().overflow, {r["array"]: r["cycles_per_sentence"] for r in cycles}
        points = {(d["bits"], d["acc_bits"]): d for d in design if d["rescale"] == IntConfig.rescale}
        rows = {}
        for a in (r for r in synth if r["unit"] == "array" and r["point"].get("overflow") == overflow):
            size, widths = (a["point"]["rows"], a["point"]["cols"]), (a["point"]["in_bits"], a["point"]["acc_bits"])
            if widths in points:
                d, name = points[widths], f"{size[0]}x{size[1]}"
                rows[size + widths] = {"array": name, "pair": d["pair"], "rescale": d["rescale"], "bits": d["bits"],
                                       "acc_bits": d["acc_bits"], "nand2_eq": a["nand2_eq"], "cells": a["cells"],
                                       "dff": a["dff"], "cycles_per_sentence": per_array.get(name),
                                       **{k: d[k] for k in ("bleu", "delta_bleu", "ci", "p", "significant")}}
        return [rows[k] for k in sorted(rows)]

    @staticmethod
    def units_area(synth: list[dict]) -> list[dict]:
        """The synthesized units but the array, then, where every unit of sim.synth.design_area was synthesized at
        the default design point (DesignPoint()), their sum: one GEMM array, one re-scaling unit of the default
        mode and one of each non-GEMM unit."""
        from itx.sim.synth import UNITS, DesignPoint

        default = DesignPoint()
        at_default = {}
        for r in synth:
            if r["point"] == {f: getattr(default, f) for f in UNITS[r["unit"]].depends}:
                at_default[r["unit"]] = r
        rows = [r for r in synth if r["unit"] != "array"]
        parts = [u for u in UNITS if u != "pe"]
        if rows and all(u in at_default for u in parts):
            rows.append({"unit": "one of each", "point": {}, "yosys": at_default["array"]["yosys"],
                         "configuration": f"{default.rows}x{default.cols} array + " + " + ".join(parts[1:]) +
                                          f" at in_bits={default.in_bits} acc_bits={default.acc_bits} "
                                          f"rescale={default.rescale}",
                         **{k: sum(at_default[u][k] for u in parts) for k in ("cells", "dff", "nand2_eq")}})
        return rows

    def sections(self) -> dict:
        design, cycles, synth = self.design(), self.cycles(), self.syntheses()
        return {"rtl_check": self.rtl_check(), "table2": self.table2(), "storage": self.storage(),
                "per_layer": self.per_layer(), "modules": self.modules(), "bits": self.bits(),
                "design": design, "cycles": cycles, "area": self.area(design, cycles, synth),
                "units_area": self.units_area(synth)}


def headlines(s: dict) -> dict:
    """The numbers a reader looks for first: layers by teacher-forced ΔNLL (deterministic, resolves effects
    too small for BLEU), the layers and modules whose ΔBLEU is significant, and per (re-scaling, bits) the
    narrowest accumulator from which no wider one is significantly different from the widest swept."""
    out = {"worst_layers": {}, "hurt_layers": {}, "hurt_modules": {}, "acc_cliff": {}}
    for pair in sorted({r["pair"] for r in s["per_layer"]}):
        rows = [r for r in s["per_layer"] if r["pair"] == pair]
        out["worst_layers"][pair] = [{k: r[k] for k in ("layer", "delta_nll", "delta_bleu", "significant")}
                                     for r in sorted(rows, key=lambda r: (-r["delta_nll"], r["layer"]))[:3]]
        out["hurt_layers"][pair] = [r["layer"] for r in rows if r["significant"] and r["delta_bleu"] < 0]
        out["hurt_modules"][pair] = [r["module"] for r in s["modules"]
                                     if r["pair"] == pair and r["significant"] and r["delta_bleu"] < 0]
    for tag in dict.fromkeys((r["rescale"], r["bits"]) for r in s["design"]):
        sweep = sorted((r for r in s["design"] if (r["rescale"], r["bits"]) == tag), key=lambda r: -r["acc_bits"])
        cliff = sweep[0]["acc_bits"]
        for r in sweep[1:]:
            if r["significant_widest"]:
                break
            cliff = r["acc_bits"]
        out["acc_cliff"][f"{tag[0]} INT{tag[1]}"] = cliff
    return out


def measure_report(lab: Lab, profile: Profile, pairs: tuple[str, ...], executor) -> tuple[dict, dict]:
    """(every section, the sacrebleu signatures), measured through `executor` (itx/report/execute.py) in two
    rounds of independent tasks: the points (and the GEMM trace for cycles), then the paired comparisons."""
    from itx.report.execute import Job
    from itx.report.measure import compare, measure

    dry = Builder(lab, profile, pairs)
    dry.sections()
    traced, n = dry.cycles_run()
    keys = {run: lab.key("point", run, acts=sorted(acts)) for run, acts in dry.points.items()}
    # First the 32-bit runs whose recorded batches the missing narrow-accumulator points, and they themselves, reuse.
    wides = list(dict.fromkeys(lab.widest(run) for run, acts in dry.points.items()
                               if not acts and lab.widest(run) and executor.cache.get(keys[run]) is None))
    peaks = dict(zip(wides, executor.map([Job(lab.key("accumulator_peaks", wide), measure,
                                              (lab.n, lab.split, "accumulator_peaks", wide), stamped=True)
                                          for wide in wides], "accumulator peaks")))
    jobs = [Job(keys[run], measure, (lab.n, lab.split, "point", run, tuple(sorted(acts)),
                                     None if acts else peaks.get(lab.widest(run) or run)), stamped=True)
            for run, acts in dry.points.items()]
    jobs.append(Job(lab.key("gemm_shapes", traced, traced=n), measure, (lab.n, lab.split, "gemm_shapes", traced, n),
                    stamped=True))
    *values, shapes = executor.map(jobs, "report points")
    points = dict(zip(dry.points, values))
    refs = {pair: [r[3] for r in lab.rows[pair]] for pair in pairs}
    pairs_cmp = list(dry.comparisons)
    done = executor.map([Job({**lab.key("compare", run, base=lab.key("point", base)), **BOOTSTRAP}, compare,
                             (points[run]["hyps"], points[base]["hyps"], refs[run.pair]))
                         for run, base in pairs_cmp], "paired bootstrap")
    builder = Builder(lab, profile, pairs, points, dict(zip(pairs_cmp, done)))
    builder.shapes = shapes
    return builder.sections(), {"sacrebleu": values[0]["signature"], "paired_bootstrap": done[0]["signature"]}
