"""Op-by-op RTL verification of the non-GEMM integer ops of a real sentence (`itx sim model`): every Poly (Eq. 11),
attention normalisation (Eq. 12), residual add (Eq. 8) and L1 LayerNorm (Eq. 13) of golden's capture (the ops.npz
of a vector directory, itx.golden.capture.write_ops) goes through its unit (hw/itx_poly.v, itx_attn_norm.v,
itx_residual.v, itx_layernorm.v) fed golden's own inputs of that op, so a mismatch is localised to the op. One cocotb
run per unit (the `replay` test of sim/tb_<unit>.py, sim/replay.py), each in its own process, up to `jobs` at once;
results in the model's op order. This module only builds, runs and compares; itx/sim_report.py reports."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from itx.golden.config import HwConfig
from itx.golden.errors import UserError
from itx.golden.int_config import IntConfig
from itx.sim.poly import attention_ops, norm_parameters, poly_parameters
from itx.sim.poly import check_knobs as check_attention_knobs
from itx.sim.rowunits import check_knobs as check_row_knobs
from itx.sim.rowunits import unit_parameters
from itx.sim.rtl import SIM_BUILD


@dataclass
class OpResult:
    index: int              # position in the model's op order
    op: str
    kind: str
    shape: tuple[int, ...]
    cycles: int
    compared: str           # the tensor compared: the op's output, or Poly(x) before Eq. 10
    mismatches: int = 0
    first: dict | None = None
    values: np.ndarray | None = None    # what the unit computed (run_ops(outputs=True)), and its row scales
    scale: np.ndarray | None = None


def _units(data, names: list[str], icfg: IntConfig, hw: HwConfig) -> dict[str, tuple[str, str, dict[str, int]]]:
    """kind -> (bench module, top, parameters) for the kinds the capture holds: one lane per array column, the
    datapath's accumulator, the model's bits (Poly's degree and the row units' longest row from the capture)."""
    kind = {op: str(data[f"{op}/kind"]) for op in names}
    kinds = set(kind.values())
    acc, ovf, lanes = hw.acc_bits, hw.overflow, hw.cols
    rows = replace(hw, in_bits=icfg.bits)
    units = {}
    if "poly" in kinds:
        n = {int(data[f"{op}/n"]) for op in names if kind[op] == "poly"}
        units["poly"] = ("tb_poly", "itx_poly", poly_parameters(acc, icfg.bits, n.pop(), ovf, lanes))
    if "attn_norm" in kinds:
        units["attn_norm"] = ("tb_attn_norm", "itx_attn_norm", norm_parameters(acc, icfg.bits, ovf, lanes))
    for k in ("residual", "layernorm"):   # the row buffers as deep as the longest row
        if k in kinds:
            n = max(data[f"{op}/x.values"].shape[-1] for op in names if kind[op] == k)
            units[k] = (f"tb_{k}", f"itx_{k}", unit_parameters(f"itx_{k}", rows, lanes, n))
    return units


def check_ops_knobs(icfg: IntConfig) -> None:
    """One line naming the knob when a non-GEMM unit does not implement the value (before anything runs)."""
    try:
        check_attention_knobs(icfg.match, icfg.rescale, icfg.rounding)
        check_row_knobs(match=icfg.match, rescale=icfg.rescale, rounding=icfg.rounding, ln_division=icfg.ln_division,
                        granularity=icfg.granularity)
    except ValueError as exc:
        raise UserError(f"--{str(exc).replace('_', '-')}; pass --gemms-only to run the GEMMs alone") from None


def run_ops(ops: Path, icfg: IntConfig, hw: HwConfig, sim: str = "icarus", jobs: int = 1, layers: tuple[str, ...] = (),
            progress=None, outputs: bool = False) -> list[OpResult]:
    """Every non-GEMM op of the capture `ops` (those whose name starts with one of `layers`, default all) through its
    unit under `sim`, compared with golden; `progress(kind, seconds)` as each unit's run ends; `outputs`: each
    result also carries what the unit computed (OpResult.values, .scale)."""
    ops = Path(ops).resolve()     # the simulator runs in its build directory
    data = np.load(ops)
    names = [op for op in map(str, data["ops"]) if not layers or op.startswith(layers)]
    if not names:             # --layer picked GEMMs only
        return []
    attention = sorted({op.rsplit(".", 1)[0] for op in names if str(data[f"{op}/kind"]) in ("poly", "attn_norm")})
    attention_ops(ops, tuple(attention), icfg)   # golden's attention of the captured inputs is the model's
    knobs = {"match": icfg.match, "rescale": icfg.rescale, "rounding": icfg.rounding,
             "ln_division": icfg.ln_division, "ln_frac_bits": icfg.ln_frac_bits}
    work = SIM_BUILD / "ops" / hashlib.sha256(ops.read_bytes()).hexdigest()[:16]
    work.mkdir(parents=True, exist_ok=True)
    units = _units(data, names, icfg, hw)
    pending = []
    for kind, (module, top, params) in units.items():
        job = {"sim": sim, "module": module, "top": top, "params": params,
               "tb": {"seed": 0, "capture": str(ops), "knobs": knobs, "ops": names,
                      "replay": str(work / f"{kind}.json"), "outputs": str(work / f"{kind}.npz") if outputs else ""}}
        pending.append((kind, job, work / f"{kind}.log"))
    running: list[tuple[str, subprocess.Popen, Path, float]] = []
    try:
        while pending or running:
            while pending and len(running) < max(1, jobs):
                kind, job, log = pending.pop(0)
                Path(job["tb"]["replay"]).unlink(missing_ok=True)
                with open(log, "w") as out:
                    proc = subprocess.Popen([sys.executable, "-m", "itx.sim.ops_run", json.dumps(job)], stdout=out,
                                            stderr=subprocess.STDOUT)
                running.append((kind, proc, log, time.perf_counter()))
            time.sleep(0.05)
            for item in [r for r in running if r[1].poll() is not None]:
                kind, proc, log, t0 = item
                running.remove(item)
                if proc.returncode:
                    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                    raise RuntimeError(f"{sim} run of the {kind} unit failed (log {log}): {' | '.join(tail)}")
                if progress:
                    progress(kind, time.perf_counter() - t0)
    except BaseException:
        for _, proc, _, _ in running:   # Ctrl-C or a failure: no simulator outlives the command
            proc.kill()
        raise
    order = {op: i for i, op in enumerate(names)}
    results = []
    for kind in units:
        path = work / f"{kind}.json"
        if path.is_file():
            got = np.load(work / f"{kind}.npz") if outputs else {}
            results += [OpResult(order[r["op"]], r["op"], r["kind"], tuple(r["shape"]), r["cycles"], r["compared"],
                                 r["mismatches"], r["first"], got.get(f"{r['op']}/values"), got.get(f"{r['op']}/scale"))
                        for r in json.loads(path.read_text())]
    missing = sorted(set(order) - {r.op for r in results})
    if missing:
        raise RuntimeError(f"{ops}: no unit ran op(s) {', '.join(missing[:3])}")
    return sorted(results, key=lambda r: r.index)


def _main(job: dict) -> None:
    """One unit's replay (a subprocess of run_ops, so its simulator output goes to the unit's log)."""
    from itx.sim.runner import run_cocotb

    run_cocotb(job["module"], job["params"], job["tb"], sim=job["sim"], testcase="replay", top=job["top"])


if __name__ == "__main__":
    _main(json.loads(sys.argv[1]))
