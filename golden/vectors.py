"""Golden vectors: `$readmemh` hex files, an `.npz` per GEMM and one JSON manifest; the format is specified for
outsiders in golden/VECTORS.md.

A manifest lists many GEMMs (each with a `layer` name), so all matmuls of a model run fit in one directory.
Hex files hold one value per line, row-major, two's complement, fixed width ceil(bits / 4) digits:
A (M x K) and B (K x N) at in_bits, C = gemm(A, B) at acc_bits. A GEMM whose result the hardware re-scales (a
linear layer) also carries a `requant` entry: the itx_requant factors per element of C (golden/requant.py) and the
expected INT8 output Y. Reading validates everything (structure, range, sha256) and raises one-line ValueErrors
naming the file and field or line. A set is written into a staging directory and renamed into place whole
(golden/atomic.py); `source` records what the vectors are of (sentence, pair, model, knobs) so a reader can check it
asked for these.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from itx.golden.atomic import check_target, staged_dir
from itx.golden.config import OVERFLOW_MODES
from itx.golden.errors import Mismatch, UserError, compare
from itx.golden.gemm import gemm
from itx.golden.quant import DYADIC_BITS
from itx.golden.requant import SH_BITS, STAGE_MODES, Factors, requant_model
from itx.golden.rounding import ROUNDINGS

FORMAT = "itx-gemm-vectors"
VERSION = 3     # 2: per-GEMM `requant` entries (were sim/model_run.py's requant.json) and an .npz of every tensor;
                # 3: the second Eq. 8 step's factor files mul2, sh2
MANIFEST = "manifest.json"
# requant factor file -> (bits written, lowest legal value, highest legal value)
FACTOR_FILES = {"mul": (32, 0, (1 << DYADIC_BITS) - 1), "sh": (8, 0, (1 << SH_BITS) - 1),
                "mul2": (32, 0, (1 << DYADIC_BITS) - 1), "sh2": (8, 0, (1 << SH_BITS) - 1),
                "bias": (32, -(1 << 31), (1 << 31) - 1), "rmul": (32, 0, (1 << DYADIC_BITS) - 1),
                "rsh": (8, 0, (1 << SH_BITS) - 1), "div": (32, 1, (1 << 31) - 1)}
REQUANT_FILES = ("y", *FACTOR_FILES)
NPZ_TIME = (1980, 1, 1, 0, 0, 0)    # every .npz member's timestamp: the zip epoch, so the bytes are reproducible
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


class VectorGemm(NamedTuple):
    """What write_manifest writes for one GEMM: operands, optionally the accumulator the model computed (checked
    equal to itx.golden.gemm of the operands) and the re-scaling (factors, expected Y) of a linear layer."""
    layer: str
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray | None = None
    requant: tuple[Factors, np.ndarray] | None = None


@dataclass(frozen=True)
class RequantEntry:
    """A GEMM's re-scaling in itx_requant: the modes, and the factor and expected-Y file names and sha256."""
    divide: bool
    rounding: str
    match_mode: str
    rescale_mode: str
    files: dict[str, str]
    sha256: dict[str, str]


@dataclass(frozen=True)
class GemmEntry:
    """One GEMM of a manifest: shapes, file names (relative to the manifest) and their sha256."""
    layer: str
    m: int
    k: int
    n: int
    files: dict[str, str]
    sha256: dict[str, str]
    requant: RequantEntry | None = None


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
        """Path of 'a', 'b', 'c', 'npz' or, for a re-scaled GEMM, 'y' and the factor files."""
        return self.path.parent / (entry.requant.files if which in REQUANT_FILES else entry.files)[which]

    def shape(self, entry: GemmEntry, which: str) -> tuple[int, int]:
        return {"a": (entry.m, entry.k), "b": (entry.k, entry.n)}.get(which, (entry.m, entry.n))

    def bits(self, which: str) -> int:
        return self.acc_bits if which == "c" else FACTOR_FILES[which][0] if which in FACTOR_FILES else self.in_bits

    def _checked(self, entry: GemmEntry, which: str) -> Path:
        path = self.file(entry, which)
        sums = entry.requant.sha256 if which in REQUANT_FILES else entry.sha256
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except FileNotFoundError:
            raise ValueError(f"{path}: vector file not found") from None
        if digest != sums[which]:
            raise ValueError(f"{path}: sha256 mismatch with {self.path.name} (file corrupt or changed)")
        return path

    def load(self, entry: GemmEntry, which: str) -> np.ndarray:
        """Read and fully validate one matrix of a GEMM: 'a', 'b', 'c', or of its requant entry 'y' and the
        factors (their value ranges checked too)."""
        arr = read_hex(self.file(entry, which), self.shape(entry, which), self.bits(which))   # syntax first
        path = self._checked(entry, which)
        if which in FACTOR_FILES:
            _, lo, hi = FACTOR_FILES[which]
            if arr.size and (arr.min() < lo or arr.max() > hi):
                raise ValueError(f"{path}: field {which!r} values must be in [{lo}, {hi}], got "
                                 f"[{arr.min()}, {arr.max()}]")
        return arr

    def factors(self, entry: GemmEntry) -> Factors:
        """The itx_requant factors of a re-scaled GEMM, validated."""
        rq = entry.requant
        return Factors(**{k: self.load(entry, k) for k in FACTOR_FILES}, divide=rq.divide, rounding=rq.rounding,
                       match_mode=rq.match_mode, rescale_mode=rq.rescale_mode)

    def npz(self, entry: GemmEntry) -> dict[str, np.ndarray]:
        """The GEMM's .npz (every tensor of its hex files, same values), sha256-checked."""
        with np.load(self._checked(entry, "npz"), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

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
        """Recompute C = gemm(A, B) at the manifest's widths and, for a re-scaled GEMM, Y from C and its factors
        (what itx_requant computes); check the .npz holds the hex files' values. Mismatch at the first element a
        file gets wrong."""
        a, b, c = (self.load(entry, w) for w in "abc")
        want = gemm(a, b, self.acc_bits, self.overflow, self.in_bits)
        _raise(self.file(entry, "c"), compare(entry.layer, "C", want, c), "golden gemm of A, B")
        tensors = {"a": a, "b": b, "c": c}
        if entry.requant is not None:
            tensors["y"] = y = self.load(entry, "y")
            f = self.factors(entry)
            tensors.update((k, getattr(f, k)) for k in FACTOR_FILES)
            want, _ = requant_model(c, f, self.acc_bits, self.in_bits, overflow=self.overflow)
            _raise(self.file(entry, "y"), compare(entry.layer, "Y", want, y), "re-scaling of C by its factors")
        z = self.npz(entry)
        if sorted(z) != sorted(tensors):
            raise ValueError(f"{self.file(entry, 'npz')}: holds {sorted(z)}, expected {sorted(tensors)}")
        for key, want in tensors.items():
            _raise(self.file(entry, "npz"), compare(entry.layer, key, want, z[key]), f"its {key} hex file")


def _raise(path: Path, diff, why: str) -> None:
    if diff is not None:
        idx = ", ".join(map(str, diff.index))
        raise Mismatch(f"{path}: gemm {diff.layer!r} {diff.tensor}[{idx}]: expected {diff.expected} ({why}), file has "
                       f"{diff.got} [{diff.count} of {diff.size} differ]")


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


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed .npz (np.load reads it) whose bytes depend only on the arrays: members in sorted name order,
    each with the fixed timestamp NPZ_TIME and Unix attributes (np.savez stamps the current time)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name in sorted(arrays):
            data = io.BytesIO()
            np.lib.format.write_array(data, np.require(arrays[name], requirements="C"), allow_pickle=False)  # 0-d kept
            info = zipfile.ZipInfo(f"{name}.npy", date_time=NPZ_TIME)
            info.create_system, info.external_attr = 3, 0o644 << 16
            z.writestr(info, data.getvalue())
    return buf.getvalue()


def npz_dtype(bits: int) -> np.dtype:
    """The narrowest signed integer type of a `bits`-wide vector file's values."""
    return np.dtype(next(t for t in (np.int8, np.int16, np.int32, np.int64) if bits <= 8 * np.dtype(t).itemsize))


def _check_operand(name: str, x: np.ndarray, bits: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name}: expected a 2-D integer array, got {x.ndim}-D {x.dtype}")
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"{name}: values must be in [{lo}, {hi}] for in_bits={bits}")
    return x.astype(np.int64)


def _requant_files(stage: Path, stem: str, g: VectorGemm, c: np.ndarray, in_bits: int, acc_bits: int,
                   overflow: str, tensors: dict) -> dict:
    """Write a GEMM's factor and Y files (Y checked against what the factors compute from C); its manifest entry."""
    f, y = g.requant
    y = _check_operand(f"{g.layer}.y", y, in_bits)
    want, _ = requant_model(c, f, acc_bits, in_bits, overflow=overflow)
    diff = compare(g.layer, "Y", want, y)
    if diff is not None:
        raise Mismatch(f"{diff}: the model's re-scaled output is not what its factors compute from C")
    files, sums = {}, {}
    for key in REQUANT_FILES:
        vals, bits = (y, in_bits) if key == "y" else (np.asarray(getattr(f, key), np.int64), FACTOR_FILES[key][0])
        if key != "y" and vals.size and (vals.min() < FACTOR_FILES[key][1] or vals.max() > FACTOR_FILES[key][2]):
            raise ValueError(f"{g.layer}: factor {key!r} outside [{FACTOR_FILES[key][1]}, {FACTOR_FILES[key][2]}]")
        files[key] = f"{stem}.{key}.hex"
        sums[key] = write_hex(stage / files[key], vals.reshape(c.shape), bits)
        tensors[key] = vals.reshape(c.shape).astype(npz_dtype(bits))
    return {"divide": f.divide, "rounding": f.rounding, "match_mode": f.match_mode, "rescale_mode": f.rescale_mode,
            "files": files, "sha256": sums}


def write_manifest(directory: str | Path, gemms, *, in_bits: int, acc_bits: int, overflow: str,
                   seed: int | None = None, source: dict | None = None, extra=None) -> Path:
    """Write A, B and the golden C = gemm(A, B) of every GEMM (a VectorGemm or a (layer, A, B) tuple; with a
    requant: its factors and Y), an .npz of each GEMM's tensors, and manifest.json as one set: staged and renamed
    into place, replacing an earlier set whole. extra(staged manifest path) may add files to the set. Returns the
    manifest's final path."""
    if overflow not in OVERFLOW_MODES:
        raise UserError(f"overflow must be one of {OVERFLOW_MODES}, got {overflow!r}")
    if not gemms:
        raise UserError(f"{directory}: no GEMMs to write (an empty vector set verifies nothing)")
    checked = []
    for g in map(lambda item: VectorGemm(*item), gemms):     # operands validated before anything is written
        a = _check_operand(f"{g.layer}.a", g.a, in_bits)
        b = _check_operand(f"{g.layer}.b", g.b, in_bits)
        if a.shape[1] != b.shape[0] or 0 in a.shape + b.shape:
            raise UserError(f"{g.layer}: shapes {a.shape} @ {b.shape} do not form a non-empty GEMM")
        checked.append(g._replace(a=a, b=b))
    with staged_dir(directory, MANIFEST, "vector directory") as stage:
        entries = []
        for i, g in enumerate(checked):
            c = gemm(g.a, g.b, acc_bits=acc_bits, overflow=overflow, in_bits=in_bits)
            if g.c is not None and not np.array_equal(np.asarray(g.c).reshape(c.shape), c):
                raise Mismatch(f"{g.layer}: the model's accumulator differs from itx.golden.gemm of its own operands")
            stem = f"{i:04d}_{re.sub(r'[^A-Za-z0-9_.-]', '_', g.layer)}"
            files, sums, tensors = {}, {}, {}
            for which, mat, bits in (("a", g.a, in_bits), ("b", g.b, in_bits), ("c", c, acc_bits)):
                files[which] = f"{stem}.{which}.hex"
                sums[which] = write_hex(stage / files[which], mat, bits)
                tensors[which] = mat.astype(npz_dtype(bits))
            entry = {"layer": g.layer, "m": g.a.shape[0], "k": g.a.shape[1], "n": g.b.shape[1]}
            if g.requant is not None:
                entry["requant"] = _requant_files(stage, stem, g, c, in_bits, acc_bits, overflow, tensors)
            files["npz"] = f"{stem}.npz"
            data = npz_bytes(tensors)
            (stage / files["npz"]).write_bytes(data)
            sums["npz"] = hashlib.sha256(data).hexdigest()
            entries.append({**entry, "files": files, "sha256": sums})
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


def _files(obj: dict, names, where: str) -> tuple[dict[str, str], dict[str, str]]:
    """`files` and `sha256` of an entry: a plain file name and a sha256 hex digest for each of `names`."""
    files, sums = _field(obj, "files", dict, where), _field(obj, "sha256", dict, where)
    for which in names:
        name = _field(files, which, str, f"{where}.files")
        if Path(name).name != name:
            raise ValueError(f"{where}.files: {which!r} must be a plain file name, got {name!r}")
        if not re.fullmatch(r"[0-9a-f]{64}", _field(sums, which, str, f"{where}.sha256")):
            raise ValueError(f"{where}.sha256: {which!r} is not a sha256 hex digest")
    return {w: files[w] for w in names}, {w: sums[w] for w in names}


def _requant(obj, where: str) -> RequantEntry | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: field 'requant' must be an object or absent, got {obj!r}")
    divide = _field(obj, "divide", bool, where)
    for key, allowed in (("rounding", ROUNDINGS), ("match_mode", STAGE_MODES), ("rescale_mode", STAGE_MODES)):
        if _field(obj, key, str, where) not in allowed:
            raise ValueError(f"{where}: field {key!r} must be one of {allowed}, got {obj[key]!r}")
    return RequantEntry(divide, obj["rounding"], obj["match_mode"], obj["rescale_mode"],
                        *_files(obj, REQUANT_FILES, where))


def _entry(obj: dict, where: str) -> GemmEntry:
    dims = {d: _field(obj, d, int, where) for d in ("m", "k", "n")}
    for d, v in dims.items():
        if v < 1:
            raise ValueError(f"{where}: field {d!r} must be >= 1, got {v}")
    files, sums = _files(obj, ("a", "b", "c", "npz"), where)
    return GemmEntry(_field(obj, "layer", str, where), dims["m"], dims["k"], dims["n"], files, sums,
                     _requant(obj.get("requant"), f"{where}.requant"))


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
