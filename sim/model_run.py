"""Layer-by-layer RTL verification of a real sentence: every integer GEMM the golden Integer Transformer runs
(encoder and decoder, attention projections, per-head scores and context, FFN, output projection) goes through
itx_gemm_ctrl and, for linear layers, itx_requant (sim/hdl/itx_tb_layer.v, all operands $readmemh-preloaded).
Compared bit for bit: the INT32 accumulators of every GEMM and, after re-scaling, the INT8 tensor the next layer
consumes.

Vectors: itx.golden.vectors' manifest (A, B, C) plus `requant.json` naming, per re-scaled GEMM, hex files of the
per-element factors (itx.sim.requant.Factors) and of the expected INT8 output Y.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from itx.golden.attention import lift
from itx.golden.atomic import check_target, staged_files
from itx.golden.config import ROOT, HwConfig
from itx.golden.errors import Mismatch, UserError
from itx.golden.int_config import IntConfig
from itx.golden.int_model import IntTransformer
from itx.golden.model import model_dir
from itx.golden.quant import DYADIC_BITS
from itx.golden.rounding import ROUNDINGS
from itx.golden.tokenizer import BOS, Tokenizer
from itx.golden.vectors import Manifest, read_hex, read_manifest, write_hex, write_manifest
from itx.sim.requant import SH_BITS, STAGE_MODES, Factors, linear_factors, rounding_code, stage_code
from itx.sim.rtl import RTL_SOURCES, SIM_BUILD, rtl_parameters
from itx.sim.runner import SOURCE_TB, beat_counts, write_beats

LAYER_TB = Path(__file__).resolve().parent / "hdl" / "itx_tb_layer.v"
REQUANT = "requant.json"
REQUANT_FORMAT = "itx-requant-vectors"
# factor file -> (width written, lowest legal value, highest legal value)
FACTOR_FILES = {"mul": (32, 0, (1 << DYADIC_BITS) - 1), "sh": (8, 0, (1 << SH_BITS) - 1),
                "bias": (32, -(1 << 31), (1 << 31) - 1), "rmul": (32, 0, (1 << DYADIC_BITS) - 1),
                "rsh": (8, 0, (1 << SH_BITS) - 1), "div": (32, 1, (1 << 31) - 1)}
REQUANT_VERSION = 3   # 2: rmul (the Eq. 10 multiplier) added; 3: match_mode / rescale_mode (the TFLite modes)


# ---- capture: the golden model on one sentence -------------------------------------------------------------
class _Capture(IntTransformer):
    """IntTransformer that records every GEMM (matched operands, accumulator QTensor) and, for linear layers,
    the bias and the INT8 output act(add(acc, bias))."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records: list[dict] = []
        self.gemm_hook = lambda name, a, b, c: self.records.append({"name": name, "a": a, "b": b, "c": c})

    def matmul(self, name, a, b, b_f32=None):
        out = super().matmul(name, a, b, b_f32)
        self.records[-1]["acc"] = out
        return out

    def linear(self, name, x):
        y = super().linear(name, x)
        rec = self.records[-1]
        if rec["name"] != name:
            raise ValueError(f"{name}: linear layer ran no captured GEMM (is it an FP32 ablation?)")
        rec["bias"], rec["y"] = lift(self.q[f"{name}.b"], rec["acc"].values.ndim, f"{name}.b"), y
        return y


def rtl_config(cfg: HwConfig, icfg: IntConfig) -> HwConfig:
    """The RTL build for a golden configuration: hw/config.toml's array with the IntConfig's accumulator width and
    overflow mode (its ACC_BITS / SATURATE), so that RTL and golden model the same datapath."""
    return replace(cfg, acc_bits=icfg.acc_bits, overflow=icfg.overflow)


def sentence_ids(index: int, pair: str = "en-de", split: str = "test") -> tuple[list[int], list[int]]:
    """Source ids and teacher-forced decoder input ([BOS] + reference[:-1]) of corpus line `index`."""
    from itx.data import read_split

    rows = read_split(split, pair)
    if not 0 <= index < len(rows):
        raise ValueError(f"--sentence {index} out of range: {split}.{pair} has {len(rows)} sentences")
    tok = Tokenizer()
    _, _, en, tgt = rows[index]
    return tok.encode_source(en, pair.split("-")[1]), [BOS] + tok.encode_target(tgt)[:-1]


def capture(src: list[int], tgt_in: list[int], model: str = "integer", layers: tuple[str, ...] = (),
            icfg: IntConfig | None = None) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, tuple | None]]:
    """(name, A, B, C, requant) of every 2-D GEMM of the teacher-forced forward pass of the integer model with
    `icfg` (default IntConfig()), optionally only those whose layer name starts with one of `layers`; requant =
    (Factors, Y) for linear layers, else None."""
    m = _Capture.from_dir(model_dir(model), icfg)
    m.logits(np.array([src]), np.array([tgt_in]))
    c = m.icfg
    out = []
    for rec in m.records:
        if layers and not rec["name"].startswith(layers):
            continue
        a, b, cc = rec["a"], rec["b"], rec["c"]
        rq = None
        if "y" in rec:
            if c.match not in STAGE_MODES:
                raise ValueError(f"the RTL re-scaling unit matches scales by one of {STAGE_MODES}; "
                                 f"IntConfig.match={c.match!r}")
            f, _ = linear_factors(rec["acc"], rec["bias"], c.bits, c.granularity, c.rescale, c.block, c.rounding,
                                  c.match)
            n = cc.shape[-1]
            rq = (f.flat(n), rec["y"].values.reshape(-1, n))
        if b.ndim == 2:
            out.append((rec["name"], a.reshape(-1, a.shape[-1]), b, cc.reshape(-1, cc.shape[-1]), rq))
            continue
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a, b = np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(b, batch + b.shape[-2:])
        for idx in np.ndindex(*batch):
            out.append((f"{rec['name']}[{','.join(map(str, idx))}]", a[idx], b[idx], cc[idx], None))
    if not out:
        names = sorted({r["name"] for r in m.records})
        raise UserError(f"--layer {' '.join(layers)}: selects none of the {len(m.records)} GEMMs of the sentence "
                        f"(names look like {', '.join(names[:3])}, ...); a run that compares nothing has not passed")
    return out


def write_vectors(directory: Path, gemms, cfg: HwConfig, source: dict | None = None) -> Path:
    """itx.golden.vectors manifest of the GEMMs plus requant.json with factor and expected-Y hex files, one staged set."""
    def requant(path: Path) -> None:
        man, entries = read_manifest(path), {}
        for i, ((name, _, _, c, rq), e) in enumerate(zip(gemms, man.gemms)):
            if not np.array_equal(man.load(e, "c"), c):
                raise ValueError(f"{name}: the model's accumulator differs from itx.golden.gemm of its own operands")
            if rq is None:
                continue
            f, y = rq
            stem = Path(e.files["c"]).name.removesuffix(".c.hex")
            files, sums = {}, {}
            for key, (bits, _, _) in FACTOR_FILES.items():
                files[key] = f"{stem}.{key}.hex"
                sums[key] = write_hex(path.parent / files[key], getattr(f, key), bits)
            files["y"] = f"{stem}.y.hex"
            sums["y"] = write_hex(path.parent / files["y"], y, cfg.in_bits)
            entries[str(i)] = {"divide": f.divide, "rounding": f.rounding, "match_mode": f.match_mode,
                                "rescale_mode": f.rescale_mode, "files": files, "sha256": sums}
        (path.parent / REQUANT).write_text(json.dumps({"format": REQUANT_FORMAT, "version": REQUANT_VERSION,
                                                       "gemms": entries}, indent=1) + "\n")
    return write_manifest(directory, [(n, a, b) for n, a, b, _, _ in gemms], in_bits=cfg.in_bits,
                          acc_bits=cfg.acc_bits, overflow=cfg.overflow, source=source, extra=requant)


@dataclass(frozen=True)
class RequantEntry:
    divide: bool
    rounding: str
    match_mode: str
    rescale_mode: str
    files: dict[str, Path]
    sha256: dict[str, str]

    def load(self, key: str, shape: tuple[int, int], bits: int, lo: int | None = None,
             hi: int | None = None) -> np.ndarray:
        """Read one factor/Y file: shape, hex syntax, sha256 and value range all checked (one-line errors)."""
        path = self.files[key]
        arr = read_hex(path, shape, bits)
        if hashlib.sha256(path.read_bytes()).hexdigest() != self.sha256[key]:
            raise ValueError(f"{path}: sha256 mismatch with {REQUANT} field 'sha256.{key}' (file corrupt or changed)")
        if lo is not None and arr.size and (arr.min() < lo or arr.max() > hi):
            raise ValueError(f"{path}: field {key!r} values must be in [{lo}, {hi}], got [{arr.min()}, {arr.max()}]")
        return arr

    def factors(self, shape: tuple[int, int]) -> Factors:
        f = {k: self.load(k, shape, *FACTOR_FILES[k]) for k in FACTOR_FILES}
        return Factors(**f, divide=self.divide, rounding=self.rounding, match_mode=self.match_mode,
                       rescale_mode=self.rescale_mode)


def read_requant(man: Manifest) -> dict[int, RequantEntry]:
    """requant.json next to the manifest (absent: no re-scaled outputs); one-line errors naming file and field."""
    path = man.path.parent / REQUANT
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != REQUANT_FORMAT or doc.get("version") != REQUANT_VERSION:
        raise ValueError(f"{path}: not an {REQUANT_FORMAT} v{REQUANT_VERSION} file (fields 'format'/'version')")
    gemms = doc.get("gemms")
    if not isinstance(gemms, dict):
        raise ValueError(f"{path}: field 'gemms' must be an object")
    out = {}
    for key, g in gemms.items():
        where = f"{path}: gemms[{key}]"
        if not key.isdigit() or int(key) >= len(man.gemms):
            raise ValueError(f"{where}: not the index of a GEMM of {man.path.name} ({len(man.gemms)} GEMMs)")
        try:
            files, sums = g["files"], g["sha256"]
            names = {k: files[k] for k in [*FACTOR_FILES, "y"]}
            digests = {k: sums[k] for k in names}
            divide, rounding, modes = g["divide"], g["rounding"], (g["match_mode"], g["rescale_mode"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{where}: missing field {exc}") from None
        if not isinstance(divide, bool):
            raise ValueError(f"{where}: field 'divide' must be true or false, got {divide!r}")
        if rounding not in ROUNDINGS:
            raise ValueError(f"{where}: field 'rounding' must be one of {ROUNDINGS}, got {rounding!r}")
        for fld, mode in zip(("match_mode", "rescale_mode"), modes):
            if mode not in STAGE_MODES:
                raise ValueError(f"{where}: field {fld!r} must be one of {STAGE_MODES}, got {mode!r}")
        for k, name in names.items():
            if not isinstance(name, str) or Path(name).name != name:
                raise ValueError(f"{where}: field 'files.{k}' must be a plain file name, got {name!r}")
        out[int(key)] = RequantEntry(divide, rounding, *modes, {k: path.parent / v for k, v in names.items()},
                                     digests)
    return out


# ---- the RTL run ---------------------------------------------------------------------------------------------
SIMULATORS = ("icarus", "verilator")


class LayerBench:
    """itx_tb_layer compiled once per simulator, config and memory sizes; run once per GEMM. `caps`: the most
    beat words of A and B and elements of C of any GEMM to run."""

    def __init__(self, cfg: HwConfig, caps: tuple[int, int, int], sim: str = "icarus",
                 rows: int | None = None, cols: int | None = None):
        if sim not in SIMULATORS:
            raise ValueError(f"--sim must be one of {SIMULATORS}, got {sim!r}")
        exe = "iverilog" if sim == "icarus" else "verilator"
        if not shutil.which(exe):
            raise ValueError(f"--sim {sim}: {exe} not on PATH")
        self.sim, self.params = sim, rtl_parameters(cfg, rows, cols)
        self._procs: set[subprocess.Popen] = set()   # running simulations, killed by stop()
        self.stopped = False
        self.rows, self.cols, self.cfg = self.params["ROWS"], self.params["COLS"], cfg
        pow2 = [1 << max(10, (c - 1).bit_length()) for c in caps]
        params = {**self.params, "MUL_BITS": DYADIC_BITS, "SH_BITS": SH_BITS, "AMAX": pow2[0], "BMAX": pow2[1],
                  "CMAX": pow2[2]}
        self.dir = SIM_BUILD / "layer" / sim / "-".join(f"{k.lower()}{v}" for k, v in sorted(params.items()))
        self.exe = self.dir / ("tb.vvp" if sim == "icarus" else "Vitx_tb_layer")
        sources = [*RTL_SOURCES, SOURCE_TB, LAYER_TB]
        if self.exe.is_file() and all(s.stat().st_mtime <= self.exe.stat().st_mtime for s in sources):
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        if sim == "icarus":
            cmd = ["iverilog", "-g2005", "-o", str(self.exe), "-s", "itx_tb_layer",
                   *(f"-Pitx_tb_layer.{k}={v}" for k, v in params.items()), *map(str, sources)]
        else:
            cmd = ["verilator", "--binary", "--timing", "-O3", "-j", "2", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                   "--top-module", "itx_tb_layer", "--Mdir", str(self.dir),
                   *(f"-G{k}={v}" for k, v in params.items()), *map(str, sources)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise ValueError(f"{sim} build of {LAYER_TB.name} failed: {(proc.stderr or proc.stdout)[-400:]}")

    def run(self, man: Manifest, i: int, rq: RequantEntry | None, work: Path) -> tuple[int, int, int]:
        """One GEMM (operands validated by the caller); returns (cycles, overflow-flag count, first flagged
        index); outputs land in `work`."""
        e = man.gemms[i]
        a_beats, b_beats = write_beats(work / str(i), read_hex(man.file(e, "a"), (e.m, e.k), self.cfg.in_bits),
                                       read_hex(man.file(e, "b"), (e.k, e.n), self.cfg.in_bits), self.rows,
                                       self.cols, self.cfg.in_bits)
        args = [f"+a={a_beats}", f"+b={b_beats}", f"+c={work / f'{i}.c.hex'}", f"+m={e.m}", f"+k={e.k}",
                f"+n={e.n}"]
        if rq is not None:
            args += [f"+rq=1", f"+y={work / f'{i}.y.hex'}", f"+divide={int(rq.divide)}",
                     f"+rnd={rounding_code(rq.rounding)}", f"+mmode={stage_code(rq.match_mode)}",
                     f"+rmode={stage_code(rq.rescale_mode)}", *(f"+{k}={rq.files[k]}" for k in FACTOR_FILES)]
        cmd = ["vvp", "-n", str(self.exe), *args, "-none"] if self.sim == "icarus" else [str(self.exe), *args]
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
        stats = re.search(r"ITX_STATS cycles=(\d+) ovf=(\d+) first_ovf=(-?\d+)", stdout)
        if proc.returncode or not stats:
            err = re.search(r"ITX_ERROR .*", stdout)
            raise Mismatch(f"gemm {i} ({e.layer}): {self.sim} run failed: "
                           f"{err[0] if err else (stdout + stderr)[-300:]}")
        return int(stats[1]), int(stats[2]), int(stats[3])

    def stop(self) -> None:
        """Kill every running simulation (Ctrl-C: the pool must not wait for them)."""
        self.stopped = True
        for proc in list(self._procs):
            proc.kill()


@dataclass
class LayerResult:
    index: int
    layer: str
    shape: tuple[int, int, int]
    cycles: int
    utilisation: float
    tensor: str                       # what was compared last: "C" (INT32) or "Y" (INT8 after requant)
    mismatches: int = 0
    first: dict | None = None         # {"tensor", "index", "expected", "got"}


def _diff(tensor: str, expected: np.ndarray, got: np.ndarray) -> tuple[int, dict | None]:
    bad = np.argwhere(got != expected)
    if not bad.size:
        return 0, None
    i, j = (int(v) for v in bad[0])
    return len(bad), {"tensor": tensor, "index": [i, j], "expected": int(expected[i, j]), "got": int(got[i, j])}


def run_layers(man: Manifest, cfg: HwConfig, sim: str = "icarus", rows: int | None = None,
               cols: int | None = None, jobs: int = 1, progress=None) -> list[LayerResult]:
    """Run every GEMM of the manifest (with its requant stage where requant.json has one) and compare; stops at
    the first GEMM with a mismatch (its result is the last in the list)."""
    for fld, want in (("in_bits", cfg.in_bits), ("acc_bits", cfg.acc_bits), ("overflow", cfg.overflow)):
        if getattr(man, fld) != want:
            raise ValueError(f"{man.path}: field {fld!r} = {getattr(man, fld)!r} does not match the RTL's "
                             f"{want!r} (hw/config.toml)")
    rqs = read_requant(man.nonempty())
    r, c = rows or cfg.rows, cols or cfg.cols
    sizes = [(*beat_counts(e.m, e.k, e.n, r, c), e.m * e.n) for e in man.gemms] or [(1, 1, 1)]
    caps = tuple(max(col) for col in zip(*sizes))
    bench = LayerBench(cfg, caps, sim, rows, cols)
    work = bench.dir / "out"
    work.mkdir(exist_ok=True)
    loaded = []
    for i, e in enumerate(man.gemms):   # validate everything before the simulator reads any of it
        man.load(e, "a"), man.load(e, "b")
        rq = rqs.get(i)
        loaded.append((man.load(e, "c"), rq and (rq.factors((e.m, e.n)), rq.load("y", (e.m, e.n), cfg.in_bits))))
    results = []
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        runs = [pool.submit(bench.run, man, i, rqs.get(i), work) for i in range(len(man.gemms))]
        for i, (e, fut, (c_exp, rq)) in enumerate(zip(man.gemms, runs, loaded)):
            cycles, ovf, first_ovf = fut.result()
            util = e.m * e.k * e.n / (cycles * bench.rows * bench.cols)
            res = LayerResult(i, e.layer, (e.m, e.k, e.n), cycles, util, "C")
            res.mismatches, res.first = _diff("C", c_exp, read_hex(work / f"{i}.c.hex", (e.m, e.n), cfg.acc_bits))
            if rq is not None and not res.mismatches:
                res.tensor = "Y"
                res.mismatches, res.first = _diff("Y", rq[1], read_hex(work / f"{i}.y.hex", (e.m, e.n),
                                                                        cfg.in_bits))
                if ovf and not res.mismatches:
                    res.mismatches = ovf
                    res.first = {"tensor": "Y overflow flag", "index": list(divmod(first_ovf, e.n)),
                                 "expected": 0, "got": 1}
            results.append(res)
            if progress:
                progress(res)
            if res.mismatches:
                break
    except BaseException:
        bench.stop()            # Ctrl-C or a failure: kill running simulations, drop queued ones
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


# ---- reports -------------------------------------------------------------------------------------------------
def _first_text(r: LayerResult) -> str:
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
              f"{'INT32 C' if r.tensor == 'C' else 'INT32 C + INT8 Y'} | {r.mismatches} | {_first_text(r)} |"
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


def default_vectors_dir(sentence: int, rescale: str) -> Path:
    return SIM_BUILD / "vectors" / f"sentence{sentence}-{rescale}"


def report_path(sentence: int) -> Path:
    return ROOT / "reports" / "sim" / f"sentence{sentence}"


def sentence_vectors(sentence: int, cfg: HwConfig, out: Path, model: str = "integer", pair: str = "en-de",
                     layers: tuple[str, ...] = (), icfg: IntConfig | None = None) -> tuple[Manifest, float]:
    """Capture the sentence in the golden model (IntConfig `icfg`) and write its vectors; returns the manifest and
    seconds taken."""
    t0 = time.perf_counter()
    src, tgt_in = sentence_ids(sentence, pair)
    icfg = icfg or IntConfig()
    source = {"sentence": sentence, "pair": pair, "split": "test", "model": str(model), "layers": list(layers),
              "int_config": icfg.describe(), "rescale": icfg.rescale}
    path = write_vectors(out, capture(src, tgt_in, model, layers, icfg), cfg, source)
    return read_manifest(path), time.perf_counter() - t0
