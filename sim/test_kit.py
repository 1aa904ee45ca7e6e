"""itx.sim.kit's checking pieces without a simulator, and the whole kit against a wrong RTL: the example's rowmm with
one line broken must fail, naming tensor, index, expected and got."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from itx.golden.errors import Mismatch, UserError
from itx.golden.vectors import FORMAT, VERSION, write_manifest
from itx.sim import kit
from itx.sim.rtl import ROOT

EXAMPLE = ROOT / "examples" / "third_party_matmul"


def test_compare_names_the_first_difference():
    want = np.arange(12).reshape(3, 4)
    kit.compare("c", want, want.copy())
    got = want.copy()
    got[2, 1] = -7
    with pytest.raises(Mismatch, match=re.escape("c[2, 1]: expected 9, got -7 [1 of 12 differ]")):
        kit.compare("c", want, got)
    with pytest.raises(Mismatch, match=re.escape("row[5, 3]: expected 3, got 0")):
        kit.compare("row", np.arange(4), np.array([0, 1, 2, 0]), at=(5, 0))
    with pytest.raises(Mismatch, match=r"c: shape \(3, 3\), expected \(3, 4\)"):
        kit.compare("c", want, want[:, :3])


def test_scoreboard_in_order_and_complete():
    sb = kit.Scoreboard("sb")
    with pytest.raises(Mismatch, match="compared nothing"):
        sb.finish()
    with pytest.raises(Mismatch, match="before any accepted input"):
        sb.check(np.zeros(2))
    sb.expect("t0", np.array([1, 2]))
    sb.expect("t1", np.array([3, 4]), at=(1, 0))
    sb.check(np.array([1, 2]))
    with pytest.raises(Mismatch, match="1 expected results never came out, the first t1"):
        sb.finish()
    with pytest.raises(Mismatch, match=re.escape("t1[1, 0]: expected 3, got 4")):
        sb.check(np.array([4, 3]))      # in order: t1, not a search for any match
    assert sb.checked == 1 and sb.pending == 0


@pytest.mark.parametrize("bits", [2, 6, 8, 10, 16])
def test_pack_unpack_edges(bits):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    lanes = [lo, hi, 0, -1, 1, lo + 1]
    word = kit.pack(lanes, bits)
    assert word >> (len(lanes) * bits) == 0 and (word & ((1 << bits) - 1)) == (lo & ((1 << bits) - 1))
    assert kit.unpack(word, len(lanes), bits) == lanes


def test_read_vectors_checks_files(tmp_path):
    a, b = np.array([[1, -2, 3]]), np.array([[1], [-31], [5]])
    write_manifest(tmp_path / "v", [("g", a, b)], in_bits=6, acc_bits=16, overflow="wrap")
    vec = kit.read_vectors(tmp_path / "v")
    assert (vec.in_bits, vec.acc_bits, vec.overflow) == (6, 16, "wrap")
    np.testing.assert_array_equal(vec.gemms[0].c, [[78]])
    np.testing.assert_array_equal(vec.gemm(a, b), vec.gemms[0].c)
    c_file = next((tmp_path / "v").glob("*.c.hex"))
    c_file.write_text("004f\n")          # well-formed, wrong: only the sha256 can tell
    with pytest.raises(ValueError, match="sha256 mismatch"):
        kit.read_vectors(tmp_path / "v")
    empty = tmp_path / "e.json"
    empty.write_text(json.dumps({"format": FORMAT, "version": VERSION, "in_bits": 8, "acc_bits": 32,
                                 "overflow": "wrap", "seed": 0, "gemms": []}))
    with pytest.raises(UserError, match="compares nothing"):
        kit.read_vectors(empty)


def test_kit_fails_a_wrong_rtl(tmp_path):
    """rowmm one MAC short (a one-line RTL bug): the run fails and says where, expected and got."""
    src = (EXAMPLE / "rtl" / "rowmm.v").read_text()
    assert src.count("if (k == KDIM - 1) begin") == 1
    (tmp_path / "rowmm.v").write_text(src.replace("if (k == KDIM - 1) begin", "if (k == KDIM - 2) begin"))
    a = np.array([[1, 2, 3, 4], [-5, 6, -7, 8]])
    b = np.arange(12).reshape(4, 3) - 6
    write_manifest(tmp_path / "v", [("g", a, b)], in_bits=8, acc_bits=32, overflow="wrap")
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog not on PATH")
    with pytest.raises(AssertionError, match=r"manifest_gemms: g\.c\[0, 0\]: expected 0, got -12 "):
        kit.run(toplevel="rowmm", sources=[tmp_path / "rowmm.v"], test_module="tb_rowmm", module_dir=EXAMPLE,
                parameters={"DW": 8, "ACCW": 32, "KDIM": 4, "NDIM": 3}, args={"vectors": str(tmp_path / "v")},
                build_dir=tmp_path / "build")
