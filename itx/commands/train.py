"""`itx train`: train one architecture with PyTorch (needs the `train` extra) and export it to models/<arch>/."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def _run(args) -> int:
    try:
        from itx import train
    except ImportError as exc:
        raise ValueError(f"training needs PyTorch: pip install -e '.[train]' ({exc})") from None
    out = Path(args.out) if args.out else ROOT / "models" / args.model
    if args.export_checkpoint:
        train.export_checkpoint(args.model, Path(args.export_checkpoint), out)
        print(f"exported {out}")
        return 0
    train.train(args.model, args.steps, out, ROOT / "runs" / f"train_{args.model}", max_tokens=args.max_tokens,
                lr=args.lr, warmup=args.warmup, seed=args.seed, threads=args.threads, max_minutes=args.max_minutes,
                resume=Path(args.resume) if args.resume else None)
    print(f"exported {out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("train", help="train the vanilla or Integer Transformer (PyTorch) and export npz + JSON")
    p.add_argument("--model", choices=("vanilla", "integer"), required=True)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--max-tokens", type=int, default=2000, help="padded tokens per batch")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock guard (stops after a dev eval)")
    p.add_argument("--resume", metavar="CKPT", help="continue from a periodic checkpoint up to --steps")
    p.add_argument("--export-checkpoint", metavar="CKPT", help="only export this periodic checkpoint")
    p.add_argument("--out", help="export directory (default models/<model>)")
    p.set_defaults(func=_run)
