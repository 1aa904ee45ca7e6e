"""Quantize, scale matching, re-scaling and Alg. 1 vs the pure-Python-int reference; tolerance 0."""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import int_reference as ref
from itx.golden.qtensor import QTensor
from itx.golden.quant import (MATCH_MODES, RESCALE_MODES, dyadic_factors, group_absmax, match_along, match_scales, propagate, quantize,
                          rescale)
from itx.golden.rounding import round_div, round_div_or_zero, round_shift

N = 1000
EDGE = [0, 1, -1, 127, -127, -128, 2**15 - 1, -(2**15), 2**31 - 1, -(2**31)] + \
       [s * (2**i + o) for i in range(1, 31) for o in (-1, 1) for s in (1, -1)]
ints32 = st.one_of(st.sampled_from(EDGE), st.integers(-(2**31), 2**31 - 1))
scales = st.one_of(st.sampled_from([1.0, 0.5, 3.0, 127.0, 2.0**-20, 2.0**20]),
                   st.floats(float(np.float32(1e-6)), 1e6, width=32))
small_shapes = st.tuples(st.integers(1, 3), st.integers(1, 4))


def mat(draw, shape, elems):
    return np.array(draw(st.lists(elems, min_size=shape[0] * shape[1], max_size=shape[0] * shape[1])),
                    dtype=np.int64).reshape(shape)


@settings(max_examples=N)
@given(st.integers(-(2**61), 2**61), st.integers(1, 2**61), st.sampled_from(["half_away", "half_even", "floor"]))
def test_round_div(n, d, rounding):
    assert round_div(n, d, rounding) == ref.div(n, d, rounding)


@pytest.mark.parametrize("n,d,half_away,half_even", [(5, 2, 3, 2), (-5, 2, -3, -2), (7, 2, 4, 4), (-7, 2, -4, -4),
                                                     (1, 3, 0, 0), (-2, 3, -1, -1), (0, 5, 0, 0)])
def test_round_div_named_ties(n, d, half_away, half_even):
    assert (round_div(n, d, "half_away"), round_div(n, d, "half_even")) == (half_away, half_even)


@settings(max_examples=N)
@given(st.integers(-(2**61), 2**61), st.integers(0, 61), st.sampled_from(["half_away", "half_even", "floor"]))
def test_round_shift(n, sh, rounding):
    assert round_shift(n, sh, rounding) == ref.div(n, 2**sh, rounding)


@pytest.mark.parametrize("rounding", ["half_away", "half_even", "floor"])
def test_round_div_and_shift_vectorised(rounding):
    """Broadcast arrays (per-row divisors, ties of both signs, d = 1) against the reference element by element."""
    rng = np.random.default_rng(3)
    d = np.r_[1, 2, 3, 4, 7, 2**20, 2**20 + 1, rng.integers(1, 2**40, 5)].reshape(-1, 1)
    n = np.concatenate([rng.integers(-(2**61), 2**61, (d.size, 20)), d * rng.integers(-9, 9, (d.size, 8)) + d // 2,
                        -(d * rng.integers(0, 9, (d.size, 8)) + d // 2)], axis=1)
    got = round_div(n, d, rounding)
    sh = np.arange(d.size).reshape(-1, 1) * 4
    got_shift = round_shift(n, sh, rounding)
    for i, j in np.ndindex(*n.shape):
        assert got[i, j] == ref.div(int(n[i, j]), int(d[i, 0]), rounding), (i, j, n[i, j], d[i, 0])
        assert got_shift[i, j] == ref.div(int(n[i, j]), 2 ** int(sh[i, 0]), rounding), (i, j, n[i, j], sh[i, 0])


@pytest.mark.parametrize("rounding", ["half_away", "half_even", "floor"])
def test_round_div_float_and_integer_paths_agree_at_their_border(rounding):
    """|n|, d < 2^51 take one float64 division, larger ones integer floor division: both exact against the
    Fraction reference at ties of both signs, exact multiples, the largest float-path numerators and just past them,
    per-row and per-element divisors, a divisor broadcast wider than n, 0-d, and a caller-given bound."""
    rng = np.random.default_rng(11)
    top = 2**51 - 1
    d = np.r_[1, 2, 3, 7, 2**20, 2**20 + 1, 2**50 - 1, 2**50, top, 2**51, rng.integers(1, 2**51, 6)].reshape(-1, 1)
    k = rng.integers(-9, 9, (d.size, 6))
    n = np.concatenate([d * k + d // 2, d * k - d // 2, d * k, d * k + 1, d * k - 1,
                        np.clip(rng.integers(-top, top, (d.size, 6)), -top, top),
                        np.tile([top, -top, top - 1, -top + 1, top + 1, -top - 1, 2**61, -(2**61)], (d.size, 1))],
                       axis=1)
    n = np.clip(n, -(2**61), 2**61)
    got, got_t = round_div(n, d, rounding), round_div(n[:, :1], np.broadcast_to(d, n.shape), rounding)
    for i, j in np.ndindex(*n.shape):
        assert got[i, j] == ref.div(int(n[i, j]), int(d[i, 0]), rounding), (i, j, n[i, j], d[i, 0])
        assert got_t[i, j] == ref.div(int(n[i, 0]), int(d[i, 0]), rounding), (i, j, n[i, 0], d[i, 0])
    small = n[:, :30]
    assert (round_div(small, d, rounding, bound=int(np.abs(small).max())) == got[:, :30]).all()
    assert round_div(-7, 2, rounding) == ref.div(-7, 2, rounding) and round_div(top, top, rounding) == 1


@pytest.mark.parametrize("rounding", ["half_away", "half_even", "floor"])
def test_round_shift_ties_per_row_shifts(rounding):
    """Per-row shifts 0..61 (0 = no division) against the reference at ties k 2^sh +- 2^(sh-1) of both signs, their
    neighbours and the largest |n| < 2^62 (the shift path doubles n)."""
    sh = np.arange(62).reshape(-1, 1)
    half, k = (1 << sh) >> 1, np.arange(-3, 4)
    n = np.concatenate([(k << sh) + half, (k << sh) - half, (k << sh) + half + 1, (k << sh) - half - 1,
                        np.broadcast_to(np.array([2**62 - 1, -(2**62) + 1]), (62, 2))], axis=1)
    n = np.where(np.abs(n) < 2**62, n, 0)   # the documented domain
    got = round_shift(n, sh, rounding)
    for i, j in np.ndindex(*n.shape):
        assert got[i, j] == ref.div(int(n[i, j]), 2 ** i, rounding), (i, j, n[i, j])


def test_round_div_or_zero():
    n, d = np.array([[5, -5], [5, -5]]), np.array([[2], [0]])
    assert round_div_or_zero(n, d).tolist() == [[3, -3], [0, 0]]
    assert round_div_or_zero(n, np.array([[2], [3]]), "half_even").tolist() == [[2, -2], [2, -2]]


def test_dyadic_factors_are_frexp_of_the_ratio():
    """m = round_half_away(f 2^31), sh = 31 - e for frexp's r = f 2^e; a carry (m = 2^31, only for float64 ratios
    within 2^-32 below a power of two: never for float32 scales) renormalises to m = 2^30, sh - 1."""
    rng = np.random.default_rng(4)
    s_to = np.exp2(rng.uniform(-60, 60, 400)).astype(np.float32)
    s_from = np.r_[np.exp2(rng.uniform(0, 40, 200)).astype(np.float32) * s_to[:200],
                   np.nextafter(s_to[200:300], np.float32(np.inf)), s_to[300:]]
    ratio = np.r_[s_to.astype(np.float64) / s_from.astype(np.float64), 1 - 2.0**-40, 0.5 - 2.0**-45]
    m, sh = dyadic_factors(np.r_[s_from, 1.0, 1.0], np.r_[s_to, ratio[-2:]])
    for r, mi, si in zip(ratio, m, sh):
        f, e = math.frexp(r)
        want_m, want_sh = ref.round_frac(Fraction(f) * 2**31), 31 - e
        if want_m == 2**31:
            want_m, want_sh = want_m // 2, want_sh - 1
        assert (mi, si) == (want_m, want_sh), r


def test_match_zero_dim_tensors():
    a, b = QTensor(np.int64(1000), np.float32(3.0), 16), QTensor(np.int64(-777), np.float32(7.0), 16)
    assert [int(t.values) for t in match_scales([a, b], "dyadic")] == [1000, -333]
    assert [int(t.values) for t in match_scales([a, b], "paper")] == [1000, -259]


def test_group_absmax_extremes():
    x = np.array([[-(2**31), 5, 2**31 - 1], [0, 0, 0], [3, -7, 2]], np.int64)
    assert group_absmax(x, "row").ravel().tolist() == [2**31, 0, 7]
    assert group_absmax(x, "tensor").tolist() == [[2**31]]
    assert group_absmax(x[None], "batch").ravel().tolist() == [2**31]
    assert group_absmax(np.array([-0.0, -2.5], np.float32), "tensor").tolist() == [2.5]


@settings(max_examples=N)
@given(st.data(), small_shapes, st.integers(2, 16), st.sampled_from(["tensor", "row", "batch"]))
def test_quantize(data, shape, bits, granularity):
    r = np.array(data.draw(st.lists(st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-30]),
                                              st.floats(-1e6, 1e6, width=32, allow_subnormal=False)),
                                    min_size=shape[0] * shape[1], max_size=shape[0] * shape[1])),
                 dtype=np.float32).reshape(shape)
    r[np.abs(r) < 1e-30] = 0       # keeps 127 / max|r| a finite float32 (tiny maxima are a tested error)
    q = quantize(r, bits, granularity)
    groups = {"tensor": [[(i, j) for i in range(shape[0]) for j in range(shape[1])]],
              "row": [[(i, j) for j in range(shape[1])] for i in range(shape[0])],
              "batch": [[(i, j) for j in range(shape[1])] for i in range(shape[0])]}[granularity]
    for g in groups:
        xs, s = ref.quantize_group([r[ij] for ij in g], bits)
        for ij, x in zip(g, xs):
            assert (q.values[ij], np.broadcast_to(q.scale, shape)[ij]) == (x, s), (granularity, ij)


def test_quantize_block_groups():
    r = np.arange(1, 31, dtype=np.float32).reshape(5, 6)
    q = quantize(r, 8, "block", block=4)
    for i0, j0 in [(0, 0), (0, 4), (4, 0), (4, 4)]:
        blk = r[i0:i0 + 4, j0:j0 + 4]
        xs, s = ref.quantize_group(blk.ravel().tolist(), 8)
        assert q.values[i0:i0 + 4, j0:j0 + 4].ravel().tolist() == xs
        assert (q.scale[i0:i0 + 4, j0:j0 + 4] == s).all()


def test_quantize_all_zero_and_single():
    q = quantize(np.zeros((2, 3)), 8, "row")
    assert (q.values == 0).all() and (q.scale == 2.0 ** 40).all()
    one = quantize(np.array([-0.37]), 8)
    assert one.values.tolist() == [-127] and one.scale.dtype == np.float32


def test_quantize_roundtrip_bound():
    r = np.random.default_rng(0).normal(size=(8, 64)).astype(np.float32)
    for bits in (4, 8, 16):
        q = quantize(r, bits, "row")
        # half a quantization step per element: max|r| / (2 * qmax), plus float32 slack
        step = np.abs(r).max(-1, keepdims=True) / (2 * (2 ** (bits - 1) - 1))
        assert (np.abs(q.dequantize() - r) <= step * (1 + 1e-5)).all()


@settings(max_examples=N)
@given(st.data(), small_shapes, st.sampled_from(MATCH_MODES))
def test_match_scales(data, shape, mode):
    a = QTensor(mat(data.draw, shape, ints32), np.float32(data.draw(scales)), 32)
    sb = np.array(data.draw(st.lists(scales, min_size=shape[0], max_size=shape[0])), np.float32).reshape(-1, 1)
    b = QTensor(mat(data.draw, shape, ints32), sb, 32)
    ma, mb = match_scales([a, b], mode)
    for i in range(shape[0]):
        s_min = min(a.scale[0, 0], sb[i, 0])
        assert ma.scale[i, 0] == mb.scale[i, 0] == s_min
        for j in range(shape[1]):
            assert ma.values[i, j] == ref.match_one(int(a.values[i, j]), a.scale[0, 0], s_min, mode), (i, j)
            assert mb.values[i, j] == ref.match_one(int(b.values[i, j]), sb[i, 0], s_min, mode), (i, j)


@settings(max_examples=N)
@given(st.data(), small_shapes, st.sampled_from(MATCH_MODES))
def test_match_along(data, shape, mode):
    s = np.array(data.draw(st.lists(scales, min_size=shape[1], max_size=shape[1])), np.float32).reshape(1, -1)
    x = QTensor(mat(data.draw, shape, ints32), s, 32)
    m = match_along(x, -1, mode)
    assert m.scale.shape == (1, 1) and m.scale[0, 0] == s.min()
    for i, j in np.ndindex(*shape):
        assert m.values[i, j] == ref.match_one(int(x.values[i, j]), s[0, j], s.min(), mode), (i, j)


def test_match_equal_scales_is_identity_and_dyadic_beats_paper():
    x = QTensor(np.array([[-(2**31), 2**31 - 1, 0, 5]]), np.float32(3.0), 32)
    for mode in ("paper", "dyadic"):
        assert match_scales([x, x], mode)[0].values.tolist() == x.values.tolist()
    # ratio 1.5: paper divides by ceil(1.5) = 2 and keeps scale s_min (true value off by 25%)
    big = QTensor(np.array([[120]]), np.float32(3.0), 8)
    small = QTensor(np.array([[0]]), np.float32(2.0), 8)
    assert match_scales([big, small], "paper")[0].values.tolist() == [[60]]
    assert match_scales([big, small], "dyadic")[0].values.tolist() == [[80]]


@settings(max_examples=N)
@given(st.data(), small_shapes, st.integers(2, 16), st.sampled_from(RESCALE_MODES))
def test_rescale(data, shape, bits, mode):
    x = QTensor(mat(data.draw, shape, ints32), np.float32(data.draw(scales)), 32)
    y = rescale(x, bits, "row", mode)
    assert y.bits == bits
    for i in range(shape[0]):
        xs, factor = ref.rescale_group(x.values[i].tolist(), bits, mode)
        assert y.values[i].tolist() == xs, i
        s = float(x.scale[0, 0])   # paper/pow2: s / s_hat; dyadic: s (m / 2^sh) (exact factor); one float64 rounding
        assert y.scale[i, 0] == np.float32(s / float(1 / factor) if factor.numerator == 1 else s * float(factor))


def test_rescale_only_when_over_range():
    x = QTensor(np.array([[127, -127], [128, 0], [0, 0]]), np.float32(2.0), 32)
    y = rescale(x, 8, mode="paper")
    assert y.values.tolist() == [[127, -127], [64, 0], [0, 0]]
    assert y.scale.ravel().tolist() == [2.0, 1.0, 2.0]


def test_dyadic_rescale_keeps_the_range():
    """Eq. 10's ceil gives away up to half the range (max|x| = 128 -> 64); the dyadic multiplier maps max|x| to
    qmax (or qmax - 1 when the 31-bit floor lands just below), for any max|x| up to the 32-bit accumulator's."""
    x = QTensor(np.array([[127, -127], [128, 0], [0, 0], [300, -299], [-2 ** 31, 1]]), np.float32(2.0), 32)
    assert rescale(x, 8, mode="paper").values[:, 0].tolist() == [127, 64, 0, 100, -127]
    y = rescale(x, 8, mode="dyadic")
    assert y.values.tolist() == [[127, -127], [127, 0], [0, 0], [127, -127], [-127, 0]]
    assert y.scale.ravel()[[0, 2]].tolist() == [2.0, 2.0]      # groups that fit are untouched
    np.testing.assert_allclose(y.dequantize()[3], x.dequantize()[3], rtol=0.004)


def test_propagate_is_alg1():
    a = QTensor(np.array([[100, -100]]), np.float32(4.0), 8)
    from itx.golden.ops import mul
    out = propagate(mul, a, a, bits=8, mode="paper")
    assert out.bits == 8 and out.values.tolist() == [[127, 127]] and out.scale[0, 0] == np.float32(16.0 / 79)


@pytest.mark.parametrize("call,needle", [
    (lambda: quantize(np.array([1.0, np.nan])), "r[(1,)]"),
    (lambda: quantize(np.array([np.inf])), "not finite"),
    (lambda: quantize(np.array([1.0]), bits=1), "bits must be"),
    (lambda: quantize(np.array([1.0]), bits=17), "bits must be"),
    (lambda: quantize(np.array(["a"])), "dtype"),
    (lambda: quantize(np.array([1e-38, 0.0])), "max|r| too small"),
    (lambda: quantize(np.ones((2, 2)), granularity="col"), "granularity"),
    (lambda: quantize(np.ones((2, 2)), granularity="block"), "block must be"),
    (lambda: QTensor(np.array([1.5]), np.float32(1), 8), "QTensor.values must be an integer array"),
    (lambda: QTensor(np.array([128]), np.float32(1), 8), "QTensor.values[(0,)] = 128"),
    (lambda: QTensor(np.array([1]), np.float32(np.nan), 8), "QTensor.scale"),
    (lambda: QTensor(np.array([1]), np.float32(0), 8), "QTensor.scale"),
    (lambda: QTensor(np.ones((2, 3), np.int64), np.ones((3, 1)), 8), "QTensor.scale shape"),
    (lambda: rescale(np.ones(3)), "x must be a QTensor"),
    (lambda: rescale(QTensor(np.array([1]), 1.0, 8), mode="log"), "mode must be"),
    (lambda: match_scales([QTensor(np.ones(2, np.int64), 1.0, 8), QTensor(np.ones((2, 2), np.int64), 1.0, 8)]),
     "equal ndim"),
    (lambda: match_along(QTensor(np.ones(2, np.int64), 1.0, 8), 3), "axis 3"),
    (lambda: round_div(1, 1, "up"), "rounding must be"),
])
def test_bad_input_one_line(call, needle):
    with pytest.raises(ValueError) as exc:
        call()
    assert needle in str(exc.value) and "\n" not in str(exc.value)
