"""Golden vector format: round trip, and every defect gives a one-line ValueError naming file and field/line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from itx.golden.gemm import gemm
from itx.golden.vectors import hex_bytes, read_hex, read_manifest, write_manifest
from itx.cli import main
from itx.sim.scoreboard import assemble, check_gemm


@pytest.fixture
def manifest(tmp_path):
    rng = np.random.default_rng(3)
    gemms = [("enc0/q", rng.integers(-128, 128, (5, 9)), rng.integers(-128, 128, (9, 4))),
             ("dec1/ffn", np.full((2, 3), -128), np.full((3, 2), -128))]
    return write_manifest(tmp_path / "v", gemms, in_bits=8, acc_bits=16, overflow="saturate", seed=3)


def test_round_trip_and_golden_result(manifest):
    man = read_manifest(manifest.parent)
    assert [e.layer for e in man.gemms] == ["enc0/q", "dec1/ffn"]
    assert (man.seed, man.acc_bits, man.overflow) == (3, 16, "saturate")
    for e in man.gemms:
        a, b, c = (man.load(e, w) for w in "abc")
        assert a.shape == (e.m, e.k) and b.shape == (e.k, e.n)
        assert np.array_equal(c, gemm(a, b, acc_bits=16, overflow="saturate"))
    assert int(man.load(man.gemms[1], "c")[0, 0]) == 32767  # 3 * 16384 clipped to int16


def test_hex_is_fixed_width_twos_complement(tmp_path):
    assert hex_bytes(np.array([-128, -1, 0, 127]), 8) == b"80\nff\n00\n7f\n"
    assert hex_bytes(np.array([-2]), 32) == b"fffffffe\n"
    (tmp_path / "x.hex").write_bytes(b"80\nFF\n7f\n")
    assert read_hex(tmp_path / "x.hex", (3,), 8).tolist() == [-128, -1, 127]


@pytest.mark.parametrize("mutate,message", [
    (lambda p: p.write_bytes(p.read_bytes()[:-3]), "truncated or malformed"),
    (lambda p: p.write_bytes(p.read_bytes().replace(b"\n", b"\r\n", 1)), "truncated or malformed"),
    (lambda p: p.write_bytes(b"zz" + p.read_bytes()[2:]), "line 1: not a 2-digit hex value"),
    (lambda p: p.write_bytes(b"00" + p.read_bytes()[2:]) if p.read_bytes()[:2] != b"00"
     else p.write_bytes(b"01" + p.read_bytes()[2:]), "sha256 mismatch"),
    (lambda p: p.unlink(), "vector file not found"),
])
def test_corrupt_vector_file(manifest, mutate, message):
    man = read_manifest(manifest)
    path = man.file(man.gemms[0], "a")
    mutate(path)
    with pytest.raises(ValueError, match=message) as exc:
        man.load(man.gemms[0], "a")
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_value_out_of_range(tmp_path):
    (tmp_path / "x.hex").write_bytes(b"3f\nff\n")
    with pytest.raises(ValueError, match=r"line 2: value 0xff exceeds 6 bits"):
        read_hex(tmp_path / "x.hex", (2,), 6)


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.pop("acc_bits"), "missing field 'acc_bits'"),
    (lambda d: d.update(overflow="clip"), "field 'overflow' must be one of"),
    (lambda d: d["gemms"][1].update(k="3"), r"gemms\[1\]: field 'k' must be int"),
    (lambda d: d["gemms"][0].update(m=0), r"gemms\[0\]: field 'm' must be >= 1"),
    (lambda d: d["gemms"][0]["files"].update(a="../x.hex"), "must be a plain file name"),
    (lambda d: d["gemms"][0]["sha256"].update(c="abc"), "not a sha256 hex digest"),
    (lambda d: d.update(format="other"), "not an itx-gemm-vectors v3 manifest"),
])
def test_malformed_manifest(manifest, edit, message):
    doc = json.loads(manifest.read_text())
    edit(doc)
    manifest.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=message):
        read_manifest(manifest)


def test_manifest_not_json(tmp_path):
    (tmp_path / "manifest.json").write_text('{"format": ')
    with pytest.raises(ValueError, match="not valid JSON"):
        read_manifest(tmp_path)


def test_write_rejects_bad_operands(tmp_path):
    with pytest.raises(ValueError, match=r"l\.a: values must be in \[-128, 127\]"):
        write_manifest(tmp_path, [("l", np.array([[128]]), np.array([[1]]))], in_bits=8, acc_bits=32,
                       overflow="wrap")
    with pytest.raises(ValueError, match=r"l: shapes \(1, 2\) @ \(3, 1\)"):
        write_manifest(tmp_path, [("l", np.ones((1, 2), int), np.ones((3, 1), int))], in_bits=8, acc_bits=32,
                       overflow="wrap")


def test_scoreboard_names_tile_row_col():
    exp = np.arange(6 * 10).reshape(6, 10)
    got = exp.copy()
    got[5, 9] += 1
    with pytest.raises(AssertionError, match=r"tile \(1, 2\) row 5 col 9 \(in tile 1, 1\): expected 59, got 60"):
        check_gemm(exp, got, 4, 4, "gemm 0")
    beats = [list(range(4))] * 4
    with pytest.raises(AssertionError, match="got 4 output beats, expected 6"):
        assemble(beats, 6, 3, 4, 4)


def test_cli_writes_checks_and_reports_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["vectors", "gemm", "--out", str(out), "--shape", "3x5x2", "--count", "2", "--seed", "1"]) == 0
    assert main(["vectors", "check", str(out)]) == 0
    first = sorted(out.glob("*.b.hex"))[0]
    first.write_bytes(first.read_bytes()[:-1])
    capsys.readouterr()
    assert main(["vectors", "check", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("itx vectors check: error: ") and "truncated" in err and "\n" not in err
    assert main(["vectors", "gemm", "--out", str(out), "--shape", "3x0x2"]) == 2


def _requant_gemm(rng, m=5, k=7, n=6, mode="dyadic", bias_scale=2 ** -8):
    """A linear layer's GEMM with its re-scaling (itx.golden.requant factors and Y), as itx.golden.capture records it;
    a bias_scale below the accumulator's (~2^-10) makes the matching two steps."""
    from itx.golden.ops import add
    from itx.golden.qtensor import QTensor
    from itx.golden.quant import match_along, rescale
    from itx.golden.requant import linear_factors
    from itx.golden.vectors import VectorGemm

    a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    s = (rng.uniform(0.5, 2, (m, 1)) * rng.uniform(0.5, 2, (1, n)) * 2.0 ** -10).astype(np.float32)
    acc, bias = QTensor(a @ b, s, 32), QTensor(rng.integers(-3000, 3000, (1, n)), np.float32(bias_scale), 16)
    f, _ = linear_factors(acc, bias, 8, "row", mode)
    return VectorGemm("lin", a, b, a @ b, (f, rescale(add(match_along(acc, -1, "dyadic"), bias, "dyadic"), 8, "row",
                                                     mode).values))


def test_requant_entry_round_trip(tmp_path):
    """Factors and Y written by golden come back equal, Y is what the factors compute from C, and every tensor is
    in the GEMM's .npz at the narrowest dtype."""
    g = _requant_gemm(np.random.default_rng(1), mode="paper", bias_scale=2 ** -13)
    assert (g.requant[0].sh2 > 0).all()
    man = read_manifest(write_manifest(tmp_path, [g, ("plain", g.a, g.b)], in_bits=8, acc_bits=32, overflow="wrap"))
    e, plain = man.gemms
    assert plain.requant is None and e.requant.divide and e.requant.rounding == "half_away"
    f = man.factors(e)
    for key in ("mul", "sh", "mul2", "sh2", "bias", "rmul", "rsh", "div"):
        assert np.array_equal(getattr(f, key), getattr(g.requant[0], key)), key
    assert np.array_equal(man.load(e, "y"), g.requant[1])
    man.verify(e)
    z = man.npz(e)
    assert sorted(z) == ["a", "b", "bias", "c", "div", "mul", "mul2", "rmul", "rsh", "sh", "sh2", "y"]
    assert (z["a"].dtype, z["c"].dtype, z["y"].dtype, z["sh"].dtype) == (np.int8, np.int32, np.int8, np.int8)
    assert sorted(man.npz(plain)) == ["a", "b", "c"]


def test_write_refuses_a_model_that_disagrees_with_golden(tmp_path):
    """The model's accumulator must be itx.golden.gemm of its operands, its Y what its factors compute: else nothing
    is written."""
    from itx.golden.errors import Mismatch

    g = _requant_gemm(np.random.default_rng(2))
    with pytest.raises(Mismatch, match="accumulator differs"):
        write_manifest(tmp_path / "c", [g._replace(c=g.c + 1)], in_bits=8, acc_bits=32, overflow="wrap")
    y = g.requant[1].copy()
    y[1, 2] += 1
    with pytest.raises(Mismatch, match=r"'lin' Y\[1, 2\]: expected .* not what its factors compute"):
        write_manifest(tmp_path / "y", [g._replace(requant=(g.requant[0], y))], in_bits=8, acc_bits=32,
                       overflow="wrap")
    assert not list(tmp_path.iterdir())


def test_npz_bytes_are_reproducible(tmp_path, manifest):
    """Same inputs, same files byte for byte (the .npz members carry a fixed timestamp and sorted order)."""
    import zipfile

    from itx.golden.vectors import NPZ_TIME, npz_bytes

    rng = np.random.default_rng(3)
    gemms = [("enc0/q", rng.integers(-128, 128, (5, 9)), rng.integers(-128, 128, (9, 4))),
             ("dec1/ffn", np.full((2, 3), -128), np.full((3, 2), -128))]
    again = write_manifest(tmp_path / "again", gemms, in_bits=8, acc_bits=16, overflow="saturate", seed=3)
    names = sorted(p.name for p in manifest.parent.iterdir())
    assert names == sorted(p.name for p in again.parent.iterdir()) and "0000_enc0_q.npz" in names
    for name in names:
        assert (manifest.parent / name).read_bytes() == (again.parent / name).read_bytes(), name
    with zipfile.ZipFile(manifest.parent / "0000_enc0_q.npz") as z:
        assert [(i.filename, i.date_time) for i in z.infolist()] == [(f"{k}.npy", NPZ_TIME) for k in "abc"]
    x, y = np.arange(3), np.ones((2, 2), np.int16)
    assert npz_bytes({"y": y, "x": x}) == npz_bytes({"x": x, "y": y})


def test_cli_gemm_datapath_options(tmp_path, capsys):
    """`itx vectors gemm` writes at --in-bits / --acc-bits / --overflow, or at a --hw-config file's widths."""
    out = tmp_path / "w"
    assert main(["vectors", "gemm", "--out", str(out), "--shape", "6x40x5", "--in-bits", "6", "--acc-bits", "16",
                 "--overflow", "saturate"]) == 0
    man = read_manifest(out)
    assert (man.in_bits, man.acc_bits, man.overflow) == (6, 16, "saturate")
    a = man.load(man.gemms[0], "a")
    assert a.min() >= -32 and a.max() <= 31 and (a.min() < -16 or a.max() > 15)   # the whole 6-bit range is used
    assert main(["vectors", "check", str(out)]) == 0
    toml = tmp_path / "hw.toml"
    toml.write_text((Path(__file__).resolve().parent.parent / "hw" / "config.toml").read_text()
                    .replace("in_bits = 8", "in_bits = 10"))
    assert main(["vectors", "gemm", "--out", str(out), "--hw-config", str(toml)]) == 0
    assert read_manifest(out).in_bits == 10


def test_compare_reports_the_first_difference_row_major():
    """The one comparison (itx.golden.errors.compare): layer, tensor, first index in row-major order, expected, got,
    how many differ; equal tensors give None, a shape difference is a Mismatch."""
    from itx.golden.errors import Mismatch, compare

    exp = np.arange(12).reshape(3, 4)
    got = exp.copy()
    got[2, 0], got[1, 3] = -5, 99
    d = compare("enc.0.q", "Y", exp, got)
    assert (d.layer, d.tensor, d.index, d.expected, d.got, d.count, d.size) == ("enc.0.q", "Y", (1, 3), 7, 99, 2, 12)
    assert str(d) == "'enc.0.q' Y[1, 3]: expected 7, got 99 [2 of 12 differ]"
    assert compare("x", "C", exp, exp.copy()) is None
    with pytest.raises(Mismatch, match=r"'x' C: shape \(4, 3\), expected \(3, 4\)"):
        compare("x", "C", exp, exp.T)


def test_vectors_md_reader_reads_what_golden_writes(tmp_path):
    """golden/VECTORS.md's reader (plain json, hashlib, numpy) gets every tensor golden wrote, bit for bit: the
    document describes the format the code writes."""
    import re

    doc = (Path(__file__).resolve().parent.parent / "golden" / "VECTORS.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S)[1]
    scope: dict = {}
    exec(compile(code, "VECTORS.md", "exec"), scope)
    rng = np.random.default_rng(6)
    gemms = [_requant_gemm(rng), ("neg", np.full((3, 40), -512), np.full((40, 2), 511))]
    man = read_manifest(write_manifest(tmp_path, gemms, in_bits=10, acc_bits=24, overflow="saturate"))
    got = dict(scope["read_vectors"](tmp_path))
    assert sorted(got) == ["lin", "neg"] and sorted(got["lin"]) == ["a", "b", "bias", "c", "div", "mul", "mul2", "rmul",
                                                                  "rsh", "sh", "sh2", "y"]
    for e in man.gemms:
        for key, arr in got[e.layer].items():
            assert np.array_equal(arr, man.load(e, key)), (e.layer, key)
            assert np.array_equal(arr, man.npz(e)[key]), (e.layer, key)
    assert got["neg"]["c"].min() == -(1 << 23)      # saturated, sign-extended from bit 23


@pytest.mark.parametrize("in_bits,acc_bits,overflow", [(10, 16, "wrap"), (6, 20, "saturate"), (2, 16, "wrap")])
def test_cli_widths_other_than_the_config(tmp_path, in_bits, acc_bits, overflow):
    """--in-bits/--acc-bits/--overflow: operands span the whole in_bits range, C is the golden at those widths
    (the 10-bit products overflow a 16-bit accumulator), and `vectors check` recomputes it at them."""
    out = tmp_path / "w"
    assert main(["vectors", "gemm", "--out", str(out), "--shape", "40x6x5", "--seed", "2", "--in-bits", str(in_bits),
                 "--acc-bits", str(acc_bits), "--overflow", overflow]) == 0
    man = read_manifest(out)
    assert (man.in_bits, man.acc_bits, man.overflow) == (in_bits, acc_bits, overflow)
    a, b, c = (man.load(man.gemms[0], w) for w in "abc")
    lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
    assert lo <= a.min() and a.max() <= hi and a.max() - a.min() > hi   # in range, and more than half of it
    np.testing.assert_array_equal(c, gemm(a, b, acc_bits=acc_bits, overflow=overflow, in_bits=in_bits))
    assert (c != a @ b).any() == (in_bits == 10)   # only the 10-bit products overflow their accumulator
    assert main(["vectors", "check", str(out)]) == 0
