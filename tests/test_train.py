import json

import pytest
import torch

import interp
from interp import checkpoints as ck
from interp.data import all_pairs, make_dataset, split
from interp.errors import ConfigError, RunDirError
from interp.cli import main


def weights(model):
    return {k: v for k, v in model.state_dict().items()}


def same_weights(a, b):
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_split_is_seeded_and_matches_nanda_demo():
    tr, te = split(113, 0.3, seed=598)
    assert len(tr) == 3830 and len(te) == 8939
    torch.manual_seed(598)  # the demo's own recipe, on the global generator
    assert torch.equal(tr, torch.randperm(113 * 113)[:3830])
    assert set(tr.tolist()).isdisjoint(te.tolist())
    assert not torch.equal(split(113, 0.3, seed=1)[0], tr)


def test_dataset_labels_and_tokens():
    cfg = interp.ModelConfig(p=7, d_model=8, n_heads=2, d_head=4, d_mlp=16)
    d = make_dataset(cfg, 0.5, 0)
    pairs = all_pairs(7)[d.train_idx]
    assert torch.equal(d.train_labels, (pairs[:, 0] + pairs[:, 1]) % 7)
    assert torch.equal(d.train_tokens[:, 2], torch.full((len(pairs),), 7))
    dv = make_dataset(cfg.replace(eq_token=False, diff_vocab=True), 0.5, 0)
    assert dv.train_tokens.shape[1] == 2 and (dv.train_tokens[:, 1] >= 7).all()


def test_tiny_preset_reaches_full_test_accuracy(tmp_path):
    r = interp.train("tiny", out=tmp_path / "run", progress=False)
    assert r.final["test_acc"] == 1.0 and r.final["train_acc"] == 1.0
    assert r.stopped_early and r.step < interp.PRESETS["tiny"][1].steps
    # Accuracy over all p^2 pairs from a freshly loaded model, not the log.
    m = interp.load(tmp_path / "run")
    toks = interp.all_tokens(m.cfg)
    labels = all_pairs(m.cfg.p).sum(1) % m.cfg.p
    assert (m.last_logits(toks).argmax(-1) == labels).all()


def test_run_directory_contents(tmp_path):
    r = interp.train("tiny", out=tmp_path / "run", progress=False, steps=120, checkpoint_every=50,
                     log_every=10, stop_at_test_acc=None)
    run = tmp_path / "run"
    assert [s for s, _ in ck.list_snapshots(run)] == [0, 50, 100, 120]
    hist = json.loads((run / "history.json").read_text())
    assert [row["step"] for row in hist] == list(range(0, 121, 10))
    assert set(hist[0]) >= {"step", "train_loss", "train_acc", "test_loss", "test_acc"}
    info = json.loads((run / "run.json").read_text())
    assert info["preset"] == "tiny" and info["train_config"]["steps"] == 120
    final = ck.read_checkpoint(run / "final.safetensors")
    assert final.step == 120 and final.metrics["test_acc"] == hist[-1]["test_acc"]
    assert same_weights(interp.load(run), r.model)
    # The step-0 snapshot is the initial model.
    init = interp.Transformer(r.model.cfg, seed=final.train_config.seed)
    assert same_weights(interp.load(ck.list_snapshots(run)[0][1]), init)


def test_same_seed_same_weights(tmp_path):
    kw = dict(progress=False, steps=60, stop_at_test_acc=None)
    a, b = interp.train("tiny", **kw), interp.train("tiny", **kw)
    assert same_weights(a.model, b.model)
    assert not same_weights(a.model, interp.train("tiny", seed=1, **kw).model)


@pytest.mark.parametrize("grokfast", [0.0, 2.0])
def test_resume_equals_uninterrupted(tmp_path, grokfast):
    """Interrupted after 52 updates (last resume point: step 40), then resumed from the CLI:
    same weights and same history as a run never interrupted (AdamW moments and Grokfast EMA restored)."""
    kw = dict(progress=False, steps=80, checkpoint_every=20, log_every=5, stop_at_test_acc=None,
              grokfast_lambda=grokfast)
    full = interp.train("tiny", **kw)
    calls = {"n": 0}
    orig = torch.optim.AdamW.step

    def flaky_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 53:
            raise KeyboardInterrupt
        return orig(self, *a, **k)

    torch.optim.AdamW.step = flaky_step
    try:
        with pytest.raises(KeyboardInterrupt):
            interp.train("tiny", out=tmp_path / "run", **kw)
    finally:
        torch.optim.AdamW.step = orig
    assert not (tmp_path / "run" / "final.safetensors").exists()
    assert json.loads((tmp_path / "run" / "history.json").read_text())[-1]["step"] == 40
    assert main(["train", "--resume", str(tmp_path / "run"), "--quiet"]) == 0
    assert same_weights(interp.load(tmp_path / "run"), full.model)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]
    assert strip(json.loads((tmp_path / "run" / "history.json").read_text())) == strip(full.history)


def test_refuses_nonempty_run_dir_and_unknown_names(tmp_path):
    interp.train("tiny", out=tmp_path / "run", progress=False, steps=5)
    with pytest.raises(RunDirError, match="--resume"):
        interp.train("tiny", out=tmp_path / "run", progress=False, steps=5)
    interp.train("tiny", out=tmp_path / "run", progress=False, steps=5, overwrite=True)
    with pytest.raises(ConfigError, match="preset"):
        interp.train("nope")
    with pytest.raises(ConfigError, match="recipe"):
        interp.train("tiny", recipe="nope")
    with pytest.raises(ConfigError, match="setting"):
        interp.train("tiny", learning_rate=1.0)
    with pytest.raises(RunDirError):
        interp.resume(tmp_path / "missing")


def test_width_override_keeps_proportions():
    mcfg, _ = interp.presets.resolve("pizza-a", None, None, None, {"d_model": 64})
    assert (mcfg.d_model, mcfg.n_heads, mcfg.d_head, mcfg.d_mlp) == (64, 4, 16, 256)
    assert mcfg.attn_rate == 0.0 and mcfg.p == 59


def test_none_switches_off_optional_settings():
    _, tcfg = interp.presets.resolve("nanda", "fast", None, None, {"stop_at_test_acc": None, "lr": None})
    assert tcfg.stop_at_test_acc is None and tcfg.lr == interp.RECIPES["nanda"]["fast"]["lr"]
    _, tcfg = interp.presets.resolve("nanda", "fast", None, None, {})
    assert tcfg.stop_at_test_acc == 0.99
