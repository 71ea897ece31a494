"""TransformerLens HookedTransformer state dicts (2.x/3.x): our own layout, so only checked.

`embed.W_E` [d_vocab, d_model], `blocks.{l}.attn.W_Q` [n_heads, d_model, d_head], `W_O` [n_heads,
d_head, d_model], `mlp.W_in` [d_model, d_mlp], `unembed.W_U` [d_model, d_vocab_out], biases and the
`mask` / `IGNORE` buffers (REFERENCES §3), LayerNorm's `blocks.{l}.ln1.w`, `.b`, `ln2.*`, `ln_final.*` [d_model]
with normalization_type "LN" (TransformerLens's default), no MLP with attn_only. Found alone, in the Grokking demo's file with its pickled
HookedTransformerConfig, or as `{"state_dict": ...}`.
"""

from __future__ import annotations

from interp.errors import CheckpointError
from interp.formats.build import Weights
from interp.formats.configs import Hints

NAME = "TransformerLens layout"
NDIM = {"embed.W_E": 2, "pos_embed.W_pos": 2, "unembed.W_U": 2, "unembed.b_U": 1, "attn.W_Q": 3, "attn.W_K": 3,
        "attn.W_V": 3, "attn.W_O": 3, "attn.b_Q": 2, "attn.b_K": 2, "attn.b_V": 2, "attn.b_O": 1, "mlp.W_in": 2,
        "mlp.W_out": 2, "mlp.b_in": 1, "mlp.b_out": 1, "ln1.w": 1, "ln1.b": 1, "ln2.w": 1, "ln2.b": 1, "ln_final.w": 1,
        "ln_final.b": 1}
# no MLP weights required: an attn_only HookedTransformer has none
REQUIRED = ("embed.W_E", "pos_embed.W_pos", "unembed.W_U", "blocks.0.attn.W_Q", "blocks.0.attn.W_O")


def check_ndims(state: dict, ndim: dict, layout: str, source: str) -> None:
    for k, v in state.items():
        want = ndim.get(k.split(".", 2)[-1] if k.startswith("blocks.") else k)
        if want is not None and v.dim() != want:
            raise CheckpointError(f"{source}: {k} has shape {list(v.shape)}; the {layout} needs {want} dimensions")


def detect(state: dict) -> bool:
    W_O = state.get("blocks.0.attn.W_O")
    return all(k in state for k in REQUIRED) and W_O is not None and W_O.dim() == 3


def read(state: dict, hints: Hints, what: str, source: str) -> Weights:
    state = {k: v for k, v in state.items() if not k.endswith((".mask", ".IGNORE"))}
    check_ndims(state, NDIM, NAME, source)
    return Weights(state, hints, f"{what}; {NAME}")
