"""All benchmarks in one command (`make bench`), printed as one table.

    python benchmarks/run.py            # full run (several minutes on 2 cores)
    python benchmarks/run.py --quick    # smoke run: tiny sizes, a few seconds of each part
    python benchmarks/run.py --parts step,sweep

Parts (each measures its contenders side by side in the same run, interleaved where timed, and
reports medians and ratios, which survive a noisy machine better than absolute seconds):
    step      one nanda training step: ours vs plain PyTorch vs TransformerLens's native model
    import    fresh-process time of `interp --help`, `--version`, `import interp`, the training imports
    clean     time to a clean circuit, fresh `interp train --preset P --recipe fast` processes, and its breakdown
    recipes   fast vs published recipe on 5 seeds (the recorded table; scripts/seed_table.py re-measures it)
    time      time to >= 99 % test accuracy: fast recipes (nanda, pizza-a, pizza-b); published, extrapolated
    sweep     models per minute of a sweep: stacked (vmapped) vs one after another, with identical results
    classify  classify latency (benchmarks/bench_classify.py, when present)
    memory    peak memory and wall time of `interp train --preset nanda --recipe fast` in a fresh process
    progress  progress measures over 250 nanda snapshots: batched vs one snapshot at a time, same numbers
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

PARTS = {"step": "step_cost", "import": "import_time", "clean": "clean_time", "recipes": "recipe_table",
         "time": "time_to_acc", "sweep": "sweep_speed", "classify": "bench_classify", "memory": "memory",
         "progress": "bench_progress"}


def classify_rows(quick: bool) -> list[tuple[str, str, str]]:
    """Rows of bench_classify.py (written by the classify work): its run() if it has one, else its output."""
    if not (HERE / "bench_classify.py").exists():
        return [("classify latency", "skipped", "benchmarks/bench_classify.py not present")]
    module = importlib.import_module("bench_classify")
    if hasattr(module, "run"):
        return [tuple(map(str, row)) for row in module.run(quick=quick)]
    proc = subprocess.run([sys.executable, str(HERE / "bench_classify.py"), *(["--quick"] if quick else [])],
                          capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.strip()] or [proc.stderr.strip()[-200:]]
    return [("classify", line, "") for line in lines]


def table(rows: list[tuple[str, str, str]]) -> str:
    head = ("benchmark", "result", "details")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(2)]
    lines = [f"| {head[0]:{widths[0]}} | {head[1]:{widths[1]}} | {head[2]}",
             f"|{'-' * (widths[0] + 2)}|{'-' * (widths[1] + 2)}|---"]
    lines += [f"| {r[0]:{widths[0]}} | {r[1]:{widths[1]}} | {r[2]}" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run with tiny sizes (checks that it works, not speed)")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)} (default: all)")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    import torch

    print(f"# interp benchmarks{' (--quick: smoke sizes, not for numbers)' if args.quick else ''}: "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)
    rows = []
    t0 = time.perf_counter()
    for part in parts:
        if part == "classify":
            rows += classify_rows(args.quick)
        else:
            rows += importlib.import_module(PARTS[part]).run(quick=args.quick)
        print(f"# {part} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
