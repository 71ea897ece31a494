"""A one-layer modular-addition transformer with TransformerLens hooks on every activation.

Parameters carry HookedTransformer's names and shapes (`embed.W_E` [d_vocab, d_model],
`blocks.0.attn.W_Q` [n_heads, d_model, d_head], ...), so HookedTransformer state dicts load
unchanged, and the hook names are TransformerLens's (`blocks.0.attn.hook_pattern`,
`blocks.0.mlp.hook_post`, ...), so `run_with_cache` gives a cache where `cache["pattern", 0]`
works. No LayerNorm. Attention rate alpha (Zhong et al. 2023):
    pattern = alpha * softmax(QK^T / sqrt(d_head)) + (1 - alpha) * J
with J all ones over the positions a query may see (alpha = 0: constant attention).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from transformer_lens import ActivationCache
from transformer_lens.hook_points import HookPoint

try:  # TransformerLens 4.x
    from transformer_lens import HookedRootModule
except ImportError:  # TransformerLens 2.x / 3.x
    from transformer_lens.hook_points import HookedRootModule

from interp.config import ModelConfig


def _param(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape))


class Embed(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_E = _param(cfg.d_vocab, cfg.d_model)

    def forward(self, tokens: Tensor) -> Tensor:  # [batch, pos] -> [batch, pos, d_model]
        # not W_E[tokens]: its backward (index_put) accumulates in a thread-dependent order, so
        # multi-threaded training was not reproducible; embedding's backward is, and faster.
        return F.embedding(tokens, self.W_E)


class PosEmbed(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_pos = _param(cfg.n_ctx, cfg.d_model)

    def forward(self, tokens: Tensor) -> Tensor:  # [batch, pos] -> [batch, pos, d_model]
        return self.W_pos[: tokens.shape[1]].expand(tokens.shape[0], -1, -1)


def _to_heads(x: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """x [batch, pos, d_model] @ W [n_heads, d_model, d_head] + b [n_heads, d_head] -> [batch, pos, n_heads, d_head],
    as one matmul with the bias fused in."""
    h, d, e = W.shape
    return F.linear(x, W.transpose(1, 2).reshape(h * e, d), b.reshape(h * e)).unflatten(-1, (h, e))


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        h, d, e = cfg.n_heads, cfg.d_model, cfg.d_head
        self.W_Q, self.W_K, self.W_V = _param(h, d, e), _param(h, d, e), _param(h, d, e)
        self.W_O = _param(h, e, d)
        self.b_Q, self.b_K, self.b_V = _param(h, e), _param(h, e), _param(h, e)
        self.b_O = _param(d)
        allowed = torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.bool)
        # Same buffers as HookedTransformer, so its state dicts load with strict=True.
        self.register_buffer("mask", torch.tril(allowed) if cfg.causal else allowed)
        self.register_buffer("IGNORE", torch.tensor(-float("inf")))
        # alpha as a (non-saved) buffer, so a vmapped sweep can give each stacked model its own rate.
        self.register_buffer("attn_rate", torch.tensor(cfg.attn_rate), persistent=False)
        for name in ("q", "k", "v", "attn_scores", "pattern", "z"):
            setattr(self, f"hook_{name}", HookPoint())

    def forward(self, x: Tensor, last_only: bool = False) -> Tensor:
        """x: [batch, pos, d_model] -> [batch, q_pos, d_model]; q_pos = 1 when last_only."""
        n = x.shape[1]
        # contiguous: a strided slice sends the matmul down another BLAS path under vmap (sweeps would
        # then differ from single runs in the last bits).
        xq = x[:, -1:].contiguous() if last_only else x
        q = self.hook_q(_to_heads(xq, self.W_Q, self.b_Q))
        k = self.hook_k(_to_heads(x, self.W_K, self.b_K))
        v = self.hook_v(_to_heads(x, self.W_V, self.b_V))
        allowed = self.mask[:n, :n][-q.shape[1]:]  # [q_pos, k_pos]
        # pos is 2 or 3: broadcast products beat thousands of 3x32 batched matmuls (einsum's route);
        # contiguous, as softmax over a strided last dim is slow.
        scores = (q[:, :, None] * k[:, None]).sum(-1).permute(0, 3, 1, 2).contiguous() / math.sqrt(self.cfg.d_head)
        scores = self.hook_attn_scores(torch.where(allowed, scores, self.IGNORE))  # masked_fill has no vmap rule
        pattern = scores.softmax(dim=-1)
        if self.cfg.attn_rate != 1.0:
            pattern = self.attn_rate * pattern + (1.0 - self.attn_rate) * allowed.to(pattern.dtype)
        pattern = self.hook_pattern(pattern)
        z = self.hook_z((pattern.permute(0, 2, 3, 1)[..., None] * v[:, None]).sum(2))  # [batch, q_pos, head, d_head]
        return F.linear(z.flatten(2), self.W_O.flatten(0, 1).T, self.b_O)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_in, self.b_in = _param(cfg.d_model, cfg.d_mlp), _param(cfg.d_mlp)
        self.W_out, self.b_out = _param(cfg.d_mlp, cfg.d_model), _param(cfg.d_model)
        self.act = F.relu if cfg.act_fn == "relu" else F.gelu
        self.hook_pre, self.hook_post = HookPoint(), HookPoint()

    def forward(self, x: Tensor) -> Tensor:  # [batch, pos, d_model] -> [batch, pos, d_model]
        post = self.hook_post(self.act(self.hook_pre(x @ self.W_in + self.b_in)))
        return post @ self.W_out + self.b_out


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn, self.mlp = Attention(cfg), MLP(cfg)
        for name in ("resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post"):
            setattr(self, f"hook_{name}", HookPoint())

    def forward(self, resid: Tensor, last_only: bool = False) -> Tensor:
        resid = self.hook_resid_pre(resid)
        attn_out = self.hook_attn_out(self.attn(resid, last_only))
        resid = self.hook_resid_mid((resid[:, -1:] if last_only else resid) + attn_out)
        return self.hook_resid_post(resid + self.hook_mlp_out(self.mlp(resid)))


class Unembed(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_U, self.b_U = _param(cfg.d_model, cfg.d_vocab_out), _param(cfg.d_vocab_out)

    def forward(self, x: Tensor) -> Tensor:  # [batch, pos, d_model] -> [batch, pos, d_vocab_out]
        return x @ self.W_U + self.b_U


class Transformer(HookedRootModule):
    """The modular-addition transformer. `model(tokens)` -> logits [batch, pos, d_vocab_out]."""

    def __init__(self, cfg: ModelConfig, seed: int | None = 0):
        super().__init__()
        self.cfg = cfg
        self.embed, self.hook_embed = Embed(cfg), HookPoint()
        self.pos_embed, self.hook_pos_embed = PosEmbed(cfg), HookPoint()
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.unembed = Unembed(cfg)
        self.setup()
        if seed is not None:
            self.init_weights(seed)

    @torch.no_grad()
    def init_weights(self, seed: int) -> None:
        """cfg.init "nanda": N(0, 1/d_model) for every matrix, W_U N(0, 1/d_vocab); biases 0 (Nanda et al.).
        "zhong": the same but W_in N(0, 1/d_mlp) (Zhong et al.'s code; config.INITS)."""
        g = torch.Generator().manual_seed(seed)
        for name, p in self.named_parameters():
            if name.split(".")[-1].startswith("b_"):
                p.zero_()
            else:
                fan = {"unembed.W_U": self.cfg.d_vocab}.get(name, self.cfg.d_model)
                if self.cfg.init == "zhong" and name.endswith("mlp.W_in"):
                    fan = self.cfg.d_mlp
                std = 1 / math.sqrt(fan)
                p.copy_(torch.randn(p.shape, generator=g) * std)
        self.freeze_biases()

    def freeze_biases(self) -> None:
        """Biases outside cfg.biases stay at zero and get no gradient (and so no weight decay)."""
        for name, p in self.named_parameters():
            last = name.split(".")[-1]
            if last.startswith("b_"):
                trained = self.cfg.biases == "all" or (self.cfg.biases == "mlp" and last in ("b_in", "b_out"))
                p.requires_grad_(trained)

    def forward(self, tokens: Tensor, last_only: bool = False) -> Tensor:
        """tokens [batch, pos] -> logits [batch, pos, d_vocab_out].

        last_only=True computes only what the logits at the last position need (the queries,
        MLP and unembedding of the last position): the training path. Hooks still fire there,
        with pos = 1 from the last block's attention output on.
        """
        resid = self.hook_embed(self.embed(tokens)) + self.hook_pos_embed(self.pos_embed(tokens))
        for i, block in enumerate(self.blocks):
            resid = block(resid, last_only and i == len(self.blocks) - 1)
        return self.unembed(resid)

    def run_with_cache(self, *args, return_cache_object: bool = True, **kwargs):
        """As HookedTransformer: (logits, ActivationCache), so `cache["pattern", 0]` works."""
        out, cache = super().run_with_cache(*args, **kwargs)
        return out, (ActivationCache(cache, self) if return_cache_object else cache)

    def last_logits(self, tokens: Tensor) -> Tensor:
        """tokens [batch, pos] -> logits at the last position [batch, d_vocab_out]."""
        return self.forward(tokens, last_only=True)[:, -1]

    # TransformerLens-style weight views, stacked over layers where TL stacks them.
    def _stack(self, part: str, name: str) -> Tensor:
        return torch.stack([getattr(getattr(b, part), name) for b in self.blocks])

    W_E = property(lambda self: self.embed.W_E)  # [d_vocab, d_model]
    W_pos = property(lambda self: self.pos_embed.W_pos)  # [n_ctx, d_model]
    W_U = property(lambda self: self.unembed.W_U)  # [d_model, d_vocab_out]
    b_U = property(lambda self: self.unembed.b_U)
    W_Q = property(lambda self: self._stack("attn", "W_Q"))  # [n_layers, n_heads, d_model, d_head]
    W_K = property(lambda self: self._stack("attn", "W_K"))
    W_V = property(lambda self: self._stack("attn", "W_V"))
    W_O = property(lambda self: self._stack("attn", "W_O"))  # [n_layers, n_heads, d_head, d_model]
    b_Q = property(lambda self: self._stack("attn", "b_Q"))
    b_K = property(lambda self: self._stack("attn", "b_K"))
    b_V = property(lambda self: self._stack("attn", "b_V"))
    b_O = property(lambda self: self._stack("attn", "b_O"))
    W_in = property(lambda self: self._stack("mlp", "W_in"))  # [n_layers, d_model, d_mlp]
    W_out = property(lambda self: self._stack("mlp", "W_out"))  # [n_layers, d_mlp, d_model]
    b_in = property(lambda self: self._stack("mlp", "b_in"))
    b_out = property(lambda self: self._stack("mlp", "b_out"))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Accepts HookedTransformer state dicts; buffers (`mask`, `IGNORE`) are rebuilt from cfg."""
        state = {k: v for k, v in state_dict.items() if not k.endswith((".mask", ".IGNORE"))}
        for k in self.state_dict():
            if k.endswith((".mask", ".IGNORE")):
                state[k] = self.state_dict()[k]
        out = super().load_state_dict(state, strict=strict, assign=assign)
        self.freeze_biases()
        return out

    def to_bridge(self):
        """Export to TransformerLens's native model (`TransformerBridge.boot_native`), same logits.

        Only standard attention (attn_rate = 1) exists there.
        """
        from interp.bridge import to_bridge

        return to_bridge(self)
