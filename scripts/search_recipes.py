"""Recipe search (issue 23 part 2): the fewest steps to a clean circuit with the paper's verdict.

A candidate recipe is the preset's `fast` recipe plus overrides along the search axes (lr, weight_decay,
grad_filter / grokfast_lamb, warmup_steps, clip_grad). It is trained on every seed with both training
forwards (TrainConfig.forward "model" and "tables"), each to its clean stop (stop_when_clean), then 200
more steps; it passes when on every (seed, forward) the stop is a clean circuit, the classifier's label
is the preset's paper verdict (PAPER_VERDICT) and there is no loss spike in those 200 steps (a spike:
train loss above max(10 x its value at the stop, 0.01)). Its score is the worst seed's stop step.
One JSON line per (candidate, seed, forward) goes to benchmarks/results/search_recipes.jsonl.

    OMP_NUM_THREADS=1 nice -n 19 python scripts/search_recipes.py --preset nanda --seeds 3 \\
        --candidate "" --candidate "grad_filter=ema,grokfast_lamb=2"
    python scripts/search_recipes.py --table

Seeds are trained one at a time (clip_grad cannot be stacked). The issue's objective asks for >= 10
seeds; --seeds sets how many (pairs (s, s), and the preset's own first).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from interp.classifier import classify
from interp.presets import PRESETS, parse_value, resolve
from interp.training import Trainer

LOG = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "search_recipes.jsonl"
PAPER_VERDICT = {"nanda": "clock", "pizza-a": "pizza", "pizza-b": "clock"}  # Nanda et al.; Zhong et al. A, B
AFTER = 200  # steps trained on after the stop, to look for a loss spike
FORWARDS = ("model", "tables")


def spiked(history: list[dict], stop_step: int) -> bool:
    """A train loss, in the rows after the stop, above max(10 x the stop's, 0.01)."""
    at = next(r["train_loss"] for r in history if r["step"] == stop_step)
    return any(r["train_loss"] > max(10 * at, 0.01) for r in history if r["step"] > stop_step)


def one(preset: str, overrides: dict, seed: int, data_seed: int, forward: str) -> dict:
    mcfg, tcfg = resolve(preset, "fast", None, None, dict(overrides, forward=forward, seed=seed, data_seed=data_seed))
    t0 = time.perf_counter()
    trainer = Trainer(mcfg, tcfg)
    r = trainer.run(progress=False)
    verdict = classify(r.model)
    stop = r.step
    trainer.train_on(stop + AFTER)  # on from the same state, no stop
    return {"preset": preset, "overrides": overrides, "seed": seed, "data_seed": data_seed, "forward": forward,
            "step": stop, "clean": r.stop_reason.startswith("clean circuit"), "stop_reason": r.stop_reason,
            "label": verdict.label, "paper": PAPER_VERDICT[preset], "spike": spiked(trainer.history, stop),
            "test_acc": r.final["test_acc"], "seconds": round(time.perf_counter() - t0, 1)}


def summary(rows: list[dict]) -> dict:
    ok = all(r["clean"] and r["label"] == r["paper"] and not r["spike"] for r in rows)
    return {"runs": len(rows), "pass": ok, "worst_step": max(r["step"] for r in rows),
            "labels": sorted({r["label"] for r in rows}), "spikes": sum(r["spike"] for r in rows)}


def table() -> str:
    rows = [json.loads(line) for line in LOG.read_text().splitlines()]
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(json.dumps([r["preset"], r["overrides"]], sort_keys=True), []).append(r)
    out = ["| preset | overrides | runs (seeds x forwards) | pass | worst stop step | steps | labels | spikes |",
           "|---|---|---|---|---|---|---|---|"]
    for key, rs in groups.items():
        preset, over = json.loads(key)
        s = summary(rs)
        steps = ", ".join(f"{r['seed']}/{r['forward']}:{r['step']}" for r in rs)
        out.append(f"| {preset} | {over or 'fast'} | {s['runs']} | {s['pass']} | {s['worst_step']} | {steps} | "
                   f"{', '.join(s['labels'])} | {s['spikes']} |")
    return "\n".join(out)


def parse_candidate(text: str) -> dict:
    """'lr=0.007,grad_filter=ema' -> typed overrides ('' is the fast recipe itself)."""
    items = [item.split("=", 1) for item in text.split(",") if item.strip()]
    return {k.strip(): parse_value(k.strip(), v) for k, v in items}


def search(preset: str, n_seeds: int, candidates: list[str], forwards=FORWARDS) -> None:
    """Every candidate on n_seeds seed pairs and the forwards: a log row per run, a summary line per candidate."""
    base = PRESETS[preset][1]
    pairs = [(base.seed, base.data_seed), *[(s, s) for s in range(1, n_seeds)]][:n_seeds]
    LOG.parent.mkdir(parents=True, exist_ok=True)
    for text in candidates or [""]:
        overrides, rows = parse_candidate(text), []
        for (seed, data_seed), forward in ((pair, fw) for pair in pairs for fw in forwards):
            rows.append(one(preset, overrides, seed, data_seed, forward))
            with LOG.open("a") as f:
                f.write(json.dumps(rows[-1]) + "\n")
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        print(json.dumps({"overrides": overrides, **summary(rows)}), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="nanda", choices=sorted(PAPER_VERDICT))
    ap.add_argument("--seeds", type=int, default=10, help="seed pairs per candidate (default 10)")
    ap.add_argument("--candidate", action="append", default=[], metavar="FIELD=V,...",
                    help="a recipe to try (repeat); '' is the fast recipe")
    ap.add_argument("--forwards", default=",".join(FORWARDS),
                    help="training forwards to run (default both; one per process runs them side by side)")
    ap.add_argument("--table", action="store_true", help="print the table of the logged rows and exit")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # one thread per process: on a shared machine, faster than two (bench_progress)
    forwards = tuple(f for f in args.forwards.split(",") if f)
    if not forwards or any(f not in FORWARDS for f in forwards):
        ap.error(f"--forwards: choose from {', '.join(FORWARDS)}")
    print(table()) if args.table else search(args.preset, args.seeds, args.candidate, forwards)
    return 0


if __name__ == "__main__":
    sys.exit(main())
