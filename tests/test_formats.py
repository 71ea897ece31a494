"""Foreign checkpoints: files built the way Clock/Pizza, Nanda, the TransformerLens demo and ARENA
write them (from one of our models, transposed into their layout by hand), loaded back by
`interp.load` with identical logits; and every other file refused with one clear line."""

import json
import os
import sys

import einops
import pytest
import torch
from safetensors.torch import save_file

import interp
from interp.config import ModelConfig
from interp.data import all_tokens
from interp.errors import CheckpointError
from interp.model import Transformer

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


def test_layer_norm_models_are_refused_by_name(tmp_path):
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
