"""`itx report` light version (CI): files, sections, REPORT.md numbers == report.json, byte-identical re-run from
the cache, deterministic measurements, one-line errors."""
from __future__ import annotations

import json
import re

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
    """One light report: (output dir, cache dir)."""
    out, cache = tmp_path_factory.mktemp("report"), tmp_path_factory.mktemp("cache")
    assert main(ARGS + ["--out", str(out), "--cache", str(cache)]) == 0
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
    assert "**2** sentence pairs per language pair, evenly spaced" in text


def test_markdown_numbers_equal_json(light):
    out, _ = light
    report = json.loads((out / "report.json").read_text())
    tables = md_tables((out / "REPORT.md").read_text())
    order = ("per_layer", "modules", "bits", "design", "cycles", "rtl_check", "table2", "storage")
    assert len(tables) == len(order)
    for name, table in zip(order, tables):
        rows = report["sections"][name]
        assert rows, f"section {name} is empty"
        assert len(table) == len(rows), f"{name}: {len(table)} table rows vs {len(rows)} in report.json"
        for i, (cells, row) in enumerate(zip(table, rows)):
            for cell, (key, _, fmt) in zip(cells, render.COLUMNS[name]):
                want = row[key]
                same = cell == want if fmt == "s" else float(cell.replace("+", "")) == want
                assert same, f"{name} row {i} {key}: REPORT.md {cell!r} vs report.json {want!r}"


def test_report_content_is_consistent(light):
    out, _ = light
    s = json.loads((out / "report.json").read_text())["sections"]
    fp32 = {r["pair"]: r["fp32_bleu"] for r in s["table2"] if r["model"] == "integer"}
    full = next(r["bleu"] for r in s["modules"] if r["module"] == "all")
    sp8 = next(r["bleu"] for r in s["bits"] if r["method"] == "sp" and r["bits"] == 8)
    assert full == sp8 == next(r["int8_bleu"] for r in s["table2"] if r["model"] == "integer")
    for r in s["per_layer"] + s["modules"] + s["bits"] + s["design"]:
        assert r["delta_bleu"] == pytest.approx(r["bleu"] - fp32[r["pair"]], abs=0.011)
    assert all(r["mse"] >= 0 for r in s["per_layer"])
    assert {r["layer"] for r in s["per_layer"]} >= {"enc.embed", "enc.0", "dec.0", "out_proj"}
    assert all(r["delta_std"] >= 0 for r in s["table2"])
    for r in s["storage"]:
        assert r["int8_per_tensor_bytes"] < r["int8_per_channel_bytes"] < r["fp32_bytes"]


def test_rerun_from_cache_is_byte_identical(light, tmp_path, monkeypatch):
    out, cache = light
    import golden.model

    def no_decode(*a, **k):
        raise AssertionError("re-run decoded instead of reading the cache")
    monkeypatch.setattr(golden.model, "translate", no_decode)
    assert main(ARGS + ["--out", str(tmp_path), "--cache", str(cache)]) == 0
    for f in sorted(p.name for p in out.iterdir()):
        assert (tmp_path / f).read_bytes() == (out / f).read_bytes(), f"{f} differs between two runs"


def test_measurements_deterministic_without_cache(tmp_path):
    run = Run.of("sp", "integer", "en-de", int_layers=["enc.0.ffn"])
    a, b = Lab(tmp_path / "a", 2, progress=False), Lab(tmp_path / "b", 2, progress=False)
    assert a.bleu(run) == b.bleu(run)
    assert a.mse(run, "enc.0.ffn.w2") == b.mse(run, "enc.0.ffn.w2")


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
    (["--sentences", "0"], "--sentences must be an integer >= 1"),
    (["--sentences", "100000"], "has only"),
])
def test_bad_arguments_one_line_error(argv, needle, tmp_path, capsys):
    assert main(["report", "--quiet", "--out", str(tmp_path), "--cache", str(tmp_path)] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and err.startswith("itx report: error:")


def test_rtl_check_bad_file(tmp_path):
    (tmp_path / "run.json").write_text("{\"gemms\": [")
    with pytest.raises(ValueError, match="run.json: not a readable RTL run summary"):
        build.Builder.rtl_check(tmp_path / "run.json")


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
    assert measure.sample(1017, 32)[-1] < 1017
