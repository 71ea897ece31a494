"""What the notebooks share, so that they define no library code: the mode (fast/full), where runs go,
the runs each notebook analyses (named by preset and recipe, with their few overrides), and a run or
sweep that is reused when it already exists with the same settings.

A notebook's parameters cell (papermill-style, tagged "parameters") sets MODE and OUT, then

    nb = interp.notebook.setup(MODE, OUT)
    run_dir = nb.run("grokking")          # trained here, or reused / resumed
    rows = nb.sweep("clock_pizza")        # the sweep's result rows

MODE None means $INTERP_NOTEBOOK_MODE, else "full"; OUT None means $INTERP_NOTEBOOK_OUT, else the
repository's git-ignored checkpoints/ (./checkpoints outside a checkout).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from interp.config import ModelConfig, TrainConfig
from interp.errors import ConfigError, InterpError
from interp.presets import resolve

MODES = ("fast", "full")

# The runs the notebooks train, per mode: a preset, a recipe (interp.presets.RECIPES) and the overrides
# that make it a notebook run (a fixed budget instead of an early stop, snapshots for the progress
# measures, and in fast mode a small task). List values are swept (interp.sweep).
RUNS: dict[str, dict[str, dict]] = {
    # Notebooks 1, 2, 5. The canonical task (Nanda et al.) with the "watch" recipe's learning rate and
    # weight decay 3 (the recipe keeps the preset's 1), trained past generalisation (no early stop) so
    # that the clean-up phase shows; a snapshot every 50 steps. Fast: p 23, d_model 64, half the pairs.
    "grokking": {
        "full": dict(preset="nanda", recipe="watch", weight_decay=3.0, steps=2500, stop_at_test_acc=None,
                     log_every=25, checkpoint_every=50),
        "fast": dict(preset="nanda", recipe="watch", weight_decay=3.0, steps=600, stop_at_test_acc=None,
                     log_every=10, checkpoint_every=25, p=23, d_model=64, train_frac=0.5),
    },
    # Notebooks 3, 5. Model A (attention rate 0) and Model B (1) of Zhong et al. as one stacked sweep:
    # the published recipe (80 % train, warm-up 10) at lr 5e-3 and weight decay 5 (the paper: 1e-3, 2),
    # 1000 steps. Fast: p 23, d_model 32, lr 1e-2, weight decay 1, 600 steps.
    "clock_pizza": {
        "full": dict(preset="pizza-a", recipe="published", attn_rate=[0.0, 1.0], lr=5e-3, weight_decay=5.0,
                     steps=1000, log_every=50, checkpoint_every=50),
        "fast": dict(preset="pizza-a", recipe="published", attn_rate=[0.0, 1.0], lr=1e-2, weight_decay=1.0,
                     steps=600, log_every=50, checkpoint_every=50, p=23, d_model=32),
    },
    # Notebook 4. Attention rate x width on the Clock/Pizza task at lr 1e-2, weight decay 1, 600 steps:
    # every width generalises within a few hundred steps (with weight decay 5 the narrow ones had not
    # after 1500). Fast: p 23, two attention rates, one width, 500 steps.
    "phase": {
        "full": dict(preset="pizza-a", recipe="published", lr=1e-2, weight_decay=1.0, log_every=100, steps=600,
                     checkpoint_every=600, attn_rate=[0.0, 0.25, 0.5, 0.75, 1.0], d_model=[32, 64, 128], seed=[0]),
        "fast": dict(preset="pizza-a", recipe="published", lr=1e-2, weight_decay=1.0, log_every=100, steps=500,
                     checkpoint_every=500, attn_rate=[0.0, 1.0], d_model=[32], seed=[0], p=23),
    },
    # Notebook 6. a - b and a * b mod p (interp.tasks) as one sweep over the task: Model B's architecture
    # (standard attention) with the pizza-b "fast" recipe (lr 1e-2, weight decay 2, 1500 steps, a snapshot
    # every 50). Fast: p 23, d_model 32, 600 steps.
    "tasks": {
        "full": dict(preset="pizza-b", recipe="fast", task=["sub", "mul"]),
        "fast": dict(preset="pizza-b", recipe="fast", task=["sub", "mul"], steps=600, log_every=50, p=23, d_model=32),
    },
}


def resolve_mode(mode: str | None = None) -> str:
    """The notebook mode: `mode`, else $INTERP_NOTEBOOK_MODE, else "full"."""
    mode = mode or os.environ.get("INTERP_NOTEBOOK_MODE") or "full"
    if mode not in MODES:
        raise ConfigError(f"notebook mode must be one of {MODES} (MODE or INTERP_NOTEBOOK_MODE), got {mode!r}")
    return mode


def resolve_out(out: str | Path | None = None) -> Path:
    """Where runs go: `out`, else $INTERP_NOTEBOOK_OUT, else the checkout's checkpoints/ (./checkpoints outside one)."""
    if out or os.environ.get("INTERP_NOTEBOOK_OUT"):
        return Path(out or os.environ["INTERP_NOTEBOOK_OUT"])
    repo = Path(__file__).resolve().parent.parent
    return repo / "checkpoints" if (repo / "pyproject.toml").exists() else Path("checkpoints")


def _same_run(run_dir: Path, mcfg: ModelConfig, tcfg: TrainConfig) -> bool:
    try:
        saved = json.loads((run_dir / "run.json").read_text())
        return (ModelConfig.from_dict(saved["model_config"]) == mcfg
                and TrainConfig.from_dict(saved["train_config"]) == tcfg)
    except (OSError, ValueError, KeyError, TypeError, InterpError):
        return False


def trained_run(run_dir: str | Path, preset: str, recipe: str | None = None, progress: bool = True,
                **overrides) -> Path:
    """The run in `run_dir`: reused if it finished with these settings, resumed if it was interrupted,
    else trained from scratch (replacing whatever is there). Returns run_dir."""
    from interp.training import resume, train

    run_dir = Path(run_dir)
    mcfg, tcfg = resolve(preset, recipe, None, None, overrides)
    same = _same_run(run_dir, mcfg, tcfg)
    if same and (run_dir / "final.safetensors").exists():
        print(f"reusing the finished run in {run_dir}")
    elif same and (run_dir / "resume.safetensors").exists():
        print(f"resuming the interrupted run in {run_dir}")
        resume(run_dir, progress=progress)
    else:
        print(f"training {preset} ({recipe or 'published'} recipe, {overrides}) into {run_dir}")
        train(preset, recipe, run_dir, overwrite=True, progress=progress, **overrides)
    return run_dir


def swept(sweep_dir: str | Path, preset: str, recipe: str | None = None, progress: bool = True,
          **settings) -> list[dict]:
    """The sweep in `sweep_dir`: reused (models not finished yet trained now) if it was started with these
    settings, else trained from scratch. Returns the result table's rows."""
    from interp.sweeps import read_spec, resume_sweep, sweep

    sweep_dir = Path(sweep_dir)
    try:
        spec = read_spec(sweep_dir)
        asked = json.loads(json.dumps({"preset": preset, "recipe": recipe, "settings": settings}))
        same = {"preset": spec["preset"], "recipe": spec["recipe"], "settings": {**spec["fixed"], **spec["grid"]}} == asked
    except (InterpError, KeyError, TypeError):
        same = False
    if same:
        print(f"reusing the sweep in {sweep_dir} (models not finished yet are trained now)")
        return resume_sweep(sweep_dir, progress=progress).rows
    print(f"sweeping {preset} ({recipe or 'published'} recipe) over {settings} into {sweep_dir}")
    return sweep(preset, recipe, sweep_dir, overwrite=True, progress=progress, **settings).rows


@dataclass(frozen=True)
class Session:
    """A notebook's mode and run folder; `run`/`sweep` give the runs of RUNS by name."""

    mode: str
    out: Path
    progress: bool = True

    @property
    def fast(self) -> bool:
        return self.mode == "fast"

    def settings(self, name: str) -> dict:
        """RUNS[name] in this mode (a copy: change it to train something else)."""
        if name not in RUNS:
            raise ConfigError(f"unknown notebook run {name!r}; choose one of {', '.join(RUNS)}")
        return dict(RUNS[name][self.mode])

    def path(self, name: str) -> Path:
        """out/nb_<name> (nb_<name>_fast in fast mode): fast and full runs never overwrite each other."""
        return self.out / f"nb_{name}{'_fast' if self.fast else ''}"

    def run(self, name: str, **changes) -> Path:
        """The run RUNS[name] (with `changes`), trained or reused: its run directory."""
        return trained_run(self.path(name), progress=self.progress, **{**self.settings(name), **changes})

    def sweep(self, name: str, **changes) -> list[dict]:
        """The sweep RUNS[name] (with `changes`), trained or reused: its result rows."""
        return swept(self.path(name), progress=self.progress, **{**self.settings(name), **changes})


def setup(mode: str | None = None, out: str | Path | None = None, progress: bool = True) -> Session:
    """Start a notebook: resolve the mode and run folder, embed plotly figures in the notebook (no network
    needed to view them) and say where runs go."""
    import plotly.io as pio

    session = Session(resolve_mode(mode), resolve_out(out), progress)
    pio.renderers.default = "plotly_mimetype+notebook"
    print(f"MODE = {session.mode!r}, runs under {session.out}")
    return session


# ---- exercises ----------------------------------------------------------------------------------------
# An exercise is a markdown cell whose solution is a ```python block inside <details> (hidden behind a
# toggle), then a code cell tagged "exercise" where the learner writes the answer (`my_x = ...`), then a
# cell calling check(), which compares the answer with the library's.
SOLUTION = re.compile(r"<details>.*?```python\n(.*?)```.*?</details>", re.S)


def check(what: str, answer, expected, atol: float = 1e-6) -> bool:
    """Compare a learner's answer with the library's value: True and a "correct" line when they agree
    (numbers, lists or tensors, to atol / 1e-6 relative); AssertionError saying both when they do not;
    False and a reminder while the answer is still `...`."""
    from interp.display import _short

    if answer is ...:
        print(f"your turn: {what} (replace the ... above; the solution hides behind the toggle)")
        return False
    a = torch.as_tensor(answer, dtype=torch.float64)
    e = torch.as_tensor(expected, dtype=torch.float64)
    if a.shape != e.shape or not torch.allclose(a, e, atol=atol, rtol=1e-6):
        raise AssertionError(f"{what}: your answer {_short(a)} is not the library's {_short(e)}")
    print(f"correct: {what} matches the library")
    return True


def fill_solutions(nb) -> int:
    """Put each exercise's solution (from the markdown cell before it) into its "exercise" cell, in place:
    what CI runs, so that every check() compares a real answer. Returns the number of exercises."""
    n, solution = 0, None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = SOLUTION.search(cell.source)
            solution = found.group(1) if found else solution
        elif "exercise" in cell.metadata.get("tags", []):
            if solution is None:
                raise ConfigError(f"exercise cell without a solution before it: {cell.source[:60]!r}")
            cell.source, solution, n = solution.rstrip("\n"), None, n + 1
    return n
