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
