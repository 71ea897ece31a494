import json
import subprocess
import sys

import pytest
import torch

import interp
from interp import checkpoints as ck
from interp.data import all_pairs, make_dataset, split
from interp.errors import ConfigError, RunDirError
from interp.optim import AdamW
from interp.cli import main

from helpers import one_thread


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


@pytest.mark.parametrize("grad_filter", [{}, {"grad_filter": "ema"}, {"grad_filter": "ma", "grokfast_window": 30}])
def test_resume_equals_uninterrupted(tmp_path, grad_filter):
    """Interrupted after 52 updates (last resume point: step 40), then resumed from the CLI:
    same weights and same history as a run never interrupted (AdamW moments and filter state restored;
    the MA window of 30 is full and has wrapped round at the resume point)."""
    kw = dict(progress=False, steps=80, checkpoint_every=20, log_every=5, stop_at_test_acc=None, **grad_filter)
    full = interp.train("tiny", **kw)
    calls = {"n": 0}
    orig = AdamW.step

    def flaky_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 53:
            raise KeyboardInterrupt
        return orig(self, *a, **k)

    AdamW.step = flaky_step
    try:
        with pytest.raises(KeyboardInterrupt):
            interp.train("tiny", out=tmp_path / "run", **kw)
    finally:
        AdamW.step = orig
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
    _, tcfg = interp.presets.resolve("tiny", None, None, None, {"stop_at_test_acc": None, "lr": None})
    assert tcfg.stop_at_test_acc is None and tcfg.lr == interp.PRESETS["tiny"][1].lr
    _, tcfg = interp.presets.resolve("tiny", None, None, None, {})
    assert tcfg.stop_at_test_acc == 1.0


# ---- one engine ----------------------------------------------------------------------------------
def _table_logits(model, tokens):
    """The Engine's training forward (`batched.pair_logits`) on one model: tokens [n, n_ctx] -> [n, p]."""
    from interp.batched import pair_logits

    return pair_logits(model.cfg, {n: p.unsqueeze(0) for n, p in model.named_parameters()}, tokens[None])[0]


def _plain_loop(preset, steps, forward=_table_logits, **overrides):
    """The training step written out in plain PyTorch (the loop main had before the Engine):
    last-position logits (`forward(model, tokens)`), float64 loss, backward, gradient filter, warm-up lr, AdamW."""
    from interp.presets import resolve
    from interp.gradfilters import make_filter
    from interp.training import loss_fn, lr_at

    mcfg, tcfg = resolve(preset, None, None, None, overrides)
    model = interp.Transformer(mcfg, seed=tcfg.seed)
    data = make_dataset(mcfg, tcfg.train_frac, tcfg.data_seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay, betas=tcfg.betas)
    gf = make_filter(dict((n, p) for n, p in model.named_parameters() if p.requires_grad), tcfg)
    for step in range(steps):
        loss = loss_fn(forward(model, data.train_tokens), data.train_labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if gf:
            gf.filter()
        for g in opt.param_groups:
            g["lr"] = lr_at(tcfg, step)
        opt.step()
    return model


@pytest.mark.parametrize("forward", ["model", "tables"])
@pytest.mark.parametrize("overrides", [{}, {"grad_filter": "ema", "seed": 3}, {"grad_filter": "ma", "grokfast_window": 7},
                                       {"attn_rate": 0.0, "lr": 1e-2}])
def test_solo_run_is_bit_identical_to_a_plain_loop(overrides, forward):
    """A single run is the Engine on a stack of one: the same weights, bit for bit, as the plain loop
    with the same forward (TrainConfig.forward: the model's own, the default, or token tables)."""
    r = interp.train("tiny", progress=False, steps=40, stop_at_test_acc=None, log_every=7, forward=forward, **overrides)
    plain = _table_logits if forward == "tables" else (lambda m, t: m.last_logits(t))
    assert same_weights(r.model, _plain_loop("tiny", 40, forward=plain, stop_at_test_acc=None, **overrides))


def test_forward_setting_is_validated():
    with pytest.raises(interp.ConfigError, match="forward"):
        interp.TrainConfig(forward="fast")


@pytest.mark.parametrize("preset, overrides", [("tiny", {}), ("tiny", {"attn_rate": 0.0, "lr": 1e-2}),
                                               ("nanda", {"p": 23, "d_model": 32})])
def test_table_forward_trains_like_the_models_forward(preset, overrides):
    """The Engine's forward (token tables) and the model's own forward are the same function: training
    with either gives the same weights up to float32 rounding, far below what training changed."""
    kw = dict(stop_at_test_acc=None, **overrides)
    mcfg, tcfg = interp.presets.resolve(preset, None, None, None, kw)
    w0 = dict(interp.Transformer(mcfg, seed=tcfg.seed).named_parameters())
    w1 = dict(_plain_loop(preset, 40, **kw).named_parameters())
    w2 = dict(_plain_loop(preset, 40, forward=lambda m, t: m.last_logits(t), **kw).named_parameters())
    for k, p in w1.items():
        if p.requires_grad:
            moved, apart = (p - w0[k]).abs().max().item(), (p - w2[k]).abs().max().item()
            assert apart <= 1e-3 * moved, k  # W_Q at alpha 0: moved by weight decay alone, apart 0


def test_stop_reason_is_recorded(tmp_path):
    r = interp.train("tiny", out=tmp_path / "cap", progress=False, steps=30, stop_at_test_acc=None)
    assert r.stop_reason == "step cap: steps=30 reached" and not r.stopped_early
    r = interp.train("tiny", out=tmp_path / "acc", progress=False, lr=1e-2)  # tiny stops at test acc 1.0
    assert r.stopped_early and r.stop_reason.startswith("test accuracy 1.0000 >= stop_at_test_acc")
    for run, result in ((tmp_path / "cap", "step cap"), (tmp_path / "acc", "test accuracy")):
        assert json.loads((run / "run.json").read_text())["stop_reason"].startswith(result)
        assert json.loads((run / "history.json").read_text())[-1]["stop_reason"].startswith(result)


def test_clean_stop_waits_for_a_settled_circuit(tmp_path):
    """stop_when_clean stops after test accuracy >= 0.99 and only once the key frequencies have been
    the same at the last checks, carry most of W_E's Fourier norm and the weight norm has settled."""
    from interp import stopping

    r = interp.train("tiny", out=tmp_path / "run", progress=False, lr=1e-2, steps=1500, stop_at_test_acc=None,
                     stop_when_clean=True, log_every=10, checkpoint_every=50)
    assert r.stopped_early and r.stop_reason.startswith("clean circuit")
    hist = r.history
    first_99 = next(row["step"] for row in hist if row["test_acc"] >= 0.99)
    assert r.step >= first_99 + 10 * (stopping.STABLE_CHECKS - 1)  # not at 99 %: after it
    last = hist[-stopping.STABLE_CHECKS:]
    keys = last[-1]["key_freqs"]
    assert keys and all(row["key_freqs"] == keys for row in last)
    assert keys == interp.key_frequencies(interp.load(tmp_path / "run"))  # measured on the saved model
    assert stopping.key_share(r.model.W_E[: r.model.cfg.p], keys) >= stopping.MIN_KEY_SHARE
    assert abs(last[-1]["sum_sq_weights"] / last[0]["sum_sq_weights"] - 1) < stopping.MAX_WEIGHT_CHANGE
    # No earlier check met all conditions: the stop is the first clean check.
    assert all(stopping.is_clean(hist[: i + 1], 0.0 if i + 1 < len(hist) else 1.0) is None
               for i in range(len(hist) - 1))


def test_is_clean_needs_every_condition():
    from interp.stopping import is_clean

    row = dict(test_acc=1.0, key_freqs=[3, 7], sum_sq_weights=100.0)
    ok = [dict(row, step=s) for s in (0, 10, 20)]
    assert is_clean(ok, 0.95)
    assert is_clean(ok, 0.5) is None  # keys carry too little of the norm
    assert is_clean(ok[1:], 0.95) is None  # too few checks
    assert is_clean([ok[0], dict(ok[1], key_freqs=[3]), ok[2]], 0.95) is None  # keys changed
    assert is_clean([dict(ok[0], test_acc=0.9), *ok[1:]], 0.95) is None  # not generalised throughout
    assert is_clean([dict(ok[0], sum_sq_weights=120.0), *ok[1:]], 0.95) is None  # still cleaning up
    assert is_clean([dict(r, key_freqs=[]) for r in ok], 0.95) is None  # no key frequencies


def test_is_clean_gradient_symmetricity_window():
    """stop_gs_change: GS must have moved less than the tolerance across the window (and been measured
    at every check of it); stop_weight_change None drops the weight criterion."""
    from interp.stopping import is_clean

    row = dict(test_acc=1.0, key_freqs=[3, 7], sum_sq_weights=100.0)
    rows = lambda gs, ssw=(100.0, 100.0, 100.0): [dict(row, step=s, gradient_symmetricity=g, sum_sq_weights=w)  # noqa: E731
                                                   for s, g, w in zip((0, 100, 200), gs, ssw)]
    assert "gradient symmetricity 0.50-0.51" in is_clean(rows((0.50, 0.51, 0.505)), 0.95, max_gs_change=0.02)
    assert is_clean(rows((0.56, 0.51, 0.50)), 0.95, max_gs_change=0.02) is None  # still falling
    assert is_clean([dict(r, gradient_symmetricity=None) for r in rows((0.5,) * 3)], 0.95, max_gs_change=0.02) is None
    rising = rows((0.5,) * 3, ssw=(100.0, 110.0, 120.0))  # the weight norm still moving
    assert is_clean(rising, 0.95, max_gs_change=0.02) is None
    assert "sum of squared" not in is_clean(rising, 0.95, max_weight_change=None, max_gs_change=0.02)


def test_gs_stop_is_recorded_stacked_equals_alone_and_resumes(tmp_path):
    """With stop_gs_change every check writes the model's gradient symmetricity into its history row
    (measured as metrics.gradient_symmetricity measures the saved model), the stop needs it settled, a
    model in a stacked sweep stops where it stops alone, and a resumed run stops at the same step."""
    from interp import metrics

    kw = dict(lr=1e-2, steps=1500, stop_at_test_acc=None, stop_when_clean=True, stop_gs_change=0.05,
              stop_weight_change=None, log_every=20, checkpoint_every=20)
    with one_thread():
        whole = interp.train("tiny", out=tmp_path / "whole", progress=False, **kw)
        assert whole.stop_reason.startswith("clean circuit") and "gradient symmetricity" in whole.stop_reason
        gs = [r["gradient_symmetricity"] for r in whole.history if "gradient_symmetricity" in r]
        assert len(gs) >= 3 and max(gs[-3:]) - min(gs[-3:]) < 0.05
        assert gs[-1] == pytest.approx(metrics.gradient_symmetricity(interp.load(tmp_path / "whole")), abs=1e-6)
        swept = interp.sweep("tiny", None, tmp_path / "sweep", seed=[0, 5], classify=False, progress=False, **kw)
        alone = next(r for r in swept.rows if r["seed"] == 0)
        assert alone["step"] == whole.step
        cut = whole.step - 40 - whole.step % 20
        interp.train("tiny", out=tmp_path / "part", progress=False, **dict(kw, steps=cut))
        again = interp.resume(tmp_path / "part", steps=1500, progress=False)
    assert again.step == whole.step and again.stop_reason == whole.stop_reason
    assert same_weights(again.model, whole.model)


def test_clean_stop_resumes_exactly(tmp_path):
    """The stop's state is the history: a run resumed mid-way stops at the same step with the same weights."""
    kw = dict(progress=False, lr=1e-2, steps=1500, stop_at_test_acc=None, stop_when_clean=True, log_every=10,
              checkpoint_every=20)
    whole = interp.train("tiny", out=tmp_path / "whole", **kw)
    assert whole.stop_reason.startswith("clean circuit")
    cut = whole.step - 20 - whole.step % 20  # a resume point a couple of checks before the stop
    interp.train("tiny", out=tmp_path / "part", **dict(kw, steps=cut))
    again = interp.resume(tmp_path / "part", steps=1500, progress=False)
    assert again.step == whole.step and again.stop_reason == whole.stop_reason
    assert same_weights(again.model, whole.model)
    strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]  # noqa: E731
    assert strip(again.history) == strip(whole.history)


def test_device_cuda_without_cuda_is_one_clear_line(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["train", "--preset", "tiny", "--steps", "5", "--out", str(tmp_path / "r"), "--device", "cuda",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("interp: error: device 'cuda' is not available")
    assert not (tmp_path / "r").exists()  # refused before anything was written
    with pytest.raises(ConfigError, match="not one of cpu, cuda, mps"):
        interp.train("tiny", steps=5, progress=False, device="tpu")


@pytest.mark.parametrize("weight_decay", [0.0, 1.0, 2.0])
def test_our_adamw_is_torch_adamw_bit_for_bit(weight_decay):
    """interp.optim.AdamW (no torch.optim, so no torch._dynamo import) updates exactly as torch's AdamW
    does on the CPU: gradients spanning 1e-8 to 10 (the eps-dominated and the normal regime), the
    learning rate changed between steps as the warm-up does, the state tensors compared too."""
    g = torch.Generator().manual_seed(0)
    for shape in [(7, 5), (3,)]:
        ours = torch.nn.Parameter(torch.randn(shape, generator=g))
        theirs = torch.nn.Parameter(ours.detach().clone())
        opts = [AdamW([ours], lr=1e-2, weight_decay=weight_decay, betas=(0.9, 0.98)),
                torch.optim.AdamW([theirs], lr=1e-2, weight_decay=weight_decay, betas=(0.9, 0.98))]
        for i in range(60):
            grad = torch.randn(shape, generator=g) * 10.0 ** torch.randint(-8, 2, shape, generator=g).float()
            for opt, p in zip(opts, (ours, theirs)):
                opt.zero_grad(set_to_none=True)
                p.grad = grad.clone()
                opt.param_groups[0]["lr"] = 1e-2 * min(1.0, i / 10)  # the "zhong" warm-up's first lr is 0
                opt.step()
            assert torch.equal(ours, theirs), i
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(opts[0].state[ours][key], opts[1].state[theirs][key]), key


def test_training_does_not_import_torch_dynamo(tmp_path):
    """torch.optim's step imports torch._dynamo (~1 s of every fresh `interp train`); ours must not."""
    code = ("import sys; from interp.cli import main; "
            f"main(['train', '--preset', 'tiny', '--steps', '3', '--out', {str(tmp_path / 'r')!r}, '--quiet']); "
            "sys.exit(3 if 'torch._dynamo' in sys.modules else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
