"""Cost of one full-batch training step of the `nanda` preset, three implementations side by side.

- ours:   one step of interp's training Engine on a stack of one, exactly what `interp train` runs
          (last-position logits from token tables, `batched.pair_logits`, + float64 loss + backward + AdamW);
- ours-forward: the same Engine step through the model's own forward (hooks in place), as before the
          table path;
- plain:  a straightforward PyTorch model of the same shapes (nn.Linear, every position through
          attention and MLP, logits read at the last position), same loss and AdamW;
- plain-last: the same plain model computing only what the last position needs (the stricter bar);
- bridge: TransformerLens's native model (`TransformerBridge.boot_native`, our weights via
          `model.to_bridge()`), trained with the same loss on the last position.

The contenders run interleaved (round-robin, one step each) so machine noise hits them alike;
the table reports medians and ratios to `plain`.
"""

from __future__ import annotations

import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from interp.config import ModelConfig
from interp.presets import resolve
from interp.training import Engine, Trainer, loss_fn


class PlainTransformer(nn.Module):
    """One-layer attention + ReLU MLP, no LayerNorm, no biases, causal: Nanda's model, plainly."""

    def __init__(self, cfg: ModelConfig, last_only: bool = False):
        super().__init__()
        d, h = cfg.d_model, cfg.n_heads
        self.h, self.last_only = h, last_only
        self.embed = nn.Embedding(cfg.d_vocab, d)
        self.pos = nn.Parameter(torch.randn(cfg.n_ctx, d) / math.sqrt(d))
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        self.mlp_in = nn.Linear(d, cfg.d_mlp, bias=False)
        self.mlp_out = nn.Linear(cfg.d_mlp, d, bias=False)
        self.unembed = nn.Linear(d, cfg.d_vocab_out, bias=False)
        self.register_buffer("mask", torch.tril(torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.bool)))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # [batch, pos] -> [batch, d_vocab_out]
        x = self.embed(tokens) + self.pos
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)  # [batch, head, pos, d_head]
        mask = self.mask
        if self.last_only:
            q, mask, x = q[:, :, -1:], mask[-1:], x[:, -1:]
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.h)
        pattern = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        z = (pattern @ v).transpose(1, 2).reshape(b, -1, d)
        x = x + self.out(z)
        x = x + self.mlp_out(F.relu(self.mlp_in(x)))
        return self.unembed(x[:, -1])


def contenders(preset: str = "nanda", include_bridge: bool = True) -> dict[str, callable]:
    """name -> a function doing one training step. All start from the same data; `ours` is the Trainer."""
    mcfg, tcfg = resolve(preset, None, None, None, {})
    trainer = Trainer(mcfg, tcfg)
    tokens, labels = trainer.data.train_tokens, trainer.data.train_labels

    engine = Engine([trainer])
    d = engine.data
    forward = Engine([Trainer(mcfg, tcfg)])
    forward.tables = False  # the model's own forward

    def engine_step(e):
        return lambda: e.update(e.per_model(loss_fn, e.logits(d["train_tokens"]), d["train_labels"]))

    ours = engine_step(engine)

    def plain_step(model):
        opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay, betas=tcfg.betas)

        def step():
            loss = loss_fn(model(tokens), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step

    torch.manual_seed(0)
    steps = {"ours": ours, "ours-forward": engine_step(forward), "plain": plain_step(PlainTransformer(mcfg)),
             "plain-last": plain_step(PlainTransformer(mcfg, last_only=True))}
    if include_bridge:
        bridge = trainer.model.to_bridge()
        for name, p in bridge.named_parameters():
            p.requires_grad_(not name.endswith("bias"))  # our preset trains no biases either
        bopt = torch.optim.AdamW([p for p in bridge.parameters() if p.requires_grad], lr=tcfg.lr,
                                 weight_decay=tcfg.weight_decay, betas=tcfg.betas)

        def bridge_step():
            loss = loss_fn(bridge(tokens)[:, -1], labels)
            bopt.zero_grad(set_to_none=True)
            loss.backward()
            bopt.step()
        steps["bridge"] = bridge_step
    return steps


def measure(steps: dict[str, callable], repeats: int = 15, warmup: int = 3) -> dict[str, float]:
    """Median seconds per step of each contender, measured round-robin."""
    for _ in range(warmup):
        for f in steps.values():
            f()
    times = {k: [] for k in steps}
    for _ in range(repeats):
        for k, f in steps.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def run(quick: bool = False) -> list[tuple[str, str, str]]:
    """Table rows (what, value, note)."""
    med = measure(contenders(include_bridge=True), repeats=3 if quick else 15, warmup=1 if quick else 3)
    base = med["plain"]
    rows = [(f"step: {k}", f"{1000 * v:.1f} ms", f"{v / base:.2f}x plain") for k, v in med.items()]
    rows.append(("step: ours / plain", f"{med['ours'] / base:.2f}x", "target <= 1.15x"))
    rows.append(("step: ours / ours-forward (token tables vs the model's forward)",
                 f"{med['ours'] / med['ours-forward']:.2f}x", "the Engine's table path"))
    rows.append(("step: ours / plain-last (the same work)", f"{med['ours'] / med['plain-last']:.2f}x", "target <= 1.0x"))
    rows.append(("step: bridge / ours", f"{med['bridge'] / med['ours']:.2f}x", "target >= 2x"))
    return rows


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
