"""`itx translate "..."`: English -> German/French with a committed model (numpy FP32, no torch)."""
from __future__ import annotations

from itx.commands.eval import PRECISIONS


def _run(args) -> int:
    from itx.golden.int_model import search_view
    from itx.golden.model import model_dir, translate
    from itx.golden.tokenizer import Tokenizer

    model = PRECISIONS[args.precision](model_dir(args.model))
    for line in translate(search_view(model, args.beam), Tokenizer(), args.text, args.to, beam=args.beam):
        print(line)
    return 0


def register(sub) -> None:
    from itx.errors import int_in

    p = sub.add_parser("translate", help="translate English sentences with a committed model")
    p.add_argument("text", nargs="+", help="English sentence(s)")
    p.add_argument("--model", default="integer", help="vanilla | integer | path to an exported model dir")
    p.add_argument("--to", choices=("de", "fr"), default="de", help="target language")
    p.add_argument("--beam", type=int_in(1), default=4, help="beam size (1 = greedy, at most the vocabulary)")
    p.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32")
    p.set_defaults(func=_run)
