"""One writer per run directory, and resume states that belong to their run.

`writer(path)` holds an exclusive lock (`filelock`, an flock on `PATH/.interp.lock`) for as long as a
command writes the directory: `interp train`, `train --resume`, `demo` and `sweep` take it for
their whole run, through `@holds_lock` on the functions they call. A second process is refused at
once with one line naming the holder (its pid, host, start time and command, written into the lock
file). The lock is released when the holder exits, however it exits (SIGKILL included: the kernel
drops flocks with the process), so a killed run never leaves a stale lock.

Each run gets a random id at creation, written into run.json and into every resume.safetensors;
`check_resume_state` refuses a resume state whose id or configs differ from run.json's.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path

from filelock import FileLock, Timeout

from interp.config import upgrade_train_dict
from interp.errors import CheckpointError, ConfigError, RunDirError
from interp.fsio import file_mode
from interp.safeio import parse_json

LOCK = ".interp.lock"
_HELD: dict[str, int] = {}  # directories this process holds: demo's lock covers the train() it calls


def new_run_id() -> str:
    return uuid.uuid4().hex


def user_files(path: Path) -> list[Path]:
    """A directory's entries other than the lock: what makes a run directory 'not empty'."""
    return [p for p in path.iterdir() if p.name != LOCK]


def _holder(lock_path: Path) -> str:
    """Who holds the lock, from what it wrote into the lock file (best effort: it may be mid-write)."""
    try:
        with open(lock_path, "rb") as f:
            info = json.loads(f.read(4096))
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info["started"]))
        return f"pid {info['pid']} on {info['host']}, since {started}: {' '.join(info['argv'])[:120]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


def _describe_self(fd: int) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "argv": ["interp", *sys.argv[1:]]}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)


@contextlib.contextmanager
def writer(path: str | Path, create: bool = True):
    """Hold `path`'s run lock for the block; RunDirError (one line naming the holder) if another
    process holds it. create=False: a missing directory is left to the caller to report."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: exists and is not a directory")
    created = not path.exists()
    if created and not create:
        yield
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
        key = str(path.resolve())
        if key in _HELD:  # already ours, further up the call stack
            _HELD[key] += 1
            try:
                yield
            finally:
                _HELD[key] -= 1
            return
        lock = FileLock(path / LOCK, mode=file_mode(), blocking=False)
        lock.acquire()
    except Timeout:
        raise RunDirError(f"{path}: another interp process is writing this directory ({_holder(path / LOCK)}); "
                          "wait for it to finish, or use another directory") from None
    except OSError as e:
        raise RunDirError(f"{path}: cannot write the run directory ({e.strerror or e})") from None
    _HELD[key] = 1
    try:
        with contextlib.suppress(OSError):
            fd = os.open(path / LOCK, os.O_WRONLY)
            try:
                _describe_self(fd)
            finally:
                os.close(fd)
        yield
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.truncate(path / LOCK, 0)  # a free lock names no holder
        if created and not user_files(path):  # a refused run leaves nothing behind
            with contextlib.suppress(OSError):
                (path / LOCK).unlink()
                path.rmdir()
        lock.release()


def holds_lock(param, create: bool = True):
    """Decorator: the call holds the run lock of its argument named `param` (a directory; None: no
    lock), or of the directory `param(*args, **kwargs)` returns."""

    def decorate(fn):
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def locked(*args, **kwargs):
            path = param(*args, **kwargs) if callable(param) else sig.bind(*args, **kwargs).arguments.get(param)
            if path is None:
                return fn(*args, **kwargs)
            with writer(path, create):
                return fn(*args, **kwargs)

        return locked

    return decorate


def _meta_json(meta: dict[str, str], key: str, source: Path):
    value = meta.get(key)
    return None if value is None else parse_json(value, str(source), f"metadata {key!r}")


def check_resume_state(resume_path: Path, info: dict, meta: dict[str, str]) -> None:
    """Refuse (CheckpointError) a resume state that is not this run's: its run id and configs must
    be run.json's (`steps` may differ: `--resume --steps N` changes it)."""
    got, want = meta.get("run_id"), info.get("run_id")  # a string, stored as it is (None as "null")
    got = None if got == "null" else got
    if got != want:
        raise CheckpointError(f"{resume_path}: resume state belongs to another run (run id {got}, run.json has {want}); "
                              "restore this run's file, or start again with --overwrite")
    for key in ("model_config", "train_config"):
        a, b = _meta_json(meta, key, resume_path), info.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key == "train_config":
            # Old names read as today's: run.json is rewritten in today's names by `--resume --steps N`,
            # while the resume state may still carry the old ones (config.upgrade_train_dict).
            try:
                a, b = upgrade_train_dict(a), upgrade_train_dict(b)
            except ConfigError as e:
                raise CheckpointError(f"{resume_path}: {e}") from None
            a, b = {k: v for k, v in a.items() if k != "steps"}, {k: v for k, v in b.items() if k != "steps"}
        if a != b:
            diff = sorted(k for k in set(a or {}) | set(b or {}) if (a or {}).get(k) != (b or {}).get(k)) \
                if isinstance(a, dict) and isinstance(b, dict) else [key]
            raise CheckpointError(f"{resume_path}: resume state's {key} differs from run.json ({', '.join(diff[:4])}); "
                                  "it is not this run's")
