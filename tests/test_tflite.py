"""TFLite / gemmlowp re-scaling (golden/tflite.py, the tflite modes of itx.golden.quant) against the pure-Python-int
reference written from the libraries' definitions (tests/int_reference.py): gemmlowp's edge values (2^i + {-2..2}
of both signs, the INT32 extremes, ties), every shift, >= 1e5 random values per primitive; tolerance 0."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import int_reference as ref
from itx.golden.qtensor import QTensor, qmax
from itx.golden.quant import match_scales, quantize_multiplier, rescale, tflite_rescale_multiplier
from itx.golden.tflite import (INT32_MAX, INT32_MIN, TFLITE_MODES, multiply_by_quantized_multiplier,
                           rounding_divide_by_pot, saturating_rounding_doubling_high_mul)

EDGE32 = sorted({v for i in range(32) for o in (-2, -1, 0, 1, 2) for s in (1, -1)
                 if INT32_MIN <= (v := s * (2 ** i + o)) <= INT32_MAX} | {0, INT32_MIN, INT32_MAX, INT32_MIN + 1})
MULTIPLIERS = [0, 1, 2 ** 30, 2 ** 30 + 1, 2 ** 30 + 2 ** 29, 1518500250, 2 ** 31 - 2, INT32_MAX]
RNG_N = 100_000


def check(got: np.ndarray, want, what: str, *args) -> None:
    want = np.array(want, dtype=np.int64).reshape(got.shape)
    bad = np.argwhere(got != want)
    assert not bad.size, (f"{what}{tuple(int(i) for i in bad[0])} ({', '.join(str(a[tuple(bad[0])]) for a in args)}): "
                          f"expected {want[tuple(bad[0])]}, got {got[tuple(bad[0])]} [{len(bad)} differ]")


def test_srdhm_edge_pairs():
    """Every pair of edge values (INT32_MIN * INT32_MIN saturates), and ties: ab = (2k + 1) 2^30 either sign."""
    a, b = np.meshgrid(np.array(EDGE32), np.array(EDGE32 + MULTIPLIERS), indexing="ij")
    got = saturating_rounding_doubling_high_mul(a, b)
    check(got, [ref.srdhm(int(x), int(y)) for x, y in zip(a.ravel(), b.ravel())], "srdhm", a, b)
    assert saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN) == INT32_MAX
    ties = np.array([1, 3, 5, -1, -3, -5, 2 ** 20 + 1])
    t = saturating_rounding_doubling_high_mul(ties, 2 ** 30)     # ab / 2^31 = k + 1/2: up, toward +infinity
    assert t.tolist() == [ref.srdhm(int(v), 2 ** 30) for v in ties] == [1, 2, 3, 0, -1, -2, 2 ** 19 + 1]


def test_rdbpot_every_exponent():
    """Every exponent 0..31 on the edge values and on the ties k 2^e +- 2^(e-1) of both signs and their neighbours."""
    e = np.arange(32).reshape(-1, 1)
    k = np.arange(-3, 4)
    half = (1 << e) >> 1
    ties = np.concatenate([(k << e) + half, (k << e) - half, (k << e) + half + 1, (k << e) - half - 1], axis=1)
    x = np.concatenate([np.broadcast_to(np.array(EDGE32), (32, len(EDGE32))), np.clip(ties, INT32_MIN, INT32_MAX)],
                       axis=1)
    got = rounding_divide_by_pot(x, e)
    check(got, [ref.rounding_divide_by_pot(int(v), i) for i, row in enumerate(x) for v in row], "rdbpot", x)


@pytest.mark.parametrize("single", [False, True], ids=["double", "single"])
def test_multiply_by_quantized_multiplier_edges(single):
    """Edge x, edge multipliers, every shift -31..1 (right shifts 0..31, and the exact ratio-1 left shift)."""
    x, m, shift = np.meshgrid(np.array(EDGE32), np.array(MULTIPLIERS), np.arange(-31, 2), indexing="ij")
    got = multiply_by_quantized_multiplier(x, m, shift, single)
    check(got, [ref.multiply_by_quantized_multiplier(int(a), int(b), int(c), single)
                for a, b, c in zip(x.ravel(), m.ravel(), shift.ravel())], "mbqm", x, m, shift)


@pytest.mark.parametrize("single", [False, True], ids=["double", "single"])
def test_multiply_by_quantized_multiplier_random(single):
    """1e5 random int32 x (mixed magnitudes), Q31 multipliers in [2^30, 2^31) and shifts -31..0."""
    rng = np.random.default_rng(14 + single)
    x = rng.integers(INT32_MIN, INT32_MAX, RNG_N, endpoint=True) >> rng.integers(0, 32, RNG_N)
    m, shift = rng.integers(2 ** 30, 2 ** 31, RNG_N), rng.integers(-31, 1, RNG_N)
    got = multiply_by_quantized_multiplier(x, m, shift, single)
    check(got, [ref.multiply_by_quantized_multiplier(a, b, c, single)
                for a, b, c in zip(x.tolist(), m.tolist(), shift.tolist())], "mbqm", x, m, shift)
    h = saturating_rounding_doubling_high_mul(x, m)
    check(h, [ref.srdhm(a, b) for a, b in zip(x.tolist(), m.tolist())], "srdhm", x, m)


def test_quantize_multiplier():
    """Random reals over 2^-40..2^0, powers of two, the 2^31 carry (q within 2^-32 below 1), the shift < -31 flush
    (reals below ~2^-32) and its border, against frexp + half-away round of the reference."""
    rng = np.random.default_rng(5)
    reals = np.r_[np.exp2(rng.uniform(-40, 0, 20_000)), np.exp2(np.arange(-40.0, 1)), 1 - 2.0 ** -40, 0.5 - 2.0 ** -45,
                  2.0 ** -20 * (1 - 2.0 ** -33), 2.0 ** -32, 2.0 ** -32 * (1 - 2.0 ** -33), 2.0 ** -33,
                  2.0 ** -31 * (1 - 2.0 ** -40), 127 / 128, 127 / 2 ** 31, 1 / 3, 2 ** -31 * 1.5]
    m, shift = quantize_multiplier(reals)
    want = [ref.quantize_multiplier(r) for r in reals.tolist()]
    check(m, [w[0] for w in want], "m", reals)
    check(shift, [w[1] for w in want], "shift", reals)
    assert ref.quantize_multiplier(1 - 2.0 ** -40) == (2 ** 30, 1)       # the carry
    assert ref.quantize_multiplier(2.0 ** -33) == (0, 0)                  # flushed
    assert ((m == 0) | ((m >= 2 ** 30) & (m < 2 ** 31))).all()


@pytest.mark.parametrize("mode", TFLITE_MODES)
@pytest.mark.parametrize("bits", [2, 6, 8, 10, 16])
def test_rescale_maps_the_group_max_to_qmax(mode, bits):
    """Eq. 10 in a tflite mode maps each re-scaled group's max|x| to exactly +-qmax (never beyond: no clamp needed,
    SPEC.md), keeps groups that fit, and equals the reference for the accumulator's extremes and qmax + 1."""
    q = qmax(bits)
    rows = [[q, -q, 0], [q + 1, -3, 2], [-(q + 1), 5, q], [INT32_MIN, 1, -1], [INT32_MAX, -7, 3], [0, 0, 0],
            [3 * q + 1, -(3 * q + 1), 3 * q // 2], [2 ** 20 + 1, -(2 ** 20), 2 ** 19]]
    rng = np.random.default_rng(bits)
    big = rng.integers(q + 1, 2 ** 31, 200)
    rows += [[int(b), -int(b) + 1, int(v)] for b, v in zip(big, rng.integers(-(2 ** 31) + 1, 2 ** 31, 200) % big)]
    x = np.array(rows, dtype=np.int64)
    y = rescale(QTensor(x, np.float32(3.0), 32), bits, "row", mode)
    for i, row in enumerate(rows):
        want, factor = ref.rescale_group(row, bits, mode)
        assert y.values[i].tolist() == want, (i, row)
        assert y.scale[i, 0] == np.float32(3.0 * float(factor)), (i, row)
    amax = np.abs(x).max(axis=1)
    assert (np.abs(y.values).max(axis=1) == np.where(amax > q, q, amax)).all()


def test_fitting_groups_get_the_exact_unit_multiplier():
    """qmax / max|x| is taken only where max|x| > qmax; elsewhere QuantizeMultiplier(1.0) = (2^30, 1), exactly 1."""
    m, shift = tflite_rescale_multiplier(np.array([[127, -3], [128, 0], [0, 0]]), 8)
    assert m.ravel().tolist() == [2 ** 30, ref.quantize_multiplier(127 / 128)[0], 2 ** 30]
    assert shift.ravel().tolist() == [1, 0, 1]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(EDGE32) | st.integers(INT32_MIN, INT32_MAX), min_size=1, max_size=6),
       st.floats(float(np.float32(1e-6)), 1e6, width=32), st.floats(float(np.float32(1e-6)), 1e6, width=32),
       st.sampled_from(TFLITE_MODES))
def test_match_scales_tflite(xs, sa, sb, mode):
    """Eq. 8 in a tflite mode: both tensors to s_min by QuantizeMultiplier(s_min / s_i) (also ratio 1: exact)."""
    a = QTensor(np.array([xs]), np.float32(sa), 32)
    b = QTensor(np.array([xs[::-1]]), np.array([[sb]], np.float32), 32)
    ma, mb = match_scales([a, b], mode)
    s_min = min(np.float32(sa), np.float32(sb))
    assert ma.scale[0, 0] == mb.scale[0, 0] == s_min
    assert ma.values[0].tolist() == [ref.match_one(v, np.float32(sa), s_min, mode) for v in xs]
    assert mb.values[0].tolist() == [ref.match_one(v, np.float32(sb), s_min, mode) for v in xs[::-1]]


def test_the_modes_differ_as_specified():
    """Where the roundings part (x m 2^(shift - 31) exactly): SRDHM's and the single rounding's ties go up (toward
    +infinity), RoundingDivideByPOT's away from zero, and double rounding moves 0.375 to 1 (SRDHM 0.75 -> 1, then
    1/2 -> 1), which the single rounding and the dyadic mode give as 0."""
    three_q = 3 << 29                  # 0.75 in Q31
    cases = {(-5, 2 ** 30, 0): (-2, -2),      # -2.5: ties up in both
             (-3, 2 ** 30, -1): (-1, -1),     # -0.75: SRDHM(-3, 0.5) = -1.5 -> -1, then -1/2 -> -1 (away); single -1
             (-1, 2 ** 30, -1): (0, 0),       # -0.25
             (1, three_q, -1): (1, 0),        # 0.375: double rounding
             (-1, three_q, -1): (-1, 0),      # -0.375: SRDHM -0.75 -> -1, then -1/2 -> -1 (away); single 0
             (5, 2 ** 30, -1): (2, 1)}        # 1.25: SRDHM 2.5 -> 3, then 3/2 -> 2; single 1
    for (x, m, shift), want in cases.items():
        got = tuple(int(multiply_by_quantized_multiplier(x, m, shift, single)) for single in (False, True))
        assert got == want == tuple(ref.multiply_by_quantized_multiplier(x, m, shift, s) for s in (False, True)), \
            (x, m, shift)


def test_bad_shift_one_line():
    with pytest.raises(ValueError, match=r"shift must be in -31\.\.1, got 0\.\.2") as exc:
        multiply_by_quantized_multiplier(np.array([1, 2]), 2 ** 30, np.array([0, 2]))
    assert "\n" not in str(exc.value)
