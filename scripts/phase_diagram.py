"""The Clock/Pizza phase diagram (Zhong et al. 2023, REFERENCES §2) at small scale: attention rate α ×
width, several seeds, p 59, the pizza-a architecture ([a, b], no `=`, no mask, ReLU, MLP biases),
every model classified by `interp.classify`; writes docs/phase_diagram.md, .html, .png and .csv.

    # train + classify (resumable: re-run the same command to continue; one thread, one sweep at a time)
    OMP_NUM_THREADS=1 nohup python scripts/phase_diagram.py run --out /work/phase_runs > run.log 2>&1 &
    # the table, the boundary per width and the figure, from the sweep directories
    python scripts/phase_diagram.py table --out /work/phase_runs
    python scripts/phase_diagram.py figure --out /work/phase_runs

Each (width, seed) is its own sweep directory OUT/w{WIDTH}_s{SEED} holding the six α of that cell row,
stacked and trained as one group by `interp.sweep`; seed s also draws data split s. PLAN lists them in
the order they run: every width at seed 0 first, then more seeds at the cheap widths, then at width
256 (the most expensive by far), so a run cut short still covers every width. The same models from
the command line, per directory:

    interp sweep --preset pizza-a --recipe fast --attn-rate 0,0.2,0.4,0.6,0.8,1 --d-model W --seed S \\
        --data-seed S --steps 800 --stop-when-clean false --checkpoint-every 100 --log-every 50 \\
        --out OUT/wW_sS

Recipe (RECIPE below): the pizza-a `fast` recipe (lr 1e-2, the authors' init and warm-up, wd 2, 80 %
train) for a fixed 800 steps, the early clean stop off. docs/calibration.md: at width 128 the step-300
snapshots of this recipe are mostly not clocks at α 0.9 (1 of 8), the same runs at step 800 are 75 %
clocks; the published recipe (lr 1e-3 × 20 000 steps) costs 25x more updates than this machine has.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import torch

import interp

ALPHAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
WIDTHS = (32, 64, 128, 256)
RECIPE = dict(steps=800, stop_when_clean=False, checkpoint_every=100, log_every=50)
# (width, seed) in the order they train: all widths at seed 0, seeds 1-2 below 256, then 256, then more.
PLAN = ([(w, 0) for w in WIDTHS] + [(w, s) for s in (1, 2) for w in WIDTHS[:3]] + [(256, 1), (256, 2)]
        + [(w, s) for s in (3, 4) for w in WIDTHS[:3]])
TIMING = "timing.jsonl"  # one line per sweep call: directory, seconds, load average during it


def sweep_dir(out: Path, width: int, seed: int) -> Path:
    return out / f"w{width}_s{seed}"


class LoadSampler:
    """The 1-minute load average, sampled every `every` seconds in a background thread."""

    def __init__(self, every: float = 15.0):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(every,), daemon=True)

    def _loop(self, every: float) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(every):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run(out: Path, plan: list[tuple[int, int]]) -> None:
    """Train and classify every (width, seed) of `plan`, one sweep at a time; finished ones are skipped."""
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    for width, seed in plan:
        d = sweep_dir(out, width, seed)
        if (d / "results.json").exists() and len(json.loads((d / "results.json").read_text())) == len(ALPHAS):
            continue
        print(f"== width {width} seed {seed} -> {d}", flush=True)
        t0 = time.time()
        with LoadSampler() as load:
            if (d / "sweep.json").exists():
                r = interp.sweep(out=d, resume=True)
            else:
                r = interp.sweep("pizza-a", "fast", out=d, attn_rate=list(ALPHAS), d_model=width, seed=seed,
                                 data_seed=seed, **RECIPE)
        line = dict(dir=d.name, width=width, seed=seed, models=len(r.results), seconds=round(r.seconds, 1),
                    started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)), threads=torch.get_num_threads(),
                    load_mean=round(sum(load.samples) / len(load.samples), 2), load_max=round(max(load.samples), 2))
        with open(out / TIMING, "a") as f:  # append-only log: a partial line can only be the last one
            f.write(json.dumps(line) + "\n")
        print(json.dumps(line), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="train and classify the grid (resumable)")
    p.add_argument("--out", type=Path, default=Path("/work/phase_runs"))
    p.add_argument("--plan", default=None, help="W:S,W:S,... instead of PLAN")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        plan = [tuple(int(x) for x in ws.split(":")) for ws in args.plan.split(",")] if args.plan else PLAN
        run(args.out, plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
