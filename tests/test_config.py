import pytest

from interp import ModelConfig, TrainConfig
from interp.errors import ConfigError


@pytest.mark.parametrize("kw, field", [
    ({"p": 1}, "p"), ({"p": 2.5}, "p"), ({"p": True}, "p"), ({"d_model": -4}, "d_model"),
    ({"n_heads": 0}, "n_heads"), ({"d_head": 0}, "d_head"), ({"act_fn": "tanh"}, "act_fn"),
    ({"attn_rate": 1.5}, "attn_rate"), ({"attn_rate": float("nan")}, "attn_rate"), ({"biases": "some"}, "biases"),
    ({"n_layers": 0}, "n_layers"), ({"eq_token": "yes"}, "eq_token"),
])
def test_invalid_model_config_names_the_field(kw, field):
    with pytest.raises(ConfigError, match=rf"ModelConfig\.{field}"):
        ModelConfig(**kw)


@pytest.mark.parametrize("kw, field", [
    ({"train_frac": 0.0}, "train_frac"), ({"train_frac": 1.0}, "train_frac"), ({"train_frac": -0.2}, "train_frac"),
    ({"lr": 0}, "lr"), ({"weight_decay": -1}, "weight_decay"), ({"steps": 0}, "steps"), ({"betas": (0.9,)}, "betas"),
    ({"betas": (0.9, 1.0)}, "betas"), ({"warmup_steps": -1}, "warmup_steps"), ({"seed": -1}, "seed"),
    ({"stop_at_test_acc": 1.5}, "stop_at_test_acc"), ({"log_every": 0}, "log_every"),
])
def test_invalid_train_config_names_the_field(kw, field):
    with pytest.raises(ConfigError, match=rf"TrainConfig\.{field}"):
        TrainConfig(**kw)


def test_derived_sizes():
    assert (ModelConfig().n_ctx, ModelConfig().d_vocab, ModelConfig().d_vocab_out) == (3, 114, 113)
    c = ModelConfig(p=59, eq_token=False, diff_vocab=True)
    assert (c.n_ctx, c.d_vocab, c.eq_id) == (2, 118, None)
    assert ModelConfig(p=59, diff_vocab=True).eq_id == 118


def test_json_round_trip_and_unknown_fields():
    c = ModelConfig(p=31, attn_rate=0.5)
    assert ModelConfig.from_dict(c.to_dict()) == c
    t = TrainConfig(betas=(0.8, 0.9))
    assert TrainConfig.from_dict(t.to_dict()) == t
    with pytest.raises(ConfigError, match="no field"):
        ModelConfig.from_dict({"p": 5, "colour": "red"})
