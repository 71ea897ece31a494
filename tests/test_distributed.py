"""The Ray backend on one local Ray with 2 workers, shared by the module (its start is the cost).

interp.distributed's runner: results in order, files written atomically, a killed worker's task
retried, a task's own error raised once, a time limit. `interp sweep --backend ray`: the same
weights (bit for bit) and the same table as the in-process sweep; a killed worker and a killed
driver lose and duplicate nothing; a sweep started with one backend resumes with the other."""

import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ray = pytest.importorskip("ray")

import interp  # noqa: E402
from interp import distributed, sweeps, training  # noqa: E402
from interp.checkpoints import atomic_write_json  # noqa: E402
from interp.cli import main  # noqa: E402
from interp.distributed import DistributedError  # noqa: E402
from interp.errors import ConfigError, InterpError  # noqa: E402

# Workers import the task functions: send this module's functions by value (tests are not a package).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

START_TIMEOUT = 240  # s: ray_session tries a start 3 times; past this the tests fail, never hang
TEST_TIMEOUT = 300  # s for any one test


def _alarm(seconds: int, what: str):
    def too_slow(*_):
        raise TimeoutError(f"{what} took more than {seconds} s")

    signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(seconds)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray with 2 CPUs for the module; the test fails with Ray's reason if it cannot start."""
    old = signal.getsignal(signal.SIGALRM)
    _alarm(START_TIMEOUT, "starting a local Ray")
    session = distributed.ray_session(num_workers=2)
    try:
        session.__enter__()
    except (DistributedError, TimeoutError) as e:
        pytest.fail(f"could not start a local Ray for these tests: {e}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert ray.cluster_resources()["CPU"] == 2
    yield ray.get_runtime_context().gcs_address
    session.__exit__(None, None, None)
    assert not ray.is_initialized()  # the session shut down the Ray it started


@pytest.fixture(autouse=True)
def time_limit(request):
    old = signal.getsignal(signal.SIGALRM)
    _alarm(TEST_TIMEOUT, request.node.name)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# ---- interp sweep --backend ray ---------------------------------------------------------------------
# 6 models, 2 shapes; group_size 2 cuts each shape's 3 models into groups of 1 and 2: 4 groups, 4 tasks.
GRID = dict(d_model=[16, 32], seed=[0, 1, 2])
FIXED = dict(steps=60, log_every=10, checkpoint_every=20)
NAMES = [f"d_model={d},seed={s}" for d in (16, 32) for s in (0, 1, 2)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The grid in-process with 1 torch thread (what each Ray task uses), classified."""
    return interp.sweep("tiny", out=tmp_path_factory.mktemp("inprocess") / "s", group_size=2, threads=1,
                        progress=False, **GRID, **FIXED)


def run_files(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Every checkpoint file of a run (final, resume, snapshots) by relative path."""
    files = [run_dir / "final.safetensors", run_dir / "resume.safetensors", *sorted((run_dir / "checkpoints").glob("*"))]
    return {str(f.relative_to(run_dir)): load_file(f) for f in files}


def assert_same_runs(a: Path, b: Path, exact: bool = True) -> None:
    for name in NAMES:
        fa, fb = run_files(a / "runs" / name), run_files(b / "runs" / name)
        assert fa.keys() == fb.keys(), name  # the same snapshots: none lost, none extra
        for f in fa:
            assert fa[f].keys() == fb[f].keys()
            for k in fa[f]:
                if exact:
                    assert torch.equal(fa[f][k], fb[f][k]), (name, f, k)
                else:
                    torch.testing.assert_close(fa[f][k], fb[f][k], atol=1e-6, rtol=0, msg=f"{name} {f} {k}")
        ha, hb = (json.loads((d / "runs" / name / "history.json").read_text()) for d in (a, b))
        assert [h["step"] for h in ha] == [h["step"] for h in hb] == list(range(0, 61, 10)), name  # no step twice
        drop = lambda h: {k: v for k, v in h.items() if k != "seconds"}  # noqa: E731
        if exact:
            assert [drop(h) for h in ha] == [drop(h) for h in hb], name


def table(out: Path) -> list[dict]:
    """results.json without what differs from run to run (wall time, the directory's path)."""
    rows = json.loads((out / "results.json").read_text())
    return [{k: v for k, v in r.items() if k not in ("seconds", "run_dir")} for r in rows]


def test_ray_equals_inprocess_bit_for_bit(local_ray, reference, tmp_path):
    out = tmp_path / "ray"
    result = interp.sweep("tiny", out=out, group_size=2, backend="ray", progress=False, **GRID, **FIXED)
    assert result.results == {}  # a Ray sweep leaves its models on disk
    assert [r["name"] for r in result.rows] == NAMES
    assert_same_runs(reference.out, out)
    assert table(out) == table(reference.out)
    assert "classify.label" in result.rows[0]  # classified in the workers, the same verdicts
    assert (out / "results.csv").read_text().splitlines()[0] == (reference.out / "results.csv").read_text().splitlines()[0]


def test_an_inprocess_sweep_resumes_on_ray(local_ray, reference, tmp_path, monkeypatch):
    calls, real = {"n": 0}, training.apply_update

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 60 + 35:  # group 1 (1 model) done; group 2 (a stack of 2) dies at step 35
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "apply_update", interrupted)
    with pytest.raises(KeyboardInterrupt):
        interp.sweep("tiny", out=tmp_path / "s", group_size=2, threads=1, progress=False, **GRID, **FIXED)
    monkeypatch.setattr(training, "apply_update", real)
    assert [r["name"] for r in table(tmp_path / "s")] == NAMES[:1]
    assert main(["sweep", "--resume", str(tmp_path / "s"), "--backend", "ray", "--quiet"]) == 0
    assert_same_runs(reference.out, tmp_path / "s")
    assert table(tmp_path / "s") == table(reference.out)


def _killing_task(kill_group: str, marks: str, *args, **kwargs):
    """sweeps._group_task, whose first attempt on the group starting with `kill_group` (a stack of 2)
    SIGKILLs its own worker process at update 30 (as the OOM killer or a lost machine would), after the
    step-20 snapshots."""
    jobs = args[3]
    with open(os.path.join(marks, f"attempts_{jobs[0].name}.txt"), "a") as f:
        f.write(f"{os.getpid()}\n")
    killed = os.path.join(marks, "killed")
    real, calls = training.apply_update, [0]

    def update(*a, **kw):
        calls[0] += 1
        if calls[0] == 30 and not os.path.exists(killed):
            open(killed, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, **kw)

    if jobs[0].name == kill_group:
        training.apply_update = update
    try:
        return sweeps._group_task(*args, **kwargs)
    finally:
        training.apply_update = real


def test_a_killed_worker_is_retried_and_nothing_is_lost(local_ray, reference, tmp_path, monkeypatch):
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setattr(sweeps, "_group_task", partial(_killing_task, NAMES[1], str(marks)))
    out = tmp_path / "ray"
    result = interp.sweep("tiny", out=out, group_size=2, backend="ray", progress=False, **GRID, **FIXED)
    assert (marks / "killed").exists()
    pids = (marks / f"attempts_{NAMES[1]}.txt").read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1]  # killed once, rerun in a new worker
    assert [r["name"] for r in result.rows] == NAMES
    # The retry resumed from the step-20 snapshot in the same stack: still bit for bit.
    assert_same_runs(reference.out, out)
    assert table(out) == table(reference.out)
    assert not list(out.rglob(".*.tmp"))


# ---- the runner -------------------------------------------------------------------------------------
def _task(out_dir: str, i: int, kill_first: bool = False) -> int:
    """Write result_i.json atomically; with kill_first, the first attempt SIGKILLs its own worker
    after leaving an attempt marker, as a machine loss or the OOM killer would."""
    attempts = os.path.join(out_dir, f"attempts_{i}.txt")
    with open(attempts, "a") as f:
        f.write(f"{os.getpid()}\n")
    if kill_first and not os.path.exists(os.path.join(out_dir, f"killed_{i}")):
        atomic_write_json(os.path.join(out_dir, f"killed_{i}"), True)
        os.kill(os.getpid(), signal.SIGKILL)
    atomic_write_json(os.path.join(out_dir, f"result_{i}.json"), {"i": i, "square": i * i})
    return i * i


def _failing(out_dir: str) -> None:
    with open(os.path.join(out_dir, "failing_attempts.txt"), "a") as f:
        f.write("x\n")
    raise ConfigError("bad grid value in this group")


def test_run_tasks_on_local_ray_retries_a_killed_worker(local_ray, tmp_path):
    out = str(tmp_path)
    tasks = [partial(_task, out, i, kill_first=(i == 2)) for i in range(5)]
    seen = {}
    assert distributed.run_tasks(tasks, on_result=seen.__setitem__) == [0, 1, 4, 9, 16]
    assert seen == {i: i * i for i in range(5)}  # reported in the driver as each task ended
    # a task that raises: not retried, raised here as itself
    with pytest.raises(ConfigError, match="bad grid value"):
        distributed.run_tasks([partial(_task, out, 7), partial(_failing, out)])
    for i in range(5):
        assert json.loads((tmp_path / f"result_{i}.json").read_text()) == {"i": i, "square": i * i}
    pids = (tmp_path / "attempts_2.txt").read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1]  # killed once, rerun in a new worker process
    assert all(len((tmp_path / f"attempts_{i}.txt").read_text().split()) == 1 for i in (0, 1, 3, 4))
    assert (tmp_path / "failing_attempts.txt").read_text() == "x\n"
    assert (tmp_path / "result_7.json").exists()  # the other task of the failing call still finished
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written files left behind


def test_bad_arguments_are_one_clear_error():
    with pytest.raises(InterpError, match="num_workers"):
        with distributed.ray_session(num_workers=0):
            pass


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def test_tasks_past_the_time_limit_are_cancelled(local_ray):
    t0 = time.monotonic()
    with pytest.raises(DistributedError, match="1 of 1 Ray tasks did not finish within 2 s"):
        distributed.run_tasks([partial(_sleep, 60)], timeout=2)
    assert time.monotonic() - t0 < 30
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < 2:  # the cancelled task's CPU is free again
        assert time.monotonic() < deadline
        time.sleep(0.1)


# ---- last: a driver of its own (its tasks need new worker processes) ------------------------------
def test_a_killed_driver_resumes_with_the_other_backend(local_ray, reference, tmp_path):
    """The CLI driver on the module's Ray (--address), SIGKILLed once a group has finished; then
    `interp sweep --resume` in-process completes it."""
    out = tmp_path / "s"
    argv = [str(Path(sys.executable).parent / "interp"), "sweep", "--preset", "tiny", "--d-model", "16,32", "--seeds", "0,1,2",
            "--set", "steps=60", "--set", "log_every=10", "--set", "checkpoint_every=20", "--group-size", "2",
            "--backend", "ray", "--address", local_ray, "--out", str(out), "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    driver = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + TEST_TIMEOUT - 60
    try:
        while not list(out.glob("runs/*/classification.json")):
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, "no model finished in time"
            time.sleep(0.05)
    finally:
        driver.kill()  # SIGKILL: no cleanup, no final table
        driver.wait(30)
    finished = {p.parent.name for p in out.glob("runs/*/classification.json")}
    assert 0 < len(finished) < len(NAMES), finished  # killed midway
    # Ray ends a dead driver's tasks: once their CPUs are free again, no worker writes the sweep.
    while ray.available_resources().get("CPU", 0) < 2:
        assert time.monotonic() < deadline, "the dead driver's tasks kept running"
        time.sleep(0.1)

    assert main(["sweep", "--resume", str(out), "--threads", "1", "--quiet"]) == 0
    assert [r["name"] for r in table(out)] == NAMES
    # Models at different steps when the driver died are resumed in smaller stacks: equal within rounding.
    assert_same_runs(reference.out, out, exact=False)
    cols = lambda rows: [{k: v for k, v in r.items() if not k.startswith(("classify.", "train_", "test_"))}  # noqa: E731
                         for r in rows]
    assert cols(table(out)) == cols(table(reference.out))
    assert [r["classify.label"] for r in table(out)] == [r["classify.label"] for r in table(reference.out)]
