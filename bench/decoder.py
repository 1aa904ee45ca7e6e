"""`itx bench decoder`: sentences/s of greedy decoding, integer model (itx.golden.int_model) vs numpy FP32
(itx.golden.model), same exported model, same sentences, interleaved in the same run.

A greedy batch runs until its longest output ends, so two models whose outputs differ (one runaway sentence is
enough) decode different numbers of steps. The headline ratio is therefore measured on identical work: both
decoders run greedy search's steps (incremental decode + argmax) over the same target, FP32's greedy outputs; the
free-running greedy ratio is printed beside it with each side's step count. The same work for the longest sentence alone
(a batch of 1) gives each decoder's cost per step where per-call overhead dominates (tiny arrays), which is why the
ratio grows with the batch (--sentences). With numba installed the integer model runs its compiled epilogues
(golden/kernels.py, same bits); the numpy-only integer model is then timed beside it on the same work. The integer
model's same-work runs are timed on every available GEMM backend (itx.golden.gemm.BACKENDS, ITX_GEMM), same bits."""
from __future__ import annotations


from itx.bench.gemm import available_backends, blas_info, median_times, timed_on
from itx.errors import ArgumentParser


def forced_decode(model, srcs: list[list[int]], tgts: list[list[int]]) -> None:
    """Greedy search's work on fixed targets: encode, then per position of [BOS] + tgt (longest tgt + 1 steps) one
    incremental decode step and the argmax, feeding tgts instead of the argmax."""
    from itx.golden.model import BOS, pad_batch

    tgt = pad_batch([[BOS] + t for t in tgts])
    mem, mask = model.encode(pad_batch(srcs))
    cache = [{} for _ in range(model.cfg.dec_layers)]
    for t in range(tgt.shape[1]):
        model.decode(tgt[:, t:t + 1], mem, mask, cache, start=t)[:, -1].argmax(-1)


def main(argv: list[str] | None = None) -> int:
    from itx.golden.int_model import IntTransformer
    from itx.golden.model import FP32Transformer, greedy_search, load, model_dir
    from itx.golden.tokenizer import Tokenizer
    from itx import data
    from itx.commands.eval import add_int_args, int_config, one_blas_thread

    p = ArgumentParser(prog="itx bench decoder", description=__doc__.split(":", 1)[1].strip(),
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
    rows = data.read_split("test", args.pair)
    if args.sentences > len(rows):
        raise ValueError(f"--sentences {args.sentences}: test.{args.pair} has only {len(rows)} sentence pairs")
    rows = rows[: args.sentences]
    srcs = [tok.encode_source(r[2], args.pair[3:]) for r in rows]
    fp, im = FP32Transformer(cfg, weights), IntTransformer(cfg, weights, int_config(args))
    numpy_only = None
    if im.kernels:
        numpy_only = IntTransformer(cfg, weights, im.icfg)
        numpy_only.kernels = False
    from itx.golden import gemm as G

    with one_blas_thread():
        backends = available_backends()
        print(f"{blas_info()}; model {args.model}; {len(srcs)} {args.pair} test sentences, greedy, one batch; "
              f"integer: {im.icfg.describe()}, compiled kernels {'on' if im.kernels else 'off'}")
        print(f"{G.describe_backend()}; integer timed on: {', '.join(backends)}")
        out_fp, out_int = greedy_search(fp, srcs), greedy_search(im, srcs)
        i = max(range(len(srcs)), key=lambda k: len(out_fp[k]))   # the longest output: the most steps to time
        one = [srcs[i]], [out_fp[i]]
        fns = [lambda: forced_decode(fp, srcs, out_fp), lambda: greedy_search(fp, srcs),
               lambda: greedy_search(im, srcs), lambda: forced_decode(fp, *one)]
        for name in backends:
            fns += [timed_on(name, lambda: forced_decode(im, srcs, out_fp)), timed_on(name, lambda: forced_decode(im, *one))]
        if numpy_only:
            fns.append(lambda: forced_decode(numpy_only, srcs, out_fp))
        f_fp, g_fp, g_int, o_fp, *ts = median_times(fns, args.repeat)
        G.set_backend()
    f_int, o_int = dict(zip(backends, ts[0:2 * len(backends):2])), dict(zip(backends, ts[1:2 * len(backends):2]))
    n, longest = len(srcs), [max(map(len, o)) for o in (out_fp, out_int)]
    print(f"same work ({longest[0] + 1} decode steps each, FP32's greedy outputs as targets):")
    print(f"  FP32 numpy: {n / f_fp:8.2f} sentences/s ({f_fp:.2f} s)")
    for name, t in f_int.items():
        print(f"  integer, GEMM {name + ':':12} {n / t:8.2f} sentences/s ({t:.2f} s; ratio to FP32 {f_fp / t:.3f})")
    if numpy_only:
        t = ts[-1]
        print(f"  integer, numpy reference only (ITX_KERNELS=0, GEMM {backends[0]}): {n / t:8.2f} sentences/s "
              f"({t:.2f} s; ratio to FP32 {f_fp / t:.3f})")
    print(f"free-running greedy (each model its own outputs; longest FP32 {longest[0]}, integer {longest[1]} tokens; "
          f"identical outputs: {out_fp == out_int}; GEMM {G.backend()}):")
    print(f"  FP32 numpy: {n / g_fp:8.2f} sentences/s ({g_fp:.2f} s)")
    print(f"  integer   : {n / g_int:8.2f} sentences/s ({g_int:.2f} s)")
    steps1 = len(one[1][0]) + 1
    print(f"batch of 1 (the longest sentence, same work, {steps1} steps, encoder included): FP32 "
          f"{o_fp / steps1 * 1e3:.2f} ms/step; " + "; ".join(
              f"integer, GEMM {name} {t / steps1 * 1e3:.2f} ms/step, ratio {o_fp / t:.3f}" for name, t in o_int.items()))
    print("ratio integer/FP32, same work: " + ", ".join(f"{name} {f_fp / t:.3f}" for name, t in f_int.items())
          + " (goal >= 1.0); batch of 1: " + ", ".join(f"{name} {o_fp / t:.3f}" for name, t in o_int.items())
          + f" (goal >= 0.5); free-running greedy: {g_fp / g_int:.3f}")
    return 0
