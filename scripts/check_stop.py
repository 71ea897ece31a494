"""Does a clean stop come too early? Train the runs of a sweep on past their stop, with no stop, from
the same state (weights, AdamW moments, filter state), and classify them at later steps
(docs/performance.md, "pizza-b stops on its own").

    OMP_NUM_THREADS=1 interp sweep --preset pizza-b --recipe fast --seed 100,101,102,103,104,105,106,107 \\
        --data-seed 100 --out runs/pizzab/gs-stop --threads 1
    OMP_NUM_THREADS=1 python scripts/check_stop.py runs/pizzab/gs-stop --out runs/pizzab/on1500 --steps 1000,1500

One JSON line per run: its stop step and label, and its label at each later step. The sweep's run
directories are copied, not changed; a copy trained to the end is reused on a re-run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from interp import checkpoints as ck
from interp.classifier import classify
from interp.training import load_trainer


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", type=Path, help="a sweep directory whose runs stopped (clean stop)")
    ap.add_argument("--out", type=Path, required=True, help="where the copies trained on go")
    ap.add_argument("--steps", default="1000,1500", help="steps to classify at (the last is how far to train)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    steps = [int(s) for s in args.steps.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    for run in sorted(p for p in (args.sweep / "runs").iterdir() if (p / "run.json").exists()):
        copy = args.out / run.name
        if not (copy / "trained_on").exists():
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(run, copy)
            load_trainer(copy, max(steps), None).train_on(max(steps))
            (copy / "trained_on").write_text("")
        stop = json.loads((run / "history.json").read_text())[-1]["step"]
        at_stop = classify(run / "final.safetensors")
        snaps = dict(ck.list_snapshots(copy))
        row = {"run": run.name, "stop": stop, "label_at_stop": at_stop.label, "confidence": round(at_stop.confidence, 2)}
        for s in steps:
            v = classify(snaps[s])
            row[str(s)] = [v.label, round(v.confidence, 2), round(v.gradient_symmetricity, 3)]
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
