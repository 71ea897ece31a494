"""Peak memory (and wall time) of `interp train` as a user runs it: a fresh process, imports included.

The child reports its own peak resident set size (getrusage RUSAGE_SELF, ru_maxrss: KiB on Linux),
so nothing else this benchmark ran is counted.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = ("import resource, sys\n"
         "from interp.cli import main\n"
         "rc = main(sys.argv[1:])\n"
         "print('MAXRSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
         "sys.exit(rc)\n")


def train_in_child(args: list[str]) -> dict:
    """Run `interp train ARGS` in a fresh process: wall seconds, peak RSS in MiB, its output."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, "train", *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"interp train {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    kib = int(next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("MAXRSS_KIB")))
    return {"wall": wall, "peak_mib": kib / 1024, "output": proc.stdout}


def run(quick: bool = False) -> list[tuple[str, str, str]]:
    preset, recipe = ("tiny", "published") if quick else ("nanda", "fast")
    with tempfile.TemporaryDirectory() as tmp:
        r = train_in_child(["--preset", preset, "--recipe", recipe, "--out", str(Path(tmp) / "run"), "--quiet"])
    last = r["output"].splitlines()[0]
    return [(f"peak memory: interp train --preset {preset} --recipe {recipe}", f"{r['peak_mib']:.0f} MiB",
             f"fresh process, {r['wall']:.1f} s wall with imports ({last}); target <= 1.5 GB")]


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
