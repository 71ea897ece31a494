"""Is the table forward's different outcome a bug or rounding? Train one seed three ways from the same
initial weights and print how far apart their weights drift:

- the model's own forward (the reference);
- the same forward from initial weights multiplied by (1 + 1e-7 x noise): float32 rounding's size;
- the token-table forward (`TrainConfig.forward = "tables"`, `interp.batched.pair_logits`).

If the table forward drifts from the reference no faster than the 1e-7 perturbation does, the two
forwards differ by rounding alone and the recipe's dynamics amplify it (Adam at a high learning rate);
a bug would show as a larger drift from the first steps.

    OMP_NUM_THREADS=1 python scripts/rounding_divergence.py --preset nanda --recipe fast --steps 10,20,40,60

Measured 2026-11-29 (nanda fast, seed 999): relative distance to the reference, perturbed / tables:
step 10 4.34e-4 / 4.34e-4, 20 5.71e-3 / 5.80e-3, 40 6.73e-2 / 6.97e-2, 60 1.72e-1 / 1.74e-1.
"""

from __future__ import annotations

import argparse

import torch

from interp.presets import resolve
from interp.training import Engine, Trainer


def trajectory(preset: str, recipe: str, steps: list[int], forward: str, eps: float) -> dict[int, dict]:
    mcfg, tcfg = resolve(preset, recipe, None, None, dict(stop_when_clean=False, stop_at_test_acc=None))
    trainer = Trainer(mcfg, tcfg.replace(forward=forward))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in trainer.params.values():
            p.mul_(1 + eps * torch.randn(p.shape, generator=g))
    out = {}
    for s in steps:  # the Engine trains on from trainer.step to the config's cap
        trainer.train_config = trainer.train_config.replace(steps=s)
        Engine([trainer]).run(lambda t, r: None, lambda n: None)
        out[s] = {k: v.detach().double().clone() for k, v in trainer.params.items()}
    return out


def distance(a: dict, b: dict) -> float:
    return float(sum((a[k] - b[k]).square().sum() for k in a).sqrt() / sum(v.square().sum() for v in a.values()).sqrt())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="nanda")
    ap.add_argument("--recipe", default="fast")
    ap.add_argument("--steps", default="10,20,40,60", help="comma list of steps to compare at")
    ap.add_argument("--eps", type=float, default=1e-7, help="relative size of the initial-weight perturbation")
    args = ap.parse_args(argv)
    steps = sorted(int(s) for s in args.steps.split(","))
    ref = trajectory(args.preset, args.recipe, steps, "model", 0.0)
    pert = trajectory(args.preset, args.recipe, steps, "model", args.eps)
    tab = trajectory(args.preset, args.recipe, steps, "tables", 0.0)
    print("step  perturbed-init  table-forward   (relative weight distance to the model forward)")
    for s in steps:
        print(f"{s:5d}  {distance(ref[s], pert[s]):14.2e}  {distance(ref[s], tab[s]):13.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
