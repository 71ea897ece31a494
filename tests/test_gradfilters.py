"""Gradient filters (TrainConfig.grad_filter, interp.gradfilters): the Grokfast formulas of REFERENCES §5
on hand-made gradients and over training, stacked equals alone, resume state, old configs, memory."""

import json

import pytest
import torch

import interp
from interp import checkpoints as ck
from interp.cli import main
from interp.config import GRAD_FILTERS, TrainConfig, upgrade_train_dict
from interp.errors import ConfigError
from interp.gradfilters import EMAFilter, MAFilter, make_filter
from interp.presets import settings
from interp.resources import estimate_training, n_params

SHAPES = {"W": (4, 3), "b": (5,)}


def hand_made_grads(steps, n_models=None, seed=0):
    """[steps] of {name: gradient} spanning several orders of magnitude, optionally stacked [n_models, ...]."""
    g = torch.Generator().manual_seed(seed)
    lead = () if n_models is None else (n_models,)
    return [{n: torch.randn(*lead, *s, generator=g) * 10.0 ** torch.randint(-3, 2, (*lead, *s), generator=g)
             for n, s in SHAPES.items()} for _ in range(steps)]


def run_filter(cfg, grads):
    """The filtered gradients interp.gradfilters produces for the sequence `grads` (and the filter)."""
    params = {n: torch.nn.Parameter(torch.zeros_like(v)) for n, v in grads[0].items()}
    f = make_filter(params, cfg)
    out = []
    for step in grads:
        for n, p in params.items():
            p.grad = step[n].clone()
        f.filter()
        out.append({n: p.grad.clone() for n, p in params.items()})
    return out, f


def reference(cfg, grads):
    """REFERENCES §5 written out directly, in float64: EMA mu_1 = g_1, mu_t = alpha mu_{t-1} + (1 - alpha) g_t,
    g_hat = g + lamb mu; MA g_hat = g + lamb * mean(last w gradients) once w exist, else g."""
    out, mu = [], {}
    for t, step in enumerate(grads, start=1):
        row = {}
        for n, g in step.items():
            g = g.double()
            if cfg.grad_filter == "ema":
                mu[n] = g if t == 1 else cfg.grokfast_alpha * mu[n] + (1 - cfg.grokfast_alpha) * g
                row[n] = g + cfg.grokfast_lamb * mu[n]
            else:
                w = cfg.grokfast_window
                window = [s[n].double() for s in grads[max(0, t - w):t]]
                row[n] = g + cfg.grokfast_lamb * sum(window) / w if t >= w else g
        out.append(row)
    return out


CFGS = [TrainConfig(grad_filter="ema"), TrainConfig(grad_filter="ema", grokfast_alpha=0.5, grokfast_lamb=5.0),
        TrainConfig(grad_filter="ma", grokfast_window=4, grokfast_lamb=5.0), TrainConfig(grad_filter="ma", grokfast_window=1)]


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: f"{c.grad_filter}-a{c.grokfast_alpha}-w{c.grokfast_window}")
def test_filter_is_the_papers_formula(cfg):
    grads = hand_made_grads(11)
    got, _ = run_filter(cfg, grads)
    # float32 against float64: each element within 1e-6 of the size of its terms (the same formula on |g|;
    # g + lamb mu may cancel, so relative to the result itself would not be a bound)
    size = reference(cfg, [{n: g.abs() for n, g in step.items()} for step in grads])
    for t, (g, r, s) in enumerate(zip(got, reference(cfg, grads), size), start=1):
        for n in SHAPES:
            assert ((g[n].double() - r[n]).abs() <= 1e-6 * s[n]).all(), f"step {t} {n}"
    if cfg.grad_filter == "ema":  # mu starts at the first gradient: the first update is (1 + lamb) g_1
        assert torch.allclose(got[0]["W"], (1 + cfg.grokfast_lamb) * grads[0]["W"])
    else:  # no filtering until the window is full: g_hat is g itself, bit for bit, for the first w - 1 updates
        w = cfg.grokfast_window
        assert all(torch.equal(got[t][n], grads[t][n]) for t in range(w - 1) for n in SHAPES)
        assert not torch.equal(got[w - 1]["W"], grads[w - 1]["W"])


@pytest.mark.parametrize("cfg", CFGS[::2], ids=["ema", "ma"])
def test_stacked_filter_equals_one_filter_per_model(cfg):
    """One filter over [n_models, ...] gives each model, bit for bit, what its own filter gives; its state
    moves between the stack and the models (model j's slice, stacking, dropping a model) unchanged."""
    stacked_grads = hand_made_grads(9, n_models=3)
    got, stacked = run_filter(cfg, stacked_grads)
    singles = [run_filter(cfg, [{n: g[n][j] for n in SHAPES} for g in stacked_grads]) for j in range(3)]
    for j, (alone, f) in enumerate(singles):
        assert all(torch.equal(got[t][n][j], alone[t][n]) for t in range(9) for n in SHAPES), j
        mine = type(f)(f.params, cfg)
        mine.model(stacked, j)
        assert mine.seen == f.seen == 9 and all(torch.equal(mine.state[n], f.state[n]) for n in SHAPES)
    restacked = type(stacked)(stacked.params, cfg)
    restacked.stack([f for _, f in singles])
    assert all(torch.equal(restacked.state[n], stacked.state[n]) for n in SHAPES)
    kept = stacked.select({n: p[[0, 2]] for n, p in stacked.params.items()}, torch.tensor([0, 2]))
    assert all(torch.equal(kept.state[n].select(kept.axis, 1), singles[2][1].state[n]) for n in SHAPES)


def test_filter_state_round_trips_through_resume_tensors():
    """What a resume file holds (tensors()) restores the same filter: the MA buffer, its write slot and count."""
    grads = hand_made_grads(7)
    for cfg in CFGS:
        _, f = run_filter(cfg, grads)
        g = type(f)({n: torch.nn.Parameter(torch.zeros_like(p)) for n, p in f.params.items()}, cfg)
        g.load({k: v.clone() for k, v in f.tensors().items()}, torch.device("cpu"))  # as read back from a file
        assert g.seen == (f.seen if isinstance(f, MAFilter) else 0) and g.state.keys() == f.state.keys()
        for step in hand_made_grads(3, seed=1):  # the next updates, from both
            for h in (f, g):
                for n, p in h.params.items():
                    p.grad = step[n].clone()
                h.filter()
            assert all(torch.equal(f.params[n].grad, g.params[n].grad) for n in SHAPES), cfg.grad_filter
    assert set(EMAFilter({}, CFGS[0]).tensors()) == set()  # nothing before the first gradient


def _reference_loop(steps, **overrides):
    """tiny trained in plain PyTorch (torch.optim.AdamW) with the filter written out as `reference` does,
    from the gradients of the run itself (the filter state kept as plain float32 history)."""
    from interp.data import make_dataset
    from interp.training import loss_fn, lr_at

    mcfg, tcfg = interp.presets.resolve("tiny", None, None, None, dict(stop_at_test_acc=None, **overrides))
    model = interp.Transformer(mcfg, seed=tcfg.seed)
    data = make_dataset(mcfg, tcfg.train_frac, tcfg.data_seed)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW(params.values(), lr=tcfg.lr, weight_decay=tcfg.weight_decay, betas=tcfg.betas)
    history, mu = [], {}
    for step in range(steps):
        loss = loss_fn(model.last_logits(data.train_tokens), data.train_labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        history.append({n: p.grad.detach().clone() for n, p in params.items()})
        for n, p in params.items():
            g = history[-1][n]
            if tcfg.grad_filter == "ema":
                mu[n] = g if step == 0 else tcfg.grokfast_alpha * mu[n] + (1 - tcfg.grokfast_alpha) * g
                p.grad = g + tcfg.grokfast_lamb * mu[n]
            elif len(history) >= tcfg.grokfast_window:
                p.grad = g + tcfg.grokfast_lamb * torch.stack([h[n] for h in history[-tcfg.grokfast_window:]]).mean(0)
        for group in opt.param_groups:
            group["lr"] = lr_at(tcfg, step)
        opt.step()
    return model, mcfg, tcfg


@pytest.mark.parametrize("overrides", [dict(grad_filter="ema"), dict(grad_filter="ma", grokfast_window=10)], ids=["ema", "ma"])
def test_training_with_a_filter_follows_the_formula(overrides):
    """40 updates of tiny with the filter equal the formula's training up to float rounding (far below
    what the filter itself changes, measured against training without it)."""
    run = interp.train("tiny", progress=False, steps=40, stop_at_test_acc=None, **overrides).model
    plain = interp.train("tiny", progress=False, steps=40, stop_at_test_acc=None).model
    ref, mcfg, tcfg = _reference_loop(40, **overrides)
    w0 = dict(interp.Transformer(mcfg, seed=tcfg.seed).named_parameters())
    theirs, unfiltered = dict(ref.named_parameters()), dict(plain.named_parameters())
    for k, p in run.named_parameters():
        if p.requires_grad:
            apart = (p - theirs[k]).abs().max().item()
            filtered = (p - unfiltered[k]).abs().max().item()
            assert apart <= 1e-3 * (p - w0[k]).abs().max().item(), k
            assert apart <= 1e-3 * filtered, k  # the filter changed training, and both runs agree on how


def test_stacked_sweep_equals_single_runs_with_a_filter(tmp_path):
    """Token-table forward (the same stacked code for one model and for n): a sweep's stacked models equal
    the same models trained one by one bit for bit, filter state included, with models leaving the stack
    at different steps (an early stop at 0.3 test accuracy: steps 50 and 55). The MA filter, whose state has
    its model index on axis 1; the EMA's (axis 0) is stacked in tests/test_sweep.py's interrupted sweep."""
    kw = dict(seed=[0, 1, 2], steps=60, lr=1e-2, log_every=5, checkpoint_every=20, stop_at_test_acc=0.3,
              forward="tables", progress=False, classify=False, grad_filter="ma", grokfast_window=15)
    stacked = interp.sweep("tiny", out=tmp_path / "s", **kw)
    alone = interp.sweep("tiny", out=tmp_path / "a", sequential=True, **kw)
    assert len({r.step for r in stacked.results.values()}) > 1, "models should leave the stack at different steps"
    for name, r in alone.results.items():
        s = stacked.results[name]
        assert s.step == r.step
        assert all(torch.equal(a, b) for a, b in zip(s.model.state_dict().values(), r.model.state_dict().values())), name
        got = ck.read_safetensors(tmp_path / "s" / "runs" / name / ck.RESUME)[0]
        want = ck.read_safetensors(tmp_path / "a" / "runs" / name / ck.RESUME)[0]
        assert got.keys() == want.keys() and any(k.startswith("grokfast") for k in got)
        assert all(torch.equal(got[k], want[k]) for k in got), name


# ---- configs: validation, old names, CLI ---------------------------------------------------------
def test_old_grokfast_lambda_maps_to_the_ema_filter():
    old = {k: v for k, v in TrainConfig().to_dict().items() if not k.startswith(("grad_filter", "grokfast_lamb", "grokfast_window"))}
    on = TrainConfig.from_dict(dict(old, grokfast_lambda=1.5))
    assert (on.grad_filter, on.grokfast_lamb) == ("ema", 1.5)
    off = TrainConfig.from_dict(dict(old, grokfast_lambda=0.0))
    assert (off.grad_filter, off.grokfast_lamb) == ("none", 0.0)
    with pytest.raises(ConfigError, match="grokfast_lambda.*grad_filter"):
        TrainConfig.from_dict(dict(old, grokfast_lambda=1.0, grad_filter="ma"))
    with pytest.raises(ConfigError, match=r"^TrainConfig\.grokfast_lamb\b"):
        TrainConfig.from_dict(dict(old, grokfast_lambda=-1.0))
    assert upgrade_train_dict(TrainConfig().to_dict()) == TrainConfig().to_dict()  # today's dicts pass unchanged
    # The Python API's keyword too (scripts written before grad_filter).
    _, tcfg = interp.presets.resolve("tiny", None, None, None, {"grokfast_lambda": 2.0})
    assert (tcfg.grad_filter, tcfg.grokfast_lamb) == ("ema", 2.0)
    # Checkpoints written before grad_filter (the fixtures) load with the filter off.
    assert ck.read_checkpoint("tests/fixtures/clock.safetensors").train_config.grad_filter == "none"


def _to_old_names(cfg: dict) -> dict:
    """A train_config dict as written before grad_filter existed (EMA on: grokfast_lambda = the gain)."""
    lamb = cfg["grokfast_lamb"] if cfg["grad_filter"] == "ema" else 0.0
    assert cfg["grad_filter"] != "ma"
    return dict({k: v for k, v in cfg.items() if k not in ("grad_filter", "grokfast_lamb", "grokfast_window")},
                grokfast_lambda=lamb)


def test_old_run_directory_with_grokfast_resumes_bit_for_bit(tmp_path):
    """A run directory in the old names (run.json and resume state carry grokfast_lambda, the EMA under
    "grokfast.*", as before grad_filter) resumes, also with --steps, to the weights of an uninterrupted run."""
    kw = dict(progress=False, checkpoint_every=10, log_every=10, stop_at_test_acc=None, grokfast_lamb=2.0, grad_filter="ema")
    full = interp.train("tiny", steps=30, **kw)
    interp.train("tiny", out=tmp_path / "run", steps=20, **kw)
    run = tmp_path / "run"
    info = json.loads((run / ck.RUN_JSON).read_text())
    info["train_config"] = _to_old_names(info["train_config"])
    ck.atomic_write_json(run / ck.RUN_JSON, info)
    tensors, meta = ck.read_safetensors(run / ck.RESUME)
    assert {k for k in tensors if k.startswith("grokfast")} == {f"grokfast.{n}" for n, p in full.model.named_parameters()
                                                                if p.requires_grad}
    meta = dict(meta, train_config=json.dumps(_to_old_names(json.loads(meta["train_config"]))))
    ck.save_tensors(run / ck.RESUME, tensors, {k: v for k, v in meta.items() if k != "format"})
    trainer = interp.training.load_trainer(run, steps=30)  # rewrites run.json in today's names
    assert json.loads((run / ck.RUN_JSON).read_text())["train_config"]["grad_filter"] == "ema"
    result = trainer.run(progress=False)
    assert all(torch.equal(a, b) for a, b in zip(result.model.state_dict().values(), full.model.state_dict().values()))


def test_grad_filter_is_a_cli_choice(tmp_path, capsys):
    assert settings()["grad_filter"].choices == GRAD_FILTERS == ("none", "ema", "ma")
    with pytest.raises(SystemExit):
        main(["train", "--preset", "tiny", "--grad-filter", "sma", "--out", str(tmp_path / "r")])
    assert "invalid choice: 'sma'" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--steps", "3", "--grad-filter", "ma", "--grokfast-window", "2",
                 "--grokfast-lamb", "3", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    saved = json.loads((tmp_path / "r" / ck.RUN_JSON).read_text())["train_config"]
    assert (saved["grad_filter"], saved["grokfast_window"], saved["grokfast_lamb"]) == ("ma", 2, 3.0)
    assert "grokfast_ma.#seen" in ck.read_safetensors(tmp_path / "r" / ck.RESUME)[0]


def test_memory_estimate_counts_the_ma_window():
    """The MA filter holds w gradients per parameter (and a save serialises them): w x params x 4 bytes,
    twice; the EMA one float per parameter, as before."""
    mcfg, tcfg = interp.presets.resolve("nanda", None, None, None, {})
    n = n_params(mcfg)
    none = estimate_training(mcfg, tcfg).model
    assert estimate_training(mcfg, tcfg.replace(grad_filter="ema")).model - none == 4 * n
    for w in (1, 100):
        ma = estimate_training(mcfg, tcfg.replace(grad_filter="ma", grokfast_window=w)).model
        assert ma - none == 4 * n * (w + max(0, w - 1)), w
    # A window far beyond memory is refused before anything is allocated.
    with pytest.raises(ConfigError, match="memory"):
        interp.train("nanda", steps=1, progress=False, grad_filter="ma", grokfast_window=10**7)
