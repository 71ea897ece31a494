"""Fast vs published recipe on several seeds: does the fast recipe learn the same algorithm?

For each (preset, recipe) the (model seed, data seed) pairs are trained together as one stack
(interp.training.Engine: each model as if trained alone), each to its own stop (with
stop_when_clean: a clean circuit; see interp.stopping), then classified with interp.classifier
as it is on this branch. One JSON line per model goes to the log; --table prints the
docs/performance.md table.

    OMP_NUM_THREADS=1 python scripts/seed_table.py --preset pizza-a --recipe fast
    OMP_NUM_THREADS=1 python scripts/seed_table.py --preset pizza-a --recipe published --set stop_when_clean=true
    python scripts/seed_table.py --table
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from interp.classifier import classify
from interp.presets import parse_value, resolve
from interp.training import Engine, Trainer

LOG = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "seed_table.jsonl"
PAIRS = {"nanda": [(999, 598), (1, 1), (2, 2), (3, 3), (4, 4)],
         "pizza-a": [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)], "pizza-b": [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]}


def run(preset: str, recipe: str, pairs: list[tuple[int, int]], settings: dict, label: str) -> None:
    mcfg, tcfg = resolve(preset, recipe, None, None, settings)
    trainers = [Trainer(mcfg, tcfg.replace(seed=s, data_seed=d), preset=preset, recipe=recipe) for s, d in pairs]
    t0 = time.perf_counter()

    def on_finish(t, r):
        c = classify(r.model)
        row = {"preset": preset, "recipe": label, "seed": t.train_config.seed, "data_seed": t.train_config.data_seed,
               "step": r.step, "stop_reason": r.stop_reason, "test_acc": r.final["test_acc"], "label": c.label,
               "confidence": c.confidence, "n_keys": len(c.key_frequencies), "keys": c.key_frequencies,
               "gs": c.gradient_symmetricity, "di": c.distance_irrelevance, "seconds": time.perf_counter() - t0,
               "settings": settings}
        with LOG.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{preset} {label} {row['seed']}:{row['data_seed']} step {r.step} {c.label} gs {row['gs']:.2f} "
              f"di {row['di']:.2f} keys {c.key_frequencies}", file=sys.stderr, flush=True)

    Engine(trainers).run(on_finish, lambda n: None)


def table() -> str:
    rows = [json.loads(line) for line in LOG.read_text().splitlines()]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["preset"], r["recipe"]), []).append(r)
    out = ["| preset | recipe | seeds | labels | key freqs (count) | GS median (range) | DI median (range) | steps (median) |",
           "|---|---|---|---|---|---|---|---|"]
    for (preset, recipe), rs in groups.items():
        labels = {lab: sum(r["label"] == lab for r in rs) for lab in dict.fromkeys(r["label"] for r in rs)}
        rng = lambda k: f"{statistics.median(r[k] for r in rs):.2f} ({min(r[k] for r in rs):.2f}–{max(r[k] for r in rs):.2f})"  # noqa: E731
        out.append(f"| {preset} | {recipe} | {len(rs)} | {', '.join(f'{v} {k}' for k, v in labels.items())} | "
                   f"{', '.join(str(r['n_keys']) for r in rs)} | {rng('gs')} | {rng('di')} | "
                   f"{', '.join(str(r['step']) for r in rs)} ({statistics.median(r['step'] for r in rs):g}) |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="pizza-a")
    ap.add_argument("--recipe", default="fast")
    ap.add_argument("--label", help="name of the recipe in the table (default: --recipe, plus the settings)")
    ap.add_argument("--pairs", help="MODEL_SEED:DATA_SEED,... (default: 5 pairs per preset)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=V")
    ap.add_argument("--table", action="store_true")
    args = ap.parse_args(argv)
    if args.table:
        print(table())
        return 0
    torch.set_num_threads(1)
    settings = {k: parse_value(k, v) for k, v in (item.split("=", 1) for item in args.set)}
    pairs = [tuple(map(int, p.split(":"))) for p in args.pairs.split(",")] if args.pairs else PAIRS[args.preset]
    label = args.label or " ".join([args.recipe, *args.set])
    LOG.parent.mkdir(parents=True, exist_ok=True)
    run(args.preset, args.recipe, pairs, settings, label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
