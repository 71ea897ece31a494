import pytest
import torch

from interp import ModelConfig, Transformer, all_tokens
from interp.errors import ConfigError

NANDA = ModelConfig()
PIZZA = ModelConfig(p=59, eq_token=False, causal=False, biases="mlp", attn_rate=0.0)
HOOKS = [
    "hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre", "blocks.0.attn.hook_q", "blocks.0.attn.hook_k",
    "blocks.0.attn.hook_v", "blocks.0.attn.hook_attn_scores", "blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z",
    "blocks.0.hook_attn_out", "blocks.0.hook_resid_mid", "blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_post",
    "blocks.0.hook_mlp_out", "blocks.0.hook_resid_post",
]


def tokens(cfg, n=16, seed=0):
    return all_tokens(cfg)[torch.randperm(cfg.p**2, generator=torch.Generator().manual_seed(seed))[:n]]


def test_hook_names_and_shapes():
    m = Transformer(NANDA, seed=0)
    x = tokens(NANDA, 5)
    logits, cache = m.run_with_cache(x)
    assert list(cache.keys()) == HOOKS
    b, n, d, h, e = 5, 3, 128, 4, 32
    expected = {
        "hook_embed": (b, n, d), "hook_pos_embed": (b, n, d), "blocks.0.attn.hook_q": (b, n, h, e),
        "blocks.0.attn.hook_attn_scores": (b, h, n, n), "blocks.0.attn.hook_pattern": (b, h, n, n),
        "blocks.0.attn.hook_z": (b, n, h, e), "blocks.0.hook_resid_mid": (b, n, d),
        "blocks.0.mlp.hook_post": (b, n, 512), "blocks.0.hook_resid_post": (b, n, d),
    }
    for name, shape in expected.items():
        assert tuple(cache[name].shape) == shape, name
    assert logits.shape == (b, n, 113)


def test_cache_indexing_like_transformer_lens():
    m = Transformer(NANDA, seed=0)
    _, cache = m.run_with_cache(tokens(NANDA, 4))
    assert torch.equal(cache["pattern", 0], cache["blocks.0.attn.hook_pattern"])
    assert torch.equal(cache["post", 0], cache["blocks.0.mlp.hook_post"])
    assert torch.equal(cache["resid_mid", 0], cache["blocks.0.hook_resid_mid"])


def test_names_filter_caches_only_requested_hooks():
    m = Transformer(NANDA, seed=0)
    _, cache = m.run_with_cache(tokens(NANDA, 4), names_filter=lambda n: n.endswith("hook_post"))
    assert list(cache.keys()) == ["blocks.0.mlp.hook_post"]


def test_hooks_can_intervene():
    m = Transformer(NANDA, seed=0)
    x = tokens(NANDA, 6)
    zeroed = m.run_with_hooks(x, fwd_hooks=[("blocks.0.mlp.hook_post", lambda t, hook: t * 0)])
    base = m(x)
    assert not torch.allclose(zeroed, base)
    # With the MLP knocked out the logits are what attention alone gives.
    resid = m.blocks[0].hook_resid_mid(m.embed(x) + m.pos_embed(x) + m.blocks[0].attn(m.embed(x) + m.pos_embed(x)))
    assert torch.allclose(zeroed, (resid + m.blocks[0].mlp.b_out) @ m.W_U + m.b_U, atol=1e-5)


def test_parameter_names_and_shapes_match_hooked_transformer():
    shapes = {k: tuple(v.shape) for k, v in Transformer(NANDA, seed=0).state_dict().items()}
    assert shapes == {
        "embed.W_E": (114, 128), "pos_embed.W_pos": (3, 128),
        "blocks.0.attn.W_Q": (4, 128, 32), "blocks.0.attn.W_K": (4, 128, 32), "blocks.0.attn.W_V": (4, 128, 32),
        "blocks.0.attn.W_O": (4, 32, 128), "blocks.0.attn.b_Q": (4, 32), "blocks.0.attn.b_K": (4, 32),
        "blocks.0.attn.b_V": (4, 32), "blocks.0.attn.b_O": (128,), "blocks.0.attn.mask": (3, 3),
        "blocks.0.attn.IGNORE": (), "blocks.0.mlp.W_in": (128, 512), "blocks.0.mlp.b_in": (512,),
        "blocks.0.mlp.W_out": (512, 128), "blocks.0.mlp.b_out": (128,), "unembed.W_U": (128, 113),
        "unembed.b_U": (113,),
    }


def test_weight_properties():
    m = Transformer(NANDA, seed=0)
    assert m.W_E is m.embed.W_E and m.W_U is m.unembed.W_U
    assert m.W_Q.shape == (1, 4, 128, 32) and m.W_O.shape == (1, 4, 32, 128)
    assert m.W_in.shape == (1, 128, 512) and m.W_out.shape == (1, 512, 128)
    assert torch.equal(m.W_K[0], m.blocks[0].attn.W_K)


def test_loads_hooked_transformer_state_dict():
    """A HookedTransformer state dict (with its buffers, and a non-causal mask value) loads unchanged."""
    src = Transformer(NANDA, seed=1)
    state = {k: v.clone() for k, v in src.state_dict().items()}
    state["blocks.0.attn.IGNORE"] = torch.tensor(-1e5)  # TL 2.x stores -1e5 or -inf: either is accepted
    dst = Transformer(NANDA, seed=2)
    dst.load_state_dict(state)
    x = tokens(NANDA, 8)
    assert torch.equal(dst(x), src(x))


def test_attention_rate_zero_is_constant_attention():
    m = Transformer(PIZZA, seed=0)
    _, cache = m.run_with_cache(tokens(PIZZA, 7))
    assert torch.equal(cache["pattern", 0], torch.ones_like(cache["pattern", 0]))


def test_attention_rate_interpolates():
    cfgs = [PIZZA.replace(attn_rate=a) for a in (0.0, 0.3, 1.0)]
    x = tokens(PIZZA, 7)
    pats = []
    for c in cfgs:
        _, cache = Transformer(c, seed=3).run_with_cache(x)
        pats.append(cache["pattern", 0])
    soft = pats[2]
    assert torch.allclose(soft.sum(-1), torch.ones_like(soft.sum(-1)))
    assert torch.allclose(pats[1], 0.3 * soft + 0.7, atol=1e-6)


def test_causal_mask_only_where_configured():
    _, cache = Transformer(NANDA, seed=0).run_with_cache(tokens(NANDA, 3))
    pat = cache["pattern", 0]
    assert (pat[:, :, 0, 1:] == 0).all() and (pat[:, :, 2] > 0).all()
    _, cache = Transformer(PIZZA.replace(attn_rate=1.0), seed=0).run_with_cache(tokens(PIZZA, 3))
    assert (cache["pattern", 0] > 0).all()


@pytest.mark.parametrize("cfg", [NANDA, PIZZA, PIZZA.replace(attn_rate=0.5, diff_vocab=True, act_fn="gelu")])
def test_training_path_equals_full_forward(cfg):
    m = Transformer(cfg, seed=4)
    x = tokens(cfg, 32)
    assert torch.allclose(m.last_logits(x), m(x)[:, -1], atol=1e-5)


def test_frozen_biases_get_no_gradient():
    m = Transformer(NANDA, seed=0)
    assert not any(p.requires_grad for n, p in m.named_parameters() if ".b_" in n or n.endswith("b_U"))
    m = Transformer(PIZZA, seed=0)
    trained = {n for n, p in m.named_parameters() if p.requires_grad and (".b_" in n or n.endswith("b_U"))}
    assert trained == {"blocks.0.mlp.b_in", "blocks.0.mlp.b_out"}


def test_same_seed_same_weights_other_seed_differs():
    a, b, c = (Transformer(NANDA, seed=s).state_dict() for s in (7, 7, 8))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["embed.W_E"], c["embed.W_E"])


@pytest.mark.parametrize("cfg", [NANDA, PIZZA.replace(attn_rate=1.0)])
def test_bridge_export_gives_equal_logits(cfg):
    m = Transformer(cfg, seed=5)
    with torch.no_grad():  # non-zero biases, so their export is checked too
        for name, p in m.named_parameters():
            if name.split(".")[-1].startswith("b_"):
                p.normal_(0, 0.1)
    x = tokens(cfg, 64)
    bridge = m.to_bridge()
    assert (bridge(x) - m(x)).abs().max().item() < 1e-5
    _, cache = bridge.run_with_cache(x)
    _, ours = m.run_with_cache(x)
    assert torch.allclose(cache["pattern", 0], ours["pattern", 0], atol=1e-6)


def test_bridge_export_refuses_non_standard_attention():
    with pytest.raises(ConfigError, match="attn_rate"):
        Transformer(PIZZA, seed=0).to_bridge()
