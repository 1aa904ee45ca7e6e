"""`itx bench decoder`: sentences/s of greedy decoding, integer model (golden.int_model) vs numpy FP32
(golden.model), same exported model, same sentences, interleaved in the same run."""
from __future__ import annotations

import argparse

from bench.gemm import blas_info, median_times


def main(argv: list[str] | None = None) -> int:
    from golden.int_model import IntTransformer
    from golden.model import FP32Transformer, greedy_search, load, model_dir
    from golden.tokenizer import Tokenizer
    from itx import data
    from itx.commands.eval import add_int_args, int_config, one_blas_thread

    p = argparse.ArgumentParser(prog="itx bench decoder", description=__doc__.split(":", 1)[1].strip(),
                                epilog="Times are medians of interleaved repetitions; one BLAS thread.")
    p.add_argument("--model", default="integer", help="committed model name or exported model dir")
    p.add_argument("--pair", choices=data.PAIRS, default="en-de")
    p.add_argument("--sentences", type=int, default=16, help="first N test sentences, one batch (default 16)")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions (default 3)")
    add_int_args(p)
    args = p.parse_args(argv)
    if args.sentences < 1 or args.repeat < 1:
        raise ValueError(f"--sentences and --repeat must be >= 1, got {args.sentences}, {args.repeat}")
    tok, (cfg, weights) = Tokenizer(), load(model_dir(args.model))
    rows = data.read_tsv(data.split_path("test", args.pair))[: args.sentences]
    srcs = [tok.encode_source(r[2], args.pair[3:]) for r in rows]
    fp, im = FP32Transformer(cfg, weights), IntTransformer(cfg, weights, int_config(args))
    with one_blas_thread():
        print(f"{blas_info()}; model {args.model}; {len(srcs)} {args.pair} test sentences, greedy, one batch; "
              f"integer: {im.icfg.describe()}")
        same = greedy_search(fp, srcs) == greedy_search(im, srcs)
        t_fp, t_int = median_times([lambda: greedy_search(fp, srcs), lambda: greedy_search(im, srcs)], args.repeat)
    n = len(srcs)
    print(f"FP32 numpy: {n / t_fp:8.2f} sentences/s ({t_fp:.2f} s)")
    print(f"integer   : {n / t_int:8.2f} sentences/s ({t_int:.2f} s)")
    print(f"ratio integer/FP32: {t_fp / t_int:.3f} (target >= 0.5); identical greedy outputs: {same}")
    return 0
