"""interp.report: one self-contained HTML page per model, and that it renders in a real browser.

The browser test opens the report in headless Chromium (Debian's `chromium`, installed by
`make test` through scripts/install_browser.sh) with a shim that turns console errors, warnings and
uncaught exceptions into tagged console lines, and counts the plotly figures that drew an SVG.
"""

import json
import re
import shutil
import subprocess

import pytest
import torch
from plotly.offline import get_plotlyjs

import interp
from interp import report
from interp.errors import CheckpointError, InterpError
from test_formats import clock_pizza_json, legacy_state

CHROMIUM = shutil.which("chromium")
C = report.C  # the interp.classify module (the package re-exports a function of that name)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "tiny"
    interp.train("tiny", out=out, progress=False, checkpoint_every=50)
    return out


@pytest.fixture(scope="module")
def written(run_dir):
    rep = report.render(run_dir)
    return rep, rep.write(report.default_output(run_dir))


def test_run_directory_report_is_one_self_contained_page(written, run_dir):
    rep, path = written
    assert path == run_dir / "report.html" and path.stat().st_mode & 0o777 == 0o644
    text = path.read_text()
    assert text.count(get_plotlyjs()[:200]) == 1  # plotly.js inlined once
    # nothing is fetched: no script with a src, no stylesheet from a URL
    assert not re.search(r"<script[^>]*\ssrc=|<link[^>]*href=[\"']?https?:", text)
    assert len(text) < 6e6
    figures = re.findall(r'class="plotly-graph-div"', text)
    assert len(figures) == len(rep.figures) == 9 and not rep.notes  # 8 + the circles figure
    assert "Training curves" in rep.figures and any(f.startswith("Progress measures") for f in rep.figures)
    assert "Each circle alone" in rep.figures
    c = rep.classification
    assert c.label in C.LABELS and f"<span class='badge {c.label}'>" in text and c.explanation in text.replace("&gt;", ">")


def test_scores_sit_beside_the_classifier_thresholds_and_the_paper(run_dir, monkeypatch):
    monkeypatch.setattr(C, "GS_PIZZA", 0.977)  # read from interp.classify, not retyped
    text = report.render(run_dir).html
    assert "≥ 0.977 (paper: 0.99)" in text and "no bar (paper: 0.17)" in text
    assert f"≤ {C.GS_CLOCK} (paper: 0.33)" in text and "0.995" in text


def test_the_circles_section_shows_each_circle_its_numbers_and_label():
    from pathlib import Path

    rep = report.render(Path(__file__).parent / "fixtures" / "pizza.safetensors")
    c = rep.classification
    assert c.circles and "Each circle alone" in rep.figures
    text = rep.html
    assert "<h2" in text and ">Circles</" in text
    for k in c.circles:  # one table row per circle: its frequency, DI and its label's tag
        assert re.search(rf"<td class='num'>{k.frequency}</td>.*?{k.distance_irrelevance:.3f}.*?tag {k.label}", text)
    assert "per-frequency" not in text.lower()  # the old template labels are gone


def test_progress_measures_use_at_most_max_snapshots(run_dir, monkeypatch):
    monkeypatch.setattr(report, "MAX_SNAPSHOTS", 4)
    rep = report.render(run_dir)
    n_snaps = len(interp.checkpoints.list_snapshots(run_dir))
    assert n_snaps > 4 and re.search(rf"\d of {n_snaps} snapshots, one in \d", rep.html)
    assert f"{n_snaps} of {n_snaps} snapshots" in report.render(run_dir, every=1).html


def test_foreign_checkpoint_gets_its_report_beside_the_file(run_dir, tmp_path):
    model = interp.load(run_dir)
    torch.save(legacy_state(model), tmp_path / "clock_pizza.pt")
    (tmp_path / "clock_pizza.json").write_text(json.dumps(clock_pizza_json(model.cfg)))
    path = report.write_report(tmp_path / "clock_pizza.pt")
    assert path == tmp_path / "clock_pizza.report.html"
    text = path.read_text()
    assert "Clock-Pizza layout" in text and "Training curves" not in text  # a file, not a run directory


def test_a_model_that_does_not_generalize_still_gets_a_page(tmp_path):
    model = interp.Transformer(interp.ModelConfig.with_width(16, p=11, eq_token=False, causal=False), seed=0)
    path = report.write_report(model, tmp_path / "sub" / "untrained.html")
    text = path.read_text()
    assert "non-generalizing" in text and "does not solve the task" in text
    assert 'class="plotly-graph-div"' in text


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        report.render(tmp_path / "missing.safetensors")
    model = interp.Transformer(interp.ModelConfig.with_width(16, p=11), seed=0)
    with pytest.raises(InterpError, match="out= is needed"):
        report.write_report(model)
    with pytest.raises(InterpError, match="every must be a positive integer"):
        report.render(model, every=0)
    with pytest.raises(InterpError, match="is a directory"):
        report.render(model).write(tmp_path)
    with pytest.raises(InterpError, match="a report needs"):
        report.render(torch.zeros(3))


# ---- in a browser --------------------------------------------------------------------------------
SHIM = """<script>(function () {
  var tag = "INTERP-CONSOLE-ERROR: ", join = function (a) { return Array.prototype.join.call(a, " "); };
  var error = console.error, warn = console.warn;
  console.error = function () { console.log(tag + join(arguments)); return error.apply(console, arguments); };
  console.warn = function () { console.log(tag + "warning: " + join(arguments)); return warn.apply(console, arguments); };
  window.addEventListener("error", function (e) { console.log(tag + e.message); });
  window.addEventListener("unhandledrejection", function (e) { console.log(tag + e.reason); });
})();</script>"""
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def open_in_chromium(html_path, tmp_path) -> tuple[str, list[str]]:
    """(DOM after the scripts ran, console lines) of a page opened in headless Chromium."""
    page = tmp_path / "page.html"
    text = html_path.read_text()
    page.write_text(text.replace("<head>", "<head>" + SHIM, 1))
    proc = subprocess.run([CHROMIUM, *BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
                           "--v=0", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, [line for line in proc.stderr.splitlines() if "INFO:CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (make test installs it: "
                                             "scripts/install_browser.sh, needs root + apt)")
def test_every_figure_renders_in_chromium_without_console_errors(written, tmp_path):
    rep, path = written
    dom, console = open_in_chromium(path, tmp_path)
    problems = [line for line in console if "INTERP-CONSOLE-ERROR" in line or "Uncaught" in line]
    assert not problems, "\n".join(problems)
    # each figure div is followed by its own contents up to the next one; plotly draws a "main-svg"
    figures = dom.split('class="plotly-graph-div')[1:]
    assert len(figures) == len(rep.figures) and all('class="main-svg"' in f for f in figures), \
        f"{sum('main-svg' in f for f in figures)} of {len(figures)} figures rendered"


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed")
def test_the_browser_check_sees_errors_and_unrendered_figures(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><head></head><body><div class="plotly-graph-div"></div><script>nope();</script></body></html>')
    dom, console = open_in_chromium(bad, tmp_path)
    assert any("INTERP-CONSOLE-ERROR" in line and "nope" in line for line in console), console
    assert 'class="main-svg"' not in dom
