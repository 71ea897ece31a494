import json
import math

import pytest
import torch

import interp
from interp import checkpoints as ck
from interp import fourier, progress
from interp.data import all_pairs, labels_for, split
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


def test_restricted_and_excluded_loss_on_planted_logits():
    p, keys, other = 13, [2, 5], 4
    r = torch.arange(p, dtype=torch.float64)
    s = r[:, None, None] + r[None, :, None] - r[None, None, :]  # a + b - c, [a, b, c]
    term = lambda k, amp: amp * torch.cos(2 * math.pi * k * s / p)  # noqa: E731
    offset = torch.linspace(-1, 1, p, dtype=torch.float64)  # a per-output bias, constant over (a, b)
    logits = term(2, 3.0) + term(5, 2.0) + term(other, 1.5) + offset
    train_idx, test_idx = split(p, 0.4, seed=1)
    m = progress.logit_measures(logits, keys, train_idx, test_idx)
    flat = lambda x: x.reshape(p * p, p)  # noqa: E731
    y = labels_for(all_pairs(p), p)
    assert m.restricted_loss == pytest.approx(_xent(flat(term(2, 3.0) + term(5, 2.0) + offset), y), rel=1e-9)
    assert m.excluded_loss == pytest.approx(_xent(flat(term(other, 1.5) + offset)[train_idx], y[train_idx]), rel=1e-9)
    per = m.excluded_loss_per_freq
    assert per[0].item() == pytest.approx(_xent(flat(logits - term(2, 3.0))[train_idx], y[train_idx]), rel=1e-9)
    assert per[1].item() == pytest.approx(_xent(flat(logits - term(5, 2.0))[train_idx], y[train_idx]), rel=1e-9)
    assert m.train_loss == pytest.approx(_xent(flat(logits)[train_idx], y[train_idx]), rel=1e-9)
    assert m.test_loss == pytest.approx(_xent(flat(logits)[test_idx], y[test_idx]), rel=1e-9)
    assert m.train_acc == 1.0 and m.test_acc == 1.0
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
