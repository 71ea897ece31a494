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


def _phase_rows():
    """A synthetic classified sweep: widths 32 and 64, α 0 / 0.5 / 1, three seeds each. Width 32 turns
    clock-like at α 0.5, width 64 only at α 1; width 64's α 0 cell is noisy (mostly clock-like, below a
    pizza cell: it must not move the boundary); one run does not generalise (left out of the GS median)."""
    plan = {  # (width, α) -> [(label, GS, DI largest-wrong)] per seed
        (32, 0.0): [("pizza", 0.99, 0.3), ("pizza", 0.995, 0.4), ("clock", 0.6, 0.9)],
        (32, 0.5): [("clock", 0.7, 0.8), ("mixed", 0.8, 0.7), ("pizza", 0.99, 0.5)],
        (32, 1.0): [("clock", 0.4, 0.9), ("clock", 0.5, 0.95), ("ambiguous", 0.9, 0.6)],
        (64, 0.0): [("clock", 0.6, 0.9), ("mixed", 0.7, 0.8), ("non-generalizing", 0.1, 0.9)],
        (64, 0.5): [("pizza", 0.985, 0.4), ("ambiguous", 0.97, 0.5), ("pizza", 0.99, 0.4)],
        (64, 1.0): [("clock", 0.45, 0.9), ("mixed", 0.6, 0.8), ("unclassified: boom", 0.99, 0.5)],
    }
    return [{"name": f"w{w},a{a},s{s}", "attn_rate": a, "d_model": w, "seed": s, "classify.label": lab,
             "classify.gradient_symmetricity": gs, "classify.distance_irrelevance_max_wrong": di}
            for (w, a), runs in plan.items() for s, (lab, gs, di) in enumerate(runs)]


def test_phase_cells_and_boundary():
    cells = plots.phase_cells(_phase_rows())
    assert [(c["d_model"], c["attn_rate"]) for c in cells] == [(w, a) for w in (32, 64) for a in (0.0, 0.5, 1.0)]
    at = {(c["d_model"], c["attn_rate"]): c for c in cells}
    assert all(c["n"] == 3 for c in cells)
    assert at[(32, 0.0)]["gs_median"] == pytest.approx(0.99) and at[(32, 0.0)]["clock_like_share"] == pytest.approx(1 / 3)
    assert at[(32, 0.5)]["clock_like_share"] == pytest.approx(2 / 3) and at[(32, 0.5)]["gs_median"] == pytest.approx(0.8)
    c = at[(64, 0.0)]  # the non-generalising run counts in the shares, not in the GS quartiles
    assert c["n_generalizing"] == 2 and c["counts"]["non-generalizing"] == 1 and c["gs_median"] == pytest.approx(0.65)
    assert at[(64, 1.0)]["counts"]["other"] == 1 and at[(64, 1.0)]["gs_q25"] == pytest.approx(0.525)
    # 64 at α 0.5: median 0.985, still pizza; its α 0 cell is past the cut but below that pizza cell
    assert plots.phase_boundary(cells, "gs") == {32: 0.5, 64: 1.0}
    assert plots.phase_boundary(cells, "label") == {32: 0.5, 64: 1.0}
    rows = [r for r in _phase_rows() if not (r["d_model"] == 64 and r["attn_rate"] == 1.0)]
    rows += [{**r, "classify.label": "pizza", "classify.gradient_symmetricity": 0.99}
             for r in _phase_rows() if r["d_model"] == 64 and r["attn_rate"] == 1.0]
    assert plots.phase_boundary(plots.phase_cells(rows), "gs")[64] is None  # never leaves the pizza phase
    with pytest.raises(InterpError, match="classified sweep rows"):
        plots.phase_cells([{"attn_rate": 0.0, "d_model": 32}])
    with pytest.raises(InterpError, match="by must be"):
        plots.phase_boundary(cells, "nope")


def test_phase_diagram_cells_figure():
    cells = plots.phase_cells(_phase_rows())
    fig = plots.phase_diagram_cells(cells, reference={32: (0.3, 0.5), 64: (0.3, 0.5), 512: (0.8, 1.0)})
    gs, share = fig.data[0], fig.data[1]
    assert list(gs.y) == ["32", "64"] and list(gs.x) == [0.0, 0.5, 1.0]
    assert gs.z[0][1] == pytest.approx(0.8) and share.z[1][2] == pytest.approx(2 / 3)
    assert gs.text[0][0] == "0.990<br>n=3" and share.text[1][0] == "C1 M1 N1"
    ours = {t.name: t for t in fig.data[2:4]}
    assert list(ours["our boundary (gs)"].y) == ["32", "64"] and list(ours["our boundary (gs)"].x) == [0.25, 0.75]
    paper = [t for t in fig.data if t.name == "paper's boundary"]
    assert len(paper) == 2  # width 512 is not a row of this diagram: not drawn
    with pytest.raises(InterpError, match="phase_cells"):
        plots.phase_diagram_cells(_phase_rows())


def test_phase_diagram_cells_named_rows():
    rows = [{**r, "row": f"{r['d_model']} lr {lr}"} for lr in ("1e-2", "3e-3") for r in _phase_rows() if r["d_model"] == 32]
    cells = plots.phase_cells(rows, y="row")
    order = ["32 lr 1e-2", "32 lr 3e-3"]  # sorted() would give the same here; reversed shows the order is used
    fig = plots.phase_diagram_cells(cells, y="row", y_order=order[::-1], reference={"32 lr 3e-3": (0.3, 0.5)})
    assert list(fig.data[0].y) == order[::-1] and len([t for t in fig.data if t.name == "paper's boundary"]) == 1
    with pytest.raises(InterpError, match="misses rows"):
        plots.phase_diagram_cells(cells, y="row", y_order=order[:1])


def test_phase_diagram_script_table(tmp_path, monkeypatch):
    """scripts/phase_diagram.py table on synthetic sweep directories: the boundary interval per width
    (a width run only at α >= 0.6 has no lower end), the paper comparison, and a variant recipe kept apart."""
    import importlib.util
    import json
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "phase_diagram.py"
    spec = importlib.util.spec_from_file_location("phase_diagram_script", path)
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, script)  # dataclasses look their module up there
    spec.loader.exec_module(script)
    runs = tmp_path / "runs"

    def write(name, rows):
        (runs / name).mkdir(parents=True)
        (runs / name / "results.json").write_text(json.dumps(rows))

    base = {"lr": 0.01, "step": script.RECIPE["steps"], "seed": 0, "data_seed": 0}
    write("w64_s0", [{**r, **base} for r in _phase_rows() if r["d_model"] == 64])  # boundary 0.5-1 (paper 0.3-0.5)
    write("w256_s0_a0.6-1", [{**base, "d_model": 256, "attn_rate": a, "classify.label": "clock",
                              "classify.gradient_symmetricity": 0.5} for a in (0.6, 1.0)])
    write("w32_s0_lr0.003_steps1500", [{**r, **base, "lr": 0.003, "step": 1500} for r in _phase_rows() if r["d_model"] == 32])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    script.table(runs)
    doc = (tmp_path / "docs" / "phase_diagram.md").read_text()
    assert "| 64 | 9 (8) | 0.5–1 | 0.5–1 | 0.3–0.5 | no: later |" in doc
    assert "| 256 | 2 (2) | ≤ 0.6 (lower α not run) |" in doc and doc.count("| 32 |") == 4  # variant: 1 boundary + 3 cells
    assert "Width 32 again at lr 0.003 × 1500 steps" in doc
    csv_rows = (tmp_path / "docs" / "phase_diagram.csv").read_text().splitlines()
    assert len(csv_rows) == 1 + 9 + 2 + 9
