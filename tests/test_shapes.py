"""LayerNorm (normalization_type "LN" / "LNPre"), attention-only and multi-layer models (issue 22, part 3):
the model computes what TransformerLens's native TransformerBridge computes, trains, stacks in sweeps, saves,
loads from the layouts TransformerLens users write (HookedTransformerConfig's defaults, TransformerBridge state
dicts) and is analysed layer by layer. HookedTransformer itself: tests/test_tl_compat.py (`make test-tl2`)."""

import json

import pytest
import torch

import interp
from interp import ModelConfig, Transformer, all_tokens, probes
from interp.cli import main
from interp.errors import CheckpointError, ConfigError, InterpError

from helpers import foreign

P = 13
SMALL = dict(p=P, d_model=32, n_heads=4, d_head=8, d_mlp=64)
SHAPES = {  # name -> ModelConfig fields beyond SMALL
    "ln": dict(normalization_type="LN"),
    "lnpre-2layers": dict(normalization_type="LNPre", n_layers=2),
    "attn-only-ln": dict(attn_only=True, normalization_type="LN"),
    "attn-only-2layers": dict(attn_only=True, n_layers=2),
}


def randomised(cfg: ModelConfig, seed: int = 0) -> Transformer:
    """Every parameter (biases, LayerNorm w and b) moved off its initial value, so each one shows in the logits."""
    model = Transformer(cfg, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for prm in model.parameters():
            prm.add_(torch.randn(prm.shape, generator=g) * 0.2)
    return model.eval()


# ---- config ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, field", [({"normalization_type": "RMS"}, "normalization_type"),
                                       ({"normalization_type": "ln"}, "normalization_type"), ({"eps": 0.0}, "eps"),
                                       ({"eps": float("nan")}, "eps"), ({"attn_only": 1}, "attn_only")])
def test_bad_values_name_the_field(kw, field):
    with pytest.raises(ConfigError, match=rf"^ModelConfig\.{field} must"):
        ModelConfig(**kw)


def test_config_json_is_unchanged_for_models_without_the_new_fields():
    assert set(ModelConfig().to_dict()) == {"p", "d_model", "n_heads", "d_head", "d_mlp", "n_layers", "act_fn",
                                            "attn_rate", "eq_token", "diff_vocab", "causal", "biases", "init"}
    c = ModelConfig(normalization_type="LNPre", eps=1e-6, attn_only=True)
    assert ModelConfig.from_dict(json.loads(c.to_json())) == c


def test_loss_fn_lives_in_the_model_and_training_re_exports_it():
    from interp import model, training

    assert training.loss_fn is model.loss_fn
    import inspect

    source = inspect.getsource(model)
    assert "from interp.training" not in source and "import interp.training" not in source


# ---- the model -----------------------------------------------------------------------------------
def test_layer_norm_is_transformer_lens_formula_with_its_hooks():
    cfg = ModelConfig(**SMALL, normalization_type="LN", eps=1e-3)
    model = randomised(cfg)
    x = all_tokens(cfg)
    _, cache = model.run_with_cache(x)
    resid = cache["blocks.0.hook_resid_pre"].double()
    centred = resid - resid.mean(-1, keepdim=True)
    scale = (centred.square().mean(-1, keepdim=True) + 1e-3).sqrt()
    ln1 = model.blocks[0].ln1
    torch.testing.assert_close(cache["scale", 0, "ln1"].double(), scale, rtol=1e-5, atol=0)
    torch.testing.assert_close(cache["blocks.0.ln1.hook_normalized"].double(),
                               centred / scale * ln1.w.double() + ln1.b.double(), rtol=1e-5, atol=1e-6)
    assert cache["ln_final.hook_scale"].shape == (P * P, 3, 1)


def test_state_dict_keys_are_hooked_transformers():
    keys = set(Transformer(ModelConfig(**SMALL, normalization_type="LN", n_layers=2)).state_dict())
    assert {f"blocks.{l}.{n}.{w}" for l in (0, 1) for n in ("ln1", "ln2") for w in "wb"} | {"ln_final.w", "ln_final.b"} < keys
    ao = set(Transformer(ModelConfig(**SMALL, attn_only=True)).state_dict())
    assert not any(".mlp." in k or "ln" in k for k in ao) and "blocks.0.attn.W_O" in ao
    assert not any("ln" in k for k in Transformer(ModelConfig(**SMALL, normalization_type="LNPre")).state_dict())


def test_init_gives_layer_norm_ones_and_zeros_and_the_same_other_weights():
    plain = Transformer(ModelConfig(**SMALL), seed=3).state_dict()
    ln = Transformer(ModelConfig(**SMALL, normalization_type="LN"), seed=3).state_dict()
    for k, v in ln.items():
        if ".ln" in k or k.startswith("ln_final"):
            assert torch.equal(v, torch.ones_like(v) if k.endswith(".w") else torch.zeros_like(v)), k
        else:
            assert torch.equal(v, plain[k]), k


@pytest.mark.parametrize("name", SHAPES)
def test_last_only_path_equals_the_full_forward(name):
    cfg = ModelConfig(**SMALL, **SHAPES[name])
    model = randomised(cfg)
    x = all_tokens(cfg)
    torch.testing.assert_close(model.last_logits(x), model(x)[:, -1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", SHAPES)
def test_to_bridge_equals_transformer_lens_native_model_and_its_state_dict_loads_back(tmp_path, name):
    cfg = ModelConfig(**SMALL, **SHAPES[name])
    model = randomised(cfg)
    bridge = model.to_bridge()
    assert bridge.cfg.normalization_type == cfg.normalization_type and bridge.cfg.attn_only == cfg.attn_only
    x = all_tokens(cfg)
    with torch.no_grad():
        assert (bridge(x) - model(x)).abs().max() <= 1e-5
    path = foreign.write_bridge(tmp_path / "b.pt", bridge, config=foreign.bridge_config_json(bridge))
    loaded = interp.load(path)
    assert loaded.cfg == cfg.replace(biases="all")  # a state dict cannot tell which biases were trained
    with torch.no_grad():
        assert (loaded(x) - bridge(x)).abs().max() <= 1e-5


def test_activation_cache_reads_the_real_normalization(monkeypatch):
    cfg = ModelConfig(**SMALL, normalization_type="LN", n_layers=2)
    model = randomised(cfg)
    x = all_tokens(cfg)
    logits, cache = model.run_with_cache(x)
    assert cache.model.cfg.normalization_type == "LN" and cache.model.cfg.attn_only is False
    stack, labels = cache.decompose_resid(return_labels=True, pos_slice=-1)
    assert labels == ["embed", "pos_embed", "0_attn_out", "0_mlp_out", "1_attn_out", "1_mlp_out"]
    normed = cache.apply_ln_to_stack(stack, layer=None, pos_slice=-1).sum(0)  # centred, / ln_final's scale
    out = (normed * model.ln_final.w + model.ln_final.b) @ model.W_U + model.b_U
    torch.testing.assert_close(out, logits[:, -1], rtol=0, atol=1e-4)
    ao = Transformer(ModelConfig(**SMALL, attn_only=True))
    _, cache = ao.run_with_cache(x)
    assert cache.decompose_resid(return_labels=True)[1] == ["embed", "pos_embed", "0_attn_out"]


# ---- training, sweeps, checkpoints ----------------------------------------------------------------
def test_training_with_layer_norm_runs_saves_and_resumes_as_one_run(tmp_path):
    kw = dict(normalization_type="LN", steps=12, log_every=4, checkpoint_every=6, progress=False)
    whole = interp.train("tiny", out=tmp_path / "whole", **kw)
    assert whole.history[-1]["train_loss"] < whole.history[0]["train_loss"]
    assert any(not torch.equal(b.ln1.w, torch.ones_like(b.ln1.w)) for b in whole.model.blocks)  # LN trains
    loaded = interp.load(tmp_path / "whole")
    assert loaded.cfg.normalization_type == "LN"
    for k, v in whole.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    interp.train("tiny", out=tmp_path / "half", **{**kw, "steps": 6})
    resumed = interp.resume(tmp_path / "half", steps=12, progress=False)
    for k, v in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k


def test_a_sweep_stacks_layer_norm_models_as_if_alone():
    kw = dict(normalization_type="LN", steps=10, log_every=5, checkpoint_every=10, classify=False, progress=False,
              attn_rate=[0.5, 1.0])
    stacked, alone = interp.sweep("tiny", **kw), interp.sweep("tiny", sequential=True, **kw)
    for name, r in alone.results.items():
        s = stacked.results[name].model.state_dict()
        assert "blocks.0.ln1.w" in s
        for k, v in r.model.state_dict().items():
            torch.testing.assert_close(s[k], v, atol=1e-6, rtol=0, msg=k)


# ---- loading what TransformerLens users save -----------------------------------------------------
@pytest.mark.parametrize("layout", ["demo", "state_dict+config", "plain"])
def test_hooked_transformer_defaults_load_with_no_flags(tmp_path, layout):
    model = foreign.tl_default_model(P)
    path = foreign.write_tl_default_file(tmp_path / "run.pth", model, layout)
    loaded = interp.load(path)
    assert loaded.cfg == model.cfg and loaded.cfg.normalization_type == "LN" and loaded.cfg.biases == "all"
    x = all_tokens(model.cfg)
    with torch.no_grad():
        reference = model.to_bridge()(x)  # TransformerLens's own forward of the same weights
        assert (loaded(x) - reference).abs().max() <= 1e-5


def test_attention_only_and_lnpre_configs_load_from_the_demo_file(tmp_path):
    for kw in (dict(attn_only=True, n_layers=2), dict(normalization_type="LNPre")):
        model = foreign.tl_default_model(P, **kw)
        loaded = interp.load(foreign.write_tl_default_file(tmp_path / "m.pth", model, "demo"))
        assert loaded.cfg == model.cfg
        x = all_tokens(model.cfg)
        assert torch.equal(loaded(x), model(x))


def test_a_trained_transformer_bridge_with_layer_norm_loads_in_both_spellings(tmp_path):
    from transformer_lens import TransformerBridge, TransformerBridgeConfig

    cfg = ModelConfig(**SMALL, normalization_type="LN")
    bridge = TransformerBridge.boot_native(TransformerBridgeConfig(
        d_model=32, d_head=8, n_heads=4, d_mlp=64, n_layers=1, n_ctx=3, d_vocab=P + 1, d_vocab_out=P + 1,
        act_fn="relu", normalization_type="LN"))
    x = all_tokens(cfg)
    labels = (x[:, 0] + x[:, 1]) % P
    opt = torch.optim.AdamW(bridge.parameters(), lr=1e-2)
    for _ in range(5):  # plain torch training: biases and LayerNorm weights move off their initial values
        loss = torch.nn.functional.cross_entropy(bridge(x)[:, -1], labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        reference = bridge(x)[..., :P]
    for spelling, suffix in (("bridge", ".pt"), ("original", ".safetensors")):
        path = foreign.write_bridge(tmp_path / f"{spelling}{suffix}", bridge, spelling,
                                    config=foreign.bridge_config_json(bridge, "all"))
        loaded = interp.load(path)
        assert loaded.cfg.normalization_type == "LN" and loaded.cfg.d_vocab == P + 1
        with torch.no_grad():
            assert (loaded(x) - reference).abs().max() <= 1e-5


def test_a_config_that_contradicts_the_weights_is_refused_by_its_key(tmp_path):
    model = foreign.tl_default_model(P)
    path = foreign.write_tl_default_file(tmp_path / "m.pt", model, "plain")
    for bad, needle in [({"normalization_type": None, "n_heads": 4}, None), ({"attn_only": True}, "attn_only=True"),
                        ({"normalization_type": "RMS"}, "RMS and other"), ({"normalization_type": "LNPre"}, "LayerNorm weights")]:
        if needle is None:
            assert interp.load(path, config=bad).cfg.normalization_type == "LN"  # null: "not set", the weights tell
            continue
        with pytest.raises(CheckpointError, match=needle) as e:
            interp.load(path, config=bad)
        assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_cli_classify_gives_a_verdict_for_a_tl_default_file(tmp_path, capsys):
    path = foreign.write_tl_default_file(tmp_path / "demo.pth", foreign.tl_default_model(P), "demo")
    assert main(["classify", str(path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.split()[0] in interp.classifier.LABELS, first


# ---- analyses per layer ------------------------------------------------------------------------------
def test_probes_read_the_layer_asked_for_and_neurons_refuse_attention_only_models():
    cfg = ModelConfig(**SMALL, n_layers=2, normalization_type="LN")
    model = randomised(cfg)
    a0, a1 = probes.attention(model, layer=0), probes.attention(model, layer=1)
    assert not torch.allclose(a0.to_a, a1.to_a)
    n1 = probes.neurons(model, layer=-1)
    _, cache = model.run_with_cache(all_tokens(cfg))
    torch.testing.assert_close(n1.maps, probes.by_pair(cache["post", 1][:, -1], P).double())
    ao = randomised(ModelConfig(**SMALL, attn_only=True))
    with pytest.raises(InterpError, match=r"^probes\.neurons needs the MLP; .*attention-only") as e:
        probes.neurons(ao)
    assert "\n" not in str(e.value)
    assert probes.logits(ao).W_L is None and probes.logits(model, layer=0).W_L.shape == (64, P)
    with pytest.raises(InterpError, match="W_in: this is an attention-only model"):
        ao.W_in


def test_report_shows_attention_and_neurons_of_every_layer():
    from interp import report

    rep = report.render(randomised(ModelConfig(**SMALL, n_layers=2)))
    for layer in (0, 1):
        assert sum(f.endswith(f", layer {layer}") for f in rep.figures) == 3, rep.figures  # attention + 2 neuron figures
    ao = report.render(randomised(ModelConfig(**SMALL, attn_only=True)))
    assert any("attention-only" in n for n in ao.notes) and not any("euron" in f for f in ao.figures)


def test_cli_train_flags_for_the_new_fields(tmp_path):
    assert main(["train", "--preset", "tiny", "--steps", "2", "--normalization-type", "LNPre", "--attn-only", "true",
                 "--eps", "1e-6", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    cfg = interp.load(tmp_path / "r").cfg
    assert (cfg.normalization_type, cfg.attn_only, cfg.eps) == ("LNPre", True, 1e-6)
    with pytest.raises(SystemExit):
        main(["train", "--normalization-type", "RMS", "--out", str(tmp_path / "bad"), "--quiet"])


def test_progress_weight_measures_of_an_attention_only_model_leave_only_gini_w_l_out():
    from interp import batched, progress

    ao = batched.stack_states([randomised(ModelConfig(**SMALL, attn_only=True)).state_dict()])
    m = progress.stacked_weight_measures(ao, P)
    assert torch.isnan(m["gini_W_L"]).all() and torch.isfinite(m["gini_W_E"]).all() and m["sum_sq_weights"] > 0
    ln = batched.stack_states([randomised(ModelConfig(**SMALL, normalization_type="LN")).state_dict()])
    assert torch.isfinite(progress.stacked_weight_measures(ln, P)["gini_W_L"]).all()


def test_a_config_eps_is_layer_norms_only_with_layer_norm(tmp_path):
    ln = foreign.tl_default_model(P)
    plain = foreign.tl_default_model(P, normalization_type=None)
    for model, want in ((ln, 1e-3), (plain, 1e-5)):  # without LayerNorm an `eps` is someone else's (an optimiser's)
        path = foreign.write_tl_default_file(tmp_path / f"{want}.pt", model, "plain")
        assert interp.load(path, config={"eps": 1e-3}).cfg.eps == want
