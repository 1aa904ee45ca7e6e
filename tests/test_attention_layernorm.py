"""Polynomial attention (Eq. 11-12) and L1 LayerNorm (Eq. 13) vs pure-Python-int references (tolerance 0),
plus the numeric-quality bound of the dequantized result against the float formulas."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import int_reference as ref
from itx.golden.attention import attention_output, poly_attention
from itx.golden.layernorm import C_L1, l1_layernorm
from itx.golden.qtensor import QTensor
from itx.golden.quant import RESCALE_MODES, quantize

F32 = np.float32
N = 1000
int8 = st.one_of(st.sampled_from([0, 1, -1, 127, -127, -128, 64, -65]), st.integers(-128, 127))
scale = st.sampled_from([F32(v) for v in (1.0, 0.5, 3.0, 127.0, 42.333332, 2.0**-6)])


@st.composite
def rows(draw, r, c):
    v = [[draw(int8) for _ in range(c)] for _ in range(r)]
    return QTensor(np.array(v, np.int64), np.array([[draw(scale)] for _ in range(r)], F32), 8), v


def ref_rescale_rows(xs, scales, mode, bits=8):
    """Eq. 10 per row; scale s / s_hat (paper, pow2) or s m / 2^sh (dyadic), one float64 rounding to float32."""
    out = [ref.rescale_group(row, bits, mode) for row in xs]
    return [o[0] for o in out], [F32(float(s) / float(1 / o[1]) if o[1].numerator == 1 else float(s) * float(o[1]))
                                 for s, o in zip(scales, out)]


def ref_add_scalar(row, s_row, c, s_c, mode):
    s = min(s_row, s_c)
    return [ref.match_one(x, s_row, s, mode) + ref.match_one(c, s_c, s, mode) for x in row], s


def ref_poly_attention(q, sq, k, sk, v, sv, b, sb, dl, sd, n, f, mode, rmode, keep=None):
    """keep[i][j]: query i attends key j (None: all); a masked entry is 0 before the power and after |delta|."""
    d, rows_out = len(q[0]), []
    keep = keep or [[True] * len(k) for _ in q]
    x, s_x = [], []
    for i, qi in enumerate(q):
        sc = [F32(sq[i] * sk[j]) * F32(math.sqrt(d)) for j in range(len(k))]
        s_row = min(sc)
        row = [ref.match_one(sum(a * c for a, c in zip(qi, kj)), sc[j], s_row, mode) for j, kj in enumerate(k)]
        row, s_row = ref_add_scalar(row, s_row, b, sb, mode)
        x.append([max(e, 0) if kept else 0 for e, kept in zip(row, keep[i])])
        s_x.append(s_row)
    x, s_x = ref_rescale_rows(x, s_x, rmode)
    p, s_p = [], []
    for row, s, kept in zip(x, s_x, keep):
        sn = s
        for _ in range(n - 1):
            sn = sn * s
        row, s2 = ref_add_scalar([e ** n for e in row], sn, abs(dl), sd, mode)
        p.append([e if k else 0 for e, k in zip(row, kept)])
        s_p.append(s2)
    p, _ = ref_rescale_rows(p, s_p, rmode)
    sv_min = min(sv)
    vm = [[ref.match_one(e, sv[j], sv_min, mode) for e in vj] for j, vj in enumerate(v)]
    for row in p:
        den = sum(row)
        rows_out.append([ref.div(sum(w * vm[j][c] for j, w in enumerate(row)) << f, den) if den else 0
                         for c in range(len(v[0]))])
    return ref_rescale_rows(rows_out, [F32(sv_min * F32(1 << f))] * len(q), rmode)


@settings(max_examples=N)
@given(st.data(), st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.sampled_from(["paper", "dyadic"]), st.sampled_from(["paper", "fixed"]), st.sampled_from(RESCALE_MODES))
def test_poly_attention_vs_reference(data, tq, tk, d, n, mode, division, rmode):
    (q, qv), (k, kv), (v, vv) = data.draw(rows(tq, d)), data.draw(rows(tk, d)), data.draw(rows(tk, 2))
    (b, bv), (dl, dv) = data.draw(rows(1, 1)), data.draw(rows(1, 1))
    out = poly_attention(q, k, v, b, dl, n=n, division=division, frac_bits=4, mode=mode, rescale_mode=rmode)
    want, s_want = ref_poly_attention(qv, q.scale[:, 0], kv, k.scale[:, 0], vv, v.scale[:, 0], bv[0][0],
                                      b.scale[0, 0], dv[0][0], dl.scale[0, 0], n,
                                      4 if division == "fixed" else 0, mode, rmode)
    assert out.values.tolist() == want
    assert out.scale[:, 0].tolist() == [float(s) for s in s_want]


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_attention_output_16_bit_accumulator_vs_reference(overflow):
    """Eq. 12's quotient at acc_bits 16: row sums of P past 2^15 (300 keys of 100..127) and quotients past it
    (one key: num 2^f / sum P = v 2^f with |v| >= 200), each reduced where the reference reduces it; 16-bit output,
    so no re-scaling hides a difference."""
    rng = np.random.default_rng(1)
    f, sv = 8, F32(0.5)
    p = np.zeros((4, 300), np.int64)
    p[:2] = rng.integers(100, 128, (2, 300))
    p[2:, 0] = 100
    num = np.vstack([rng.integers(-(1 << 15), 1 << 15, (2, 3)), [[20000, -25000, 700]] * 2])

    def reference(acc_bits):
        def acc(v):
            return ref.to_acc(v, acc_bits, overflow)
        rows = []
        for prow, nrow in zip(p.tolist(), num.tolist()):
            den = acc(sum(prow))
            rows.append([acc(ref.div(v << f, den)) if den > 0 else 0 for v in nrow])
        return ref_rescale_rows(rows, [F32(sv * F32(1 << f))] * len(rows), "dyadic", 16)
    out = attention_output(QTensor(num, F32(1.0), 16), QTensor(p, F32(1.0), 8), np.full((1, 1), sv), f, bits=16,
                           rescale_mode="dyadic", acc_bits=16, overflow=overflow)
    want, s_want = reference(16)
    assert want != reference(40)[0]
    assert out.values.tolist() == want
    assert out.scale[:, 0].tolist() == [float(s) for s in s_want]


def ref_l1ln(x, s_x, g, s_g, b, s_b, f, division, mode, rmode, acc_bits=32, overflow="wrap", bits=8):
    """Eq. 13 per row, every sum, difference, quotient, product and add reduced to the accumulator."""
    def acc(v):
        return ref.to_acc(v, acc_bits, overflow)
    out, s_out = [], []
    for row, s in zip(x, s_x):
        n = len(row)
        mu = ref.div(acc(sum(row)), n)
        c = [acc(e - mu) for e in row]
        l1 = acc(sum(abs(e) for e in c))
        if division == "paper":
            mad = ref.div(l1, n)
            y = [acc(ref.div(e, mad)) if mad > 0 else 0 for e in c]
        else:
            y = [acc(ref.div((e * n) << f, l1)) if l1 > 0 else 0 for e in c]
        s_y = F32(C_L1 * F32(1 << f)) * s_g
        r, s2 = [], min(s_y, s_b)
        for e, gi, bi in zip(y, g, b):
            r.append(acc(ref.match_one(acc(e * gi), s_y, s2, mode) + ref.match_one(bi, s_b, s2, mode)))
        out.append(r)
        s_out.append(s2)
    return ref_rescale_rows(out, s_out, rmode, bits)


@settings(max_examples=N)
@given(st.data(), st.integers(1, 3), st.integers(1, 5), st.sampled_from(["paper", "dyadic"]),
       st.sampled_from(["paper", "fixed"]), st.sampled_from(RESCALE_MODES))
def test_l1_layernorm_vs_reference(data, r, n, mode, division, rmode):
    (x, xv), (g, gv), (b, bv) = data.draw(rows(r, n)), data.draw(rows(1, n)), data.draw(rows(1, n))
    out = l1_layernorm(x, g, b, division=division, frac_bits=5, mode=mode, rescale_mode=rmode)
    want, s_want = ref_l1ln(xv, x.scale[:, 0], gv[0], g.scale[0, 0], bv[0], b.scale[0, 0],
                            5 if division == "fixed" else 0, division, mode, rmode)
    assert out.values.tolist() == want
    assert out.scale[:, 0].tolist() == [float(s) for s in s_want]


def _narrow_case(n: int = 300):
    """16-bit rows that push each accumulator site of Eq. 13 past 16 bits: sum x (100..127), x - mu (+-2^15 - 1),
    sum|x - mu| (+-120), the quotient (a spike: (x - mu) n 2^F / sum|x - mu| = n 2^F, times g = -1 so saturation's
    asymmetry shows), g y (a few large deviations times g = 30) and + b (+-30000). g at scale 1 and b at y g's scale:
    no matching rounding hides a difference, nor does the 16-bit output."""
    j = np.arange(n)
    x = np.zeros((5, n), np.int64)
    x[0] = 100 + j % 28
    x[1] = np.where(j % 2, (1 << 15) - 1, -((1 << 15) - 1))
    x[1, :10] = -20000
    x[2] = np.where(j % 2, 120, -120)
    x[3, 0] = 100
    x[4, 1:11] = 50
    g = np.where(j % 3 == 0, -1, np.where(j % 3 == 1, 30, 2))
    b = np.where(j % 4 == 1, 30000, np.where(j % 4 == 3, -30000, 0))
    return x, g, b


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
@pytest.mark.parametrize("division", ["paper", "fixed"])
def test_l1_layernorm_16_bit_accumulator_vs_reference(overflow, division):
    """acc_bits 16: every site of Eq. 13 leaves the accumulator on some row and is reduced exactly where the
    reference reduces it (wrapped or saturated), tolerance 0; the result differs from a wide accumulator's."""
    f = 7 if division == "fixed" else 0
    xv, gv, bv = _narrow_case()
    s_x, s_g, s_b = F32(3.0), F32(1.0), F32(C_L1 * F32(1 << f))
    out = l1_layernorm(QTensor(xv, s_x, 16), QTensor(gv, s_g, 16), QTensor(bv, s_b, 16), bits=16, division=division,
                       frac_bits=f, mode="dyadic", rescale_mode="dyadic", acc_bits=16, overflow=overflow)

    def reference(acc_bits):
        return ref_l1ln(xv.tolist(), [s_x] * len(xv), gv.tolist(), s_g, bv.tolist(), s_b, f, division, "dyadic",
                        "dyadic", acc_bits, overflow, bits=16)
    want, s_want = reference(16)
    assert want != reference(40)[0]
    bad = np.argwhere(out.values != np.array(want))
    assert not bad.size, f"row {bad[0][0]}, index {bad[0][1]}: expected {want[bad[0][0]][bad[0][1]]}, got " \
                         f"{out.values[tuple(bad[0])]} ({len(bad)} differ)"
    assert out.scale[:, 0].tolist() == [float(s) for s in s_want]


def test_l1_layernorm_zero_bias_keeps_precision():
    """Public API: a zero bias quantizes to the all-zero scale quant.ZERO_SCALE, so matching it never becomes Eq. 8's
    s_min: the output is as close to the float formula as with a non-zero bias (scale 1 gave integer steps)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 64)) * 3 + 1
    g = rng.normal(size=64) * 0.2 + 1
    c = x - x.mean(-1, keepdims=True)
    want = g * c / (np.sqrt(np.pi / 2) * np.abs(c).mean(-1, keepdims=True))
    got = l1_layernorm(quantize(x, 8, "row"), quantize(g), quantize(np.zeros(64)), mode="dyadic")
    err = np.abs(got.dequantize() - want).max() / np.abs(want).max()
    assert err < 0.03, err


def test_l1_layernorm_constant_row_is_b():
    x = QTensor(np.full((1, 4), 37), F32(2.0), 8)
    g, b = quantize(np.ones(4)), quantize(np.array([0.5, -0.5, 0.25, 0.0]))
    assert np.allclose(l1_layernorm(x, g, b).dequantize(), [[0.5, -0.5, 0.25, 0.0]], atol=0.01)


def test_poly_attention_mask_contributes_zero():
    rng = np.random.default_rng(1)
    q, k, v = (quantize(rng.normal(size=s), 8, "row") for s in ((3, 4), (5, 4), (5, 2)))
    b, dl = quantize(np.array([[-0.1]])), quantize(np.array([[0.05]]))
    keep = np.tril(np.ones((3, 5), bool))
    keep[2] = False                                        # a fully masked row outputs exactly 0
    full = poly_attention(q, k, v, b, dl, mask=keep)
    # masked keys contribute nothing: changing their values (not their scales) leaves every output bit as it is
    v_masked = QTensor(np.where(np.arange(5)[:, None] >= 1, -v.values, v.values), v.scale, 8)
    keep_first = np.zeros((3, 5), bool)
    keep_first[:2, 0] = True
    assert full.values[2].tolist() == [0, 0]
    assert poly_attention(q, k, v, b, dl, mask=keep_first).values.tolist() == \
        poly_attention(q, k, v_masked, b, dl, mask=keep_first).values.tolist()
    # row 0 attends only key 0: the output is v[0] re-expressed (up to rounding)
    assert np.abs(full.dequantize()[0] - v.dequantize()[0]).max() < 0.05


def float_poly_attention(q, k, v, b, dl, n=3):
    p = np.maximum(q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1]) + b, 0) ** n + abs(dl)
    return p @ v / p.sum(-1, keepdims=True)


# Measured bounds (8 bits, dyadic matching, seed 0, 4 heads x 16 x 32): see SPEC.md "Numeric quality".
@pytest.mark.parametrize("division,bound", [("paper", 0.05), ("fixed", 0.05)])
def test_poly_attention_close_to_float(division, bound):
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(4, 16, 32)) for _ in range(3))
    got = poly_attention(*(quantize(t, 8, "row") for t in (q, k, v)), quantize(np.array([[[-0.1]]])),
                         quantize(np.array([[[0.05]]])), division=division, mode="dyadic").dequantize()
    err = np.abs(got - float_poly_attention(q, k, v, -0.1, 0.05)).max() / np.abs(v).max()
    assert err < bound, err


@pytest.mark.parametrize("division,bound", [("paper", 0.2), ("fixed", 0.03)])
def test_l1_layernorm_close_to_float(division, bound):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 64)) * 3 + 1
    g, b = rng.normal(size=64) * 0.2 + 1, rng.normal(size=64) * 0.1
    c = x - x.mean(-1, keepdims=True)
    want = g * c / (np.sqrt(np.pi / 2) * np.abs(c).mean(-1, keepdims=True)) + b
    got = l1_layernorm(quantize(x, 8, "row"), quantize(g), quantize(b), division=division, mode="dyadic")
    err = np.abs(got.dequantize() - want).max() / np.abs(want).max()
    assert err < bound, err


@pytest.mark.parametrize("call,needle", [
    (lambda q: poly_attention(q, q, q, q, q, division="exact"), "division must be"),
    (lambda q: poly_attention(q, q, q, q, q, mask=np.ones((2, 2))), "mask must be a bool"),
    (lambda q: poly_attention(q, q, q, q, q, mask=np.ones((3, 3), bool)), "mask shape"),
    (lambda q: poly_attention(q, q, q, q, q, division="fixed", frac_bits=40), "frac_bits must be"),
    (lambda q: poly_attention(q, QTensor(np.ones((2, 3), np.int64), 1.0, 8), q, q, q), "need matching d"),
    (lambda q: l1_layernorm(q, q, np.ones(2)), "b must be a QTensor"),
    (lambda q: l1_layernorm(q, QTensor(np.ones((1, 2, 2), np.int64), 1.0, 8), q), "g: ndim 3"),
])
def test_bad_input_one_line(call, needle):
    with pytest.raises(ValueError) as exc:
        call(QTensor(np.ones((2, 2), np.int64), 1.0, 8))
    assert needle in str(exc.value) and "\n" not in str(exc.value)
