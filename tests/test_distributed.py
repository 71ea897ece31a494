"""The Ray task runner (interp.distributed) on a local Ray with 2 workers: results in order, files
written atomically, a killed worker's task retried, a task's own error raised once."""

import json
import os
import signal
import sys
from functools import partial

import pytest

ray = pytest.importorskip("ray")

from interp import distributed  # noqa: E402
from interp.checkpoints import atomic_write_json  # noqa: E402
from interp.errors import ConfigError, InterpError  # noqa: E402

# Workers import the task functions: send this module's functions by value (tests are not a package).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


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


def test_run_tasks_on_local_ray_retries_a_killed_worker(tmp_path):
    out = str(tmp_path)
    tasks = [partial(_task, out, i, kill_first=(i == 2)) for i in range(5)]
    with distributed.ray_session(num_workers=2):
        assert ray.cluster_resources()["CPU"] == 2
        seen = {}
        assert distributed.run_tasks(tasks, on_result=seen.__setitem__) == [0, 1, 4, 9, 16]
        assert seen == {i: i * i for i in range(5)}  # reported in the driver as each task ended
        # a task that raises: not retried, raised here as itself
        with pytest.raises(ConfigError, match="bad grid value"):
            distributed.run_tasks([partial(_task, out, 7), partial(_failing, out)])
    assert not ray.is_initialized()  # the session shut down the Ray it started
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
