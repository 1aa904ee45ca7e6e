"""Compiled kernels (golden/kernels.py) against the numpy reference they reproduce: same values, same scales, same
scale shapes, on random tensors chosen to reach every branch (equal and unequal scales, constant and fully masked
rows, zero rows) and on the committed model end to end; bad results fall back to the numpy path's errors."""
from __future__ import annotations

import numpy as np
import pytest

from itx.golden import kernels
from itx.golden.int_config import IntConfig
from itx.golden.int_model import IntTransformer, split_heads
from itx.golden.model import MODELS, greedy_search, load
from itx.golden.ops import transpose
from itx.golden.qtensor import QTensor
from itx.golden.tflite import TFLITE_MODES

pytest.importorskip("numba", reason="golden/kernels.py needs numba (the fast extra)")


pytestmark = pytest.mark.usefixtures("one_blas_thread")


@pytest.fixture(scope="module")
def model():
    if not (MODELS / "integer" / "weights.npz").is_file():
        pytest.skip("models/integer not exported yet")
    return load(MODELS / "integer")


@pytest.fixture(autouse=True)
def taken(monkeypatch):
    """Names of the kernels that ran and returned a result (not None, the numpy fallback) in this test."""
    names = []
    for name in ("linear", "residual", "l1_layernorm", "poly_probs", "context"):
        def wrapped(*args, _fn=getattr(kernels, name), _name=name):
            out = _fn(*args)
            if out is not None:
                names.append(_name)
            return out
        monkeypatch.setattr(kernels, name, wrapped)
    return names


def pair(m: IntTransformer, method: str, *args):
    """(numpy reference, kernels) results of m.method(*args)."""
    assert m.kernels
    m.kernels = False
    try:
        want = getattr(m, method)(*args)
    finally:
        m.kernels = True
    return want, getattr(m, method)(*args)


def same(want: QTensor, got: QTensor) -> None:
    assert got.bits == want.bits and got.scale.shape == want.scale.shape
    np.testing.assert_array_equal(got.values, want.values)
    np.testing.assert_array_equal(got.scale, want.scale)


def activation(rng, shape, spread: float = 6.0, zero_rows: int = 1, bits: int = 8) -> QTensor:
    """Random `bits` values, one scale per row spread over 10^+-spread/2 (so matching goes both ways), some zero rows."""
    q = (1 << (bits - 1)) - 1
    values = rng.integers(-q, q + 1, shape)
    values.reshape(-1, shape[-1])[:zero_rows] = 0
    scale = (10.0 ** rng.uniform(-spread / 2, spread / 2, shape[:-1] + (1,))).astype(np.float32)
    return QTensor(values, scale, bits)


def test_enabled_only_for_the_knobs_the_kernels_implement(monkeypatch):
    assert kernels.enabled(IntConfig()) and kernels.enabled(IntConfig(bits=6, acc_bits=16, overflow="saturate"))
    for knob in ({"match": "paper"}, {"rescale": "pow2"}, {"rounding": "floor"}, {"granularity": "batch"},
                 {"match": "tflite"}, {"match": "tflite_single", "rescale": "tflite_single"}):
        assert not kernels.enabled(IntConfig(**knob))
    assert all(kernels.enabled(IntConfig(rescale=mode)) for mode in TFLITE_MODES)
    with monkeypatch.context() as mp:
        mp.setattr(kernels, "numba", None)   # not installed: the numpy reference runs
        assert not kernels.enabled(IntConfig())
    monkeypatch.setenv("ITX_KERNELS", "0")
    assert not kernels.enabled(IntConfig())


@pytest.mark.parametrize("bits", [6, 8, 10])
def test_linear_residual_norm_equal_numpy(model, bits, taken):
    rng = np.random.default_rng(bits)
    m = IntTransformer(*model, IntConfig(bits=bits))
    for shape in ((3, 5, 256), (7, 1, 256)):
        x = activation(rng, shape, bits=bits)
        for name in ("enc.0.self_attn.q", "dec.1.ffn.w1"):
            same(*pair(m, "linear", name, x))
        same(*pair(m, "residual", "enc.0.res1", x, activation(rng, shape, bits=bits)))
        same(*pair(m, "residual", "enc.0.res1", x, x))   # equal scales: factor 1
        const = QTensor(np.repeat(x.values[..., :1], 256, -1), x.scale, bits)   # sum|x - mu| = 0: output 0
        for t in (x, const):
            same(*pair(m, "norm", "dec.0.ln2", t))
    wide = activation(rng, (2, 3, 512), bits=bits)
    same(*pair(m, "linear", "enc.2.ffn.w2", wide))
    assert taken == ["linear", "linear", "residual", "residual", "l1_layernorm", "l1_layernorm"] * 2 + ["linear"]


@pytest.mark.parametrize("acc_bits,overflow", [(16, "saturate"), (16, "wrap"), (32, "saturate")])
def test_poly_attention_equals_numpy(model, acc_bits, overflow, taken):
    rng = np.random.default_rng(acc_bits)
    m = IntTransformer(*model, IntConfig(acc_bits=acc_bits, overflow=overflow))
    b, tq, tk, h = 3, 4, 9, model[0].n_heads
    q = split_heads(activation(rng, (b, tq, 256), spread=2), h)
    k = split_heads(activation(rng, (b, tk, 256), spread=2), h)
    v = split_heads(activation(rng, (b, tk, 256), spread=2), h)
    mask = rng.random((b, 1, 1, tk)) < 0.7
    mask[0] = False              # a fully masked sentence: den = 0, output 0
    causal = np.tril(np.ones((tq, tk), bool))[None, None]
    for mk in (mask, causal, None):
        same(*pair(m, "poly_attention", "dec.0.self_attn", q, transpose(k), v, mk))
    assert taken == ["poly_probs", "context"] * 3


@pytest.mark.parametrize("rescale", TFLITE_MODES)
def test_tflite_rescale_equals_numpy(model, rescale, taken):
    """The TFLite Eq. 10 modes in the linear and residual kernels: random rows (both matching directions, zero rows,
    equal scales, 6 and 8 bits), then teacher-forced logits and every emitted tensor of the committed model."""
    rng = np.random.default_rng(14)
    for bits in (6, 8):
        m = IntTransformer(*model, IntConfig(bits=bits, rescale=rescale))
        for shape in ((3, 5, 256), (7, 1, 256)):
            x = activation(rng, shape, bits=bits)
            for name in ("enc.0.self_attn.q", "dec.1.ffn.w1"):
                same(*pair(m, "linear", name, x))
            same(*pair(m, "residual", "enc.0.res1", x, activation(rng, shape, bits=bits)))
            same(*pair(m, "residual", "enc.0.res1", x, x))
        same(*pair(m, "linear", "enc.2.ffn.w2", activation(rng, (2, 3, 512), bits=bits)))
    assert taken == (["linear", "linear", "residual", "residual"] * 2 + ["linear"]) * 2
    src, tgt = np.array([[5, 17, 33, 9, 3]]), np.array([[2, 40, 7, 81]])
    runs = []
    for on in (False, True):
        seen = []
        m = IntTransformer(*model, IntConfig(rescale=rescale),
                           hook=lambda n, x: seen.append((n, x.values.copy(), x.scale.copy()))
                           if isinstance(x, QTensor) else None)
        m.kernels = on
        runs.append((m.logits(src, tgt), seen))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert [e[0] for e in runs[0][1]] == [e[0] for e in runs[1][1]] and len(runs[0][1]) > 50
    for a, c in zip(runs[0][1], runs[1][1]):
        assert all(np.array_equal(u, w) for u, w in zip(a[1:], c[1:])), a[0]


def test_committed_model_end_to_end(model, taken):
    """Greedy outputs, teacher-forced logits and every emitted tensor of every step are identical with and without
    the kernels, for configs where they engage (incl. only some modules integer)."""
    from itx.golden.model import pad_batch
    from itx.golden.tokenizer import Tokenizer
    from itx import data
    tok = Tokenizer()
    rows = data.read_tsv(data.split_path("test", "en-fr"))[:4]
    srcs = [tok.encode_source(r[2], "fr") for r in rows]
    tgt = pad_batch([[2] + tok.encode_target(r[3])[:-1] for r in rows])
    for icfg in (IntConfig(), IntConfig(bits=6), IntConfig(modules=frozenset({"emb", "attn", "ffn", "res"}))):
        runs = []
        for on in (False, True):
            seen = []
            m = IntTransformer(*model, icfg, hook=lambda n, x: seen.append((n, x.values.copy(), x.scale.copy())
                                                                           if isinstance(x, QTensor) else (n, x)))
            m.kernels = on
            runs.append((greedy_search(m, srcs), m.logits(pad_batch(srcs), tgt), seen))
        (g0, l0, s0), (g1, l1, s1) = runs
        assert g0 == g1
        np.testing.assert_array_equal(l0, l1)
        assert [e[0] for e in s0] == [e[0] for e in s1] and len(s0) > 100
        for a, c in zip(s0, s1):
            for u, w in zip(a[1:], c[1:]):
                assert u.shape == w.shape and np.array_equal(u, w), a[0]
    assert set(taken) == {"linear", "residual", "l1_layernorm", "poly_probs", "context"}


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_narrow_accumulator_wraps_or_saturates_like_numpy(model, overflow, taken):
    """acc_bits = 16: the bias add, LayerNorm's sums, x - mu, quotient and products leave the accumulator; the kernels
    wrap or saturate them exactly like itx.golden.config.to_accumulator in the numpy path."""
    rng = np.random.default_rng(5)
    m = IntTransformer(*model, IntConfig(acc_bits=16, overflow=overflow))
    acc = QTensor(rng.integers(2**15 - 400, 2**15, (2, 3, 256)), np.full((2, 3, 1), 0.25, np.float32), 16)
    m.q["enc.0.ffn.w1.b"] = QTensor(np.full(256, 30000), np.ones(1, np.float32), 16)
    m.matmul = lambda *a, **k: acc
    same(*pair(m, "linear", "enc.0.ffn.w1", acc))
    wide = QTensor(rng.integers(-2**15, 2**15, (2, 3, 256)), np.full((2, 3, 1), 0.5, np.float32), 16)
    same(*pair(m, "norm", "dec.0.ln2", wide))
    assert taken == ["linear", "l1_layernorm"]


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_context_long_rows_at_16_bits_like_numpy(overflow, taken):
    """kernels.context at acc_bits 16: 300 keys of P in 100..127 make sum P leave the accumulator, one-key rows make
    the quotient leave it; both wrapped or saturated exactly like itx.golden.attention.attention_output."""
    from itx.golden.attention import attention_output
    from itx.golden.config import to_accumulator
    rng = np.random.default_rng(2)
    icfg = IntConfig(acc_bits=16, overflow=overflow)
    p = np.zeros((1, 2, 3, 300), np.int64)
    p[:, :, :2] = rng.integers(100, 128, (1, 2, 2, 300))
    p[:, :, 2, 0] = 100
    num = rng.integers(-(1 << 15), 1 << 15, (1, 2, 3, 4))
    num[:, :, 2] = 20000
    den = p.sum(axis=-1)
    assert (den != to_accumulator(den, 16, overflow)).any()
    pq = QTensor(p, np.ones((1, 2, 3, 1), np.float32), 8)
    v = QTensor(np.zeros((1, 2, 300, 4), np.int64), np.full((1, 2, 1, 1), 0.5, np.float32), 8)
    nq = QTensor(num, np.ones((1, 2, 3, 1), np.float32), 16)
    want = attention_output(nq, pq, v.scale, 8, icfg.bits, icfg.rescale, icfg.rounding, 16, overflow)
    same(want, kernels.context(nq, pq, v, 8, icfg))
    assert taken == ["context"]


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_poly_probs_scores_plus_b_at_16_bits_like_numpy(overflow, taken):
    """kernels.poly_probs at acc_bits 16: scores near 2^15 plus b = 30000 leave the accumulator before ReLU; wrapped
    or saturated exactly like itx.golden.attention.poly (then Eq. 10 per row), as IntTransformer.poly_attention runs it."""
    from itx.golden.attention import poly
    from itx.golden.config import to_accumulator
    from itx.golden.quant import match_along, rescale
    rng = np.random.default_rng(4)
    c = IntConfig(acc_bits=16, overflow=overflow)
    x = rng.integers(1 << 14, 1 << 15, (1, 2, 3, 5))
    scores = QTensor(x, np.full((1, 2, 3, 1), 4.0, np.float32), 16)
    b = QTensor(np.full((2, 1, 1), 30000), np.float32(4.0), 16)
    delta = QTensor(np.full((2, 1, 1), 3), np.float32(4.0), 16)
    assert (x + 30000 != to_accumulator(x + 30000, 16, overflow)).any()
    want = rescale(poly(match_along(scores, -1, c.match, c.rounding), b, delta, 3, c.bits, None, c.match, c.rounding,
                        c.rescale, 16, overflow), c.bits, "row", c.rescale, None, c.rounding)
    same(want, kernels.poly_probs(scores, b, delta, 3, None, c))
    assert taken == ["poly_probs"]
