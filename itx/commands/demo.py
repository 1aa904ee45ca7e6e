"""`itx demo`: the main job. The shipped Integer Transformer on a slice of the test split of both pairs in FP32,
INT8, INT6 and the QCD baseline (BLEU table), example translations both ways, golden vectors of one sentence."""
from __future__ import annotations

import time
from pathlib import Path

EXAMPLES = ("Click the Save button to save the document.", "Select the cells that you want to format.")


def _run(args) -> int:
    from itx.golden import capture
    from itx.golden.int_config import IntConfig
    from itx.golden.int_model import IntTransformer
    from itx.golden.model import FP32Transformer, load, model_dir, translate
    from itx.golden.qcd_baseline import QCDTransformer
    from itx.golden.tokenizer import Tokenizer
    from itx import data
    from itx.commands.eval import PAIRS, evaluate, one_blas_thread

    from itx.golden.vectors import check_vector_dir

    check_vector_dir(args.out)      # before the BLEU runs
    tok, (cfg, weights) = Tokenizer(), load(model_dir(args.model))
    models = {"FP32": FP32Transformer(cfg, weights), "INT8": IntTransformer(cfg, weights, IntConfig(bits=8)),
              "INT6": IntTransformer(cfg, weights, IntConfig(bits=6)),
              "QCD8 (Prato)": QCDTransformer(cfg, weights, bits=8)}
    sizes = {p: len(data.read_split("test", p)) for p in PAIRS}
    print(f"itx demo: model {args.model} ({cfg.arch}: {cfg.attention} attention, {cfg.norm} LayerNorm), greedy, "
          f"BLEU (sacrebleu) on the first {args.limit} test sentences of each pair "
          f"(of {', '.join(f'{n} {p}' for p, n in sizes.items())}: a slice, not the full test set)", flush=True)
    with one_blas_thread():
        table = {}
        for name, model in models.items():
            for pair in PAIRS:
                t0 = time.perf_counter()
                score, _, _ = evaluate(model, tok, pair, "test", 1, args.limit)
                table[name, pair] = (score.score, time.perf_counter() - t0)
        print(f"\n{'precision':14s}" + "".join(f"{p + ' BLEU':>13s}{'% FP32':>8s}{'s':>6s}" for p in PAIRS))
        for name in models:
            cells = []
            for pair in PAIRS:
                bleu, secs = table[name, pair]
                ref = table["FP32", pair][0]
                cells.append(f"{bleu:13.2f}{(f'{100 * bleu / ref:.1f}' if ref else 'n/a'):>8s}{secs:6.0f}")
            print(f"{name:14s}" + "".join(cells))
        print()
        for lang in ("de", "fr"):
            for name in ("FP32", "INT8"):
                for src, out in zip(EXAMPLES, translate(models[name], tok, list(EXAMPLES), lang)):
                    print(f"en->{lang} {name:5s} {src!r} -> {out!r}")
        row = data.read_split("test", "en-de")[0]
        cap = capture.capture(cfg, weights, IntConfig(), tok.encode_source(row[2], "de"), tok.encode_target(row[3]))
        source = {"sentence": 0, "pair": "en-de", "split": "test", "model": args.model,
                  "int_config": IntConfig().describe()}
        path = capture.write(cap, args.out, IntConfig(), source=source)
    print(f"\ngolden vectors of test en-de sentence 0 ({len(cap.gemms)} GEMMs, INT8): {Path(path).resolve()}"
          f"\n  check / run on the RTL: itx vectors check {path} ; itx vectors run {path}")
    return 0


def register(sub) -> None:
    from itx.errors import int_in, nonempty

    p = sub.add_parser("demo", help="the main job: FP32 / INT8 / INT6 / QCD BLEU on a test slice, examples, vectors")
    p.add_argument("--model", default="integer", help="committed model name or exported model dir")
    p.add_argument("--limit", type=int_in(1), default=100, help="test sentences per pair (default 100)")
    p.add_argument("--out", type=nonempty, default="build/demo-vectors", help="directory for the golden vectors "
                   "(default build/demo-vectors, git-ignored)")
    p.set_defaults(func=_run)
