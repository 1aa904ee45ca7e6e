"""Golden vector format: round trip, and every defect gives a one-line ValueError naming file and field/line."""
from __future__ import annotations

import json

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
    (lambda d: d.update(format="other"), "not an itx-gemm-vectors v1 manifest"),
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
