"""End-to-end RTL chain (sim/chain.py, `itx sim model --chain`): the first encoder layer of a real sentence, every op
in RTL fed the RTL outputs before it, ends in golden's own output; an RTL output the chain hands on is what the next
op receives (a changed one reaches the layer's output); bad prefixes and options are one-line errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from itx.cli import main
from itx.golden.config import load_hw_config
from itx.golden.int_config import IntConfig
from itx.golden.model import load, model_dir
from itx.golden.qtensor import QTensor
from itx.options import sentence_ids
from itx.sim.chain import RtlChain, run_chain
from itx.sim.model_run import LayerResult
from itx.sim.runner import simulator_available

CFG = load_hw_config()
pytestmark = pytest.mark.skipif(bool(simulator_available("icarus")), reason="needs Icarus")


def test_first_encoder_layer_chained_in_rtl_is_golden(tmp_path, capsys):
    report = tmp_path / "chain"
    assert main(["sim", "model", "--sentence", "0", "--chain", "enc.0", "--report", str(report)]) == 0
    doc = json.loads(report.with_suffix(".json").read_text())
    assert doc["output"] == "enc.0.res2" and doc["output_vs_golden"] == "identical"
    # every GEMM of the layer (q k v, 4 heads of Q K^T and of P V, o, w1 w2) and every op ran, in the model's order
    assert [g["layer"] for g in doc["gemms"]][:4] == ["enc.0.self_attn.q", "enc.0.self_attn.k", "enc.0.self_attn.v",
                                                    "enc.0.self_attn.scores.h0"]
    assert len(doc["gemms"]) == 14 and all(g["mismatches"] == 0 for g in doc["gemms"])
    assert [o["op"] for o in doc["ops"]] == ["enc.0.ln1", "enc.0.self_attn.poly", "enc.0.self_attn.context",
                                             "enc.0.res1", "enc.0.ln2", "enc.0.res2"]
    assert [o["index"] for o in doc["ops"]] == [0, 8, 13, 15, 16, 19]
    assert "PASS: enc.0.res2" in capsys.readouterr().out


class _Altered(RtlChain):
    """The chain with one RTL output changed before it is handed on (as a unit whose output the next unit does
    not expect): the change must reach the layer's output."""

    def _keep(self, name, y):
        if name == "enc.0.ffn.w1":
            v = y.values.copy()
            v[0, 3, 5] = -v[0, 3, 5] or 7
            y = QTensor.trusted(v, y.scale, y.bits)
        return super()._keep(name, y)


def test_rtl_outputs_are_what_the_next_op_receives(monkeypatch):
    monkeypatch.setattr("itx.sim.chain.RtlChain", _Altered)
    res = run_chain(*load(model_dir("integer")), IntConfig(), CFG, *sentence_ids("test", "en-de", 0), "enc.0.ffn")
    # w2 ran in RTL on the changed w1 output, bit-exact with golden on those inputs; the layer's output is not golden's
    assert [r.layer for r in res.steps] == ["enc.0.ffn.w1", "enc.0.ffn.w2"]
    assert all(isinstance(r, LayerResult) and r.mismatches == 0 for r in res.steps)
    assert res.output == "enc.0.ffn.w2" and res.difference is not None and res.difference["index"][1] == 3


@pytest.mark.parametrize("argv,needle", [
    (["--chain", "nope"], "--chain nope: no integer op"),
    (["--chain", "enc.0", "--gemms-only"], "--gemms-only does not apply to --chain"),
    (["--chain", "enc.0", "--rescale", "paper"], "--rescale"),
])
def test_chain_bad_options_are_one_line(tmp_path, capsys, argv, needle):
    assert main(["sim", "model", "--sentence", "0", "--report", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.iterdir())
