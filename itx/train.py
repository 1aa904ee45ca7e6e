"""PyTorch training of the vanilla and the Integer Transformer (Lin et al. 2020), and export to npz + JSON.

The only module that imports torch. Layer names match golden/model.py so export is a rename-free dump:
weights are stored as float16 (the fp16-rounded weights ARE the model) with matrices laid out [in, out].
"""
from __future__ import annotations

import csv
import json
import math
import os
import pickle
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from itx.golden import model as gm
from itx.golden.tokenizer import BOS, EOS, PAD, Tokenizer
from itx import data

ROOT = Path(__file__).resolve().parent.parent
MAX_TOKENS = 100  # drop longer training pairs (99th percentile is ~96 pieces)


class Linear(nn.Module):
    """y = x @ w + b with w [in, out], the layout golden/model.py uses."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(d_in, d_out))
        self.b = nn.Parameter(torch.zeros(d_out))
        nn.init.xavier_uniform_(self.w)

    def forward(self, x):
        return x @ self.w + self.b


class Norm(nn.Module):
    """LayerNorm (vanilla) or L1 LayerNorm, Lin et al. Eq. 13: g*(x-mu)/(C*mean|x-mu| + eps) + b."""

    def __init__(self, d: int, kind: str, eps: float) -> None:
        super().__init__()
        self.kind, self.eps = kind, eps
        self.g = nn.Parameter(torch.ones(d))
        self.b = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        xc = x - x.mean(-1, keepdim=True)
        if self.kind == "l1":
            return self.g * xc / (gm.L1_C * xc.abs().mean(-1, keepdim=True) + self.eps) + self.b
        return self.g * xc / torch.sqrt((xc * xc).mean(-1, keepdim=True) + self.eps) + self.b


class Attention(nn.Module):
    """Multi-head attention; softmax or polynomial attention Lin et al. Eq. 11-12 (learned b, delta per head)."""

    def __init__(self, cfg: gm.ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.h, self.cfg = cfg.n_heads, cfg
        self.q, self.k, self.v, self.o = (Linear(d, d) for _ in range(4))
        if cfg.attention == "poly":
            self.poly_b = nn.Parameter(torch.full((cfg.n_heads,), cfg.poly_b_init))
            self.poly_delta = nn.Parameter(torch.full((cfg.n_heads,), cfg.poly_delta_init))

    def heads(self, x):
        b, t, d = x.shape
        return x.view(b, t, self.h, d // self.h).transpose(1, 2)

    def forward(self, x, mem, mask):
        q, k, v = self.heads(self.q(x)), self.heads(self.k(mem)), self.heads(self.v(mem))
        s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if self.cfg.attention == "poly":
            p = F.relu(s + self.poly_b.view(1, -1, 1, 1)) ** self.cfg.poly_n + self.poly_delta.abs().view(1, -1, 1, 1)
            p = p * mask
            a = p / p.sum(-1, keepdim=True)
        else:
            a = torch.softmax(s.masked_fill(mask == 0, -1e9), -1)
        out = (a @ v).transpose(1, 2).reshape(x.shape)
        return self.o(out)


class FFN(nn.Module):
    def __init__(self, cfg: gm.ModelConfig) -> None:
        super().__init__()
        self.w1, self.w2 = Linear(cfg.d_model, cfg.d_ff), Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x):
        return self.w2(F.relu(self.w1(x)))


class EncLayer(nn.Module):
    def __init__(self, cfg, drop) -> None:
        super().__init__()
        self.ln1, self.ln2 = Norm(cfg.d_model, cfg.norm, cfg.ln_eps), Norm(cfg.d_model, cfg.norm, cfg.ln_eps)
        self.self_attn, self.ffn, self.drop = Attention(cfg), FFN(cfg), drop

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.drop(self.self_attn(h, h, mask))
        return x + self.drop(self.ffn(self.ln2(x)))


class DecLayer(nn.Module):
    def __init__(self, cfg, drop) -> None:
        super().__init__()
        self.ln1, self.ln2, self.ln3 = (Norm(cfg.d_model, cfg.norm, cfg.ln_eps) for _ in range(3))
        self.self_attn, self.cross_attn, self.ffn, self.drop = Attention(cfg), Attention(cfg), FFN(cfg), drop

    def forward(self, x, mem, self_mask, cross_mask):
        h = self.ln1(x)
        x = x + self.drop(self.self_attn(h, h, self_mask))
        x = x + self.drop(self.cross_attn(self.ln2(x), mem, cross_mask))
        return x + self.drop(self.ffn(self.ln3(x)))


class Stack(nn.Module):
    """Layers named "0", "1", ... and "ln_f", so parameter names read enc.0.ln1.g, enc.ln_f.g."""

    def __init__(self, layers, ln_f) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            self.add_module(str(i), layer)
        self.ln_f, self.n = ln_f, len(layers)

    def layer(self, i):
        return getattr(self, str(i))


class Transformer(nn.Module):
    """Pre-LN encoder-decoder with shared src/tgt/output embeddings and sinusoidal positions."""

    def __init__(self, cfg: gm.ModelConfig, dropout: float = 0.1) -> None:
        super().__init__()
        self.cfg, drop = cfg, nn.Dropout(dropout)
        self.embed = nn.Parameter(torch.randn(cfg.vocab_size, cfg.d_model) * cfg.d_model ** -0.5)
        norm = lambda: Norm(cfg.d_model, cfg.norm, cfg.ln_eps)  # noqa: E731
        self.enc = Stack([EncLayer(cfg, drop) for _ in range(cfg.enc_layers)], norm())
        self.dec = Stack([DecLayer(cfg, drop) for _ in range(cfg.dec_layers)], norm())
        self.register_buffer("pos", torch.from_numpy(gm.sinusoid(cfg.max_len, cfg.d_model)), persistent=False)
        self.drop = drop

    def embedding(self, ids):
        return self.drop(self.embed[ids] * math.sqrt(self.cfg.d_model) + self.pos[: ids.shape[1]])

    def encode(self, src):
        mask = (src != PAD)[:, None, None, :].float()
        x = self.embedding(src)
        for i in range(self.enc.n):
            x = self.enc.layer(i)(x, mask)
        return self.enc.ln_f(x), mask

    def forward(self, src, tgt_in):
        mem, cross_mask = self.encode(src)
        t = tgt_in.shape[1]
        self_mask = torch.tril(torch.ones(t, t, device=src.device))[None, None]
        x = self.embedding(tgt_in)
        for i in range(self.dec.n):
            x = self.dec.layer(i)(x, mem, self_mask, cross_mask)
        return self.dec.ln_f(x) @ self.embed.T


def config_for(arch: str, vocab_size: int) -> gm.ModelConfig:
    """The two architectures of issue 4: identical sizes, only attention and normalization differ."""
    integer = arch == "integer"
    return gm.ModelConfig(arch=arch, vocab_size=vocab_size, d_model=256, n_heads=4, d_ff=512, enc_layers=3,
                          dec_layers=2, attention="poly" if integer else "softmax", norm="l1" if integer else "l2",
                          ln_eps=1e-6 if integer else 1e-5)


def load_pairs(tok: Tokenizer, split: str) -> list[tuple[list[int], list[int]]]:
    """(source ids, target ids) for both pairs, long pairs dropped."""
    out = []
    for pair in data.PAIRS:
        for _, _, en, tgt in data.read_tsv(data.split_path(split, pair)):
            s, t = tok.encode_source(en, pair[3:]), tok.encode_target(tgt)
            if len(s) <= MAX_TOKENS and len(t) <= MAX_TOKENS:
                out.append((s, t))
    return out


def epoch_groups(pairs, max_tokens: int, rng: random.Random) -> list[list[int]]:
    """One epoch's token-based batches (lists of pair indices) of similar length, in shuffled order."""
    order = sorted(range(len(pairs)), key=lambda i: (len(pairs[i][1]), len(pairs[i][0]), rng.random()))
    groups, cur, longest = [], [], 0
    for i in order:
        longest = max(longest, len(pairs[i][0]), len(pairs[i][1]) + 1)
        if cur and longest * (len(cur) + 1) > max_tokens:
            groups.append(cur)
            cur, longest = [], max(len(pairs[i][0]), len(pairs[i][1]) + 1)
        cur.append(i)
    groups.append(cur)
    rng.shuffle(groups)
    return groups


def batches(pairs, max_tokens: int, rng: random.Random):
    """Padded (src, tgt_in, tgt_out) tensors of one epoch."""
    for g in epoch_groups(pairs, max_tokens, rng):
        yield collate([pairs[i] for i in g])


def collate(items):
    ls, lt = max(len(s) for s, _ in items), max(len(t) for _, t in items) + 1
    src = torch.full((len(items), ls), PAD, dtype=torch.long)
    tin, tout = (torch.full((len(items), lt - 1), PAD, dtype=torch.long) for _ in range(2))
    for r, (s, t) in enumerate(items):
        src[r, : len(s)] = torch.tensor(s)
        tin[r, : len(t)] = torch.tensor([BOS] + t[:-1])
        tout[r, : len(t)] = torch.tensor(t)
    return src, tin, tout


def export(model: Transformer, out_dir: Path) -> Path:
    """models/<name>/{config.json, weights.npz}: fp16 weights named like golden/model.py's layers."""
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().numpy().astype(np.float16) for k, v in model.state_dict().items()}
    np.savez_compressed(out_dir / gm.WEIGHTS, **weights)
    (out_dir / gm.CONFIG).write_text(json.dumps(model.cfg.to_dict(), indent=2) + "\n")
    return out_dir


def export_checkpoint(arch: str, ckpt: Path, out_dir: Path) -> Path:
    """Export a training checkpoint (runs/train_<arch>/ckpt.pt, or one of its snapshots/stepNNNNNN.pt, which hold
    the weights alone) plus its reference logits."""
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: checkpoint missing")
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ValueError(f"{ckpt}: not a readable torch checkpoint ({str(exc).splitlines()[0]})") from None
    weights = state.get("model", state) if isinstance(state, dict) else {}
    if "embed" not in weights:
        raise ValueError(f"{ckpt}: not an itx train checkpoint or snapshot (no 'embed' weights)")
    model = Transformer(config_for(arch, weights["embed"].shape[0]))
    model.load_state_dict(weights)
    reference_logits(export(model.eval(), out_dir))
    return out_dir


def load_exported(out_dir: Path) -> Transformer:
    """Torch model holding exactly the exported (fp16-rounded, float32) weights, in eval mode."""
    cfg, weights = gm.load(out_dir)
    model = Transformer(cfg)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return model.eval()


def reference_logits(out_dir: Path, n: int = 1, max_tgt: int = 12) -> Path:
    """Torch logits (teacher-forced, first max_tgt target tokens) on the first n en-de and en-fr test pairs:
    the fixture the numpy path must match without torch. Kept short: it is committed next to the weights."""
    model, tok = load_exported(out_dir), Tokenizer()
    arrays = {}
    for pair in data.PAIRS:
        for j, (_, _, en, tgt) in enumerate(data.read_tsv(data.split_path("test", pair))[:n]):
            src, tin, _ = collate([(tok.encode_source(en, pair[3:]), tok.encode_target(tgt)[:max_tgt])])
            with torch.no_grad():
                arrays[f"{pair}.{j}.src"], arrays[f"{pair}.{j}.tgt_in"] = src[0].numpy(), tin[0].numpy()
                arrays[f"{pair}.{j}.logits"] = model(src, tin)[0].numpy()
    path = out_dir / gm.REFERENCE
    np.savez_compressed(path, **arrays)
    return path


def plot_curve(csv_path: Path, png_path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(csv_path.open()))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([int(r["step"]) for r in rows], [float(r["train_loss"]) for r in rows], label="train (smoothed CE)")
    dev = [r for r in rows if r["dev_loss"]]
    ax.plot([int(r["step"]) for r in dev], [float(r["dev_loss"]) for r in dev], "o-", label="dev")
    ax.set(xlabel="step", ylabel="loss (nats/token)", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def dev_loss(model, dev_batches, device: str = "cpu") -> float:
    model.eval()
    tot, n = 0.0, 0
    with torch.no_grad():
        for src, tin, tout in dev_batches:
            src, tin, tout = src.to(device), tin.to(device), tout.to(device)
            logits = model(src, tin)
            tot += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tout.reshape(-1), ignore_index=PAD,
                                   reduction="sum").item()
            n += int((tout != PAD).sum())
    model.train()
    return tot / n


def plateaued(evals: list[tuple[int, float]], min_steps: int, window: float = 0.2, rel: float = 0.01) -> bool:
    """The stopping rule: the best dev loss of the last `window` of steps improves on the best before it by
    less than `rel` (relative), once at least min_steps have run."""
    step = evals[-1][0]
    if step < min_steps:
        return False
    cut = (1 - window) * step
    before = [loss for s, loss in evals if s <= cut]
    recent = [loss for s, loss in evals if s > cut]
    return bool(before) and bool(recent) and (min(before) - min(recent)) < rel * min(before)


def lr_factor(step: int, warmup: int, steps: int, cooldown: int = 0) -> float:
    """The learning rate at `step` as a fraction of the peak: linear warm-up, inverse-sqrt decay, and over the last
    `cooldown` of `steps` a linear fall to 0 (a function of the step alone, so a resumed run is the same run)."""
    base = min((step + 1) / warmup, math.sqrt(warmup / (step + 1)))
    return base * min(1.0, (steps - step) / cooldown) if cooldown else base


def _save(obj, path: Path) -> None:
    """torch.save through a temporary file, so an interrupted save never leaves a truncated checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _average(paths: list[Path]) -> dict:
    """Element-wise mean of the model weights in these snapshots (checkpoint averaging)."""
    states = [torch.load(q, map_location="cpu", weights_only=True) for q in paths]
    return {k: sum(st[k].double() for st in states).div(len(states)).float() for k in states[0]}


def train(arch: str, steps: int, out_dir: Path, run_dir: Path, max_tokens: int = 2000, warmup: int = 200,
          lr: float = 1e-3, seed: int = 1, eval_every: int = 250, threads: int = 1, dropout: float = 0.1,
          max_minutes: float | None = None, resume: bool = False, device: str = "cpu",
          min_steps: int | None = None, average: int = 5, cooldown: int = 0) -> Path:
    """Adam(0.9, 0.997), inverse-sqrt warm-up, label smoothing 0.1, until the dev loss plateaus (`plateaued`)
    or `steps`; then the last `average` dev-evaluated snapshots are averaged if that lowers the dev loss.
    cooldown: the learning rate falls linearly to 0 over the last `cooldown` of `steps` (warmup-stable-decay: an
    inverse-sqrt run's dev loss falls as a power law, a few % per 20% more steps, and does not plateau).

    Exactly resumable: run_dir/ckpt.pt (written atomically at every dev evaluation) holds the model, Adam, the
    step, the epoch and the batch index within it (epoch e's order comes from Random(seed, e)) and the torch RNG
    state, so an interrupted run continued with resume=True computes what an uninterrupted one would.
    max_minutes is a wall-clock guard for a shared machine: training stops early (after a dev evaluation)."""
    from tqdm import tqdm

    if not 0 <= cooldown <= steps:
        raise ValueError(f"--cooldown {cooldown}: must be in [0, --steps {steps}]")
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    tok = Tokenizer()
    train_pairs, dev_pairs = load_pairs(tok, "train"), load_pairs(tok, "dev")
    dev_batches = list(batches(dev_pairs, max_tokens, random.Random(0)))
    model = Transformer(config_for(arch, tok.vocab_size), dropout).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.997), eps=1e-9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warmup, steps, cooldown))
    run_dir.mkdir(parents=True, exist_ok=True)
    snaps = run_dir / "snapshots"
    snaps.mkdir(exist_ok=True)
    reports = ROOT / "reports"
    reports.mkdir(exist_ok=True)
    csv_path = reports / f"train_{arch}.csv"
    ckpt_path = run_dir / "ckpt.pt"
    step, epoch, index, avg, evals, t0 = 0, 0, 0, None, [], time.time()
    started = t0  # the wall-clock guard counts this run only
    min_steps = 4 * eval_every if min_steps is None else min_steps
    if not resume:
        with csv_path.open("w") as f:
            f.write("step,seconds,lr,train_loss,dev_loss\n")
    else:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"{ckpt_path}: no checkpoint to resume from")
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = sched.last_epoch = state["step"]
        if cooldown and steps - cooldown < step:
            raise ValueError(f"--cooldown {cooldown} with --steps {steps} starts the decay at step {steps - cooldown}, "
                             f"before the checkpoint's step {step}: the run would differ from one run straight through")
        epoch, index, avg, evals = state["epoch"], state["index"], state["avg"], state["evals"]
        torch.set_rng_state(state["rng"])
        rows = [r for r in csv.DictReader(csv_path.open()) if int(r["step"]) <= step]  # drop rows past the ckpt
        with csv_path.open("w") as f:
            f.write("step,seconds,lr,train_loss,dev_loss\n")
            f.writelines(",".join(r[k] for k in ("step", "seconds", "lr", "train_loss", "dev_loss")) + "\n"
                         for r in rows)
        t0 -= float(rows[-1]["seconds"]) if rows else 0.0
    groups = epoch_groups(train_pairs, max_tokens, random.Random(seed * 1_000_003 + epoch))
    bar = tqdm(total=steps, initial=step, desc=f"train {arch}", mininterval=10)
    stop = step >= steps
    while not stop:
        if index == len(groups):
            epoch, index = epoch + 1, 0
            groups = epoch_groups(train_pairs, max_tokens, random.Random(seed * 1_000_003 + epoch))
        src, tin, tout = (t.to(device) for t in collate([train_pairs[i] for i in groups[index]]))
        index += 1
        logits = model(src, tin)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tout.reshape(-1), ignore_index=PAD,
                               label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        avg = loss.item() if avg is None else 0.98 * avg + 0.02 * loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{avg:.3f}", epoch=epoch, refresh=False)
        if step % 50 == 0 or step == steps:
            dl = dev_loss(model, dev_batches, device) if step % eval_every == 0 or step == steps else None
            with csv_path.open("a") as f:
                f.write(f"{step},{time.time() - t0:.1f},{sched.get_last_lr()[0]:.6g},{avg:.4f},"
                        f"{'' if dl is None else f'{dl:.4f}'}\n")
            if dl is not None:
                evals.append((step, dl))
                _save({k: v.cpu() for k, v in model.state_dict().items()}, snaps / f"step{step:06d}.pt")
                for old in sorted(snaps.glob("step*.pt"))[:-average]:
                    old.unlink()
                _save({"step": step, "epoch": epoch, "index": index, "avg": avg, "evals": evals,
                       "rng": torch.get_rng_state(), "model": model.state_dict(), "opt": opt.state_dict()},
                      ckpt_path)
                export(model, out_dir)
                plot_curve(csv_path, reports / f"train_{arch}.png", f"{arch} Transformer, en-de + en-fr")
                stop = step >= steps or plateaued(evals, min_steps)
                if stop:
                    print(f"stopped at step {step} (epoch {epoch}): "
                          f"{'dev loss plateaued' if step < steps else 'step limit'}")
                elif max_minutes is not None and time.time() - started > 60 * max_minutes:
                    print(f"wall-clock guard: paused at step {step}; continue with --resume")
                    bar.close()
                    return out_dir
    bar.close()
    last = sorted(snaps.glob("step*.pt"))
    if len(last) > 1:
        model.load_state_dict(_average(last))
        averaged = dev_loss(model, dev_batches, device)
        print(f"average of the last {len(last)} snapshots: dev loss {averaged:.4f} (last alone {evals[-1][1]:.4f})")
        if averaged >= evals[-1][1]:
            model.load_state_dict(torch.load(last[-1], map_location=device, weights_only=True))
    export(model.eval(), out_dir)
    plot_curve(csv_path, reports / f"train_{arch}.png", f"{arch} Transformer, en-de + en-fr")
    reference_logits(out_dir)
    return out_dir
