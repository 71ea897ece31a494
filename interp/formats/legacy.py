"""Nanda's original hand-written model and the Clock/Pizza authors' (same layout, REFERENCES §2).

`embed.W_E` [d_model, d_vocab], `blocks.{l}.attn.W_Q|W_K|W_V` [n_heads, d_head, d_model],
`attn.W_O` [d_model, n_heads * d_head] (n_heads * d_head may be below d_model), optional buffer
`attn.mask`, `mlp.W_in` [d_mlp, d_model], `b_in`, `W_out` [d_model, d_mlp], `b_out`, `unembed.W_U`
[d_model, d_vocab_out]; no attention biases, no unembedding bias. Files: Clock/Pizza's
`save/model_<run>.pt` (a state dict, n_layers 1-4) beside `save/config_<run>.json`; Nanda's runs and
the progress-measures trainer's `{"model": ..., ...}` (with the `=` token, p + 1 outputs); ARENA's
`{"state_dicts": [...], ...}`.
"""

from __future__ import annotations

import einops
import torch

from interp.errors import CheckpointError
from interp.formats.build import Weights, n_layers_of
from interp.formats.configs import Hints, brief
from interp.formats.hooked import check_ndims

NAME = "Nanda-original / Clock-Pizza layout"
NDIM = {"embed.W_E": 2, "pos_embed.W_pos": 2, "unembed.W_U": 2, "attn.W_Q": 3, "attn.W_K": 3, "attn.W_V": 3,
        "attn.W_O": 2, "mlp.W_in": 2, "mlp.W_out": 2, "mlp.b_in": 1, "mlp.b_out": 1}
BLOCK = {"attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O", "attn.mask", "mlp.W_in", "mlp.b_in", "mlp.W_out", "mlp.b_out"}


def detect(state: dict) -> bool:
    W_O = state.get("blocks.0.attn.W_O")
    return "embed.W_E" in state and W_O is not None and W_O.dim() == 2


def read(state: dict, hints: Hints, what: str, source: str) -> Weights:
    check_ndims(state, NDIM, NAME, source)
    n_layers = n_layers_of(state, source)
    top = {"embed.W_E", "pos_embed.W_pos", "unembed.W_U"}
    extra = sorted(set(state) - top - {f"blocks.{l}.{k}" for l in range(n_layers) for k in BLOCK})
    if extra:
        raise CheckpointError(f"{source}: unexpected weights for the {NAME}: {', '.join(brief(k) for k in extra[:4])}")
    missing = sorted((top | {f"blocks.{l}.{k}" for l in range(n_layers) for k in BLOCK if "W_" in k}) - set(state))
    if missing:
        raise CheckpointError(f"{source}: the {NAME} misses {', '.join(missing[:4])}")
    W_E, W_U = state["embed.W_E"], state["unembed.W_U"]
    d_model = W_U.shape[0]
    if W_E.shape[0] != d_model:
        raise CheckpointError(f"{source}: embed.W_E has shape {list(W_E.shape)}; this layout needs [d_model={d_model}, d_vocab]")
    if state["pos_embed.W_pos"].shape[0] == 2 and "attn_rate" not in hints:
        raise CheckpointError(f"{source}: a Clock/Pizza-layout state dict without its JSON config: the attention rate "
                              "(attn_coeff) is not in the weights; put the run's JSON next to it (same name .json, "
                              "config_<run>.json beside model_<run>.pt, or config.json) or pass --config")
    out = {"embed.W_E": W_E.T, "pos_embed.W_pos": state["pos_embed.W_pos"], "unembed.W_U": W_U,
           "unembed.b_U": torch.zeros(W_U.shape[1])}
    for l in range(n_layers):
        g = lambda k: state[f"blocks.{l}.{k}"]  # noqa: E731
        n_heads, d_head, _ = g("attn.W_Q").shape
        if tuple(g("attn.W_O").shape) != (d_model, n_heads * d_head):
            raise CheckpointError(f"{source}: blocks.{l}.attn.W_O has shape {list(g('attn.W_O').shape)}; "
                                  f"W_Q's {n_heads} heads of {d_head} need [d_model={d_model}, {n_heads * d_head}]")
        for name in "QKV":  # [n_heads, d_head, d_model] -> [n_heads, d_model, d_head]
            out[f"blocks.{l}.attn.W_{name}"] = g(f"attn.W_{name}").transpose(1, 2)
            out[f"blocks.{l}.attn.b_{name}"] = torch.zeros(n_heads, d_head)
        # z is flattened head-major, (head, d_head), before W_O [d_model, n_heads * d_head]
        out[f"blocks.{l}.attn.W_O"] = einops.rearrange(g("attn.W_O"), "d (h e) -> h e d", h=n_heads)
        out[f"blocks.{l}.attn.b_O"] = torch.zeros(d_model)
        out[f"blocks.{l}.mlp.W_in"], out[f"blocks.{l}.mlp.W_out"] = g("mlp.W_in").T, g("mlp.W_out").T
        d_mlp = g("mlp.W_in").shape[0]
        out[f"blocks.{l}.mlp.b_in"] = state.get(f"blocks.{l}.mlp.b_in", torch.zeros(d_mlp))
        out[f"blocks.{l}.mlp.b_out"] = state.get(f"blocks.{l}.mlp.b_out", torch.zeros(d_model))
    # Nanda's code applies its causal mask; Clock/Pizza's never does (their JSON sets causal=False).
    return Weights(out, hints, f"{what}; {NAME}", causal_default=True)
