"""Library helpers the notebooks use: interp.circles (the (sum, difference) logit table, circle isolation) and the
figures for training curves, circles over training, clock-vs-pizza maps and phase diagrams."""

import math

import plotly.graph_objects as go
import pytest
import torch

from interp import circles as C
from interp import metrics as M
from interp import plots, probes, progress
from interp.config import ModelConfig
from interp.errors import InterpError
from interp.model import Transformer

P = 13


def small_model(seed=0, **kw) -> Transformer:
    cfg = ModelConfig.with_width(16, p=P, eq_token=False, causal=False, biases="mlp", **kw)
    return Transformer(cfg, seed=seed).eval()


def two_circle_model(k1=2, k2=5, r1=3.0, r2=1.0) -> Transformer:
    """A model whose a-token embeddings are exactly two circles, frequency k1 (radius r1) on
    dimensions 0-1 and k2 (radius r2) on dimensions 2-3, plus a constant offset."""
    model = small_model()
    t = torch.arange(P, dtype=torch.float64)
    W = torch.zeros(P, 16, dtype=torch.float64)
    for (k, r, d) in ((k1, r1, 0), (k2, r2, 2)):
        W[:, d], W[:, d + 1] = r * torch.cos(2 * math.pi * k * t / P), r * torch.sin(2 * math.pi * k * t / P)
    W[:, 5] = 0.7  # the mean, kept by the isolation
    with torch.no_grad():
        model.embed.W_E[:P] = W.float()
    return model


# ---- sum_difference_table ------------------------------------------------------------------------
def test_sum_difference_table_orders_pairs_by_sum_and_difference():
    table = torch.randn(P, P, P, generator=torch.Generator().manual_seed(0))
    S = C.sum_difference_table(table)
    assert S.shape == (P, P)
    for a, b in [(0, 0), (3, 7), (12, 5), (6, 6)]:
        s, d = (a + b) % P, (a - b) % P
        assert S[s, d] == table[a, b, s].double()
    wrong = C.sum_difference_table(table, "max_wrong")
    a, b = 3, 7
    others = torch.cat([table[a, b, : (a + b) % P], table[a, b, (a + b) % P + 1 :]])
    assert wrong[(a + b) % P, (a - b) % P] == others.max().double()


def test_sum_difference_table_gives_distance_irrelevance():
    table = torch.randn(P, P, P, generator=torch.Generator().manual_seed(1))
    S = C.sum_difference_table(table)
    di = (S.std(dim=0, correction=0).mean() / S.std(correction=0)).item()
    assert di == pytest.approx(M.distance_irrelevance(table), rel=1e-12)


def test_sum_difference_table_of_a_clock_is_constant_along_the_difference():
    r = torch.arange(P, dtype=torch.float64)
    w = 2 * math.pi * 3 / P
    clock = torch.cos(w * (r[:, None, None] + r[None, :, None] - r[None, None, :]))
    S = C.sum_difference_table(clock)
    assert torch.allclose(S, S[:, :1].expand_as(S))


def test_sum_difference_table_refuses_even_p_and_unknown_variants():
    with pytest.raises(InterpError, match="odd p"):
        C.sum_difference_table(torch.zeros(4, 4, 4))
    with pytest.raises(InterpError, match="variant"):
        C.sum_difference_table(torch.zeros(5, 5, 5), "mean")


# ---- circle isolation ----------------------------------------------------------------------------
def test_isolated_model_keeping_every_component_changes_nothing():
    model = small_model(seed=3)
    iso = C.isolated_model(model, tuple(range(min(P, 16))))
    assert torch.allclose(M.logit_table(iso), M.logit_table(model), atol=1e-5)


def test_isolated_model_projects_only_the_token_embeddings_and_leaves_the_model_alone():
    model = small_model(seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    iso = C.isolated_model(model, (0, 1))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])  # the original is untouched
    for k, v in iso.state_dict().items():
        if k != "embed.W_E":
            assert torch.equal(v, before[k])
    centred = iso.W_E[:P].double() - iso.W_E[:P].double().mean(0)
    assert torch.linalg.matrix_rank(centred, atol=1e-4) == 2
    with pytest.raises(InterpError, match="principal component"):
        C.isolated_model(model, (0, 99))


def test_isolated_model_keeps_the_equals_token():
    cfg = ModelConfig.with_width(16, p=P, biases="none")  # Nanda layout: `=` is token p
    model = Transformer(cfg, seed=2)
    iso = C.isolated_model(model, (0, 1))
    assert torch.equal(iso.W_E[P], model.W_E[P])


def test_isolate_circles_finds_each_planted_circle():
    model = two_circle_model(k1=2, k2=5)
    first, second = C.isolate_circles(model, n_pairs=2)
    assert (first.components, first.frequency) == ((0, 1), 2)
    assert (second.components, second.frequency) == ((2, 3), 5)
    assert first.frequency_share == pytest.approx(1.0) and second.frequency_share == pytest.approx(1.0)
    assert first.variance_share == pytest.approx(0.9) and second.variance_share == pytest.approx(0.1)
    radius = first.points.norm(dim=1)
    assert torch.allclose(radius, torch.full_like(radius, 3.0))
    for c in (first, second):
        assert 0 <= c.accuracy <= 1 and -1 <= c.gradient_symmetricity <= 1 and c.distance_irrelevance >= 0
    (only,) = C.isolate_circles(model, pairs=[(2, 3)])
    assert only.frequency == 5 and only.gradient_symmetricity == pytest.approx(second.gradient_symmetricity)


def test_isolating_a_frequency_keeps_exactly_that_circle():
    model = two_circle_model(k1=2, k2=5)
    iso = C.isolated_model(model, frequency=5)
    W = iso.W_E[:P].double()
    assert torch.allclose(W[:, :2], torch.full_like(W[:, :2], 0.0), atol=1e-5)  # the frequency-2 circle is gone
    assert torch.allclose(W[:, 2:4], model.W_E[:P, 2:4].double(), atol=1e-5)  # frequency 5 kept as it was
    assert torch.allclose(W[:, 5], torch.full_like(W[:, 5], 0.7), atol=1e-6)  # and the mean
    by_freq = C.isolate_circles(model, frequencies=[2, 5])
    by_pca = C.isolate_circles(model, n_pairs=2)
    for f, c in zip(by_freq, by_pca):  # planted circles in separate planes: both methods agree
        assert f.components is None and f.frequency == c.frequency and f.frequency_share == pytest.approx(1.0)
        assert f.variance_share == pytest.approx(c.variance_share, abs=1e-6)
        assert f.distance_irrelevance == pytest.approx(c.distance_irrelevance, abs=1e-4)
    with pytest.raises(InterpError, match="either"):
        C.isolated_model(model)
    with pytest.raises(InterpError, match="frequency"):
        C.isolated_model(model, frequency=99)


# ---- figures -------------------------------------------------------------------------------------
HISTORY = [{"step": s, "train_loss": 4.0 / (1 + s), "test_loss": 4.0 if s < 50 else 0.1, "train_acc": min(1, s / 20),
            "test_acc": 0.0 if s < 50 else 1.0} for s in range(0, 100, 10)]


def test_loss_curves():
    fig = plots.loss_curves(HISTORY, progress.Phases(20, 60, 80))
    assert isinstance(fig, go.Figure) and len(fig.data) == 4
    assert fig.layout.yaxis.type == "log"
    assert len(fig.layout.shapes) == 6  # three phases on two rows
    assert len(plots.loss_curves(HISTORY).layout.shapes) == 0
    with pytest.raises(InterpError, match="history"):
        plots.loss_curves([])
    with pytest.raises(InterpError, match="Phases"):
        plots.loss_curves(HISTORY, phases=(1, 2, 3))


def test_circles_over_training():
    model = two_circle_model()
    snaps = [probes.embedding(model, freqs=[2, 5]), probes.embedding(small_model(), freqs=[2, 5])]
    fig = plots.circles_over_training(snaps, [100, 0])
    assert len(fig.data) == 4 and len(fig.data[0].x) == P
    assert fig.layout.annotations[0].text == "step 100, frequency 2"
    with pytest.raises(InterpError, match="same"):
        plots.circles_over_training([snaps[0], probes.embedding(model, freqs=[2])], [1, 2])
    with pytest.raises(InterpError, match="one EmbeddingProbe per step"):
        plots.circles_over_training(snaps, [1])


def test_sum_difference_maps_and_isolated_circles():
    model = two_circle_model()
    table = M.logit_table(model)
    fig = plots.sum_difference_maps({"A": C.sum_difference_table(table), "B": C.sum_difference_table(table)})
    assert len(fig.data) == 2 and torch.tensor(fig.data[0].z).shape == (P, P)
    circles = C.isolate_circles(model, n_pairs=2)
    fig = plots.isolated_circles(circles)
    assert len(fig.data) == 2 and "freq 2" in fig.layout.annotations[0].text
    fig = plots.isolated_circles(C.isolate_circles(model, frequencies=[5]))
    assert fig.layout.annotations[0].text.startswith("frequency 5")
    with pytest.raises(InterpError):
        plots.isolated_circles([])
    with pytest.raises(InterpError):
        plots.sum_difference_maps({})


def test_phase_diagram_categorical_and_numeric():
    rows = [{"name": f"a{a},s{s}", "attn_rate": a, "d_model": w, "seed": s, "classify.label": lab,
             "classify.gradient_symmetricity": gs}
            for a, lab, gs in ((0.0, "pizza", 0.99), (1.0, "clock", 0.4)) for w in (32, 64) for s in (0, 1)]
    fig = plots.phase_diagram(rows)
    assert {t.name for t in fig.data} == {"pizza", "clock"}
    assert sum(len(t.x) for t in fig.data) == len(rows)
    xs = sorted(x for t in fig.data for x in t.x)
    assert len(set(xs)) == 4  # two seeds per cell sit side by side
    fig = plots.phase_diagram(rows, color="classify.gradient_symmetricity")
    assert len(fig.data) == 1 and list(fig.data[0].marker.color) == [r["classify.gradient_symmetricity"] for r in rows]
    assert fig.layout.yaxis.type == "log"
    assert (fig.data[0].marker.cmin, fig.data[0].marker.cmax) == (0.0, 1.0)  # a score in [0, 1]: the full scale
    with pytest.raises(InterpError, match="column"):
        plots.phase_diagram(rows, color="classify.nothing")
    with pytest.raises(InterpError, match="columns"):
        plots.phase_diagram([{"x": 1}])


def test_verdicts_over_training():
    import interp

    models = [two_circle_model(), small_model(seed=1)]
    verdicts = [interp.classify(m) for m in models]
    fig = plots.verdicts_over_training({"A": ([0, 10], verdicts), "B": ([0, 10], verdicts[::-1])})
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(lines) == 6 and list(lines[0].y) == [v.gradient_symmetricity for v in verdicts]
    labels = {t.name for t in fig.data if t.mode == "markers"}
    assert labels == {v.label for v in verdicts}
    with pytest.raises(InterpError, match="equal"):
        plots.verdicts_over_training({"A": ([0], verdicts)})
    with pytest.raises(InterpError):
        plots.verdicts_over_training({})
