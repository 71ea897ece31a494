"""Progress measures over a run's snapshots: batched (`interp.progress.run_progress`) vs one at a time.

    python benchmarks/bench_progress.py                 # nanda, 250 snapshots (TransformerLens demo cadence)
    python benchmarks/bench_progress.py --quick         # tiny, smoke sizes
    python benchmarks/bench_progress.py --run DIR       # an existing run directory
    python benchmarks/bench_progress.py --run DIR --against main   # this tree's run_progress vs main's

`--against REF`: run_progress of this tree against interp/progress.py as it is at git REF (loaded
from `git show`, beside this tree's other modules), alternating, on all the snapshots; the median
time of each, their ratio and the largest relative difference of every measure.

One at a time is what run_progress did before batching: each snapshot read, loaded as a model, its
logits over all p^2 inputs from the model's own forward (4096-row chunks), then the measures of that
one model. Batched: run_progress, snapshots stacked `interp.batched.batch_size` at a time. The two
alternate, on `--sample` snapshots for the slow path (every k-th) and all of them batched, and give
the cost per snapshot and the ratio; their measures are compared. Reading the snapshots alone is
timed too. The load average is printed: on a shared machine compare ratios, not seconds.

Measured 2026-11-29 on the shared 2-core machine (nanda fast recipe, 250 snapshots, key
frequencies of the final snapshot), all with the same numbers (max rel. difference 1.2e-7):
- `OMP_NUM_THREADS=1`, load average ~10: run_progress before batching 238 ms per snapshot, batched
  76 ms (3.1x, best of 2, 26 snapshots each, old and new alternating); all 250 batched in 20 s.
- this script with 2 threads, load average 18 -> 11: 2194 vs 809 ms per snapshot (2.7x); two torch
  threads on a machine with ~10 runnable jobs are 3-6x slower than one (OpenMP waits on preempted
  threads), so under load measure with OMP_NUM_THREADS=1.
- reading a snapshot (`checkpoints.read_checkpoint`): 1.0 ms, 0.25 s for all 250.
- `--sample 10`, quiet machine (load ~1), 08:32-08:36 UTC, main a441bcf: 250 snapshots batched in
  6.4 s (26 ms per snapshot, 2.8x over one at a time).
- 2026-11-29 13:05 UTC, load 1.7 (the benchmark's own 2 threads), main after the logit measures' sum over a
  became a product with ones (1.49x on those measures, 1 thread): all 250 batched in 6.4 s (25 ms per
  snapshot, 3.1x over one at a time); 12:47-12:50 UTC, 6.2-7.7 s over 7 timings. Target <= 5 s: not met.
  Where it goes (cProfile, 2 threads): all_logits 4.3 of 7.3 s (its p^2 x d_mlp x p product with W_L 2.2 s,
  the per-head sums 1.0 s), the logit measures 2.2 s, weight measures 0.3 s; 2 snapshots per stack is
  the fastest (1: 9.0 / 7.1 s, 4: 7.8 / 8.0 s, 8: 8.6 s against 6.6 / 6.7 s).
- where a snapshot's time goes (CPU, 1 thread, load ~9): logits 43 ms (the p^2 x d_mlp x p product
  with W_L near one core's peak, and the per-head combination), logit measures 17 ms (float64),
  weight measures 2 ms; all_logits with one block buffer and W_L padded to 16 columns: 41.7 -> 37.4
  ms (interleaved).
- 2026-12-06, branch filters, `--run` (nanda fast, 250 snapshots) `--against 55f9f53 --repeats 3`,
  OMP_NUM_THREADS=1: stacked_logit_measures in float32 (log1p of the sum over c != s, blocks in cache,
  index_select) -> run_progress 27.8 s vs 16.7 s, 1.67x, at load 3.3-3.8 (01:12 UTC); 26.3 vs 22.0 s, 1.20x,
  at load 9.6-8.2 (00:20 UTC). Max rel. difference of any measure 4.9e-8; accuracies equal. After it
  (cProfile, 1 thread, load ~10): all_logits 72 %, logit measures 19 %, weight measures 4 %, reading 3 %.
  At 2 threads the machine was too loaded to time (one pair took 22 s, the next 168 s): not measured.
- 2026-12-06 04:22 UTC, quiet machine (load 1.0 -> 1.5, this session's CPU: Xeon, AVX512; float32 logit
  measures), `--sample 10`, 2 threads: all 250 batched in 7.3 s (29 ms per snapshot; one at a time 68 ms,
  2.3x). The issue's <= 5 s is not met on this CPU; the 6.4 s above was another machine's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import types
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import interp  # noqa: E402
from interp import checkpoints as ck  # noqa: E402
from interp import fourier, progress  # noqa: E402
from interp.data import all_tokens  # noqa: E402


def make_run(out: Path, quick: bool) -> Path:
    """A real run with one snapshot per step: nanda (fast recipe) for 249 steps -> 250 snapshots."""
    if quick:
        interp.train("tiny", out=out, steps=39, checkpoint_every=1, log_every=10, stop_at_test_acc=None, progress=False)
    else:
        interp.train("nanda", "fast", out=out, steps=249, checkpoint_every=1, log_every=10, stop_at_test_acc=None,
                     progress=False)
    return out


def one_at_a_time(snaps: list[tuple[int, Path]], freqs: list[int], split) -> dict[str, torch.Tensor]:
    rows = []
    for _, path in snaps:
        c = ck.read_checkpoint(path)
        model = ck.model_from_state(c.model_config, c.state_dict, str(path))
        tokens = all_tokens(model.cfg)
        with torch.no_grad():
            logits = torch.cat([model.last_logits(tokens[i : i + 4096]) for i in range(0, len(tokens), 4096)])
        lm = progress.logit_measures(logits, freqs, *split)
        rows.append({**lm.__dict__, **progress.weight_measures(c.state_dict, model.cfg.p)})
    return {k: torch.tensor([r[k] for r in rows], dtype=torch.float64) for k in progress.MEASURES}


def compare(run: Path, sample: int, repeats: int) -> dict:
    snaps = ck.list_snapshots(run)
    last = ck.read_checkpoint(snaps[-1][1])
    cfg = last.model_config
    freqs = fourier.key_frequencies(last.state_dict["embed.W_E"], p=cfg.p) or [1]
    tc = last.train_config
    split = interp.split(cfg.p, tc.train_frac, tc.data_seed)
    subset = snaps[::sample]
    times = {"read": [], "one": [], "batched": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _, path in snaps:
            ck.read_checkpoint(path)
        times["read"].append((time.perf_counter() - t0) / len(snaps))
        t0 = time.perf_counter()
        slow = one_at_a_time(subset, freqs, split)
        times["one"].append((time.perf_counter() - t0) / len(subset))
        t0 = time.perf_counter()
        fast = progress.run_progress(run, freqs=freqs)
        times["batched"].append((time.perf_counter() - t0) / len(snaps))
    idx = list(range(0, len(snaps), sample))  # the subset's rows
    diff = max(((slow[k] - getattr(fast, k)[idx]).abs() / getattr(fast, k)[idx].abs().clamp_min(1e-12)).max().item()
               for k in progress.MEASURES)
    med = {k: statistics.median(v) for k, v in times.items()}
    return dict(cfg=cfg, n=len(snaps), n_one=len(subset), med=med, diff=diff, ratio=med["one"] / med["batched"])


def module_at(ref: str, path: str = "interp/progress.py") -> types.ModuleType:
    """The module at `path` as it is at git `ref`, importing this tree's other modules."""
    root = Path(__file__).resolve().parent.parent
    src = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=root, capture_output=True, text=True, check=True).stdout
    name = f"_at_{ref}_{Path(path).stem}".replace("/", "_").replace("-", "_").replace(".", "_")
    mod = types.ModuleType(name)
    sys.modules[name] = mod  # dataclasses look their module up
    exec(compile(src, f"{ref}:{path}", "exec"), mod.__dict__)
    return mod


def against(run_dir: Path, ref: str, repeats: int) -> dict:
    """run_progress here vs at `ref`, alternating (`repeats` each), same key frequencies."""
    old = module_at(ref)
    sha = subprocess.run(["git", "rev-parse", "--short", ref], cwd=Path(__file__).resolve().parent.parent,
                         capture_output=True, text=True).stdout.strip()
    last = ck.read_checkpoint(ck.list_snapshots(run_dir)[-1][1])
    freqs = fourier.key_frequencies(last.state_dict["embed.W_E"], p=last.model_config.p) or [1]
    times = {"ref": [], "new": []}
    for _ in range(repeats):
        for key, fn in (("ref", old.run_progress), ("new", progress.run_progress)):
            t0 = time.perf_counter()
            out = fn(run_dir, freqs=freqs)
            times[key].append(time.perf_counter() - t0)
            if key == "ref":
                a = out
            else:
                b = out
    diff = {k: ((getattr(b, k) - getattr(a, k)).abs() / getattr(a, k).abs().clamp_min(1e-300)).max().item()
            for k in (*progress.MEASURES, "excluded_loss_per_freq")}
    med = {k: statistics.median(v) for k, v in times.items()}
    return dict(ref=f"{ref} ({sha})", med=med, ratio=med["ref"] / med["new"], diff=diff, n=len(a.steps),
                times=times)


def run(quick: bool = False, run_dir: str | None = None, sample: int | None = None) -> list[tuple[str, str, str]]:
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(run_dir) if run_dir else make_run(Path(tmp) / "run", quick)
        c = compare(path, sample or (4 if quick else 5), repeats=1 if quick else 3)
    load1 = os.getloadavg()[0]
    m, cfg = c["med"], c["cfg"]
    where = f"p={cfg.p}, d_model {cfg.d_model}, {c['n']} snapshots"
    return [
        (f"progress measures ({where})", f"{c['ratio']:.1f}x batched / one at a time",
         f"{m['one'] * 1e3:.0f} vs {m['batched'] * 1e3:.0f} ms per snapshot ({c['n_one']} one at a time); "
         f"all {c['n']} batched in {m['batched'] * c['n']:.1f} s; max rel. difference {c['diff']:.1e}; "
         f"load average {load0:.1f} -> {load1:.1f}"),
        (f"read snapshots ({where})", f"{m['read'] * 1e3:.1f} ms per snapshot", f"{m['read'] * c['n']:.2f} s for all"),
    ]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--run", help="measure this run directory instead of training one")
    ap.add_argument("--sample", type=int, help="time one snapshot in SAMPLE on the slow path (default 5)")
    ap.add_argument("--against", metavar="REF", help="compare run_progress with interp/progress.py at git REF")
    ap.add_argument("--repeats", type=int, default=5, help="timings of each side with --against (default 5)")
    args = ap.parse_args()
    print(f"# {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    if args.against:
        if not args.run:
            ap.error("--against needs --run DIR (make one with this script's make_run, or any run directory)")
        load0 = os.getloadavg()
        c = against(Path(args.run), args.against, args.repeats)
        load1 = os.getloadavg()
        print(f"run_progress, {c['n']} snapshots: {c['med']['ref']:.2f} s at {c['ref']} vs {c['med']['new']:.2f} s here "
              f"(medians of {args.repeats}, alternating): {c['ratio']:.2f}x; load average {load0[0]:.1f} -> {load1[0]:.1f}")
        print("  all timings (s): " + "; ".join(f"{k}: {', '.join(f'{t:.2f}' for t in v)}" for k, v in c["times"].items()))
        print("  max rel. difference: " + ", ".join(f"{k} {v:.1e}" for k, v in c["diff"].items()))
        sys.exit(0)
    for row in run(args.quick, args.run, args.sample):
        print(" | ".join(row))
