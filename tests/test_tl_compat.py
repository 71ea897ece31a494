"""Interop with TransformerLens 2.x/3.x, run by `make test-tl2` in a separate venv that has TransformerLens 2
(constraints-tl2.txt); in the main env (TransformerLens 4, no HookedTransformer) it is skipped, and
test_tl_surface.py checks the one-line error there instead."""

import pytest
import torch

import transformer_lens
from interp import ModelConfig, Transformer, all_tokens
from interp.errors import InterpError
from test_tl_surface import model_with_biases as with_random_biases

try:
    HookedTransformer = transformer_lens.HookedTransformer
except (ImportError, AttributeError):  # TransformerLens 4 raises ImportError for removed names
    pytest.skip("needs TransformerLens 2.x/3.x (HookedTransformer): `make test-tl2`", allow_module_level=True)

NANDA = ModelConfig(p=13, d_model=32, n_heads=4, d_head=8, d_mlp=64)  # [a, b, =], causal
CLOCK = ModelConfig(p=13, d_model=32, n_heads=4, d_head=8, d_mlp=64, eq_token=False, causal=False, biases="mlp")
HOOKS = ["hook_embed", "blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z", "blocks.0.mlp.hook_post",
         "blocks.0.hook_resid_post"]


@pytest.mark.parametrize("cfg", [NANDA, CLOCK], ids=["nanda", "clock-pizza-layout"])
def test_to_hooked_transformer_gives_equal_logits_and_activations(cfg):
    ours = with_random_biases(cfg)
    ht = ours.to_hooked_transformer()
    assert isinstance(ht, HookedTransformer)
    x = all_tokens(cfg)
    assert torch.allclose(ht(x), ours(x), atol=1e-5)
    _, their_cache = ht.run_with_cache(x)
    _, our_cache = ours.run_with_cache(x)
    for name in HOOKS:
        assert torch.allclose(their_cache[name], our_cache[name], atol=1e-5), name
    # the loss HookedTransformer reports is next-token LM loss, not ours; ours matches the logits it gives
    logits = ht(x)[:, -1].double()
    labels = ours.labels(x)
    assert torch.allclose(ours(x, return_type="loss"), torch.nn.functional.cross_entropy(logits, labels), atol=1e-6)


def test_the_exported_model_is_independent_of_ours():
    ours = with_random_biases(NANDA)
    ht = ours.to_hooked_transformer()
    with torch.no_grad():
        ours.W_E.zero_()
    assert ht.W_E.abs().sum() > 0


def test_to_bridge_names_the_version_it_needs():
    import importlib.metadata

    if importlib.metadata.version("transformer-lens").split(".")[0] not in ("2",):
        pytest.skip("TransformerLens 3 has TransformerBridge")
    with pytest.raises(InterpError, match=r"^to_bridge\(\) needs TransformerLens >= 4\.0 .*; installed: transformer-lens 2\."):
        Transformer(NANDA, seed=0).to_bridge()


# ---- models trained with HookedTransformerConfig's defaults (LayerNorm), saved as the Grokking demo saves ----
def _train_default_hooked_transformer(p: int, **kw) -> tuple:
    """HookedTransformerConfig's defaults (normalization_type "LN", d_vocab_out = d_vocab = p + 1 with `=`),
    trained a few full-batch AdamW steps with plain torch on (a + b) mod p: biases and LayerNorm weights move."""
    from transformer_lens import HookedTransformerConfig

    shape = dict(n_layers=1, d_model=32, n_ctx=3, d_head=8, n_heads=4, d_mlp=64, d_vocab=p + 1, act_fn="relu", seed=0)
    ht = HookedTransformer(HookedTransformerConfig(**{**shape, **kw}))
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    x = torch.stack([a.flatten(), b.flatten(), torch.full((p * p,), p)], 1)
    opt = torch.optim.AdamW(ht.parameters(), lr=1e-2, weight_decay=1.0, betas=(0.9, 0.98))
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(ht(x)[:, -1], (x[:, 0] + x[:, 1]) % p)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return ht.eval(), x


@pytest.mark.parametrize("kw", [{}, {"n_layers": 2}, {"attn_only": True}, {"normalization_type": "LNPre"}],
                         ids=["default-LN", "two-layers", "attn-only", "LNPre"])
def test_a_default_config_hooked_transformer_saved_as_the_demo_loads_and_exports_back(tmp_path, kw):
    import numpy as np

    import interp

    p = 11
    ht, x = _train_default_hooked_transformer(p, **kw)
    assert ht.cfg.normalization_type == kw.get("normalization_type", "LN") and ht.cfg.d_vocab_out == p + 1
    sd = ht.state_dict()
    torch.save({"model": sd, "config": ht.cfg, "checkpoints": [sd], "checkpoint_epochs": [0], "train_losses": [2.4],
                "test_losses": [2.4], "train_indices": np.arange(40), "test_indices": np.arange(40, p * p)},
               tmp_path / "grokking_demo.pth")
    ours = interp.load(tmp_path / "grokking_demo.pth")
    assert (ours.cfg.normalization_type, ours.cfg.attn_only, ours.cfg.n_layers) == (
        ht.cfg.normalization_type, ht.cfg.attn_only, ht.cfg.n_layers)
    with torch.no_grad():
        theirs = ht(x)[..., :p]  # the p answers; the `=` output is never a label
        assert (ours(x) - theirs).abs().max() <= 1e-5
        _, their_cache = ht.run_with_cache(x)
        _, our_cache = ours.run_with_cache(x)
    ln = [] if ht.cfg.normalization_type is None else ["blocks.0.ln1.hook_scale", "ln_final.hook_normalized"]
    for name in ln + ["blocks.0.attn.hook_pattern", "blocks.0.hook_resid_post"]:
        assert torch.allclose(their_cache[name], our_cache[name], atol=1e-5), name
    back = ours.to_hooked_transformer()
    assert back.cfg.normalization_type == ht.cfg.normalization_type and back.cfg.attn_only == ht.cfg.attn_only
    for k, v in back.state_dict().items():
        want = sd[k][..., :p] if k.startswith("unembed.") else sd[k]
        assert torch.equal(v, want), k
    with torch.no_grad():
        assert (back(x) - theirs).abs().max() <= 1e-5
