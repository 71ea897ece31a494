"""The child process of the killed-run tests: `interp ARGV`, as the console script runs it.

It is forked from a multiprocessing forkserver that has already imported interp, so a child starts
in milliseconds instead of the seconds `import interp` takes.
"""

import os
import sys
import time
from pathlib import Path


def run(argv: list[str], threads: int, stall: tuple[str, int, str] | None = None, fsync: bool = True) -> None:
    """Run `interp ARGV` with `threads` torch threads (the parent's: same numerics, bit for bit).

    stall = (file name, n, flag): the n-th atomic write of that file stops between writing its temp
    file and renaming it, with the temp file cut to half (a write in progress); `flag` is created then,
    and the process waits there to be killed. fsync=False skips fsync, which only matters when the
    machine loses power: what a killed process wrote stays in the page cache.
    """
    import torch

    torch.set_num_threads(threads)
    if not fsync:
        os.fsync = lambda fd: None
    if stall:
        name, n, flag = stall
        replace, seen = os.replace, [0]

        def stalling_replace(src, dst, *args, **kwargs):
            if os.path.basename(dst) == name:
                seen[0] += 1
                if seen[0] == n:
                    os.truncate(src, os.path.getsize(src) // 2)
                    Path(flag).touch()
                    time.sleep(600)
            return replace(src, dst, *args, **kwargs)

        os.replace = stalling_replace
    from interp.cli import main

    sys.exit(main(argv))
