"""`interp train` killed with SIGKILL at random moments and in the middle of checkpoint writes:
no corrupt checkpoint is ever visible, and `interp train --resume` (itself killed too) ends with
the same weights, snapshots and history as a run never interrupted, bit for bit.
"""

import contextlib
import json
import multiprocessing
import os
import random
import re
import signal
import time
from multiprocessing import forkserver

import pytest
import torch

import interp
from interp import checkpoints as ck
from interp import rundir
from interp.cli import main

from helpers import cli_child

STEPS, EVERY = 80, 5
TRAIN = ["train", "--preset", "tiny", "--steps", str(STEPS), "--checkpoint-every", str(EVERY), "--log-every", "5",
         "--quiet"]
TEMP = re.compile(r"\.(?P<name>[\w.]+)\.\w+\.tmp")  # what atomic_write_bytes leaves when killed mid-write


@contextlib.contextmanager
def no_fsync():
    """For runs that are not killed: fsync guards against power loss only, and is most of their time here."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(os, "fsync", lambda fd: None)
        yield


@pytest.fixture(scope="module")
def spawn():
    """start(argv, stall=None, fsync=True) -> a running `interp ARGV` child (cli_child.run); none outlives us."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["helpers.cli_child", "interp.cli", "interp.training"])
    started = []

    def start(argv, stall=None, fsync=True):
        p = ctx.Process(target=cli_child.run, args=([str(a) for a in argv], torch.get_num_threads(), stall, fsync))
        p.start()
        started.append(p)
        return p

    yield start
    for p in started:
        if p.is_alive():
            p.kill()
        p.join()
    forkserver._forkserver._stop()


def _tensors(path):
    return ck.read_safetensors(path)[0]


def _history(run):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads((run / ck.HISTORY).read_text())]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The run never interrupted: final weights, every snapshot, history."""
    run = tmp_path_factory.mktemp("ref") / "run"
    with no_fsync():
        assert main([*TRAIN, "--out", str(run)]) == 0
    return {"final": _tensors(run / ck.FINAL), "history": _history(run),
            "snapshots": {s: _tensors(p) for s, p in ck.list_snapshots(run)}}


def resume_step(run) -> int:
    """The step of the run's resume point (-1 before there is one), from the file's header alone."""
    try:
        with open(run / ck.RESUME, "rb") as f:
            return int(json.loads(json.loads(f.read(int.from_bytes(f.read(8), "little")))["__metadata__"]["step"]))
    except FileNotFoundError:
        return -1


def wait_for(proc, until) -> float:
    """Poll until until() holds, with `proc` still running; the time it took."""
    t0 = time.monotonic()
    while not until():
        assert proc.is_alive(), f"exited with {proc.exitcode} before the kill"
        assert time.monotonic() - t0 < 120, "timed out waiting for the moment to kill"
        time.sleep(0.002)
    return time.monotonic() - t0


def sigkill(proc):
    assert proc.is_alive(), f"exited with {proc.exitcode} before the kill"
    proc.kill()
    proc.join()
    assert proc.exitcode == -signal.SIGKILL


def assert_nothing_corrupt(run):
    """Every visible file is whole (checkpoints load, JSON parses); the only others are temp files
    named `.NAME.*.tmp`, which the loader never picks."""
    files = [p for p in run.rglob("*") if p.is_file()]
    for p in files:
        if p.name == rundir.LOCK:  # the run lock (tests/test_hostile.py checks it)
            continue
        if p.name.startswith("."):
            assert TEMP.fullmatch(p.name), p
        elif p.name == ck.RESUME:
            state = {k[6:]: v for k, v in _tensors(p).items() if k.startswith("model.")}
            ck.model_from_state(interp.PRESETS["tiny"][0], state, str(p))
        elif p.suffix == ".safetensors":
            interp.load(p)
        else:
            json.loads(p.read_text())
    assert [p.name for _, p in ck.list_snapshots(run)] == sorted(
        p.name for p in (run / ck.SNAPSHOTS).glob("*.safetensors") if not p.name.startswith("."))
    if (run / ck.FINAL).exists() or ck.list_snapshots(run):
        interp.load(run)


def assert_same_as_reference(run, reference):
    with no_fsync():
        assert main(["train", "--resume", str(run), "--quiet"]) == 0
    final = _tensors(run / ck.FINAL)
    assert final.keys() == reference["final"].keys()
    assert all(torch.equal(final[k], reference["final"][k]) for k in final)
    snaps = {s: _tensors(p) for s, p in ck.list_snapshots(run)}
    assert snaps.keys() == reference["snapshots"].keys()
    assert all(torch.equal(snaps[s][k], t) for s, ref in reference["snapshots"].items() for k, t in ref.items())
    assert _history(run) == reference["history"]


@pytest.mark.parametrize("seed, fsync", [(0, True), (1, True), (2, False)])
def test_random_kills_then_resume_give_the_same_weights(tmp_path, spawn, reference, seed, fsync):
    """A fresh run, then two resumes, each SIGKILLed at a seeded random moment of a checkpoint cycle
    (EVERY training steps, then snapshot, history and resume state written), with and without fsync."""
    rng, run = random.Random(seed), tmp_path / "run"
    for i in range(3):
        proc = spawn([*TRAIN, "--out", run] if i == 0 else ["train", "--resume", run, "--quiet"], fsync=fsync)
        target = resume_step(run) + rng.randrange(2 * EVERY, 16)
        wait_for(proc, lambda: resume_step(run) >= target - EVERY)
        cycle = wait_for(proc, lambda: resume_step(run) >= target)  # EVERY steps and their checkpoint writes
        time.sleep(rng.random() * cycle)  # a random moment of the next cycle
        sigkill(proc)
        assert_nothing_corrupt(run)
    assert resume_step(run) < STEPS and not (run / ck.FINAL).exists()
    assert_same_as_reference(run, reference)


@pytest.mark.parametrize("stalls", [
    [(ck.RESUME, 3), ("step_000040.safetensors", 1), (ck.FINAL, 1)],
    [(ck.HISTORY, 6), (ck.RUN_JSON, 1), (ck.RESUME, 2)],
])
def test_kill_mid_write_never_exposes_a_partial_file(tmp_path, spawn, reference, stalls):
    """Each child stops in the middle of writing the given file (its temp file half written) and is
    killed there: the first child is a fresh run, the others resume (the RUN_JSON case resumes with --steps)."""
    run = tmp_path / "run"
    for i, (name, n) in enumerate(stalls):
        flag = tmp_path / f"stalled-{i}"
        argv = [*TRAIN, "--out", run] if i == 0 else ["train", "--resume", run, "--quiet"]
        if name == ck.RUN_JSON:
            argv += ["--steps", str(STEPS)]
        proc = spawn(argv, (name, n, str(flag)), fsync=False)
        wait_for(proc, flag.exists)
        sigkill(proc)
        assert_nothing_corrupt(run)
        assert any(TEMP.fullmatch(p.name)["name"] == name for p in run.rglob(".*.tmp"))
    assert_same_as_reference(run, reference)
