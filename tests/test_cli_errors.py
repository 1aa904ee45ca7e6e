"""The CLI's error contract (itx/errors.py), table-driven: every bad input is exit 2 and exactly one stderr line
naming the culprit (option, file, field or index), and leaves no file behind. Runs in-process (itx.cli.main) so
the whole table takes seconds; a few subprocess tests cover Ctrl-C and two concurrent vector writers."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import itx.golden.config
import itx.data
from itx.golden.config import ROOT
from itx.golden.vectors import MANIFEST, read_manifest, write_manifest
from itx.cli import main

MODEL = ROOT / "models" / "integer"


def _files(*dirs: Path) -> set[str]:
    return {str(p) for d in dirs for p in d.rglob("*")}


def _model(root: Path, name: str, edit) -> str:
    """A model dir with config.json edited (a dict update, or raw bytes) and the real weights linked."""
    d = root / name
    d.mkdir()
    if isinstance(edit, bytes):
        (d / "config.json").write_bytes(edit)
    elif edit is not None:
        cfg = json.loads((MODEL / "config.json").read_text())
        (d / "config.json").write_text(json.dumps({**cfg, **edit}))
    (d / "weights.npz").symlink_to(MODEL / "weights.npz")
    return str(d)


def _vectors(root: Path, name: str, source=None, edit=None) -> str:
    rng = np.random.default_rng(0)
    path = write_manifest(root / name, [("g", rng.integers(-128, 128, (4, 3)), rng.integers(-128, 128, (3, 5)))],
                          in_bits=8, acc_bits=32, overflow="wrap", source=source)
    if edit is not None:
        doc = json.loads(path.read_text())
        edit(doc)
        path.write_text(json.dumps(doc))
    return str(root / name)


def _hw(root: Path, name: str, text: str) -> Path:
    path = root / f"{name}.toml"
    path.write_text(text)
    return path


HW_OK = (ROOT / "hw" / "config.toml").read_text()


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """Bad inputs of every kind, built once: model dirs, vector dirs, hw configs, corpus dirs."""
    r = tmp_path_factory.mktemp("fx")
    f = {"root": r, "file": r / "a-file"}
    f["file"].write_text("not a directory\n")
    f["other"] = r / "other"
    (r / "other").mkdir()
    (r / "other" / "precious.txt").write_text("keep me\n")
    for name, edit in {"n_heads0": {"n_heads": 0}, "n_heads3": {"n_heads": 3}, "vocab": {"vocab_size": 4000},
                       "eps0": {"ln_eps": 0}, "eps_neg": {"ln_eps": -1e-6}, "eps_bool": {"ln_eps": True},
                       "poly0": {"poly_n": 0}, "poly_neg": {"poly_n": -1}, "poly_frac": {"poly_n": 2.5},
                       "enc_neg": {"enc_layers": -1}, "maxlen0": {"max_len": 0}, "arch": {"arch": "bogus"},
                       "dmodel_str": {"d_model": "256"}, "unknown": {"colour": "red"}, "json": b"{not json",
                       "utf8": b'{"arch": "\xff"}', "noconfig": None}.items():
        f[name] = _model(r, name, edit)
    f["vec_empty"] = _vectors(r, "vec_empty", edit=lambda d: d.update(gemms=[]))
    f["vec_s0"] = _vectors(r, "vec_s0", source={"sentence": 0, "pair": "en-de", "split": "test",
                                                "model": "integer", "layers": [], "rescale": "dyadic"})
    f["vec_nosrc"] = _vectors(r, "vec_nosrc")
    f["vec_m_str"] = _vectors(r, "vec_m_str", edit=lambda d: d["gemms"][0].update(m="4"))
    f["vec_dotdot"] = _vectors(r, "vec_dotdot", edit=lambda d: d["gemms"][0]["files"].update(a="../x.hex"))
    f["vec_sha"] = _vectors(r, "vec_sha", edit=lambda d: d["gemms"][0]["sha256"].update(b="0" * 64))
    (r / "vec_json").mkdir()
    (r / "vec_json" / MANIFEST).write_text("[1, 2")
    f["vec_json"] = str(r / "vec_json")
    (r / "rep" / "x.json").mkdir(parents=True)
    for name, text in {"acc_float": HW_OK.replace("acc_bits = 32", "acc_bits = 24.9"),
                       "acc_40": HW_OK.replace("acc_bits = 32", "acc_bits = 40"),
                       "rows_str": HW_OK.replace("rows = 8", 'rows = "8"'),
                       "rows0": HW_OK.replace("rows = 8", "rows = 0"),
                       "no_datapath": HW_OK.split("[datapath]")[0],
                       "overflow_int": HW_OK.replace('overflow = "wrap"', "overflow = 3"),
                       "toml": "[array\nrows = 8"}.items():
        f[f"hw_{name}"] = _hw(r, name, text)
    for name, manifest in {"man_json": "{", "man_dotdot": {"sha256": {"../a-file": "0" * 64}},
                           "man_digest": {"sha256": {"test.en-de.tsv": 5}}, "man_list": {"sha256": ["a"]},
                           "empty_split": None}.items():
        d = r / name
        d.mkdir()
        if manifest is not None:
            (d / "MANIFEST.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
        (d / "test.en-de.tsv").write_text("")
        f[name] = d
    return f


OUT = "{out}"
# (argv, substring naming the culprit); {out} is a fresh output path, {fx:name} a fixture, hw=/data= patch
CASES = [
    # argparse, one line
    ([], "COMMAND"),
    (["bogus"], "invalid choice"),
    (["vectors"], "required"),
    (["vectors", "gemm"], "--out"),
    (["vectors", "gemm", "--out", OUT, "--count", "x"], "--count"),
    (["vectors", "gemm", "--out", OUT, "--count", "0"], "--count"),
    (["vectors", "gemm", "--out", OUT, "--count", "-5"], "--count"),
    (["vectors", "gemm", "--out", OUT, "--count", "1000000"], "--count"),
    (["vectors", "gemm", "--out", OUT, "--seed", "-1"], "--seed"),
    (["vectors", "gemm", "--out", ""], "--out"),
    (["vectors", "gemm", "--out", "  "], "--out"),
    (["vectors", "gemm", "--out", OUT, "--shape", "0x4x4"], "--shape"),
    (["vectors", "gemm", "--out", OUT, "--shape", "4x4"], "--shape"),
    (["vectors", "gemm", "--out", OUT, "--shape", "-1x2x3"], "--shape"),
    (["vectors", "gemm", "--out", OUT, "--shape", "100000x100000x100000"], "--shape"),
    (["vectors", "gemm", "--out", OUT, "--count", "100000", "--shape", "300x300x300"], "--count"),
    (["vectors", "gemm", "--out", "{fx:file}"], "a-file"),
    (["vectors", "gemm", "--out", "{fx:other}"], "holds no manifest.json"),
    (["vectors", "gemm", "--out", OUT, "--bogus"], "--bogus"),
    (["vectors", "gemm", "--out", OUT, "--in-bits", "17"], "--in-bits"),
    (["vectors", "gemm", "--out", OUT, "--in-bits", "x"], "--in-bits"),
    (["vectors", "gemm", "--out", OUT, "--acc-bits", "8"], "--acc-bits"),
    (["vectors", "gemm", "--out", OUT, "--overflow", "clip"], "--overflow"),
    (["vectors", "check", "{fx:root}/missing"], "manifest not found"),
    (["vectors", "check", ""], "manifest"),
    (["vectors", "check", "{fx:vec_empty}"], "'gemms'"),
    (["vectors", "check", "{fx:vec_json}"], "not valid JSON"),
    (["vectors", "check", "{fx:vec_m_str}"], "gemms[0]: field 'm'"),
    (["vectors", "check", "{fx:vec_dotdot}"], "plain file name"),
    (["vectors", "check", "{fx:vec_sha}"], "sha256 mismatch"),
    (["vectors", "run", "{fx:vec_empty}"], "'gemms'"),
    (["vectors", "run", "{fx:vec_s0}", "--rows", "0"], "--rows"),
    (["vectors", "run", "{fx:vec_s0}", "--cols", "-3"], "--cols"),
    (["vectors", "run", "{fx:vec_s0}", "--rows", "1000"], "--rows"),
    (["vectors", "run", "{fx:vec_s0}", "--stall-in", "96"], "--stall-in"),
    (["vectors", "run", "{fx:vec_s0}", "--stall-out", "x"], "--stall-out"),
    (["vectors", "model", "--out", OUT, "--sentence", "-1"], "--sentence"),
    (["vectors", "model", "--out", OUT, "--sentence", "99999"], "--sentence"),
    (["vectors", "model", "--out", "", "--sentence", "0"], "--out"),
    (["vectors", "model", "--out", "{fx:other}", "--sentence", "0"], "holds no manifest.json"),
    (["vectors", "model", "--out", OUT, "--sentence", "0", "--model", "{fx:n_heads0}"], "n_heads"),
    (["vectors", "model", "--out", OUT, "--sentence", "0", "--int8-layers", "enc.9"], "--int8-layers"),
    (["vectors", "model", "--out", OUT, "--sentence", "0", "--int8-modules", ""], "--int8-modules"),
    (["vectors", "model", "--out", OUT, "--sentence", "0", "--bits", "12"], "bits"),
    # model config.json: every field's type and range, consistency with the weights
    *[(["eval", "--model", f"{{fx:{name}}}", "--limit", "1", "--pair", "en-de"], needle) for name, needle in [
        ("n_heads0", "'n_heads'"), ("n_heads3", "'n_heads'"), ("vocab", "'embed'"), ("eps0", "'ln_eps'"),
        ("eps_neg", "'ln_eps'"), ("eps_bool", "'ln_eps'"), ("poly0", "'poly_n'"), ("poly_neg", "'poly_n'"),
        ("poly_frac", "'poly_n'"), ("enc_neg", "'enc_layers'"), ("maxlen0", "'max_len'"), ("arch", "'arch'"),
        ("dmodel_str", "'d_model'"), ("unknown", "colour"), ("json", "not valid JSON"),
        ("utf8", "config.json"), ("noconfig", "config.json")]],
    # eval / translate options
    (["eval", "--precision", "int8", "--int8-layers", "", "--limit", "1"], "--int8-layers"),
    (["eval", "--precision", "int8", "--int8-layers", "enc.0,", "--limit", "1"], "--int8-layers"),
    (["eval", "--precision", "int8", "--int8-layers", "enc.0.self_attn.q", "--limit", "1"], "--int8-layers"),
    (["eval", "--precision", "int8", "--fp32-layers", "nope", "--limit", "1"], "--fp32-layers"),
    (["eval", "--precision", "int8", "--int8-modules", "attn,,ffn", "--limit", "1"], "--int8-modules"),
    (["eval", "--precision", "int8", "--int8-modules", "bogus", "--limit", "1"], "--int8-modules"),
    (["eval", "--beam", "0", "--limit", "1", "--model", "integer"], "--beam"),
    (["eval", "--limit", "0"], "--limit"),
    (["eval", "--pair", "xx"], "--pair"),
    (["eval", "--precision", "int8", "--bits", "5", "--limit", "1"], "bits"),
    (["eval", "--precision", "int8", "--acc-bits", "40", "--limit", "1"], "acc_bits"),
    (["translate", ""], "empty"),
    (["translate", "   "], "empty"),
    (["translate", "Click \udcff here."], "UTF-8"),
    (["translate", "Hello.", "--beam", "0"], "--beam"),
    (["translate", "Hello.", "--beam", "100000"], "--beam"),
    (["translate", "Hello.", "--to", "xx"], "--to"),
    # sim model
    (["sim", "model", "--sentence", "-1"], "--sentence"),
    (["sim", "model", "--sentence", "99999", "--vectors", OUT, "--report", "{out}/r"], "--sentence"),
    (["sim", "model", "--sentence", "0", "--array", "0x8"], "--array"),
    (["sim", "model", "--sentence", "0", "--array", "8x1000"], "--array"),
    (["sim", "model", "--sentence", "0", "--jobs", "0"], "--jobs"),
    (["sim", "model", "--sentence", "0", "--report", ""], "--report"),
    (["sim", "model", "--sentence", "0", "--layer", ""], "--layer"),
    (["sim", "model", "--sentence", "1", "--vectors", "{fx:vec_s0}", "--report", "{out}/r"], "sentence"),
    (["sim", "model", "--sentence", "0", "--pair", "en-fr", "--vectors", "{fx:vec_s0}", "--report", "{out}/r"],
     "pair"),
    (["sim", "model", "--sentence", "0", "--layer", "enc.0.", "--vectors", "{fx:vec_s0}", "--report", "{out}/r"],
     "layers"),
    (["sim", "model", "--sentence", "0", "--vectors", "{fx:vec_nosrc}", "--report", "{out}/r"], "'source'"),
    (["sim", "model", "--sentence", "0", "--vectors", "{fx:vec_s0}", "--report", "{fx:root}/rep/x"],
     "is a directory"),
    (["sim", "model", "--sentence", "0", "--layer", "no.such.prefix", "--vectors", OUT, "--report", "{out}/r"],
     "--layer"),
    # report
    (["report", "--out", "", "--quiet"], "--out"),
    (["report", "--out", "{fx:file}", "--quiet"], "a-file"),
    (["report", "--out", OUT, "--cache", "", "--quiet"], "--cache"),
    (["report", "--out", OUT, "--cache", "{out}/c", "--sentences", "100000", "--quiet"], "--sentences"),
    # data/MANIFEST.json
    (["data", "--verify", "data=man_json"], "MANIFEST.json"),
    (["data", "--verify", "data=man_dotdot"], "'../a-file' is not a plain file name"),
    (["data", "--verify", "data=man_digest"], "sha256.test.en-de.tsv"),
    (["data", "--verify", "data=man_list"], "'sha256'"),
    # an empty test split
    (["eval", "--limit", "1", "--pair", "en-de", "data=empty_split"], "empty"),
    (["vectors", "model", "--out", OUT, "--sentence", "0", "data=empty_split"], "empty"),
    # hw/config.toml
    *[(["vectors", "gemm", "--out", OUT, f"hw={name}"], needle) for name, needle in [
        ("acc_float", "datapath.acc_bits"), ("acc_40", "datapath.acc_bits"), ("rows_str", "array.rows"),
        ("rows0", "array.rows"), ("no_datapath", "datapath"), ("overflow_int", "datapath.overflow"),
        ("toml", "not valid TOML")]],
    # benchmarks and train
    (["bench", "decoder", "--sentences", "99999"], "--sentences"),
    (["bench", "decoder", "--sentences", "x"], "--sentences"),
    (["bench", "gemm", "--bogus"], "--bogus"),
    (["bench", "nope"], "invalid choice"),
    (["bench", "sim", "--shapes", "4x-1"], "--shapes"),
    (["bench", "sim", "--shapes", "65x4"], "--shapes"),
    (["bench", "sim", "--ks", "0"], "--ks"),
    (["bench", "sim", "--tiles", "0"], "--tiles"),
    (["bench", "gemm", "--shapes", "1x2"], "--shapes"),
    (["eval", "--limit", "5000", "--pair", "en-de"], "--limit 5000"),
    (["train"], "--model"),
    (["train", "--model", "integer", "--dropout", "2"], "--dropout"),
    (["train", "--model", "integer", "--lr", "0"], "--lr"),
    (["train", "--model", "integer", "--max-tokens", "10"], "--max-tokens"),
    (["train", "--model", "integer", "--steps", "x"], "--steps"),
    (["train", "--model", "integer", "--max-minutes", "nan"], "--max-minutes"),
]


def _expand(argv, fx, out):
    hw = data = None
    args = []
    for a in argv:
        if a.startswith("hw="):
            hw = fx[f"hw_{a[3:]}"]
        elif a.startswith("data="):
            data = fx[a[5:]]
        else:
            a = re.sub(r"\{fx:(\w+)\}", lambda m: str(fx[m[1]]), a)
            args.append(a.replace("{out}", str(out)))
    return args, hw, data


def test_table_is_large_enough():
    assert len(CASES) >= 60


@pytest.mark.parametrize("argv, needle", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_line_and_exit_2(argv, needle, fx, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    args, hw, data = _expand(argv, fx, out)
    if hw:
        monkeypatch.setattr(itx.golden.config, "HW_CONFIG", hw)
    if data:
        monkeypatch.setattr(itx.data, "DATA", data)
    monkeypatch.chdir(tmp_path)
    before = _files(tmp_path, fx["root"])
    code = main(args)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("itx") and ": error: " in lines[0] and needle in lines[0], lines[0]
    assert _files(tmp_path, fx["root"]) == before, "a failed command left files behind"


def test_internal_error_keeps_traceback_and_says_so(monkeypatch, capsys):
    import itx.commands.vectors as vectors

    monkeypatch.setattr(vectors, "_check", lambda args: 1 // 0)
    monkeypatch.setattr(vectors, "read_manifest", None)
    parser_main = main(["vectors", "check", "x"])
    err = capsys.readouterr().err
    assert parser_main == 3 and "Traceback" in err and "ZeroDivisionError" in err
    assert err.strip().splitlines()[-1].startswith("itx vectors check: internal error")


def test_library_value_error_is_internal_not_user_error(monkeypatch, capsys):
    """A ValueError from inside numpy means input reached it unvalidated: a bug, not a one-line user error."""
    import itx.commands.vectors as vectors

    monkeypatch.setattr(vectors, "_check", lambda args: np.zeros(2) @ np.zeros(3))
    assert main(["vectors", "check", "x"]) == 3
    assert "internal error" in capsys.readouterr().err


# ---- verification that cannot pass on nothing, and mismatches as reports --------------------------------------
def _corrupt_c(directory: str) -> None:
    """Change one C value and fix up its sha256: only recomputing C = A.B can notice."""
    man = read_manifest(directory)
    e = man.gemms[0]
    path = man.file(e, "c")
    lines = path.read_text().splitlines()
    lines[3] = "00000000" if lines[3] != "00000000" else "00000001"
    path.write_text("\n".join(lines) + "\n")
    doc = json.loads(man.path.read_text())
    doc["gemms"][0]["sha256"]["c"] = hashlib.sha256(path.read_bytes()).hexdigest()
    man.path.write_text(json.dumps(doc))


def _passes_then_fails_on_corrupt_c(tmp_path, capsys, action: str) -> str:
    """`itx vectors ACTION` passes on a good set, then exit 1 with one line (no traceback) once C is wrong."""
    d = _vectors(tmp_path, "v")
    assert main(["vectors", action, d]) == 0
    _corrupt_c(d)
    capsys.readouterr()
    assert main(["vectors", action, d]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_vectors_check_recomputes_c(tmp_path, capsys):
    err = _passes_then_fails_on_corrupt_c(tmp_path, capsys, "check")
    assert "C[0, 3]" in err and "expected" in err and ("file has 0" in err or "file has 1" in err), err


@pytest.mark.skipif(not shutil.which("iverilog"), reason="iverilog not on PATH")
def test_vectors_run_mismatch_is_a_report_not_a_traceback(tmp_path, capsys):
    err = _passes_then_fails_on_corrupt_c(tmp_path, capsys, "run")
    assert "gemm 0 (g)" in err and "row 0 col 3" in err and ("expected 0, got" in err or "expected 1, got" in err)


def test_vector_set_replaced_whole_stale_files_removed(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["vectors", "gemm", "--out", str(out), "--count", "5"]) == 0
    assert main(["vectors", "gemm", "--out", str(out), "--count", "2"]) == 0
    assert len(list(out.glob("*.hex"))) == 6 and main(["vectors", "check", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"], "staging or lock files left behind"


def test_data_verify_passes_on_the_checkout(capsys):
    assert main(["data", "--verify"]) == 0
    assert "match data/MANIFEST.json" in capsys.readouterr().out


# ---- Ctrl-C and concurrency: real processes --------------------------------------------------------------------
def _itx(*argv) -> list[str]:
    return [sys.executable, "-c", "import sys; from itx.cli import main; sys.exit(main(sys.argv[1:]))", *argv]


def _interrupt(proc) -> str:
    """SIGINT; the command's one line must come long before the rest of its work would end (measured 0.05 s on an
    idle machine, 5.8 s once on a loaded one; the bound is not a speed claim: a run that waited for its queued work
    took > 10 min), the exit after interpreter teardown."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    line = proc.stderr.readline()
    assert time.monotonic() - sent < 30, f"no reaction within 30 s of SIGINT: {line!r}"
    rest = proc.communicate(timeout=10)[1]
    return line + rest


ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
BIG = ["--count", "4000", "--shape", "64x64x64"]      # a few seconds of writing


def test_ctrl_c_stops_at_once_leaves_nothing_and_a_rerun_works(tmp_path):
    out = tmp_path / "v"
    proc = subprocess.Popen(_itx("vectors", "gemm", "--out", str(out), *BIG), env=ENV, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".v.tmp-*/*.hex")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    err = _interrupt(proc)
    assert proc.returncode == 130 and err.strip().splitlines() == ["itx vectors gemm: interrupted; no output was "
                                                                     "written"], err
    assert list(tmp_path.iterdir()) == [], "partial output left behind"
    done = subprocess.run(_itx("vectors", "gemm", "--out", str(out), "--count", "3"), env=ENV, capture_output=True)
    assert done.returncode == 0 and main(["vectors", "check", str(out)]) == 0


def test_two_writers_never_mix_their_sets(tmp_path):
    """Two runs into one directory: each either wins whole or is refused with one line; the set left behind is
    exactly one run's (its seed) and checks."""
    out = tmp_path / "v"
    procs = [subprocess.Popen(_itx("vectors", "gemm", "--out", str(out), "--seed", str(seed), "--count", "600",
                                   "--shape", "32x32x32"), env=ENV, stderr=subprocess.PIPE, text=True)
             for seed in (1, 2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for code, err in results:
        assert code == 0 or (code == 2 and len(err.strip().splitlines()) == 1 and "another run" in err), err
    man = read_manifest(out)
    assert man.seed in [s for s, (code, _) in zip((1, 2), results) if code == 0]
    rng = np.random.default_rng(man.seed)
    a = rng.integers(-128, 128, (32, 32))
    assert np.array_equal(man.load(man.gemms[0], "a"), a)
    assert main(["vectors", "check", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]


def test_lock_refuses_a_second_writer_in_process(tmp_path):
    from itx.golden.atomic import staged_dir
    from itx.golden.errors import UserError

    with staged_dir(tmp_path / "v", MANIFEST) as stage:
        (stage / MANIFEST).write_text("{}")
        with pytest.raises(UserError, match="another run is writing"):
            with staged_dir(tmp_path / "v", MANIFEST):
                pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]


@pytest.mark.skipif(not shutil.which("iverilog"), reason="iverilog not on PATH")
def test_ctrl_c_stops_sim_model_pool_at_once(tmp_path):
    """`itx sim model --jobs 2`: the thread pool neither waits for queued GEMMs nor for running simulators."""
    report = tmp_path / "r" / "s0"
    proc = subprocess.Popen(_itx("sim", "model", "--sentence", "0", "--layer", "enc.0.", "--jobs", "2", "--vectors",
                                 str(tmp_path / "v"), "--report", str(report)),
                            env={**ENV, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    for line in proc.stdout:          # the first compared GEMM: the pool is running
        if line.split()[:1] == ["0"]:
            break
    assert proc.poll() is None, "the run ended before it could be interrupted"
    err = _interrupt(proc)
    assert proc.returncode == 130 and len(err.strip().splitlines()) == 1 and "interrupted" in err, err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir()), "a report was written"


def test_vectors_check_recomputes_every_requant_y(tmp_path, capsys):
    """A sentence's vector set: every Y of requant.json is recomputed from C and its factors; a wrong Y whose
    sha256 was fixed up is a Mismatch (exit 1, one line naming the file, index, expected and got)."""
    import hashlib
    import json

    from itx.golden.config import load_hw_config
    from itx.sim.model_run import sentence_vectors

    out = tmp_path / "v"
    man, _ = sentence_vectors(0, load_hw_config(), out, layers=("enc.0.self_attn.q",))
    assert main(["vectors", "check", str(man.path)]) == 0
    assert "every Y of 1 re-scaled GEMMs" in capsys.readouterr().out
    doc = json.loads((out / "requant.json").read_text())
    entry = next(iter(doc["gemms"].values()))
    y = out / entry["files"]["y"]
    lines = y.read_text().split("\n")
    lines[0] = "01" if lines[0] != "01" else "02"
    y.write_text("\n".join(lines))
    entry["sha256"]["y"] = hashlib.sha256(y.read_bytes()).hexdigest()
    (out / "requant.json").write_text(json.dumps(doc))
    assert main(["vectors", "check", str(man.path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Y[0, 0]: expected" in err and y.name in err
