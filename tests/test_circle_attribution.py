"""A circle's own contribution (circles.isolate_circles): the isolated model's logits minus those of the
model with no circle (circles.baseline_model). Whatever the rest of the model puts at the answer c alone
(biases, the mean embedding) must not change what a circle is measured to do."""

import math
from pathlib import Path

import torch

from interp import circles as CI
from interp import classifier as C
from interp import load, metrics as M

FIXTURES = Path(__file__).parent / "fixtures"


def test_the_baseline_gives_every_input_the_same_logits():
    model = load(FIXTURES / "pizza.safetensors")
    base = M.logit_table(CI.baseline_model(model))
    assert torch.allclose(base, base[:1, :1].expand_as(base), atol=1e-5)
    assert not torch.equal(model.W_E, CI.baseline_model(model).W_E)  # a copy: the model is untouched
    assert torch.equal(model.W_E, load(FIXTURES / "pizza.safetensors").W_E)


def test_an_answer_only_logit_term_changes_no_circle_measurement():
    """A strong cos(2 pi k' c / p) added to b_U (an answer-only term at a frequency no circle has) moves
    every isolated circle's re-run logits to k' but not its own contribution: the same output frequency,
    DI, template fits and margin share."""
    model = load(FIXTURES / "clock.safetensors")
    p, keys = model.cfg.p, C.classify(model).key_frequencies
    other = next(k for k in range(1, p // 2 + 1) if k not in keys)
    before = CI.isolate_circles(model, frequencies=keys)
    with torch.no_grad():
        scale = M.logit_table(model).std() * 5
        model.unembed.b_U += scale * torch.cos(2 * math.pi * other * torch.arange(p) / p)
    after = CI.isolate_circles(model, frequencies=keys)
    for b, a in zip(before, after):
        assert a.output_frequency == b.output_frequency == b.frequency
        for name in ("distance_irrelevance", "clock_fve", "pizza_fve", "margin_share", "frequency_output_share"):
            assert abs(getattr(a, name) - getattr(b, name)) < 1e-4, name
        # the re-run model itself now sits at `other`: what the old measurement reported
        assert int(CI.output_spectrum(a.table + M.logit_table(CI.baseline_model(model))).argmax()) + 1 == other


def test_correct_margin_is_linear_and_measures_the_push_on_the_answer():
    p = 7
    r = torch.arange(p)
    answer = (r[:, None] + r[None, :]) % p
    onehot = torch.nn.functional.one_hot(answer, p).double()  # 1 on the answer, 0 elsewhere
    assert abs(CI.correct_margin(onehot) - (1 - 1 / p)) < 1e-12
    noise = torch.randn(p, p, p, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(CI.correct_margin(3 * onehot + noise) - (3 * CI.correct_margin(onehot) + CI.correct_margin(noise))) < 1e-12
    assert abs(CI.correct_margin(torch.ones(p, p, p))) < 1e-12  # a constant pushes nothing


def test_margin_shares_of_a_fixture_add_up_to_about_one():
    for name in ("clock", "pizza"):
        v = C.classify(FIXTURES / f"{name}.safetensors")
        assert abs(sum(c.margin_share for c in v.circles) - 1) < 0.1, (name, [c.margin_share for c in v.circles])
