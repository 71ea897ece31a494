"""Every notebook runs top to bottom in fast mode (INTERP_NOTEBOOK_MODE=fast), in order, with its
runs written to one temporary folder (INTERP_NOTEBOOK_OUT) and the kernel started in a temporary
working directory: nothing is written into the repository. A cell error or a cell over its time
limit fails the test. The notebooks are built from scripts/build_notebooks.py and committed
without outputs; a test checks that they are up to date."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ORDER = ["01_grokking.ipynb", "02_reverse_engineering_clock.ipynb", "03_clock_vs_pizza.ipynb",
         "04_phase_diagram.ipynb", "05_bring_your_own_checkpoint.ipynb"]
CELL_TIMEOUT = 240  # seconds per cell, far above what fast mode needs


def _build_script():
    spec = importlib.util.spec_from_file_location("build_notebooks", ROOT / "scripts" / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebooks_are_built_from_their_source_without_outputs():
    build = _build_script()
    assert sorted(build.NOTEBOOK_SOURCES) == sorted(ORDER)
    for name, cells in build.NOTEBOOK_SOURCES.items():
        text = (NOTEBOOKS / name).read_text()
        assert text == build.render(cells), f"{name} is out of date: run scripts/build_notebooks.py"
        nb = nbformat.reads(text, as_version=4)
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
        first_code = next(c for c in nb.cells if c.cell_type == "code").source
        assert 'MODE = os.environ.get("INTERP_NOTEBOOK_MODE", "full")' in first_code


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    """One folder for all five notebooks' runs, so later notebooks reuse earlier runs as a user's would."""
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
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the cell on any error
    print(f"{name}: {time.perf_counter() - t0:.1f} s")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "every code cell ran"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert any(o.get("data", {}).get("application/vnd.plotly.v1+json") for c in code for o in c.outputs
               if o.output_type == "display_data"), "the notebook shows plotly figures"
    assert not list(tmp_path.iterdir()), "the notebook wrote into its working directory"
