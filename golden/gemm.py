"""Exact integer GEMM with a configurable accumulator (SPEC.md, "GEMM").

Semantics (what one PE of the systolic array computes, Lin et al. 2020 Sec. 3: INT8 x INT8 products summed in an
INT32 accumulator): C[..., i, j] = acc_{K-1}, where acc_{-1} = 0 and, for k = 0..K-1 in that order,
acc_k = ovf(acc_{k-1} + A[..., i, k] * B[..., k, j]) with the product exact and
  "wrap":     ovf(x) = x reduced mod 2^acc_bits into [-2^(acc_bits-1), 2^(acc_bits-1));
  "saturate": ovf(x) = clip(x, -2^(acc_bits-1), 2^(acc_bits-1) - 1), applied after every MAC (order-dependent).
Since wrapping is modular, "wrap" equals wrapping the exact sum once.

Speed: sums are computed by float BLAS only where that is provably exact: every partial sum of a K-chunk is an
integer of magnitude <= chunk * max|a| * max|b| <= 2^24 (float32) or 2^53 (float64), so any summation order the BLAS
picks is exact; chunk sums are added in int64. Saturation is simulated in k order only for the outputs whose bound
sum_k |a_ik| |b_kj| can leave the accumulator range. A right operand reused by many calls (weights) can be
prepare()d: its range check and float copy are then done once.

Backends (ITX_GEMM, BACKENDS): "onnxruntime" computes the exact sums of 8-bit operands with onnxruntime's
MatMulInteger (MLAS int8 kernels, int32 results; operands shifted by 128 to uint8 with zero point 128), "blas" by the
exact float chunks above. The library is trusted only after a first-use self-check against int64 on edge operands;
GEMMs it does not suit (wider operands, batched B, tiny work) take the float path. The accumulator reduction after
the exact sums is the same for both, so the results are bit-identical (SPEC.md, "GEMM").
"""
from __future__ import annotations

import math
import os
import sys
import threading
import weakref
from functools import lru_cache

import numpy as np

from itx.golden.config import OVERFLOW_MODES, load_hw_config

_F32_EXACT = 1 << 24  # every integer of magnitude <= 2^24 is a float32 (24-bit significand)
_F64_EXACT = 1 << 53
# Below this many K per float32 chunk the per-chunk overhead outweighs float32's 2x speed over float64.
_MIN_F32_CHUNK = 256
_F32_IN_BITS = 9      # |a|, |b| <= 2^8: chunks of _MIN_F32_CHUNK stay below 2^24, so exact_matmul always takes float32
_SCRATCH = threading.local()
_PREPARED: dict = {}  # id(array) -> _Prepared, see prepare()


def _wrap(x: int, bits: int) -> int:
    m = 1 << bits
    x &= m - 1
    return x - m if x >= m >> 1 else x


def gemm_reference(a, b, acc_bits: int = 32, overflow: str = "wrap") -> list[list[int]]:
    """Pure-Python-int reference: the ordered accumulation (k = 0..K-1) a PE performs."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    a = [[int(v) for v in row] for row in np.asarray(a).tolist()]
    b = [[int(v) for v in row] for row in np.asarray(b).tolist()]
    out = []
    for row in a:
        orow = []
        for j in range(len(b[0]) if b else 0):
            acc = 0
            for k, av in enumerate(row):
                acc += av * b[k][j]
                acc = _wrap(acc, acc_bits) if overflow == "wrap" else min(hi, max(lo, acc))
            orow.append(acc)
        out.append(orow)
    return out


@lru_cache(maxsize=1)
def _default_in_bits() -> int:
    return load_hw_config().in_bits


def _check_width(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"gemm: {name} must be an integer in {lo}..{hi}, got {value!r}")


def _check_shapes(a: np.ndarray, b: np.ndarray) -> None:
    for name, x in (("a", a), ("b", b)):
        if x.ndim < 2:
            raise ValueError(f"gemm: {name} must be at least 2-D ([batch...,] rows, cols), got shape {x.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"gemm: inner dimensions differ: a has shape {a.shape}, b has shape {b.shape}")
    try:
        if a.ndim > 2 or b.ndim > 2:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"gemm: batch dimensions do not broadcast: a has shape {a.shape}, "
                         f"b has shape {b.shape}") from None


def _check_operand(name: str, x: np.ndarray, in_bits: int, scratch: str | None = None) -> tuple[int, np.ndarray | None]:
    """Reject non-integer or out-of-range operands; return a bound on max|x| (sizes the exact chunks) and, when
    `scratch` names a buffer and in_bits <= _F32_IN_BITS, x's float32 copy there for exact_matmul, range-checked on
    that copy (half the bytes of int64, contiguous; rounding to float32 is monotonic and the range ends are exact
    float32 integers, so the copy is in range exactly when x is)."""
    def at(mask: np.ndarray) -> str:  # "name[i, j] = v" for the first flagged element
        idx = np.unravel_index(np.argmax(mask), x.shape)
        return f"{name}[{', '.join(map(str, idx))}] = {x[idx]}"

    if x.dtype.kind not in "iu":
        if x.dtype.kind in "fc" and not np.isfinite(x).all():
            raise ValueError(f"gemm: {at(~np.isfinite(x))}: operands must be finite integers")
        raise ValueError(f"gemm: {name} must have an integer dtype, got {x.dtype}")
    lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
    info = np.iinfo(x.dtype)
    if lo <= info.min and info.max <= hi:  # the dtype alone guarantees the range: skip the scan
        return max(-int(info.min), int(info.max)), None
    if x.size == 0:
        return 0, None
    xf = None
    if scratch is not None and in_bits <= _F32_IN_BITS:
        xf = _scratch(scratch, x.shape, np.float32)
        np.copyto(xf, x, casting="unsafe")
    xmin, xmax = (int(r(x if xf is None else xf, axis=None)) for r in (np.minimum.reduce, np.maximum.reduce))
    if xmin < lo or xmax > hi:
        raise ValueError(f"gemm: {at((x < lo) | (x > hi))} is outside the signed {in_bits}-bit range [{lo}, {hi}]")
    return max(-xmin, xmax), xf


class _Prepared:
    """What prepare() keeps for one array: a weak reference to it, its range bound, its float copies."""

    def __init__(self, b: np.ndarray, in_bits: int, bound: int) -> None:
        self.ref, self.in_bits, self.bound = weakref.ref(b), in_bits, bound
        self.floats: dict = {}     # float type -> b's float copy (exact_matmul)
        self.sessions: dict = {}   # (library operand form, threads) -> a library session holding b (_OnnxRuntime)


def prepare(b: np.ndarray, in_bits: int | None = None) -> np.ndarray:
    """Mark b as a right operand reused unchanged by many gemm calls (weights, an attention memory's keys/values):
    its range is checked once, and exact_matmul's float copy of it (once per float type) or the library backend's
    converted, pre-packed copy of it (one session per thread count) made once, instead of per call.
    b becomes read-only so that they cannot go stale; the record dies with b. gemm's results are the same."""
    in_bits = _default_in_bits() if in_bits is None else in_bits
    _check_width("in_bits", in_bits, 2, 16)
    if not isinstance(b, np.ndarray) or b.ndim < 2:
        raise ValueError(f"gemm.prepare: b must be an array of ndim >= 2, got {type(b).__name__}")
    b.setflags(write=False)
    _PREPARED[id(b)] = _Prepared(b, in_bits, _check_operand("b", b, in_bits)[0])
    weakref.finalize(b, _PREPARED.pop, id(b), None)
    return b


def _prepared(b: np.ndarray, in_bits: int) -> _Prepared | None:
    p = _PREPARED.get(id(b))
    return p if p is not None and p.ref() is b and p.in_bits <= in_bits else None


def _scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A reused per-thread buffer: fresh multi-MB temporaries per call cost more in page faults than the GEMM."""
    size = math.prod(shape)
    buf = getattr(_SCRATCH, name, None)
    if buf is None or buf.dtype != dtype or buf.size < size:
        buf = np.empty(size, dtype=dtype)
        setattr(_SCRATCH, name, buf)
    return buf[:size].reshape(shape)


def exact_matmul(a: np.ndarray, b: np.ndarray, bound_a: int, bound_b: int, prep: _Prepared | None = None,
                 af: np.ndarray | None = None, bf: np.ndarray | None = None) -> np.ndarray:
    """Exact int64 sum_k a[..., i, k] * b[..., k, j] for |a| <= bound_a, |b| <= bound_b, via exact float BLAS
    (b's float copy taken from prep, prepare()'s record of b, when given; af, bf: float32 copies already made)."""
    k = a.shape[-1]
    prod = bound_a * bound_b
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) if a.ndim > 2 or b.ndim > 2 else ()
    shape = batch + (a.shape[-2], b.shape[-1])
    if prod == 0 or k == 0:
        return np.zeros(shape, dtype=np.int64)
    chunk = _F32_EXACT // prod
    ftype = np.float32 if chunk >= min(k, _MIN_F32_CHUNK) else np.float64
    if ftype is np.float64:
        chunk = _F64_EXACT // prod
    # Chunk sums are added in int32 when the total provably fits (float32 -> int32 is a SIMD cast, -> int64 is not).
    acc_type = np.int32 if k * prod < 1 << 31 else np.int64
    if af is None or ftype is not np.float32:
        af = _scratch("a", a.shape, ftype)
        np.copyto(af, a)
    if prep is not None:
        if ftype not in prep.floats:
            prep.floats[ftype] = b.astype(ftype)
        bf = prep.floats[ftype]
    elif bf is None or ftype is not np.float32:
        bf = _scratch("b", b.shape, ftype)
        np.copyto(bf, b)
    part, acc = _scratch("part", shape, ftype), _scratch("acc", shape, acc_type)
    for k0 in range(0, k, chunk):
        np.matmul(af[..., k0:k0 + chunk], bf[..., k0:k0 + chunk, :], out=part)
        if k0 == 0:
            np.copyto(acc, part, casting="unsafe")  # exact: part is an integer-valued float within acc_type
        else:
            step = _scratch("step", shape, acc_type)
            np.copyto(step, part, casting="unsafe")
            acc += step
    return acc.astype(np.int64)  # a fresh array: the scratch is reused by the next call


def _wrap_array(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's complement reduction mod 2^bits, in place."""
    half = 1 << (bits - 1)
    x += half
    x &= (1 << bits) - 1
    x -= half
    return x


def _saturate_ordered(a: np.ndarray, b: np.ndarray, out: np.ndarray, bound_a: int, bound_b: int,
                      acc_bits: int) -> np.ndarray:
    """Fix up, in k order, the outputs whose bound sum_k |a_ik||b_kj| exceeds the accumulator; others are exact."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    bound = exact_matmul(np.abs(a, dtype=np.int32), np.abs(b, dtype=np.int32), bound_a, bound_b)
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = out.shape[:-2]
    t, i, j = np.nonzero((bound > hi).reshape(-1, m, n))
    if t.size == 0:
        return out
    # Rows of k-major operand copies, flattened over batch, so each step is a 1-D gather.
    ak = np.moveaxis(np.broadcast_to(a, batch + (m, k)).reshape(-1, m, k), 2, 0).reshape(k, -1).astype(np.int64)
    bk = np.moveaxis(np.broadcast_to(b, batch + (k, n)).reshape(-1, k, n), 1, 0).reshape(k, -1).astype(np.int64)
    ia, ib = t * m + i, t * n + j
    acc = np.zeros(t.size, dtype=np.int64)
    prod = np.empty_like(acc)
    for kk in range(k):
        np.multiply(ak[kk, ia], bk[kk, ib], out=prod)
        acc += prod
        np.clip(acc, lo, hi, out=acc)
    out.reshape(-1, m, n)[t, i, j] = acc
    return out


# --- backends ---------------------------------------------------------------------------------------------------
BACKENDS = ("onnxruntime", "blas")  # preference order: the default is the first one installed and exact here
BACKEND_ENV = "ITX_GEMM"
# The library runs where its int32 sums are exact (every partial sum of uint8 x uint8 products, K * 255^2, < 2^31)
# and the GEMM has enough work to amortize its per-call overhead (~7 us here; measured with `itx bench gemm`).
_LIB_MAX_K = 1 << 15
_LIB_MIN_WORK = 1 << 19             # M * K * N; below it (1x256x256 .. 4x256x256) the float path is faster
_LIB_IN_BITS = 8
_STATE: dict = {}                   # "name": the backend in effect, "engine": its _OnnxRuntime (None for blas)


class _OnnxRuntime:
    """onnxruntime's MatMulInteger (MLAS) on a one-node graph: A + 128 as uint8 with zero point 128 (exact signed
    A), B as int8 ("u8s8": VNNI's operand pair) or B + 128 as uint8 with zero point 128 ("u8u8": exact on AVX2, where
    u8s8's pairwise int16 sums saturate); int32 results. Sessions run as many threads as BLAS has at the call."""

    def __init__(self, form: str) -> None:
        import onnxruntime
        from threadpoolctl import ThreadpoolController

        self.ort, self.form = onnxruntime, form
        self.blas = ThreadpoolController().select(user_api="blas").lib_controllers
        self.sessions: dict = {}    # threads -> the session with A and B as inputs

    def describe(self) -> str:
        return (f"onnxruntime {self.ort.__version__} MatMulInteger "
                f"{'uint8 x int8' if self.form == 'u8s8' else 'uint8 x uint8'} (zero point 128)")

    def threads(self) -> int:
        return max([c.get_num_threads() for c in self.blas] or [1])

    def operand_b(self, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """B (within int8) in the library's operand type, written to out (contiguous) if given."""
        if out is None:
            out = np.empty(b.shape, np.int8 if self.form == "u8s8" else np.uint8)
        if self.form == "u8s8":
            np.copyto(out, b, casting="unsafe")   # the low byte: b itself
            return out
        return _offset_u8(b, out)

    def session(self, threads: int, b_const: np.ndarray | None = None):
        """MatMulInteger(A, B, 128, zp_B) -> int32; B an input, or b_const (converted) a constant that onnxruntime
        pre-packs once."""
        opts = self.ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # a busy machine: no spin-waits
        return self.ort.InferenceSession(matmul_integer_model(self.form, b_const), opts,
                                         providers=["CPUExecutionProvider"])

    def matmul(self, a: np.ndarray, b: np.ndarray, prep: _Prepared | None) -> np.ndarray:
        """Exact int64 a @ b for a (..., M, K), b (K, N) within int8 (b's session, holding b, from prep if given)."""
        threads = self.threads()
        rows, k, n = math.prod(a.shape[:-1]), a.shape[-1], b.shape[-1]
        inputs = {"A": _offset_u8(a.reshape(rows, k), _scratch("lib_a", (rows, k), np.uint8))}
        if prep is not None:
            key = (self.form, threads)
            if key not in prep.sessions:
                prep.sessions[key] = _Session(self.session(threads, self.operand_b(b)))
            sess = prep.sessions[key]
        else:
            if threads not in self.sessions:
                self.sessions[threads] = _Session(self.session(threads))
            sess = self.sessions[threads]
            inputs["B"] = self.operand_b(b, _scratch("lib_b", b.shape, np.int8 if self.form == "u8s8" else np.uint8))
        out = _scratch("lib_c", (rows, n), np.int32)
        sess.run(inputs, out)
        return out.astype(np.int64).reshape(a.shape[:-1] + (n,))


class _Session:
    """An onnxruntime session and, per thread, its last io_binding (raw pointers: no per-call wrapping or output
    allocation). Binding costs ~15 us a call here; itx.golden.gemm's scratch buffers rarely move, so most calls re-run
    the last binding."""

    def __init__(self, sess) -> None:
        self.sess, self.bindings = sess, {}

    def run(self, inputs: dict[str, np.ndarray], out: np.ndarray) -> None:
        """out = C of the graph on the inputs: contiguous arrays or _scratch views (contiguous from their buffer's
        start, so a view's address is its buffer's). The binding is keyed by buffer identity and shapes; the buffers
        are kept alive with it, so an identity cannot be reused while it is cached."""
        arrays = [x if x.base is None else x.base for x in (*inputs.values(), out)]
        key = tuple((id(x), x.shape, y.shape) for x, y in zip(arrays, (*inputs.values(), out)))
        last = self.bindings.get(threading.get_ident())
        if last is None or last[0] != key:
            io = self.sess.io_binding()
            for name, x in inputs.items():
                io.bind_input(name, "cpu", 0, x.dtype, list(x.shape), x.ctypes.data)
            io.bind_output("C", "cpu", 0, np.int32, list(out.shape), out.ctypes.data)
            last = self.bindings[threading.get_ident()] = key, io, arrays
        self.sess.run_with_iobinding(last[1])


def _proto(*fields: tuple[int, int | bytes | str]) -> bytes:
    """Protocol-buffer wire format of (field number, value) pairs: ints as varints, bytes/str length-delimited."""
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append(n & 0x7F | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    out = bytearray()
    for num, value in fields:
        if isinstance(value, int):
            out += varint(num << 3) + varint(value)
        else:
            value = value.encode() if isinstance(value, str) else value
            out += varint(num << 3 | 2) + varint(len(value)) + value
    return bytes(out)


_ONNX_TYPES = {np.dtype(np.uint8): 2, np.dtype(np.int8): 3, np.dtype(np.int32): 6}   # onnx.TensorProto.DataType


def matmul_integer_model(form: str, b_const: np.ndarray | None = None) -> bytes:
    """The serialized ONNX model (IR 8, opset 13) of C = MatMulInteger(A, B, 128, zp_B): A uint8 [M, K], B int8
    (form "u8s8", zp_B = 0) or uint8 ("u8u8", zp_B = 128), an input [K, N] or the constant b_const; C int32 [M, N].
    Written directly in the wire format (equal byte for byte to onnx.helper's, tests/test_gemm.py): the onnx
    package costs ~1.5 s to import here, more than the GEMMs of a translation."""
    btype = np.dtype(np.int8 if form == "u8s8" else np.uint8)

    def tensor(name: str, x: np.ndarray) -> bytes:   # TensorProto: dims, data_type, name, raw_data
        return _proto(*((1, d) for d in x.shape), (2, _ONNX_TYPES[x.dtype]), (8, name), (9, x.tobytes()))

    def value_info(name: str, dtype, dims) -> bytes:  # ValueInfoProto{name, TypeProto{tensor_type{elem, shape}}}
        shape = _proto(*((1, _proto((2, d))) for d in dims))
        return _proto((1, name), (2, _proto((1, _proto((1, _ONNX_TYPES[np.dtype(dtype)]), (2, shape))))))

    zeros = [tensor("za", np.array(128, np.uint8)), tensor("zb", np.array(0 if form == "u8s8" else 128, btype))]
    inputs = [value_info("A", np.uint8, "MK")]
    if b_const is None:
        inputs.append(value_info("B", btype, "KN"))
    else:
        zeros.append(tensor("B", np.ascontiguousarray(b_const, btype)))
    node = _proto((1, "A"), (1, "B"), (1, "za"), (1, "zb"), (2, "C"), (4, "MatMulInteger"))
    graph = _proto((1, node), (2, "gemm"), *((5, t) for t in zeros), *((11, v) for v in inputs),
                   (12, value_info("C", np.int32, "MN")))
    return _proto((1, 8), (7, graph), (8, _proto((1, ""), (2, 13))))


def _offset_u8(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """x + 128 as uint8 for x within int8: the low byte of two's complement with its sign bit flipped."""
    np.copyto(out, x, casting="unsafe")
    out ^= 0x80
    return out


def _self_check(engine: _OnnxRuntime) -> str | None:
    """None when the library equals int64 matmul on edge operands, else the first difference: rows of A all -128,
    all 127, alternating extremes and random against columns of B alike (so all -128 x all -128, all 127 x all 127,
    -128 x 127 and mixed extremes all occur), K = 1, 7, 512 (the model's largest) and 2048 (bench's), B an input and
    B a pre-packed constant."""
    rng = np.random.default_rng(0)
    for k in (1, 7, 512, 2048):
        alt = np.resize([-128, 127], k)
        edges = [np.full(k, -128), np.full(k, 127), alt, -1 - alt, np.resize([-128, 127, 127, -128, 0, 127], k)]
        a = np.vstack(edges + [rng.integers(-128, 128, (12, k))]).astype(np.int8)
        b = np.vstack(edges[::-1] + [rng.integers(-128, 128, (18, k))]).T.astype(np.int8)
        want = a.astype(np.int64) @ b.astype(np.int64)
        for how, prep in (("B an input", None), ("B pre-packed", _Prepared(b, 8, 128))):
            got = engine.matmul(a, b, prep)
            if not np.array_equal(got, want):
                i, j = np.argwhere(got != want)[0]
                return f"K={k}, {how}: C[{i}, {j}] = {got[i, j]}, int64 says {want[i, j]}"
    return None


def _load_library() -> tuple[_OnnxRuntime | None, str]:
    """The first exact operand form of onnxruntime on this CPU, or None and why not."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return None, f"not installed ({exc}; pip install -e '.[gemm]')"
    why = []
    for form in ("u8s8", "u8u8"):
        engine = _OnnxRuntime(form)
        diff = _self_check(engine)
        if diff is None:
            return engine, ""
        why.append(f"{engine.describe()} failed its self-check ({diff})")
    return None, "; ".join(why)


def set_backend(name: str | None = None) -> str:
    """Select the GEMM backend: one of BACKENDS, or None for $ITX_GEMM, else the default (the first of BACKENDS that
    is installed and passes its self-check). A library that is missing (when asked for by name) or inexact falls
    back to "blas" with a one-line notice on stderr. Returns the backend in effect."""
    asked = os.environ.get(BACKEND_ENV) or None if name is None else name
    if asked is not None and asked not in BACKENDS:
        raise ValueError(f"{BACKEND_ENV}: unknown GEMM backend {asked!r}; choose one of {', '.join(BACKENDS)}")
    engine = None
    if asked in (None, "onnxruntime"):
        if "library" not in _STATE:
            _STATE["library"] = _load_library()
        engine, why = _STATE["library"]
        if engine is None and (asked is not None or not why.startswith("not installed")):
            print(f"itx: GEMM backend onnxruntime {why}; using blas", file=sys.stderr)
    _STATE.update(name="onnxruntime" if engine else "blas", engine=engine)
    return _STATE["name"]


def backend() -> str:
    """The GEMM backend in effect (set_backend() on first use)."""
    return _STATE["name"] if "name" in _STATE else set_backend()


def describe_backend() -> str:
    """One line: the backend in effect and the library kernel it runs."""
    engine = _STATE.get("engine") if backend() == "onnxruntime" else None
    return f"GEMM backend {backend()}" + (f": {engine.describe()}, else exact float BLAS" if engine else
                                          ": exact float BLAS chunks")


def _library_matmul(a: np.ndarray, b: np.ndarray, in_bits: int, prep: _Prepared | None) -> np.ndarray | None:
    """Exact int64 sums through the library backend, or None where it does not apply: the blas backend, operands
    wider than int8, a batched B (attention: many tiny GEMMs, faster as one float matmul), K beyond int32-exact, or
    too little work for the per-call overhead."""
    if backend() != "onnxruntime" or in_bits > _LIB_IN_BITS or b.ndim != 2:
        return None
    k = a.shape[-1]
    if not 0 < k <= _LIB_MAX_K or math.prod(a.shape[:-1]) * k * b.shape[-1] < max(_LIB_MIN_WORK, 1):
        return None
    return _STATE["engine"].matmul(a, b, prep)


def gemm(a: np.ndarray, b: np.ndarray, acc_bits: int = 32, overflow: str = "wrap",
         in_bits: int | None = None, *, in_range: bool = False, b_f32: np.ndarray | None = None) -> np.ndarray:
    """C = A @ B with signed in_bits operands and an acc_bits accumulator (module docstring; Lin et al. 2020 Sec. 3).

    a: (..., M, K), b: (..., K, N) integer arrays; leading dims broadcast like np.matmul (per-head attention).
    in_bits defaults to hw/config.toml. Returns int64 (..., M, N), bit-identical to gemm_reference.
    in_range: the caller guarantees that a and b are integer arrays within in_bits (QTensor values), so they are not
    scanned (the bound 2^(in_bits-1) sizes the exact chunks instead of the measured max); b_f32, with in_range: b's
    exact float32 copy, kept by a caller that extends b in place (a K/V cache), used when the chunks are float32.
    """
    in_bits = _default_in_bits() if in_bits is None else in_bits
    _check_width("in_bits", in_bits, 2, 16)
    _check_width("acc_bits", acc_bits, 16, 32)
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"gemm: overflow must be one of {OVERFLOW_MODES}, got {overflow!r}")
    a, b = np.asarray(a), np.asarray(b)
    _check_shapes(a, b)
    prep = _prepared(b, in_bits)
    if in_range:
        bound_a, af = 1 << (in_bits - 1), None
        bound_b, bf = (prep.bound, None) if prep else (bound_a, b_f32)
    else:
        bound_a, af = _check_operand("a", a, in_bits, "a")
        bound_b, bf = (prep.bound, None) if prep else _check_operand("b", b, in_bits, "b")
    out = _library_matmul(a, b, in_bits, prep)
    if out is None:
        out = exact_matmul(a, b, bound_a, bound_b, prep, af, bf)
    if a.shape[-1] * bound_a * bound_b < 1 << (acc_bits - 1):  # no partial sum can reach the accumulator limits
        return out
    if overflow == "wrap":
        return _wrap_array(out, acc_bits)
    return _saturate_ordered(a, b, out, bound_a, bound_b, acc_bits)
