"""Time to a clean circuit as a user sees it: a fresh `interp train --preset P --recipe fast`
process, imports included, and where that time goes.

The child process times its own phases (exclusive wall and CPU seconds): importing interp's
training path, the training forward passes, evaluation (test pass, history rows, stop checks),
backward + AdamW, snapshot/resume writes (fsync included), the final save; "other" is the rest
(interpreter start, argument parsing, model init, data). The timers wrap the engine's methods
in the child only, for measurement.

    python benchmarks/clean_time.py                       # nanda, pizza-a, pizza-b; 3 fresh runs each
    python benchmarks/clean_time.py --presets nanda --repeats 5

Measured 2026-11-29 08:32-08:36 UTC, quiet machine (load ~1), main a441bcf, `--repeats 3`:
nanda fast 22.6 s median wall (300 steps; import 2.32 s, forward 7.36 s, backward + AdamW 10.42 s,
evaluate + stop 0.25 s, snapshots 0.14 s, other 2.07 s); pizza-a fast 11.8 s (180 steps; import
2.40, forward 2.36, backward 4.67, other 2.20); pizza-b fast 22.4 s (500 steps; forward 5.97,
backward 11.28). "other" was then mostly torch's meta kernels imported by the memory check; the
mask fix moved that import, it did not remove the time: at 12:52 UTC "other" was still 2.18 s (nanda),
now spent importing torch._dynamo, which torch.optim's AdamW pulls in on its first step. With
interp.optim.AdamW (no torch.optim), 13:02-13:06 UTC, load 0.4-1.8, `--repeats 5` / `3` / `1`: nanda
21.9 s (300 steps; import 2.37, forward 7.51, backward + AdamW 10.61, other 0.97 s), pizza-a 9.8 s (180
steps; other 0.91 s), pizza-b 56.4 s (its fixed 1500 steps).
2026-12-06 04:15-04:22 UTC, quiet machine (this CPU: Xeon, AVX512), `--repeats 5`: nanda 19.4 s (270
steps), pizza-a 10.0 s (180), pizza-b 31.4 s (800 steps: its GS-settled stop).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r'''
import json, sys, time
w0, c0 = time.perf_counter(), time.process_time()
import interp.cli, interp.training as T
imp = (time.perf_counter() - w0, time.process_time() - c0)
phases, stack = {}, []

def timed(owner, name, label):
    real = getattr(owner, name)
    def wrapper(*a, **k):
        w, c = time.perf_counter(), time.process_time()
        stack.append([0.0, 0.0])
        try:
            return real(*a, **k)
        finally:
            dw, dc = time.perf_counter() - w, time.process_time() - c
            inner = stack.pop()
            tot = phases.setdefault(label, [0.0, 0.0])
            tot[0] += dw - inner[0]; tot[1] += dc - inner[1]
            if stack:
                stack[-1][0] += dw; stack[-1][1] += dc
    setattr(owner, name, wrapper)

timed(T.Engine, "logits", "forward")
timed(T.Engine, "log", "evaluate + stop checks")
timed(T.Engine, "update", "backward + AdamW")
timed(T.Trainer, "save", "snapshots (fsync)")
timed(T.Trainer, "finish", "final save")
rc = interp.cli.main(sys.argv[1:])
phases["import interp"] = list(imp)
print("PHASES", json.dumps(phases))
sys.exit(rc)
'''


def fresh_run(preset: str, extra: list[str] | None = None) -> dict:
    """One fresh `interp train --preset PRESET --recipe fast` process: wall, CPU, steps, stop, phases."""
    with tempfile.TemporaryDirectory() as tmp:
        args = ["train", "--preset", preset, "--recipe", "fast", "--out", str(Path(tmp) / "run"), "--quiet", "--json",
                *(extra or [])]
        t0 = time.perf_counter()
        r0 = os.times()
        proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        r1 = os.times()
    if proc.returncode != 0:
        raise RuntimeError(f"interp {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    out = proc.stdout
    phases = json.loads(next(line for line in out.splitlines() if line.startswith("PHASES"))[7:])
    final = json.loads(out[: out.index("PHASES")])
    cpu = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
    return {"preset": preset, "wall": wall, "cpu": cpu, "step": final["step"], "stop_reason": final["stop_reason"],
            "test_acc": final["test_acc"], "phases": phases}


def breakdown(runs: list[dict]) -> str:
    labels = ["import interp", "forward", "backward + AdamW", "evaluate + stop checks", "snapshots (fsync)", "final save"]
    med = {k: statistics.median(r["phases"].get(k, [0, 0])[0] for r in runs) for k in labels}
    wall = statistics.median(r["wall"] for r in runs)
    med["other (start, init, data)"] = wall - sum(med.values())
    return ", ".join(f"{k} {v:.2f} s" for k, v in med.items())


def load() -> str:
    return "load average " + " / ".join(f"{x:.1f}" for x in os.getloadavg())


def run(quick: bool = False, presets=("nanda", "pizza-a", "pizza-b"), repeats: int = 3) -> list[tuple[str, str, str]]:
    rows = []
    targets = {"nanda": 10.0, "pizza-a": 5.0, "pizza-b": 5.0}
    for preset in (["pizza-b"] if quick else presets):
        before = load()
        runs = [fresh_run(preset, ["--steps", "20"] if quick else None) for _ in range(1 if quick else repeats)]
        walls = sorted(r["wall"] for r in runs)
        cpus = sorted(r["cpu"] for r in runs)
        rows.append((f"clean circuit, fresh process: {preset} fast",
                     f"{statistics.median(walls):.1f} s median wall ({statistics.median(cpus):.1f} s CPU)",
                     f"{len(runs)} runs, wall {', '.join(f'{w:.1f}' for w in walls)} s; steps "
                     f"{', '.join(str(r['step']) for r in runs)}; stop: {runs[0]['stop_reason']}; "
                     f"target <= {targets.get(preset, 10):g} s; {before} -> {load()}"))
        rows.append((f"  where the time goes: {preset}", breakdown(runs), "medians of the fresh runs (wall, exclusive)"))
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="nanda,pizza-a,pizza-b")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    for preset in a.presets.split(","):  # each preset's rows as soon as they are measured
        for row in run(a.quick, [preset], a.repeats):
            print(" | ".join(row), flush=True)
