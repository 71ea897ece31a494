"""Side by side, interleaved: a fresh `interp train --preset P --recipe fast` of two checkouts
(e.g. main's and this branch's), wall and CPU seconds, and what each run ended with.

    python benchmarks/compare_main.py /work/main/.venv/bin/interp .venv/bin/interp --preset nanda --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def one(interp: str, preset: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        r0, t0 = os.times(), time.perf_counter()
        proc = subprocess.run([interp, "train", "--preset", preset, "--recipe", "fast", "--out", str(Path(tmp) / "r"),
                               "--quiet", "--json"], capture_output=True, text=True, check=True)
        wall, r1 = time.perf_counter() - t0, os.times()
    final = json.loads(proc.stdout)
    return {"wall": wall, "cpu": r1.children_user - r0.children_user + r1.children_system - r0.children_system,
            "step": final["step"], "stop": final.get("stop_reason", f"stop_at_test_acc (test acc {final['test_acc']:.3f})")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--preset", default="nanda")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    runs = {args.a: [], args.b: []}
    for i in range(args.repeats):
        for exe in (args.a, args.b):
            load = os.getloadavg()[0]
            r = one(exe, args.preset)
            runs[exe].append(r)
            print(f"{exe}: {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU, step {r['step']}, {r['stop']} (load {load:.1f})",
                  flush=True)
    for exe, rs in runs.items():
        print(f"MEDIAN {exe}: {statistics.median(r['wall'] for r in rs):.1f} s wall, "
              f"{statistics.median(r['cpu'] for r in rs):.1f} s CPU, steps {[r['step'] for r in rs]}")


if __name__ == "__main__":
    main()
