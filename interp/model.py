"""A one-layer modular-addition transformer with TransformerLens hooks on every activation.

Parameters carry HookedTransformer's names and shapes (`embed.W_E` [d_vocab, d_model],
`blocks.0.attn.W_Q` [n_heads, d_model, d_head], ...), so HookedTransformer state dicts load
unchanged, and the hook names are TransformerLens's (`blocks.0.attn.hook_pattern`,
`blocks.0.mlp.hook_post`, ...), so `run_with_cache` gives a cache where `cache["pattern", 0]`
works. LayerNorm only where cfg.normalization_type asks for it (`ln1`, `ln2`, `ln_final`, as
HookedTransformer's; none by default), no MLP with cfg.attn_only. Attention rate alpha (Zhong et al. 2023):
    pattern = alpha * softmax(QK^T / sqrt(d_head)) + (1 - alpha) * J
with J all ones over the positions a query may see (alpha = 0: constant attention).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from transformer_lens import ActivationCache
from transformer_lens.FactoredMatrix import FactoredMatrix
from transformer_lens.hook_points import HookPoint

try:  # TransformerLens 4.x
    from transformer_lens import HookedRootModule
except ImportError:  # TransformerLens 2.x / 3.x
    from transformer_lens.hook_points import HookedRootModule

from interp.config import ModelConfig
from interp.data import labels_for
from interp.errors import ConfigError, InterpError

RETURN_TYPES = ("logits", "loss", "both", None)


def _param(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape))


def loss_fn(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of logits [n, d_vocab_out] against labels [n] in float64, a 0-dim tensor (as the
    references): float32 log-softmax underflows late in training. Here, not in interp.training, so the
    model's own loss knows nothing of how it is trained; interp.training re-exports it."""
    return F.cross_entropy(logits.to(torch.float64), labels)


class NoMLPError(InterpError, ValueError):
    """An analysis or weight view that needs the MLP, asked of an attention-only model."""


class LayerNorm(nn.Module):
    """TransformerLens's LayerNorm: x - mean(x), divided by scale = sqrt(mean((x - mean)^2) + eps)
    (`hook_scale`, [batch, pos, 1]), then times w plus b ("LN"; "LNPre" has no w, b), `hook_normalized`
    [batch, pos, d_model]. The same operations in the same order as TransformerLens, so the logits agree
    to the last bits."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.eps = cfg.eps
        if cfg.normalization_type == "LN":
            self.w, self.b = _param(cfg.d_model), _param(cfg.d_model)
        else:
            self.w = self.b = None
        self.hook_scale, self.hook_normalized = HookPoint(), HookPoint()

    def forward(self, x: Tensor) -> Tensor:  # [batch, pos, d_model] -> [batch, pos, d_model]
        x = x - x.mean(-1, keepdim=True)
        scale = self.hook_scale((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        x = x / scale
        return self.hook_normalized(x if self.w is None else x * self.w + self.b)


def _norm(cfg: ModelConfig) -> nn.Module:
    """The normalisation a block or the unembedding applies first: identity without LayerNorm (as
    HookedTransformer), so such a model has the same parameters, hooks and numbers as before."""
    return LayerNorm(cfg) if cfg.normalization_type else nn.Identity()


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
    """n_heads * d_head need not equal d_model: z [batch, pos, n_heads, d_head] is flattened head-major
    into W_O's n_heads * d_head inputs."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        h, d, e = cfg.n_heads, cfg.d_model, cfg.d_head
        self.W_Q, self.W_K, self.W_V = _param(h, d, e), _param(h, d, e), _param(h, d, e)
        self.W_O = _param(h, e, d)
        self.b_Q, self.b_K, self.b_V = _param(h, e), _param(h, e), _param(h, e)
        self.b_O = _param(d)
        # Same buffers as HookedTransformer, so its state dicts load with strict=True. Built from Python
        # values, not torch.tril: any op on the meta device (resources.n_params builds the model there)
        # imports torch's Python meta kernels, ~2 s of a fresh process.
        n = cfg.n_ctx
        self.register_buffer("mask", torch.tensor([[k <= q or not cfg.causal for k in range(n)] for q in range(n)]))
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

    @property
    def OV(self) -> FactoredMatrix:
        """W_V @ W_O per head, [n_heads, d_model, d_model] as a FactoredMatrix (as HookedTransformer's)."""
        return FactoredMatrix(self.W_V, self.W_O)

    @property
    def QK(self) -> FactoredMatrix:
        """W_Q @ W_K^T per head, [n_heads, d_model, d_model] as a FactoredMatrix."""
        return FactoredMatrix(self.W_Q, self.W_K.transpose(-2, -1))


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
    """resid_pre -> + attn(ln1(.)) -> resid_mid -> + mlp(ln2(.)) -> resid_post, as HookedTransformer's block;
    attention-only (cfg.attn_only): resid_pre -> + attn(ln1(.)) -> resid_post, with no MLP, ln2, resid_mid
    or mlp_out (HookedTransformer's attn_only block)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1, self.attn = _norm(cfg), Attention(cfg)
        if not cfg.attn_only:
            self.ln2, self.mlp = _norm(cfg), MLP(cfg)
        names = ("resid_pre", "attn_out", "resid_post") if cfg.attn_only else (
            "resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post")
        for name in names:
            setattr(self, f"hook_{name}", HookPoint())

    def forward(self, resid: Tensor, last_only: bool = False) -> Tensor:
        """resid [batch, pos, d_model] -> [batch, q_pos, d_model]; q_pos = 1 when last_only (LayerNorm is
        per position, so the keys see every position's normalised input either way)."""
        resid = self.hook_resid_pre(resid)
        attn_out = self.hook_attn_out(self.attn(self.ln1(resid), last_only))
        resid = (resid[:, -1:] if last_only else resid) + attn_out
        if not hasattr(self, "mlp"):
            return self.hook_resid_post(resid)
        resid = self.hook_resid_mid(resid)
        return self.hook_resid_post(resid + self.hook_mlp_out(self.mlp(self.ln2(resid))))


class Unembed(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_U, self.b_U = _param(cfg.d_model, cfg.d_vocab_out), _param(cfg.d_vocab_out)

    def forward(self, x: Tensor) -> Tensor:  # [batch, pos, d_model] -> [batch, pos, d_vocab_out]
        return x @ self.W_U + self.b_U


class Transformer(HookedRootModule):
    """The modular-addition transformer. `model(tokens)` -> logits [batch, pos, d_vocab_out]."""

    # Where the weights came from, set by `interp.load` (None for a model built or trained here):
    source_format: str | None  # what the file was recognised as, e.g. "interp checkpoint"
    checkpoint_info: Any  # our checkpoint's contents (`interp.checkpoints.Checkpoint`: step, train config, ...)

    def __init__(self, cfg: ModelConfig, seed: int | None = 0):
        super().__init__()
        self.cfg = cfg
        self.source_format, self.checkpoint_info = None, None
        self.embed, self.hook_embed = Embed(cfg), HookPoint()
        self.pos_embed, self.hook_pos_embed = PosEmbed(cfg), HookPoint()
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_final = _norm(cfg)
        self.unembed = Unembed(cfg)
        self.setup()
        if seed is not None:
            self.init_weights(seed)

    @torch.no_grad()
    def init_weights(self, seed: int) -> None:
        """cfg.init "nanda": N(0, 1/d_model) for every matrix, W_U N(0, 1/d_vocab); biases 0 (Nanda et al.).
        "zhong": the same but W_in N(0, 1/d_mlp) (Zhong et al.'s code; config.INITS). LayerNorm w = 1, b = 0
        (as TransformerLens), drawing nothing: the other weights are those of the same seed without LayerNorm."""
        g = torch.Generator().manual_seed(seed)
        for name, p in self.named_parameters():
            if isinstance(self.get_submodule(name.rsplit(".", 1)[0]), LayerNorm):
                p.fill_(1.0 if name.endswith(".w") else 0.0)
            elif name.split(".")[-1].startswith("b_"):
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

    def forward(self, tokens: Tensor, return_type: str | None = "logits", last_only: bool = False,
                loss_per_token: bool = False):
        """tokens [batch, pos] -> logits [batch, pos, d_vocab_out], as HookedTransformer's forward:

        return_type "logits" (default), "loss" (cross-entropy in float64 of the last position against
        (a + b) mod p, the training loss; [batch] with loss_per_token), "both" ((logits, loss)) or None.

        last_only=True computes only what the logits at the last position need (the queries,
        MLP and unembedding of the last position): the training path. Hooks still fire there,
        with pos = 1 from the last block's attention output on.
        """
        if return_type not in RETURN_TYPES:
            raise ConfigError(f"return_type must be one of {RETURN_TYPES}, got {return_type!r}")
        resid = self.hook_embed(self.embed(tokens)) + self.hook_pos_embed(self.pos_embed(tokens))
        for i, block in enumerate(self.blocks):
            resid = block(resid, last_only and i == len(self.blocks) - 1)
        logits = self.unembed(self.ln_final(resid))
        if return_type == "logits":
            return logits
        if return_type is None:
            return None
        loss = self.loss(logits, tokens, per_token=loss_per_token)
        return loss if return_type == "loss" else (logits, loss)

    def labels(self, tokens: Tensor) -> Tensor:
        """tokens [batch, pos] -> the answers of cfg.task ((a + b) mod p by default) [batch] (b tokens offset by p
        with diff_vocab)."""
        if tokens.ndim != 2 or tokens.shape[1] < 2:
            raise ConfigError(f"tokens must be [batch, pos >= 2] (a, b, ...), got shape {tuple(tokens.shape)}")
        b = tokens[:, 1] - (self.cfg.p if self.cfg.diff_vocab else 0)
        return labels_for(torch.stack([tokens[:, 0], b], dim=1), self.cfg.p, self.cfg.task)

    def loss(self, logits: Tensor, tokens: Tensor, per_token: bool = False) -> Tensor:
        """The training loss of logits [batch, pos, d_vocab_out] at the last position: a 0-dim float64
        tensor, or [batch] with per_token."""
        labels = self.labels(tokens)
        if per_token:
            return F.cross_entropy(logits[:, -1].to(torch.float64), labels, reduction="none")
        return loss_fn(logits[:, -1], labels)

    def run_with_cache(self, *args, return_cache_object: bool = True, **kwargs):
        """As HookedTransformer: (logits, ActivationCache), so `cache["pattern", 0]`,
        `cache.decompose_resid()`, `cache.stack_head_results()`, `cache.logit_attrs(...)` work."""
        out, cache = super().run_with_cache(*args, **kwargs)
        return out, (ActivationCache(cache, TLView(self)) if return_cache_object else cache)

    def last_logits(self, tokens: Tensor) -> Tensor:
        """tokens [batch, pos] -> logits at the last position [batch, d_vocab_out]."""
        return self.forward(tokens, last_only=True)[:, -1]

    # TransformerLens-style weight views, stacked over layers where TL stacks them.
    def _stack(self, part: str, name: str) -> Tensor:
        if part == "mlp" and self.cfg.attn_only:
            raise NoMLPError(f"{name}: this is an attention-only model (attn_only), it has no MLP")
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

    # W_V @ W_O and W_Q @ W_K^T as FactoredMatrix [n_layers, n_heads, d_model, d_model]: model.OV[0, 2] is layer 0, head 2
    OV = property(lambda self: FactoredMatrix(self.W_V, self.W_O))
    QK = property(lambda self: FactoredMatrix(self.W_Q, self.W_K.transpose(-2, -1)))

    def to_single_token(self, token: str | int) -> int:
        """Our vocabulary as text: "0" ... "p-1" are the residues (a's tokens, and the outputs), "=" the `=` token."""
        if isinstance(token, int) and not isinstance(token, bool) and 0 <= token < self.cfg.d_vocab:
            return token
        if token == "=" and self.cfg.eq_token:
            return self.cfg.eq_id
        if isinstance(token, str) and token.strip().isdigit() and int(token) < self.cfg.p:
            return int(token)
        raise ConfigError(f"not a token of this model: {token!r} (residues 0..{self.cfg.p - 1}"
                          + (', "="' if self.cfg.eq_token else "") + ")")

    def tokens_to_residual_directions(self, tokens) -> Tensor:
        """Output token(s) -> their unembedding directions W_U[:, c]: an int, "c" or a 0-dim tensor gives [d_model];
        a tensor of tokens [...] gives [..., d_model] (what ActivationCache.logit_attrs multiplies with)."""
        if isinstance(tokens, (str, int)):
            tokens = self.to_single_token(tokens)
        tokens = torch.as_tensor(tokens)
        if tokens.dtype.is_floating_point or (tokens.numel() and not (0 <= tokens.min() and tokens.max() < self.cfg.d_vocab_out)):
            raise ConfigError(f"output tokens must be integers in [0, {self.cfg.d_vocab_out}), got {tokens.tolist()!r:.80}")
        return self.W_U.T[tokens]

    def accumulated_bias(self, layer: int, mlp_input: bool = False, include_mlp_biases: bool = True) -> Tensor:
        """Sum of the output biases (b_O, b_out) of the blocks before `layer`, [d_model], as HookedTransformer's;
        mlp_input adds layer `layer`'s b_O."""
        total = torch.zeros(self.cfg.d_model, dtype=self.W_U.dtype)
        for block in self.blocks[:layer]:
            total = total + block.attn.b_O + (block.mlp.b_out if include_mlp_biases and not self.cfg.attn_only else 0)
        if mlp_input and layer < len(self.blocks):
            total = total + self.blocks[layer].attn.b_O
        return total

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Accepts HookedTransformer state dicts; buffers (`mask`, `IGNORE`) are rebuilt from cfg."""
        state = {k: v for k, v in state_dict.items() if not k.endswith((".mask", ".IGNORE"))}
        for k in self.state_dict():
            if k.endswith((".mask", ".IGNORE")):
                state[k] = self.state_dict()[k]
        out = super().load_state_dict(state, strict=strict, assign=assign)
        self.freeze_biases()
        return out

    def to_hooked_transformer(self):
        """Export to TransformerLens 2.x/3.x's `HookedTransformer` (same logits); TransformerLens 4 has
        no HookedTransformer: use to_bridge() there."""
        from interp.bridge import to_hooked_transformer

        return to_hooked_transformer(self)

    def to_bridge(self):
        """Export to TransformerLens's native model (`TransformerBridge.boot_native`), same logits.

        Only standard attention (attn_rate = 1) exists there.
        """
        from interp.bridge import require, to_bridge

        require("TransformerBridge", "to_bridge() needs TransformerLens >= 4.0 (TransformerBridge)")
        return to_bridge(self)


# HookedTransformerConfig fields that ModelConfig does not carry, as this model has them (normalization_type,
# attn_only and eps are ModelConfig fields: ActivationCache's apply_ln_to_stack and decompose_resid read the real ones)
TL_CONFIG_DEFAULTS = {
    "final_rms": False, "use_attn_result": False,
    "positional_embedding_type": "standard", "parallel_attn_mlp": False, "original_architecture": "interp",
}


class TLConfig:
    """A ModelConfig read as TransformerLens's config: every ModelConfig field and property, plus the
    HookedTransformerConfig fields TransformerLens's ActivationCache reads (TL_CONFIG_DEFAULTS).
    A view, so ModelConfig itself stays a validated, serialised dataclass with only our fields."""

    def __init__(self, cfg: ModelConfig):
        self._cfg = cfg

    def __getattr__(self, name: str):
        if name in TL_CONFIG_DEFAULTS:
            return TL_CONFIG_DEFAULTS[name]
        if name == "attention_dir":
            return "causal" if self._cfg.causal else "bidirectional"
        return getattr(self._cfg, name)

    def __repr__(self) -> str:
        return f"TLConfig({self._cfg!r})"


class TLView:
    """The model as an ActivationCache sees it (`cache.model`): the same model, with `cfg` a TLConfig."""

    def __init__(self, model: Transformer):
        self.model, self.cfg = model, TLConfig(model.cfg)

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def __call__(self, *args, **kwargs):
        return self.model(*args, **kwargs)
