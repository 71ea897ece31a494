"""The runs that set the clean-circuit stop (docs/performance.md, "When is the circuit clean?").

Trains a preset's fast recipe past 99 % test accuracy with frequent snapshots and no early stop,
then measures every snapshot: key frequencies of W_E, their share of W_E's non-constant Fourier
norm, restricted / excluded loss (interp.progress), the sum of squared weights, and the
classifier's verdict (label, GS, DI). One JSON line per snapshot goes to the log, so the
stop's thresholds can be read off the trajectories.

    OMP_NUM_THREADS=1 python scripts/study_clean_stop.py --preset nanda --seeds 999:598,1:1 --steps 800
    python scripts/study_clean_stop.py --table            # every snapshot's measures
    python scripts/study_clean_stop.py --replay           # where interp.stopping would stop each run
    python scripts/study_clean_stop.py --replay --every 20 --share 0.8 --fall 0.02 --checks 4
    python scripts/study_clean_stop.py --replay --every 100 --fall none --gs 0.02   # pizza-b's stop
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

import interp
from interp import checkpoints as ck
from interp import progress
from interp.classifier import classify
from interp.presets import parse_value
from interp.stopping import MAX_WEIGHT_CHANGE, MIN_KEY_SHARE, STABLE_CHECKS, is_clean, key_share

LOG = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "clean_stop_study.jsonl"


def study(preset: str, seed: int, data_seed: int, steps: int, every: int, recipe: str = "fast",
          forward: str = "model", settings: dict | None = None) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run = interp.train(preset, recipe, Path(tmp) / "run", progress=False, steps=steps, seed=seed,
                           data_seed=data_seed, stop_at_test_acc=None, stop_when_clean=False, forward=forward,
                           checkpoint_every=every, log_every=every, **(settings or {}))
        hist = {r["step"]: r for r in run.history}
        for step, path in ck.list_snapshots(Path(tmp) / "run"):
            model = interp.load(path)
            keys = interp.key_frequencies(model)
            row = {"preset": preset, "recipe": recipe, "forward": forward, "settings": settings or {}, "seed": seed, "data_seed": data_seed, "step": step,
                   "test_acc": hist.get(step, {}).get("test_acc"), "keys": keys,
                   "key_share": key_share(model.W_E[: model.cfg.p], keys)}
            if keys:
                m = progress.measure(model, keys)
                row.update(restricted_loss=m.restricted_loss, excluded_loss=m.excluded_loss,
                           sum_sq_weights=m.sum_sq_weights, train_loss=m.train_loss)
                c = classify(model)
                row.update(label=c.label, confidence=c.confidence, gs=c.gradient_symmetricity,
                           di=c.distance_irrelevance)
            rows.append(row)
    return rows


def replay(rows: list[dict], every: int, **thresholds) -> dict | None:
    """The snapshot row where `interp.stopping.is_clean` first holds, checking every `every` steps."""
    history = []
    for r in rows:
        if r["step"] % every:
            continue
        history.append({"step": r["step"], "test_acc": r["test_acc"] or 0.0, "key_freqs": r["keys"],
                        "sum_sq_weights": r.get("sum_sq_weights", float("nan")), "gradient_symmetricity": r.get("gs")})
        if is_clean(history, r["key_share"], **thresholds):
            return r
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="nanda")
    ap.add_argument("--recipe", default="fast")
    ap.add_argument("--forward", default="model", help="training forward: model | tables")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=V", help="a TrainConfig override, e.g. lr=5e-3")
    ap.add_argument("--seeds", default="999:598", help="comma list of MODEL_SEED:DATA_SEED")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--every", type=int, default=10, help="snapshot cadence (with --replay: check cadence)")
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--replay", action="store_true")
    ap.add_argument("--share", type=float, default=MIN_KEY_SHARE)
    ap.add_argument("--fall", type=lambda v: None if v == "none" else float(v), default=MAX_WEIGHT_CHANGE,
                    help="the weight criterion's tolerance, or none (TrainConfig.stop_weight_change)")
    ap.add_argument("--gs", type=float, default=None, help="gradient symmetricity tolerance (TrainConfig.stop_gs_change)")
    ap.add_argument("--checks", type=int, default=STABLE_CHECKS)
    args = ap.parse_args(argv)
    if args.replay:
        runs: dict[tuple, list[dict]] = {}
        for line in LOG.read_text().splitlines():
            r = json.loads(line)
            runs.setdefault((r["preset"], r["recipe"], r.get("forward", "model"), json.dumps(r.get("settings", {})), r["seed"],
                             r["data_seed"]), []).append(r)
        for key, rows in runs.items():
            every = max(args.every, rows[1]["step"] - rows[0]["step"])
            hit = replay(rows, every, min_key_share=args.share, max_weight_change=args.fall, stable_checks=args.checks,
                         max_gs_change=args.gs)
            end = rows[-1]
            show = lambda r: (f"step {r['step']:4d} {r.get('label', '-'):10s} gs {r.get('gs', float('nan')):.2f} "  # noqa: E731
                              f"di {r.get('di', float('nan')):.2f} keys {len(r['keys'])}")
            print(f"{' '.join(map(str, key)):24s} stop: {show(hit) if hit else 'never':48s} | end: {show(end)}")
        return 0
    if args.table:
        for line in LOG.read_text().splitlines():
            r = json.loads(line)
            print(f"{r['preset']:8s} {r['seed']:>4}:{r['data_seed']:<4} step {r['step']:5d} acc {r['test_acc'] or 0:.3f} "
                  f"keys {r['keys']} share {r['key_share']:.3f} rl {r.get('restricted_loss', float('nan')):.3g} "
                  f"el {r.get('excluded_loss', float('nan')):.3g} ssw {r.get('sum_sq_weights', float('nan')):.1f} "
                  f"{r.get('label', '-')} gs {r.get('gs', float('nan')):.2f} di {r.get('di', float('nan')):.2f}")
        return 0
    torch.set_num_threads(1)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    for pair in args.seeds.split(","):
        seed, data_seed = map(int, pair.split(":"))
        settings = {k: parse_value(k, v) for k, v in (kv.split("=", 1) for kv in args.set)}
        rows = study(args.preset, seed, data_seed, args.steps, args.every, args.recipe, args.forward, settings)
        with LOG.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        print(f"{args.preset} {seed}:{data_seed}: {len(rows)} snapshots logged", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
