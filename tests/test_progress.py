import json
import math

import pytest
import torch

import interp
from interp import checkpoints as ck
from interp import batched, fourier, metrics, progress
from interp.data import all_pairs, all_tokens, labels_for, split
from interp.errors import InterpError
from interp.model import Transformer


def test_gini_known_values():
    assert progress.gini(torch.ones(7)).item() == pytest.approx(0.0, abs=1e-12)
    assert progress.gini(torch.tensor([0.0, 0, 0, 5])).item() == pytest.approx(1 - 1 / 4)
    assert progress.gini(torch.tensor([0.0, 0, 1, 1])).item() == pytest.approx(0.5)
    assert progress.gini(torch.tensor([1.0, 0, 1, 0])).item() == pytest.approx(0.5)  # order-free
    x = torch.rand(3, 10, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(progress.gini(x), progress.gini(4.0 * x))  # scale-free
    assert torch.allclose(progress.gini(x)[1], progress.gini(x[1]))
    assert progress.gini(torch.zeros(4)).item() == 0.0


def _xent(logits, labels):
    return torch.nn.functional.cross_entropy(logits.double(), labels).item()


@pytest.mark.parametrize("p, keys, other, scale", [(13, [2, 5], 4, 1.0), (12, [2, 6], 4, 1.0), (13, [2, 5], 4, 300.0)])
def test_restricted_and_excluded_loss_on_planted_logits(p, keys, other, scale):
    # scale 300: logits spanning ~2000, where the shared-exp products underflow and are recomputed
    r = torch.arange(p, dtype=torch.float64)
    s = r[:, None, None] + r[None, :, None] - r[None, None, :]  # a + b - c, [a, b, c]
    term = lambda k, amp: scale * amp * torch.cos(2 * math.pi * k * s / p)  # noqa: E731
    offset = torch.linspace(-1, 1, p, dtype=torch.float64)  # a per-output bias, constant over (a, b)
    logits = term(keys[0], 3.0) + term(keys[1], 2.0) + term(other, 1.5) + offset
    train_idx, test_idx = split(p, 0.4, seed=1)
    m = progress.logit_measures(logits, keys, train_idx, test_idx)
    flat = lambda x: x.reshape(p * p, p)  # noqa: E731
    y = labels_for(all_pairs(p), p)
    assert m.restricted_loss == pytest.approx(_xent(flat(term(keys[0], 3.0) + term(keys[1], 2.0) + offset), y), rel=1e-9)
    assert m.excluded_loss == pytest.approx(_xent(flat(term(other, 1.5) + offset)[train_idx], y[train_idx]), rel=1e-9)
    per = m.excluded_loss_per_freq
    assert per[0].item() == pytest.approx(_xent(flat(logits - term(keys[0], 3.0))[train_idx], y[train_idx]), rel=1e-9)
    assert per[1].item() == pytest.approx(_xent(flat(logits - term(keys[1], 2.0))[train_idx], y[train_idx]), rel=1e-9)
    assert m.train_loss == pytest.approx(_xent(flat(logits)[train_idx], y[train_idx]), rel=1e-9)
    assert m.test_loss == pytest.approx(_xent(flat(logits)[test_idx], y[test_idx]), rel=1e-9)
    acc = (flat(logits).argmax(-1) == y).double()
    assert (m.train_acc, m.test_acc) == (acc[train_idx].mean().item(), acc[test_idx].mean().item())
    assert p % 2 == 0 or m.train_acc == m.test_acc == 1.0
    # stacked: each model's row is its own measures
    both = progress.stacked_logit_measures(torch.stack([flat(logits), flat(term(other, 4.0))]), keys, train_idx, test_idx)
    assert both["restricted_loss"][0].item() == pytest.approx(m.restricted_loss, rel=1e-12)
    assert torch.allclose(both["excluded_loss_per_freq"][0], per, rtol=1e-12)
    # a logit tensor made only of non-key frequencies: nothing is left after restriction
    m2 = progress.logit_measures(term(other, 4.0), keys, train_idx, test_idx)
    assert m2.restricted_loss == pytest.approx(math.log(p))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    interp.train("tiny", out=out, progress=False, checkpoint_every=50)
    return out


def test_run_progress_over_a_real_run(tiny_run):
    snaps = ck.list_snapshots(tiny_run)
    prog = progress.run_progress(tiny_run)
    S = len(snaps)
    assert prog.steps.tolist() == [s for s, _ in snaps]
    for name in progress.MEASURES:
        assert getattr(prog, name).shape == (S,), name
    final = interp.load(tiny_run)
    assert prog.key_freqs == fourier.key_frequencies(final) and prog.key_freqs
    assert prog.excluded_loss_per_freq.shape == (S, len(prog.key_freqs))
    # the run's own split: the last snapshot's losses are the ones the trainer logged
    last = json.loads((tiny_run / "history.json").read_text())[-1]
    assert last["step"] == prog.steps[-1]
    assert prog.test_loss[-1].item() == pytest.approx(last["test_loss"], rel=1e-4)
    assert prog.train_acc[-1].item() == pytest.approx(last["train_acc"])
    # single-model measures agree with the run's last row
    one = progress.measure(final, freqs=prog.key_freqs)
    assert one.restricted_loss == pytest.approx(prog.restricted_loss[-1].item(), rel=1e-6)
    assert one.sum_sq_weights == pytest.approx(prog.sum_sq_weights[-1].item(), rel=1e-9)
    # the weights go from random (Gini ~ small) to sparse in frequency
    assert prog.gini_W_E[-1] > prog.gini_W_E[0] and prog.gini_W_L[-1] > prog.gini_W_L[0]
    ph = prog.phases
    assert ph.memorisation_end is not None
    marks = [x for x in (ph.memorisation_end, ph.circuit_formation_end, ph.cleanup_end) if x is not None]
    assert marks == sorted(marks)
    sub = progress.run_progress(tiny_run, freqs=prog.key_freqs, every=3)
    assert sub.steps[-1] == prog.steps[-1] and sub.steps.tolist()[:-1] == prog.steps.tolist()[::3][: len(sub.steps) - 1]


def _one_at_a_time(run_dir, freqs):
    """The reference: each snapshot loaded as a model, its own forward, every measure written out
    directly from its definition (REFERENCES §1), one log-softmax per projection."""
    tc = interp.TrainConfig.from_dict(json.loads((run_dir / ck.RUN_JSON).read_text())["train_config"])
    rows = []
    for step, path in ck.list_snapshots(run_dir):
        c = ck.read_checkpoint(path)
        model = ck.model_from_state(c.model_config, c.state_dict, str(path))
        p = model.cfg.p
        tr, te = split(p, tc.train_frac, tc.data_seed)
        y = labels_for(all_pairs(p), p)
        L = model.last_logits(all_tokens(model.cfg)).detach().double()  # [p*p, p]
        U = fourier.sum_directions(p, freqs).reshape(len(freqs), 2, p * p)
        proj = torch.stack([U[k].T @ (U[k] @ L) for k in range(len(freqs))])  # [n_keys, p*p, p]
        xent = lambda logits, idx: torch.nn.functional.cross_entropy(logits[idx], y[idx]).item()  # noqa: E731
        everything = torch.arange(p * p)
        W_L = model.W_out[-1] @ model.W_U
        rows.append(dict(
            step=step, train_loss=xent(L, tr), test_loss=xent(L, te),
            train_acc=(L[tr].argmax(-1) == y[tr]).double().mean().item(),
            test_acc=(L[te].argmax(-1) == y[te]).double().mean().item(),
            restricted_loss=xent(proj.sum(0) + L.mean(0), everything), excluded_loss=xent(L - proj.sum(0), tr),
            excluded_loss_per_freq=[xent(L - proj[k], tr) for k in range(len(freqs))],
            gini_W_E=progress.gini(fourier.component_norms(model.W_E[:p].detach().double())).item(),
            gini_W_L=progress.gini(fourier.component_norms(W_L.T.detach().double())).item(),
            sum_sq_weights=sum(v.double().square().sum().item() for v in c.state_dict.values())))
    return rows


def test_run_progress_batched_equals_one_snapshot_at_a_time(tiny_run, monkeypatch):
    prog = progress.run_progress(tiny_run)
    ref = _one_at_a_time(tiny_run, prog.key_freqs)
    assert prog.steps.tolist() == [r["step"] for r in ref] and len(ref) > 3
    for name in (*progress.MEASURES, "excluded_loss_per_freq"):
        want = torch.tensor([r[name] for r in ref], dtype=torch.float64)
        assert torch.allclose(getattr(prog, name), want, rtol=1e-5, atol=1e-7), name
    # stacks of 1 and of 3 (the last one short) give the same numbers as one stack of all
    per_model = ck.read_checkpoint(ck.list_snapshots(tiny_run)[0][1]).model_config
    for size in (1, 3):
        monkeypatch.setattr(batched, "BATCH_BUDGET", size * per_model.p ** 2 * (per_model.d_mlp + per_model.p))
        assert batched.batch_size(per_model) == size
        again = progress.run_progress(tiny_run, freqs=prog.key_freqs)
        for name in (*progress.MEASURES, "excluded_loss_per_freq"):
            assert torch.allclose(getattr(again, name), getattr(prog, name), rtol=1e-6, atol=1e-9), (size, name)


def _perturbed(cfg, seed):
    model = Transformer(cfg, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # non-zero biases too, so every bias path is checked
        for prm in model.parameters():
            prm.add_(0.2 * torch.randn(prm.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize("kw", [
    dict(),  # Nanda: [a, b, =], causal
    dict(eq_token=False, causal=False, biases="mlp", attn_rate=0.0),  # Clock/Pizza, constant attention
    dict(eq_token=False, causal=True, act_fn="gelu", attn_rate=0.3, biases="all"),
    dict(eq_token=True, causal=False, diff_vocab=True, attn_rate=0.7, biases="all"),
    dict(eq_token=False, diff_vocab=True, n_heads=2),
    dict(n_layers=2, biases="all"),  # deeper: the model's own forward, vmapped
    dict(n_layers=2, eq_token=False, causal=False, attn_rate=0.4, act_fn="gelu"),
])
def test_stacked_logits_equal_the_models_forward(kw):
    cfg = interp.ModelConfig.with_width(16, p=11, **kw)
    models = [_perturbed(cfg, seed) for seed in range(3)]
    want = torch.stack([m.last_logits(all_tokens(cfg)) for m in models]).detach()
    got = batched.all_logits(cfg, batched.stack_states([m.state_dict() for m in models]))
    assert got.shape == want.shape == (3, cfg.p ** 2, cfg.p)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())
    # per-model attention rates in one stack
    rates = [0.0, 0.5, 1.0]
    mixed = [_perturbed(cfg.replace(attn_rate=r), seed) for seed, r in enumerate(rates)]
    want = torch.stack([m.last_logits(all_tokens(m.cfg)) for m in mixed]).detach()
    got = batched.all_logits(cfg, batched.stack_states([m.state_dict() for m in mixed]), rates)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


@pytest.mark.parametrize("kw", [
    dict(),  # Nanda: [a, b, =], causal
    dict(eq_token=False, causal=False, biases="mlp", attn_rate=0.0),
    dict(eq_token=False, causal=True, act_fn="gelu", attn_rate=0.3, biases="all"),
    dict(eq_token=True, causal=False, diff_vocab=True, attn_rate=0.7, biases="all"),
    dict(eq_token=False, diff_vocab=True, n_heads=2, attn_rate=0.5),
])
def test_pair_logits_equal_the_models_forward_and_its_gradients(kw):
    """The training forward (token tables, given rows per model) is the model's forward: same logits
    and gradients within float32 rounding; a stack of one gives the same bits as its slice of a stack."""
    cfg = interp.ModelConfig.with_width(16, p=11, **kw)
    rates = [cfg.attn_rate, 0.0, 1.0]
    models = [_perturbed(cfg.replace(attn_rate=r), seed) for seed, r in enumerate(rates)]
    tokens = all_tokens(cfg)
    rows = torch.stack([torch.randperm(len(tokens), generator=torch.Generator().manual_seed(s))[:60] for s in range(3)])
    params = {n: torch.stack([dict(m.named_parameters())[n] for m in models]) for n, _ in models[0].named_parameters()}
    got = batched.pair_logits(cfg, params, tokens[rows], rates)
    want = torch.stack([m.last_logits(tokens[r]) for m, r in zip(models, rows)])
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())
    trained = [n for n, prm in models[0].named_parameters() if prm.requires_grad and n != "blocks.0.attn.b_K"]  # b_K: 0
    grad = lambda out: torch.autograd.grad(out.double().square().sum(), [dict(models[0].named_parameters())[n] for n in trained])  # noqa: E731
    for n, g, w in zip(trained, grad(got[0]), grad(want[0])):
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-5 * w.abs().max().item()), n
    solo = batched.pair_logits(cfg, {n: v[:1] for n, v in params.items()}, tokens[rows[:1]], rates[:1])
    assert torch.equal(solo[0], got[0])


def test_pair_logits_refuses_deeper_models():
    cfg = interp.ModelConfig.with_width(16, p=11, n_layers=2)
    params = batched.stack_states([Transformer(cfg, seed=0).state_dict()])
    with pytest.raises(batched.BatchError, match="one-layer"):
        batched.pair_logits(cfg, params, all_tokens(cfg)[None, :5])


def test_model_metrics_equal_the_single_model_functions():
    base = interp.ModelConfig.with_width(16, p=11, eq_token=False, causal=False, biases="mlp")
    models = [_perturbed(base.replace(attn_rate=r), i) for i, r in enumerate([0.0, 1.0, 0.5])]
    models.append(_perturbed(interp.ModelConfig.with_width(8, p=7), 9))  # another shape: its own stack
    got = batched.model_metrics(models)
    for m, g in zip(models, got):
        table = metrics.logit_table(m)
        assert g.accuracy == metrics.accuracy(table)
        assert g.distance_irrelevance == pytest.approx(metrics.distance_irrelevance(table), rel=1e-4)
        assert g.distance_irrelevance_max_wrong == pytest.approx(metrics.distance_irrelevance(table, "max_wrong"), rel=1e-4)
        assert g.gradient_symmetricity == metrics.gradient_symmetricity(m)
        assert g.circularity == metrics.circularity(m) and g.key_frequencies == fourier.key_frequencies(m)
    with pytest.raises(InterpError, match="no models"):
        batched.stack_states([])


def _synthetic(train_acc, test_loss, weights, restricted):
    n = len(train_acc)
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    z = torch.zeros(n, dtype=torch.float64)
    return progress.Progress(steps=torch.arange(n) * 10, key_freqs=[1], train_loss=z, test_loss=t(test_loss),
                             train_acc=t(train_acc), test_acc=z, restricted_loss=t(restricted), excluded_loss=z,
                             excluded_loss_per_freq=z[:, None], gini_W_E=z, gini_W_L=z, sum_sq_weights=t(weights))


def test_detect_phases_follows_the_measures():
    acc = [0.0, 0.5, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    test = [4.0, 6.0, 9.0, 10.0, 9.8, 9.5, 1.0, 0.01, 1e-3, 1e-3, 1e-3, 1e-3]
    weights = [10, 12, 14, 15, 15, 14, 12, 9, 7, 6, 6, 6]
    restricted = [4.0, 4.0, 3.5, 3.0, 2.0, 1.0, 0.1, 1e-3, 1e-4, 1e-4, 1e-4, 1e-4]
    ph = progress.detect_phases(_synthetic(acc, test, weights, restricted))
    assert (ph.memorisation_end, ph.circuit_formation_end, ph.cleanup_end) == (30, 60, 90)
    # weights still shrinking at the end: clean-up has not finished
    ph = progress.detect_phases(_synthetic(acc, test, [10, 12, 14, 15, 15, 14, 12, 9, 7, 6, 5, 4], restricted))
    assert (ph.memorisation_end, ph.circuit_formation_end, ph.cleanup_end) == (30, 60, None)
    # the test loss only wobbles after memorisation (less than 10x): no circuit formation end
    flat = [4.0, 6.0, 9.0, 10.0, 9.8, 9.5, 8.0, 6.0, 5.0, 5.0, 4.0, 4.0]
    ph = progress.detect_phases(_synthetic(acc, flat, weights, restricted))
    assert (ph.memorisation_end, ph.circuit_formation_end, ph.cleanup_end) == (30, None, None)
    ph = progress.detect_phases(_synthetic([0.1] * 12, test, weights, restricted))
    assert (ph.memorisation_end, ph.circuit_formation_end, ph.cleanup_end) == (None, None, None)


def test_run_progress_refuses_a_snapshot_unlike_the_final_one(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (step, path), last = ck.list_snapshots(run)[1], ck.read_checkpoint(ck.list_snapshots(run)[-1][1])
    state = dict(last.state_dict, **{"embed.W_E": last.state_dict["embed.W_E"][:-1]})
    ck.save_tensors(path, state, {"model_config": last.model_config.to_dict(), "step": step})
    with pytest.raises(progress.ProgressError, match=f"{path.name}: weights differ"):
        progress.run_progress(run)


def test_progress_errors(tmp_path):
    with pytest.raises(InterpError, match="no snapshots"):
        progress.run_progress(tmp_path)
    model = Transformer(interp.ModelConfig.with_width(16, p=7), seed=0)
    with pytest.raises(InterpError, match="split"):
        progress.measure(model, freqs=[1])
    m = progress.measure(model, freqs=[1], train_frac=0.5, data_seed=0)
    assert m.key_freqs == [1] and m.excluded_loss_per_freq.shape == (1,)
    with pytest.raises(InterpError, match="key frequencies"):
        progress.measure(model, train_frac=0.5, data_seed=0)


@pytest.mark.parametrize("scale, rtol", [(1.0, 1e-6), (30.0, 1e-5)])
def test_float32_logit_measures_equal_float64_ones(tiny_run, scale, rtol):
    """stacked_logit_measures works in the logits' precision: on float32 logits (what all_logits gives) every
    measure is within 1e-6 relative of the same function on those logits in float64 (which the planted test
    checks against the definition), accuracies exactly. scale 30: logits spanning ~1000, past float32's exp,
    so rows go through the float64 recomputation (and a block through the shifted exp); there a float32
    exponent L - shift of ~1000 is itself rounded by ~6e-5 (measured: 4.5e-6 relative), hence 1e-5."""
    snaps = [path for _, path in ck.list_snapshots(tiny_run)]
    states = [ck.read_checkpoint(path).state_dict for path in snaps]
    cfg = ck.read_checkpoint(snaps[-1]).model_config
    logits = batched.all_logits(cfg, batched.stack_states(states)) * scale
    freqs = interp.key_frequencies(interp.load(snaps[-1])) or [1]
    tr, te = split(cfg.p, 0.8, 0)
    got = progress.stacked_logit_measures(logits, freqs, tr, te)
    want = progress.stacked_logit_measures(logits.double(), freqs, tr, te)
    for k in want:
        if k.endswith("acc"):
            assert torch.equal(got[k], want[k]), k
        else:
            assert torch.allclose(got[k], want[k], rtol=rtol, atol=0), (k, (got[k] / want[k] - 1).abs().max())
