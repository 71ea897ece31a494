"""TransformerLens 4 `TransformerBridge` state dicts (what `boot_native` models save, REFERENCES §3).

`embed.weight` [d_vocab, d_model], `pos_embed.weight` [n_ctx, d_model], `blocks.{l}.attn.{q,k,v}.weight`
[n_heads * d_head, d_model] (heads flattened head-major) and `.bias`, `attn.o.weight` [d_model,
n_heads * d_head], `mlp.in.weight` [d_mlp, d_model], `mlp.out.weight` [d_model, d_mlp] (+ biases),
`unembed.weight` [d_vocab_out, d_model], `unembed.bias`; with LayerNorm `blocks.{l}.ln1.weight`, `.bias`,
`ln2.*`, `ln_final.*` [d_model] (TransformerLens's w, b); no `mlp.*` with attn_only. The wrapped module's own state dict names the
same tensors with `_original_component` in the path (and `tok_embed`, `pos`, `layers`, `head`,
`fc_in`, `fc_out`); both spellings are read. No config is stored and n_heads cannot be read from the
shapes, so the `TransformerBridgeConfig` fields come as JSON (a sidecar or `--config`).
"""

from __future__ import annotations

import einops
import torch

from interp.errors import CheckpointError
from interp.formats.build import Weights, n_layers_of
from interp.formats.configs import Hints, brief

NAME = "TransformerLens 4 TransformerBridge layout"
_TOP = {"tok_embed": "embed", "pos": "pos_embed", "layers": "blocks", "head": "unembed"}  # the native module's names
_MLP = {"fc_in": "in", "fc_out": "out"}
_PARTS = {"attn.q", "attn.k", "attn.v", "attn.o", "mlp.in", "mlp.out"}
_LN = {"ln1", "ln2"}  # per block; `ln_final` before the unembedding


def _name(key: str) -> str:
    parts = [p for p in key.split(".") if p != "_original_component"]
    if parts:
        parts[0] = _TOP.get(parts[0], parts[0])
    if len(parts) >= 4 and parts[0] == "blocks" and parts[2] == "mlp":
        parts[3] = _MLP.get(parts[3], parts[3])
    return ".".join(parts)


def normalise(state: dict, source: str) -> dict:
    """Bridge names with `_original_component` and the native module's aliases removed; the same
    tensor reached by several paths must hold the same values."""
    out: dict = {}
    for k, v in state.items():
        name = _name(k)
        if name in out and not (out[name].shape == v.shape and torch.equal(out[name], v)):
            raise CheckpointError(f"{source}: {brief(k)} and another key both name {brief(name)} with different values")
        out[name] = v
    return out


def _is_ln(key: str) -> bool:
    """A LayerNorm weight or bias (`blocks.{l}.ln1.weight`, `ln_final.bias`), by its normalised name."""
    name = key.rpartition(".")[0]
    return name == "ln_final" or name.rpartition(".")[2] in _LN


def detect(state: dict) -> bool:
    names = {_name(k) for k in state}
    return "embed.weight" in names and "blocks.0.attn.q.weight" in names


def _n_heads(hints: Hints, rows: int, source: str) -> int:
    n, e = hints.get("n_heads"), hints.get("d_head")
    if n is None and e is None:
        if not hints:
            raise CheckpointError(
                f"{source}: a TransformerLens 4 TransformerBridge state dict stores no config and none was found "
                "beside it: n_heads (or d_head) is missing and the weights cannot tell it; put its "
                "TransformerBridgeConfig fields as JSON beside it (same name .json or config.json) or pass --config")
        files = ", ".join(sorted({h.source for h in hints.values()}))
        raise CheckpointError(f"{source}: the config ({files}) lacks n_heads (or d_head), which a TransformerBridge "
                              "state dict's weights cannot tell")
    if n is not None and e is not None and n.value * e.value != rows:
        raise CheckpointError(f"{source}: {n.where()} and {e.where()} but the weights have n_heads * d_head = {rows}")
    if n is None:
        if rows % e.value:
            raise CheckpointError(f"{source}: {e.where()} does not divide the weights' n_heads * d_head = {rows}")
        return rows // e.value
    if rows % n.value:
        raise CheckpointError(f"{source}: {n.where()} does not divide the weights' n_heads * d_head = {rows}")
    return n.value


def read(state: dict, hints: Hints, what: str, source: str) -> Weights:
    state = normalise(state, source)
    n_layers = n_layers_of(state, source)
    # No MLP weights: attn_only; LayerNorm weights (ln1, ln2, ln_final): normalization_type "LN" (build_model
    # infers both from what is here and checks them against the config).
    parts = _PARTS - ({"mlp.in", "mlp.out"} if "blocks.0.mlp.in.weight" not in state else set())
    ln_parts = _LN if "blocks.0.ln1.weight" in state else set()
    top = {"embed.weight", "pos_embed.weight", "unembed.weight"} | ({"ln_final.weight"} if ln_parts else set())
    known = top | {"unembed.bias", "ln_final.bias"} | {
        f"blocks.{l}.{p}.{w}" for l in range(n_layers) for p in parts | _LN for w in ("weight", "bias")}
    extra = sorted(set(state) - known)
    if extra:
        raise CheckpointError(f"{source}: unexpected weights for the {NAME}: {', '.join(brief(k) for k in extra[:4])}")
    required = parts | (ln_parts - ({"ln2"} if "mlp.in" not in parts else set()))
    missing = sorted((top | {f"blocks.{l}.{p}.weight" for l in range(n_layers) for p in required}) - set(state))
    if missing:
        raise CheckpointError(f"{source}: the {NAME} misses {', '.join(missing[:4])}")
    for k, v in state.items():
        want = 1 if k.endswith("bias") or _is_ln(k) else 2
        if v.dim() != want:
            raise CheckpointError(f"{source}: {k} has shape {list(v.shape)}; the {NAME} needs {want} dimensions")
    n_heads = _n_heads(hints, state["blocks.0.attn.q.weight"].shape[0], source)
    W_U = state["unembed.weight"]
    bias = lambda k, n: state.get(f"{k}.bias", torch.zeros(n))  # noqa: E731  (a missing bias is zero)
    out = {"embed.W_E": state["embed.weight"], "pos_embed.W_pos": state["pos_embed.weight"], "unembed.W_U": W_U.T,
           "unembed.b_U": bias("unembed", W_U.shape[0])}
    for l in range(n_layers):
        pre = f"blocks.{l}."
        for name in "qkv":  # [n_heads * d_head, d_model] -> [n_heads, d_model, d_head]
            W = state[f"{pre}attn.{name}.weight"]
            if W.shape[0] % n_heads:
                raise CheckpointError(f"{source}: {pre}attn.{name}.weight has {W.shape[0]} rows, not a multiple of "
                                      f"n_heads={n_heads}")
            out[f"{pre}attn.W_{name.upper()}"] = einops.rearrange(W, "(h e) d -> h d e", h=n_heads)
            out[f"{pre}attn.b_{name.upper()}"] = bias(f"{pre}attn.{name}", W.shape[0]).reshape(n_heads, -1)
        W_O = state[f"{pre}attn.o.weight"]
        out[f"{pre}attn.W_O"] = einops.rearrange(W_O, "d (h e) -> h e d", h=n_heads)
        out[f"{pre}attn.b_O"] = bias(f"{pre}attn.o", W_O.shape[0])
        if "mlp.in" in parts:
            W_in, W_out = state[f"{pre}mlp.in.weight"], state[f"{pre}mlp.out.weight"]
            out[f"{pre}mlp.W_in"], out[f"{pre}mlp.b_in"] = W_in.T, bias(f"{pre}mlp.in", W_in.shape[0])
            out[f"{pre}mlp.W_out"], out[f"{pre}mlp.b_out"] = W_out.T, bias(f"{pre}mlp.out", W_out.shape[0])
    for k, v in state.items():  # LayerNorm weight, bias -> TransformerLens's w, b
        if _is_ln(k):
            name, _, kind = k.rpartition(".")
            out[f"{name}.{'w' if kind == 'weight' else 'b'}"] = v
    # TransformerBridgeConfig's attention_dir defaults to "causal".
    return Weights(out, hints, f"{what}; {NAME}", causal_default=True)
