"""`itx train`: train one architecture with PyTorch (needs the `train` extra) and export it to models/<arch>/."""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def _run(args) -> int:
    # Idle OpenMP threads sleep instead of spinning: spinning threads slowed training 5-25x beside another process.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        from itx import train
    except ImportError as exc:
        raise ValueError(f"training needs PyTorch: pip install -e '.[train]' ({exc})") from None
    out = Path(args.out) if args.out else ROOT / "models" / args.model
    if args.export_checkpoint:
        train.export_checkpoint(args.model, Path(args.export_checkpoint), out)
        print(f"exported {out}")
        return 0
    run_dir = Path(args.run_dir) if args.run_dir else ROOT / "runs" / f"train_{args.model}"
    train.train(args.model, args.steps, out, run_dir, max_tokens=args.max_tokens, lr=args.lr, warmup=args.warmup,
                seed=args.seed, eval_every=args.eval_every, threads=args.threads, dropout=args.dropout,
                max_minutes=args.max_minutes, resume=args.resume, device=args.device, min_steps=args.min_steps,
                average=args.average, cooldown=args.cooldown)
    # The command that produced these weights (a resumed run repeats it with --resume).
    (out / "train.json").write_text(json.dumps({"command": shlex.join(["itx"] + sys.argv[1:])}, indent=2) + "\n")
    print(f"exported {out}")
    return 0


def register(sub) -> None:
    from itx.errors import float_in, int_in, nonempty

    p = sub.add_parser("train", help="train the vanilla or Integer Transformer (PyTorch) and export npz + JSON")
    p.add_argument("--model", choices=("vanilla", "integer"), required=True)
    p.add_argument("--steps", type=int_in(1), default=40000, help="step limit (training stops earlier on a plateau)")
    p.add_argument("--cooldown", type=int_in(0), default=0,
                   help="learning rate decays linearly to 0 over the last N of --steps (0: inverse-sqrt throughout)")
    p.add_argument("--min-steps", type=int_in(0), default=None,
                   help="no plateau stop before this step (default 4 x --eval-every)")
    p.add_argument("--eval-every", type=int_in(1), default=250, help="steps between dev evaluations and checkpoints")
    p.add_argument("--average", type=int_in(1), default=5,
                   help="average the last N dev-evaluated snapshots at the end when that lowers the dev loss")
    # >= 128: a batch must hold the longest training pair (itx.train.MAX_TOKENS + 1 pieces)
    p.add_argument("--max-tokens", type=int_in(128), default=2000, help="padded tokens per batch")
    p.add_argument("--lr", type=float_in(0, lo_open=True), default=1e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int_in(1), default=200)
    p.add_argument("--dropout", type=float_in(0, 0.9), default=0.1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int_in(1, 256), default=1, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--max-minutes", type=float_in(0, lo_open=True), default=None, help="wall-clock guard (stops after a dev eval)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    p.add_argument("--run-dir", type=nonempty, help="checkpoint directory (default runs/train_<model>)")
    p.add_argument("--export-checkpoint", type=nonempty, metavar="CKPT", help="only export this periodic checkpoint")
    p.add_argument("--out", type=nonempty, help="export directory (default models/<model>)")
    p.set_defaults(func=_run)
