"""Plotly figures of the probes and progress measures. Each function takes a probe / progress
result (no model is run here) and returns a `go.Figure`; nothing is shown or written."""

from __future__ import annotations

import math
import statistics

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp import fourier
from interp.errors import InterpError
from interp.probes import AttentionProbe, EmbeddingProbe, LogitProbe, NeuronProbe
from interp.progress import Phases, Progress


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
# Phase names run down the left edge of their band: side by side they overlap when a phase is short.
_PHASE_LABEL = dict(annotation_position="top left", annotation_textangle=-90, annotation_font_size=11)


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
            fig.add_vrect(x0=x0, x1=x1, fillcolor=color, line_width=0, annotation_text=label, **_PHASE_LABEL,
                          row="all", col=1)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_xaxes(title_text="step", row=3, col=1)
    return fig.update_layout(title=f"Progress measures (key frequencies {prog.key_freqs})", height=850)


# ---- training curves, circles over training, clock vs pizza, phase diagrams -------------------------
def _shade_phases(fig: go.Figure, phases, last_step: int, rows: int) -> None:
    end = phases.cleanup_end if phases.cleanup_end is not None or phases.circuit_formation_end is None else last_step
    bounds = [0, phases.memorisation_end, phases.circuit_formation_end, end]
    for (label, color), x0, x1 in zip(_PHASES, bounds, bounds[1:]):
        if x0 is not None and x1 is not None and x1 > x0:
            for r in range(1, rows + 1):  # the label once, on the top panel (plotly writes "new text" for None)
                label_kw = dict(annotation_text=label, **_PHASE_LABEL) if r == 1 else {}
                fig.add_vrect(x0=x0, x1=x1, fillcolor=color, line_width=0, row=r, col=1, **label_kw)


def loss_curves(history: list[dict], phases=None, title: str = "Training curves") -> go.Figure:
    """Train and test loss (log scale) and accuracy from a run's history (`TrainResult.history` or
    its history.json rows), with the phases of `progress.detect_phases` shaded when given."""
    if not isinstance(history, (list, tuple)) or not history or not all(
            isinstance(r, dict) and {"step", "train_loss", "test_loss"} <= set(r) for r in history):
        raise PlotError("loss_curves needs a non-empty list of history rows with step, train_loss and test_loss")
    steps = [r["step"] for r in history]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, subplot_titles=["loss", "accuracy"])
    colors = {"train": "#636efa", "test": "#ef553b"}
    for split in ("train", "test"):
        fig.add_trace(go.Scatter(x=steps, y=[r[f"{split}_loss"] for r in history], name=f"{split} loss",
                                 line=dict(color=colors[split])), row=1, col=1)
        if all(f"{split}_acc" in r for r in history):
            fig.add_trace(go.Scatter(x=steps, y=[r[f"{split}_acc"] for r in history], name=f"{split} accuracy",
                                     line=dict(color=colors[split], dash="dot")), row=2, col=1)
    if phases is not None:
        _check(phases, Phases, "loss_curves (phases)")
        _shade_phases(fig, phases, steps[-1], 2)
    fig.update_yaxes(type="log", title_text="cross-entropy", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", range=[0, 1.05], row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    return fig.update_layout(title=title, height=600)


def circles_over_training(snapshots: list[EmbeddingProbe], steps: list[int]) -> go.Figure:
    """A grid of embedding circles: one row per snapshot (`probes.embedding(model_at_step, freqs=keys)`
    with the same key frequencies for all), one column per key frequency."""
    if not snapshots or len(snapshots) != len(steps):
        raise PlotError("circles_over_training needs one EmbeddingProbe per step (and at least one)")
    for s in snapshots:
        _check(s, EmbeddingProbe, "circles_over_training")
    keys = snapshots[0].key_freqs
    if not keys or any(s.key_freqs != keys for s in snapshots):
        raise PlotError("circles_over_training: probe every snapshot with the same, non-empty freqs= "
                        "(e.g. the final model's key frequencies)")
    rows, cols = len(snapshots), len(keys)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.03, vertical_spacing=0.04,
                        subplot_titles=[f"step {st}, frequency {k}" for st in steps for k in keys])
    for r, probe in enumerate(snapshots):
        for c, pts in enumerate(probe.circles):
            n = pts.shape[0]
            fig.add_trace(go.Scatter(x=pts[:, 0].tolist(), y=pts[:, 1].tolist(), mode="markers",
                                     text=[f"token {t}" for t in range(n)], hoverinfo="text",
                                     marker=dict(color=list(range(n)), colorscale="Twilight", size=5),
                                     showlegend=False), row=r + 1, col=c + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, scaleanchor=None)
    return fig.update_layout(title="The embedding on each key frequency's (cos, sin) plane over training "
                                   "(colour = token)", height=230 * rows + 100, width=230 * cols + 120)


def sum_difference_maps(maps: dict[str, "object"], title: str | None = None) -> go.Figure:
    """Heat maps of `circles.sum_difference_table` per model ({name: M [p_s, p_d]}): the correct
    logit by (a + b) mod p (rows) and (a - b) mod p (columns). A clock is constant along each
    row; a pizza varies with a - b."""
    if not isinstance(maps, dict) or not maps:
        raise PlotError("sum_difference_maps needs a dict {name: [p, p] table}")
    names = list(maps)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.06)
    for i, name in enumerate(names):
        M = maps[name]
        fig.add_trace(go.Heatmap(z=M.tolist(), colorscale="Viridis", showscale=False), row=1, col=i + 1)
    fig.update_xaxes(title_text="(a - b) mod p")
    fig.update_yaxes(title_text="(a + b) mod p", autorange="reversed")
    return fig.update_layout(title=title or "Correct logit by sum (rows) and difference (columns)",
                             height=420, width=380 * len(names) + 100)


def isolated_circles(circles: list, title: str = "Isolated circles") -> go.Figure:
    """The token embeddings on each isolated circle's plane (`circles.isolate_circles`, by principal
    components or by frequency), titled with its frequency and the re-run model's GS, DI and template fits."""
    from interp.circles import IsolatedCircle

    if not circles:
        raise PlotError("isolated_circles needs at least one IsolatedCircle")
    for c in circles:
        _check(c, IsolatedCircle, "isolated_circles")
    titles = [(f"PC {c.components[0] + 1}-{c.components[1] + 1}: freq {c.frequency}" if c.components else
               f"frequency {c.frequency}") + f"<br>GS {c.gradient_symmetricity:.2f}, DI {c.distance_irrelevance:.2f}, "
              f"pizza {c.pizza_fve:.2f} / clock {c.clock_fve:.2f}" for c in circles]
    rows, cols = _grid(len(circles))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles)
    for i, c in enumerate(circles):
        n = c.points.shape[0]
        fig.add_trace(go.Scatter(x=c.points[:, 0].tolist(), y=c.points[:, 1].tolist(), mode="markers+text",
                                 text=[str(t) for t in range(n)], textposition="top center",
                                 marker=dict(color=list(range(n)), colorscale="Twilight"), showlegend=False),
                      row=i // cols + 1, col=i % cols + 1)
    fig.update_annotations(font_size=11)
    return fig.update_layout(title=title, height=360 * rows + 100, width=340 * cols + 80)


def circle_panels(circles: list, labels: list[str] | None = None, title: str = "Each circle alone") -> go.Figure:
    """Two rows, one column per isolated circle (`circles.isolate_circles(model, frequencies=...)`):
    the tokens on the circle's embedding plane, and the re-run model's correct logit by (a + b) mod p
    (rows) and (a - b) mod p (columns), the map distance irrelevance summarises: flat along a - b
    (each row one colour) for a clock, banded along a - b for a pizza. `labels`: the classifier's
    label of each circle, shown in its title."""
    from interp.circles import IsolatedCircle, sum_difference_table

    if not circles:
        raise PlotError("circle_panels needs at least one IsolatedCircle")
    for c in circles:
        _check(c, IsolatedCircle, "circle_panels")
        if c.table is None:
            raise PlotError("circle_panels needs circles measured with their logit table (circles.isolate_circles)")
    labels = labels or [""] * len(circles)
    if len(labels) != len(circles):
        raise PlotError(f"circle_panels: {len(labels)} labels for {len(circles)} circles")
    n = len(circles)
    titles = [f"frequency {c.frequency}{': ' + lab if lab else ''}<br>DI {c.distance_irrelevance:.2f}, "
              f"pizza {c.pizza_fve:.2f} / clock {c.clock_fve:.2f}" for c, lab in zip(circles, labels)]
    fig = make_subplots(rows=2, cols=n, subplot_titles=titles + [f"correct logit, circle {c.frequency} alone" for c in circles],
                        vertical_spacing=0.14, horizontal_spacing=0.04)
    for i, c in enumerate(circles):
        p = c.points.shape[0]
        fig.add_trace(go.Scatter(x=c.points[:, 0].tolist(), y=c.points[:, 1].tolist(), mode="markers",
                                 text=[f"token {t}" for t in range(p)], hoverinfo="text",
                                 marker=dict(color=list(range(p)), colorscale="Twilight", size=5), showlegend=False),
                      row=1, col=i + 1)
        M = sum_difference_table(c.table)
        fig.add_trace(go.Heatmap(z=M.tolist(), colorscale="Viridis", showscale=False,
                                 hovertemplate="a+b=%{y}, a-b=%{x}: %{z:.2f}<extra></extra>"), row=2, col=i + 1)
        fig.update_xaxes(title_text="(a - b) mod p", row=2, col=i + 1)
    fig.update_xaxes(showticklabels=False, row=1)
    fig.update_yaxes(showticklabels=False, row=1)
    fig.update_yaxes(title_text="(a + b) mod p", autorange="reversed", row=2, col=1)
    fig.update_yaxes(autorange="reversed", row=2)
    fig.update_annotations(font_size=11)
    return fig.update_layout(title=title, height=640, width=260 * n + 120)


_LABEL_COLORS = {"pizza": "#ef553b", "clock": "#636efa", "mixed": "#00a08a", "ambiguous": "#ab63fa",
                 "non-generalizing": "#b0b0b0"}


def phase_diagram(rows: list[dict], x: str = "attn_rate", y: str = "d_model", color: str = "classify.label",
                  title: str | None = None) -> go.Figure:
    """One marker per run of a sweep table (`SweepResult.rows` / results.json): `x` and `y` are grid
    columns, `color` the column to colour by, categorical (the classification label) or numeric
    (e.g. "classify.gradient_symmetricity"). Runs sharing an (x, y) cell (seeds) sit side by side.
    The y axis is logarithmic when y is a width."""
    if not rows or not all(isinstance(r, dict) and x in r and y in r for r in rows):
        raise PlotError(f"phase_diagram needs sweep rows with columns {x!r} and {y!r}")
    if not any(color in r for r in rows):
        raise PlotError(f"phase_diagram: no row has the column {color!r} (was the sweep classified?)")
    xs = sorted({r[x] for r in rows})
    dx = min((b - a for a, b in zip(xs, xs[1:])), default=1.0) * 0.25
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r[x], r[y]), []).append(r)
    placed = []  # (x position, row)
    for (cx, _), members in cells.items():
        n = len(members)
        placed += [(cx + dx * ((i - (n - 1) / 2) / max(n - 1, 1) if n > 1 else 0), m) for i, m in enumerate(members)]

    def hover(r):
        keys = [k for k in ("name", "classify.label", "classify.gradient_symmetricity", "classify.distance_irrelevance",
                            "classify.circularity", "test_acc") if k in r]
        return "<br>".join(f"{k}: {r[k]:.3f}" if isinstance(r[k], float) else f"{k}: {r[k]}" for k in keys)

    fig = go.Figure()
    values = [r.get(color) for _, r in placed]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None):
        known = [v for v in values if v is not None]
        unit = dict(cmin=0.0, cmax=1.0) if known and 0 <= min(known) and max(known) <= 1 else {}  # scores in [0, 1]
        fig.add_trace(go.Scatter(x=[px for px, _ in placed], y=[r[y] for _, r in placed], mode="markers",
                                 text=[hover(r) for _, r in placed], hoverinfo="text",
                                 marker=dict(size=16, color=values, colorscale="RdBu_r", showscale=True,
                                             colorbar=dict(title=color.split(".")[-1]), line=dict(width=1, color="black"),
                                             **unit)))
    else:
        for label in dict.fromkeys(str(v) for v in values):
            pts = [(px, r) for px, r in placed if str(r.get(color)) == label]
            fig.add_trace(go.Scatter(x=[px for px, _ in pts], y=[r[y] for _, r in pts], mode="markers", name=label,
                                     text=[hover(r) for _, r in pts], hoverinfo="text",
                                     marker=dict(size=16, color=_LABEL_COLORS.get(label), line=dict(width=1, color="black"))))
    ys = sorted({r[y] for r in rows})
    log_y = y in ("d_model", "d_mlp") and all(isinstance(v, (int, float)) and v > 0 for v in ys)
    fig.update_xaxes(title_text={"attn_rate": "attention rate α"}.get(x, x), tickvals=xs)
    fig.update_yaxes(title_text={"d_model": "width (d_model)"}.get(y, y), tickvals=ys, type="log" if log_y else None)
    return fig.update_layout(title=title or f"Phase diagram: {color.split('.')[-1]} by {x} and {y}", height=480,
                             width=720)



def verdicts_over_training(runs: dict, title: str = "The verdict over training") -> go.Figure:
    """Gradient symmetricity, distance irrelevance and the template margin of `interp.classify` over
    a run's snapshots, one line per model; markers coloured by the label at each step.
    `runs`: {name: (steps, [Classification, ...])}."""
    from interp.classifier import Classification

    if not isinstance(runs, dict) or not runs:
        raise PlotError("verdicts_over_training needs {name: (steps, [Classification, ...])}")
    for name, value in runs.items():
        if not (isinstance(value, (tuple, list)) and len(value) == 2 and len(value[0]) == len(value[1]) > 0
                and all(isinstance(c, Classification) for c in value[1])):
            raise PlotError(f"verdicts_over_training: {name!r} needs (steps, classifications) of equal, non-zero length")
    panels = [("gradient symmetricity", lambda c: c.gradient_symmetricity),
              ("distance irrelevance", lambda c: c.distance_irrelevance),
              ("pizza - clock template FVE", lambda c: c.pizza_template_fve - c.clock_template_fve)]
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07, subplot_titles=[t for t, _ in panels])
    dashes = ["solid", "dash", "dot", "dashdot"]
    shown = set()
    for i, (name, (steps, cls)) in enumerate(runs.items()):
        for r, (_, get) in enumerate(panels):
            fig.add_trace(go.Scatter(x=list(steps), y=[get(c) for c in cls], mode="lines", name=name, legendgroup=name,
                                     showlegend=r == 0, line=dict(color="gray", dash=dashes[i % len(dashes)])),
                          row=r + 1, col=1)
            for label in dict.fromkeys(c.label for c in cls):
                pts = [(s, get(c)) for s, c in zip(steps, cls) if c.label == label]
                fig.add_trace(go.Scatter(x=[s for s, _ in pts], y=[v for _, v in pts], mode="markers", name=label,
                                         legendgroup=f"label {label}", showlegend=label not in shown,
                                         marker=dict(size=8, color=_LABEL_COLORS.get(label, "black")),
                                         hovertext=[f"{name}: {label}" for _ in pts]), row=r + 1, col=1)
                shown.add(label)
    fig.add_hline(y=0, line_width=1, line_color="lightgray", row=3, col=1)
    fig.update_xaxes(title_text="step", row=3, col=1)
    return fig.update_layout(title=title, height=750)


# ---- the phase diagram per cell: medians and label shares over seeds --------------------------------
PHASE_LABELS = ("pizza", "clock", "mixed", "ambiguous", "non-generalizing")
CLOCK_LIKE = ("clock", "mixed")  # a mixed model holds at least one clock circle
GS_PIZZA_CUT = 0.98  # the paper's pizza criterion: GS >= 0.98 (Zhong et al. 2023; classifier.GS_PIZZA)


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    """q25, median, q75 of a non-empty list (linear interpolation, numpy's default)."""
    return (values[0],) * 3 if len(values) < 2 else tuple(statistics.quantiles(values, n=4, method="inclusive"))


def phase_cells(rows: list[dict], x: str = "attn_rate", y: str = "d_model") -> list[dict]:
    """One summary per (x, y) cell of a classified sweep table (`SweepResult.rows` / results.json),
    sorted by (y, x): n runs, label counts and shares (labels outside PHASE_LABELS count as "other"),
    the clock-like share (clock + mixed), and GS / DI (largest-wrong) q25, median, q75 over the runs
    that generalise (label not non-generalizing; the paper's table keeps validation accuracy > 0.99 too)."""
    if not rows or not all(isinstance(r, dict) and x in r and y in r and "classify.label" in r for r in rows):
        raise PlotError(f"phase_cells needs classified sweep rows with columns {x!r}, {y!r} and 'classify.label'")
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r[y], r[x]), []).append(r)
    out = []
    for (cy, cx), members in sorted(cells.items()):
        labels = [m["classify.label"] if m["classify.label"] in PHASE_LABELS else "other" for m in members]
        counts = {lab: labels.count(lab) for lab in (*PHASE_LABELS, "other")}
        cell = {x: cx, y: cy, "n": len(members), "counts": counts,
                "shares": {k: v / len(members) for k, v in counts.items()},
                "clock_like_share": sum(counts[k] for k in CLOCK_LIKE) / len(members)}
        gen = [m for m, lab in zip(members, labels) if lab != "non-generalizing"]
        cell["n_generalizing"] = len(gen)
        for key, col in (("gs", "classify.gradient_symmetricity"), ("di", "classify.distance_irrelevance_max_wrong")):
            vals = [m[col] for m in gen if isinstance(m.get(col), (int, float))]
            cell.update(zip((f"{key}_q25", f"{key}_median", f"{key}_q75"), _quartiles(vals) if vals else (None,) * 3))
        out.append(cell)
    return out


def phase_boundary(cells: list[dict], by: str = "gs", x: str = "attn_rate", y: str = "d_model") -> dict:
    """Per y (width): the smallest x (α) from which on every cell is past the pizza phase, or None.
    by="gs": the cell's median GS < GS_PIZZA_CUT (the paper's own pizza criterion, so the number is
    comparable with its diagram); by="label": clock-like labels (clock + mixed) are more than half the
    cell's runs. "From which on" (this α and all larger ones), not "first": one noisy cell of few seeds
    below the boundary does not move it."""
    if by not in ("gs", "label"):
        raise PlotError(f"phase_boundary: by must be 'gs' or 'label', got {by!r}")

    def past(c) -> bool:
        if by == "gs":
            return c["gs_median"] is not None and c["gs_median"] < GS_PIZZA_CUT
        return c["clock_like_share"] > 0.5

    out = {}
    for cy in dict.fromkeys(c[y] for c in cells):
        row = sorted((c for c in cells if c[y] == cy), key=lambda c: c[x])
        boundary = None
        for c in reversed(row):
            if not past(c):
                break
            boundary = c[x]
        out[cy] = boundary
    return out


def phase_diagram_cells(cells: list[dict], reference: dict | None = None, x: str = "attn_rate", y: str = "d_model",
                        title: str = "Phase diagram: attention rate × width", y_order: list | None = None) -> go.Figure:
    """Two heat maps over the cells of `phase_cells` (x = α, y = width, one row per width): the median
    gradient symmetricity (text: median and n) and the clock-like share (text: label counts, P pizza,
    C clock, M mixed, A ambiguous, N non-generalizing). Our boundaries (phase_boundary, by GS and by
    label) are drawn as markers; `reference` {y value: (lo, hi)} (e.g. the paper's) as a bar on the GS
    map. Rows go bottom to top in sorted order, or in `y_order` (e.g. for string row names)."""
    if not cells or not all(isinstance(c, dict) and {x, y, "n", "counts", "gs_median"} <= set(c) for c in cells):
        raise PlotError("phase_diagram_cells needs the cells of plots.phase_cells")
    xs = sorted({c[x] for c in cells})
    present = {c[y] for c in cells}
    ys = [v for v in y_order if v in present] if y_order is not None else sorted(present)
    if len(ys) != len(present):
        raise PlotError(f"phase_diagram_cells: y_order misses rows {sorted(map(str, present - set(ys)))}")
    at = {(c[y], c[x]): c for c in cells}
    ycat = [str(v) for v in ys]  # categorical rows: equal height per width

    def grid(get, missing=None):
        return [[get(at[(cy, cx)]) if (cy, cx) in at else missing for cx in xs] for cy in ys]

    gs = grid(lambda c: c["gs_median"])
    gs_text = grid(lambda c: "–" if c["gs_median"] is None else f"{c['gs_median']:.3f}<br>n={c['n']}", "")
    share = grid(lambda c: c["clock_like_share"])
    letters = {"pizza": "P", "clock": "C", "mixed": "M", "ambiguous": "A", "non-generalizing": "N", "other": "?"}
    share_text = grid(lambda c: " ".join(f"{letters[k]}{v}" for k, v in c["counts"].items() if v), "")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.14,
                        subplot_titles=["median gradient symmetricity (pizza ≥ 0.98)", "share clock-like (clock + mixed)"])
    fig.add_trace(go.Heatmap(x=xs, y=ycat, z=gs, text=gs_text, texttemplate="%{text}", zmin=0.3, zmax=1.0,
                             colorscale="RdBu_r", colorbar=dict(title="GS", x=0.43), name="GS"), row=1, col=1)
    fig.add_trace(go.Heatmap(x=xs, y=ycat, z=share, text=share_text, texttemplate="%{text}", zmin=0.0, zmax=1.0,
                             colorscale="Blues", colorbar=dict(title="share", x=1.0), name="clock-like"), row=1, col=2)
    for by, col, symbol in (("gs", 1, "triangle-right"), ("label", 2, "triangle-right")):
        b = {k: v for k, v in phase_boundary(cells, by, x, y).items() if v is not None}
        fig.add_trace(go.Scatter(x=[v - 0.5 * (xs[1] - xs[0] if len(xs) > 1 else 0) for v in b.values()],
                                 y=[str(k) for k in b], mode="markers", name=f"our boundary ({by})",
                                 marker=dict(symbol=symbol, size=14, color="gold", line=dict(width=1, color="black"))),
                      row=1, col=col)
    for i, (width, (lo, hi)) in enumerate((reference or {}).items()):
        if str(width) in ycat:
            fig.add_trace(go.Scatter(x=[lo, hi], y=[str(width)] * 2, mode="lines", name="paper's boundary",
                                     legendgroup="paper", showlegend=i == 0, line=dict(color="black", width=5)),
                          row=1, col=1)
    fig.update_xaxes(title_text={"attn_rate": "attention rate α"}.get(x, x), tickvals=xs)
    fig.update_yaxes(type="category", categoryarray=ycat)
    fig.update_yaxes(title_text={"d_model": "width (d_model)"}.get(y, y), row=1, col=1)
    fig.update_yaxes(showticklabels=False, row=1, col=2)  # the same rows as the left map
    return fig.update_layout(title=title, height=140 * len(ys) + 220, width=1200,
                             legend=dict(orientation="h", y=-0.2))
