"""PyTorch training of the vanilla and the Integer Transformer (Lin et al. 2020), and export to npz + JSON.

The only module that imports torch. Layer names match golden/model.py so export is a rename-free dump:
weights are stored as float16 (the fp16-rounded weights ARE the model) with matrices laid out [in, out].
"""
from __future__ import annotations

import csv
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from golden import model as gm
from golden.tokenizer import BOS, EOS, PAD, Tokenizer
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


def batches(pairs, max_tokens: int, rng: random.Random):
    """Token-based batches of similar length, shuffled; padded to (src, tgt_in, tgt_out) tensors."""
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
    for g in groups:
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
    """Export a periodic training checkpoint (runs/train_<arch>/ckpt.pt) plus its reference logits."""
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: checkpoint missing")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    model = Transformer(config_for(arch, state["model"]["embed"].shape[0]))
    model.load_state_dict(state["model"])
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


def dev_loss(model, dev_batches) -> float:
    model.eval()
    tot, n = 0.0, 0
    with torch.no_grad():
        for src, tin, tout in dev_batches:
            logits = model(src, tin)
            tot += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tout.reshape(-1), ignore_index=PAD,
                                   reduction="sum").item()
            n += int((tout != PAD).sum())
    model.train()
    return tot / n


def train(arch: str, steps: int, out_dir: Path, run_dir: Path, max_tokens: int = 2000, warmup: int = 200,
          lr: float = 1e-3, seed: int = 1, eval_every: int = 100, threads: int = 1, dropout: float = 0.05,
          max_minutes: float | None = None, resume: Path | None = None) -> Path:
    """Adam(0.9, 0.997), inverse-sqrt warm-up, label smoothing 0.1; periodic checkpoint + export + loss curve.

    max_minutes is a wall-clock guard for a shared machine: training stops early (after a dev evaluation).
    resume continues from a periodic checkpoint (model, Adam state, step; the loss CSV is appended to)."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = random.Random(seed)
    tok = Tokenizer()
    train_pairs, dev_pairs = load_pairs(tok, "train"), load_pairs(tok, "dev")
    dev_batches = list(batches(dev_pairs, max_tokens, random.Random(0)))
    model = Transformer(config_for(arch, tok.vocab_size), dropout)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.997), eps=1e-9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warmup, math.sqrt(warmup / (s + 1))))
    run_dir.mkdir(parents=True, exist_ok=True)
    reports = ROOT / "reports"
    reports.mkdir(exist_ok=True)
    csv_path = reports / f"train_{arch}.csv"
    it, step, avg, t0 = iter(()), 0, None, time.time()
    started = t0  # the wall-clock guard counts this run only
    if resume is None:
        with csv_path.open("w") as f:
            f.write("step,seconds,lr,train_loss,dev_loss\n")
    else:
        state = torch.load(resume, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = sched.last_epoch = state["step"]
        last = list(csv.DictReader(csv_path.open()))[-1]
        t0, avg = t0 - float(last["seconds"]), float(last["train_loss"])
        rng = random.Random(seed + step)  # a fresh data order for the continued run
    bar = tqdm(total=steps, initial=step, desc=f"train {arch}", mininterval=10)
    while step < steps:
        try:
            src, tin, tout = next(it)
        except StopIteration:
            it = batches(train_pairs, max_tokens, rng)
            continue
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
        bar.set_postfix(loss=f"{avg:.3f}")
        if step % 50 == 0 or step == steps:
            dl = dev_loss(model, dev_batches) if step % eval_every == 0 or step == steps else None
            with csv_path.open("a") as f:
                f.write(f"{step},{time.time() - t0:.1f},{sched.get_last_lr()[0]:.6g},{avg:.4f},"
                        f"{'' if dl is None else f'{dl:.4f}'}\n")
            if dl is not None:
                torch.save({"step": step, "model": model.state_dict(), "opt": opt.state_dict()}, run_dir / "ckpt.pt")
                export(model, out_dir)
                plot_curve(csv_path, reports / f"train_{arch}.png", f"{arch} Transformer, en-de + en-fr")
                if max_minutes is not None and time.time() - started > 60 * max_minutes:
                    break
    bar.close()
    export(model.eval(), out_dir)
    plot_curve(csv_path, reports / f"train_{arch}.png", f"{arch} Transformer, en-de + en-fr")
    reference_logits(out_dir)
    return out_dir
