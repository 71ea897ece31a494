"""Isolated circles' DI with and without centring the logits per answer (the measurement behind the
CIRCLE_DI_PIZZA row of docs/calibration.md): one JSON line per run, each circle's template margin r,
DI as the classifier computes it, and DI of the logits minus their mean over inputs per answer c.

    python scripts/circle_di_centred.py 800 runs/calibration/s0/runs/* > di800.jsonl
"""

import json
import sys
from pathlib import Path

import torch

import interp
from interp import metrics as M
from interp.circles import isolate_circles
from interp.classifier import _ratio, circle_label
from interp.fourier import key_frequencies


def main(step: int, run_dirs: list[str]) -> None:
    torch.set_num_threads(1)
    for run in run_dirs:
        model = interp.load(Path(run) / "checkpoints" / f"step_{step:06d}.safetensors")
        rows = []
        for c in isolate_circles(model, frequencies=key_frequencies(model)):
            t = c.table.double()
            label, _ = circle_label(c)
            rows.append(dict(k=c.frequency, label=label, r=_ratio(c.pizza_fve, c.clock_fve), di=c.distance_irrelevance,
                             di_centred=M.distance_irrelevance(t - t.mean((0, 1), keepdim=True))))
        print(json.dumps(dict(run=run, step=step, circles=rows)), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:])
