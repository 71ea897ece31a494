"""One self-contained HTML page per model: the verdict, the scores beside their reference ranges and
the figures of `interp.plots`. plotly.js is inlined once, so the page opens without a network.

    interp.write_report("checkpoints/tiny")              # -> checkpoints/tiny/report.html
    interp.write_report("model.pt", config="model.json") # -> model.report.html beside the file
    rep = interp.report.render(model)                    # Report: html, classification, figures, notes

For a run directory the page adds the training curves (history.json) and the progress measures
with their phases (`progress.run_progress` over at most MAX_SNAPSHOTS snapshots, for speed).
"""

from __future__ import annotations

import html
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from interp.display import tqdm
from interp import checkpoints as ck
from interp import plots, probes, tasks
from interp.formats import load
from interp.errors import InterpError

from interp import classifier as C
from interp.device import analysis_device, to_device

# Zhong et al. 2023 (REFERENCES §2): Table 1's Model B (clock) and Model A (pizza), and the
# circularity above which their phase diagrams count an embedding as clean circles.
PAPER = {"gradient_symmetricity": (0.33, 0.99), "distance_irrelevance": (0.85, 0.17)}
CIRCULARITY_CLEAN = 0.995
# Progress measures cost ~0.5 s a snapshot at p = 113: a run with hundreds stays under ~15 s.
MAX_SNAPSHOTS = 20
# Heat maps: a handful of neurons keeps the page small (each p x p map is p^2 numbers).
MAX_NEURONS = 8
REPORT_NAME = "report.html"
MAX_WIDTH = 1260  # px: the page's content width (main's max-width less its padding)


class ReportError(InterpError, ValueError):
    """A report asked of something it cannot be written for."""


@dataclass
class Report:
    html: str
    classification: C.Classification
    figures: list[str]  # figure titles, in page order
    notes: list[str] = field(default_factory=list)  # what is not on the page, and why
    seconds: float = 0.0

    def write(self, out: str | Path) -> Path:
        out = Path(out)
        if out.is_dir():
            raise ReportError(f"{out}: is a directory; give the report a file name, e.g. {out / REPORT_NAME}")
        out.parent.mkdir(parents=True, exist_ok=True)
        ck.atomic_write_bytes(out, self.html.encode())
        out.chmod(0o644)  # a page to share: not the 0600 of the temporary file it was renamed from
        return out


def default_output(path: str | Path) -> Path:
    """<dir>/report.html for a directory, <stem>.report.html beside a file."""
    path = Path(path)
    return path / REPORT_NAME if path.is_dir() else path.with_name(f"{path.stem}.report.html")


def _is_run_dir(path) -> bool:
    return isinstance(path, (str, Path)) and Path(path).is_dir() and (
        (Path(path) / ck.HISTORY).exists() or bool(ck.list_snapshots(path)))


# ---- the page ------------------------------------------------------------------------------------
_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0; background: #fafafa; }
main { max-width: 1320px; margin: 0 auto; padding: 20px 28px 60px; background: #fff; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 19px; margin: 34px 0 6px; border-bottom: 1px solid #ddd; }
.meta { color: #666; font-size: 13px; } .note { color: #555; max-width: 900px; }
.verdict { display: flex; gap: 18px; align-items: center; margin: 16px 0; padding: 14px 18px; border-radius: 8px; background: #f3f4f8; }
.badge { font-size: 22px; font-weight: 600; color: #fff; padding: 6px 16px; border-radius: 6px; white-space: nowrap; }
.clock { background: #636efa; } .pizza { background: #ef553b; } .ambiguous { background: #ab63fa; } .non-generalizing { background: #888; }
.mixed { background: #00a08a; } .accompanying { background: #999; } .unclear { background: #bbb; }
.warn { padding: 10px 14px; background: #fff4e0; border-left: 4px solid #f0a020; margin: 10px 0; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { padding: 4px 12px; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } th { background: #f3f3f3; }
.tag { font-size: 12px; padding: 1px 7px; border-radius: 4px; color: #fff; }
nav { margin: 6px 0 0; font-size: 14px; } nav a { color: #3557c5; text-decoration: none; }
.figure { margin: 10px 0 18px; overflow-x: auto; }
"""


def _e(x) -> str:
    return html.escape(str(x))


def _anchor(title: str) -> str:
    return "-".join(title.lower().split())


def _tag(label: str) -> str:
    css = label if label in C.LABELS + C.CIRCLE_LABELS else ""
    return f'<span class="tag {css}" style="{"" if css else "background:#aaa"}">{_e(label)}</span>'


def _score_rows(c: C.Classification) -> list[tuple]:
    """(score, value, clock reference, pizza reference, how the verdict uses it, reads as)."""
    gs, di = c.gradient_symmetricity, c.distance_irrelevance
    (gs_b, gs_a), (di_b, di_a) = PAPER["gradient_symmetricity"], PAPER["distance_irrelevance"]
    whole = c.evidence.get("whole_model", "")
    return [
        ("accuracy (all p² pairs)", c.accuracy, "—", "—",
         f"≥ {C.ACCURACY_MIN} for any algorithm label", "solves the task" if c.accuracy >= C.ACCURACY_MIN else "does not generalize"),
        ("gradient symmetricity (GS)", gs, f"≤ {C.GS_CLOCK} (paper: {gs_b})", f"≥ {C.GS_PIZZA} (paper: {gs_a})",
         "whole-model vote", whole),
        ("distance irrelevance (DI)", di, f"≥ {C.DI_CLOCK} (paper: {di_b})", f"no bar (paper: {di_a})",
         "whole-model vote, clock side", whole),
        ("DI, largest wrong logit", c.distance_irrelevance_max_wrong, "—", "—",
         "their run table's variant; shown only", ""),
        ("clock template FVE (whole model)", c.clock_template_fve, "—", "paper, Model A: 0.75 (isolated circles)",
         "shown only: see the circles", ""),
        ("pizza template FVE (whole model)", c.pizza_template_fve, "—", "paper, Model A: 0.98 (isolated circles)",
         "shown only: see the circles", ""),
        ("exact pizza template FVE", c.pizza_exact_template_fve, "—", "high", "shown only", ""),
        ("circularity", c.circularity, f"≥ {CIRCULARITY_CLEAN} = clean circles", f"≥ {CIRCULARITY_CLEAN} = clean circles",
         "shown only (the paper's filter)", "clean circles" if c.circularity >= CIRCULARITY_CLEAN else "not clean circles"),
    ]


def _scores_table(c: C.Classification) -> str:
    head = "<tr><th>score</th><th>value</th><th>clock</th><th>pizza</th><th>in the verdict</th><th>reads as</th></tr>"
    rows = "".join(
        f"<tr><td>{_e(n)}</td><td class='num'>{v:.3f}</td><td>{_e(ck_)}</td><td>{_e(pz)}</td><td>{_e(use)}</td>"
        f"<td>{_tag(reads) if reads in ('clock', 'pizza', 'unclear') else _e(reads)}</td></tr>"
        for n, v, ck_, pz, use, reads in _score_rows(c))
    return f"<table>{head}{rows}</table>"


def _circle_table(c: C.Classification) -> str:
    if not c.circles:
        why = ("the model does not generalize" if c.label == "non-generalizing"
               else "no key frequencies: neither the embedding nor the logits have a sparse Fourier spectrum")
        return f"<p class='note'>No circles analysed: {_e(why)}.</p>"
    head = ("<tr><th>frequency k</th><th>share of W_E variance</th><th>accuracy alone</th><th>GS</th><th>DI</th>"
            "<th>DI, largest wrong</th><th>clock FVE</th><th>pizza FVE</th><th>output at</th><th>margin share</th>"
            "<th>label</th></tr>")
    rows = "".join(
        f"<tr><td class='num'>{k.frequency}</td><td class='num'>{k.variance_share:.3f}</td><td class='num'>{k.accuracy:.3f}</td>"
        f"<td class='num'>{k.gradient_symmetricity:.3f}</td><td class='num'>{k.distance_irrelevance:.3f}</td>"
        f"<td class='num'>{k.distance_irrelevance_max_wrong:.3f}</td><td class='num'>{k.clock_fve:.3f}</td>"
        f"<td class='num'>{k.pizza_fve:.3f}</td><td class='num'>{k.output_frequency} ({k.output_share:.0%})</td>"
        f"<td class='num'>{k.margin_share:+.2f}</td><td>{_tag(k.label)}</td></tr>" for k in c.circles)
    reliability = f" {_e(c.reliability[0].upper() + c.reliability[1:])}." if c.reliability else ""
    return (f"<table>{head}{rows}</table><p class='note'>Each row: the embedding kept at that frequency only (its "
            f"circle and the mean), the model re-run on all p² pairs; accuracy and GS are the re-run model's, the rest "
            f"is measured on the circle's own contribution (the re-run logits minus those of the model with no circle). "
            f"Margin share: its push on the right answer over the whole model's; mixed needs clock and pizza circles "
            f"each carrying ≥ {C.MIXED_MIN_SHARE:.2f} of the circles' margin. Pizza: pizza template ahead of the clock template "
            f"by ≥ {C.CIRCLE_MARGIN:.0%} and DI ≤ {C.CIRCLE_DI_PIZZA}; clock: DI ≥ "
            f"{C.CIRCLE_DI_CLOCK} with the pizza template not ahead by that margin; accompanying: less than {C.ACCOMPANYING_OWN_SHARE:.0%} of its logits sit at its own "
            f"frequency (it feeds the circle named under “output at”). Confidence {c.confidence:.2f}: "
            f"{_e(c.confidence_means)}.{reliability}</p>")


def _compact(fig):
    """Floats as float32 arrays, which plotly writes base64 (~5 bytes a number instead of ~18)."""
    for trace in fig.data:
        for attr in ("x", "y", "z"):
            v = getattr(trace, attr, None)
            if v is not None and not isinstance(v, str):
                a = np.asarray(v)
                if a.dtype.kind == "f":  # via None: plotly ignores a new value equal to the old one
                    setattr(trace, attr, None)
                    setattr(trace, attr, a.astype(np.float32))
    return fig


class _Page:
    """Sections of HTML, with the figures numbered in page order."""

    def __init__(self):
        self.parts: list[str] = []
        self.figures: list[str] = []
        self.sections: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    def section(self, title: str, note: str = "") -> None:
        self.add(f"<h2 id='{_anchor(title)}'>{_e(title)}</h2>" + (f"<p class='note'>{note}</p>" if note else ""))
        self.sections.append(title)

    def contents(self) -> str:
        return "<nav>" + " · ".join(f"<a href='#{_anchor(t)}'>{_e(t)}</a>" for t in self.sections) + "</nav>"

    def figure(self, fig) -> None:
        self.figures.append(fig.layout.title.text or f"figure {len(self.figures) + 1}")
        width = fig.layout.width
        if width and width > MAX_WIDTH:  # a grid of many panels: shrink it to the page, keeping its shape
            fig.update_layout(width=MAX_WIDTH, height=fig.layout.height and fig.layout.height * MAX_WIDTH / width)
        div = _compact(fig).to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{len(self.figures)}",
                                    config={"displaylogo": False})
        self.add(f"<div class='figure'>{div}</div>")


def _header(c: C.Classification, name: str) -> str:
    from interp import __version__

    m = c.model
    shape = ", ".join(f"{k} {m[k]}" for k in ("task", "p", "d_model", "n_heads", "d_mlp", "n_layers", "attn_rate") if k in m)
    if "coordinates" in m:  # sub/mul/div: every figure below is in the task's group coordinates
        shape += f" · {m['coordinates']}"
    keys = f"{c.key_frequencies} (from the {c.key_frequency_source})" if c.key_frequencies else "none"
    warn = ("<div class='warn'>This model does not solve the task, so it gets no algorithm label. The figures show "
            "what it has learned so far.</div>") if c.label == "non-generalizing" else ""
    return (f"<h1>interp report: {_e(name)}</h1><div class='meta'>{_e(c.source or 'in-memory model')} · {_e(shape)} · "
            f"interp {__version__}, {time.strftime('%Y-%m-%d %H:%M')}</div>"
            f"<div class='verdict'><span class='badge {c.label}'>{_e(c.label)}</span><div><b>confidence "
            f"{c.confidence:.2f}</b> · key frequencies {_e(keys)}<br>{_e(c.explanation)}</div></div>{warn}")


# ---- building it ---------------------------------------------------------------------------------
class _Stages:
    """A progress bar over the report's stages (the progress measures dominate for a long run)."""

    def __init__(self, n: int, show: bool):
        # disable=None: no bar when stderr is not a terminal, so errors stay one clean line there
        self.bar = tqdm(total=n, desc="report", unit="stage", disable=None if show else True, leave=False,
                        dynamic_ncols=True)
        self.started = False

    def __call__(self, name: str) -> None:
        if self.started:
            self.bar.update(1)
        self.started = True
        self.bar.set_description(f"report: {name}")

    def close(self) -> None:
        self.bar.update(self.bar.total - self.bar.n)
        self.bar.close()


def _load(path_or_model, config, device):
    """(model on the analysis device, its classification, a name for the page)."""
    if isinstance(path_or_model, (str, Path)):
        model = load(path_or_model, config, device=device)
        c = C.classify_model(model)
        fmt = model.source_format
        c.source = f"{path_or_model}" + (f" ({fmt})" if fmt else "")
        return model, c, Path(path_or_model).resolve().name
    if config is not None:
        raise ReportError("config applies to checkpoint paths; a loaded model already has its config")
    if not hasattr(path_or_model, "cfg") or not hasattr(path_or_model, "last_logits"):
        raise ReportError("a report needs a checkpoint path, a run directory or an interp model, "
                          f"got {type(path_or_model).__name__}")
    model = to_device(path_or_model, device)
    return model, C.classify_model(model), "model"


def _of_layer(layer: int, n_layers: int) -> str:
    """A section or figure title's layer suffix: none on a one-layer model (its page reads as it always did)."""
    return f", layer {layer}" if n_layers > 1 else ""


def _titled(fig, layer: int, n_layers: int):
    """The figure with its layer in the title (Report.figures then names each layer's figure)."""
    return fig.update_layout(title=(fig.layout.title.text or "") + _of_layer(layer, n_layers)) if n_layers > 1 else fig


def _model_sections(page: _Page, model, c: C.Classification, notes: list[str]) -> None:
    model = tasks.group_view(model)  # sub/mul/div: every figure in the task's group coordinates
    keys = c.key_frequencies
    emb = probes.embedding(model, freqs=keys)
    page.section("Key frequencies", "Norm of each Fourier component of the token embedding W_E; key frequencies in "
                 "red. A trained model concentrates on a few.")
    page.figure(plots.embedding_norms(emb))
    page.section("Circles", "The paper's own evidence: each circle of the embedding alone. Top: the tokens on the "
                 "circle's plane. Bottom: the re-run model's correct logit by (a + b) (rows) and (a − b) (columns), what "
                 "distance irrelevance measures: flat along a − b for a clock, banded for a pizza.")
    page.add(_circle_table(c))
    if c.circles and model.cfg.p % 2 == 0:
        notes.append(f"circle panels: the (a + b, a − b) map needs an odd modulus, the group view's is {model.cfg.p}")
    elif c.circles:
        from interp.circles import isolate_circles

        isolated = isolate_circles(model, frequencies=[k.frequency for k in c.circles])
        page.figure(plots.circle_panels(isolated, [k.label for k in c.circles]))
    page.section("Embedding circles", "Each token on its key frequency's (cos k, sin k) plane: clock and pizza both "
                 "place the tokens on circles, in order of t·k mod p.")
    if keys:
        page.figure(plots.circles(emb))
    else:
        notes.append("embedding circles: no key frequencies")
    n_layers = model.cfg.n_layers
    for layer in range(n_layers):  # every block's attention and neurons; a one-layer page is as before
        page.section("Attention" + _of_layer(layer, n_layers), "Attention from the last position to a, per head, over "
                     "all (a, b). Constant attention (attention rate 0) is the pizza regime; standard attention usually "
                     "gives clocks.")
        page.figure(_titled(plots.attention_maps(probes.attention(model, layer=layer), to="a"), layer, n_layers))
    if model.cfg.attn_only:
        notes.append("neurons: an attention-only model (attn_only) has no MLP")
    for layer in range(0 if model.cfg.attn_only else n_layers):
        neu = probes.neurons(model, layer=layer)
        page.section("Neurons" + _of_layer(layer, n_layers), "MLP neurons grouped by the frequency that explains ≥ "
                     f"{neu.threshold:g} of their activation map's variance, and the map of the first neuron of each "
                     "cluster.")
        page.figure(_titled(plots.neuron_clusters(neu), layer, n_layers))
        chosen = [int(v[0]) for v in neu.clusters.values()][:MAX_NEURONS] or list(range(min(4, neu.maps.shape[0])))
        page.figure(_titled(plots.neuron_maps(neu, neurons=chosen), layer, n_layers))
    page.section("Logit spectrum", "The logits over (a, b) in the 2-D Fourier basis, norm over outputs: the clock terms "
                 "cos(w(a + b − c)) of the key frequencies light up the cos/sin diagonal blocks.")
    page.figure(plots.logit_spectrum(probes.logits(model, freqs=keys)))


def _run_sections(page: _Page, run_dir: Path, c: C.Classification, every: int | None, notes: list[str], stage,
                  device) -> None:
    from interp.progress import run_progress

    stage("progress measures")
    prog = None
    snaps = ck.list_snapshots(run_dir)
    if len(snaps) >= 2:
        every = every or max(1, math.ceil((len(snaps) - 1) / (MAX_SNAPSHOTS - 1)))
        try:
            prog = run_progress(run_dir, freqs=c.key_frequencies or None, every=every, device=device)
        except InterpError as e:
            notes.append(f"progress measures: {e}")
    else:
        notes.append(f"progress measures: they need at least 2 snapshots, the run has {len(snaps)}")
    stage("training figures")
    page.section("Training", "Train and test loss (log scale) and accuracy from history.json"
                 + (", with the phases found from the progress measures shaded." if prog else "."))
    try:
        history = json.loads((run_dir / ck.HISTORY).read_text())
        page.figure(plots.loss_curves(history, phases=prog.phases if prog else None))
    except (OSError, ValueError, InterpError) as e:
        notes.append(f"training curves: {run_dir / ck.HISTORY}: {getattr(e, 'strerror', None) or e}")
    if prog is not None:
        shown = f"{len(prog.steps)} of {len(snaps)} snapshots" + (f", one in {every}" if every > 1 else "")
        page.section("Progress measures", "Nanda et al.'s measures over training, on the final model's key frequencies "
                     f"({shown}): restricted loss falls before the test loss does; excluded loss rises while the "
                     "circuit forms; the weights shrink during clean-up.")
        page.figure(plots.progress_curves(prog))


def render(path_or_model, config=None, *, every: int | None = None, progress: bool = False,
           device=None) -> Report:
    """Build the report of a checkpoint file, a run directory or a loaded model.

    `config`: JSON config for a foreign checkpoint (as `interp.load`); `every`: use every n-th
    snapshot for the progress measures (default: at most MAX_SNAPSHOTS); `progress`: a progress bar;
    `device` (cpu, cuda, mps): where the analyses compute (default the CPU; as `interp.classify`).
    """
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise ReportError(f"every must be a positive integer, got {every!r}")
    dev = analysis_device(device)  # an unavailable device: one line, before anything is read
    t0 = time.perf_counter()
    run_dir = Path(path_or_model) if _is_run_dir(path_or_model) else None
    stage = _Stages(5 if run_dir else 3, progress)  # classify, probes, [progress measures, training figures,] page
    try:
        stage("classify")
        model, c, name = _load(path_or_model, config, dev)
        stage("probes")
        page, notes = _Page(), []
        page.section("Scores", "Whole-model scores (Zhong et al. 2023) beside the thresholds the classifier uses and "
                     "the paper's values (Table 1: Model A pizza, Model B clock). The verdict combines the whole-model "
                     "GS/DI vote with one vote per circle (section Circles).")
        page.add(_scores_table(c))
        _model_sections(page, model, c, notes)
        if run_dir is not None:
            _run_sections(page, run_dir, c, every, notes, stage, dev)
        stage("page")
        if notes:
            page.section("Not shown")
            page.add("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    finally:
        stage.close()
    html_ = _html(name, [_header(c, name), page.contents(), *page.parts])
    return Report(html_, c, page.figures, notes, time.perf_counter() - t0)


def _html(name: str, parts: list[str]) -> str:
    from plotly.offline import get_plotlyjs

    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>interp report: {_e(name)}</title>"
            f"<style>{_CSS}</style>\n<script type='text/javascript'>{get_plotlyjs()}</script>\n</head>"
            "<body><main>\n" + "\n".join(parts) + "\n</main></body></html>\n")


def write_report(path_or_model, out: str | Path | None = None, config=None, *, every: int | None = None,
                 progress: bool = False, device=None) -> Path:
    """Write the report (see `render`) to `out`, by default <run_dir>/report.html for a run
    directory or <stem>.report.html beside a checkpoint file. Returns the path written."""
    if out is None:
        if not isinstance(path_or_model, (str, Path)):
            raise ReportError("out= is needed for a report of an in-memory model")
        out = default_output(path_or_model)
    return render(path_or_model, config, every=every, progress=progress, device=device).write(out)
