"""Run independent pieces of work as Ray tasks: on a local Ray started here, or on a cluster.

    with ray_session(num_workers=2):        # a local Ray with 2 CPUs (or address="HEAD:6379", "ray://...")
        results = run_tasks([partial(work, x) for x in xs])   # work(x) on the workers, results in order

A task is a picklable callable without arguments (a function from an importable module, or a
functools.partial of one); each takes `cpus_per_task` CPUs (default 1; `num_gpus` GPUs each), and
a local Ray is started with `num_workers` times that, so it runs `num_workers` tasks at once.
Results come back in the order of the tasks. interp.sweeps sends each group of a sweep's plan as
one task (`interp sweep --backend ray`).

Resume safety, which the tasks must provide (the runner only retries):
- a task is retried (up to `max_retries`) when its worker process dies (killed, out of memory,
  machine lost), not when it raises: an exception from the task's own code is raised here after
  the other tasks have finished;
- so a task may run twice, the second time after an arbitrary cut in the first: it must write
  only through `interp.checkpoints.atomic_write_*` (old or new file, never half), write each file
  under a name that only it writes (its models' run directories), and start by resuming from what
  is on disk (finished models skipped, the others continued from their resume point), so that a
  retry, or a whole rerun after the driver itself was killed, ends with the same files;
- tables that combine several tasks' results (the sweep's results.csv) are written by the driver
  after `run_tasks` returns, from the files on disk, never by the tasks.
Ray is an optional extra: `pip install -e ".[ray]"`.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from tqdm.auto import tqdm

from interp.errors import InterpError


class DistributedError(InterpError, RuntimeError):
    """Ray is missing, cannot start, or lost a task for good."""


def require_ray():
    """The ray module, or one DistributedError line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise DistributedError('the Ray backend needs Ray: pip install -e ".[ray]"') from None
    return ray


@contextmanager
def ray_session(address: str | None = None, num_workers: int = 2, attempts: int = 3,
                cpus_per_worker: int = 1) -> Iterator[None]:
    """Connect to the Ray cluster at `address`, or start a local Ray with `num_workers` x
    `cpus_per_worker` CPUs; on exit shut down what this started. Inside an already connected
    session it does nothing.

    A local start is tried `attempts` times: on a machine under heavy load Ray's node gives up
    waiting for its own agent process (a fixed 15 s limit in Ray 2.60, ray-project/ray#65983). On
    this 2-core machine at load average 15-20 (other jobs running), 5 of the first 7 starts failed
    so; a start that got through took 34 s.
    """
    ray = require_ray()
    for name, n in (("num_workers", num_workers), ("cpus_per_worker", cpus_per_worker)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise DistributedError(f"{name} must be a positive integer, got {n!r}")
    if ray.is_initialized():
        yield
        return
    cpus = num_workers * cpus_per_worker
    where = f"the Ray cluster at {address}" if address else f"a local Ray with {cpus} CPUs"
    with _ray_logs_to_root():
        for _ in range(1 if address else attempts):
            try:
                # "local": a new Ray of our own, even where RAY_ADDRESS or a `ray start` cluster exists
                local = {} if address else dict(num_cpus=cpus, include_dashboard=False)
                ray.init(address=address or "local", log_to_driver=False, configure_logging=False, **local)
                break
            except Exception as e:  # noqa: BLE001 - Ray raises a bare Exception when its node times out starting
                ray.shutdown()
                error = str(e).splitlines()[0] if str(e) else type(e).__name__
        else:
            raise DistributedError(f"could not start {where}: {error}")
        try:
            yield
        finally:
            ray.shutdown()


@contextmanager
def _ray_logs_to_root() -> Iterator[None]:
    """Ray's log records (e.g. its token-auth notice at start) go to the root logger while Ray runs,
    not to Ray's own stderr handler: the CLI keeps them for --verbose, so a quiet sweep prints nothing."""
    log = logging.getLogger("ray")
    saved = log.handlers[:], log.propagate
    log.handlers, log.propagate = [], True
    try:
        yield
    finally:
        log.handlers, log.propagate = saved


def _call(task: Callable[[], Any]) -> Any:
    return task()


def run_tasks(tasks: list[Callable[[], Any]], *, address: str | None = None, num_workers: int = 2,
              cpus_per_task: int = 1, num_gpus: float = 0, max_retries: int = 3,
              on_result: Callable[[int, Any], None] | None = None, progress: bool = False,
              timeout: float | None = None) -> list[Any]:
    """Run each callable as a Ray task (`cpus_per_task` CPUs, `num_gpus` GPUs each); their results, in order.

    Uses the Ray session already open (`ray_session`), else opens one for this call. A task whose
    worker dies is retried up to `max_retries` times. `on_result(i, result)` runs here, in the
    driver, as each task finishes (e.g. to update a results table). The first exception a task
    raises is raised here (an InterpError as itself) once every task has ended. `timeout`: seconds
    all tasks may take; past it the others are cancelled and a DistributedError raised.
    """
    ray = require_ray()
    with ray_session(address, num_workers, cpus_per_worker=cpus_per_task):
        remote = ray.remote(num_cpus=cpus_per_task, num_gpus=num_gpus, max_retries=max_retries,
                            retry_exceptions=False)(_call)
        refs = [remote.remote(t) for t in tasks]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        failure, pending = None, list(refs)
        deadline = None if timeout is None else time.monotonic() + timeout
        with tqdm(total=len(refs), desc="tasks", unit="task", disable=not progress) as bar:
            while pending:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                done, pending = ray.wait(pending, num_returns=1, timeout=left)
                if not done:
                    for ref in pending:
                        ray.cancel(ref, force=True)
                    raise DistributedError(f"{len(pending)} of {len(refs)} Ray tasks did not finish within {timeout:g} s")
                i = index[done[0]]
                try:
                    results[i] = ray.get(done[0])
                except ray.exceptions.RayTaskError as e:  # the task's own code raised
                    failure = failure or (e.cause if isinstance(e.cause, InterpError) else
                                          DistributedError(f"task {i} failed: {type(e.cause).__name__}: {e.cause}"))
                except ray.exceptions.RayError as e:  # its worker died more than max_retries times, ...
                    failure = failure or DistributedError(f"task {i} was lost: {str(e).splitlines()[0]}")
                else:
                    if on_result is not None:
                        on_result(i, results[i])
                bar.update(1)
        if failure is not None:
            raise failure
        return results
