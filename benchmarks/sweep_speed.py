"""Models per minute of a sweep: in-process stacked, on a local Ray with 2 workers, and one model
after another, on the same grid in the same run, as ratios.

    OMP_NUM_THREADS=1 python benchmarks/sweep_speed.py     # 3 repeats of each mode, Ray included
    python benchmarks/run.py --parts sweep                 # the same rows in the benchmark table

Every mode writes every model's run directory (the product path); classification is left out of
the timing (it costs the same in every mode). The modes alternate within each repeat; medians.
- sequential: group_size 1, one model after another, 1 torch thread;
- stacked: the in-process backend, groups of 4 (8 models: 2 groups), 1 torch thread;
- stacked, 2 threads: the same with 2 torch threads (one process using both cores);
- Ray: the same 2 groups as 2 Ray tasks on a local Ray with 2 workers, 1 thread each (the
  backend's default, as Ray gives each task one CPU), so both cores at once.
The Ray start and the workers' first imports (a warm-up sweep) happen once, before the timed runs,
and are reported apart: they are a Ray sweep's fixed cost, not a per-model one. The Ray sweep must
give the same weights as the in-process one (same groups, same thread count): the difference is
reported (0 expected).

Measured on the shared 2-core machine with other jobs running (load average 6.0 at the start, 10.8
at the end: the 2 cores were always busy), `OMP_NUM_THREADS=1 python benchmarks/sweep_speed.py`:
    8 x tiny:    stacked 1.30x sequential (56.1 vs 43.1 models/min); Ray (2 workers) 1.03x stacked;
                 stacked with 2 threads 0.09x stacked with 1
    8 x pizza-a: stacked 1.09x sequential (31.7 vs 29.1 models/min); Ray (2 workers) 0.90x stacked;
                 stacked with 2 threads 0.14x stacked with 1
    Ray start 30 s, workers' first task 16 s; weights: Ray = in-process = sequential, bit for bit.
With no free core a second worker (or a second thread) cannot help: Ray's gain here is nil, and two
OpenMP threads that wait on each other under this load are ~10x slower. On an idle machine
Ray's workers run on cores that would otherwise sit unused; this machine never had one idle
during the session, so that gain is not measured here.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

import interp

# 8 models, attention rate x seed: a small phase diagram; group_size 4 cuts each grid into 2 groups.
GRIDS = {
    "tiny (p=23, d_model 32)": ("tiny", dict(attn_rate=[0.0, 1 / 3, 2 / 3, 1.0], seed=[0, 1]),
                                dict(steps=300, stop_at_test_acc=None)),
    "pizza-a (p=59, d_model 32)": ("pizza-a", dict(attn_rate=[0.0, 1 / 3, 2 / 3, 1.0], seed=[0, 1]),
                                   dict(d_model=32, steps=100, log_every=25, checkpoint_every=50)),
}
GROUP = 4
MODES = {"sequential": dict(group_size=1, threads=1), "stacked": dict(group_size=GROUP, threads=1),
         "stacked, 2 threads": dict(group_size=GROUP, threads=2),
         "Ray": dict(group_size=GROUP, backend="ray", workers=2)}


def weights(result: interp.SweepResult) -> dict[str, list[torch.Tensor]]:
    """Each model's parameters: from memory (in-process), else from its run directory (Ray)."""
    if result.results:
        return {n: list(r.model.parameters()) for n, r in result.results.items()}
    return {row["name"]: list(interp.load(row["run_dir"]).parameters()) for row in result.rows}


def max_weight_diff(a: interp.SweepResult, b: interp.SweepResult) -> float:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    return max((pa - pb).abs().max().item() for n in wa for pa, pb in zip(wa[n], wb[n]))


def compare(preset: str, grid: dict, fixed: dict, repeats: int, modes: dict) -> dict:
    times = {m: [] for m in modes}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for mode, options in modes.items():
                t0 = time.perf_counter()
                results[mode] = interp.sweep(preset, out=Path(tmp) / f"{mode}{r}", classify=False, progress=False,
                                             **options, **grid, **fixed)
                times[mode].append(time.perf_counter() - t0)
        n = len(results["stacked"].rows)
        med = {k: statistics.median(v) for k, v in times.items()}
        diff = {m: max_weight_diff(results[m], results["stacked"]) for m in modes if m != "stacked"}
    return {"models": n, "per_min": {k: 60 * n / v for k, v in med.items()}, "max_diff": diff}


def run(quick: bool = False) -> list[tuple[str, str, str]]:
    """Rows for benchmarks/run.py. --quick: the tiny grid, 20 steps, sequential and stacked only (Ray's
    start alone is tens of seconds here, and tests/test_distributed.py covers that backend)."""
    modes = {k: v for k, v in MODES.items() if not quick or k in ("sequential", "stacked")}
    rows = []
    with ray_ready(quick) as fixed_cost:
        for label, (preset, grid, fixed) in GRIDS.items():
            if quick:
                if preset != "tiny":
                    continue
                fixed = dict(fixed, steps=20)
            c = compare(preset, grid, fixed, 1 if quick else 3, modes)
            pm = c["per_min"]
            rows.append((f"sweep: {c['models']} x {label}",
                         f"{pm['stacked'] / pm['sequential']:.2f}x stacked / sequential",
                         f"{pm['stacked']:.1f} vs {pm['sequential']:.1f} models/min (1 thread; groups of {GROUP}); "
                         f"max weight difference {c['max_diff']['sequential']:.1e}"
                         + (f"; 2 threads: {pm['stacked, 2 threads'] / pm['stacked']:.2f}x stacked"
                            if "stacked, 2 threads" in pm else "")))
            if "Ray" in pm:
                rows.append((f"sweep on Ray: {c['models']} x {label}",
                             f"{pm['Ray'] / pm['stacked']:.2f}x Ray (2 workers) / stacked",
                             f"{pm['Ray']:.1f} models/min; {pm['Ray'] / pm['sequential']:.2f}x sequential, "
                             f"{pm['Ray'] / pm['stacked, 2 threads']:.2f}x stacked with 2 threads; weight difference "
                             f"from in-process {c['max_diff']['Ray']:.1e}; fixed cost: {fixed_cost}"))
    return rows


class ray_ready:
    """A local Ray with 2 workers for the run, started and warmed up (workers import torch and interp)
    outside the timed sweeps; entering gives the fixed cost as text."""

    def __init__(self, skip: bool):
        self.skip, self.session = skip, None

    def __enter__(self) -> str:
        if self.skip:
            return ""
        from interp import distributed

        t0 = time.perf_counter()
        self.session = distributed.ray_session(num_workers=2)
        self.session.__enter__()
        t1 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            interp.sweep("tiny", out=Path(tmp) / "warm", seed=[0, 1], steps=1, group_size=1, backend="ray",
                         classify=False, progress=False)
        return f"Ray start {t1 - t0:.0f} s, workers' first task {time.perf_counter() - t1:.0f} s"

    def __exit__(self, *exc) -> None:
        if self.session is not None:
            self.session.__exit__(*exc)


if __name__ == "__main__":
    print(f"# OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load average {os.getloadavg()[0]:.1f} at start")
    for row in run():
        print(" | ".join(row))
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")
