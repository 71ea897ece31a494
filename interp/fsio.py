"""File modes: what a file we create should have under the user's umask.

tempfile.mkstemp creates 0600 files whatever the umask; files we write are meant for the user's
other tools and colleagues as much as any file they create, so they get 0o666 & ~umask.
"""

from __future__ import annotations

import os


def umask() -> int:
    """The process's umask, read without changing it (Linux /proc; elsewhere set-and-restore)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # not thread-safe, hence the /proc read first
    os.umask(old)
    return old


def file_mode() -> int:
    """Mode of a new regular file: what open(path, "w") would give it."""
    return 0o666 & ~umask()
