import pytest
import torch

import interp
from interp import checkpoints as ck
from interp.errors import CheckpointError

CFG = interp.ModelConfig(p=11, d_model=16, n_heads=2, d_head=8, d_mlp=32, eq_token=False, causal=False,
                         biases="mlp", attn_rate=0.25)


def test_round_trip_keeps_config_weights_and_metadata(tmp_path):
    m = interp.Transformer(CFG, seed=3)
    tc = interp.TrainConfig(steps=7)
    interp.save_checkpoint(tmp_path / "m.safetensors", m, tc, step=7, metrics={"test_acc": 0.5})
    back = interp.load(tmp_path / "m.safetensors")
    assert back.cfg == CFG and not back.training
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), back.state_dict().values()))
    info = ck.read_checkpoint(tmp_path / "m.safetensors")
    assert (info.step, info.metrics, info.train_config) == (7, {"test_acc": 0.5}, tc)
    x = interp.all_tokens(CFG)
    assert torch.equal(back(x), m(x))


def test_no_temp_files_left_and_overwrite_is_atomic(tmp_path):
    m = interp.Transformer(CFG, seed=3)
    path = tmp_path / "m.safetensors"
    interp.save_checkpoint(path, m)
    interp.save_checkpoint(path, interp.Transformer(CFG, seed=4))
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    assert torch.equal(interp.load(path).W_E, interp.Transformer(CFG, seed=4).W_E)


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    interp.save_checkpoint(path, interp.Transformer(CFG, seed=3))
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck.os, "fsync", boom)
    with pytest.raises(OSError):
        interp.save_checkpoint(path, interp.Transformer(CFG, seed=4))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


@pytest.mark.parametrize("content, match", [
    (b"", "empty"),
    (b"\x00" * 5, "truncated"),
    (b"\xff" * 4000, "truncated or not a safetensors"),
])
def test_bad_files_give_one_clear_error(tmp_path, content, match):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as e:
        interp.load(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "m.safetensors"
    interp.save_checkpoint(path, interp.Transformer(CFG, seed=3))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="m.safetensors"):
        interp.load(path)


def test_missing_path_and_empty_dir(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        interp.load(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError):
        interp.load(tmp_path)


def test_weights_that_contradict_the_config(tmp_path):
    m = interp.Transformer(CFG, seed=3)
    state = {k: v for k, v in m.state_dict().items() if not k.endswith((".mask", ".IGNORE"))}
    state["embed.W_E"] = torch.zeros(5, 16)
    ck.save_tensors(tmp_path / "m.safetensors", state, {"model_config": CFG.to_dict()})
    with pytest.raises(CheckpointError, match="embed.W_E has shape"):
        interp.load(tmp_path / "m.safetensors")


def test_nan_weights_are_refused(tmp_path):
    m = interp.Transformer(CFG, seed=3)
    with torch.no_grad():
        m.W_U[0, 0] = float("nan")
    interp.save_checkpoint(tmp_path / "m.safetensors", m)
    with pytest.raises(CheckpointError, match="NaN"):
        interp.load(tmp_path / "m.safetensors")


def test_imports_point_one_way_our_format_knows_nothing_of_foreign_ones():
    import ast
    from pathlib import Path

    def imported(path):
        tree = ast.parse(Path(path).read_text())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}

    assert not {m for m in imported(ck.__file__) if "formats" in m}
    fdir = Path(ck.__file__).parent / "formats"
    readers = {f.stem for f in fdir.glob("*.py")} - {"__init__"}
    for f in fdir.glob("*.py"):  # readers never import the dispatcher
        if f.stem != "__init__":
            assert "interp.formats" not in imported(f), f
    assert {"ours", "hooked", "legacy", "bridge", "build"} <= readers
