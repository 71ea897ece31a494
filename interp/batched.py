"""Many models of one shape at once: their weights stacked [n_models, ...], the logits over all p^2
inputs computed for all of them together (the snapshots of a run, the models of a sweep).

    params = stack_states([m.state_dict() for m in models])     # {name: [S, ...]}
    logits = all_logits(cfg, params)                            # [S, p*p, d_vocab_out], row a*p + b

A one-layer model's last-position logits over the p^2 inputs have structure that a forward pass
over p^2 token rows cannot use: the query position sees every position, each position's token
embedding takes only p values (a, b) or one (`=`), so keys, values and their images through W_O
and the read-out matrices are tables over p tokens, and only the attention pattern and the MLP
are per pair. `all_logits` computes them so, in batched einsums over the stack: about 4x fewer
FLOPs than the model's own forward (no keys and values for 3 p^2 rows, no p^2 x d_model x d_mlp
matmul), equal to `Transformer.last_logits` within float32 rounding (tests/test_progress.py).
Deeper models run the model's own forward, vmapped over the stack (as sweeps train).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, vmap

from interp.config import ModelConfig
from interp.data import all_tokens
from interp.errors import InterpError

BUFFERS = (".mask", ".IGNORE")  # rebuilt from the config, never stacked
# Most float32 values of one batch's widest activation (the [S, p^2, d_mlp + p] pre-activations), about
# 64 MB: at nanda size (p 113, d_mlp 512) that is 2 models per batch, at tiny size hundreds.
BATCH_BUDGET = 1 << 24


class BatchError(InterpError, ValueError):
    """Models that cannot be stacked together (different shapes, nothing to stack)."""


def stack_states(states: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """[{name: tensor}] of models of one shape -> {name: [S, ...] float32}; buffers left out."""
    if not states:
        raise BatchError("nothing to stack: no models")
    names = sorted(k for k in states[0] if not k.endswith(BUFFERS))
    for i, s in enumerate(states[1:], 1):
        if sorted(k for k in s if not k.endswith(BUFFERS)) != names:
            raise BatchError(f"model {i} has other parameter names than model 0")
    try:
        return {k: torch.stack([s[k].detach().float() for s in states]) for k in names}
    except RuntimeError:
        raise BatchError("models of different shapes cannot be stacked") from None


def batch_size(cfg: ModelConfig, budget: int | None = None) -> int:
    """How many models `all_logits` should take at once to stay within `budget` floats (BATCH_BUDGET)."""
    return max(1, (budget or BATCH_BUDGET) // (cfg.p * cfg.p * (cfg.d_mlp + cfg.d_vocab_out)))


def _rates(cfg: ModelConfig, attn_rate, S: int, device: torch.device | None = None) -> Tensor:
    rate = torch.as_tensor(cfg.attn_rate if attn_rate is None else attn_rate, dtype=torch.float32, device=device)
    return rate.expand(S) if rate.dim() == 0 else rate


def supports_tables(cfg: ModelConfig) -> bool:
    """Whether `all_logits` / `pair_logits` compute this model from token tables (one layer with an MLP,
    no LayerNorm: the tables rely on every map being linear up to the MLP); other models run their own forward."""
    return cfg.n_layers == 1 and cfg.normalization_type is None and not cfg.attn_only


def _heads(W: dict[str, Tensor], x: Tensor, name: str) -> Tensor:
    """x [S, ..., d_model] through W_name, b_name of every head -> [S, ..., n_heads, d_head]."""
    Wh, b = W["blocks.0.attn.W_" + name], W["blocks.0.attn.b_" + name]  # [S, n_heads, d_model, d_head], [S, n_heads, d_head]
    S, extra = x.shape[0], x.dim() - 2
    return torch.einsum("s...d,shde->s...he", x, Wh) + b.view(S, *[1] * extra, *b.shape[1:])


def _token_tables(cfg: ModelConfig, W: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor | None, list[Tensor]]:
    """What every input shares, as tables over tokens: the embeddings x_a, x_b [S, p, d_model] (token a at
    position 0, b at 1), x_e [S, d_model] (`=` at 2, None without it), and the attention scores of the
    last position's query against each key position, scaled, broadcastable over the (a, b) grid
    [S, n_heads, p_a | 1, p_b | 1], in position order (a, b[, =])."""
    p = cfg.p
    W_E, W_pos = W["embed.W_E"], W["pos_embed.W_pos"]  # [S, d_vocab, d_model], [S, n_ctx, d_model]
    x_a = W_E[:, :p] + W_pos[:, :1]
    off = p if cfg.diff_vocab else 0
    x_b = W_E[:, off : off + p] + W_pos[:, 1:2]
    x_e = W_E[:, cfg.eq_id] + W_pos[:, 2] if cfg.eq_token else None
    k_a, k_b = _heads(W, x_a, "K"), _heads(W, x_b, "K")  # [S, p, h, e]
    # The last position's query sees every position, causal or not. Products summed over d_head, not
    # einsum: its batched matmuls round differently for stacks of 1 and of n (solo runs must equal sweeps).
    dot = lambda q, k: (q * k).sum(-1).movedim(-1, 1)  # noqa: E731  [S, ..., h, e] -> [S, h, ...]
    if cfg.eq_token:  # the query is the `=` token, the same for every pair
        q = _heads(W, x_e, "Q")[:, None]  # [S, 1, h, e]
        scores = [dot(q, k_a)[..., :, None], dot(q, k_b)[..., None, :], dot(q, _heads(W, x_e, "K")[:, None])[..., None]]
    else:  # the query is token b
        q = _heads(W, x_b, "Q")  # [S, p_b, h, e]
        scores = [dot(q[:, None], k_a[:, :, None]), dot(q, k_b)[..., None, :]]
    return x_a, x_b, x_e, [s / math.sqrt(cfg.d_head) for s in scores]


def _pattern(scores: Tensor, rate: Tensor, dim: int) -> Tensor:
    """Attention pattern from scores [pos, S, ...] (dim 0) or [S, ..., pos] (dim -1) with per-model
    attention rates [S]: alpha softmax + (1 - alpha) J. Over a leading dim of 2-3 the softmax is ~30x
    faster; over the last one its backward rounds the same for every stack size."""
    pattern = scores.softmax(dim)
    r = rate.view(*[1] * (dim == 0), -1, *[1] * (scores.dim() - 1 - (dim == 0)))
    return torch.where(r == 1.0, pattern, r * pattern + (1.0 - r))


@torch.no_grad()
def all_logits(cfg: ModelConfig, params: dict[str, Tensor], attn_rate: Tensor | list[float] | None = None) -> Tensor:
    """Last-position logits of every stacked model over all p^2 inputs: [S, p*p, d_vocab_out], row a*p + b.

    params: {name: [S, ...]} (`stack_states`), one ModelConfig for all; attn_rate: per-model attention
    rates [S] (models of a sweep group differ in it), default cfg.attn_rate for all. Computed on the
    params' device.
    """
    S, dev = params["embed.W_E"].shape[0], params["embed.W_E"].device
    rate = _rates(cfg, attn_rate, S, dev)
    if not supports_tables(cfg):
        return _vmapped_logits(cfg, params, rate)
    p, W = cfg.p, params
    m_ = "blocks.0.mlp."
    x_a, x_b, x_e, scores = _token_tables(cfg, W)
    pattern = _pattern(torch.stack(torch.broadcast_tensors(*scores)), rate, 0)  # [pos, S, h, a, b]
    total = rate + (1.0 - rate) * cfg.n_ctx  # [S]: what each query's pattern sums to

    # Values through W_O, then through the read-outs R = [W_in | W_U]: tables over tokens, per head.
    R = torch.cat([W[m_ + "W_in"], W["unembed.W_U"]], -1)  # [S, d_model, d_mlp + d_vocab_out]
    W_O = W["blocks.0.attn.W_O"]  # [S, h, e, d_model]

    W_OR = torch.einsum("shed,sdr->sher", W_O, R)  # first: p x fewer products than (V W_O) R per table

    def through(x: Tensor) -> Tensor:  # x [S, ..., d_model] -> its value via W_O and R, [S, ..., h, r]
        return torch.einsum("s...he,sher->s...hr", _heads(W, x, "V"), W_OR)

    t_a, t_b = through(x_a), through(x_b)  # [S, p, h, r]
    const = (W["blocks.0.attn.b_O"][:, None] @ R)[:, 0]  # [S, r]
    const[:, : cfg.d_mlp] += W[m_ + "b_in"]
    if cfg.eq_token:  # the `=` token's weight is total - (the others'): fold its value into theirs
        t_e = through(x_e)  # [S, h, r]
        t_a, t_b = t_a - t_e[:, None], t_b - t_e[:, None]
        const += total[:, None] * t_e.sum(1) + (x_e[:, None] @ R)[:, 0]
    const = const[:, None, None]  # [S, 1, 1, r]
    if not cfg.eq_token:  # the residual stream at the last position starts from token b itself
        const = const + (x_b @ R)[:, None]
    n_r = R.shape[-1]
    W_L = W[m_ + "W_out"] @ W["unembed.W_U"]  # [S, d_mlp, d_vocab_out]
    b = W[m_ + "b_out"][:, None] @ W["unembed.W_U"] + W["unembed.b_U"][:, None]  # [S, 1, d_vocab_out]
    # A few rows a at a time (~4 MB of pre-activations, one buffer: in cache, no fresh pages to fault in).
    # Sum over heads of pattern x table, one head at a time, in place: ~10x faster than the same
    # sums as batched matmuls of inner size n_heads.
    rows = max(1, (1 << 20) // (S * p * n_r))
    buf, n_out = W_L.new_empty(S, rows, p, n_r), W_L.shape[-1]
    W_L = F.pad(W_L, (0, -n_out % 16))  # output columns to a multiple of 16: sgemm runs ~15% faster (113 -> 128)
    logits = W_L.new_empty(S, p * p, n_out)
    for a0 in range(0, p, rows):
        a = slice(a0, min(a0 + rows, p))
        out = torch.addcmul(const, pattern[0, :, 0, a, :, None], t_a[:, a, None, 0], out=buf[:, : a.stop - a0])
        out.addcmul_(pattern[1, :, 0, a, :, None], t_b[:, None, :, 0])  # out: [S, rows, b, r]
        for h in range(1, cfg.n_heads):
            out.addcmul_(pattern[0, :, h, a, :, None], t_a[:, a, None, h])
            out.addcmul_(pattern[1, :, h, a, :, None], t_b[:, None, :, h])
        post = out[..., : cfg.d_mlp]  # pre-activations, then (in place) activations; views with row stride r
        post = post.relu_() if cfg.act_fn == "relu" else post.copy_(F.gelu(post))
        direct = out[..., cfg.d_mlp :].flatten(1, 2)  # the residual stream's own path to the logits
        block = logits[:, a0 * p : a.stop * p]
        torch.add(direct, b, out=block).add_(torch.bmm(post.flatten(1, 2), W_L)[..., :n_out])
    return logits


def _gather(table: Tensor, idx: Tensor) -> Tensor:
    """table [S, m, ...], idx [S, n] (values < m) -> table[s, idx[s, i]]: [S, n, ...]. As an embedding
    lookup: its backward sums in a fixed order (advanced indexing's index_put does not)."""
    S, m = table.shape[:2]
    rows = idx + m * torch.arange(S, device=idx.device)[:, None]
    return F.embedding(rows, table.reshape(S * m, -1)).view(*idx.shape, *table.shape[2:])


def pair_logits(cfg: ModelConfig, params: dict[str, Tensor], tokens: Tensor,
                attn_rate: Tensor | list[float] | None = None) -> Tensor:
    """Last-position logits of stacked one-layer models on given inputs, differentiable: the training
    forward. tokens [S, n, n_ctx] (each model its own rows [a, b(, =)]) -> [S, n, d_vocab_out].

    Equal to `Transformer.last_logits` within float32 rounding (tests/test_progress.py) at about half
    its FLOPs: keys, queries and values come from the token tables (`_token_tables`; no projections
    of 3 positions per row), and only the pattern, the MLP and the unembedding are per row. No hooks
    fire: this is for training and evaluation internals (interp.training.Engine); everything users
    call runs the model's own forward. params: {name: [S, ...]} (autograd flows back to them).
    """
    if not supports_tables(cfg):
        raise BatchError("pair_logits needs a one-layer model with an MLP and no LayerNorm, got "
                         f"n_layers={cfg.n_layers}, normalization_type={cfg.normalization_type}, attn_only={cfg.attn_only}")
    S, p, W = tokens.shape[0], cfg.p, params
    rate = _rates(cfg, attn_rate, S).to(tokens.device)
    a, b = tokens[..., 0], tokens[..., 1] - (p if cfg.diff_vocab else 0)  # [S, n]
    x_a, x_b, x_e, scores = _token_tables(cfg, W)
    grid = [s.expand(-1, -1, p, p).flatten(2).transpose(1, 2) for s in scores]  # [S, p*p, h] per position
    pattern = _pattern(torch.stack([_gather(g, a * p + b) for g in grid], -1), rate, -1)  # [S, n, h, pos]

    def values(x: Tensor) -> Tensor:  # x [S, ..., d_model] -> each head's value through W_O [S, ..., h, d_model]
        return torch.einsum("s...he,shed->s...hd", _heads(W, x, "V"), W["blocks.0.attn.W_O"])

    v = [_gather(values(x_a), a), _gather(values(x_b), b)]  # [S, n, h, d_model]
    if cfg.eq_token:
        v.append(values(x_e)[:, None])  # [S, 1, h, d_model]
    # Sum over heads and positions of pattern x value as products and sums (a batched matmul of inner
    # size n_heads is slow; slicing v per head would copy it back piece by piece in the backward).
    attn = sum((pattern[..., i, None] * v[i]).sum(2) for i in range(len(v)))
    resid = (x_e[:, None] if cfg.eq_token else _gather(x_b, b)) + attn + W["blocks.0.attn.b_O"][:, None]
    pre = torch.baddbmm(W["blocks.0.mlp.b_in"][:, None], resid, W["blocks.0.mlp.W_in"])  # [S, n, d_mlp]
    post = F.relu(pre) if cfg.act_fn == "relu" else F.gelu(pre)
    resid = resid + torch.baddbmm(W["blocks.0.mlp.b_out"][:, None], post, W["blocks.0.mlp.W_out"])
    return torch.baddbmm(W["unembed.b_U"][:, None], resid, W["unembed.W_U"])


def _vmapped_logits(cfg: ModelConfig, params: dict[str, Tensor], rate: Tensor) -> Tensor:
    """The model's own forward, vmapped over the stack (any depth)."""
    from interp.model import Transformer

    mixing = bool((rate != 1.0).any())  # the template decides the code path, as in sweeps
    with torch.device(rate.device):  # its buffers (mask, attention rate) beside the params; its own weights unused
        base = Transformer(cfg.replace(attn_rate=0.5 if mixing else 1.0), seed=None)
    S = rate.shape[0]
    buffers = {k: v.expand(S, *v.shape) for k, v in base.named_buffers()}
    buffers.update({k: rate for k in buffers if k.endswith("attn_rate")})

    def one(w, buf, tokens):
        return functional_call(base, (w, buf), (tokens,), {"last_only": True})[:, -1]

    tokens = all_tokens(cfg, rate.device)
    return torch.cat([vmap(one, in_dims=(0, 0, None))(params, buffers, tokens[i : i + 4096])
                      for i in range(0, len(tokens), 4096)], dim=1)


# ---- whole-model metrics of many models ------------------------------------------------------------
def _shape_key(cfg: ModelConfig) -> ModelConfig:
    return cfg.replace(attn_rate=1.0)  # models differing only in attention rate share one stack


@torch.no_grad()
def logit_tables(models: list) -> list[Tensor]:
    """`metrics.logit_table` of each model ([p_a, p_b, p_c]), in order, computed a stack at a time:
    models are grouped by shape (attention rates may differ within a group). A group computes on its
    models' device (models of one shape must share one)."""
    groups: dict[ModelConfig, list[int]] = {}
    for i, m in enumerate(models):
        groups.setdefault(_shape_key(m.cfg), []).append(i)
    tables: list[Tensor | None] = [None] * len(models)
    for cfg, idx in groups.items():
        bs, p = batch_size(cfg), cfg.p
        for j in range(0, len(idx), bs):
            chunk = [models[i] for i in idx[j : j + bs]]
            rates = [m.cfg.attn_rate for m in chunk]
            logits = all_logits(cfg.replace(attn_rate=rates[0]), stack_states([m.state_dict() for m in chunk]), rates)
            for i, t in zip(idx[j : j + bs], logits):
                tables[i] = t.reshape(p, p, -1)
    return tables


@dataclass
class ModelMetrics:
    """The cheap whole-model numbers of one model (definitions: interp.metrics, interp.fourier)."""

    accuracy: float
    gradient_symmetricity: float
    distance_irrelevance: float
    distance_irrelevance_max_wrong: float
    circularity: float
    key_frequencies: list[int]


def model_metrics(models: list, progress: bool = False) -> list[ModelMetrics]:
    """Accuracy, GS, DI (both variants), circularity and key frequencies of many models.

    The logit tables over all p^2 inputs (the cost) come stacked from `logit_tables`; the rest are
    the single-model functions of interp.metrics on those tables (GS back-propagates 100 triples per
    model; circularity and key frequencies read only the embedding).
    """
    from tqdm.auto import tqdm

    from interp import metrics as M
    from interp import tasks
    from interp.fourier import key_frequencies

    models = [tasks.group_view(m) for m in models]  # sub/mul/div: measured in their group coordinates
    out = []
    for model, table in tqdm(list(zip(models, logit_tables(models))), desc="metrics", unit="model", disable=not progress):
        out.append(ModelMetrics(
            accuracy=M.accuracy(table), gradient_symmetricity=M.gradient_symmetricity(model),
            distance_irrelevance=M.distance_irrelevance(table),
            distance_irrelevance_max_wrong=M.distance_irrelevance(table, "max_wrong"),
            circularity=M.circularity(model), key_frequencies=key_frequencies(model)))
    return out
