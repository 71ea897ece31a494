"""Hostile files, bad configs, unwritable or full disks: one clear error each, never a traceback,
and never code run from a downloaded file."""

import json
import os
import random
import shutil
from pathlib import Path

import pytest
import torch

import interp
from interp import checkpoints as ck
from interp.errors import CheckpointError
from interp.training import Trainer

from helpers import (CFG, MARKER, assert_clear_checkpoint_error, assert_one_line_error, bomb_payloads, raw_safetensors,
                     run_cli, save_bomb, state, write_checkpoint)


def _random(path, n=4096):
    path.write_bytes(random.Random(path.name).randbytes(n))
    return path


def _cut(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[: keep if keep >= 0 else len(data) + keep])
    return path


def _with(**changes):
    return {**state(), **changes}


def _pt(path, rename=None):
    torch.save({(rename or {}).get(k, k): v for k, v in state().items()}, path)
    return path


# name -> (build(tmp_path) -> path, what the error must say; None where interp.formats words it)
CORPUS = {
    "empty.safetensors": (lambda t: _cut(write_checkpoint(t / "empty.safetensors"), 0), "empty"),
    "empty.pt": (lambda t: _cut(_pt(t / "empty.pt"), 0), None),
    "empty, no extension": (lambda t: _cut(_pt(t / "empty"), 0), None),
    "truncated.safetensors": (lambda t: _cut(write_checkpoint(t / "trunc.safetensors"), -3000), "truncated"),
    "truncated in header": (lambda t: _cut(write_checkpoint(t / "trunc.safetensors"), 40), "truncated"),
    "truncated.pt": (lambda t: _cut(_pt(t / "trunc.pt"), -3000), None),
    "odd weight name.pt": (lambda t: _pt(t / "odd.pt", {"blocks.0.attn.W_K": "blocks.0>attn.W_K"}), None),  # fuzz find
    "random.safetensors": (lambda t: _random(t / "random.safetensors"), None),
    "random.pt": (lambda t: _random(t / "random.pt"), None),
    "random, no extension": (lambda t: _random(t / "random"), None),
    "pickle bomb.pt": (lambda t: save_bomb(t / "bomb.pt", bomb_payloads(t / MARKER)["path-touch"]), None),
    "pickle bomb, legacy format": (lambda t: save_bomb(t / "bomb.pt", bomb_payloads(t / MARKER)["os-system"], True), None),
    "pickle bomb named .safetensors": (
        lambda t: save_bomb(t / "bomb.safetensors", bomb_payloads(t / MARKER)["path-touch"]), None),
    "header length 2**63": (lambda t: raw_safetensors(t / "huge.safetensors", {}, header_len=2**63), None),
    "header not JSON": (lambda t: raw_safetensors(t / "h.safetensors", b"{not json" + b" " * 7), "corrupt"),
    "header not an object": (lambda t: raw_safetensors(t / "h.safetensors", [1, 2]), None),
    "dtype does not fit data": (lambda t: raw_safetensors(
        t / "d.safetensors", {"embed.W_E": {"dtype": "F64", "shape": [11, 16], "data_offsets": [0, 704]}},
        bytes(704)), "corrupt"),
    "integer weights": (lambda t: write_checkpoint(
        t / "int.safetensors", {k: v.to(torch.int64) for k, v in state().items()}), "floating point"),
    "wrong shapes": (lambda t: write_checkpoint(
        t / "shape.safetensors", _with(**{"blocks.0.mlp.W_in": state()["blocks.0.mlp.W_in"].T.contiguous()})), "shape"),
    "Inf weights": (lambda t: write_checkpoint(
        t / "inf.safetensors", _with(**{"unembed.W_U": torch.full((16, 11), -float("inf"))})), "NaN or Inf"),
    "float64 beyond float32": (lambda t: write_checkpoint(
        t / "f64.safetensors", _with(**{"embed.W_E": torch.full((11, 16), 1e300, dtype=torch.float64)})), "NaN or Inf"),
    "config contradicts weights (p)": (lambda t: write_checkpoint(
        t / "p.safetensors", model_config=CFG.replace(p=13).to_dict()), "shape"),
    "config contradicts weights (layers)": (lambda t: write_checkpoint(
        t / "l.safetensors", model_config=CFG.replace(n_layers=2).to_dict()), r"missing blocks\.1\."),
    "config claims a huge model": (lambda t: write_checkpoint(
        t / "huge.safetensors", model_config=CFG.replace(d_mlp=10**13).to_dict()), "shape"),
    "invalid config": (lambda t: write_checkpoint(
        t / "cfg.safetensors", model_config={**CFG.to_dict(), "p": 1}), r"ModelConfig\.p"),
    "foreign safetensors, no weights": (lambda t: raw_safetensors(t / "x.safetensors", {"__metadata__": {"format": "pt"}}),
                                        None),
    "config metadata not JSON": (lambda t: write_checkpoint(t / "m.safetensors", model_config="{p: 11"), "model_config"),
    "step metadata not JSON": (lambda t: write_checkpoint(t / "m.safetensors", step="seven"), "step"),
    "train_config metadata not JSON": (lambda t: write_checkpoint(t / "m.safetensors", train_config="[1,"), "train_config"),
    "metrics metadata not JSON": (lambda t: write_checkpoint(t / "m.safetensors", metrics="{'acc': 1}"), "metrics"),
    "directory with no checkpoint": (lambda t: (t / "notes.txt").write_text("hi") and t, None),
    "run directory with a corrupt final": (lambda t: _cut(write_checkpoint(t / ck.FINAL), 100).parent, ck.FINAL),
}
FILE_CASES = [k for k in CORPUS if not k.startswith(("directory", "run directory"))]


def _build(tmp_path, name):
    build, match = CORPUS[name]
    d = tmp_path / "in"
    d.mkdir()
    return build(d), match


@pytest.fixture
def no_code_ran(tmp_path):
    """No input may run code: the marker a pickle bomb would create must not exist afterwards."""
    yield
    assert not list(tmp_path.rglob(MARKER)), "a pickle was unpickled"


@pytest.mark.parametrize("name", CORPUS)
def test_load_refuses_bad_input_with_one_clear_error(tmp_path, name, no_code_ran):
    path, match = _build(tmp_path, name)
    assert_clear_checkpoint_error(path, match)


@pytest.mark.parametrize("name", CORPUS)
def test_cli_refuses_bad_input_with_one_line(tmp_path, name, capsys, no_code_ran):
    path, _ = _build(tmp_path, name)
    assert_one_line_error(*run_cli(["classify", path], capsys), path.name)


@pytest.fixture(scope="module")
def run_template(tmp_path_factory):
    """A finished 10-step tiny run, copied by each test that damages one of its files."""
    out = tmp_path_factory.mktemp("template") / "run"
    interp.train("tiny", out=out, progress=False, steps=10, checkpoint_every=5)
    return out


def _run_copy(run_template, tmp_path):
    return Path(shutil.copytree(run_template, tmp_path / "run"))


@pytest.mark.parametrize("name", FILE_CASES)
def test_resume_refuses_bad_resume_state(run_template, tmp_path, name, capsys, no_code_ran):
    """Each bad file, standing in for a run's resume.safetensors: `interp train --resume` says so in one line."""
    run = _run_copy(run_template, tmp_path)
    path, _ = _build(tmp_path, name)
    shutil.copyfile(path, run / ck.RESUME)
    assert_one_line_error(*run_cli(["train", "--resume", run, "--quiet"], capsys), ck.RESUME)
    assert (run / ck.FINAL).exists()  # a refused resume leaves the finished run as it was


@pytest.mark.parametrize("damage, needle", [
    (lambda run: (run / ck.RUN_JSON).write_text("{oops"), ck.RUN_JSON),
    (lambda run: (run / ck.RUN_JSON).write_text(json.dumps({"model_config": {**CFG.to_dict(), "p": 1}})), ck.RUN_JSON),
    (lambda run: (run / ck.RUN_JSON).unlink(), ck.RUN_JSON),
    (lambda run: (run / ck.RUN_JSON).write_text(json.dumps(
        {**json.loads((run / ck.RUN_JSON).read_text()), "model_config": CFG.to_dict()})), ck.RESUME),  # contradicts weights
    (lambda run: write_checkpoint(run / ck.RESUME), ck.RESUME),  # no step
    (lambda run: write_checkpoint(run / ck.RESUME, step="[5]"), ck.RESUME),
    (lambda run: shutil.rmtree(run), "no such run directory"),
])
def test_resume_refuses_damaged_run_dir(run_template, tmp_path, capsys, damage, needle):
    run = _run_copy(run_template, tmp_path)
    damage(run)
    assert_one_line_error(*run_cli(["train", "--resume", run, "--quiet"], capsys), needle)


@pytest.mark.parametrize("payload", ["path-touch", "os-system", "exec"])
@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_that_would_run_code_is_never_unpickled(tmp_path, capsys, payload, legacy):
    marker, config = tmp_path / MARKER, tmp_path / "config.json"
    bomb = save_bomb(tmp_path / "model.pt", bomb_payloads(marker)[payload], legacy)
    config.write_text(json.dumps({"C": 11, "n_layers": 1, "d_model": 16, "n_heads": 2, "act_fn": "ReLU",
                                  "attn_coeff": 1.0, "diff_vocab": False, "eqn_sign": False}))
    torch.load(bomb, weights_only=False)  # the control: unpickled, the file does run its code
    assert marker.exists()
    marker.unlink()
    for path in (bomb, tmp_path):  # the file, and the directory holding it next to a Clock/Pizza-style config
        assert_clear_checkpoint_error(path)
        with pytest.raises(CheckpointError):
            interp.load(path, config=config)
        assert_one_line_error(*run_cli(["classify", path, "--config", config], capsys), str(path))
    shutil.copyfile(bomb, tmp_path / "resume.safetensors")
    with pytest.raises(CheckpointError):
        ck.read_safetensors(tmp_path / "resume.safetensors")
    assert not marker.exists()


# ---- disks and paths ---------------------------------------------------------------------------
TRAIN = ["train", "--preset", "tiny", "--steps", "10", "--quiet"]


def _forbid_training(monkeypatch):
    """Fails the test if any optimiser update happens."""
    monkeypatch.setattr(Trainer, "update", lambda self, loss: pytest.fail("training started"))


@pytest.fixture
def no_training(monkeypatch):
    _forbid_training(monkeypatch)


@pytest.mark.parametrize("out, needle", [
    (lambda t: Path("/proc/interp-test-run"), "cannot write"),  # read-only even for root
    (lambda t: (t / "file").write_text("x") and t / "file" / "run", "cannot write"),  # parent is a file
    (lambda t: (t / "file").write_text("x") and t / "file", "not a directory"),  # --out is a file
])
def test_unusable_output_path_refused_before_training(tmp_path, capsys, no_training, out, needle):
    out = out(tmp_path)
    assert_one_line_error(*run_cli([*TRAIN, "--out", out], capsys), str(out), needle)


def test_unwritable_output_dir_refused_before_training(tmp_path, capsys, no_training):
    out = tmp_path / "ro"
    out.mkdir(0o500)
    if os.access(out, os.W_OK):
        pytest.skip("running as root: permissions do not stop writes (the /proc case covers this)")
    assert_one_line_error(*run_cli([*TRAIN, "--out", out / "run"], capsys), "cannot write")


def _disk_with(monkeypatch, free_bytes):
    usage = shutil.disk_usage("/")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=free_bytes))


def test_full_disk_refused_before_training_and_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _disk_with(m, 100_000)
        _forbid_training(m)
        assert_one_line_error(*run_cli([*TRAIN, "--out", out], capsys), str(out), "MiB free")
    assert not out.exists()
    assert run_cli([*TRAIN, "--out", out], capsys)[0] == 0  # room again: the same command runs, no --overwrite


def test_full_disk_on_resume_refused_before_touching_the_run(run_template, tmp_path, capsys, monkeypatch):
    run = _run_copy(run_template, tmp_path)
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    _disk_with(monkeypatch, 100_000)
    _forbid_training(monkeypatch)
    assert_one_line_error(*run_cli(["train", "--resume", run, "--steps", "100000", "--quiet"], capsys), "MiB free")
    assert {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


# ---- configs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, field", [
    ({"d_mlp": -512}, "d_mlp"), ({"d_head": -32}, "d_head"), ({"n_layers": -1}, "n_layers"), ({"p": 113.0}, "p"),
    ({"p": "113"}, "p"), ({"act_fn": "ReLU"}, "act_fn"),
    ({"act_fn": None}, "act_fn"), ({"attn_rate": -0.1}, "attn_rate"), ({"attn_rate": float("inf")}, "attn_rate"),
    ({"causal": 1}, "causal"), ({"diff_vocab": None}, "diff_vocab"),
])
def test_more_invalid_model_configs_name_the_field(kw, field):
    with pytest.raises(interp.ConfigError, match=rf"^ModelConfig\.{field}\b"):
        interp.ModelConfig(**kw)


@pytest.mark.parametrize("kw, field", [
    ({"train_frac": float("nan")}, "train_frac"), ({"lr": float("inf")}, "lr"), ({"lr": 10**400}, "lr"),
    ({"lr": -1e-3}, "lr"), ({"steps": 2.5}, "steps"), ({"steps": -5}, "steps"), ({"checkpoint_every": 0}, "checkpoint_every"),
    ({"grokfast_alpha": 1.0}, "grokfast_alpha"), ({"grokfast_lamb": -1}, "grokfast_lamb"),
    ({"grad_filter": "sma"}, "grad_filter"), ({"grad_filter": "ma", "grokfast_lamb": 0.0}, "grokfast_lamb"),
    ({"grokfast_window": 0}, "grokfast_window"),
    ({"clip_grad": 0}, "clip_grad"), ({"stop_at_test_acc": 0}, "stop_at_test_acc"), ({"data_seed": -1}, "data_seed"),
    ({"betas": [0.9, 0.98]}, "betas"), ({"betas": (0.9, float("nan"))}, "betas"), ({"weight_decay": "1"}, "weight_decay"),
])
def test_more_invalid_train_configs_name_the_field(kw, field):
    with pytest.raises(interp.ConfigError, match=rf"^TrainConfig\.{field}\b"):
        interp.TrainConfig(**kw)


@pytest.mark.parametrize("args, needle", [
    (["--preset", "nope"], "unknown preset 'nope'"), (["--recipe", "nope"], "unknown recipe 'nope'"),
    (["--p", "1"], "ModelConfig.p"), (["--d-model", "-4"], "ModelConfig.d_model"), (["--steps", "0"], "TrainConfig.steps"),
    (["--train-frac", "1.5"], "TrainConfig.train_frac"), (["--attn-rate", "nan"], "ModelConfig.attn_rate"),
    (["--lr", "inf"], "TrainConfig.lr"),
])
def test_cli_refuses_invalid_settings_before_creating_anything(tmp_path, capsys, args, needle):
    code, err = run_cli(["train", "--out", tmp_path / "run", "--quiet", *args], capsys)
    assert_one_line_error(code, err, needle)
    assert code == 2 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, needle", [
    (["--p", "2.5"], "--p: invalid int value: '2.5'"), (["--act-fn", "tanh"], "--act-fn: invalid choice: 'tanh'"),
    (["--steps", "1e3"], "--steps: invalid int value"),
])
def test_cli_argument_type_errors_exit_2(tmp_path, capsys, args, needle):
    code, err = run_cli(["train", "--out", tmp_path / "run", *args], capsys)
    assert code == 2 and "Traceback" not in err and needle in err.strip().splitlines()[-1], err
    assert not (tmp_path / "run").exists()
