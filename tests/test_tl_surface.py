"""The TransformerLens surface of our model, each piece checked against a hand computation:
forward(return_type=...), OV/QK as FactoredMatrix, and what ActivationCache's decompose_resid,
accumulated_resid, stack_head_results and logit_attrs need; plus the interop errors."""

import pytest
import torch
import torch.nn.functional as F
from transformer_lens import FactoredMatrix

from interp import ModelConfig, Transformer, all_tokens
from interp.bridge import require
from interp.errors import ConfigError, InterpError

P = 13
NANDA = ModelConfig(p=P, d_model=32, n_heads=4, d_head=8, d_mlp=64)  # [a, b, =], causal
PIZZA = ModelConfig(p=P, d_model=32, n_heads=4, d_head=8, d_mlp=64, eq_token=False, causal=False, diff_vocab=True)


def model_with_biases(cfg=NANDA, seed=0) -> Transformer:
    """Random biases everywhere, so that a decomposition that forgets a bias term fails."""
    m = Transformer(cfg.replace(biases="all"), seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.split(".")[-1].startswith("b_"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return m.eval()


def answers(cfg):
    pairs = torch.cartesian_prod(torch.arange(cfg.p), torch.arange(cfg.p))
    return (pairs[:, 0] + pairs[:, 1]) % cfg.p


# ---- forward(return_type=...) -------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [NANDA, PIZZA])
def test_loss_is_float64_cross_entropy_at_the_last_position_against_a_plus_b(cfg):
    m = model_with_biases(cfg)
    x = all_tokens(cfg)
    logits = m(x)
    labels = answers(cfg)  # (a + b) mod p, from the pairs, not from the tokens (diff_vocab offsets b)
    by_hand = -(logits[:, -1].double().log_softmax(-1)[torch.arange(len(x)), labels]).mean()
    loss = m(x, return_type="loss")
    assert loss.dtype == torch.float64 and loss.ndim == 0
    assert torch.allclose(loss, by_hand, rtol=1e-12)
    per = m(x, return_type="loss", loss_per_token=True)
    assert per.shape == (len(x),) and torch.allclose(per.mean(), by_hand, rtol=1e-12)
    both_logits, both_loss = m(x, return_type="both")
    assert torch.equal(both_logits, logits) and torch.equal(both_loss, loss)
    assert m(x, return_type=None) is None
    assert torch.equal(m(x, return_type="logits"), logits)
    # the training path (last position only) gives the same loss
    assert torch.allclose(m(x, return_type="loss", last_only=True), loss, rtol=1e-6)


def test_loss_through_run_with_hooks_sees_the_ablation():
    m = model_with_biases()
    x = all_tokens(NANDA)
    base = m(x, return_type="loss")
    ablated = m.run_with_hooks(x, return_type="loss", fwd_hooks=[("blocks.0.attn.hook_z", lambda z, hook: z * 0)])
    assert ablated.ndim == 0 and not torch.isclose(ablated, base)


def test_bad_return_type_and_tokens_are_one_line_errors():
    m = Transformer(NANDA, seed=0)
    with pytest.raises(ConfigError, match="return_type"):
        m(all_tokens(NANDA), return_type="logprobs")
    with pytest.raises(ConfigError, match="tokens must be"):
        m(all_tokens(NANDA)[:, :1], return_type="loss")


# ---- OV and QK -----------------------------------------------------------------------------------
def test_OV_and_QK_are_factored_matrices_equal_to_the_products_per_head():
    m = model_with_biases()
    assert isinstance(m.OV, FactoredMatrix) and isinstance(m.QK, FactoredMatrix)
    assert m.OV.shape == (NANDA.n_layers, NANDA.n_heads, NANDA.d_model, NANDA.d_model)
    for h in range(NANDA.n_heads):
        attn = m.blocks[0].attn
        ov = attn.W_V[h] @ attn.W_O[h]
        qk = attn.W_Q[h] @ attn.W_K[h].T
        assert torch.allclose(m.OV[0, h].AB, ov, atol=1e-6) and torch.allclose(attn.OV[h].AB, ov, atol=1e-6)
        assert torch.allclose(m.QK[0, h].AB, qk, atol=1e-6) and torch.allclose(attn.QK[h].AB, qk, atol=1e-6)
    # the attention scores are x QK x^T / sqrt(d_head) (no query/key biases here)
    m0 = Transformer(NANDA, seed=1)
    x = all_tokens(NANDA)[:7]
    _, cache = m0.run_with_cache(x)
    resid = cache["resid_pre", 0]
    scores = torch.einsum("bqd,hde,bke->bhqk", resid, m0.QK[0].AB, resid) / NANDA.d_head**0.5
    allowed = torch.tril(torch.ones(3, 3, dtype=torch.bool))
    assert torch.allclose(cache["attn_scores", 0][..., allowed], scores[..., allowed], atol=1e-4)


# ---- ActivationCache ------------------------------------------------------------------------------
def test_decompose_resid_sums_to_the_final_residual_stream():
    m = model_with_biases()
    _, cache = m.run_with_cache(all_tokens(NANDA))
    stack, labels = cache.decompose_resid(return_labels=True)
    assert labels == ["embed", "pos_embed", "0_attn_out", "0_mlp_out"]
    assert torch.allclose(stack.sum(0), cache["resid_post", 0], atol=1e-5)
    assert torch.equal(stack[2], cache["attn_out", 0])
    attn_only = cache.decompose_resid(mode="attn")
    assert attn_only.shape[0] == 3  # embed, pos_embed, attention: the MLP is left out
    assert cache.model.cfg.attn_only is False and cache.model.cfg.normalization_type is None
    assert cache.model.model is m  # the cache's view wraps this very model


def test_accumulated_resid_runs_from_the_embedding_to_the_final_residual():
    m = model_with_biases()
    _, cache = m.run_with_cache(all_tokens(NANDA))
    acc, labels = cache.accumulated_resid(return_labels=True)
    assert labels == ["0_pre", "final_post"]
    assert torch.allclose(acc[0], cache["hook_embed"] + cache["hook_pos_embed"], atol=1e-6)
    assert torch.equal(acc[-1], cache["resid_post", 0])
    # the final residual stream times W_U (+ b_U) is the logits
    logits = m(all_tokens(NANDA))
    assert torch.allclose(acc[-1] @ m.W_U + m.b_U, logits, atol=1e-5)


def test_stack_head_results_are_z_times_W_O_per_head_and_sum_to_attn_out_minus_b_O():
    m = model_with_biases()
    _, cache = m.run_with_cache(all_tokens(NANDA))
    heads, labels = cache.stack_head_results(return_labels=True)
    assert labels == [f"L0H{h}" for h in range(NANDA.n_heads)]
    z = cache["z", 0]  # [batch, pos, head, d_head]
    for h in range(NANDA.n_heads):
        assert torch.allclose(heads[h], z[:, :, h] @ m.W_O[0, h], atol=1e-5)
    assert torch.allclose(heads.sum(0) + m.b_O[0], cache["attn_out", 0], atol=1e-5)


def test_logit_attrs_sum_to_the_logit_difference():
    m = model_with_biases()
    x = all_tokens(NANDA)
    logits, cache = m.run_with_cache(x)
    right = answers(NANDA)
    wrong = (right + 1) % P
    stack = cache.decompose_resid(pos_slice=-1)  # [component, batch, d_model]
    attrs = cache.logit_attrs(stack, tokens=right, incorrect_tokens=wrong, pos_slice=-1)
    assert attrs.shape == (4, P * P)
    rows = torch.arange(P * P)
    diff = logits[rows, -1, right] - logits[rows, -1, wrong]
    assert torch.allclose(attrs.sum(0) + m.b_U[right] - m.b_U[wrong], diff, atol=1e-4)
    # per component: the component's residual dotted with W_U[:, right] - W_U[:, wrong], by hand
    for i in range(4):
        by_hand = (stack[i] * (m.W_U[:, right] - m.W_U[:, wrong]).T).sum(-1)
        assert torch.allclose(attrs[i], by_hand, atol=1e-5)


def test_tokens_to_residual_directions_for_our_vocabulary():
    m = model_with_biases()
    assert torch.equal(m.tokens_to_residual_directions(5), m.W_U[:, 5])
    assert torch.equal(m.tokens_to_residual_directions("5"), m.W_U[:, 5])
    assert torch.equal(m.tokens_to_residual_directions(torch.tensor([[1, 2]])), m.W_U[:, [1, 2]].T[None])
    assert m.to_single_token("=") == NANDA.eq_id == P
    for bad in (P, -1, "x", "="):  # "=" is an input token, not an output: no unembedding direction
        with pytest.raises(ConfigError):
            m.tokens_to_residual_directions(bad)
    with pytest.raises(ConfigError):
        Transformer(PIZZA, seed=0).to_single_token("=")  # no `=` token in the Clock/Pizza layout


def test_accumulated_bias_sums_the_output_biases():
    m = model_with_biases()
    assert torch.equal(m.accumulated_bias(0), torch.zeros(NANDA.d_model))
    assert torch.allclose(m.accumulated_bias(0, mlp_input=True), m.b_O[0])
    assert torch.allclose(m.accumulated_bias(1), m.b_O[0] + m.b_out[0])
    assert torch.allclose(m.accumulated_bias(1, include_mlp_biases=False), m.b_O[0])


def test_a_nanda_style_snippet_runs_on_our_model():
    """What a reader of Nanda's / ARENA's grokking code types, in the spelling that works on TransformerLens 2-4
    (`utils` was renamed `utilities` in 4; docs/transformerlens.md)."""
    try:
        from transformer_lens import utilities as utils  # TransformerLens 4
        utils.get_act_name
    except (ImportError, AttributeError):  # TransformerLens 2/3: `utilities` lacks these
        from transformer_lens import utils

    model = model_with_biases()
    tokens = all_tokens(model.cfg)
    labels = model.labels(tokens)
    original_loss = model(tokens, return_type="loss")
    logits, cache = model.run_with_cache(tokens)
    neuron_acts = cache[utils.get_act_name("post", 0)][:, -1, :]  # [p^2, d_mlp]
    assert neuron_acts.shape == (P * P, model.cfg.d_mlp)
    resid_stack, comp_labels = cache.decompose_resid(pos_slice=-1, return_labels=True)
    attrs = cache.logit_attrs(resid_stack, tokens=labels, pos_slice=-1)  # [component, p^2]
    correct_logit = logits[torch.arange(P * P), -1, labels]
    assert torch.allclose(attrs.sum(0) + model.b_U[labels], correct_logit, atol=1e-4)
    head_results = cache.stack_head_results(layer=-1, pos_slice=-1)
    head_attrs = cache.logit_attrs(head_results, tokens=labels, pos_slice=-1)  # [n_heads, p^2]
    assert torch.allclose(head_attrs.sum(0), attrs[comp_labels.index("0_attn_out")]
                          - model.b_O[0] @ model.W_U[:, labels], atol=1e-4)
    # the OV circuit of head 0 from token embeddings to the logits, as a FactoredMatrix product
    full_OV = model.W_E @ model.OV[0, 0] @ model.W_U  # [d_vocab, d_vocab_out]
    assert torch.allclose(full_OV.AB, model.W_E @ model.W_V[0, 0] @ model.W_O[0, 0] @ model.W_U, atol=1e-4)
    # ablate every head's output through hook_z: the loss changes
    ablated = model.run_with_hooks(tokens, return_type="loss",
                                   fwd_hooks=[(utils.get_act_name("z", 0), lambda z, hook: z.mean(0, keepdim=True))])
    assert ablated != original_loss
    assert utils.to_numpy(original_loss).shape == ()


# ---- interop errors --------------------------------------------------------------------------------
def test_missing_transformer_lens_classes_are_one_line_errors():
    with pytest.raises(InterpError, match=r"needs TransformerLens 9\.x; installed: transformer-lens \S+$"):
        require("NoSuchClass", "needs TransformerLens 9.x")


def test_to_hooked_transformer_refuses_non_standard_attention_or_names_the_version():
    import transformer_lens

    m = Transformer(PIZZA.replace(attn_rate=0.0), seed=0)
    try:
        transformer_lens.HookedTransformer  # noqa: B018
    except (ImportError, AttributeError):  # TransformerLens 4: the error names the versions that have it
        with pytest.raises(InterpError, match=r"needs TransformerLens 2\.x or 3\.x .* use to_bridge\(\)"):
            m.to_hooked_transformer()
        return
    with pytest.raises(ConfigError, match="attn_rate"):
        m.to_hooked_transformer()
