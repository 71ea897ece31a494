"""Foreign checkpoints: files built the way Clock/Pizza, Nanda, the TransformerLens demo and ARENA
write them (from one of our models, transposed into their layout by hand), loaded back by
`interp.load` with identical logits; and every other file refused with one clear line."""

import json
import os
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import interp
from interp.config import ModelConfig
from interp.data import all_tokens
from interp.cli import main
from interp.errors import CheckpointError
from interp.model import Transformer

from helpers import foreign
from helpers.foreign import clock_pizza_json, legacy_state, write_demo_file  # test_report imports the first two from here

P = 13


def make_model(**kw) -> Transformer:
    base = dict(p=P, d_model=16, n_heads=2, d_head=8, d_mlp=24, biases="mlp")
    model = Transformer(ModelConfig(**{**base, **kw}), seed=4)
    with torch.no_grad():  # non-zero MLP biases, so a dropped or misplaced bias shows in the logits
        for block in model.blocks:
            block.mlp.b_in.normal_(0, 0.3)
            block.mlp.b_out.normal_(0, 0.3)
    return model.eval()


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(all_tokens(model.cfg))[:, -1]


def assert_same_logits(loaded, model):
    assert loaded.cfg.p == model.cfg.p and loaded.cfg.n_ctx == model.cfg.n_ctx
    assert torch.equal(logits(loaded), logits(model))


# ---- Clock/Pizza and Nanda-original layout -------------------------------------------------------
@pytest.mark.parametrize("act", ["relu", "gelu"])
def test_clock_pizza_file_with_sidecar_json_round_trips_to_identical_logits(tmp_path, act):
    model = make_model(eq_token=False, causal=False, attn_rate=0.3, act_fn=act)
    torch.save(legacy_state(model), tmp_path / "run.pt")
    (tmp_path / "run.json").write_text(json.dumps(clock_pizza_json(model.cfg)))
    loaded = interp.load(tmp_path / "run.pt")
    assert_same_logits(loaded, model)
    assert (loaded.cfg.attn_rate, loaded.cfg.act_fn, loaded.cfg.causal) == (0.3, act, False)
    assert "Clock-Pizza layout" in loaded.source_format and "run.json" in loaded.source_format


def test_config_json_in_the_same_directory_explicit_path_and_dict(tmp_path):
    model = make_model(eq_token=False, causal=False, attn_rate=0.0, diff_vocab=True)
    cfg_json = clock_pizza_json(model.cfg)
    (tmp_path / "a").mkdir()
    torch.save(legacy_state(model), tmp_path / "a" / "model_final.pt")
    (tmp_path / "a" / "config.json").write_text(json.dumps(cfg_json))
    assert_same_logits(interp.load(tmp_path / "a" / "model_final.pt"), model)
    assert_same_logits(interp.load(tmp_path / "a"), model)  # a directory holding one checkpoint
    (tmp_path / "b").mkdir()
    torch.save(legacy_state(model), tmp_path / "b" / "m.pt")
    (tmp_path / "elsewhere.json").write_text(json.dumps(cfg_json))
    assert_same_logits(interp.load(tmp_path / "b" / "m.pt", config=tmp_path / "elsewhere.json"), model)
    assert_same_logits(interp.load(tmp_path / "b" / "m.pt", config=cfg_json), model)
    assert_same_logits(interp.load(tmp_path / "b" / "m.pt", config=model.cfg), model)


def test_clock_pizza_layout_without_its_json_asks_for_it(tmp_path):
    model = make_model(eq_token=False, causal=False, attn_rate=0.5)
    torch.save(legacy_state(model), tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="attn_coeff") as e:
        interp.load(tmp_path / "m.pt")
    assert "m.pt" in str(e.value) and "\n" not in str(e.value)


def test_nanda_original_run_file_with_equals_token_and_p_plus_1_outputs(tmp_path):
    model = make_model(eq_token=True, causal=True)
    torch.save({"model": legacy_state(model, extra_outputs=1), "optimizer": {"state": {}, "param_groups": []},
                "epoch": 4000, "train_losses": [1.0, 0.5], "test_losses": [2.0, 1.0]}, tmp_path / "grok_4000.pth")
    loaded = interp.load(tmp_path / "grok_4000.pth")  # no JSON: p, the = token, causality from shapes
    assert_same_logits(loaded, model)
    assert loaded.cfg.eq_token and loaded.cfg.causal and loaded.cfg.d_vocab == P + 1


def test_arena_run_file_takes_the_last_state_dict(tmp_path):
    first, last = make_model(eq_token=True), make_model(eq_token=True)
    with torch.no_grad():
        last.blocks[0].mlp.W_out.mul_(1.5)
    torch.save({"state_dicts": [legacy_state(first, 1), legacy_state(last, 1)], "train_losses": [1.0],
                "test_losses": [1.0], "epochs": [0, 100]}, tmp_path / "full_run_data.pth")
    loaded = interp.load(tmp_path / "full_run_data.pth")
    assert_same_logits(loaded, last)
    assert "ARENA" in loaded.source_format


def test_config_contradicting_the_weights_is_a_clear_error(tmp_path):
    model = make_model(eq_token=False, causal=False)
    torch.save(legacy_state(model), tmp_path / "m.pt")
    bad = {**clock_pizza_json(model.cfg), "d_model": 128}
    with pytest.raises(CheckpointError, match=r"config says d_model=128 \(the given config\) but the weights have d_model=16"):
        interp.load(tmp_path / "m.pt", config=bad)


# ---- TransformerLens layout ----------------------------------------------------------------------
def test_hooked_transformer_state_dict_alone(tmp_path):
    model = make_model(eq_token=True, causal=True)
    torch.save(model.state_dict(), tmp_path / "hooked.pt")  # with its mask / IGNORE buffers
    loaded = interp.load(tmp_path / "hooked.pt")
    assert_same_logits(loaded, model)
    assert loaded.cfg.eq_token and "TransformerLens layout" in loaded.source_format


def test_grokking_demo_file_with_a_pickled_config_object(tmp_path):
    model = make_model(eq_token=True, causal=True, act_fn="gelu")
    path = write_demo_file(tmp_path / "grokking_demo.pth", model)
    with pytest.raises(Exception):  # what a plain weights-only load does with it
        torch.load(path, weights_only=True)
    loaded = interp.load(path)
    assert_same_logits(loaded, model)
    assert loaded.cfg.act_fn == "gelu"  # read from the pickled config's recorded state, nothing run
    assert "HookedTransformerConfig" in loaded.source_format and "Grokking demo" in loaded.source_format


def test_a_whole_pickled_module_gives_its_weights_and_config_without_running_its_code(tmp_path):
    model = make_model(eq_token=False, causal=False, attn_rate=0.4, act_fn="gelu")
    torch.save(model, tmp_path / "whole.pt")  # torch.save(model), not model.state_dict()
    loaded = interp.load(tmp_path / "whole.pt")
    assert_same_logits(loaded, model)
    assert (loaded.cfg.attn_rate, loaded.cfg.act_fn) == (0.4, "gelu")  # from the pickled cfg's recorded state
    assert "pickled module interp.model.Transformer" in loaded.source_format


def test_safetensors_files_in_either_layout(tmp_path):
    hooked = make_model(eq_token=True)
    save_file({k: v.contiguous() for k, v in hooked.state_dict().items()}, tmp_path / "hooked.safetensors")
    assert_same_logits(interp.load(tmp_path / "hooked.safetensors"), hooked)
    legacy = make_model(eq_token=False, causal=False, attn_rate=0.7)
    save_file(legacy_state(legacy), tmp_path / "cp.safetensors")
    (tmp_path / "cp.json").write_text(json.dumps(clock_pizza_json(legacy.cfg)))
    assert_same_logits(interp.load(tmp_path / "cp.safetensors"), legacy)


def test_a_layer_norm_without_its_block_norms_is_refused_by_name(tmp_path):
    """ln_final alone is no TransformerLens LayerNorm model (ln1 says "LN"): its weights are named as unexpected."""
    sd = make_model(eq_token=True).state_dict()
    sd["ln_final.w"] = torch.ones(16)
    sd["ln_final.b"] = torch.zeros(16)
    torch.save(sd, tmp_path / "ln.pt")
    with pytest.raises(CheckpointError, match="unexpected ln_final"):
        interp.load(tmp_path / "ln.pt")


# ---- refusing everything else, running nothing -------------------------------------------------
def plant_marker(path):  # what a malicious file would run on load
    with open(path, "w") as f:
        f.write("ran")


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return plant_marker, (self.marker,)


class RunsShell:
    def __reduce__(self):
        return os.system, ("echo pwned",)


def test_a_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    torch.save({"model": RunsCode(str(marker))}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="evil.pt: pickles a call to .*plant_marker.*nothing was run") as e:
        interp.load(tmp_path / "evil.pt")
    assert not marker.exists()
    assert "\n" not in str(e.value)
    torch.save({"x": RunsShell()}, tmp_path / "shell.pt")
    with pytest.raises(CheckpointError, match="shell.pt: pickles code"):
        interp.load(tmp_path / "shell.pt")


@pytest.mark.parametrize("content, what", [
    (b"", "empty file"),
    (b"hello, this is not a checkpoint\n", "text file"),
    (b'{"C": 59, "d_model": 128}', "JSON"),
    (bytes(range(200, 256)) * 4, "unknown binary"),
])
def test_non_checkpoint_files_get_one_line_naming_file_and_what_was_found(tmp_path, content, what):
    path = tmp_path / "thing.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        interp.load(path)
    msg = str(e.value)
    assert msg.startswith(str(path)) and what in msg and "\n" not in msg


def test_pickle_without_weights_lists_what_it_found_and_what_is_supported(tmp_path):
    torch.save({"epoch": 3, "losses": [1.0, 2.0]}, tmp_path / "stats.pt")
    with pytest.raises(CheckpointError, match=r"keys \['epoch', 'losses'\].*supported: ") as e:
        interp.load(tmp_path / "stats.pt")
    assert "\n" not in str(e.value)


def test_truncated_torch_file(tmp_path):
    torch.save(make_model().state_dict(), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt: unreadable PyTorch file"):
        interp.load(tmp_path / "cut.pt")


def test_directory_with_several_checkpoints_asks_for_one(tmp_path):
    for name in ("a.pt", "b.pt"):
        torch.save(make_model(eq_token=True).state_dict(), tmp_path / name)
    with pytest.raises(CheckpointError, match="2 checkpoint files"):
        interp.load(tmp_path)


def test_our_checkpoint_with_a_config_argument_is_refused(tmp_path):
    model = make_model()
    interp.save_checkpoint(tmp_path / "ours.safetensors", model)
    assert_same_logits(interp.load(tmp_path / "ours.safetensors"), model)
    with pytest.raises(CheckpointError, match="carries its own config"):
        interp.load(tmp_path / "ours.safetensors", config={"C": P})



# ---- the Clock/Pizza authors' released files (REFERENCES §2) ---------------------------------------
def classify_on_cli(capsys, *argv) -> dict:
    """`interp classify ARGV --json` exits 0; its JSON verdict."""
    capsys.readouterr()
    try:
        code = main(["classify", *map(str, argv), "--json"])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert code in (0, None), err
    return json.loads(out)


@pytest.mark.parametrize("name", sorted(foreign.RELEASED))
def test_released_clock_pizza_runs_load_from_save_dir_without_config(tmp_path, name):
    path, model = foreign.write_released_run(tmp_path / "save", name, p=P)
    assert path.name == f"model_{name}.pt" and (tmp_path / "save" / f"config_{name}.json").exists()
    loaded = interp.load(path)  # config_<run>.json found beside model_<run>.pt
    assert_same_logits(loaded, model)
    assert loaded.cfg == model.cfg  # flags as 0/1 or true/false, "casual" ignored: no causal mask
    assert f"config_{name}.json" in loaded.source_format


@pytest.mark.parametrize("name", sorted(foreign.RELEASED))
def test_released_clock_pizza_runs_classify_on_the_cli(tmp_path, capsys, name):
    path, model = foreign.write_released_run(tmp_path / "save", name, p=59)
    verdict = classify_on_cli(capsys, path)
    assert verdict["label"] in ("clock", "pizza", "ambiguous", "non-generalizing")
    assert verdict["model"]["n_layers"] == model.cfg.n_layers and verdict["model"]["d_model"] == model.cfg.d_model
    assert f"model_{name}.pt" in verdict["source"]


def test_d_model_86_with_4_heads_keeps_d_head_21_and_w_o_86_by_84(tmp_path):
    path, model = foreign.write_released_run(tmp_path / "save", "d_model86", p=P)
    assert list(torch.load(path)["blocks.0.attn.W_O"].shape) == [86, 84]
    loaded = interp.load(path)
    assert (loaded.cfg.d_model, loaded.cfg.n_heads, loaded.cfg.d_head) == (86, 4, 21)
    assert list(loaded.blocks[0].attn.W_O.shape) == [4, 21, 86]


# ---- config values as people write them ---------------------------------------------------------
@pytest.mark.parametrize("changes", [
    {"eqn_sign": 0, "diff_vocab": 1}, {"eqn_sign": "false", "diff_vocab": "True"}, {"eqn_sign": "0", "diff_vocab": "1"},
    {"attn_coeff": "0.5", "C": "13"}, {"C": 13.0, "d_model": 16.0, "n_heads": "2"}, {"some_new_key": [1, {"x": 2}]},
])
def test_config_values_as_people_write_them(tmp_path, changes):
    model = make_model(eq_token=False, causal=False, attn_rate=0.5, diff_vocab=True)
    torch.save(legacy_state(model, extra_outputs=model.cfg.d_vocab - P), tmp_path / "m.pt")
    cfg = {**clock_pizza_json(model.cfg), **changes}
    (tmp_path / "m.json").write_text(json.dumps(cfg))
    loaded = interp.load(tmp_path / "m.pt")
    assert_same_logits(loaded, model)
    assert loaded.cfg == model.cfg


@pytest.mark.parametrize("key, value, needle", [
    ("eqn_sign", 2, "true or false"), ("diff_vocab", "maybe", "true or false"), ("C", 13.5, "whole number"),
    ("attn_coeff", "fast", "a number"), ("attn_coeff", 1.5, "attn_rate must be in"), ("act_fn", "Tanh", "ReLU or GeLU"),
    ("n_heads", True, "a number"), ("d_model", 17, "weights have d_model=16"),
])
def test_ambiguous_config_values_are_refused_naming_the_key_as_written_and_the_file(tmp_path, key, value, needle):
    model = make_model(eq_token=False, causal=False)
    path = foreign.write_clock_pizza_run(tmp_path / "save", model, "r1")
    cfg_file = tmp_path / "save" / "config_r1.json"
    cfg_file.write_text(json.dumps({**json.loads(cfg_file.read_text()), key: value}))
    with pytest.raises(CheckpointError) as e:
        interp.load(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and str(cfg_file) in msg and key in msg and needle in msg, msg


def test_tl_config_options_interp_cannot_compute_are_refused_by_name(tmp_path):
    model = make_model(eq_token=True)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    for bad, needle in [({"normalization_type": "LN"}, "normalization_type"), ({"attention_dir": "sideways"}, "attention_dir"),
                        ({"positional_embedding_type": "rotary"}, "positional_embedding_type"),
                        ({"attn_scale": 3.0}, "attn_scale"), ({"use_attn_scale": False}, "use_attn_scale"),
                        ({"output_logits_soft_cap": 30.0}, "output_logits_soft_cap"), ({"gated_mlp": 1}, "gated_mlp")]:
        with pytest.raises(CheckpointError, match=needle):
            interp.load(tmp_path / "m.pt", config=bad)
    defaults = {"attn_scale": float(np.sqrt(8)), "attn_scores_soft_cap": -1.0, "gated_mlp": False,
                "normalization_type": None, "attention_dir": "causal", "use_attn_scale": True}
    assert_same_logits(interp.load(tmp_path / "m.pt", config=defaults), model)


# ---- sidecars ---------------------------------------------------------------------------------------
def test_sidecar_names_each_project_uses_and_config_argument_overrides(tmp_path):
    model = make_model(eq_token=False, causal=False, attn_rate=0.25)
    good = clock_pizza_json(model.cfg)
    for name, sidecar in [("a/run.pt", "a/run.json"), ("b/model_x1.pt", "b/config_x1.json"), ("c/m.pt", "c/config.json")]:
        (tmp_path / name).parent.mkdir()
        torch.save(legacy_state(model), tmp_path / name)
        (tmp_path / sidecar).write_text(json.dumps(good))
        loaded = interp.load(tmp_path / name)
        assert_same_logits(loaded, model)
        assert sidecar.split("/")[1] in loaded.source_format
    (tmp_path / "c" / "config.json").write_text(json.dumps({**good, "attn_coeff": 0.9}))  # a stale sidecar
    (tmp_path / "right.json").write_text(json.dumps(good))
    loaded = interp.load(tmp_path / "c" / "m.pt", config=tmp_path / "right.json")
    assert loaded.cfg.attn_rate == 0.25 and "right.json" in loaded.source_format


# ---- n_heads * d_head != d_model in the model itself -------------------------------------------------
def test_model_with_d_head_times_heads_below_d_model_runs_hooks_trains_and_exports():
    cfg = ModelConfig(p=P, d_model=22, n_heads=4, d_head=5, d_mlp=32, eq_token=True)
    model = Transformer(cfg, seed=1)
    assert list(model.W_O.shape) == [1, 4, 5, 22] and list(model.W_Q.shape) == [1, 4, 22, 5]
    logits, cache = model.run_with_cache(all_tokens(cfg))
    assert list(logits.shape) == [P * P, 3, P]
    assert list(cache["z", 0].shape) == [P * P, 3, 4, 5] and list(cache["pattern", 0].shape) == [P * P, 4, 3, 3]
    run = interp.train(model_config=cfg, train_config=interp.TrainConfig(steps=30, lr=3e-3, train_frac=0.5,
                                                                         log_every=10, checkpoint_every=30),
                       progress=False)
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    bridge = run.model.to_bridge()
    with torch.no_grad():
        assert torch.allclose(bridge(all_tokens(cfg))[:, -1], logits_of(run.model), atol=1e-5)


def logits_of(model):
    with torch.no_grad():
        return model(all_tokens(model.cfg))[:, -1]


# ---- numpy data in pickles ----------------------------------------------------------------------------
@pytest.mark.parametrize("numpy1", [False, True])
def test_demo_file_with_numpy_config_fields_and_index_arrays(tmp_path, capsys, numpy1):
    model = make_model(eq_token=True, causal=True)
    path = foreign.write_demo_file(tmp_path / "grokking_demo.pth", model, numpy1=numpy1)
    names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) if not numpy1 else set()
    assert numpy1 or {"numpy.dtype", "numpy._core.multiarray.scalar", "numpy.ndarray"} <= set(names)
    if numpy1:
        assert b"numpy.core.multiarray\nscalar" in path.read_bytes()
    loaded = interp.load(path)
    assert_same_logits(loaded, model)
    assert "HookedTransformerConfig" in loaded.source_format
    assert classify_on_cli(capsys, path)["model"]["p"] == P


def test_numpy_data_is_allowed_but_a_call_beside_it_still_runs_nothing(tmp_path):
    from helpers import MARKER, bomb_payloads

    model = make_model(eq_token=True)
    for payload, bomb in bomb_payloads(tmp_path / MARKER).items():
        path = foreign.write_demo_file(tmp_path / f"{payload}.pth", model, extra={"callback": bomb})
        with pytest.raises(CheckpointError) as e:
            interp.load(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)
        assert not (tmp_path / MARKER).exists(), payload
    obj_array = np.array([{"a": 1}, None], dtype=object)  # numpy data that is not numbers stays refused
    path = foreign.write_demo_file(tmp_path / "objects.pth", model, extra={"extra": obj_array})
    with pytest.raises(CheckpointError, match="objects.pth"):
        interp.load(path)


# ---- Nanda's runs: ARENA and the progress-measures trainer --------------------------------------------
def test_progress_measures_trainer_file(tmp_path):
    model = make_model(eq_token=True, causal=True)
    path = foreign.write_progress_measures_file(tmp_path / "grok_1674052016.pth", model)
    loaded = interp.load(path)
    assert_same_logits(loaded, model)
    assert loaded.cfg.causal and "progress-measures trainer" in loaded.source_format


def test_arena_run_file_generator_classifies(tmp_path, capsys):
    models = [make_model(eq_token=True), make_model(eq_token=True, act_fn="gelu")]
    path = foreign.write_arena_run(tmp_path / "full_run_data.pth", models)
    assert classify_on_cli(capsys, path)["model"]["p"] == P
    assert interp.load(path).cfg.act_fn == "relu"  # no config stored: shapes + defaults


# ---- TransformerLens 4 TransformerBridge ---------------------------------------------------------------
@pytest.fixture(scope="module")
def bridged():
    """A model, its TransformerBridge export, and the bridge's logits on all inputs."""
    model = make_model(eq_token=False, causal=False, biases="all")
    with torch.no_grad():
        for b in model.blocks:
            b.attn.b_Q.normal_(0, 0.2), b.attn.b_O.normal_(0, 0.2)
        model.unembed.b_U.normal_(0, 0.2)
    bridge = model.to_bridge()
    with torch.no_grad():
        out = bridge(all_tokens(model.cfg))[:, -1]
    return model, bridge, out


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("spelling", ["bridge", "original"])
def test_bridge_state_dict_round_trip_is_exact(tmp_path, capsys, bridged, suffix, spelling):
    model, bridge, bridge_logits = bridged
    path = foreign.write_bridge(tmp_path / f"bridge{suffix}", bridge, spelling, config=foreign.bridge_config_json(bridge))
    if spelling == "original":
        assert any("_original_component" in k for k in torch.nn.Module.state_dict(bridge))
    loaded = interp.load(path)
    assert torch.equal(logits(loaded), logits(model))  # our model -> to_bridge -> state_dict -> load: exact
    assert torch.allclose(logits(loaded), bridge_logits, atol=1e-5)
    assert loaded.cfg == model.cfg.replace(attn_rate=1.0) and "TransformerBridge" in loaded.source_format
    assert classify_on_cli(capsys, path)["model"]["p"] == P


def test_bridge_config_by_argument_every_field_dumped_or_d_head_only(tmp_path, bridged):
    model, bridge, _ = bridged
    path = foreign.write_bridge(tmp_path / "b.pt", bridge)
    (tmp_path / "all.json").write_text(json.dumps(foreign.bridge_config_json(bridge, fields="all")))
    assert torch.equal(logits(interp.load(path, config=tmp_path / "all.json")), logits(model))
    only_d_head = foreign.bridge_config_json(bridge, drop=("n_heads",))
    assert torch.equal(logits(interp.load(path, config=only_d_head)), logits(model))


def test_bridge_without_its_config_names_the_missing_field(tmp_path, bridged):
    _, bridge, _ = bridged
    path = foreign.write_bridge(tmp_path / "b.safetensors", bridge)
    with pytest.raises(CheckpointError, match="n_heads") as e:
        interp.load(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "b.json").write_text(json.dumps(foreign.bridge_config_json(bridge, drop=("n_heads", "d_head"))))
    with pytest.raises(CheckpointError, match=r"b\.json.*lacks n_heads"):
        interp.load(path)


# ---- bounded errors ------------------------------------------------------------------------------------
def _torch_zip(path, pickle_bytes: bytes):
    """A torch zip archive holding only `pickle_bytes` as its data.pkl (no tensors)."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    return path


def test_a_deeply_nested_key_gives_one_line_not_a_recursion_error(tmp_path):
    import pickle

    deep = b")" + b"\x85" * 5000  # EMPTY_TUPLE then TUPLE1 x 5000: a 5,000-deep nested tuple
    data = b"\x80\x02}" + deep + b"K\x01s."  # PROTO 2, EMPTY_DICT, key, BININT1 1, SETITEM, STOP
    pickle.loads(data)  # the control: a valid pickle
    path = _torch_zip(tmp_path / "deep.pt", data)
    with pytest.raises(CheckpointError) as e:
        interp.load(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value) and len(str(e.value)) < 1000


@pytest.mark.parametrize("exc", [RecursionError, MemoryError, OverflowError])
def test_resource_errors_while_loading_become_one_checkpoint_error(tmp_path, monkeypatch, exc):
    from interp.formats import hooked

    torch.save(make_model(eq_token=True).state_dict(), tmp_path / "m.pt")

    def boom(*a, **k):
        raise exc("deep inside")

    monkeypatch.setattr(hooked, "read", boom)
    with pytest.raises(CheckpointError, match=rf"m\.pt.*{exc.__name__}"):
        interp.load(tmp_path / "m.pt")


def test_source_format_and_checkpoint_info_are_declared_model_attributes(tmp_path):
    model = make_model()
    assert model.source_format is None and model.checkpoint_info is None
    assert {"source_format", "checkpoint_info"} <= set(Transformer.__annotations__)
    interp.save_checkpoint(tmp_path / "m.safetensors", model, step=3)
    loaded = interp.load(tmp_path / "m.safetensors")
    assert loaded.source_format == "interp checkpoint" and loaded.checkpoint_info.step == 3


def test_bridge_round_trip_with_d_head_times_heads_below_d_model_and_two_layers(tmp_path):
    model = foreign.clock_pizza_model(p=P, d_model=22, n_heads=4, n_layers=2, attn_rate=1.0)  # d_head 5, W_O [22, 20]
    bridge = model.to_bridge()
    assert list(bridge.state_dict()["blocks.1.attn.o.weight"].shape) == [22, 20]
    path = foreign.write_bridge(tmp_path / "b.safetensors", bridge, "original", config=foreign.bridge_config_json(bridge))
    loaded = interp.load(path)
    assert loaded.cfg == model.cfg and torch.equal(logits(loaded), logits(model))


def test_clock_pizza_run_with_eqn_sign_has_no_causal_mask(tmp_path):
    model = foreign.clock_pizza_model(p=P, d_model=16, n_heads=2, eq_token=True, diff_vocab=True, attn_rate=0.7)
    path = foreign.write_clock_pizza_run(tmp_path / "save", model, "eq1", flags="bool")
    loaded = interp.load(path)
    assert loaded.cfg == model.cfg and not loaded.cfg.causal and loaded.cfg.n_ctx == 3
    assert_same_logits(loaded, model)


def test_a_safetensors_file_whose_header_length_starts_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    # A header of 128 + 256 n bytes makes the file's first byte 0x80, a pickle's PROTO opcode.
    from safetensors.torch import save_file

    model = interp.Transformer(interp.ModelConfig.with_width(16, p=7, eq_token=False), seed=0)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith((".mask", ".IGNORE"))}
    for pad in range(300):
        path = tmp_path / "m.safetensors"
        save_file(state, path, metadata={"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        raise AssertionError("no padding gave a header length starting with 0x80")
    assert interp.formats.sniff(path) == "safetensors"
