"""Op-by-op RTL run (sim/model_run.py for the GEMMs, sim/ops_run.py for the non-GEMM units; `itx sim model`) of
golden's vectors: synthetic manifests with a re-scaling stage, corrupt and mismatched vectors, and the real model:
first encoder layer of a sentence (every GEMM and op) by default, the whole sentence under -m slow."""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

from itx.golden.capture import capture
from itx.golden.config import load_hw_config
from itx.golden.int_config import IntConfig
from itx.golden.model import load, model_dir
from itx.golden.ops import add
from itx.golden.qtensor import QTensor
from itx.golden.quant import RESCALE_MODES, match_along, rescale
from itx.golden.requant import linear_factors, requant_model
from itx.golden.tflite import TFLITE_MODES
from itx.golden.tokenizer import Tokenizer
from itx.golden.vectors import VectorGemm, read_manifest, write_manifest
from itx import data
from itx.cli import build_parser, main
from itx.options import capture_sentence, hw_config, int_config
from itx.golden.capture import OPS
from itx.sim.model_run import run_layers
from itx.sim.ops_run import run_ops
from itx.sim.runner import simulator_available

CFG = load_hw_config()


def _need(sim: str = "icarus") -> None:
    reason = simulator_available(sim) if sim == "icarus" else None
    if reason:
        pytest.skip(reason)


def _synthetic(tmp_path, seed: int = 3):
    """Three linear layers (re-scaled: paper divider, pow2 shift, dyadic multiplier + shift) and one plain GEMM,
    ragged shapes."""
    rng = np.random.default_rng(seed)
    gemms = []
    for name, (m, k, n), mode in (("lin.paper", (5, 20, 11), "paper"), ("lin.pow2", (9, 7, 3), "pow2"),
                                  ("lin.dyadic", (6, 13, 9), "dyadic"), ("plain", (3, 9, 10), None)):
        a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
        c = a @ b
        rq = None
        if mode:
            # per-row activation x per-column weight scales, as in the model: matched along the features first
            s = rng.uniform(0.5, 2, (m, 1)) * rng.uniform(0.5, 2, (1, n)) * 2.0 ** -10
            acc = QTensor(c, s.astype(np.float32), 32)
            bias = QTensor(rng.integers(-3000, 3000, (1, n)), np.float32(2 ** -8), 16)   # non-zero once matched
            f, _ = linear_factors(acc, bias, 8, "row", mode)
            rq = (f, rescale(add(match_along(acc, -1, "dyadic"), bias, "dyadic"), 8, "row", mode).values)
        gemms.append(VectorGemm(name, a, b, c, rq))
    return read_manifest(write_manifest(tmp_path, gemms, in_bits=CFG.in_bits, acc_bits=CFG.acc_bits,
                                        overflow=CFG.overflow))


def _sentence(tmp_path, *options):
    """Golden's vectors of test sentence 0 with `itx vectors model` options (the capture `itx sim model` runs)."""
    args = build_parser().parse_args(["vectors", "model", "--sentence", "0", "--out", str(tmp_path), *options])
    hw = hw_config(args)
    return read_manifest(capture_sentence(args, tmp_path, hw, int_config(args, hw))[1])


def _edit(man, edit) -> None:
    """Edit the manifest document in place."""
    doc = json.loads(man.path.read_text())
    edit(doc)
    man.path.write_text(json.dumps(doc))


def test_synthetic_requant_bit_exact(tmp_path):
    _need()
    results = run_layers(_synthetic(tmp_path), CFG)
    assert [(r.layer, r.tensor, r.mismatches) for r in results] == \
        [("lin.paper", "Y", 0), ("lin.pow2", "Y", 0), ("lin.dyadic", "Y", 0), ("plain", "C", 0)]
    assert all(0 < r.utilisation <= 1 for r in results)


def test_mismatch_is_reported_with_index(tmp_path):
    """A wrong expected Y (sha256 updated, so the file is 'valid') must stop the run at that GEMM."""
    _need()
    man = _synthetic(tmp_path)
    yfile = man.file(man.gemms[0], "y")
    lines = yfile.read_text().splitlines()
    lines[13] = f"{(int(lines[13], 16) + 1) & 0xff:02x}"
    yfile.write_text("\n".join(lines) + "\n")
    _edit(man, lambda d: d["gemms"][0]["requant"]["sha256"].update(y=hashlib.sha256(yfile.read_bytes()).hexdigest()))
    results = run_layers(read_manifest(man.path), CFG)
    assert len(results) == 1 and results[0].mismatches == 1
    assert results[0].first["tensor"] == "Y" and results[0].first["index"] == [13 // 11, 13 % 11]
    assert results[0].first["got"] != results[0].first["expected"]


@pytest.mark.parametrize("damage,needle", [
    ("truncate", "truncated or malformed"), ("acc_bits", "field 'acc_bits'"), ("requant_field", "missing field"),
    ("factor_range", "field 'div' values must be"), ("rounding", "field 'rounding'")])
def test_bad_vectors_one_line_error(tmp_path, damage, needle):
    man = _synthetic(tmp_path)
    if damage == "truncate":
        f = man.file(man.gemms[1], "b")
        f.write_bytes(f.read_bytes()[:-5])
    elif damage == "acc_bits":
        _edit(man, lambda d: d.update(acc_bits=24))
    elif damage == "requant_field":
        _edit(man, lambda d: d["gemms"][1]["requant"]["files"].pop("rsh"))
    elif damage == "factor_range":
        div = man.file(man.gemms[0], "div")
        div.write_text("00000000\n" * len(div.read_text().splitlines()))
        digest = hashlib.sha256(div.read_bytes()).hexdigest()
        _edit(man, lambda d: d["gemms"][0]["requant"]["sha256"].update(div=digest))
    else:
        _edit(man, lambda d: d["gemms"][0]["requant"].update(rounding="nearest"))
    with pytest.raises(ValueError, match=needle) as exc:
        run_layers(read_manifest(man.path), CFG)
    assert "\n" not in str(exc.value) and str(tmp_path) in str(exc.value)


def test_cli_bad_array_is_one_line(capsys):
    assert main(["sim", "model", "--sentence", "0", "--array", "8by8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--array" in err and "\n" not in err


def _model() -> None:
    if not (model_dir("integer") / "weights.npz").is_file():
        pytest.skip("models/integer not present")


@pytest.mark.parametrize("rescale", RESCALE_MODES)
def test_requant_factors_reproduce_int_model(rescale):
    """No simulator: for every linear layer of test sentence 0, what itx_requant computes from the captured
    accumulator and factors is the integer model's INT8 output (the Y the RTL run compares with), for every
    Eq. 10 mode of IntConfig.rescale."""
    _model()
    tok, row = Tokenizer(), data.read_split("test", "en-de")[0]
    cap = capture(*load(model_dir("integer")), IntConfig(rescale=rescale), tok.encode_source(row[2], "de"),
                  tok.encode_target(row[3]))
    linears = [(g.layer, g.c, g.requant) for g in cap.gemms if g.requant is not None]
    assert len(linears) > 20
    # the factors are the mode's own: divider only for paper, a non-trivial multiplier only for dyadic
    assert all(f.divide == (rescale == "paper") for _, _, (f, _) in linears)
    assert any((f.rmul != 1).any() for _, _, (f, _) in linears) == (rescale in ("dyadic",) + TFLITE_MODES)
    assert all(f.rescale_mode == (rescale if rescale in TFLITE_MODES else "dyadic") for _, _, (f, _) in linears)
    for name, c, (f, y) in linears:
        got, overflow = requant_model(c.reshape(y.shape), f, CFG.acc_bits, CFG.in_bits, overflow=CFG.overflow)
        bad = np.argwhere(got != y)
        assert not bad.size, f"{name}{bad[0].tolist()}: expected {y[tuple(bad[0])]}, got {got[tuple(bad[0])]}"
        assert not overflow.any(), name


def test_first_encoder_layer_icarus(tmp_path):
    """Data flows model -> vectors -> RTL: enc.0 of test sentence 0 (q, k, v, o, per-head scores/context, FFN)."""
    _need()
    _model()
    man = _sentence(tmp_path, "--layer", "enc.0.")
    results = run_layers(man, CFG)
    assert len(results) == len(man.gemms) == 14
    assert [r.mismatches for r in results] == [0] * 14
    assert sum(r.tensor == "Y" for r in results) == 6   # q, k, v, o, w1, w2 re-scaled in RTL
    ops = run_ops(man.path.parent / OPS, IntConfig(), CFG, jobs=2, layers=("enc.0.",))
    assert [(r.op, r.kind, r.mismatches) for r in ops] == [
        ("enc.0.ln1", "layernorm", 0), ("enc.0.self_attn.poly", "poly", 0), ("enc.0.self_attn.context", "attn_norm", 0),
        ("enc.0.res1", "residual", 0), ("enc.0.ln2", "layernorm", 0), ("enc.0.res2", "residual", 0)]
    assert all(r.cycles > 0 for r in ops)


def test_op_mismatch_is_localised(tmp_path):
    """A capture whose expected outputs were altered (one value of enc.0.res1, one row scale of enc.0.res2): the
    replay counts each, names op, tensor, index, expected and got, and runs every op (it does not stop)."""
    _need()
    _model()
    man = _sentence(tmp_path / "v", "--layer", "enc.0.self_attn.q")
    data = dict(np.load(man.path.parent / OPS))
    orig = int(data["enc.0.res1/out.values"][0, 3, 17])
    data["enc.0.res1/out.values"] = data["enc.0.res1/out.values"].copy()
    data["enc.0.res1/out.values"][0, 3, 17] = orig + 1
    data["enc.0.res2/out.scale"] = data["enc.0.res2/out.scale"].copy()
    data["enc.0.res2/out.scale"][0, 5, 0] *= 2
    np.savez(tmp_path / "ops.npz", **data)
    r1, r2 = run_ops(tmp_path / "ops.npz", IntConfig(), CFG, layers=("enc.0.res",))
    assert (r1.op, r1.mismatches, r1.first) == ("enc.0.res1", 1, {"tensor": "out", "index": [0, 3, 17],
                                                                 "expected": orig + 1, "got": orig})
    assert (r2.op, r2.mismatches, r2.first["tensor"], r2.first["index"]) == ("enc.0.res2", 1, "out scale", [5])


def test_cli_op_knob_the_units_lack_is_one_line(tmp_path, capsys):
    """--rescale paper reaches the GEMMs' re-scaling unit but no non-GEMM unit: refused before the capture, naming
    the knob and --gemms-only."""
    assert main(["sim", "model", "--sentence", "0", "--rescale", "paper", "--vectors", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--rescale='paper'" in err and "--gemms-only" in err and "\n" not in err
    assert not (tmp_path / "v").exists()


@pytest.mark.slow
@pytest.mark.parametrize("acc_bits,overflow", [(16, "saturate"), (16, "wrap"), (24, "saturate"), (24, "wrap")])
def test_first_encoder_layer_narrow_accumulator_icarus(tmp_path, acc_bits, overflow):
    """One accumulator per configuration: golden with IntConfig(acc_bits, overflow) and the RTL built with that
    ACC_BITS / SATURATE agree on every GEMM and re-scaled output of enc.0 of test sentence 0."""
    _need()
    _model()
    hw = replace(CFG, acc_bits=acc_bits, overflow=overflow)
    man = _sentence(tmp_path, "--layer", "enc.0.", "--acc-bits", str(acc_bits), "--overflow", overflow)
    assert (man.acc_bits, man.overflow) == (acc_bits, overflow)
    results = run_layers(man, hw)
    assert len(results) == 14 and [r.mismatches for r in results] == [0] * 14, [r.first for r in results]


@pytest.mark.slow
def test_full_sentence_icarus(tmp_path):
    """Every GEMM of test sentence 0 (encoder, decoder, output projection) under Icarus."""
    _need()
    _model()
    man = _sentence(tmp_path)
    results = run_layers(man, CFG, jobs=2)
    assert len(results) == len(man.gemms) and all(r.mismatches == 0 for r in results)


@pytest.mark.parametrize("acc_bits,overflow", [(32, "wrap"), (16, "wrap"), (16, "saturate")])
def test_coarse_bias_is_matched_in_a_second_step(acc_bits, overflow):
    """A bias coarser than the column-matched accumulator: golden rounds the accumulator twice (match_along, then
    match_scales with the bias), so the factors carry a second step (mul2, sh2) and requant_model reproduces
    rescale(add(...)) at the accumulator's width, sums leaving it wrapped or clipped."""
    rng = np.random.default_rng(acc_bits)
    x = rng.integers(-(1 << (acc_bits - 1)), 1 << (acc_bits - 1), (4, 6))
    acc = QTensor(x, np.float32([[64, 80, 96, 72, 64, 100]]), acc_bits)
    bias = QTensor(rng.integers(-(1 << 15), 1 << 15, (1, 6)), np.float32(3), 16)
    want = rescale(add(match_along(acc, -1), bias, acc_bits=acc_bits, overflow=overflow), 8, "row", "dyadic").values
    f, _ = linear_factors(acc, bias, 8, "row", "dyadic", overflow=overflow)
    assert (f.sh2 > 0).all() and (f.mul2 >= 1 << 30).all()
    got, flagged = requant_model(x, f, acc_bits, 8, overflow=overflow)
    np.testing.assert_array_equal(got, want)
    assert not flagged.any()


def test_unknown_rescale_mode_is_refused():
    acc = QTensor(np.arange(6).reshape(2, 3) * 100, np.float32(64), 32)
    with pytest.raises(ValueError, match="rescale mode must be one of paper, pow2, dyadic.*'ceil'") as exc:
        linear_factors(acc, QTensor(np.ones((1, 3), np.int64), np.float32(2 ** 12), 16), 8, mode="ceil")
    assert "\n" not in str(exc.value)


def test_cli_rescale_needs_a_capture(tmp_path, capsys):
    """Existing vectors carry their own factors: --rescale with them is a one-line error, not silently ignored."""
    _synthetic(tmp_path)
    assert main(["sim", "model", "--sentence", "0", "--vectors", str(tmp_path), "--rescale", "dyadic"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--rescale" in err and str(tmp_path) in err and "\n" not in err


# every knob off its default, as the options of both commands write it
OFF_DEFAULT = {"--bits": "6", "--granularity": "block", "--block": "4", "--match": "tflite", "--rescale": "pow2",
               "--rounding": "floor", "--acc-bits": "24", "--overflow": "saturate", "--param-bits": "12",
               "--int8-modules": "attn,ffn", "--int8-layers": "enc", "--fp32-layers": "dec.1",
               "--attn-division": "paper",               "--attn-frac-bits": "5", "--ln-division": "paper", "--ln-frac-bits": "3"}


@pytest.mark.parametrize("command", [["vectors", "model", "--out", "x"], ["sim", "model"]])
def test_both_commands_take_every_knob(command):
    """`itx vectors model` and `itx sim model` share one definition of the IntConfig knobs (itx/options.py): every
    field is an option of both, and each reaches the IntConfig (and the accumulator the RTL's datapath)."""
    from dataclasses import fields

    from itx.options import KNOBS

    assert sorted(o for o, _, _ in KNOBS.values()) == sorted(OFF_DEFAULT)
    args = build_parser().parse_args([*command, "--sentence", "0", *(x for kv in OFF_DEFAULT.items() for x in kv)])
    hw = hw_config(args)
    icfg = int_config(args, hw)
    default = IntConfig()
    assert [f.name for f in fields(IntConfig) if getattr(icfg, f.name) == getattr(default, f.name)] == []
    assert (icfg.bits, icfg.rounding, icfg.modules, icfg.fp32_layers) == (6, "floor", {"attn", "ffn"}, ("dec.1",))
    assert (hw.acc_bits, hw.overflow) == (24, "saturate") == (icfg.acc_bits, icfg.overflow)


def test_sim_model_runs_the_knobs_it_is_given(tmp_path, capsys):
    """`itx sim model` with knobs captures with them (the paper divider, half-even rounding, 6-bit activations)
    and the RTL agrees on the re-scaled output."""
    _need()
    _model()
    vec = tmp_path / "v"
    assert main(["sim", "model", "--sentence", "0", "--layer", "enc.0.self_attn.q", "--rescale", "paper",
                 "--rounding", "half_even", "--bits", "6", "--gemms-only", "--vectors", str(vec),
                 "--report", str(tmp_path / "r")]) == 0
    assert "PASS" in capsys.readouterr().out
    man = read_manifest(vec)
    rq = man.gemms[0].requant
    assert [e.layer for e in man.gemms] == ["enc.0.self_attn.q"] and (rq.divide, rq.rounding) == (True, "half_even")
    assert man.source["int_config"] == "INT6 rescale=paper rounding=half_even"
    assert np.abs(man.load(man.gemms[0], "y")).max() <= 31
    assert json.loads((tmp_path / "r.json").read_text())["int_config"] == man.source["int_config"]
