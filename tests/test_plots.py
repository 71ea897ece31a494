import plotly.graph_objects as go
import pytest
import torch

from interp import fourier, plots, probes, progress
from interp.config import ModelConfig
from interp.errors import InterpError
from interp.model import Transformer

P = 11


@pytest.fixture(scope="module")
def pizza_model():
    """A Clock/Pizza-layout model ([a, b], no `=`, b tokens offset by p)."""
    cfg = ModelConfig.with_width(16, p=P, eq_token=False, causal=False, diff_vocab=True, biases="mlp")
    return Transformer(cfg, seed=0)


def test_embedding_figures(pizza_model):
    e = probes.embedding(pizza_model, freqs=[1, 4])
    fig = plots.embedding_norms(e)
    assert isinstance(fig, go.Figure)
    assert list(fig.data[0].x) == fourier.component_names(P)
    assert list(fig.data[0].marker.color).count("crimson") == 4  # cos/sin of the two chosen frequencies
    fig = plots.circles(e)
    assert len(fig.data) == 2 and len(fig.data[0].x) == P and list(fig.data[0].text) == [str(t) for t in range(P)]
    with pytest.raises(InterpError, match="no key frequencies"):
        plots.circles(probes.embedding(pizza_model, freqs=[]))


def test_attention_and_neuron_figures(pizza_model):
    a = probes.attention(pizza_model)
    for to in ("a", "b"):
        for spectrum in (False, True):
            fig = plots.attention_maps(a, to=to, spectrum=spectrum)
            assert len(fig.data) == pizza_model.cfg.n_heads
            assert torch.tensor(fig.data[0].z).shape == (P, P)
    n = probes.neurons(pizza_model, threshold=0.5)
    fig = plots.neuron_maps(n, neurons=[0, 3, 5])
    assert len(fig.data) == 3 and "neuron 3" in fig.layout.annotations[1].text
    assert len(plots.neuron_maps(n, spectrum=True).data) >= 1
    fig = plots.neuron_clusters(n)
    assert sum(fig.data[0].y) == pizza_model.cfg.d_mlp and fig.data[0].x[-1] == "unassigned"
    with pytest.raises(InterpError, match="neuron indices"):
        plots.neuron_maps(n, neurons=[pizza_model.cfg.d_mlp])


def test_logit_spectrum(pizza_model):
    fig = plots.logit_spectrum(probes.logits(pizza_model, freqs=[2]))
    assert torch.tensor(fig.data[0].z).shape == (P, P) and list(fig.data[0].x) == fourier.component_names(P)


def _progress(n=12):
    acc = torch.tensor([0.0, 0.5, 0.9] + [1.0] * (n - 3), dtype=torch.float64)
    test = torch.tensor([4.0, 6.0, 9.0, 10.0, 9.8, 9.5, 1.0, 0.01] + [1e-3] * (n - 8), dtype=torch.float64)
    weights = torch.tensor([10, 12, 14, 15, 15, 14, 12, 9, 7] + [6] * (n - 9), dtype=torch.float64)
    z = torch.zeros(n, dtype=torch.float64)
    prog = progress.Progress(steps=torch.arange(n) * 10, key_freqs=[1], train_loss=test / 100, test_loss=test,
                             train_acc=acc, test_acc=acc, restricted_loss=test / 10, excluded_loss=z + 1,
                             excluded_loss_per_freq=z[:, None] + 1, gini_W_E=z, gini_W_L=z, sum_sq_weights=weights)
    prog.phases = progress.detect_phases(prog)
    return prog


def test_progress_curves_shade_the_detected_phases():
    prog = _progress()
    fig = plots.progress_curves(prog)
    assert len(fig.data) == 7
    ph = prog.phases
    xs = sorted({(s.x0, s.x1) for s in fig.layout.shapes})  # one rectangle per panel
    assert xs == [(0, ph.memorisation_end), (ph.memorisation_end, ph.circuit_formation_end),
                  (ph.circuit_formation_end, ph.cleanup_end)]
    prog.phases = progress.Phases(30, 60, None)  # clean-up still going at the last step
    assert sorted(s.x1 for s in plots.progress_curves(prog).layout.shapes)[-1] == 110


@pytest.mark.parametrize("fn", [plots.embedding_norms, plots.circles, plots.attention_maps, plots.neuron_maps,
                                plots.neuron_clusters, plots.logit_spectrum, plots.progress_curves])
def test_wrong_input_raises(fn):
    with pytest.raises(InterpError, match="needs a"):
        fn(torch.zeros(3))


def test_circle_panels_show_each_circle_and_its_sum_difference_map(pizza_model):
    from interp.circles import isolate_circles, sum_difference_table

    circles = isolate_circles(pizza_model, frequencies=[1, 4])
    fig = plots.circle_panels(circles, ["pizza", "accompanying"])
    assert len(fig.data) == 4 and [t.type for t in fig.data] == ["scatter", "heatmap"] * 2
    assert len(fig.data[0].x) == P
    assert torch.allclose(torch.tensor(fig.data[1].z, dtype=torch.float64), sum_difference_table(circles[0].table))
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith("frequency 1: pizza") and titles[1].startswith("frequency 4: accompanying")
    with pytest.raises(InterpError, match="at least one"):
        plots.circle_panels([])
    with pytest.raises(InterpError, match="2 labels for 1 circles|1 labels"):
        plots.circle_panels(circles[:1], ["pizza", "clock"])
    with pytest.raises(InterpError, match="needs a"):
        plots.circle_panels([torch.zeros(3)])
