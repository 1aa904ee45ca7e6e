"""`itx bench fused_linear`: what compiled code would buy the integer decoder (issue 5's speed target), measured.

IntTransformer.linear's epilogue after the GEMM (Table 1's M(x, s, d) along the features with per-element dyadic
factors, Eq. 8 bias matching, Eq. 10 dyadic re-scaling per row) is ~50 numpy passes with their temporaries. This
experiment runs the same integer arithmetic as one numba loop per row, checks that it is bit-identical to the golden
model on every linear call of a real batch (values and scales, zero tolerance), and times both; with --decoder it
also times `itx bench decoder`'s same-work decode with the kernel in place (greedy outputs asserted identical).

numba is not a dependency of golden/ (the numpy model stays the reference; nothing outside this file imports the
kernel): `pip install -e '.[experiments]'`. Default knobs only (dyadic matching and re-scaling, half_away, row
granularity), which are what the kernel implements."""
from __future__ import annotations

import argparse
import math

import numpy as np

from bench.gemm import blas_info, median_times


def _kernel():
    try:
        import numba
    except ImportError:
        raise ValueError("numba is not installed: pip install -e '.[experiments]' (this experiment measures a "
                         "compiled kernel that the golden model does not use)") from None

    @numba.njit(inline="always")
    def round_shift_product(x, m, sh):   # golden.rounding.round_shift_product, half_away, sh <= 63
        p = x * m
        p = p + p - (1 if x < 0 else 0)
        return ((p >> sh) + 1) >> 1

    @numba.njit(inline="always")
    def dyadic_bits(t):                  # golden.quant.dyadic_factors from the float64 ratio's bits
        t += 1 << 21
        return ((t >> 22) & ((1 << 30) - 1)) | (1 << 30), min(1053 - (t >> 52), 63)

    @numba.njit
    def epilogue(c, sx, sw, bv, sb, q, acc_bits):
        """c [M, N] GEMM result at scale sx[i] * sw[j] -> (values [M, N], row scales [M], first bad row or -1)."""
        rows, n = c.shape
        y, scale = np.empty((rows, n), np.int64), np.empty(rows, np.float32)
        v, ratio, rb = np.empty(n, np.int64), np.empty(n, np.float64), np.empty(2, np.float64)
        bits, rbits = ratio.view(np.int64), rb.view(np.int64)
        lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
        for i in range(rows):
            smin = np.float32(np.inf)
            for j in range(n):
                smin = min(smin, np.float32(sx[i] * sw[j]))
            for j in range(n):           # the ratios first, so this loop vectorizes
                ratio[j] = np.float64(smin) / np.float64(np.float32(sx[i] * sw[j]))
            s2 = min(smin, sb)
            rb[0], rb[1] = np.float64(s2) / np.float64(sb), np.float64(s2) / np.float64(smin)
            bm, bsh = dyadic_bits(rbits[0])
            am, ash = dyadic_bits(rbits[1])
            big, bad = 0, False
            for j in range(n):
                m, sh = dyadic_bits(bits[j])
                a = round_shift_product(c[i, j], m, sh)
                if smin != s2:
                    a = round_shift_product(a, am, ash)
                b = bv[j] if sb == s2 else round_shift_product(bv[j], bm, bsh)
                v[j] = a + b
                big = max(big, abs(v[j]))
                bad |= v[j] < lo or v[j] > hi
            if bad:                      # golden: ops._wide's accumulator check
                return y, scale, i
            m, sh = np.int64(1), np.int64(0)
            if big > q:                  # golden.quant.rescale_multiplier
                sh = np.int64(math.frexp(np.float64(big))[1] - math.frexp(np.float64(q))[1]) + 30
                if (q << sh) // big < (1 << 30):
                    sh += 1
                m = (q << sh) // big
            for j in range(n):
                y[i, j] = round_shift_product(v[j], m, sh)
            scale[i] = np.float32(math.ldexp(np.float64(s2) * m, -sh))
            if not (0 < scale[i] < np.inf):
                return y, scale, i
        return y, scale, -1

    return epilogue


def fused_model(base, epilogue):
    """base (an IntTransformer) with linear() running the compiled epilogue; everything else is base's."""
    from golden.int_model import IntTransformer
    from golden.model import emit
    from golden.qtensor import QTensor, qmax
    from golden.quant import match_along

    c = base.icfg
    knobs = (c.match, c.rescale, c.rounding, c.granularity)
    if knobs != ("dyadic", "dyadic", "half_away", "row"):
        raise ValueError(f"fused_linear implements match/rescale dyadic, rounding half_away, granularity row; got {knobs}")

    class FusedLinear(IntTransformer):
        def linear(self, name, x):
            x = match_along(x, -1, c.match, c.rounding)
            w, b = self.q[f"{name}.w"], self.q[f"{name}.b"]
            acc = self.matmul(name, x, w)
            lead = x.shape[:-1]
            sx = np.broadcast_to(x.scale, lead + (1,)).reshape(-1)
            y, scale, bad = epilogue(acc.values.reshape(sx.size, -1), sx, w.scale.reshape(-1), b.values.reshape(-1),
                                     np.float32(b.scale.reshape(())), qmax(c.bits), c.acc_bits)
            if bad >= 0:
                raise ValueError(f"{name}: row {bad}: bias add leaves the accumulator or the scale is not finite")
            return emit(self.hook, name, QTensor.trusted(y.reshape(lead + (-1,)), scale.reshape(lead + (1,)), c.bits))

    model = object.__new__(FusedLinear)
    model.__dict__.update(base.__dict__)
    return model


def main(argv: list[str] | None = None) -> int:
    from bench.decoder import forced_decode
    from golden.int_model import IntTransformer
    from golden.model import BOS, FP32Transformer, greedy_search, load, model_dir, pad_batch
    from golden.tokenizer import Tokenizer
    from itx import data
    from itx.commands.eval import one_blas_thread

    p = argparse.ArgumentParser(prog="itx bench fused_linear", description=__doc__.split(":", 1)[1].strip())
    p.add_argument("--model", default="integer", help="committed model name or exported model dir")
    p.add_argument("--pair", choices=data.PAIRS, default="en-de")
    p.add_argument("--sentences", type=int, default=16, help="first N test sentences, one batch (default 16)")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions (default 3)")
    p.add_argument("--decoder", action="store_true", help="also time bench decoder's same-work decode with the kernel")
    args = p.parse_args(argv)
    if args.sentences < 1 or args.repeat < 1:
        raise ValueError(f"--sentences and --repeat must be >= 1, got {args.sentences}, {args.repeat}")
    epilogue = _kernel()
    tok, (cfg, weights) = Tokenizer(), load(model_dir(args.model))
    rows = data.read_tsv(data.split_path("test", args.pair))[: args.sentences]
    srcs = [tok.encode_source(r[2], args.pair[3:]) for r in rows]
    im = IntTransformer(cfg, weights)
    fused = fused_model(im, epilogue)
    calls = []   # (name, x) of every linear of one encode + one decode step
    recorder = object.__new__(IntTransformer)
    recorder.__dict__.update(im.__dict__, linear=lambda name, x: calls.append((name, x)) or im.linear(name, x))
    with one_blas_thread():
        print(f"{blas_info()}; model {args.model}; {len(srcs)} {args.pair} test sentences; integer: {im.icfg.describe()}")
        mem, mask = recorder.encode(pad_batch(srcs))
        recorder.decode(np.full((len(srcs), 1), BOS), mem, mask, [{} for _ in range(cfg.dec_layers)])
        for rows_kind, sel in (("encoder + cross-attention K/V", lambda x: x.shape[1] > 1),
                               ("one decode step", lambda x: x.shape[1] == 1)):
            some = [(n, x) for n, x in calls if sel(x)]
            for n, x in some:
                want, got = im.linear(n, x), fused.linear(n, x)
                if not (np.array_equal(want.values, got.values) and np.array_equal(want.scale, got.scale)):
                    raise AssertionError(f"{n}: fused epilogue differs from golden.int_model (shape {x.shape})")
            t_np, t_fu, t_mm = median_times([
                lambda: [im.linear(n, x) for n, x in some],
                lambda: [fused.linear(n, x) for n, x in some],
                lambda: [im.matmul(n, x, im.q[f"{n}.w"]) for n, x in some]], args.repeat)
            shape = "x".join(map(str, some[0][1].shape[:-1]))
            print(f"{rows_kind} ({len(some)} linears, rows {shape}; bit-identical): numpy {t_np * 1e3:.1f} ms, "
                  f"fused {t_fu * 1e3:.1f} ms ({t_np / t_fu:.2f}x); GEMM alone {t_mm * 1e3:.1f} ms, "
                  f"epilogue numpy {(t_np - t_mm) * 1e3:.1f} ms vs fused {(t_fu - t_mm) * 1e3:.1f} ms")
        if args.decoder:
            fp = FP32Transformer(cfg, weights)
            out_fp = greedy_search(fp, srcs)
            if greedy_search(fused, srcs) != greedy_search(im, srcs):
                raise AssertionError("greedy outputs differ between the fused and the numpy integer model")
            f_fp, f_int, f_fu = median_times([lambda m=m: forced_decode(m, srcs, out_fp) for m in (fp, im, fused)],
                                             args.repeat)
            print(f"same-work decode (bench decoder; greedy outputs identical): FP32 {f_fp:.2f} s, integer numpy "
                  f"{f_int:.2f} s (ratio {f_fp / f_int:.3f}), integer with fused linear {f_fu:.2f} s "
                  f"(ratio {f_fp / f_fu:.3f}; target >= 0.5)")
    return 0
