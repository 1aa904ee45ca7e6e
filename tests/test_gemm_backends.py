"""itx.golden.gemm's backends: selection (ITX_GEMM), the library's self-check and fallback, its hand-written ONNX graph,
and the committed integer model's outputs identical on every backend (the reference GEMM tests themselves run on
every backend in tests/test_gemm.py)."""
from __future__ import annotations

import numpy as np
import pytest

from itx.golden import gemm as G
from itx.golden.model import MODELS, greedy_search, load, pad_batch

pytestmark = pytest.mark.usefixtures("one_blas_thread")


@pytest.fixture
def restore():
    """Leave the backend state as it was, whatever the test set."""
    saved = dict(G._STATE)
    yield
    G._STATE.clear()
    G._STATE.update(saved)


def library_or_skip():
    if G.set_backend("onnxruntime") != "onnxruntime":
        G.set_backend()
        pytest.skip(f"GEMM backend onnxruntime: {G._STATE['library'][1]}")
    return G._STATE["engine"]


def test_installed_library_is_exact_here(restore):
    """Where onnxruntime is installed its uint8 x uint8 form is exact on any x86 MLAS kernel (int16 operands, int32
    pair sums), so a failed self-check here is a finding, not a skip."""
    pytest.importorskip("onnxruntime")
    assert G.set_backend("onnxruntime") == "onnxruntime", G._STATE["library"][1]


def test_unknown_backend_is_one_clear_error(monkeypatch, restore):
    monkeypatch.setenv(G.BACKEND_ENV, "mkl")
    with pytest.raises(ValueError) as exc:
        G.set_backend()
    assert str(exc.value) == "ITX_GEMM: unknown GEMM backend 'mkl'; choose one of onnxruntime, blas"
    with pytest.raises(ValueError, match="unknown GEMM backend 'BLAS'"):
        G.set_backend("BLAS")


def test_environment_selects_and_default_is_first_exact(monkeypatch, restore):
    monkeypatch.setenv(G.BACKEND_ENV, "blas")
    assert G.set_backend() == "blas" and G.backend() == "blas" and "exact float BLAS" in G.describe_backend()
    monkeypatch.delenv(G.BACKEND_ENV)
    library_or_skip()
    assert G.set_backend() == G.BACKENDS[0] == "onnxruntime"
    assert "MatMulInteger" in G.describe_backend()


def test_failed_self_check_falls_back_with_one_line_notice(monkeypatch, capsys, restore):
    library_or_skip()
    monkeypatch.delitem(G._STATE, "library")
    monkeypatch.setattr(G, "_self_check", lambda engine: "K=7, B an input: C[0, 0] = 1, int64 says 2")
    monkeypatch.delenv(G.BACKEND_ENV, raising=False)
    assert G.set_backend() == "blas"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "onnxruntime" in err and "failed its self-check" in err and "using blas" in err
    a = np.full((64, 512), 127, np.int8)
    assert np.array_equal(G.gemm(a, a.T.copy()), np.full((64, 64), 512 * 127 * 127))


def test_self_check_catches_a_wrong_operand_mapping(monkeypatch, restore):
    """The check compares something: B given to the uint8 form without its +128 shift (a plausible slip, and what
    a library's wrong signedness looks like) is reported with the first differing element."""
    engine = library_or_skip()
    assert G._self_check(engine) is None
    wrong = G._OnnxRuntime("u8u8")
    monkeypatch.setattr(wrong, "operand_b", lambda b, out=None: np.ascontiguousarray(b, np.int8).view(np.uint8))
    diff = G._self_check(wrong)
    assert diff is not None and diff.startswith("K=1, B an input: C[") and "int64 says" in diff


@pytest.mark.parametrize("form", ["u8s8", "u8u8"])
@pytest.mark.parametrize("const", [False, True])
def test_onnx_graph_equals_onnx_helpers(form, const):
    """matmul_integer_model writes the wire format by hand (onnx costs ~1.5 s to import); onnx.helper's model of the
    same graph serializes to the same bytes."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    btype = np.int8 if form == "u8s8" else np.uint8
    b = np.arange(-6, 6).reshape(3, 4).astype(btype)
    inputs = [helper.make_tensor_value_info("A", TensorProto.UINT8, ["M", "K"])]
    inits = [numpy_helper.from_array(np.array(128, np.uint8), "za"),
             numpy_helper.from_array(np.array(0 if form == "u8s8" else 128, btype), "zb")]
    if const:
        inits.append(numpy_helper.from_array(b, "B"))
    else:
        inputs.append(helper.make_tensor_value_info("B", numpy_helper.helper.np_dtype_to_tensor_dtype(b.dtype),
                                                    ["K", "N"]))
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B", "za", "zb"], ["C"])], "gemm", inputs,
                              [helper.make_tensor_value_info("C", TensorProto.INT32, ["M", "N"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    assert G.matmul_integer_model(form, b if const else None) == model.SerializeToString()


def test_prepared_weights_hold_one_session_and_no_per_call_copy(restore):
    """A prepared B is converted and pre-packed once (one session per thread count); later calls reuse it."""
    library_or_skip()
    rng = np.random.default_rng(3)
    a, b = rng.integers(-128, 128, (16, 256), dtype=np.int8), rng.integers(-128, 128, (256, 512), dtype=np.int8)
    pb = G.prepare(b.copy(), 8)
    want = a.astype(np.int64) @ b.astype(np.int64)
    for _ in range(3):
        assert np.array_equal(G.gemm(a, pb), want)
    sessions = G._prepared(pb, 8).sessions
    assert len(sessions) == 1 and next(iter(sessions))[0] == G._STATE["engine"].form


@pytest.fixture(scope="module")
def committed():
    if not (MODELS / "integer" / "weights.npz").is_file():
        pytest.skip("models/integer not exported yet")
    from itx.golden.tokenizer import Tokenizer
    from itx import data
    tok = Tokenizer()
    rows = data.read_tsv(data.split_path("test", "en-de"))[:8]
    return load(MODELS / "integer"), [tok.encode_source(r[2], "de") for r in rows], \
        pad_batch([[2] + tok.encode_target(r[3])[:-1] for r in rows])


def test_committed_model_fingerprint_identical_on_every_backend(committed, monkeypatch, restore):
    """Greedy ids and teacher-forced int64 logits of the committed integer model are the same bytes on each backend,
    and the library really computed most of the library backend's GEMM work (else nothing was compared)."""
    from itx.golden.int_model import IntTransformer
    (cfg, w), srcs, tgt = committed
    library_or_skip()
    ops = []
    real = G._OnnxRuntime.matmul
    monkeypatch.setattr(G._OnnxRuntime, "matmul", lambda self, a, b, prep: ops.append(a.size * b.shape[-1])
                        or real(self, a, b, prep))
    runs = {}
    for name in G.BACKENDS:
        assert G.set_backend(name) == name
        m = IntTransformer(cfg, w)
        runs[name] = greedy_search(m, srcs), m.logits(pad_batch(srcs), tgt)
        if name == "onnxruntime":
            assert len(ops) > 100 and sum(ops) > 10 ** 8, (len(ops), sum(ops))
    (g0, l0), (g1, l1) = runs.values()
    assert g0 == g1 and l0.dtype == l1.dtype == np.int64
    assert l0.tobytes() == l1.tobytes()
