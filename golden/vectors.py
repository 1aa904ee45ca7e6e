"""Golden GEMM vectors: `$readmemh` hex files plus a JSON manifest.

A manifest lists many GEMMs (each with a `layer` name), so all matmuls of a model run fit in one directory.
Hex files hold one value per line, row-major, two's complement, fixed width ceil(bits / 4) digits:
A (M x K) and B (K x N) at in_bits, C = gemm(A, B) at acc_bits. Reading validates everything (structure,
range, sha256) and raises one-line ValueErrors naming the file and field or line. A set is written into a
staging directory and renamed into place whole (golden/atomic.py); `source` records what the vectors are of
(sentence, pair, model, knobs) so a reader can check it asked for these.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from itx.golden.atomic import check_target, staged_dir
from itx.golden.config import OVERFLOW_MODES
from itx.golden.errors import Mismatch, UserError
from itx.golden.gemm import gemm

FORMAT = "itx-gemm-vectors"
VERSION = 1
MANIFEST = "manifest.json"
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass(frozen=True)
class GemmEntry:
    """One GEMM of a manifest: shapes, file names (relative to the manifest) and their sha256."""
    layer: str
    m: int
    k: int
    n: int
    files: dict[str, str]
    sha256: dict[str, str]


@dataclass(frozen=True)
class Manifest:
    path: Path
    in_bits: int
    acc_bits: int
    overflow: str
    seed: int | None
    gemms: tuple[GemmEntry, ...]
    source: dict | None = None

    def file(self, entry: GemmEntry, which: str) -> Path:
        return self.path.parent / entry.files[which]

    def shape(self, entry: GemmEntry, which: str) -> tuple[int, int]:
        return {"a": (entry.m, entry.k), "b": (entry.k, entry.n), "c": (entry.m, entry.n)}[which]

    def bits(self, which: str) -> int:
        return self.acc_bits if which == "c" else self.in_bits

    def load(self, entry: GemmEntry, which: str) -> np.ndarray:
        """Read and fully validate one matrix ('a', 'b' or 'c') of a GEMM."""
        path = self.file(entry, which)
        arr = read_hex(path, self.shape(entry, which), self.bits(which))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != entry.sha256[which]:
            raise ValueError(f"{path}: sha256 mismatch with {self.path.name} (file corrupt or changed)")
        return arr

    def nonempty(self) -> "Manifest":
        """self, or UserError for a manifest without GEMMs: verification that compares nothing has not passed."""
        if not self.gemms:
            raise UserError(f"{self.path}: field 'gemms' is empty; verification that compares nothing has not passed")
        return self

    def check_source(self, option: str, **asked) -> None:
        """UserError unless the recorded `source` says these vectors are of what the caller asks (sentence, pair,
        model, ...): vectors of another sentence must not be reported under this one's title."""
        if self.source is None:
            raise UserError(f"{option} {self.path.parent}: the manifest records no source (field 'source'), so "
                            f"it cannot be checked to be {asked}; capture it again")
        for key, want in asked.items():
            if self.source.get(key) != want:
                raise UserError(f"{option} {self.path.parent}: holds vectors of {key} {self.source.get(key)!r}, "
                                f"asked for {want!r} (field 'source.{key}' of {self.path.name})")

    def verify(self, entry: GemmEntry) -> None:
        """Recompute C = gemm(A, B) at the manifest's widths; Mismatch at the first element the file gets wrong."""
        a, b, c = (self.load(entry, w) for w in "abc")
        want = gemm(a, b, acc_bits=self.acc_bits, overflow=self.overflow, in_bits=self.in_bits)
        bad = np.argwhere(want != c)
        if bad.size:
            i, j = (int(v) for v in bad[0])
            raise Mismatch(f"{self.file(entry, 'c')}: gemm {entry.layer!r} C[{i}, {j}]: expected {int(want[i, j])} "
                           f"(golden gemm of A, B), file has {int(c[i, j])} [{len(bad)} of {c.size} differ]")


def _digits(bits: int) -> int:
    return (bits + 3) // 4


def hex_bytes(values: np.ndarray, bits: int) -> bytes:
    """Fixed-width two's complement hex, one value per line (vectorised: millions of values per second)."""
    nd = _digits(bits)
    u = np.asarray(values, dtype=np.int64).ravel().astype(np.uint64) & np.uint64((1 << bits) - 1)
    out = np.empty((u.size, nd + 1), dtype=np.uint8)
    for d in range(nd):
        out[:, d] = _HEX[((u >> np.uint64(4 * (nd - 1 - d))) & np.uint64(15)).astype(np.intp)]
    out[:, nd] = ord("\n")
    return out.tobytes()


def write_hex(path: str | Path, values: np.ndarray, bits: int) -> str:
    """Write values as hex lines; returns the file's sha256."""
    data = hex_bytes(values, bits)
    Path(path).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def read_hex(path: str | Path, shape: tuple[int, ...], bits: int) -> np.ndarray:
    """Parse a fixed-width hex file of prod(shape) signed values; one-line ValueError on any defect."""
    path = Path(path)
    count, nd = int(np.prod(shape)), _digits(bits)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{path}: vector file not found") from None
    lines = raw.count(b"\n")
    if len(raw) != count * (nd + 1) or lines != count:
        raise ValueError(f"{path}: expected {count} lines of {nd} hex digits, got {lines} lines / {len(raw)} bytes "
                         "(truncated or malformed)")
    grid = np.frombuffer(raw, dtype=np.uint8).reshape(count, nd + 1)
    nib = np.full(256, 255, dtype=np.uint8)
    nib[np.frombuffer(b"0123456789", dtype=np.uint8)] = np.arange(10)
    nib[np.frombuffer(b"abcdef", dtype=np.uint8)] = np.arange(10, 16)
    nib[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16)
    vals = nib[grid[:, :nd]]
    bad = (vals == 255).any(axis=1) | (grid[:, nd] != ord("\n"))
    if bad.any():
        i = int(np.argmax(bad))
        text = grid[i].tobytes().decode("ascii", "replace").rstrip("\n")
        raise ValueError(f"{path}: line {i + 1}: not a {nd}-digit hex value: {text!r}")
    u = np.zeros(count, dtype=np.int64)
    for d in range(nd):
        u = (u << 4) | vals[:, d]
    if (u >> bits).any():
        i = int(np.argmax((u >> bits) != 0))
        raise ValueError(f"{path}: line {i + 1}: value 0x{int(u[i]):x} exceeds {bits} bits")
    signed = np.where(u >= 1 << (bits - 1), u - (1 << bits), u)
    return signed.reshape(shape)


def _check_operand(name: str, x: np.ndarray, bits: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name}: expected a 2-D integer array, got {x.ndim}-D {x.dtype}")
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"{name}: values must be in [{lo}, {hi}] for in_bits={bits}")
    return x.astype(np.int64)


def write_manifest(directory: str | Path, gemms: list[tuple[str, np.ndarray, np.ndarray]], *, in_bits: int,
                   acc_bits: int, overflow: str, seed: int | None = None, source: dict | None = None,
                   extra=None) -> Path:
    """Write A, B and the golden C = gemm(A, B) of every (layer, A, B) plus manifest.json as one set: staged and
    renamed into place, replacing an earlier set whole. extra(staged manifest path) may add files to the set.
    Returns the manifest's final path."""
    if overflow not in OVERFLOW_MODES:
        raise UserError(f"overflow must be one of {OVERFLOW_MODES}, got {overflow!r}")
    if not gemms:
        raise UserError(f"{directory}: no GEMMs to write (an empty vector set verifies nothing)")
    checked = []
    for layer, a, b in gemms:     # everything validated before anything is written
        a = _check_operand(f"{layer}.a", a, in_bits)
        b = _check_operand(f"{layer}.b", b, in_bits)
        if a.shape[1] != b.shape[0] or 0 in a.shape + b.shape:
            raise UserError(f"{layer}: shapes {a.shape} @ {b.shape} do not form a non-empty GEMM")
        checked.append((layer, a, b))
    with staged_dir(directory, MANIFEST, "vector directory") as stage:
        entries = []
        for i, (layer, a, b) in enumerate(checked):
            c = gemm(a, b, acc_bits=acc_bits, overflow=overflow, in_bits=in_bits)
            stem = f"{i:04d}_{re.sub(r'[^A-Za-z0-9_.-]', '_', layer)}"
            files, sums = {}, {}
            for which, mat, bits in (("a", a, in_bits), ("b", b, in_bits), ("c", c, acc_bits)):
                files[which] = f"{stem}.{which}.hex"
                sums[which] = write_hex(stage / files[which], mat, bits)
            entries.append({"layer": layer, "m": a.shape[0], "k": a.shape[1], "n": b.shape[1],
                            "files": files, "sha256": sums})
        doc = {"format": FORMAT, "version": VERSION, "in_bits": in_bits, "acc_bits": acc_bits,
               "overflow": overflow, "seed": seed, **({"source": source} if source is not None else {}),
               "gemms": entries}
        (stage / MANIFEST).write_text(json.dumps(doc, indent=1) + "\n")
        if extra is not None:
            extra(stage / MANIFEST)
    return Path(directory) / MANIFEST


def check_vector_dir(directory: str | Path) -> Path:
    """Refuse an output directory before long work (see itx.golden.atomic.check_target)."""
    return check_target(directory, MANIFEST, "vector directory")


def _field(obj: dict, key: str, kind: type, where: str):
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"{where}: missing field {key!r}")
    val = obj[key]
    if not isinstance(val, kind) or (kind is int and isinstance(val, bool)):
        raise ValueError(f"{where}: field {key!r} must be {kind.__name__}, got {val!r}")
    return val


def _entry(obj: dict, where: str) -> GemmEntry:
    dims = {d: _field(obj, d, int, where) for d in ("m", "k", "n")}
    for d, v in dims.items():
        if v < 1:
            raise ValueError(f"{where}: field {d!r} must be >= 1, got {v}")
    files, sums = _field(obj, "files", dict, where), _field(obj, "sha256", dict, where)
    for which in "abc":
        name = _field(files, which, str, f"{where}.files")
        if Path(name).name != name:
            raise ValueError(f"{where}.files: {which!r} must be a plain file name, got {name!r}")
        if not re.fullmatch(r"[0-9a-f]{64}", _field(sums, which, str, f"{where}.sha256")):
            raise ValueError(f"{where}.sha256: {which!r} is not a sha256 hex digest")
    return GemmEntry(_field(obj, "layer", str, where), dims["m"], dims["k"], dims["n"],
                     {w: files[w] for w in "abc"}, {w: sums[w] for w in "abc"})


def read_manifest(path: str | Path) -> Manifest:
    """Parse and validate a manifest (a directory means its manifest.json); file contents are read lazily."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: manifest not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    where = str(path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ValueError(f"{path}: not an {FORMAT} v{VERSION} manifest (fields 'format'/'version')")
    in_bits, acc_bits = _field(doc, "in_bits", int, where), _field(doc, "acc_bits", int, where)
    overflow = _field(doc, "overflow", str, where)
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"{path}: field 'overflow' must be one of {OVERFLOW_MODES}, got {overflow!r}")
    if not (2 <= in_bits <= 16 and 2 <= acc_bits <= 63):
        raise ValueError(f"{path}: unsupported widths in_bits={in_bits} acc_bits={acc_bits}")
    seed = doc.get("seed")
    if seed is not None and not isinstance(seed, int):
        raise ValueError(f"{path}: field 'seed' must be an int or null, got {seed!r}")
    source = doc.get("source")
    if source is not None and not isinstance(source, dict):
        raise ValueError(f"{path}: field 'source' must be an object or absent, got {source!r}")
    gemms = _field(doc, "gemms", list, where)
    entries = tuple(_entry(g, f"{path}: gemms[{i}]") for i, g in enumerate(gemms))
    return Manifest(path, in_bits, acc_bits, overflow, seed, entries, source)
