"""`itx synth`: Yosys synthesis of the RTL units to generic gates, cells per type and NAND2-eq area per configuration."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

from itx.golden.config import ROOT


def _run(args) -> int:
    from itx.sim.synth import DesignPoint, UNITS, distinct_points, synthesize
    from itx.options import array

    arrays = [array(a) for a in args.array]
    points = [DesignPoint(r, c, b, acc, args.overflow, mode, args.max_n) for (r, c), b, acc, mode in
              itertools.product(arrays, args.in_bits, args.acc_bits, args.rescale)]
    rows = []
    print(f"{'unit':<9} {'configuration':<52} {'cells':>8} {'NAND2-eq':>10} {'synth s':>8}  cells by type")
    for unit in args.unit or list(UNITS):
        for p in distinct_points(unit, points):
            r = synthesize(unit, p)
            rows.append(r)
            conf = " ".join(f"{k}={r['point'][k]}" for k in UNITS[unit].depends)
            kinds = " ".join(f"{t.strip('$_')} {n}" for t, n in r["cells"].items())
            when = "cached" if r["cached"] else f"{r['synth_s']:.1f}"
            print(f"{unit:<9} {conf:<52} {r['total_cells']:>8} {r['nand2_eq']:>10.0f} {when:>8}  {kinds}", flush=True)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"area_model": "yosys stat -tech cmos transistors / 4 (NAND2-eq)", "results": [
        {k: v for k, v in r.items() if k != "cached"} for r in rows]}, indent=1, sort_keys=True) + "\n")
    print(f"{len(rows)} syntheses -> {out}")
    return 0


def register(sub) -> None:
    from itx.errors import int_in
    from itx.sim.synth import RESCALE_CHOICES, UNITS, DesignPoint

    p = sub.add_parser("synth", help="synthesize RTL units with Yosys: cells by type and NAND2-eq area per "
                                     "configuration (cached)")
    p.add_argument("--unit", action="append", choices=list(UNITS), help="unit (repeatable; default all)")
    p.add_argument("--array", nargs="+", default=["8x8"], help="ROWSxCOLS sizes (default 8x8; requant lanes = cols)")
    p.add_argument("--in-bits", nargs="+", type=int, default=[8], help="operand widths (default 8)")
    p.add_argument("--acc-bits", nargs="+", type=int, default=[32], help="accumulator widths, 16..32 (default 32)")
    p.add_argument("--overflow", choices=("wrap", "saturate"), default="wrap")
    p.add_argument("--rescale", nargs="+", choices=RESCALE_CHOICES, default=["dyadic"],
                   help="Eq. 10 mode(s) of the re-scaling unit; all = every mode selectable per beat (default dyadic)")
    p.add_argument("--max-n", type=int_in(1, 4096), default=DesignPoint.max_n,
                   help=f"longest row the residual and LayerNorm units buffer (default {DesignPoint.max_n})")
    p.add_argument("--json", default=str(ROOT / "build" / "synth.json"), help="output JSON (default build/synth.json)")
    p.set_defaults(func=_run)
