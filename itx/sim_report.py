"""The report of an op-by-op RTL run (`itx sim model`): reports/sim/<name>.json and .md, one row per GEMM, then one
per non-GEMM op."""
from __future__ import annotations

import json
from pathlib import Path

from itx.golden.atomic import check_target, staged_files
from itx.golden.config import ROOT
from itx.golden.errors import UserError
from itx.sim.model_run import LayerResult
from itx.sim.ops_run import OpResult


def first_mismatch(r: LayerResult | OpResult) -> str:
    """The first differing element of a GEMM's or op's result, as text ("" when it matched)."""
    f = r.first
    return "" if f is None else f"{f['tensor']}[{', '.join(map(str, f['index']))}]: expected {f['expected']}, " \
                                f"got {f['got']}"


def write_report(results: list[LayerResult], ops: list[OpResult], meta: dict, out: Path) -> tuple[Path, Path]:
    """reports/sim/<name>.json and .md: one row per GEMM, one per non-GEMM op, and totals, staged and moved in
    together."""
    rows = [{"index": r.index, "layer": r.layer, "shape": list(r.shape), "cycles": r.cycles,
             "pe_utilisation": round(r.utilisation, 4), "compared": r.tensor, "mismatches": r.mismatches,
             "first_mismatch": r.first} for r in results]
    op_rows = [{"index": r.index, "op": r.op, "kind": r.kind, "shape": list(r.shape), "cycles": r.cycles,
                "compared": r.compared, "mismatches": r.mismatches, "first_mismatch": r.first} for r in ops]
    jpath, mpath = out.with_suffix(".json"), out.with_suffix(".md")
    doc = json.dumps({**meta, "gemms": rows, "ops": op_rows}, indent=1) + "\n"
    lines = [f"# RTL vs golden, op by op: {meta['title']}", "",
             *(f"- {k}: {v}" for k, v in meta.items() if k != "title"), "",
             "| # | layer | M x K x N | cycles | PE util. | compared | mismatches | first mismatch |",
             "|---:|---|---|---:|---:|---|---:|---|"]
    lines += [f"| {r.index} | {r.layer} | {'x'.join(map(str, r.shape))} | {r.cycles} | {r.utilisation:.1%} | "
              f"{'INT32 C' if r.tensor == 'C' else 'INT32 C + INT8 Y'} | {r.mismatches} | {first_mismatch(r)} |"
              for r in results]
    if ops:
        lines += ["", "| # | op | unit | shape | cycles | compared | mismatches | first mismatch |",
                  "|---:|---|---|---|---:|---|---:|---|"]
        lines += [f"| {r.index} | {r.op} | {UNIT_NAMES[r.kind]} | {'x'.join(map(str, r.shape))} | {r.cycles} | "
                  f"{COMPARED[r.compared]} | {r.mismatches} | {first_mismatch(r)} |" for r in ops]
    with staged_files(out.parent, "--report directory") as stage:
        (stage / jpath.name).write_text(doc)
        (stage / mpath.name).write_text("\n".join(lines) + "\n")
    return jpath, mpath


UNIT_NAMES = {"poly": "itx_poly", "attn_norm": "itx_attn_norm", "residual": "itx_residual",
              "layernorm": "itx_layernorm"}
COMPARED = {"out": "output", "out+scale": "output + row scales", "poly": "Poly(x) before Eq. 10"}


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


def report_path(pair: str, sentence: int, sim: str = "icarus", chain: str | None = None) -> Path:
    """The default report of `itx sim model`: reports/sim/<pair>-sentence<i>, then -chain-<prefix> for --chain and
    -<sim> for a simulator other than Icarus (the reference run)."""
    name = f"{pair}-sentence{sentence}" + (f"-chain-{chain.replace('.', '_')}" if chain else "")
    return ROOT / "reports" / "sim" / (name + ("" if sim == "icarus" else f"-{sim}"))
