"""The report of a layer-by-layer RTL run (`itx sim model`): reports/sim/<name>.json and .md, one row per GEMM."""
from __future__ import annotations

import json
from pathlib import Path

from itx.golden.atomic import check_target, staged_files
from itx.golden.config import ROOT
from itx.golden.errors import UserError
from itx.sim.model_run import LayerResult


def first_mismatch(r: LayerResult) -> str:
    """The first differing element of a GEMM's result, as text ("" when it matched)."""
    f = r.first
    return "" if f is None else f"{f['tensor']}[{f['index'][0]}, {f['index'][1]}]: expected {f['expected']}, " \
                                f"got {f['got']}"


def write_report(results: list[LayerResult], meta: dict, out: Path) -> tuple[Path, Path]:
    """reports/sim/<name>.json and .md: one row per GEMM plus totals, staged and moved in together."""
    rows = [{"index": r.index, "layer": r.layer, "shape": list(r.shape), "cycles": r.cycles,
             "pe_utilisation": round(r.utilisation, 4), "compared": r.tensor, "mismatches": r.mismatches,
             "first_mismatch": r.first} for r in results]
    jpath, mpath = out.with_suffix(".json"), out.with_suffix(".md")
    doc = json.dumps({**meta, "gemms": rows}, indent=1) + "\n"
    lines = [f"# RTL vs golden, layer by layer: {meta['title']}", "",
             *(f"- {k}: {v}" for k, v in meta.items() if k != "title"), "",
             "| # | layer | M x K x N | cycles | PE util. | compared | mismatches | first mismatch |",
             "|---:|---|---|---:|---:|---|---:|---|"]
    lines += [f"| {r.index} | {r.layer} | {'x'.join(map(str, r.shape))} | {r.cycles} | {r.utilisation:.1%} | "
              f"{'INT32 C' if r.tensor == 'C' else 'INT32 C + INT8 Y'} | {r.mismatches} | {first_mismatch(r)} |"
              for r in results]
    with staged_files(out.parent, "--report directory") as stage:
        (stage / jpath.name).write_text(doc)
        (stage / mpath.name).write_text("\n".join(lines) + "\n")
    return jpath, mpath


def check_report_path(out: Path) -> Path:
    """Refuse a report path before the RTL run: empty, or its .json/.md taken by a directory."""
    if not str(out).strip() or not Path(out).name:
        raise UserError(f"--report: expected a path without suffix, got {str(out)!r}")
    out = Path(out)
    check_target(out.parent, None, "--report directory")
    for p in (out.with_suffix(".json"), out.with_suffix(".md")):
        if p.is_dir():
            raise UserError(f"--report {out}: {p} is a directory")
    return out


def report_path(sentence: int) -> Path:
    return ROOT / "reports" / "sim" / f"sentence{sentence}"
