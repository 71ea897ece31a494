"""Calibration runs for `interp.classify`: where do clock / pizza labels fall across the attention
rate alpha and the width, and what do the published Model A / Model B configs give?

The table in docs/calibration.md came from (one core each, on a shared machine):

    OMP_NUM_THREADS=1 python scripts/calibrate.py --part sweep --widths 32            # ~15 min
    OMP_NUM_THREADS=1 python scripts/calibrate.py --part sweep --widths 64            # ~10 min
    OMP_NUM_THREADS=1 python scripts/calibrate.py --part sweep --widths 128 --steps 1000   # ~25 min
    OMP_NUM_THREADS=1 python scripts/calibrate.py --part presets
    python scripts/calibrate.py --table-only --widths 32 64 128     # docs/calibration.csv + the table

Runs go to --runs (default runs/calibration, git-ignored) and are skipped when already finished,
so an interrupted calibration continues where it stopped; --table-only re-classifies finished runs
(e.g. after a threshold change) without training. Every snapshot of a sweep run is classified.

Sweep: the pizza-a preset (p 59, [a, b], no mask, 80 % train, AdamW wd 2, betas (0.9, 0.98)) with
attn_rate, d_model and seed overridden, lr 3e-3 for a fixed number of steps (docs/calibration.md
says why not the early stop). Presets: pizza-a and pizza-b as published (lr 1e-3), once stopped
when test accuracy first reaches 0.99 and once after 3000 steps.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import interp
from interp.checkpoints import FINAL, list_snapshots
from interp.classifier import classify

FIELDS = ["run", "preset", "alpha", "width", "seed", "lr", "step", "first_step_test_acc_1", "accuracy",
          "gradient_symmetricity", "distance_irrelevance", "distance_irrelevance_max_wrong", "circularity",
          "clock_template_fve", "pizza_template_fve", "pizza_exact_template_fve", "key_frequencies",
          "frequency_labels", "gs_di_vote", "template_vote", "label", "confidence"]


def sweep_runs(alphas, widths, seeds, steps, lr):
    for width in widths:
        for alpha in alphas:
            for seed in seeds:
                name = f"a{alpha:g}_d{width}_s{seed}"
                yield name, "pizza-a", dict(attn_rate=alpha, d_model=width, seed=seed, lr=lr, steps=steps,
                                            checkpoint_every=max(steps // 4, 1), log_every=25)


def preset_runs(steps):
    for preset in ("pizza-a", "pizza-b"):
        yield f"{preset}_stop99", preset, dict(stop_at_test_acc=0.99, steps=steps, log_every=25, checkpoint_every=steps)
        yield f"{preset}_{steps}", preset, dict(steps=steps, log_every=25, checkpoint_every=250)


def train_once(run_dir: Path, preset: str, overrides: dict) -> None:
    if (run_dir / FINAL).exists():
        return
    print(f"training {run_dir.name} ...", file=sys.stderr, flush=True)
    result = interp.train(preset, out=run_dir, overwrite=True, progress=False, **overrides)
    print(f"  step {result.step}, test acc {result.final['test_acc']:.4f}, {result.seconds:.0f} s", file=sys.stderr, flush=True)


def first_perfect_step(run_dir: Path) -> int | None:
    import json

    history = json.loads((run_dir / "history.json").read_text())
    return next((row["step"] for row in history if row["test_acc"] >= 1.0), None)


def row_for(run_dir: Path, preset: str, overrides: dict, checkpoint: Path, step: int) -> dict:
    c = classify(checkpoint)
    cfg = interp.load(checkpoint).cfg
    return {
        "run": run_dir.name, "preset": preset, "alpha": cfg.attn_rate, "width": cfg.d_model,
        "seed": overrides.get("seed", 0), "lr": overrides.get("lr", 1e-3), "step": step,
        "first_step_test_acc_1": first_perfect_step(run_dir), "accuracy": round(c.accuracy, 4),
        **{k: round(getattr(c, k), 3) for k in FIELDS[9:16]},
        "key_frequencies": " ".join(map(str, c.key_frequencies)),
        "frequency_labels": " ".join(f"{f.frequency}:{f.label[0]}" for f in c.frequencies),
        "gs_di_vote": c.evidence["gs_di"], "template_vote": c.evidence["templates"], "label": c.label,
        "confidence": c.confidence,
    }


def rows_for(run_dir: Path, preset: str, overrides: dict, every_snapshot: bool) -> list[dict]:
    snaps = [(s, f) for s, f in list_snapshots(run_dir) if s > 0]
    if not every_snapshot:
        snaps = snaps[-1:]
    return [row_for(run_dir, preset, overrides, f, s) for s, f in snaps]


def markdown(rows: list[dict]) -> str:
    """One line per run, at its last snapshot, with the labels of its earlier snapshots."""
    cols = ["run", "alpha", "width", "seed", "step", "accuracy", "gradient_symmetricity", "distance_irrelevance",
            "distance_irrelevance_max_wrong", "circularity", "clock_template_fve", "pizza_template_fve",
            "pizza_exact_template_fve", "gs_di_vote", "template_vote", "label"]
    short = {"gradient_symmetricity": "GS", "distance_irrelevance": "DI", "distance_irrelevance_max_wrong": "DI max-wrong",
             "circularity": "circ", "clock_template_fve": "clock FVE", "pizza_template_fve": "pizza FVE",
             "pizza_exact_template_fve": "exact pizza FVE", "gs_di_vote": "GS/DI vote", "template_vote": "template vote",
             "accuracy": "acc"}
    runs: dict[str, list[dict]] = {}
    for r in rows:
        runs.setdefault(r["run"], []).append(r)
    lines = ["| " + " | ".join(short.get(c, c) for c in cols) + " | label by step |", "|" + "---|" * (len(cols) + 1)]
    for snaps in runs.values():
        history = " ".join(f"{r['step']}{r['label'][0]}" for r in snaps)  # c(lock) p(izza) a(mbiguous) n(on-gen.)
        lines.append("| " + " | ".join(str(snaps[-1][c]) for c in cols) + f" | {history} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["all", "sweep", "presets"], default="all")
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--preset-steps", type=int, default=3000)
    ap.add_argument("--runs", type=Path, default=Path("runs/calibration"))
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--table-only", action="store_true", help="only re-classify runs that already finished")
    args = ap.parse_args(argv)

    plan = []
    if args.part in ("all", "sweep"):
        plan += [(n, p, o, True) for n, p, o in sweep_runs(args.alphas, args.widths, args.seeds, args.steps, args.lr)]
    if args.part in ("all", "presets"):
        plan += [(n, p, o, n.endswith(str(args.preset_steps))) for n, p, o in preset_runs(args.preset_steps)]
    rows = []
    args.out.mkdir(parents=True, exist_ok=True)
    for name, preset, overrides, every_snapshot in plan:
        run_dir = args.runs / name
        if not args.table_only:
            train_once(run_dir, preset, overrides)
        if (run_dir / FINAL).exists():
            rows += rows_for(run_dir, preset, overrides, every_snapshot)
            with open(args.out / "calibration.csv", "w", newline="") as f:  # rewritten as results arrive
                writer = csv.DictWriter(f, fieldnames=FIELDS)
                writer.writeheader()
                writer.writerows(rows)
            (args.runs / "calibration_table.md").write_text(markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
