"""Regenerate the tiny pretrained checkpoints in tests/fixtures/, bit for bit.

    python scripts/make_fixtures.py                 # all four, into tests/fixtures/
    python scripts/make_fixtures.py pizza --out /tmp/x

Each is trained by the toolkit itself (one thread, so the floating-point sums run in one order)
and saved without wall-clock timings, so the bytes depend only on the recipe below, torch's CPU
kernels and this machine's instruction set. `tests/test_classify.py` regenerates the pizza (a few
seconds) and compares bytes.

- clock: p 23, d_model 32, standard attention (alpha 1), lr 3e-3, 1500 steps, Nanda's init and
  warm-up (the file predates the Clock/Pizza presets' switch to the authors' choices and is kept):
  GS 0.15, DI 0.86; its circles 5 and 11, each measured on its own contribution, are clocks (DI 0.98
  and 0.99) carrying 81 % and 20 % of the push on the right answer.
- pizza: p 31, d_model 64, constant attention (alpha 0), the pizza-a preset (authors' init and
  warm-up, 80 % train, wd 2) at lr 1e-2, 300 steps, seed 0 (the default; no seed search).
- mixed: the same recipe with standard attention (alpha 1) and 800 steps: one circle a pizza,
  two clocks. Measured on their own contributions the clocks carry ~4/5 of the push on the right
  answer, so it classifies as a clock with a minority pizza (the file keeps its name).
- non_generalizing: p 23, d_model 32, 50 % train, no weight decay, 300 steps: memorises the train
  half (train accuracy 1.0), about chance on the rest.
The numbers each fixture gets are asserted in tests/test_classify.py and listed in
docs/calibration.md; none of these recipes was chosen by trying seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from interp.checkpoints import save_checkpoint
from interp.presets import resolve
from interp.training import Trainer

_NANDA_INIT = dict(init="nanda", warmup="nanda")
FIXTURES: dict[str, tuple[str, dict]] = {
    "clock": ("pizza-b", dict(p=23, d_model=32, attn_rate=1.0, lr=3e-3, steps=1500, seed=0, log_every=100, **_NANDA_INIT)),
    "pizza": ("pizza-a", dict(p=31, d_model=64, attn_rate=0.0, lr=1e-2, steps=300, seed=0, log_every=50)),
    "mixed": ("pizza-a", dict(p=31, d_model=64, attn_rate=1.0, lr=1e-2, steps=800, seed=0, log_every=100)),
    "non_generalizing": ("pizza-a", dict(p=23, d_model=32, attn_rate=1.0, lr=3e-3, train_frac=0.5, weight_decay=0.0,
                                         steps=300, seed=0, log_every=100, **_NANDA_INIT)),
}
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def make(name: str, out_dir: Path) -> Path:
    preset, overrides = FIXTURES[name]
    mcfg, tcfg = resolve(preset, None, None, None, {**overrides, "checkpoint_every": overrides["steps"]})
    torch.set_num_threads(1)
    result = Trainer(mcfg, tcfg).run(progress=False)
    final = result.history[-1]
    metrics = {k: final[k] for k in ("step", "train_acc", "test_acc", "train_loss", "test_loss")}  # no timings
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.safetensors"
    save_checkpoint(path, result.model, tcfg, result.step, metrics)
    canonicalise(path)
    return path


def canonicalise(path: Path) -> None:
    """Rewrite a safetensors header with sorted keys: safetensors writes its metadata in hash-map
    order, which changes from process to process. Tensor data and offsets stay as they are."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # safetensors pads the header to 8 bytes
    path.write_bytes(len(header).to_bytes(8, "little") + header + data[8 + n :])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"fixtures to make: {', '.join(FIXTURES)} (default: all)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    unknown = sorted(set(args.names) - set(FIXTURES))
    if unknown:
        ap.error(f"unknown fixture(s) {', '.join(unknown)}; choose from {', '.join(FIXTURES)}")
    for name in args.names or FIXTURES:
        path = make(name, args.out)
        print(f"{path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
