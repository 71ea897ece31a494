"""Export to TransformerLens's own models: 4.x's native `TransformerBridge.boot_native` (to_bridge) and
2.x/3.x's `HookedTransformer` (to_hooked_transformer).

The native model stores nn.Linear weights ([out, in]) with heads flattened head-major, so
W_Q [n_heads, d_model, d_head] becomes q.weight [n_heads * d_head, d_model].
"""

from __future__ import annotations

import einops
import torch

from interp.errors import ConfigError, InterpError


def require(name: str, need: str):
    """transformer_lens.<name>, or one InterpError line: `need` and the installed version."""
    import transformer_lens

    try:
        return getattr(transformer_lens, name)
    except (AttributeError, ImportError):  # TransformerLens 4 raises ImportError for removed names
        try:
            from importlib.metadata import version

            installed = version("transformer-lens")
        except Exception:  # a source checkout without metadata
            installed = "unknown"
        raise InterpError(f"{need}; installed: transformer-lens {installed}") from None


def to_hooked_transformer(model):
    """Our Transformer -> TransformerLens 2.x/3.x's HookedTransformer computing the same logits.

    Our parameters already have HookedTransformer's names and shapes (and its `mask`/`IGNORE` buffers),
    so the state dict loads unchanged; only the config is translated.
    """
    HookedTransformer = require(
        "HookedTransformer", "to_hooked_transformer() needs TransformerLens 2.x or 3.x (HookedTransformer; "
        "TransformerLens 4 removed it: use to_bridge())")
    cfg = model.cfg
    if cfg.attn_rate != 1.0:
        raise ConfigError(f"cannot export attn_rate={cfg.attn_rate} to HookedTransformer: it has standard "
                          "attention only (attn_rate = 1)")
    htcfg = require("HookedTransformerConfig", "to_hooked_transformer() needs TransformerLens 2.x or 3.x")(
        n_layers=cfg.n_layers, d_model=cfg.d_model, n_ctx=cfg.n_ctx, d_head=cfg.d_head, n_heads=cfg.n_heads,
        d_mlp=cfg.d_mlp, d_vocab=cfg.d_vocab, d_vocab_out=cfg.d_vocab_out, act_fn=cfg.act_fn,
        normalization_type=cfg.normalization_type, eps=cfg.eps, attn_only=cfg.attn_only,
        attention_dir="causal" if cfg.causal else "bidirectional",
        positional_embedding_type="standard", default_prepend_bos=False, device=str(model.W_E.device),
    )
    ht = HookedTransformer(htcfg)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ht.load_state_dict(state, strict=True)
    return ht.train(model.training)


def to_bridge(model):
    """Our Transformer -> a TransformerBridge computing the same logits (within float error), LayerNorm
    (`ln1`, `ln2`, `ln_final` weight and bias) and attention-only models included."""
    from transformer_lens import TransformerBridge, TransformerBridgeConfig

    cfg = model.cfg
    if cfg.attn_rate != 1.0:
        raise ConfigError(
            f"cannot export attn_rate={cfg.attn_rate} to TransformerBridge: it has standard attention "
            "only (attn_rate = 1)"
        )
    bcfg = TransformerBridgeConfig(
        d_model=cfg.d_model, d_head=cfg.d_head, n_layers=cfg.n_layers, n_ctx=cfg.n_ctx, n_heads=cfg.n_heads,
        d_mlp=cfg.d_mlp, d_vocab=cfg.d_vocab, d_vocab_out=cfg.d_vocab_out,
        act_fn=cfg.act_fn, normalization_type=cfg.normalization_type, eps=cfg.eps, attn_only=cfg.attn_only,
        positional_embedding_type="standard", attention_dir="causal" if cfg.causal else "bidirectional",
    )
    bridge = TransformerBridge.boot_native(bcfg)
    state = {"embed.weight": model.W_E, "pos_embed.weight": model.W_pos, "unembed.weight": model.W_U.T,
             "unembed.bias": model.b_U}
    ln = {"ln_final": model.ln_final} if cfg.normalization_type == "LN" else {}  # LNPre has no weights
    for i, b in enumerate(model.blocks):
        a, pre = b.attn, f"blocks.{i}."
        if cfg.normalization_type == "LN":
            ln.update({pre + "ln1": b.ln1, **({} if cfg.attn_only else {pre + "ln2": b.ln2})})
        for name in "QKV":
            W, bias = getattr(a, f"W_{name}"), getattr(a, f"b_{name}")
            state[pre + f"attn.{name.lower()}.weight"] = einops.rearrange(W, "h d e -> (h e) d")
            state[pre + f"attn.{name.lower()}.bias"] = einops.rearrange(bias, "h e -> (h e)")
        state[pre + "attn.o.weight"] = einops.rearrange(a.W_O, "h e d -> d (h e)")
        state[pre + "attn.o.bias"] = a.b_O
        if not cfg.attn_only:
            m = b.mlp
            state[pre + "mlp.in.weight"], state[pre + "mlp.in.bias"] = m.W_in.T, m.b_in
            state[pre + "mlp.out.weight"], state[pre + "mlp.out.bias"] = m.W_out.T, m.b_out
    for name, norm in ln.items():  # TransformerLens's LayerNorm w, b are the bridge's weight, bias
        state[name + ".weight"], state[name + ".bias"] = norm.w, norm.b
    target = bridge.state_dict()
    missing = sorted(set(target) - set(state))
    if missing:
        raise RuntimeError(f"TransformerBridge has parameters this export does not fill: {missing}")
    with torch.no_grad():
        bridge.load_state_dict({k: v.detach().clone().contiguous() for k, v in state.items()}, strict=True)
    return bridge
