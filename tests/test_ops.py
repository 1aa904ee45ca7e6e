"""Table 1 ops vs the pure-Python-int reference; tolerance 0."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import int_reference as ref
from itx.golden.ops import absolute, add, concat, matmul, mul, power, relu, transpose
from itx.golden.qtensor import QTensor

N = 1000
EDGE8 = [0, 1, -1, 2, -2, 3, 63, 64, 65, -63, -64, -65, 127, -127, -128]
int8 = st.one_of(st.sampled_from(EDGE8), st.integers(-128, 127))
scale = st.sampled_from([np.float32(v) for v in (1.0, 0.5, 3.0, 127.0, 42.333332, 2.0**-10)])


@st.composite
def qt(draw, shape, row_scales=False):
    v = np.array(draw(st.lists(int8, min_size=shape[0] * shape[1], max_size=shape[0] * shape[1])),
                 np.int64).reshape(shape)
    s = np.array([draw(scale) for _ in range(shape[0])], np.float32).reshape(-1, 1) if row_scales \
        else np.float32(draw(scale)).reshape(1, 1)
    return QTensor(v, s, 8)


shapes = st.tuples(st.integers(1, 3), st.integers(1, 4))


@settings(max_examples=N)
@given(st.data(), shapes)
def test_mul(data, shape):
    a, b = data.draw(qt(shape, True)), data.draw(qt(shape))
    out = mul(a, b)
    for i, j in np.ndindex(*shape):
        assert out.values[i, j] == int(a.values[i, j]) * int(b.values[i, j]), (i, j)
        assert np.broadcast_to(out.scale, shape)[i, j] == a.scale[i, 0] * b.scale[0, 0]


@settings(max_examples=N)
@given(st.data(), shapes, st.sampled_from(["paper", "dyadic"]))
def test_add(data, shape, mode):
    a, b = data.draw(qt(shape, True)), data.draw(qt(shape))
    out = add(a, b, mode)
    for i, j in np.ndindex(*shape):
        s = min(a.scale[i, 0], b.scale[0, 0])
        want = ref.match_one(int(a.values[i, j]), a.scale[i, 0], s, mode) + \
            ref.match_one(int(b.values[i, j]), b.scale[0, 0], s, mode)
        assert (out.values[i, j], out.scale[i, 0]) == (want, s), (i, j)


@settings(max_examples=N)
@given(st.data(), st.integers(1, 3), st.integers(1, 5), st.integers(1, 3), st.sampled_from(["paper", "dyadic"]),
       st.sampled_from([(32, "wrap"), (16, "wrap"), (16, "saturate")]))
def test_matmul(data, m, k, n, mode, acc):
    a = data.draw(qt((m, k), True))
    bt = data.draw(qt((n, k), True))           # b = bt^T: per-column scales, row scales of bt
    out = matmul(a, transpose(bt), mode, acc_bits=acc[0], overflow=acc[1])
    want = ref.gemm(a.values.tolist(), bt.values.T.tolist(), *acc)
    assert out.values.tolist() == want
    assert out.scale.shape == (m, n)
    for i, j in np.ndindex(m, n):
        assert out.scale[i, j] == a.scale[i, 0] * bt.scale[j, 0]


def test_matmul_matches_along_k_and_batches():
    a = QTensor(np.array([[[100, -100], [7, 8]]] * 2), np.array([[[2.0, 3.0]]] * 2, np.float32), 8)
    b = QTensor(np.array([[[1], [1]]]), np.float32(1.0), 8)
    out = matmul(a, b, "paper")
    # K scales (2, 3) matched to 2: column 1 divided by ceil(3/2) = 2
    assert out.values.tolist() == [[[50], [11]]] * 2 and out.scale.shape == (2, 1, 1)


def test_matmul_largest_k_saturates_and_wraps():
    k = 4096
    a = QTensor(np.full((1, k), 127), np.float32(1), 8)
    b = QTensor(np.full((k, 1), 127), np.float32(1), 8)
    assert matmul(a, b, acc_bits=16, overflow="saturate").values[0, 0] == 2**15 - 1
    assert matmul(a, b, acc_bits=32, overflow="wrap").values[0, 0] == 127 * 127 * k


EDGE16 = [0, 1, -1, 2**15 - 1, -(2**15), 2**14, -(2**14), 2**15 - 2, 12345, -12345]
int16 = st.one_of(st.sampled_from(EDGE16), st.integers(-(2**15), 2**15 - 1))


@settings(max_examples=N)
@given(st.lists(st.tuples(int16, int16), min_size=1, max_size=6), st.sampled_from(["wrap", "saturate"]),
       st.sampled_from([16, 17, 24]))
def test_element_wise_ops_live_in_the_accumulator(pairs, overflow, acc_bits):
    """acc_bits / overflow reach every element-wise op: 16-bit + 16-bit in a 16-bit accumulator wraps or saturates
    (a 17-bit value is never labelled as fitting), as do products, powers and |x|."""
    a = QTensor(np.array([[x for x, _ in pairs]]), np.float32(2.0), 16)
    b = QTensor(np.array([[y for _, y in pairs]]), np.float32(2.0), 16)
    acc = (acc_bits, overflow)
    got = {"add": add(a, b, "dyadic", "half_away", *acc), "mul": mul(a, b, *acc), "power": power(a, 3, *acc),
           "absolute": absolute(a, *acc)}
    want = {"add": [x + y for x, y in pairs], "mul": [x * y for x, y in pairs], "power": [x ** 3 for x, _ in pairs],
            "absolute": [abs(x) for x, _ in pairs]}
    for op, out in got.items():
        assert out.bits == acc_bits, op
        assert out.values[0].tolist() == [ref.to_acc(v, *acc) for v in want[op]], op


@settings(max_examples=N)
@given(st.data(), shapes, st.integers(1, 4))
def test_power_abs_relu(data, shape, n):
    x = data.draw(qt(shape, True))
    p, a, r = power(x, n), absolute(x), relu(x)
    for i, j in np.ndindex(*shape):
        v = int(x.values[i, j])
        assert (p.values[i, j], a.values[i, j], r.values[i, j]) == (v ** n, abs(v), max(v, 0)), (i, j)
    s = x.scale[:, 0]
    want = s
    for _ in range(n - 1):
        want = want * s
    assert p.scale[:, 0].tolist() == want.tolist() and np.array_equal(a.scale, x.scale) and r.bits == 8


@settings(max_examples=N)
@given(st.data(), shapes, shapes)
def test_concat_transpose(data, sa, sb):
    a, b = data.draw(qt(sa, True)), data.draw(qt((sa[0], sb[1])))
    c = concat([a, b], axis=-1)
    assert c.values.tolist() == [ra + rb for ra, rb in zip(a.values.tolist(), b.values.tolist())]
    assert np.array_equal(c.dequantize(), np.concatenate([a.dequantize(), b.dequantize()], -1))
    t = transpose(c)
    assert t.values.tolist() == [list(col) for col in zip(*c.values.tolist())]
    assert np.array_equal(t.dequantize(), c.dequantize().T)


@pytest.mark.parametrize("call,needle", [
    (lambda: mul(QTensor(np.ones((1, 2), np.int64), 1.0, 8), np.ones((1, 2))), "b must be a QTensor"),
    (lambda: mul(QTensor(np.ones((1, 2), np.int64), 1.0, 8), QTensor(np.ones((1, 3), np.int64), 1.0, 8)),
     "do not broadcast"),
    (lambda: matmul(QTensor(np.ones((2, 3), np.int64), 1.0, 8), QTensor(np.ones((2, 3), np.int64), 1.0, 8)),
     "a.shape[-1] == b.shape[-2]"),
    (lambda: matmul(QTensor(np.ones((2, 2), np.int64), 1.0, 8), QTensor(np.ones((2, 2), np.int64), 1.0, 8),
                    overflow="clip"), "overflow must be"),
    (lambda: matmul(QTensor(np.ones((2, 2), np.int64), 1.0, 8), QTensor(np.ones((2, 2), np.int64), 1.0, 8),
                    acc_bits=40), "acc_bits must be"),
    (lambda: power(QTensor(np.array([2**21]), 1.0, 32), 3), "power: max|x|^3"),
    (lambda: power(QTensor(np.array([2]), 1.0, 8), 0), "n must be"),
    (lambda: mul(QTensor(np.array([1]), 1e30, 8), QTensor(np.array([1]), 1e30, 8)), "mul: result scale"),
    (lambda: concat([QTensor(np.ones((2, 2), np.int64), 1.0, 8), QTensor(np.ones((3, 3), np.int64), 1.0, 8)]),
     "concat"),
    (lambda: transpose(QTensor(np.ones(2, np.int64), 1.0, 8)), "transpose: x needs ndim >= 2"),
])
def test_bad_input_one_line(call, needle):
    with pytest.raises(ValueError) as exc:
        call()
    assert needle in str(exc.value) and "\n" not in str(exc.value)
