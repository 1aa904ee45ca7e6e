"""Command-line options that several commands take, each defined once: the integer model's knobs (every field of
itx.golden.int_config.IntConfig, the knobs of golden/SPEC.md's table), the datapath widths (hw/config.toml or
--hw-config, overridable one by one), the array shape, and the corpus sentence a capture is of."""
from __future__ import annotations

import argparse
import re
from dataclasses import fields, replace
from pathlib import Path

from itx.golden.config import MAX_ARRAY_DIM, OVERFLOW_MODES, HwConfig, load_hw_config
from itx.golden.errors import UserError
from itx.golden.int_config import DIVISIONS, GRANULARITIES, MAX_BITS, MIN_BITS, MODULES, IntConfig, parse_modules
from itx.golden.quant import MATCH_MODES, RESCALE_MODES
from itx.golden.rounding import ROUNDINGS
from itx.errors import int_in, nonempty

_DEFAULT = IntConfig()


def _prefixes(text: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in text.split(","))
    if "" in names:     # an empty name would select nothing (or everything) silently
        raise argparse.ArgumentTypeError(f"empty layer name in {text!r}")
    return names


def _modules(text: str) -> frozenset:
    try:
        return parse_modules(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--int8-modules: ")) from None


# IntConfig field -> (option, argparse keywords, help). Every default is IntConfig's (None here: "not given").
KNOBS = {
    "bits": ("--bits", {"type": int_in(MIN_BITS, MAX_BITS)}, "activation and weight bits"),
    "granularity": ("--granularity", {"choices": GRANULARITIES},
                    "activation scale groups: row = B x T, batch = B, block = block x block tiles"),
    "block": ("--block", {"type": int_in(1, 1 << 16)}, "tile size for --granularity block"),
    "match": ("--match", {"choices": MATCH_MODES}, "Eq. 8 scale matching (the tflite modes as for --rescale)"),
    "rescale": ("--rescale", {"choices": RESCALE_MODES},
                "Eq. 10 re-scaling: paper ceil divisor, pow2 shift, dyadic multiplier + shift, tflite / "
                "tflite_single: TFLite's QuantizeMultiplier with gemmlowp double rounding / TFLITE_SINGLE_ROUNDING "
                "(all in itx_requant)"),
    "rounding": ("--rounding", {"choices": ROUNDINGS}, "rounding of every division of the data path"),
    "acc_bits": ("--acc-bits", {"type": int_in(16, 32)},
                 "accumulator bits of every integer op, GEMMs and element-wise, and of the RTL datapath "
                 "(default: hw/config.toml)"),
    "overflow": ("--overflow", {"choices": OVERFLOW_MODES}, "accumulator overflow (default: hw/config.toml)"),
    "param_bits": ("--param-bits", {"type": int_in(2, 16)}, "bits of biases, LayerNorm g/b, Poly b/delta"),
    "modules": ("--int8-modules", {"type": _modules},
                f"modules run in integers: comma list of {','.join(MODULES)}, or all / none"),
    "int_layers": ("--int8-layers", {"type": _prefixes},
                   "comma list of layer-name prefixes that run in integers, e.g. enc.0 or dec.1.ffn (default: every "
                   "layer)"),
    "fp32_layers": ("--fp32-layers", {"type": _prefixes}, "comma list of layer-name prefixes forced to FP32"),
    "attn_division": ("--attn-division", {"choices": DIVISIONS}, "Eq. 12's division: paper (as written) or fixed"),
    "attn_frac_bits": ("--attn-frac-bits", {"type": int_in(0, 16)}, "fraction bits of Eq. 12's fixed division"),
    "ln_division": ("--ln-division", {"choices": DIVISIONS}, "Eq. 13's division: paper (as written) or fixed"),
    "ln_frac_bits": ("--ln-frac-bits", {"type": int_in(0, 16)}, "fraction bits of Eq. 13's fixed division"),
}
assert set(KNOBS) == {f.name for f in fields(IntConfig)}, "every IntConfig knob needs its option"
ACCUMULATOR = ("acc_bits", "overflow")      # knobs that are also the RTL datapath's


def _show(value) -> str:
    return "all" if value == frozenset(MODULES) else ",".join(value) if isinstance(value, tuple) else str(value)


def _add(p, field: str) -> None:
    option, kwargs, text = KNOBS[field]
    default = getattr(_DEFAULT, field)
    shown = "" if field in (*ACCUMULATOR, "int_layers") else f" (default: {_show(default) or 'none'})"
    p.add_argument(option, dest=field, default=None, metavar=field.upper() if "type" in kwargs else None,
                   help=text + shown, **kwargs)


def add_int_args(p) -> None:
    """Every IntConfig knob as an option (defaults None: IntConfig's own); int_config() reads them back."""
    for field in KNOBS:
        _add(p, field)


def given_knobs(args) -> list[str]:
    """The knob options given on the command line."""
    return [KNOBS[f][0] for f in KNOBS if getattr(args, f, None) is not None]


def int_config(args=None, hw: HwConfig | None = None) -> IntConfig:
    """IntConfig from add_int_args options; knobs not given keep IntConfig's defaults, the accumulator
    hw's (the datapath of add_hw_args) when given. A knob value IntConfig refuses is a one-line error naming
    the option."""
    if args is None:
        return IntConfig()
    given = {f: getattr(args, f) for f in KNOBS if getattr(args, f, None) is not None}
    if hw is not None:
        given = {"acc_bits": hw.acc_bits, "overflow": hw.overflow, **given}
    try:
        return IntConfig(**given)
    except ValueError as exc:
        msg = str(exc)
        for field, (option, _, _) in KNOBS.items():
            msg = msg.replace(f"IntConfig.{field} ", f"{option} ")
        raise UserError(msg) from None


def add_hw_args(p, accumulator: bool = True) -> None:
    """The datapath: --hw-config FILE (default hw/config.toml) and --in-bits (and, unless the command already has
    them as knobs, --acc-bits / --overflow) overriding its fields; hw_config() reads them back."""
    p.add_argument("--hw-config", type=nonempty, help="datapath and array config (default hw/config.toml)")
    p.add_argument("--in-bits", type=int_in(2, 16), help="operand bits of the datapath (default: the config's)")
    if accumulator:
        for field in ACCUMULATOR:
            _add(p, field)


def hw_config(args) -> HwConfig:
    """The datapath of add_hw_args options: the config file with --in-bits / --acc-bits / --overflow applied."""
    path = getattr(args, "hw_config", None)
    try:
        cfg = load_hw_config(path)
    except ValueError as exc:
        raise UserError(f"--hw-config {exc}" if path else str(exc)) from None
    changes = {f: getattr(args, f) for f in ("in_bits", *ACCUMULATOR) if getattr(args, f, None) is not None}
    return replace(cfg, **changes)


def array(text: str) -> tuple[int, int]:
    """--array ROWSxCOLS."""
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match or not all(1 <= int(d) <= MAX_ARRAY_DIM for d in match.groups()):
        raise ValueError(f"--array: expected ROWSxCOLS with integers in 1..{MAX_ARRAY_DIM}, got {text!r}")
    return int(match[1]), int(match[2])


# ---- one sentence of the corpus, captured as golden vectors (itx vectors model, itx sim model) ------------------
def add_sentence_args(p) -> None:
    p.add_argument("--sentence", type=int_in(0), required=True, help="line of the split (0-based)")
    p.add_argument("--pair", choices=("en-de", "en-fr"), default="en-de")
    p.add_argument("--split", choices=("test", "dev"), default="test")
    p.add_argument("--model", default="integer", help="committed model name or exported model dir (default integer)")
    p.add_argument("--layer", action="append", default=[], type=nonempty, help="only GEMMs whose name starts with "
                   "this (repeatable), e.g. enc.0.")
    add_int_args(p)
    add_hw_args(p, accumulator=False)


def sentence_source(args, icfg: IntConfig) -> dict:
    """What a capture is of, recorded in its manifest (field 'source') and checked by readers."""
    return {"sentence": args.sentence, "pair": args.pair, "split": args.split, "model": str(args.model),
            "layers": list(args.layer), "int_config": icfg.describe(), "rescale": icfg.rescale,
            "knobs": {f: getattr(icfg, f) for f in UNIT_KNOBS}}


# The knobs the non-GEMM RTL units take (itx.sim.ops_run): recorded with a capture so its vectors can be rerun.
UNIT_KNOBS = ("bits", "match", "rescale", "rounding", "granularity", "ln_division", "ln_frac_bits")


def sentence_ids(split: str, pair: str, sentence: int) -> tuple[list[int], list[int]]:
    """(source ids, target ids incl. EOS) of line `sentence` of the corpus split, as itx.golden.capture.capture takes
    them; out of range: one line naming --sentence."""
    from itx.golden.tokenizer import Tokenizer
    from itx import data

    rows = data.read_split(split, pair)
    if not 0 <= sentence < len(rows):
        raise UserError(f"--sentence must be in 0..{len(rows) - 1} for {split} {pair}, got {sentence}")
    tok = Tokenizer()
    _, _, src, ref = rows[sentence][:4]
    return tok.encode_source(src, pair[3:]), tok.encode_target(ref)


def capture_sentence(args, out: str | Path, hw: HwConfig, icfg: IntConfig):
    """Capture the sentence of add_sentence_args in the golden model (FP32 and integer, teacher-forced) and write
    its vectors into `out` (itx.golden.capture.write); returns (Capture, manifest path)."""
    from itx.golden import capture
    from itx.golden.model import load, model_dir

    capture.check_capture(out, icfg, hw)          # before the model runs
    ids = sentence_ids(args.split, args.pair, args.sentence)
    cap = capture.capture(*load(model_dir(args.model)), icfg, *ids)
    return cap, capture.write(cap, out, icfg, sentence_source(args, icfg), hw, tuple(args.layer))
