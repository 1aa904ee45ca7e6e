"""Integer Transformer (golden/int_model.py): knobs, integer-only data path, determinism, vectors, BLEU."""
from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest

from itx.golden import int_model, ops
from itx.golden.capture import capture, write
from itx.golden.gemm import gemm
from itx.golden.int_config import MODULES, IntConfig, parse_modules
from itx.golden.int_model import IntTransformer, KVCache, QBatch, search_view
from itx.golden.model import MODELS, FP32Transformer, ModelConfig, beam_search, expected_shapes, greedy_search, load
from itx.golden.qcd_baseline import QCDTransformer, affine_qcd
from itx.golden.ops import concat
from itx.golden.qtensor import QTensor
from itx.golden.quant import MATCH_MODES, RESCALE_MODES, match_along
from itx.golden.vectors import read_manifest

import int_reference as ref

TINY = ModelConfig(arch="integer", vocab_size=40, d_model=16, n_heads=2, d_ff=24, enc_layers=1, dec_layers=1,
                   attention="poly", norm="l1", ln_eps=1e-6, max_len=32)


pytestmark = pytest.mark.usefixtures("one_blas_thread")


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(7)
    w = {k: (rng.standard_normal(s) * (0.3 if len(s) == 2 else 0.1)).astype(np.float32)
         for k, s in expected_shapes(TINY).items()}
    for k in w:
        if k.endswith(".g"):
            w[k] = 1 + w[k]
        if k.endswith("poly_b"):
            w[k] = np.ones_like(w[k])
    src = np.array([[5, 9, 11, 3, 0], [7, 8, 3, 0, 0]])
    tgt = np.array([[2, 12, 13], [2, 14, 3]])
    return w, src, tgt


@pytest.fixture(scope="module")
def committed():
    if not (MODELS / "integer" / "weights.npz").is_file():
        pytest.skip("models/integer not exported yet")
    from itx.golden.tokenizer import Tokenizer
    from itx import data
    tok = Tokenizer()
    rows = data.read_tsv(data.split_path("test", "en-de"))
    return load(MODELS / "integer"), tok, rows


KNOBS = list(itertools.product((6, 8, 10), ("row", "batch", "block"), MATCH_MODES, RESCALE_MODES))


@pytest.mark.parametrize("bits,granularity,match,rescale", KNOBS)
def test_every_knob_combination_runs(tiny, bits, granularity, match, rescale):
    w, src, tgt = tiny
    cfg = IntConfig(bits=bits, granularity=granularity, block=4, match=match, rescale=rescale)
    gemms = []
    model = IntTransformer(TINY, w, cfg, gemm_hook=lambda n, a, b, c: gemms.append((n, a, b)))
    logits = model.logits(src, tgt)
    assert logits.dtype == np.int64 and logits.shape == (2, 3, TINY.vocab_size)
    # every GEMM operand is a `bits`-bit integer: the activations really were re-scaled to the configured width
    assert all(np.abs(x).max() <= (1 << (bits - 1)) for _, a, b in gemms for x in (a, b))
    assert np.array_equal(logits, IntTransformer(TINY, w, cfg).logits(src, tgt))


@pytest.mark.parametrize("acc_bits,overflow", [(32, "wrap"), (32, "saturate"), (16, "wrap"), (16, "saturate"),
                                               (20, "wrap")])
def test_accumulator_width_and_overflow(tiny, acc_bits, overflow):
    w, src, tgt = tiny
    outs = []
    model = IntTransformer(TINY, w, IntConfig(acc_bits=acc_bits, overflow=overflow),
                           gemm_hook=lambda n, a, b, c: outs.append((n, a, b, c)))
    model.logits(src, tgt)
    assert len(outs) > 10
    for name, a, b, c in outs[:: max(1, len(outs) // 8)]:   # pure-Python ordered accumulation, a sample of GEMMs
        a2, b2 = a.reshape(-1, a.shape[-1])[:6], b if b.ndim == 2 else b.reshape(-1, *b.shape[-2:])[0]
        c2 = c.reshape(-1, c.shape[-1])[:6] if b.ndim == 2 else c.reshape(-1, *c.shape[-2:])[0][:6]
        a2 = a2 if b.ndim == 2 else a.reshape(-1, *a.shape[-2:])[0][:6]
        assert c2.tolist() == ref.gemm(a2.tolist(), b2.tolist(), acc_bits, overflow), name


@pytest.mark.parametrize("off", MODULES)
def test_each_module_can_run_fp32(tiny, off):
    w, src, tgt = tiny
    seen = {}
    IntTransformer(TINY, w, IntConfig(modules=frozenset(MODULES) - {off}), hook=seen).logits(src, tgt)
    kinds = {"emb": "enc.embed", "ln": "enc.0.ln1", "attn": "enc.0.self_attn", "ffn": "enc.0.ffn",
             "res": "enc.0.res1", "proj": "out_proj"}
    assert isinstance(seen[kinds["res" if off != "res" else "emb"]], QTensor)
    # a module in FP32 emits only its (quantized) output, none of its integer internals
    if off in ("attn", "ffn"):
        assert f"{kinds[off]}.{'q' if off == 'attn' else 'w1'}" not in seen
    if off == "proj":
        assert seen["out_proj"].dtype == np.float64


def test_only_one_layer_in_integers(tiny):
    w, src, tgt = tiny
    names = []
    IntTransformer(TINY, w, IntConfig(int_layers=("dec.0.ffn",)),
                   gemm_hook=lambda n, *_: names.append(n)).logits(src, tgt)
    assert names and all(n.startswith("dec.0.ffn") for n in names)
    names.clear()
    IntTransformer(TINY, w, IntConfig(fp32_layers=("enc.", "dec.0.self_attn")),
                   gemm_hook=lambda n, *_: names.append(n)).logits(src, tgt)
    assert "dec.0.ffn.w1" in names and not any(n.startswith(("enc.", "dec.0.self_attn")) for n in names)


def test_integer_path_has_no_float_op(tiny, monkeypatch):
    """With every module integer, no activation is ever (de)quantized and no FP32 module runs: values stay
    integer end to end (QTensor refuses float values), scales are bookkept beside them."""
    w, src, tgt = tiny
    model = IntTransformer(TINY, w)

    def boom(*a, **k):
        raise AssertionError("float op on the integer data path")
    monkeypatch.setattr(QTensor, "dequantize", boom)
    monkeypatch.setattr(int_model, "quantize", boom)
    for name in ("embedding", "norm", "attention", "ffn", "linear", "residual"):
        monkeypatch.setattr(FP32Transformer, name, boom)
    assert model.logits(src, tgt).dtype == np.int64
    assert greedy_search(model, [[5, 9, 3], [7, 3]])


def test_float_arrays_are_refused(tiny):
    w, src, tgt = tiny
    model = IntTransformer(TINY, w)
    with pytest.raises(ValueError, match="integer"):
        model.encode(src.astype(np.float32))
    mem, mask = model.encode(src)
    with pytest.raises(ValueError, match="mem must be a QTensor"):
        model.decode(tgt, mem.dequantize(), mask)
    with pytest.raises(ValueError, match="refuses floats"):
        QTensor(np.array([0.5]), np.array([1.0]), 8)
    with pytest.raises(ValueError, match="token ids"):
        model.encode(np.array([[5, TINY.vocab_size]]))


def test_batched_matmul_equals_golden_ops_matmul():
    rng = np.random.default_rng(1)
    a = QTensor(rng.integers(-127, 128, (2, 3, 5, 7)), rng.uniform(1, 50, (2, 1, 5, 1)).astype(np.float32), 8)
    b = QTensor(rng.integers(-127, 128, (2, 3, 7, 4)), rng.uniform(1, 50, (2, 3, 7, 1)).astype(np.float32), 8)
    model = IntTransformer.__new__(IntTransformer)
    model.icfg, model.gemm_hook = IntConfig(match="paper"), None
    mine, ref = model.matmul("x", a, b), ops.matmul(a, b, "paper")
    assert np.array_equal(mine.values, ref.values) and np.array_equal(mine.scale, ref.scale)


def test_integer_argmax_is_the_real_argmax(tiny):
    w, src, tgt = tiny
    seen = {}
    IntTransformer(TINY, w, hook=seen).logits(src, tgt)
    logits = seen["out_proj"]
    assert logits.scale.shape[-1] == 1   # one scale per row: integer order == real order
    assert np.array_equal(logits.values.argmax(-1), logits.dequantize().argmax(-1))


def test_beam_search_on_integer_model(tiny):
    w, _, _ = tiny
    model = IntTransformer(TINY, w)
    out = beam_search(search_view(model, 3), [[5, 9, 3], [7, 3]], beam=3)
    assert len(out) == 2 and all(isinstance(i, int) for y in out for i in y)
    q = QBatch(np.arange(6).reshape(2, 3), np.array([[1.0], [2.0]]), 8)
    assert np.array_equal(np.repeat(q, 2, 0)[np.array([3, 0])].values, [[3, 4, 5], [0, 1, 2]])



@pytest.mark.parametrize("match", ["paper", "dyadic"])
@pytest.mark.parametrize("scale_shape", [(3, 1, 0, 1), (3, 2, 0, 4)])   # row granularity / block granularity
def test_kv_cache_matches_the_whole_cache_at_every_step(match, scale_shape):
    """Growing K/V cache (incremental decoding): values == the concatenated steps and `matched` == match_along over
    the keys of them (and `f32` == its float copy), bit for bit, also across minimum-lowering steps, capacity growth
    and beam reordering."""
    rng = np.random.default_rng(3)

    def step(t):
        shape = scale_shape[:2] + (t,) + scale_shape[3:]
        return QTensor(rng.integers(-127, 128, (3, 2, t, 4)), rng.uniform(0.5, 8, shape).astype(np.float32), 8)

    steps = [step(2)]
    cache, keys = KVCache.start(steps[0], (match, "half_away")), KVCache.start(steps[0])
    for i in range(9):
        if i == 5:   # beam search's reordering of the sentences
            rows = np.array([2, 0, 0])
            cache, keys, steps = cache[rows], keys[rows], [QTensor(s.values[rows], s.scale[rows], 8) for s in steps]
        steps.append(step(1))
        cache, keys = cache.append(steps[-1]), keys.append(steps[-1])
        whole = concat(steps, 2)
        assert np.array_equal(keys.values, whole.values) and np.array_equal(keys.f32, whole.values.astype(np.float32))
        ref = match_along(whole, 2, match)
        assert np.array_equal(cache.values, whole.values) and np.array_equal(cache.scale, whole.scale)
        assert np.array_equal(cache.matched.values, ref.values), (i, np.argwhere(cache.matched.values != ref.values)[:3])
        assert np.array_equal(cache.matched.scale, ref.scale)
        assert np.array_equal(cache.f32, ref.values.astype(np.float32))     # the GEMM operand's float copy

def test_config_errors():
    with pytest.raises(ValueError, match="bits"):
        IntConfig(bits=5)
    with pytest.raises(ValueError, match="granularity"):
        IntConfig(granularity="tensor")
    with pytest.raises(ValueError, match="unknown module"):
        parse_modules("emb,softmax")
    assert parse_modules("none") == frozenset() and parse_modules("emb, ffn") == {"emb", "ffn"}
    with pytest.raises(ValueError, match="needs a model with poly"):
        IntTransformer(ModelConfig(**{**TINY.to_dict(), "attention": "softmax"}), {}, IntConfig())


def test_qcd_baseline(tiny):
    w, src, tgt = tiny
    x = np.random.default_rng(2).standard_normal((3, 50)).astype(np.float32)
    y = affine_qcd(x, 8, 16)
    step = max(np.ptp(x.reshape(-1)[i:i + 16]) for i in range(0, 150, 16)) / 255
    assert np.abs(y - x).max() <= step / 2 + 1e-6 and not np.array_equal(x, y)
    with pytest.raises(ValueError, match="NaN"):
        affine_qcd(np.array([np.nan]))
    ref = FP32Transformer(TINY, w).logits(src, tgt)
    assert np.abs(QCDTransformer(TINY, w, bits=8).logits(src, tgt) - ref).max() < 0.25 * np.abs(ref).max()


def test_committed_model_is_deterministic(committed):
    (cfg, w), tok, rows = committed
    srcs = [tok.encode_source(r[2], "de") for r in rows[:3]]
    a = greedy_search(IntTransformer(cfg, w), srcs)
    assert a == greedy_search(IntTransformer(cfg, w), srcs)
    model = IntTransformer(cfg, w)
    src = np.array([srcs[0]])
    assert model.logits(src, src[:, :4]).tobytes() == model.logits(src, src[:, :4]).tobytes()


def test_model_vectors_round_trip(committed, tmp_path):
    (cfg, w), tok, rows = committed
    cap = capture(cfg, w, IntConfig(), tok.encode_source(rows[0][2], "de"), tok.encode_target(rows[0][3]))
    man = read_manifest(write(cap, tmp_path, IntConfig()))
    assert [e.layer for e in man.gemms] == [g[0] for g in cap.gemms]
    assert any(e.layer == "dec.1.cross_attn.context.h3" for e in man.gemms)
    for e, (name, a, b, c, _) in zip(man.gemms, cap.gemms):
        got = [man.load(e, x) for x in "abc"]
        assert np.array_equal(got[0], a) and np.array_equal(got[1], b), name
        assert np.array_equal(got[2], c) and np.array_equal(c, gemm(a, b, man.acc_bits, man.overflow)), name
    assert cap.mse()["enc.embed"][1] < 1e-2


BLEU_SLICE = 24
# Measured on the committed model, first 24 test sentences, greedy, IntConfig() (dyadic re-scaling): INT8 / FP32 BLEU
# = 1.69 / 1.66 (101.8%) en-de, 8.83 / 7.88 (112.0%) en-fr (rescale=paper: 1.33 (80.5%), 8.99 (114.1%)). A 24-sentence
# BLEU is noisy; the code is deterministic, so this floor (below every measured ratio) catches a regression of the
# integer path, not noise. The target is checked on the whole split under -m slow below.
INT8_BLEU_FLOOR = 0.75


@pytest.mark.parametrize("pair", ["en-de", "en-fr"])
def test_int8_bleu_on_a_test_slice(committed, pair):
    from itx.evaluation import evaluate
    (cfg, w), tok, _ = committed
    fp, _, _ = evaluate(FP32Transformer(cfg, w), tok, pair, limit=BLEU_SLICE, progress=False)
    i8, _, _ = evaluate(IntTransformer(cfg, w), tok, pair, limit=BLEU_SLICE, progress=False)
    assert fp.precisions[0] >= 25.0, f"{pair}: FP32 {fp}: model not trained?"
    assert i8.score >= INT8_BLEU_FLOOR * fp.score, f"{pair}: INT8 {i8.score:.2f} vs FP32 {fp.score:.2f}"


@pytest.mark.slow
@pytest.mark.parametrize("pair", ["en-de", "en-fr"])
def test_int8_bleu_on_the_whole_test_split(committed, pair):
    """Issue 5's target, INT8 >= 99.5% of FP32 BLEU on the test split, IntConfig() (dyadic re-scaling; reports/
    int8_bleu.md: 10.62 / 10.62 en-de, 14.83 / 14.86 en-fr; Eq. 10 as written: 98.9%, 101.0%). 169 s for both pairs."""
    from itx.evaluation import evaluate
    (cfg, w), tok, _ = committed
    fp, _, _ = evaluate(FP32Transformer(cfg, w), tok, pair, progress=False)
    i8, _, _ = evaluate(IntTransformer(cfg, w), tok, pair, progress=False)
    assert i8.score >= 0.995 * fp.score, f"{pair}: INT8 {i8.score:.2f} vs FP32 {fp.score:.2f}"


# ---- value references on the committed model ------------------------------------------------------------------
FINGERPRINTS = Path(__file__).with_name("int_fingerprints.json")
FINGERPRINT_CONFIGS = {"default": {}, "rescale=paper": {"rescale": "paper"}, "match=paper": {"match": "paper"},
                       "bits=6": {"bits": 6}, "acc16-saturate": {"acc_bits": 16, "overflow": "saturate"},
                       "acc24-wrap": {"acc_bits": 24, "overflow": "wrap"}, "rounding=floor": {"rounding": "floor"},
                       "granularity=batch": {"granularity": "batch"}}


def _teacher_forced(committed, n: int = 3):
    from itx.golden.model import pad_batch
    from itx.golden.tokenizer import BOS
    (cfg, w), tok, rows = committed
    srcs = [tok.encode_source(r[2], "de") for r in rows[:n]]
    return srcs, pad_batch(srcs), pad_batch([[BOS] + tok.encode_target(r[3])[:-1] for r in rows[:n]])


def test_committed_model_fingerprints(committed):
    """sha256 of greedy ids + teacher-forced int64 logits of 3 test sentences for a few configs: any change of the
    integer outputs fails here. After a deliberate change (or a retrained model), regenerate with
    ITX_UPDATE_FINGERPRINTS=1 python3 -m pytest -q tests/test_int_model.py -k fingerprints, and say why in the commit."""
    (cfg, w), _, _ = committed
    srcs, src, tgt = _teacher_forced(committed)
    got = {}
    for name, knobs in FINGERPRINT_CONFIGS.items():
        m = IntTransformer(cfg, w, IntConfig(**knobs))
        h = hashlib.sha256(json.dumps(greedy_search(m, srcs)).encode())
        h.update(m.logits(src, tgt).tobytes())
        got[name] = h.hexdigest()
    if os.environ.get("ITX_UPDATE_FINGERPRINTS") == "1":
        FINGERPRINTS.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(FINGERPRINTS.read_text())
    assert {k: v for k, v in got.items() if want.get(k) != v} == {}, "integer outputs changed (see docstring)"


# Measured relative MSE vs FP32 on en-de test sentences 0-2 (IntConfig(), the 14000-step model): logits 7.9e-4,
# enc.ln_f 3.2e-2, dec.ln_f 8.3e-4, enc.0.self_attn.context 2.7e-2. Bounds: about 1.5x those (a wrong score scale
# gives logits 1.4e-2). Smaller changes (a mask, a re-scale mode: 1-35% on a few tensors) are caught exactly by
# test_committed_model_attention_vs_reference and the fingerprint above; a retrained model needs new bounds.
VALUE_BOUNDS = {"out_proj": 1.2e-3, "enc.ln_f": 4.8e-2, "dec.ln_f": 1.25e-3, "enc.0.self_attn.context": 4e-2}


def test_committed_model_close_to_fp32(committed):
    """An independent reference: the FP32 model, teacher-forced on the same sentences; the integer logits and a few
    intermediate tensors (dequantized) must be within the bounds above in relative MSE."""
    from itx.golden.capture import Capture
    (cfg, w), _, _ = committed
    _, src, tgt = _teacher_forced(committed)
    cap = Capture()
    FP32Transformer(cfg, w, hook=cap.fp32).logits(src, tgt)
    IntTransformer(cfg, w, hook=cap.int_hook).logits(src, tgt)
    rel = {k: cap.mse()[k][1] for k in VALUE_BOUNDS}
    assert all(rel[k] < VALUE_BOUNDS[k] for k in VALUE_BOUNDS), rel


@pytest.mark.parametrize("knobs", [{}, {"rescale": "pow2", "match": "paper"}, {"rescale": "tflite"}])
def test_committed_model_attention_vs_reference(committed, knobs):
    """The model's batched attention (its own code path, not itx.golden.attention's) on real inputs of two padded
    test sentences, every head of an encoder, a causal decoder and a cross attention, against the pure-Python
    Fraction reference of Eq. 11-12 (tests/test_attention_layernorm.py), tolerance 0: fails on a wrong score scale,
    a missing mask or an internal re-scale in another mode than `rescale` says, with or without numba."""
    from test_attention_layernorm import ref_poly_attention
    (cfg, w), _, _ = committed
    _, src, tgt = _teacher_forced(committed, 2)
    m, seen = IntTransformer(cfg, w, IntConfig(**knobs)), {}
    run = m.poly_attention
    m.poly_attention = lambda name, q, kt, v, mask, *a: seen.setdefault(name, (q, kt, v, mask, run(name, q, kt, v,
                                                                                                    mask, *a)))[4]
    m.logits(src, tgt)
    c = m.icfg
    for name in ("enc.0.self_attn", "dec.0.self_attn", "dec.1.cross_attn"):
        q, kt, v, mask, out = seen[name]
        b, dl = m.q[f"{name}.poly_b"], m.q[f"{name}.poly_delta"]
        (n_b, _, tq, _), tk = q.shape, kt.shape[3]
        keep = np.broadcast_to(mask, (n_b, 1, tq, tk))
        sq, sk, sv = (np.broadcast_to(x.scale, shape) for x, shape in
                      ((q, (n_b, 1, tq, 1)), (kt, (n_b, 1, 1, tk)), (v, (n_b, 1, tk, 1))))
        assert not keep.all(), "the batch must exercise the mask"
        for i, h in itertools.product(range(q.shape[0]), range(q.shape[1])):
            want, s_want = ref_poly_attention(
                q.values[i, h].tolist(), sq[i, 0, :, 0], kt.values[i, h].T.tolist(), sk[i, 0, 0, :],
                v.values[i, h].tolist(), sv[i, 0, :, 0], int(b.values[h].item()), b.scale.item(),
                int(dl.values[h].item()), dl.scale.item(), cfg.poly_n, c.attn_frac_bits, c.match, c.rescale,
                keep[i, 0].tolist())
            assert out.values[i, h].tolist() == want, (name, i, h)
            assert out.scale[i, h, :, 0].tolist() == [float(x) for x in s_want], (name, i, h)


def test_every_knob_reaches_every_site_it_claims(tiny, monkeypatch):
    """SPEC.md's knob table, walked: with every knob off its default (numpy path), each re-scale, matching,
    rounding, accumulator reduction and GEMM of a forward pass runs with the configured value; attention's internal
    re-scales are per row by construction, the activations' and LayerNorm's follow `granularity`."""
    import sys
    from itx.golden import attention, config, layernorm, quant, rounding
    w, src, tgt = tiny
    cfg = IntConfig(bits=6, granularity="batch", match="paper", rescale="pow2", rounding="floor", acc_bits=24,
                    overflow="saturate")
    seen = {"rescale": [], "match": [], "rounding": [], "acc": [], "gemm": []}

    def spy(key, fn, record):
        def wrapped(*a, **k):
            seen[key].append(record(sys._getframe(1).f_code.co_name, *a, **k))
            return fn(*a, **k)
        return wrapped

    def rescale_args(site, x, bits=8, granularity=quant.DEFAULT_GRANULARITY, mode=quant.DEFAULT_RESCALE, block=None,
                     rounding=rounding.DEFAULT_ROUNDING):
        return site, bits, granularity, mode, rounding
    r = spy("rescale", quant.rescale, rescale_args)
    for mod in (quant, int_model, attention, layernorm):
        monkeypatch.setattr(mod, "rescale", r)
    d = spy("match", quant.divide_to, lambda site, v, sf, st, mode, rnd: (mode, rnd))
    monkeypatch.setattr(quant, "divide_to", d)
    monkeypatch.setattr(int_model, "divide_to", d)
    c = spy("rounding", rounding.check_rounding, lambda site, rnd: (site, rnd))
    monkeypatch.setattr(rounding, "check_rounding", c)
    monkeypatch.setattr(quant, "check_rounding", c)
    t = spy("acc", config.to_accumulator, lambda site, v, bits, over: (bits, over))
    for mod in (ops, attention, layernorm):
        monkeypatch.setattr(mod, "to_accumulator", t)
    g = spy("gemm", int_model.gemm, lambda site, a, b, bits, over, **k: (bits, over))
    monkeypatch.setattr(int_model, "gemm", g)
    model = IntTransformer(TINY, w, cfg)
    model.kernels = False
    model.logits(src, tgt)
    sites = {s for s, *_ in seen["rescale"]}
    assert sites == {"act", "l1_layernorm", "poly", "poly_attention", "attention_output"}, sites
    for site, bits, gran, mode, rnd in seen["rescale"]:
        want = "batch" if site in ("act", "l1_layernorm") else "row"
        assert (bits, gran, mode, rnd) == (6, want, "pow2", "floor"), site
    assert seen["match"] and set(seen["match"]) == {("paper", "floor")}
    # the one exception (SPEC.md): weights are quantized once at load (offline Eq. 1), half away from zero
    assert {rnd for site, rnd in seen["rounding"] if site != "quantize"} == {"floor"}, set(seen["rounding"])
    assert {rnd for site, rnd in seen["rounding"] if site == "quantize"} == {"half_away"}
    assert len(seen["acc"]) > 20 and set(seen["acc"]) == {(24, "saturate")}
    assert seen["gemm"] and set(seen["gemm"]) == {(24, "saturate")}


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_accumulator_peak_is_the_width_a_run_needs(committed, overflow):
    """itx.golden.config.accumulator_peak over a 32-bit run of the real model (numpy data path, kernels off) names the
    narrowest accumulator that gives bit-identical logits (kernels on): at the peak width they are equal, one bit
    narrower they differ (a recording that missed the op needing most bits would fail the first check)."""
    from itx.golden.config import accumulator_peak

    (cfg, w), _, _ = committed
    _, src, tgt = _teacher_forced(committed, 2)
    model = IntTransformer(cfg, w, IntConfig(overflow=overflow))
    model.kernels = False
    with accumulator_peak() as peak:
        wide = model.logits(src, tgt)
    assert 16 < peak.bits < 32
    assert np.array_equal(IntTransformer(cfg, w, IntConfig(acc_bits=peak.bits, overflow=overflow)).logits(src, tgt),
                          wide)
    assert not np.array_equal(IntTransformer(cfg, w, IntConfig(acc_bits=peak.bits - 1, overflow=overflow)).logits(
        src, tgt), wide)


def test_accumulator_peak_records_gemm_sums_and_unscanned_adds():
    """The recording sees a GEMM's exact sums ("wrap"; "saturate": the bound of its partial sums) and the adds of
    narrow operands that itx.golden.ops otherwise leaves unscanned; nothing is recorded outside the block."""
    from itx.golden.config import accumulator_peak

    a, b = np.array([[100, 100]], np.int64), np.array([[100], [-100]], np.int64)   # sum 0, partial sums 10^4
    with accumulator_peak() as peak:
        gemm(a, b, 32, "wrap", in_bits=8)
    assert peak.bits == 1
    with accumulator_peak() as peak:
        gemm(a, b, 32, "saturate", in_bits=8)
    assert peak.bits == (2 * 100 * 100).bit_length() + 1          # K max|a| max|b|: a partial sum could be that
    with accumulator_peak() as peak:
        gemm(a, -np.abs(b), 32, "wrap", in_bits=8)
    assert peak.bits == 16                                        # -20000 needs 16 bits
    gemm(a, b, 16, "wrap", in_bits=8)
    assert peak.bits == 16                                        # the block has ended
    x = QTensor(np.array([[127, -128]]), np.array([[1.0]], np.float32), 8)
    with accumulator_peak() as peak:
        ops.add(x, x, acc_bits=32)
    assert peak.bits == 9                                         # -256 needs 9 bits
