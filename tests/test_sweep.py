"""interp.sweep: stacked (vmapped) training equals training each model alone; run directories,
table and resume; clear errors. Small `tiny`-preset grids keep this to seconds."""

import json

import pytest
import torch

import interp
from interp.cli import main
from interp.errors import ConfigError, RunDirError
from interp.presets import resolve
from interp.presets import parse_value
from interp.resources import device_memory, estimate_training
from interp.sweeps import GROUP_SHARE, expand, group_key, group_size, plan_groups, sweep

from interp import sweeps, training

from helpers import one_thread

# Early stop at 0.4 test accuracy: in this grid the models finish at different steps, so
# models leave the stack while others go on. Different splits (data_seed) are stacked too.
GRID = dict(attn_rate=[0.0, 0.5, 1.0], data_seed=[0, 1])
FIXED = dict(steps=120, log_every=10, checkpoint_every=40, stop_at_test_acc=0.4)


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_model(a, b, atol=1e-6):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=atol, rtol=0, msg=k)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same grid trained stacked and one model after another."""
    root = tmp_path_factory.mktemp("sweeps")
    with one_thread():
        stacked = sweep("tiny", out=root / "stacked", progress=False, classify=False, **GRID, **FIXED)
        alone = sweep("tiny", out=root / "alone", sequential=True, progress=False, classify=False, **GRID, **FIXED)
    return stacked, alone


def test_stacked_equals_training_alone(pair):
    stacked, alone = pair
    assert len(stacked.rows) == len(alone.rows) == 6
    stop_steps = {r["step"] for r in stacked.rows}
    assert len(stop_steps) > 1, "grid should exercise models leaving the stack at different steps"
    for name, r in alone.results.items():
        s = stacked.results[name]
        assert s.step == r.step and s.stopped_early == r.stopped_early
        assert [h["step"] for h in s.history] == [h["step"] for h in r.history]
        for hs, hr in zip(s.history, r.history):
            for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
                assert hs[key] == pytest.approx(hr[key], abs=1e-6), (name, hs["step"], key)
        assert_same_model(s.model, r.model)


def test_each_model_is_an_ordinary_run(pair):
    stacked, _ = pair
    out = stacked.out
    rows = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in rows] == [r["name"] for r in stacked.rows]
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(rows) and csv_lines[0].startswith("name,attn_rate,data_seed,p,d_model,seed,train_frac,lr,weight_decay,step,")
    row = rows[0]
    run_dir = out / "runs" / row["name"]
    assert row["run_dir"] == str(run_dir)
    model = interp.load(run_dir)
    assert_same_model(model, stacked.results[row["name"]].model)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["preset"] == "tiny" and info["train_config"]["data_seed"] == row["data_seed"]
    assert info["model_config"]["attn_rate"] == row["attn_rate"]
    history = json.loads((run_dir / "history.json").read_text())
    assert row["stopped_early"] and history[-1]["step"] == row["step"] < FIXED["steps"]
    assert history[-1]["test_acc"] == row["test_acc"] >= FIXED["stop_at_test_acc"]
    assert len(list((run_dir / "checkpoints").glob("step_*.safetensors"))) >= 2


def test_interrupted_sweep_resumes_without_redoing_finished_models(tmp_path, monkeypatch):
    # Two groups (two widths); Grokfast on, so its filter state is stacked, saved and restored too.
    grid = dict(d_model=[16, 32], seed=[0, 1])
    fixed = dict(steps=60, log_every=10, checkpoint_every=20, grokfast_lambda=1.0)
    reference = sweep("tiny", progress=False, classify=False, **grid, **fixed)

    calls = {"n": 0}
    real = training.apply_update

    def killed_midway(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 60 + 35:  # the first group is done; the second dies at step 35
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "apply_update", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        sweep("tiny", out=tmp_path / "s", progress=False, classify=False, **grid, **fixed)
    monkeypatch.setattr(training, "apply_update", real)
    done = {r["name"] for r in json.loads((tmp_path / "s" / "results.json").read_text())}
    assert done == {"d_model=16,seed=0", "d_model=16,seed=1"}
    finals = {n: (tmp_path / "s" / "runs" / n / "final.safetensors").stat().st_mtime_ns for n in done}

    resumed = interp.resume_sweep(tmp_path / "s", progress=False, classify=False)
    assert set(resumed.results) == {"d_model=32,seed=0", "d_model=32,seed=1"}  # only these were trained
    assert all(resumed.results[n].history[0]["step"] == 0 for n in resumed.results)  # history kept
    assert {n: (tmp_path / "s" / "runs" / n / "final.safetensors").stat().st_mtime_ns for n in done} == finals
    assert [r["name"] for r in resumed.rows] == list(reference.results)
    for name, r in reference.results.items():
        assert_same_model(interp.load(tmp_path / "s" / "runs" / name), r.model)


def test_groups_stack_seeds_splits_and_attention_rates_only():
    jobs = expand("tiny", None, {"attn_rate": [0.0, 1.0], "d_model": [16, 32], "lr": [1e-3, 3e-3]}, {})
    assert len(jobs) == 8 and len({group_key(j.model_config, j.train_config) for j in jobs}) == 4
    assert jobs[0].name == "attn_rate=0.0,d_model=16,lr=0.001"
    assert jobs[0].model_config.d_mlp == 64  # width keeps the preset's proportions
    assert len(plan_groups(jobs)) == 4  # tiny models: each stackable set fits one group


def test_group_size_follows_the_device_memory_and_the_model():
    budget = 2 << 30
    sizes = {}
    for preset in ("tiny", "pizza-a", "nanda"):
        mcfg, tcfg = resolve(preset, None, None, None, {})
        need = estimate_training(mcfg, tcfg).total
        sizes[preset] = n = group_size(mcfg, tcfg, budget=budget)
        assert n * need <= budget < (n + 1) * need, preset  # as many as fit, no more
    assert sizes["tiny"] > sizes["pizza-a"] > sizes["nanda"] >= 1, sizes
    assert group_size(mcfg, tcfg, budget=1) == 1  # a model larger than the budget still trains, alone
    # Default budget: a share of the device's total memory (not what is free now: the same plan every run).
    assert group_size(mcfg, tcfg, "cpu") == group_size(mcfg, tcfg, budget=device_memory("cpu") // GROUP_SHARE)


def test_planned_groups_never_exceed_the_memory_budget(monkeypatch):
    jobs = expand("nanda", None, {"d_model": [64, 128], "seed": list(range(7))}, {})
    n_groups = []
    for memory in (1 << 30, 4 << 30, 64 << 30):
        monkeypatch.setattr(sweeps, "device_memory", lambda device=None: memory)
        groups = plan_groups(jobs, "cpu")
        assert [j for g in groups for j in g] == jobs  # every job once, in grid order
        for g in groups:
            assert len({group_key(j.model_config, j.train_config) for j in g}) == 1
            need = sum(estimate_training(j.model_config, j.train_config).total for j in g)
            assert len(g) == 1 or need <= memory // GROUP_SHARE, (memory, len(g))
        n_groups.append(len(groups))
    assert n_groups[0] > n_groups[1] > n_groups[2] == 2, n_groups  # more memory, bigger stacks
    # An explicit size: the fewest groups of at most that many, of near-equal sizes.
    for size in (1, 2, 3, 7, 100):
        groups = plan_groups(jobs, max_size=size)
        per_key = -(-7 // size)
        assert len(groups) == 2 * per_key and all(len(g) <= size for g in groups)
        assert max(map(len, groups)) - min(map(len, groups)) <= 1


def test_a_sweep_stacks_the_planned_groups(monkeypatch):
    stacks = []
    real = sweeps.Engine

    def engine(trainers):
        stacks.append([(t.train_config.seed, t.step) for t in trainers])
        return real(trainers)

    monkeypatch.setattr(sweeps, "Engine", engine)
    sweep("tiny", seed=[0, 1, 2, 3, 4], steps=3, group_size=2, progress=False, classify=False)
    assert stacks == [[(0, 0)], [(1, 0), (2, 0)], [(3, 0), (4, 0)]]


def test_bad_sweeps_are_refused_clearly(tmp_path):
    with pytest.raises(ConfigError, match="clip_grad"):
        sweep("tiny", seed=[0, 1], clip_grad=1.0, progress=False)
    with pytest.raises(ConfigError, match="unknown setting"):
        sweep("tiny", seed=[0, 1], widht=[1, 2], progress=False)
    with pytest.raises(ConfigError, match="attn_rate"):
        sweep("tiny", attn_rate=[0.0, 2.0], progress=False)
    with pytest.raises(ConfigError, match="no values"):
        sweep("tiny", seed=[], progress=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not empty"):
        sweep("tiny", out=tmp_path / "busy", seed=[0, 1], steps=5, progress=False)
    with pytest.raises(RunDirError, match="not a sweep directory"):
        interp.resume_sweep(tmp_path / "busy", progress=False)
    assert parse_value("attn_rate", "0.5") == 0.5 and parse_value("steps", "7") == 7
    assert parse_value("stop_at_test_acc", "none") is None
    with pytest.raises(ConfigError, match="steps"):
        parse_value("steps", "1.5")


def test_cli_sweep(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["sweep", "--preset", "tiny", "--attn-rate", "0,1", "--seeds", "3", "--set", "steps=20",
                 "--set", "log_every=5", "--out", str(out), "--quiet", "--no-classify"]) == 0
    printed = capsys.readouterr().out
    assert "attn_rate=0.0: step 20" in printed and "2 models" in printed
    rows = json.loads((out / "results.json").read_text())
    assert [(r["attn_rate"], r["seed"], r["step"]) for r in rows] == [(0.0, 3, 20), (1.0, 3, 20)]
    assert main(["sweep", "--preset", "tiny", "--seeds", "0,1", "--out", str(out), "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["sweep", "--resume", str(out), "--quiet", "--no-classify"]) == 0  # all done: nothing to train
    assert main(["sweep", "--set", "steps", "--out", str(tmp_path / "x")]) == 2
    assert "FIELD=V" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    assert "interp sweep --preset pizza-a --attn-rate 0,0.5,1" in capsys.readouterr().out


def test_sweeps_keep_no_training_loop():
    """One engine: the sweep module holds the grid, the grouping and the table, not a second loop."""
    import inspect

    from interp import sweeps

    source = inspect.getsource(sweeps)
    for loop_piece in ("apply_update", "vmap(", "stack_module_state", "loss_fn", "make_optimizer"):
        assert loop_piece not in source


def test_stacked_clean_stops_equal_alone(tmp_path):
    """stop_when_clean in a stack: each model stops at its own clean check, as it would alone."""
    kw = dict(lr=1e-2, steps=1500, stop_at_test_acc=None, stop_when_clean=True, log_every=10, checkpoint_every=500)
    with one_thread():
        stacked = sweep("tiny", progress=False, classify=False, seed=[0, 1], **kw)
        alones = {seed: interp.train("tiny", progress=False, seed=seed, **kw) for seed in (0, 1)}
    for seed in (0, 1):
        s = stacked.results[f"seed={seed}"]
        alone = alones[seed]
        assert s.step == alone.step and s.stop_reason == alone.stop_reason and s.stop_reason.startswith("clean")
        assert_same_model(s.model, alone.model)


def test_resume_keeps_the_axis_order(tmp_path):
    """sweep.json's keys are written sorted: a grid whose axes are not in alphabetical order must still
    resume into its own run directories (not train every model again under new names)."""
    out = tmp_path / "s"
    first = sweep("tiny", out=out, seed=[0, 1], attn_rate=[0.0, 1.0], steps=5, log_every=5, progress=False,
                  classify=False)
    names = sorted(d.name for d in (out / "runs").iterdir())
    assert [r["name"] for r in first.rows][0] == "seed=0,attn_rate=0.0"
    assert interp.resume_sweep(out, progress=False, classify=False).results == {}  # all done: nothing trained
    spec = json.loads((out / "sweep.json").read_text())
    del spec["axes"]  # a sweep directory written before "axes" existed: the order of its run directories
    (out / "sweep.json").write_text(json.dumps(spec))
    again = interp.resume_sweep(out, progress=False, classify=False)
    assert again.results == {} and [r["name"] for r in again.rows] == [r["name"] for r in first.rows]
    assert sorted(d.name for d in (out / "runs").iterdir()) == names


def test_ray_backend_errors_are_one_line(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed: `import ray` fails
    out = tmp_path / "r"
    assert main(["sweep", "--seeds", "0,1", "--steps", "5", "--backend", "ray", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'needs Ray: pip install -e ".[ray]"' in err
    assert not out.exists()  # refused before anything was written
    assert main(["sweep", "--seeds", "0,1", "--address", "ray://h:10001", "--out", str(out), "--quiet"]) == 2
    assert "--backend ray" in capsys.readouterr().err
    for flag, value in (("--workers", "0"), ("--group-size", "-1"), ("--threads", "0")):
        assert main(["sweep", "--seeds", "0,1", flag, value, "--out", str(out), "--quiet"]) == 2
        assert "positive integer" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="backend"):
        sweep("tiny", seed=[0, 1], backend="dask", progress=False)
    with pytest.raises(ConfigError, match="out"):
        sweep("tiny", seed=[0, 1], backend="ray", progress=False)
