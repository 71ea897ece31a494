"""Plotly figures of the probes and progress measures. Each function takes a probe / progress
result (no model is run here) and returns a `go.Figure`; nothing is shown or written."""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp import fourier
from interp.errors import InterpError
from interp.probes import AttentionProbe, EmbeddingProbe, LogitProbe, NeuronProbe
from interp.progress import Progress


class PlotError(InterpError, ValueError):
    """A figure was asked of something it cannot draw."""


def _check(obj, kind: type, fn: str):
    if not isinstance(obj, kind):
        raise PlotError(f"plots.{fn} needs a {kind.__name__} (from interp.{kind.__module__.split('.')[-1]}), "
                        f"got {type(obj).__name__}")


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = max(1, min(n, max_cols))
    return math.ceil(max(n, 1) / cols), cols


def _heatmaps(maps, titles: list[str], title: str, x: str, y: str, colorscale="Viridis", zmid=None) -> go.Figure:
    """One heat map per entry of maps [n, rows, cols] in a grid, shared colour scale."""
    rows, cols = _grid(len(titles))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.04, vertical_spacing=0.08)
    lo, hi = float(maps.min()), float(maps.max())
    if zmid is not None:
        lo, hi = -max(abs(lo), abs(hi)), max(abs(lo), abs(hi))
    for i, m in enumerate(maps):
        fig.add_trace(go.Heatmap(z=m.tolist(), zmin=lo, zmax=hi, colorscale=colorscale, showscale=i == 0), row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y, autorange="reversed")
    return fig.update_layout(title=title, height=300 * rows + 80, width=300 * cols + 120)


def embedding_norms(probe: EmbeddingProbe) -> go.Figure:
    """Bar chart of the norm of each Fourier component of W_E[:p]; key frequencies highlighted."""
    _check(probe, EmbeddingProbe, "embedding_norms")
    p = probe.component_norms.shape[0]
    names = fourier.component_names(p)
    keys = {c for k in probe.key_freqs for c in fourier.freq_components(p, k)}
    colors = ["crimson" if i in keys else "steelblue" for i in range(p)]
    fig = go.Figure(go.Bar(x=names, y=probe.component_norms.tolist(), marker_color=colors))
    return fig.update_layout(title=f"W_E in the Fourier basis (key frequencies {probe.key_freqs})",
                             xaxis_title="component", yaxis_title="norm", xaxis_tickangle=-60)


def circles(probe: EmbeddingProbe) -> go.Figure:
    """Per key frequency, each token's embedding on the (cos k, sin k) directions, labelled by token."""
    _check(probe, EmbeddingProbe, "circles")
    if not probe.key_freqs:
        raise PlotError("circles: the probe has no key frequencies (pass freqs= to probes.embedding)")
    rows, cols = _grid(len(probe.key_freqs))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"frequency {k}" for k in probe.key_freqs])
    for i, pts in enumerate(probe.circles):
        tokens = [str(t) for t in range(pts.shape[0])]
        fig.add_trace(go.Scatter(x=pts[:, 0].tolist(), y=pts[:, 1].tolist(), mode="markers+text", text=tokens,
                                 textposition="top center", marker=dict(color=list(range(len(tokens))),
                                 colorscale="Twilight"), showlegend=False), row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(title_text="cos k")
    fig.update_yaxes(title_text="sin k")
    return fig.update_layout(title="Token embeddings on each key frequency's (cos, sin) plane",
                             height=350 * rows + 80, width=350 * cols + 80)


def attention_maps(probe: AttentionProbe, to: str = "a", spectrum: bool = False) -> go.Figure:
    """Heat map per head of the attention from the last position to `to` ("a" or "b") over (a, b),
    or of its 2-D Fourier spectrum."""
    _check(probe, AttentionProbe, "attention_maps")
    if to not in ("a", "b"):
        raise PlotError(f"attention_maps: to must be 'a' or 'b', got {to!r}")
    maps = (probe.spectrum_a if to == "a" else probe.spectrum_b) if spectrum else (probe.to_a if to == "a" else probe.to_b)
    what = "2-D spectrum of " if spectrum else ""
    axes = ("b component", "a component") if spectrum else ("b", "a")
    return _heatmaps(maps, [f"head {h}" for h in range(maps.shape[0])], f"{what}attention from the last position to {to}",
                     *axes, colorscale="RdBu" if spectrum else "Viridis", zmid=0 if spectrum else None)


def neuron_maps(probe: NeuronProbe, neurons: list[int] | None = None, spectrum: bool = False) -> go.Figure:
    """Heat maps of chosen neurons' activations over (a, b) (default: the first neuron of each
    cluster), or their 2-D spectra."""
    _check(probe, NeuronProbe, "neuron_maps")
    d_mlp = probe.maps.shape[0]
    if neurons is None:
        neurons = [int(v[0]) for v in probe.clusters.values()][:8] or list(range(min(4, d_mlp)))
    bad = [n for n in neurons if not 0 <= n < d_mlp]
    if bad or not neurons:
        raise PlotError(f"neuron_maps: neuron indices must be in 0..{d_mlp - 1}, got {bad or neurons}")
    maps = (probe.spectra if spectrum else probe.maps)[neurons]
    titles = [f"neuron {n} (freq {int(probe.freq[n]) or '-'})" for n in neurons]
    axes = ("b component", "a component") if spectrum else ("b", "a")
    return _heatmaps(maps, titles, "Neuron " + ("spectra" if spectrum else "activations") + " at the last position",
                     *axes, colorscale="RdBu" if spectrum else "Viridis", zmid=0 if spectrum else None)


def neuron_clusters(probe: NeuronProbe) -> go.Figure:
    """Number of neurons per frequency cluster, plus those below the FVE threshold."""
    _check(probe, NeuronProbe, "neuron_clusters")
    sizes = probe.cluster_sizes
    x = [f"freq {k}" for k in sizes] + ["unassigned"]
    y = list(sizes.values()) + [probe.n_unassigned]
    fig = go.Figure(go.Bar(x=x, y=y, text=y, textposition="outside",
                           marker_color=["steelblue"] * len(sizes) + ["lightgray"]))
    return fig.update_layout(title=f"MLP neurons by frequency (FVE >= {probe.threshold:g})",
                             xaxis_title="cluster", yaxis_title="neurons")


def logit_spectrum(probe: LogitProbe) -> go.Figure:
    """Norm over outputs c of the logits' 2-D Fourier transform over (a, b): a [p, p] heat map."""
    _check(probe, LogitProbe, "logit_spectrum")
    norms = probe.fourier.norm(dim=-1)
    names = fourier.component_names(norms.shape[0])
    fig = go.Figure(go.Heatmap(z=norms.tolist(), x=names, y=names, colorscale="Viridis"))
    fig.update_yaxes(autorange="reversed", title_text="a component")
    return fig.update_layout(title=f"Logits in the 2-D Fourier basis (clock terms of {probe.key_freqs}: "
                                   f"{100 * probe.fve:.1f}% of variance)", xaxis_title="b component",
                             height=700, width=760)


_PHASES = (("memorisation", "rgba(99,110,250,0.10)"), ("circuit formation", "rgba(239,85,59,0.10)"),
           ("clean-up", "rgba(0,204,150,0.12)"))


def progress_curves(prog: Progress) -> go.Figure:
    """Losses (log scale), Gini coefficients and total squared weights over training, with the
    phases found by `progress.detect_phases` shaded."""
    _check(prog, Progress, "progress_curves")
    steps = prog.steps.tolist()
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=["loss", "Gini of Fourier norms", "sum of squared weights"])
    for name in ("train_loss", "test_loss", "restricted_loss", "excluded_loss"):
        fig.add_trace(go.Scatter(x=steps, y=getattr(prog, name).tolist(), name=name.replace("_", " ")), row=1, col=1)
    for name in ("gini_W_E", "gini_W_L"):
        fig.add_trace(go.Scatter(x=steps, y=getattr(prog, name).tolist(), name=name.replace("_", " ", 1)), row=2, col=1)
    fig.add_trace(go.Scatter(x=steps, y=prog.sum_sq_weights.tolist(), name="sum sq weights"), row=3, col=1)
    ph = prog.phases
    # a clean-up that has begun but not settled by the last snapshot is shaded to the end
    end = ph.cleanup_end if ph.cleanup_end is not None or ph.circuit_formation_end is None else steps[-1]
    bounds = [steps[0], ph.memorisation_end, ph.circuit_formation_end, end]
    for (label, color), x0, x1 in zip(_PHASES, bounds, bounds[1:]):
        if x0 is not None and x1 is not None and x1 > x0:
            fig.add_vrect(x0=x0, x1=x1, fillcolor=color, line_width=0, annotation_text=label,
                          annotation_position="top left", row="all", col=1)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_xaxes(title_text="step", row=3, col=1)
    return fig.update_layout(title=f"Progress measures (key frequencies {prog.key_freqs})", height=850)
