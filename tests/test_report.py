"""`itx report` light version (CI): files, sections, REPORT.md numbers == report.json, byte-identical re-run from
the cache and on 1 or 2 Dask workers, deterministic measurements, the paired bootstrap and teacher-forced metrics,
significance marking, one-line errors."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from itx.cli import main
from itx.report import build, measure, render
from itx.report.measure import Cache, Lab
from itx.report.plan import Run

ARGS = ["report", "--sentences", "2", "--profile", "ci", "--pair", "en-de", "--quiet"]
SECTIONS = ("## 1. Precision loss vs BLEU per layer", "## 2. Per-module contribution", "## 3. Bits sweep",
            "## 4. Design space", "## 5. FP32 vs INT8 BLEU and storage")


@pytest.fixture(scope="module")
def light(tmp_path_factory):
    """One light report, measured in this process (--workers 0: no Dask start-up): (output dir, cache dir)."""
    out, cache = tmp_path_factory.mktemp("report"), tmp_path_factory.mktemp("cache")
    assert main(ARGS + ["--workers", "0", "--out", str(out), "--cache", str(cache)]) == 0
    return out, cache


def md_tables(text: str) -> list[list[list[str]]]:
    """Every markdown table as rows of cells (header and separator dropped)."""
    tables, cur = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cur.append([c.strip() for c in line.strip("|").split(" | ")])
        elif cur:
            tables.append(cur[2:])
            cur = []
    return tables


def test_files_and_sections(light):
    out, _ = light
    text = (out / "REPORT.md").read_text()
    for heading in SECTIONS:
        assert heading in text, f"REPORT.md lacks section {heading!r}"
    for png in render.FIGURES.values():
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
        assert f"]({png})" in text, f"REPORT.md does not show {png}"
        assert b"Software" not in data, f"{png} carries software metadata (not reproducible)"
    assert "itx report --sentences 2 --profile ci --pair en-de" in text
    assert "**2 en-de test sentence pairs** (evenly spaced)" in text
    assert "bs:1000|seed:12345" in text, "REPORT.md does not give the paired bootstrap's signature"


def test_markdown_numbers_equal_json(light):
    out, _ = light
    report = json.loads((out / "report.json").read_text())
    tables = md_tables((out / "REPORT.md").read_text())
    order = ("per_layer", "modules", "bits", "design", "cycles", "rtl_check", "area", "units_area", "table2",
             "storage")   # area and units_area: the committed syntheses of reports/synth/ joined with this profile
    assert len(tables) == len(order)
    for name, table in zip(order, tables):
        rows = report["sections"][name]
        assert rows, f"section {name} is empty"
        assert len(table) == len(rows), f"{name}: {len(table)} table rows vs {len(rows)} in report.json"
        for i, (cells, row) in enumerate(zip(table, rows)):
            for cell, (key, _, fmt) in zip(cells, render.COLUMNS[name]):
                assert parse(cell, fmt) == row[key], f"{name} row {i} {key}: REPORT.md {cell!r} vs {row[key]!r}"


def parse(cell: str, fmt: str):
    """A REPORT.md cell back into its report.json value."""
    if cell == "n/a":
        return None
    if fmt in ("ci", "pct"):
        return [float(x) for x in cell.strip("[]").split(", ")]
    if fmt == "sig":
        assert cell in ("p < 0.05", "not significant"), cell
        return cell == "p < 0.05"
    if fmt.endswith("%"):
        return round(float(cell.rstrip("%")) / 100, 4)
    return cell if fmt == "s" else float(cell)


def test_report_content_is_consistent(light):
    out, _ = light
    s = json.loads((out / "report.json").read_text())["sections"]
    fp32 = {r["pair"]: r["fp32_bleu"] for r in s["table2"] if r["model"] == "integer"}
    full = next(r["bleu"] for r in s["modules"] if r["module"] == "all")
    sp8 = next(r["bleu"] for r in s["bits"] if r["method"] == "sp" and r["bits"] == 8)
    assert full == sp8 == next(r["bleu"] for r in s["table2"] if r["model"] == "integer")
    for r in s["table2"] + s["per_layer"] + s["modules"] + s["bits"] + s["design"]:
        assert r["delta_bleu"] == pytest.approx(r["bleu"] - r.get("fp32_bleu", fp32[r["pair"]]), abs=0.011)
        assert r["ci"][0] <= r["ci"][1] and 0 < r["p"] <= 1 and r["significant"] == (r["p"] < 0.05)
        assert 0 <= r["identical"] <= 1 and r["kl"] >= 0 and math.isfinite(r["delta_nll"])
        if r["identical"] == 1:  # no output differs from FP32: nothing to find
            assert r["ci"] == [0, 0] and r["p"] == 1 and not r["significant"] and r["delta_chrf"] == 0
    # the teacher-forced metrics resolve what identical greedy outputs hide: every integer point moves the NLL
    assert all(r["kl"] > 0 and r["delta_nll"] != 0 for r in s["per_layer"])
    assert all(r["mse"] >= 0 for r in s["per_layer"])
    assert {r["layer"] for r in s["per_layer"]} >= {"enc.embed", "enc.0", "dec.0", "out_proj"}
    assert [r["acc_bits"] for r in s["design"]] == [16, 32]
    for r in s["storage"]:
        assert r["int8_per_tensor_bytes"] < r["int8_per_channel_bytes"] < r["fp32_bytes"]


def same_files(a, b) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for f in names:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f"{f} differs between two runs"


def test_rerun_from_cache_is_byte_identical(light, tmp_path, monkeypatch):
    out, cache = light
    import itx.golden.model

    def no_work(*a, **k):
        raise AssertionError("re-run measured instead of reading the cache")
    monkeypatch.setattr(itx.golden.model, "translate", no_work)
    monkeypatch.setattr(measure, "compare", no_work)
    assert main(ARGS + ["--workers", "0", "--out", str(tmp_path), "--cache", str(cache)]) == 0
    same_files(out, tmp_path)


def test_two_dask_workers_byte_identical(light, tmp_path):
    """The same report measured from scratch on a Dask LocalCluster of 2 worker processes (points finish in
    another order) is byte-identical to the one measured point after point in this process."""
    out, _ = light
    assert main(ARGS + ["--workers", "2", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c")]) == 0
    same_files(out, tmp_path / "out")


def test_in_process_executor_resumes(tmp_path):
    from itx.report.execute import Executor, Job

    calls = []
    jobs = [Job({"n": i}, lambda i: calls.append(i) or i * i, (i,)) for i in range(3)]
    Cache(tmp_path).put({"n": 1}, 100)  # computed by an interrupted run
    with Executor(Cache(tmp_path), workers=0, progress=False) as ex:
        assert ex.map(jobs, "t") == [0, 100, 4] and calls == [0, 2]
        assert ex.map(jobs, "t") == [0, 100, 4] and calls == [0, 2]


def test_worker_with_other_weights_is_an_error():
    from itx.report.execute import Job

    job = Job({"weights": "a", "code": "c"}, print, (), stamped=True)
    assert job.value(("a", "c", 7)) == 7
    with pytest.raises(RuntimeError, match="weights b"):
        job.value(("b", "c", 7))


@pytest.mark.usefixtures("one_blas_thread")
def test_measurements_deterministic_without_cache():
    run = Run.of("sp", "integer", "en-de", int_layers=["enc.0.ffn"])
    a, b = Lab(2).point(run, ("enc.0.ffn.w2",)), Lab(2).point(run, ("enc.0.ffn.w2",))
    assert a == b and a["mse"]["enc.0.ffn.w2"] > 0 and a["kl"] > 0


@pytest.mark.usefixtures("one_blas_thread")
def test_reused_fp32_reference_is_exact():
    """Teacher-forced metrics with the FP32 logits computed once per (model, pair) and reused equal those with the
    reference recomputed for each point: 20 sentences (two teacher batches), both pairs, FP32 point first."""
    on, off = Lab(20), Lab(20, reuse=False)
    for pair in ("en-de", "en-fr"):
        for run in (Run.of("fp32", "integer", pair), Run.of("sp", "integer", pair, bits=6)):
            assert on.teacher(run) == off.teacher(run)
    assert len(on._references["integer", "en-de"]) == 2 and not off._references
    vanilla = Run.of("fp32", "vanilla", "en-de")
    assert on.teacher(vanilla) == off.teacher(vanilla)
    assert list(on._references) == [("integer", "en-fr"), ("vanilla", "en-de")], "not the 2 most recently used"
    assert on.teacher(Run.of("sp", "integer", "en-de")) == off.teacher(Run.of("sp", "integer", "en-de"))


@pytest.mark.usefixtures("one_blas_thread")
def test_narrow_accumulator_reuse_is_exact():
    """A narrow-accumulator point reuses the 32-bit run's batches whose ops needed at most its width, and equals the
    point computed from scratch: at the widest peak of the batches every batch is reused (the narrow model never
    runs), one bit below none is, and both equal Lab(reuse=False)'s points; the narrower one differs from 32 bits."""
    on, off = Lab(2), Lab(2, reuse=False)
    wide = Run.of("sp", "integer", "en-de")
    peak = max(bits for part in on.accumulator_peaks(wide).values() for bits, _ in part)
    ran = []
    build = on.build
    on.build = lambda run: setattr(m := build(run), "gemm_hook", lambda *a: ran.append(run)) or m
    for acc in (peak, peak - 1):
        run = Run.of("sp", "integer", "en-de", acc_bits=acc)
        got = on.point(run)
        assert got == off.point(run)
        assert bool(ran) == (acc < peak), f"acc_bits {acc}: the narrow model ran {len(ran)} GEMMs (peak {peak})"
    assert got != off.point(wide) and on.point(Run.of("sp", "integer", "en-de", acc_bits=peak)) == off.point(wide)
    ran.clear()
    assert on.point(wide) == off.point(wide) and not ran, "the recorded 32-bit run was computed again"


def test_whole_split_by_default():
    lab = Lab()
    assert {p: len(r) for p, r in lab.rows.items()} == {"en-de": 1017, "en-fr": 944}


# --- statistics ------------------------------------------------------------------------------------------------
def test_token_metrics_against_hand_values():
    """P = (0.5, 0.5) (reference), Q = (0.9, 0.1), target 1: KL(P||Q) = 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1)."""
    p, q = np.log([[[0.5, 0.5]]]), np.log([[[0.9, 0.1]]]) + 1e4  # a shift changes no probability
    got = measure.token_metrics(p, q, np.array([[1]]), np.array([[True]]))
    assert got["kl"] == pytest.approx(0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(5), rel=1e-12)
    assert got["nll"] == pytest.approx(-math.log(0.1), rel=1e-12) and got["nll_ref"] == pytest.approx(math.log(2))
    assert got["tokens"] == 1
    none = measure.token_metrics(p, q, np.array([[1]]), np.array([[False]]))
    assert none == {"nll_ref": 0.0, "nll": 0.0, "kl": 0.0, "tokens": 0}


def test_log_softmax64_stable_for_huge_logits():
    lp = measure.log_softmax64(np.array([[800.0, 799.0]], np.float32))  # exp(800) overflows float64
    assert lp.dtype == np.float64
    assert lp[0] == pytest.approx([-math.log1p(math.exp(-1)), -1 - math.log1p(math.exp(-1))], rel=1e-12)


REFS = ["the cat sat on the mat", "a dog runs in the park today", "we write tests that fail", "one two three four"]
BASE = ["the cat sat on a mat", "a dog runs in the park", "we write tests that fail", "one two three four"]
WORSE = ["cat mat", "dog", "tests fail", "one"]


def test_compare_identical_outputs_not_significant():
    c = measure.compare(BASE, BASE, REFS)
    assert c["p"] == 1.0 and c["ci"] == [0.0, 0.0] and c["identical"] == 1.0


def test_compare_is_sacrebleus_paired_bootstrap(monkeypatch):
    """p is sacrebleu's; the interval comes from the very resamples sacrebleu draws (its p recomputed from our
    deltas with its own formula agrees), seeded by BOOTSTRAP whatever SACREBLEU_SEED says."""
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import _compute_p_value

    refs, base, worse = REFS * 30, BASE * 30, WORSE * 30
    c = measure.compare(worse, base, refs, resamples=200)
    monkeypatch.setenv("SACREBLEU_SEED", "none")
    assert measure.compare(worse, base, refs, resamples=200) == c
    assert c["p"] < 0.05 and c["ci"][1] < 0 and c["identical"] == 0
    m = BLEU()
    idx = np.random.default_rng(measure.BOOTSTRAP["seed"]).choice(len(refs), size=(200, len(refs)))
    score = [np.array([m._compute_score_from_stats(s).score for s in np.array(
        m._extract_corpus_statistics(h, [refs]), np.float32)[idx].sum(1)]) for h in (worse, base)]
    diff = np.abs(score[0] - score[1])
    real = abs(m.corpus_score(worse, [refs]).score - m.corpus_score(base, [refs]).score)
    assert _compute_p_value(diff - diff.mean(), real) == c["p"]
    d = np.sort(score[0] - score[1])
    assert c["ci"] == pytest.approx([d[5], d[194]], abs=1e-4)  # sacrebleu sums float32, compare() exact integers
    other = measure.compare(worse, base, refs, resamples=200, seed=7)
    assert other["ci"] != c["ci"], "the seed does not reach the resampling"


def test_not_significant_rows_say_so(light):
    out, _ = light
    text = (out / "REPORT.md").read_text()
    rows = json.loads((out / "report.json").read_text())["sections"]["modules"]
    assert any(not r["significant"] for r in rows)
    for r in rows:
        line = next(x for x in text.splitlines() if x.startswith(f"| {r['pair']} | {r['module']} |"))
        assert ("not significant" in line) == (not r["significant"]), line
    assert render.cell(False, "sig") == "not significant" and render.cell(True, "sig") == "p < 0.05"


def test_acc_cliff_is_the_narrowest_width_not_significantly_different():
    design = [{"rescale": "dyadic", "bits": 8, "acc_bits": a, "significant_widest": s}
              for a, s in ((16, True), (18, False), (20, True), (24, False), (32, False))]
    s = {"per_layer": [], "modules": [], "design": design}
    assert build.headlines(s)["acc_cliff"] == {"dyadic INT8": 24}


def test_cache_miss_on_corrupt_or_foreign_entry(tmp_path):
    c = Cache(tmp_path)
    key = {"what": "bleu", "n": 1}
    assert c.put(key, {"bleu": 1.5}) == {"bleu": 1.5} and c.get(key) == {"bleu": 1.5}
    path = next(tmp_path.glob("*.json"))
    path.write_text(path.read_text()[:10])  # truncated
    assert c.get(key) is None
    path.write_text(json.dumps({"key": {"what": "other"}, "value": 3}))  # hash collision / foreign file
    assert c.get(key) is None


def test_code_version_tracks_golden_sources():
    assert re.fullmatch(r"[0-9a-f]{16}", measure.code_version())


@pytest.mark.parametrize("argv, needle", [
    (["--sentences", "0"], "argument --sentences: must be >= 1"),
    (["--sentences", "100000"], "has only"),
    (["--sentences", "2", "--workers", "-1"], "argument --workers: must be in 0..256"),
])
def test_bad_arguments_one_line_error(argv, needle, tmp_path, capsys):
    assert main(["report", "--quiet", "--out", str(tmp_path), "--cache", str(tmp_path)] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and err.startswith("itx report: error:")


def test_rtl_check_bad_file(tmp_path):
    (tmp_path / "run.json").write_text("{\"gemms\": [")
    with pytest.raises(ValueError, match="run.json: not a readable RTL run summary"):
        build.Builder.rtl_check(tmp_path / "run.json")


def test_syntheses_bad_file(tmp_path):
    (tmp_path / "units.json").write_text(json.dumps({"results": [{"unit": "array", "point": {}, "yosys": "0.70",
                                                                "cells": {"$_LUT4_": 3}}]}))
    with pytest.raises(ValueError, match=r"units.json: not an `itx synth --json` file"):
        build.Builder.syntheses(tmp_path)
    assert build.Builder.syntheses(tmp_path / "absent") == []


def _synth(unit, cells, **point):
    return {"unit": unit, "point": point, "cells": cells, "dff": 1, "nand2_eq": 10 * cells, "yosys": "0.70"}


def test_area_joins_arrays_with_default_rescale_points():
    from itx.golden.config import load_hw_config
    from itx.golden.int_config import IntConfig

    ovf = load_hw_config().overflow
    other = next(m for m in ("paper", "pow2", "dyadic") if m != IntConfig.rescale)
    design = [{"pair": "en-de", "rescale": mode, "bits": 8, "acc_bits": acc, "bleu": 30.0, "ci": [-1, 1], "p": 0.5,
               "significant": False, "delta_bleu": -acc - 100 * (mode == other)}
              for mode in (IntConfig.rescale, other) for acc in (16, 24)]
    cycles = [{"array": "8x8", "cycles_per_sentence": 1000}]
    arr = dict(rows=8, cols=8, in_bits=8, overflow=ovf)
    synth = [_synth("array", 7, acc_bits=24, **arr), _synth("array", 5, acc_bits=16, **arr),
             _synth("array", 6, acc_bits=16, **arr),                      # a second file's copy: one row
             _synth("array", 9, acc_bits=32, **arr),                      # no design point of these widths
             _synth("array", 4, **{**arr, "acc_bits": 16, "rows": 4, "cols": 4}),   # no cycles measured
             _synth("array", 3, **{**arr, "acc_bits": 16, "overflow": "other"}),   # not hw/config.toml's overflow
             _synth("requant", 2, cols=8, in_bits=8, acc_bits=16, rescale=IntConfig.rescale)]
    rows = build.Builder.area(design, cycles, synth)
    assert [(r["array"], r["acc_bits"], r["cells"], r["cycles_per_sentence"]) for r in rows] == [
        ("4x4", 16, 4, None), ("8x8", 16, 6, 1000), ("8x8", 24, 7, 1000)]
    assert {r["rescale"] for r in rows} == {IntConfig.rescale}
    assert [r["delta_bleu"] for r in rows] == [-16, -16, -24]


def test_units_area_sums_one_of_each_at_the_default_point():
    from itx.sim.synth import UNITS, DesignPoint

    d = DesignPoint()
    synth = [_synth(u, i + 1, **{f: getattr(d, f) for f in UNITS[u].depends}) for i, u in enumerate(UNITS)]
    rows = build.Builder.units_area(synth)
    assert [r["unit"] for r in rows] == [u for u in UNITS if u != "array"] + ["one of each"]
    assert rows[-1]["cells"] == sum(i + 1 for i, u in enumerate(UNITS) if u != "pe")   # the lone PE is in the array
    assert rows[-1]["nand2_eq"] == 10 * rows[-1]["cells"]
    synth[-1]["point"]["max_n"] = d.max_n // 2   # one unit only at another point: no sum
    assert "one of each" not in [r["unit"] for r in build.Builder.units_area(synth)]


@pytest.mark.parametrize("m, k, n, rows, cols, cycles", [
    (16, 256, 64, 16, 16, 1072),   # hw/README.md check: 4 tiles * 256 + 16 + 16 + 16 (RTL: 1073 with the tb's +1)
    (8, 64, 8, 8, 8, 88),          # one tile
    (8, 8, 64, 8, 8, 137),         # K < R+C-1: later tiles wait R+C-1 cycles
    (3, 10, 5, 8, 8, 10 + 16 + 3),  # partial last tile: only its valid rows are sent
])
def test_gemm_cycles_formula(m, k, n, rows, cols, cycles):
    assert build.gemm_cycles(m, k, n, rows, cols) == cycles


def test_rtl_check_against_committed_run():
    row = build.Builder.rtl_check()[0]
    assert row["exact"] > 0 and row["formula_cycles"] <= row["rtl_cycles"]


def test_sample_evenly_spaced():
    assert measure.sample(10, 2) == [0, 5] and measure.sample(7, 7) == list(range(7))
    assert measure.sample(1017, 32)[-1] < 1017 and measure.sample(5, None) == [0, 1, 2, 3, 4]
