"""Recipes: `fast` and `watch` change only the optimisation, never the task or the architecture;
`published` stays the default. Plus a smoke run of the benchmark command so it cannot rot."""

import subprocess
import sys
from pathlib import Path

import pytest

from interp.cli import main
from interp.presets import PRESETS, RECIPES, resolve

ROOT = Path(__file__).resolve().parent.parent
TASK = ("train_frac", "seed", "data_seed")  # the task: which pairs are held out, and the model's init


@pytest.mark.parametrize("preset", ["nanda", "pizza-a", "pizza-b"])
def test_fast_recipe_keeps_task_and_architecture(preset):
    published_m, published_t = resolve(preset, None, None, None, {})
    fast_m, fast_t = resolve(preset, "fast", None, None, {})
    assert fast_m == published_m == PRESETS[preset][0]
    assert all(getattr(fast_t, k) == getattr(published_t, k) for k in TASK)
    assert fast_t.stop_at_test_acc is None  # never stop at 99 %: the product is the circuit, not the accuracy
    assert fast_t.stop_when_clean and fast_t.steps >= 1000  # stops at a clean circuit, with a cap
    if preset == "pizza-b":  # waits for GS to settle (the clock forms after W_E has: presets.py), checked every 100
        assert fast_t.stop_gs_change is not None and fast_t.stop_weight_change is None
        assert fast_t.checkpoint_every <= 50 and fast_t.log_every == 100
    else:
        assert fast_t.stop_gs_change is None and fast_t.stop_weight_change is not None
        assert fast_t.checkpoint_every <= 20  # a few dozen snapshots even in a short run
        assert fast_t.log_every <= 10  # a timely stop, and loss curves with detail
    assert not published_t.stop_when_clean  # the published recipe runs its full length
    assert fast_t.clip_grad is None
    assert (fast_t.lr, fast_t.weight_decay) != (published_t.lr, published_t.weight_decay)


def test_published_stays_the_default():
    for preset in PRESETS:
        assert resolve(preset, None, None, None, {}) == resolve(preset, "published", None, None, {}) == PRESETS[preset]
        assert RECIPES[preset]["published"] == {}


def test_watch_recipe_memorises_then_generalises_slowly():
    m, t = resolve("nanda", "watch", None, None, {})
    fast = resolve("nanda", "fast", None, None, {})[1]
    assert m == PRESETS["nanda"][0] and t.train_frac == 0.3
    assert t.stop_when_clean and t.steps > fast.steps
    assert t.lr < fast.lr and t.weight_decay < fast.weight_decay  # slower clean-up: a visible delay
    assert t.checkpoint_every <= 50  # a few dozen snapshots through the ~1200-step delay


def test_unknown_recipe_is_a_clear_error(capsys, tmp_path):
    assert main(["train", "--preset", "tiny", "--recipe", "fast", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'fast' for preset 'tiny'" in err and "published" in err


def test_benchmark_command_runs():
    """`benchmarks/run.py --quick` (its sweep part: the cheapest) runs and prints the table."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--parts", "sweep"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("# interp benchmarks")
    assert any(line.startswith("| benchmark") for line in lines)
    row = next(line for line in lines if line.startswith("| sweep: 8 x tiny"))
    assert "stacked / sequential" in row
    assert float(row.split("max weight difference ")[1].split(";")[0]) <= 1e-5  # same models either way
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--parts", "nope"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and "unknown part" in bad.stderr
