"""The Clock/Pizza authors' choices (REFERENCES §2) as config fields: W_in ~ N(0, 1/d_mlp) and a warm-up
whose first update has learning rate 0; the pizza presets use them, Nanda's keeps Nanda's, old files
without the fields load with the behaviour they were trained with."""

import math

import pytest
import torch

from interp.config import ModelConfig, TrainConfig
from interp.errors import ConfigError
from interp.model import Transformer
from interp.presets import PRESETS, resolve
from interp.training import Trainer, lr_at


def stds(cfg):
    model = Transformer(cfg, seed=0)
    return {n: p.detach().std().item() for n, p in model.named_parameters() if not n.split(".")[-1].startswith("b_")}


def test_zhong_init_draws_w_in_with_std_one_over_sqrt_d_mlp_and_the_rest_as_nanda():
    base = ModelConfig(p=59, eq_token=False, causal=False, biases="mlp")
    nanda, zhong = stds(base), stds(base.replace(init="zhong"))
    assert nanda["blocks.0.mlp.W_in"] == pytest.approx(1 / math.sqrt(128), rel=0.02)
    assert zhong["blocks.0.mlp.W_in"] == pytest.approx(1 / math.sqrt(512), rel=0.02)
    for name, s in zhong.items():
        if name != "blocks.0.mlp.W_in":
            assert s == nanda[name]  # same generator stream, same draws


def test_zhong_warmup_starts_at_lr_zero_and_reaches_full_rate_on_update_11():
    z, n = TrainConfig(lr=1e-3, warmup_steps=10, warmup="zhong"), TrainConfig(lr=1e-3, warmup_steps=10)
    assert [lr_at(z, s) for s in (0, 1, 9, 10, 50)] == pytest.approx([0.0, 1e-4, 9e-4, 1e-3, 1e-3])
    assert [lr_at(n, s) for s in (0, 8, 9, 50)] == pytest.approx([1e-4, 9e-4, 1e-3, 1e-3])
    assert lr_at(TrainConfig(lr=1e-3, warmup_steps=0, warmup="zhong"), 0) == 1e-3


def test_the_first_zhong_update_leaves_the_weights_alone():
    mcfg = ModelConfig.with_width(16, p=11, eq_token=False, causal=False, biases="mlp", init="zhong")
    tcfg = TrainConfig(train_frac=0.8, steps=1, weight_decay=2.0, warmup="zhong", log_every=1, seed=0, data_seed=0)
    trainer = Trainer(mcfg, tcfg)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run(progress=False)
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    trainer = Trainer(mcfg, tcfg.replace(warmup="nanda"))
    trainer.run(progress=False)
    assert not torch.equal(before["blocks.0.mlp.W_in"], trainer.model.state_dict()["blocks.0.mlp.W_in"])


def test_presets_use_their_papers_choices_and_old_configs_load_as_before():
    for name in ("pizza-a", "pizza-b"):
        mcfg, tcfg = resolve(name, None, None, None, {})
        assert (mcfg.init, tcfg.warmup) == ("zhong", "zhong")
    mcfg, tcfg = PRESETS["nanda"]
    assert (mcfg.init, tcfg.warmup) == ("nanda", "nanda")
    old_m = {k: v for k, v in ModelConfig().to_dict().items() if k != "init"}
    old_t = {k: v for k, v in TrainConfig().to_dict().items() if k != "warmup"}
    assert ModelConfig.from_dict(old_m).init == "nanda" and TrainConfig.from_dict(old_t).warmup == "nanda"


def test_bad_values_name_the_field():
    with pytest.raises(ConfigError, match="ModelConfig.init must be one of"):
        ModelConfig(init="xavier")
    with pytest.raises(ConfigError, match="TrainConfig.warmup must be one of"):
        TrainConfig(warmup=10)
