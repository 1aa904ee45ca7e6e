"""The RTL's own interface, read from hw/*.v with pyverilog: testbenches build their parameters from it
(and from hw/config.toml) instead of repeating names, defaults or port widths."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from itx.golden.config import ROOT, HwConfig

HW_DIR = ROOT / "hw"
# every build and simulation output; ITX_SIM_BUILD moves it (conftest.py gives each pytest-xdist worker its own)
SIM_BUILD = Path(os.environ.get("ITX_SIM_BUILD") or ROOT / "sim_build")
RTL_SOURCES = tuple(sorted(HW_DIR.glob("*.v")))
TOP = "itx_gemm_ctrl"
# hw/config.toml field -> controller parameter (value mapping in rtl_parameters)
CONFIG_PARAMS = {"rows": "ROWS", "cols": "COLS", "in_bits": "IN_BITS", "acc_bits": "ACC_BITS", "overflow": "SATURATE"}


@dataclass(frozen=True)
class RtlModule:
    name: str
    params: dict[str, str]                        # name -> default value expression
    ports: dict[str, tuple[str, str | None]]      # name -> (direction, msb expression or None for 1 bit)

    def port_width(self, port: str, params: dict[str, int]) -> int:
        """Evaluate a port's width for concrete parameter values (defaults filled in from the RTL)."""
        direction, msb = self.ports[port]
        if msb is None:
            return 1
        env = {k: int(eval(v, {"__builtins__": {}}, {})) for k, v in self.params.items()}
        env.update(params)
        return int(eval(msb, {"__builtins__": {}}, env)) + 1


def _parse(path: Path) -> dict:
    from pyverilog.ast_code_generator.codegen import ASTCodeGenerator
    from pyverilog.vparser.parser import VerilogCodeParser

    gen = ASTCodeGenerator()
    with tempfile.TemporaryDirectory() as tmp:  # pyverilog writes parser tables into outputdir
        ast = VerilogCodeParser([str(path)], preprocess_output=f"{tmp}/pp.out", outputdir=tmp, debug=False).parse()
    mods = {}
    for mod in ast.description.definitions:
        params = {p.name: gen.visit(p.value.var) for decl in mod.paramlist.params for p in decl.list}
        ports = {}
        for port in mod.portlist.ports:
            decl = port.first
            ports[decl.name] = (type(decl).__name__.lower(), gen.visit(decl.width.msb) if decl.width else None)
        mods[mod.name] = {"params": params, "ports": ports}
    return mods


@functools.lru_cache(maxsize=None)
def rtl_module(name: str = TOP) -> RtlModule:
    """Ports and parameters of one hw/ module (parse cached in sim_build/ by file content hash)."""
    path = HW_DIR / f"{name}.v"
    if not path.is_file():
        raise ValueError(f"{path}: no such RTL module file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    cache = SIM_BUILD / "pyverilog" / f"{name}-{digest}.json"
    if cache.is_file():
        mods = json.loads(cache.read_text())
    else:
        mods = _parse(path)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(mods))
    if name not in mods:
        raise ValueError(f"{path}: does not define module {name}")
    m = mods[name]
    return RtlModule(name, m["params"], {k: tuple(v) for k, v in m["ports"].items()})


_INSTANCE = re.compile(r"^\s*(itx_\w+)\s*(?:#|\w+\s*\()", re.M)


def rtl_files(top: str) -> tuple[str, ...]:
    """The hw/ files of `top` and of every module instantiated under it (one module per file, instances found in
    the comment-stripped source), sorted: what a build of `top` reads."""
    seen, todo = set(), [top]
    while todo:
        name = todo.pop()
        path = HW_DIR / f"{name}.v"
        if name in seen:
            continue
        if not path.is_file():
            raise ValueError(f"{path}: no such RTL module file (instantiated under {top})")
        seen.add(name)
        text = re.sub(r"//[^\n]*|/\*.*?\*/", "", path.read_text(), flags=re.S)
        todo += [m for m in _INSTANCE.findall(text) if m != name]
    return tuple(sorted(f"{n}.v" for n in seen))


def rtl_parameters(cfg: HwConfig, rows: int | None = None, cols: int | None = None,
                   module: str = TOP) -> dict[str, int]:
    """Parameter overrides for `module` from the shared config (rows/cols may be overridden for sweeps);
    fails if the RTL lacks a parameter the config needs."""
    from dataclasses import replace

    mod = rtl_module(module)
    # None means "as configured"; 0 or a negative size is an error, never silently the config's size
    cfg = replace(cfg, rows=cfg.rows if rows is None else rows, cols=cfg.cols if cols is None else cols)
    values = {"rows": cfg.rows, "cols": cfg.cols, "in_bits": cfg.in_bits,
              "acc_bits": cfg.acc_bits, "overflow": int(cfg.overflow == "saturate")}
    missing = [p for p in CONFIG_PARAMS.values() if p not in mod.params]
    if missing:
        raise ValueError(f"{HW_DIR / module}.v: missing parameter(s) {missing} required by hw/config.toml")
    return {CONFIG_PARAMS[k]: v for k, v in values.items()}
