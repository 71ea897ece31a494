"""Models per minute of a sweep: stacked (vmapped) vs one model after another, same grid, same run.

Both write every model's run directory (the product path); classification is left out of the
timing (it costs the same either way). The two modes alternate, and their models are compared:
the stacked sweep must give the same weights as training each model alone.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import interp

# 8 models of width 32: attention rate x seed, a small phase diagram.
GRIDS = {
    "tiny (p=23, d_model 32)": ("tiny", dict(attn_rate=[0.0, 1 / 3, 2 / 3, 1.0], seed=[0, 1]),
                                dict(steps=300, stop_at_test_acc=None)),
    "pizza-a (p=59, d_model 32)": ("pizza-a", dict(attn_rate=[0.0, 1 / 3, 2 / 3, 1.0], seed=[0, 1]),
                                   dict(d_model=32, steps=100, log_every=25, checkpoint_every=50)),
}


def max_weight_diff(a: interp.SweepResult, b: interp.SweepResult) -> float:
    return max((pa - pb).abs().max().item()
               for name in a.results
               for pa, pb in zip(a.results[name].model.parameters(), b.results[name].model.parameters()))


def compare(preset: str, grid: dict, fixed: dict, repeats: int) -> dict:
    times = {"stacked": [], "sequential": []}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for mode in times:
                t0 = time.perf_counter()
                results[mode] = interp.sweep(preset, out=Path(tmp) / f"{mode}{r}", sequential=mode == "sequential",
                                             classify=False, progress=False, **grid, **fixed)
                times[mode].append(time.perf_counter() - t0)
    n = len(results["stacked"].rows)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"models": n, "per_min": {k: 60 * n / v for k, v in med.items()},
            "speedup": med["sequential"] / med["stacked"], "max_diff": max_weight_diff(results["stacked"], results["sequential"])}


def run(quick: bool = False) -> list[tuple[str, str, str]]:
    rows = []
    for label, (preset, grid, fixed) in GRIDS.items():
        if quick:
            if preset != "tiny":
                continue
            fixed = dict(fixed, steps=20)
        c = compare(preset, grid, fixed, repeats=1 if quick else 3)
        rows.append((f"sweep: {c['models']} x {label}",
                     f"{c['speedup']:.2f}x stacked / sequential",
                     f"{c['per_min']['stacked']:.1f} vs {c['per_min']['sequential']:.1f} models/min; "
                     f"max weight difference {c['max_diff']:.1e}; target >= 1.5x"))
    return rows


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
