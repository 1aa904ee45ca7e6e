"""itx.golden.gemm: the fast exact GEMM equals the pure-Python ordered-accumulation reference, bit for bit, on every
backend (the `backend` fixture: each of itx.golden.gemm.BACKENDS, the library taking every GEMM it can, however small)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from itx.golden import gemm as gemm_module
from itx.golden.config import load_hw_config
from itx.golden.gemm import BACKENDS, gemm, gemm_reference, prepare

IN_BITS = (2, 3, 4, 8, 12, 16)
ACC_BITS = (16, 17, 20, 24, 31, 32)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    """Run the test on one backend; a library that is missing or fails its self-check here is a skip, with why."""
    name = request.param
    if gemm_module.set_backend(name) != name:
        gemm_module.set_backend()
        pytest.skip(f"GEMM backend {name}: {gemm_module._STATE['library'][1]}")
    saved, gemm_module._LIB_MIN_WORK = gemm_module._LIB_MIN_WORK, 0   # the library takes even 1x1x1 GEMMs
    yield name
    gemm_module._LIB_MIN_WORK = saved
    gemm_module.set_backend()


def assert_exact(got: np.ndarray, want, what: str) -> None:
    """Zero tolerance; on mismatch name the first differing index, expected and got."""
    want = np.asarray(want, dtype=np.int64).reshape(got.shape)
    assert got.dtype == np.int64, f"{what}: dtype {got.dtype}, expected int64"
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"{what}: {len(bad)} mismatches, first at {tuple(bad[0])}: "
                           f"expected {want[tuple(bad[0])]}, got {got[tuple(bad[0])]}")


def wrap64(x: np.ndarray, bits: int) -> np.ndarray:
    """Independent two's complement wrap of exact int64 sums (Python ints per element)."""
    m = 1 << bits
    return np.array([(int(v) + m // 2) % m - m // 2 for v in x.ravel()], dtype=np.int64).reshape(x.shape)


def edge_values(in_bits: int) -> list[int]:
    lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
    powers = [s * ((1 << i) + d) for i in range(in_bits) for d in (-1, 0, 1) for s in (1, -1)]
    return sorted({v for v in [lo, hi, 0, 1, -1, *powers] if lo <= v <= hi})


@st.composite
def gemm_case(draw, max_k: int = 9):
    in_bits = draw(st.sampled_from(IN_BITS))
    acc_bits = draw(st.sampled_from(ACC_BITS))
    m, k, n = draw(st.integers(1, 4)), draw(st.integers(1, max_k)), draw(st.integers(1, 4))
    lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
    values = st.one_of(st.integers(lo, hi), st.sampled_from(edge_values(in_bits)))
    dtype = np.int8 if in_bits <= 8 else np.int16
    a = draw(hnp.arrays(dtype, (m, k), elements=values))
    b = draw(hnp.arrays(dtype, (k, n), elements=values))
    return a, b, in_bits, acc_bits


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
@settings(max_examples=1000)
@given(case=gemm_case())
def test_gemm_equals_reference(backend, overflow, case):
    a, b, in_bits, acc_bits = case
    assert_exact(gemm(a, b, acc_bits, overflow, in_bits=in_bits), gemm_reference(a, b, acc_bits, overflow),
                 f"{overflow} in_bits={in_bits} acc_bits={acc_bits} a={a.tolist()} b={b.tolist()}")


@settings(max_examples=100)
@given(case=gemm_case(max_k=6), overflow=st.sampled_from(["wrap", "saturate"]), heads=st.integers(1, 3))
def test_batched_broadcast_equals_per_head_reference(backend, case, overflow, heads):
    a, b, in_bits, acc_bits = case
    a3 = np.stack([np.roll(a, h, axis=1) for h in range(heads)])  # (heads, M, K) against one shared (K, N)
    got = gemm(a3[None], b, acc_bits, overflow, in_bits=in_bits)
    assert got.shape == (1, heads, a.shape[0], b.shape[1])
    for h in range(heads):
        assert_exact(got[0, h], gemm_reference(a3[h], b, acc_bits, overflow), f"head {h}")


@pytest.mark.parametrize("in_bits", [2, 8, 16])
@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_edge_shapes_and_values(backend, in_bits, overflow):
    lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
    ev = np.array(edge_values(in_bits), dtype=np.int64)
    cases = {
        "single element": (np.array([[lo]]), np.array([[lo]])),
        "K=1": (ev[:, None], ev[None, :]),
        "all zero": (np.zeros((3, 5), np.int64), np.zeros((5, 2), np.int64)),
        "all min": (np.full((2, 9), lo), np.full((9, 3), lo)),
        "mixed extremes": (np.resize([lo, hi, hi, lo, 0], (4, 7)), np.resize([hi, lo, lo, hi, lo, 1], (7, 5))),
        "edge grid": (np.resize(ev, (3, len(ev))), np.resize(ev[::-1], (len(ev), 4))),
    }
    for acc_bits in (16, 32):
        for name, (a, b) in cases.items():
            assert_exact(gemm(a, b, acc_bits, overflow, in_bits=in_bits), gemm_reference(a, b, acc_bits, overflow),
                         f"{name} in_bits={in_bits} acc_bits={acc_bits} {overflow}")


def test_all_min_saturates_and_stays(backend):
    a = np.full((2, 6), -128, np.int8)
    assert_exact(gemm(a, a.T.copy(), 16, "saturate", in_bits=8), np.full((2, 2), 32767), "all -128, acc 16")
    assert_exact(gemm(a, a.T.copy(), 16, "wrap", in_bits=8), np.full((2, 2), (6 * 16384 + 32768) % 65536 - 32768),
                 "all -128, acc 16 wrap")


def test_largest_k_all_min_against_int64(backend):
    k = 4096
    a = np.full((2, k), -128, np.int8)
    want = np.full((2, 2), k * 128 * 128)  # 2^26: beyond float32's exact integers, fits 32 bits
    assert_exact(gemm(a, a.T.copy(), 32, "wrap"), want, "K=4096 all -128")
    assert_exact(gemm(a, a.T.copy(), 32, "saturate"), want, "K=4096 all -128 saturate")


def test_largest_k_needs_chunking(backend):
    """An odd sum above 2^24 is no float32, so one float32 GEMM cannot be exact; the chunked path must be."""
    k = 4095
    a = np.full((1, k), 127, np.int8)
    b = np.full((k, 1), 127, np.int8)
    want = np.array([[k * 127 * 127]])
    assert np.matmul(a.astype(np.float32), b.astype(np.float32))[0, 0] != want[0, 0]  # the case is discriminating
    assert_exact(gemm(a, b), want, "K=4095 127*127")


@pytest.mark.parametrize("in_bits, shape", [(8, (5, 3000, 7)), (12, (4, 700, 6)), (16, (3, 900, 5))])
@pytest.mark.parametrize("acc_bits", [24, 32])
def test_random_large_k_wrap_against_int64(backend, in_bits, shape, acc_bits):
    m, k, n = shape
    rng = np.random.default_rng(in_bits * 100 + acc_bits)
    lim = 1 << (in_bits - 1)
    a, b = rng.integers(-lim, lim, (m, k)), rng.integers(-lim, lim, (k, n))
    exact = a @ b  # int64 matmul is exact here: |sum| < 2^63
    assert_exact(gemm(a, b, acc_bits, "wrap", in_bits=in_bits), wrap64(exact, acc_bits),
                 f"in_bits={in_bits} acc_bits={acc_bits} shape={shape}")


def test_saturate_large_k_some_outputs_saturate(backend):
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, (3, 2000), dtype=np.int8)
    b = rng.integers(-128, 128, (2000, 4), dtype=np.int8)
    a[0] = 127  # row 0 against column 0 drifts far past 2^15
    b[:, 0] = 127
    got = gemm(a, b, 16, "saturate")
    assert got[0, 0] == 32767
    assert_exact(got, gemm_reference(a, b, 16, "saturate"), "K=2000 saturate acc 16")


def test_unsigned_and_wide_dtypes_accepted_when_in_range(backend):
    a = np.array([[0, 127, 5]], np.uint8)
    b = np.array([[3], [-128], [127]], np.int64)
    assert_exact(gemm(a, b), gemm_reference(a, b), "uint8 x int64")


@pytest.mark.parametrize("args, kwargs, needle", [
    ((np.ones((2, 2)), np.ones((2, 2), np.int8)), {}, "a must have an integer dtype, got float64"),
    ((np.array([[1.0, np.nan]]), np.ones((2, 1), np.int8)), {}, "a[0, 1] = nan"),
    ((np.ones((1, 2), np.int8), np.array([[1.0], [np.inf]])), {}, "b[1, 0] = inf"),
    ((np.ones((1, 2), bool), np.ones((2, 1), np.int8)), {}, "a must have an integer dtype, got bool"),
    ((np.array([[1, 128]], np.int16), np.ones((2, 1), np.int8)), {"in_bits": 8}, "a[0, 1] = 128 is outside the "
                                                                                   "signed 8-bit range [-128, 127]"),
    ((np.ones((1, 2), np.int8), np.array([[0], [-9]])), {"in_bits": 4}, "b[1, 0] = -9 is outside the signed 4-bit"),
    ((np.array([[1, 2**40]]), np.ones((2, 1), np.int8)), {}, "a[0, 1] = 1099511627776 is outside the signed 8-bit"),
    ((np.array([[1, -(2**62)]]), np.ones((2, 1), np.int8)), {}, "a[0, 1] = -4611686018427387904 is outside"),
    ((np.ones((1, 2), np.int8), np.array([[2**64 - 1], [0]], np.uint64)), {"in_bits": 9},
     "b[0, 0] = 18446744073709551615 is outside the signed 9-bit range [-256, 255]"),
    ((np.ones((1, 2), np.int8), np.array([[0], [2**24 + 1]])), {"in_bits": 9}, "b[1, 0] = 16777217 is outside"),
    ((np.array([[-129, 0]]), np.ones((2, 1), np.int8)), {}, "a[0, 0] = -129 is outside the signed 8-bit"),
    ((np.ones(3, np.int8), np.ones((3, 1), np.int8)), {}, "a must be at least 2-D"),
    ((np.ones((2, 3), np.int8), np.ones((4, 2), np.int8)), {}, "a has shape (2, 3), b has shape (4, 2)"),
    ((np.ones((2, 1, 3), np.int8), np.ones((3, 3, 2), np.int8)), {}, "batch dimensions do not broadcast"),
    ((np.ones((1, 1), np.int8),) * 2, {"in_bits": 17}, "in_bits must be an integer in 2..16, got 17"),
    ((np.ones((1, 1), np.int8),) * 2, {"in_bits": True}, "in_bits must be an integer in 2..16, got True"),
    ((np.ones((1, 1), np.int8),) * 2, {"acc_bits": 33}, "acc_bits must be an integer in 16..32, got 33"),
    ((np.ones((1, 1), np.int8),) * 2, {"acc_bits": 15}, "acc_bits must be an integer in 16..32, got 15"),
    ((np.ones((1, 1), np.int8),) * 2, {"overflow": "clip"}, "overflow must be one of"),
])
def test_bad_input_one_line_error(args, kwargs, needle):
    with pytest.raises(ValueError) as exc:
        gemm(*args, **kwargs)
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg, msg


def test_in_bits_defaults_to_hw_config():
    bits = load_hw_config().in_bits
    too_big = np.array([[1 << (bits - 1)]], np.int64)
    with pytest.raises(ValueError, match=f"signed {bits}-bit range"):
        gemm(too_big, np.ones((1, 1), np.int64))


@pytest.mark.parametrize("in_bits, k, acc_bits, overflow", [(8, 300, 32, "wrap"), (8, 2000, 16, "saturate"),
                                                              (10, 300, 32, "wrap"), (16, 40, 24, "wrap")])
def test_prepared_operand_gives_the_same_result(backend, in_bits, k, acc_bits, overflow):
    """prepare(b) caches the range check and float copies (float32, or float64 for wide operands; chunked K);
    gemm is bit-identical with and without it, also when called again and with a wider in_bits."""
    rng = np.random.default_rng(in_bits + k)
    hi = (1 << (in_bits - 1)) - 1
    a, b = rng.integers(-hi - 1, hi + 1, (2, 3, k)), rng.integers(-hi - 1, hi + 1, (k, 5))
    want = gemm(a, b, acc_bits, overflow, in_bits=in_bits)
    pb = prepare(b.copy(), in_bits)
    assert not pb.flags.writeable
    for bits in (in_bits, 16, in_bits):
        assert_exact(gemm(a, pb, acc_bits, overflow, in_bits=bits), want, f"prepared, in_bits {bits}")


def test_prepare_checks_range_once_and_narrower_calls_recheck():
    b = prepare(np.array([[100], [-3]]), 8)
    with pytest.raises(ValueError, match=r"b\[0, 0\] = 100 is outside the signed 4-bit"):
        gemm(np.ones((1, 2), np.int64), b, in_bits=4)
    with pytest.raises(ValueError, match=r"b\[0, 0\] = 200 is outside the signed 8-bit"):
        prepare(np.array([[200]]), 8)
    with pytest.raises(ValueError, match="ndim >= 2"):
        prepare(np.ones(3, np.int64))


@pytest.mark.parametrize("in_bits, k, acc_bits, overflow", [(8, 300, 32, "wrap"), (8, 2000, 16, "saturate"),
                                                              (10, 300, 32, "wrap"), (8, 40, 16, "wrap")])
def test_in_range_operands_give_the_same_result(backend, in_bits, k, acc_bits, overflow):
    """in_range (QTensor operands: the bound 2^(in_bits-1) instead of a scan) and a caller's float32 copy of b
    (b_f32, also a strided view as a K/V cache's transpose) are bit-identical to the scanning gemm."""
    rng = np.random.default_rng(in_bits + k)
    hi = (1 << (in_bits - 1)) - 1
    a, b = rng.integers(-hi - 1, hi + 1, (2, 3, k)), rng.integers(-hi - 1, hi + 1, (2, 5, k)).transpose(0, 2, 1)
    want = gemm(a, b, acc_bits, overflow, in_bits=in_bits)
    assert_exact(gemm(a, b, acc_bits, overflow, in_bits=in_bits, in_range=True), want, "in_range")
    bf = np.ascontiguousarray(b.transpose(0, 2, 1), dtype=np.float32).transpose(0, 2, 1)
    assert_exact(gemm(a, b, acc_bits, overflow, in_bits=in_bits, in_range=True, b_f32=bf), want, "b_f32")
