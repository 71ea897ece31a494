"""The notebooks: each is edited as a jupytext percent-format script (notebooks/NN_name.py) paired with an
output-free .ipynb; a test checks the pair is in sync with jupytext's own comparison. Every notebook
runs top to bottom in fast mode (INTERP_NOTEBOOK_MODE=fast), in order, with its exercises' solutions
filled in (interp.notebook.fill_solutions) so that every check against the library runs, its runs
written to one temporary folder (INTERP_NOTEBOOK_OUT) and the kernel started in a temporary working
directory: nothing is written into the repository. A cell error or a cell over its time limit fails."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.compare import compare_notebooks

from interp import notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ORDER = ["01_grokking", "02_reverse_engineering_clock", "03_clock_vs_pizza", "04_phase_diagram",
         "05_bring_your_own_checkpoint", "06_other_tasks"]
ANALYSES = ORDER[:3]  # the notebooks with "your turn" exercises
TRAINS = ["01_grokking", "03_clock_vs_pizza", "04_phase_diagram", "06_other_tasks"]  # they train (2 and 5 reuse)
CELL_TIMEOUT = 240  # seconds per cell, far above what fast mode needs


def test_the_notebooks_are_these_pairs():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.py")) == ORDER
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == ORDER
    assert not (ROOT / "scripts" / "build_notebooks.py").exists()


@pytest.mark.parametrize("name", ORDER)
def test_ipynb_is_in_sync_with_its_script_and_has_no_outputs(name):
    script = jupytext.read(NOTEBOOKS / f"{name}.py")
    nb = jupytext.read(NOTEBOOKS / f"{name}.ipynb")
    assert nb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    # jupytext's own comparison (what `jupytext --sync` / `--test` use): raises on any difference in the cells
    compare_notebooks(nb, script, fmt="py:percent")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        f"{name}.ipynb has outputs: commit it stripped (jupytext --sync notebooks/{name}.py)"


@pytest.mark.parametrize("name", ORDER)
def test_notebook_has_a_parameters_cell_and_defines_no_library_code(name):
    nb = jupytext.read(NOTEBOOKS / f"{name}.py")
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and code[0] is params[0], "the first code cell is the (papermill-style) parameters cell"
    assert {n.targets[0].id for n in ast.parse(params[0].source).body} == {"MODE", "OUT"}
    assert "notebook.setup(MODE, OUT)" in code[1].source
    for c in code:  # the shared helpers live in interp.notebook now, not in each notebook
        for node in ast.walk(ast.parse(c.source)):
            if isinstance(node, ast.FunctionDef):
                assert node.name not in ("trained_run", "swept"), f"{name} redefines interp.notebook.{node.name}"


@pytest.mark.parametrize("name", ANALYSES)
def test_analysis_notebooks_have_exercises_with_hidden_solutions_and_checks(name):
    nb = jupytext.read(NOTEBOOKS / f"{name}.py")
    exercises = [i for i, c in enumerate(nb.cells) if "exercise" in c.metadata.get("tags", [])]
    assert len(exercises) >= 1
    for i in exercises:
        assert nb.cells[i].source.rstrip().split("=", 1)[1].lstrip().startswith("...")  # left for the learner
        assert "notebook.check(" in nb.cells[i + 1].source
    solved = nbformat.from_dict(nb)
    assert notebook.fill_solutions(solved) == len(exercises)
    assert all("..." not in solved.cells[i].source.split("#")[0] for i in exercises)


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    """One folder for all the notebooks' runs, so later notebooks reuse earlier runs as a user's would."""
    return tmp_path_factory.mktemp("notebook_runs")


@pytest.mark.slow
@pytest.mark.parametrize("name", ORDER)
def test_notebook_runs_in_fast_mode(name, out_dir, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("INTERP_NOTEBOOK_MODE", "fast")
    monkeypatch.setenv("INTERP_NOTEBOOK_OUT", str(out_dir))  # the kernel inherits the environment
    # Fast mode's models are tiny: one thread is as fast as two, and on a busy machine two threads per
    # kernel fight for the cores (the suite took 4x longer so under load).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    n_exercises = notebook.fill_solutions(nb)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the cell on any error
    print(f"{name}: {time.perf_counter() - t0:.1f} s")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "every code cell ran"
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert text.count("correct: ") == n_exercises, "every exercise's check ran and agreed with the library"
    assert "IProgress not found" not in text and "TqdmWarning" not in text
    if name in TRAINS:  # training and sweeping show the notebook widget progress bar (ipywidgets), not text
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert any(o.get("data", {}).get("application/vnd.plotly.v1+json") for o in outputs
               if o.output_type == "display_data"), "the notebook shows plotly figures"
    assert not list(tmp_path.iterdir()), "the notebook wrote into its working directory"
