"""Run independent pieces of work as Ray tasks: on a local Ray started here, or on a cluster.

    with ray_session(num_workers=2):                  # a local Ray with 2 CPUs (or address="ray://...")
        results = run_tasks([partial(train_group, spec) for spec in groups])

A task is a picklable callable without arguments (a function from an importable module, or a
functools.partial of one); each takes one CPU (`num_gpus` for a GPU each), so a local Ray with
N CPUs runs N at once. Results come back in the order of the tasks.

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

from contextlib import contextmanager
from typing import Any, Callable, Iterator

from tqdm.auto import tqdm

from interp.errors import InterpError


class DistributedError(InterpError, RuntimeError):
    """Ray is missing, cannot start, or lost a task for good."""


def _ray():
    try:
        import ray
    except ImportError:
        raise DistributedError('the Ray backend needs Ray: pip install -e ".[ray]"') from None
    return ray


@contextmanager
def ray_session(address: str | None = None, num_workers: int = 2, attempts: int = 3) -> Iterator[None]:
    """Connect to the Ray cluster at `address`, or start a local Ray with `num_workers` CPUs; on exit
    shut down what this started. Inside an already connected session it does nothing.

    A local start is tried `attempts` times: on a machine under heavy load Ray's node gives up
    waiting for its own agent process (a fixed 15 s limit in Ray 2.60, ray-project/ray#65983). On
    this 2-core machine at load average 15-20 (other jobs running), 5 of the first 7 starts failed
    so; a start that got through took 34 s.
    """
    ray = _ray()
    if ray.is_initialized():
        yield
        return
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise DistributedError(f"num_workers must be a positive integer, got {num_workers!r}")
    where = f"the Ray cluster at {address}" if address else f"a local Ray with {num_workers} CPUs"
    for _ in range(1 if address else attempts):
        try:
            ray.init(address=address, num_cpus=None if address else num_workers, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
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


def _call(task: Callable[[], Any]) -> Any:
    return task()


def run_tasks(tasks: list[Callable[[], Any]], *, address: str | None = None, num_workers: int = 2,
              num_gpus: float = 0, max_retries: int = 3, on_result: Callable[[int, Any], None] | None = None,
              progress: bool = False) -> list[Any]:
    """Run each callable as a Ray task (one CPU each, `num_gpus` GPUs each); their results, in order.

    Uses the Ray session already open (`ray_session`), else opens one for this call. A task whose
    worker dies is retried up to `max_retries` times. `on_result(i, result)` runs here, in the
    driver, as each task finishes (e.g. to update a results table). The first exception a task
    raises is raised here (an InterpError as itself) once every task has ended.
    """
    ray = _ray()
    with ray_session(address, num_workers):
        remote = ray.remote(num_cpus=1, num_gpus=num_gpus, max_retries=max_retries, retry_exceptions=False)(_call)
        refs = [remote.remote(t) for t in tasks]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        failure, pending = None, list(refs)
        with tqdm(total=len(refs), desc="tasks", unit="task", disable=not progress) as bar:
            while pending:
                (ref,), pending = ray.wait(pending, num_returns=1)
                i = index[ref]
                try:
                    results[i] = ray.get(ref)
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
