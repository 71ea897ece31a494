"""interp.notebook (the notebooks' shared setup: mode, run folder, runs named by recipe, reuse) and
interp.display (HTML tables for result dataclasses, progress bars without the IProgress warning)."""

import json
import warnings

import pytest
import torch

from interp import display, notebook, presets, probes
from interp.config import ModelConfig
from interp.errors import ConfigError
from interp.model import Transformer

TINY = dict(preset="tiny", recipe="published", steps=30, stop_at_test_acc=None, log_every=10, checkpoint_every=10)


# ---- mode and folder --------------------------------------------------------------------------------
def test_mode_from_argument_then_environment_then_full(monkeypatch):
    monkeypatch.delenv("INTERP_NOTEBOOK_MODE", raising=False)
    assert notebook.resolve_mode() == "full"
    monkeypatch.setenv("INTERP_NOTEBOOK_MODE", "fast")
    assert notebook.resolve_mode() == "fast"
    assert notebook.resolve_mode("full") == "full"  # the parameters cell wins over the environment
    with pytest.raises(ConfigError, match="mode must be one of"):
        notebook.resolve_mode("quick")


def test_out_from_argument_then_environment_then_the_checkouts_checkpoints(monkeypatch, tmp_path):
    monkeypatch.delenv("INTERP_NOTEBOOK_OUT", raising=False)
    assert notebook.resolve_out().name == "checkpoints"
    monkeypatch.setenv("INTERP_NOTEBOOK_OUT", str(tmp_path))
    assert notebook.resolve_out() == tmp_path
    assert notebook.resolve_out(tmp_path / "x") == tmp_path / "x"


def test_fast_and_full_runs_live_in_separate_folders(tmp_path):
    fast, full = notebook.Session("fast", tmp_path), notebook.Session("full", tmp_path)
    assert fast.path("grokking") == tmp_path / "nb_grokking_fast" and full.path("grokking") == tmp_path / "nb_grokking"
    with pytest.raises(ConfigError, match="unknown notebook run"):
        fast.settings("nope")


# ---- the runs are named by recipe, and resolve --------------------------------------------------------
@pytest.mark.parametrize("name", sorted(notebook.RUNS))
@pytest.mark.parametrize("mode", notebook.MODES)
def test_every_notebook_run_names_an_existing_preset_and_recipe_and_resolves(name, mode):
    s = dict(notebook.RUNS[name][mode])
    preset, recipe = s.pop("preset"), s.pop("recipe")
    assert recipe in presets.RECIPES[preset]
    scalars = {k: v for k, v in s.items() if not isinstance(v, list)}
    grid = {k: v[0] for k, v in s.items() if isinstance(v, list)}
    mcfg, tcfg = presets.resolve(preset, recipe, None, None, {**scalars, **grid})
    assert tcfg.stop_at_test_acc is None  # a fixed budget: the notebooks analyse past generalisation


def test_grokking_run_is_the_watch_recipe_with_weight_decay_3():
    _, watch = presets.resolve("nanda", "watch", None, None, {})
    s = dict(notebook.RUNS["grokking"]["full"])
    _, tcfg = presets.resolve(s.pop("preset"), s.pop("recipe"), None, None, s)
    assert (tcfg.lr, tcfg.warmup_steps) == (watch.lr, watch.warmup_steps)
    assert tcfg.weight_decay == 3.0 != watch.weight_decay  # the override the notebook states


# ---- reuse ------------------------------------------------------------------------------------------------
def test_trained_run_trains_then_reuses_then_retrains_on_other_settings(tmp_path, capsys):
    run = tmp_path / "run"
    assert notebook.trained_run(run, progress=False, **TINY) == run
    assert "training tiny" in capsys.readouterr().out
    first = (run / "final.safetensors").read_bytes()
    notebook.trained_run(run, progress=False, **TINY)
    assert "reusing the finished run" in capsys.readouterr().out
    assert (run / "final.safetensors").read_bytes() == first
    notebook.trained_run(run, progress=False, **{**TINY, "steps": 20})
    assert "training tiny" in capsys.readouterr().out
    assert json.loads((run / "run.json").read_text())["train_config"]["steps"] == 20


def test_trained_run_resumes_an_interrupted_run(tmp_path, capsys):
    run = tmp_path / "run"
    notebook.trained_run(run, progress=False, **TINY)
    final = (run / "final.safetensors").read_bytes()
    (run / "final.safetensors").unlink()  # as if killed after its last resume point
    assert (run / "resume.safetensors").exists()
    notebook.trained_run(run, progress=False, **TINY)
    assert "resuming the interrupted run" in capsys.readouterr().out
    assert (run / "final.safetensors").exists()
    assert len((run / "final.safetensors").read_bytes()) == len(final)


def test_swept_reuses_a_sweep_with_the_same_settings(tmp_path, capsys):
    settings = {**TINY, "attn_rate": [0.0, 1.0]}
    rows = notebook.swept(tmp_path / "s", progress=False, **settings)
    assert sorted(r["attn_rate"] for r in rows) == [0.0, 1.0]
    assert "sweeping tiny" in capsys.readouterr().out
    again = notebook.swept(tmp_path / "s", progress=False, **settings)
    assert "reusing the sweep" in capsys.readouterr().out
    assert [r["run_dir"] for r in again] == [r["run_dir"] for r in rows]


def test_setup_embeds_plotly_figures_and_says_where_runs_go(tmp_path, capsys):
    import plotly.io as pio

    nb = notebook.setup("fast", tmp_path, progress=False)
    assert (nb.mode, nb.out, nb.fast) == ("fast", tmp_path, True)
    assert pio.renderers.default == "plotly_mimetype+notebook"
    assert str(tmp_path) in capsys.readouterr().out


# ---- display -------------------------------------------------------------------------------------------
def test_result_dataclasses_render_as_a_compact_html_table():
    m = Transformer(ModelConfig(p=13, d_model=32, n_heads=4, d_head=8, d_mlp=64), seed=0)
    neu = probes.neurons(m)
    page = neu._repr_html_()
    assert page.startswith("<table>") and "<b>NeuronProbe</b>" in page
    assert "tensor [64×13×13] float64" in page  # a big tensor by its shape, not its values
    assert len(page) < 2000 < len(repr(neu))
    emb = probes.embedding(m)
    assert ", ".join(f"{x:.4g}" for x in emb.freq_norms.tolist()) in emb._repr_html_()  # small: its values


def test_html_table_escapes_and_shortens():
    from dataclasses import dataclass

    @dataclass
    class R(display.HTMLRepr):
        text: str
        items: list
        score: float

    page = R("<script>" + "x" * 500, list(range(100)), 1 / 3)._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "… (100 in all)" in page and "0.3333" in page and "x" * 200 not in page


def test_progress_bar_outside_jupyter_is_the_text_bar_without_warnings():
    from tqdm.std import tqdm as text_bar

    assert not display.notebook_widgets()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bar = display.tqdm(total=3, disable=True)
    assert type(bar) is text_bar


def test_progress_bar_in_a_kernel_without_ipywidgets_falls_back_quietly(monkeypatch):
    import sys
    import types

    from tqdm.std import tqdm as text_bar

    class Shell:
        config = {"IPKernelApp": {}}

    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: Shell()))
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets -> ImportError
    assert not display.notebook_widgets()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert type(display.tqdm(total=1, disable=True)) is text_bar
    monkeypatch.setitem(sys.modules, "ipywidgets", types.ModuleType("ipywidgets"))
    assert display.notebook_widgets()  # a kernel with ipywidgets: the notebook widget


# ---- exercises -------------------------------------------------------------------------------------------
def test_check_accepts_the_right_answer_refuses_a_wrong_one_and_waits_for_an_unfilled_one(capsys):
    expected = torch.tensor([0.5, 0.25], dtype=torch.float64)
    assert notebook.check("norms", [0.5, 0.25], expected) is True
    assert "correct: norms" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"norms: your answer \[0.5, 0.3\] is not the library's \[0.5, 0.25\]"):
        notebook.check("norms", torch.tensor([0.5, 0.3]), expected)
    with pytest.raises(AssertionError):
        notebook.check("norms", [0.5], expected)  # wrong shape
    assert notebook.check("norms", ..., expected) is False
    assert "your turn: norms" in capsys.readouterr().out


def test_fill_solutions_takes_each_exercises_solution_from_the_markdown_before_it():
    import nbformat

    nb = nbformat.v4.new_notebook()
    ex = nbformat.v4.new_code_cell("my_x = ...")
    ex.metadata["tags"] = ["exercise"]
    nb.cells = [nbformat.v4.new_markdown_cell("Task\n<details><summary>Solution</summary>\n\n```python\nmy_x = 2 + 2\n```\n</details>"),
                ex, nbformat.v4.new_code_cell("notebook.check('x', my_x, 4)")]
    assert notebook.fill_solutions(nb) == 1 and nb.cells[1].source == "my_x = 2 + 2"
    orphan = nbformat.v4.new_notebook()
    orphan.cells = [nbformat.v4.new_markdown_cell("no solution here"), ex]
    with pytest.raises(ConfigError, match="without a solution"):
        notebook.fill_solutions(orphan)
