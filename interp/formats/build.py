"""The one place where weights read from a file become a model.

Every format's reader returns `Weights`: the tensors in our layout (HookedTransformer's names and
shapes, `interp.model`), the config the file or its sidecar states (`Hints`, or a whole ModelConfig
for our own checkpoints) and a description. `build_model` infers what the hints leave open from
the shapes, checks that hints and shapes agree, and builds the model with
`interp.checkpoints.model_from_state` (every name, shape and value checked).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from interp.checkpoints import model_from_state
from interp.config import ModelConfig
from interp.errors import CheckpointError, ConfigError
from interp.formats.configs import Hints, brief, check_attn_scale, check_tl_options

_BLOCK = re.compile(r"blocks\.(\d+)\.")


@dataclass
class Weights:
    """What a reader found: weights in our layout plus what the file says about the config."""

    state: dict[str, torch.Tensor]
    hints: Hints = field(default_factory=dict)
    what: str = ""  # what the file was recognised as, for `model.source_format`
    config: ModelConfig | None = None  # complete config (our checkpoints); else inferred from hints + shapes
    info: Any = None  # `model.checkpoint_info`
    causal_default: bool = True  # without a hint: TransformerLens and Nanda's code mask; Clock/Pizza's does not


def n_layers_of(state: dict, source: str) -> int:
    layers = set()
    for k in state:
        if k.startswith("blocks"):
            m = _BLOCK.match(k)
            if m is None:
                raise CheckpointError(f"{source}: unexpected weight name {brief(k)}")
            layers.add(int(m.group(1)))
    if not layers:
        raise CheckpointError(f"{source}: no transformer blocks (blocks.0.*) in the weights")
    return max(layers) + 1


def _infer_p(d_vocab: int, d_vocab_out: int, eq: bool, diff: bool | None, source: str) -> tuple[int, bool]:
    """(p, diff_vocab) from the vocabulary sizes: d_vocab = p (2p with diff_vocab) + 1 with an `=`
    token; the output has p logits (TransformerLens demo) or one per input token (Nanda's original)."""
    base = d_vocab - int(eq)
    options = []
    for dv in ([diff] if diff is not None else [False, True]):
        p, rem = divmod(base, 2 if dv else 1)
        if rem == 0 and p >= 2 and d_vocab_out in (p, d_vocab):
            options.append((p, dv))
    if len(options) != 1:
        raise CheckpointError(f"{source}: cannot tell p from the shapes (d_vocab={d_vocab}, d_vocab_out={d_vocab_out}); "
                              "give a JSON config with p (or C) and diff_vocab")
    return options[0]


def _value(hints: Hints, name: str, default=None):
    return hints[name].value if name in hints else default


def infer_config(w: Weights, source: str) -> ModelConfig:
    """ModelConfig from weights in our layout plus hints (which win where the weights cannot tell)."""
    state, hints = w.state, w.hints
    check_tl_options(hints, source)
    n_layers = n_layers_of(state, source)
    d_vocab, d_model = state["embed.W_E"].shape
    n_heads, _, d_head = state["blocks.0.attn.W_Q"].shape
    # No MLP weights: an attention-only model. LayerNorm weights say "LN"; "LNPre" has none, so only a
    # config can say it. A config that says otherwise than the weights is refused naming its key.
    has_mlp, has_ln = "blocks.0.mlp.W_in" in state, "blocks.0.ln1.w" in state
    attn_only = _value(hints, "attn_only", not has_mlp)
    if attn_only == has_mlp:
        raise CheckpointError(f"{source}: {hints['attn_only'].where()} but the weights have "
                              f"{'an MLP (blocks.0.mlp.W_in)' if has_mlp else 'no MLP'}")
    norm = _value(hints, "normalization_type", "LN" if has_ln else None)
    if (norm == "LN") != has_ln:
        raise CheckpointError(f"{source}: {hints['normalization_type'].where()} but the weights have "
                              f"{'LayerNorm weights (blocks.0.ln1.w)' if has_ln else 'no LayerNorm weights'}")
    shapes = {"d_model": d_model, "n_heads": n_heads, "d_head": d_head, "n_layers": n_layers, "d_vocab": d_vocab,
              "d_vocab_out": state["unembed.W_U"].shape[1], "n_ctx": state["pos_embed.W_pos"].shape[0]}
    if "blocks.0.mlp.W_in" in state:
        shapes["d_mlp"] = state["blocks.0.mlp.W_in"].shape[1]
    for k, v in shapes.items():
        if k in hints and hints[k].value != v:
            raise CheckpointError(f"{source}: {hints[k].where()} but the weights have {k}={v}")
    check_attn_scale(hints, d_head, source)
    n_ctx = shapes["n_ctx"]
    if n_ctx not in (2, 3):
        raise CheckpointError(f"{source}: n_ctx={n_ctx}; only [a, b] (2) and [a, b, =] (3) inputs are supported")
    eq = _value(hints, "eq_token", n_ctx == 3)
    if eq != (n_ctx == 3):
        raise CheckpointError(f"{source}: {hints['eq_token'].where()} but the weights have n_ctx={n_ctx}")
    if "p" in hints:
        p, diff = hints["p"].value, _value(hints, "diff_vocab", False)
    else:
        p, diff = _infer_p(d_vocab, shapes["d_vocab_out"], eq, _value(hints, "diff_vocab"), source)
    if shapes["d_vocab_out"] < p:
        raise CheckpointError(f"{source}: unembed has {shapes['d_vocab_out']} outputs, fewer than p={p}")
    if "biases" in hints:
        biases = hints["biases"].value
    else:
        nonzero = {k.split(".")[-1] for k, v in state.items() if k.split(".")[-1].startswith("b_") and bool(v.ne(0).any())}
        biases = "all" if nonzero - {"b_in", "b_out"} else "mlp" if nonzero else "none"
    # d_mlp of an attention-only model is unused: the config's, else ModelConfig's proportion
    d_mlp = shapes.get("d_mlp", _value(hints, "d_mlp", 4 * d_model))
    values = dict(p=p, d_model=d_model, n_heads=n_heads, d_head=d_head, d_mlp=d_mlp, n_layers=n_layers,
                  act_fn=_value(hints, "act_fn", "relu"), attn_rate=_value(hints, "attn_rate", 1.0), eq_token=eq,
                  diff_vocab=diff, causal=_value(hints, "causal", w.causal_default), biases=biases,
                  # eps only with LayerNorm: another project's `eps` may be its optimiser's
                  normalization_type=norm, eps=_value(hints, "eps", 1e-5) if norm else 1e-5, attn_only=attn_only)
    try:
        return ModelConfig(**values)
    except ConfigError as e:
        m = re.match(r"ModelConfig\.(\w+)", str(e))
        h = hints.get(m.group(1)) if m else None
        raise CheckpointError(f"{source}: {h.where() + ': ' if h else ''}{e}") from None


def build_model(w: Weights, source: str):
    """A ready model (eval mode) from what a reader found; `source_format` and `checkpoint_info` set."""
    state, cfg = dict(w.state), w.config
    if cfg is None:
        cfg = infer_config(w, source)
        state.setdefault("unembed.b_U", torch.zeros(state["unembed.W_U"].shape[1]))
        # Nanda's original and Clock/Pizza's code unembed to every input token: keep the p answers.
        state["unembed.W_U"], state["unembed.b_U"] = state["unembed.W_U"][:, : cfg.p], state["unembed.b_U"][: cfg.p]
    model = model_from_state(cfg, state, source)
    model.source_format, model.checkpoint_info = w.what, w.info
    return model
