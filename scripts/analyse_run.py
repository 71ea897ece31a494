"""Measure a nanda-preset run: key frequencies, neuron clusters, logit fit, progress measures.

    .venv/bin/python scripts/analyse_run.py /tmp/nanda_run            # analyse an existing run
    .venv/bin/python scripts/analyse_run.py /tmp/nanda_run --train    # train it first (lr 3e-3, wd 3)

Prints the numbers next to the paper's (Nanda et al. 2023, REFERENCES §1).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import interp
from interp import fourier, probes, progress
from interp.errors import InterpError

PAPER = {
    "key_freqs": [14, 35, 41, 42, 52],
    "clusters": "44 / 93 / 145 / 87 / 64 neurons, 79 below the 0.85 threshold",
    "phases": "memorisation 0-1.4k, circuit formation 1.4k-9.4k, clean-up 9.4k-14k epochs",
}
# A recipe that groks in minutes on a CPU (REFERENCES §4); the published one (lr 1e-3, wd 1) needs 10k+ steps.
FAST = dict(lr=3e-3, weight_decay=3.0, steps=5000, checkpoint_every=50, log_every=25, stop_at_test_acc=None)


def first_step(prog, mask: torch.Tensor, start: int = 0):
    hits = mask[start:].nonzero()
    return int(prog.steps[start + int(hits[0])]) if len(hits) else None


def report_model(model) -> list[int]:
    p = model.cfg.p
    emb = probes.embedding(model)
    keys = emb.key_freqs
    sq = emb.freq_norms.square()
    print(f"key frequencies: {keys}   (paper: {PAPER['key_freqs']}; a property of the run, not of p)")
    print(f"  share of W_E[:p]'s non-constant squared norm on the key frequencies: "
          f"{(sq[[k - 1 for k in keys]].sum() / sq.sum()).item():.3f} ({len(keys)} of {fourier.n_freqs(p)} frequencies)")
    top = emb.freq_norms.argsort(descending=True)[: len(keys) + 3]
    print("  largest frequency norms: " + ", ".join(f"{int(k) + 1}: {emb.freq_norms[k].item():.2f}" for k in top))
    neu = probes.neurons(model)
    in_keys = sum(v for k, v in neu.cluster_sizes.items() if k in keys)
    print(f"neuron clusters (FVE >= {neu.threshold}): " + " / ".join(f"{k}: {v}" for k, v in neu.cluster_sizes.items())
          + f", {neu.n_unassigned} unassigned of {model.cfg.d_mlp}")
    print(f"  neurons in key-frequency clusters: {in_keys} ({in_keys / model.cfg.d_mlp:.1%})")
    best = neu.fve.argmax(-1)[neu.freq == 0] + 1
    counts = {int(k): int((best == k).sum()) for k in best.unique()}
    print("  unassigned neurons by their best frequency: "
          + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])))
    print(f"  paper: {PAPER['clusters']}")
    lg = probes.logits(model, freqs=keys)
    print(f"logits: sum_k alpha_k cos(w_k(a+b-c)) over the key frequencies explains {lg.fve:.1%} of the "
          "variance of the (per-input centred) logits; per frequency "
          + ", ".join(f"{k}: {f:.1%}" for k, f in zip(keys, lg.fve_per_freq.tolist())))
    return keys


def report_progress(run_dir: Path, keys: list[int], every: int) -> None:
    t0 = time.perf_counter()
    prog = progress.run_progress(run_dir, freqs=keys, every=every)
    secs = time.perf_counter() - t0
    n = len(prog.steps)
    print(f"\nprogress measures over {n} snapshots (steps {int(prog.steps[0])}..{int(prog.steps[-1])}) in {secs:.1f} s")
    print(f"{'step':>6} {'train':>10} {'test':>10} {'test acc':>8} {'restricted':>10} {'excluded':>9} "
          f"{'gini W_E':>8} {'gini W_L':>8} {'sum w^2':>8}")
    # every snapshot up to twice the end of circuit formation (where the action is), then ~20 rows
    dense_to = 2 * (prog.phases.circuit_formation_end or 0)
    shown = sorted({i for i in range(n) if prog.steps[i] <= dense_to} | set(range(0, n, max(1, n // 20))) | {n - 1})
    for i in shown:
        print(f"{int(prog.steps[i]):>6} {prog.train_loss[i]:>10.3g} {prog.test_loss[i]:>10.3g} {prog.test_acc[i]:>8.3f} "
              f"{prog.restricted_loss[i]:>10.3g} {prog.excluded_loss[i]:>9.3g} {prog.gini_W_E[i]:>8.3f} "
              f"{prog.gini_W_L[i]:>8.3f} {prog.sum_sq_weights[i]:>8.0f}")
    print(f"\nat the end (step {int(prog.steps[-1])}): restricted loss {prog.restricted_loss[-1]:.3g}, "
          f"excluded loss (train) {prog.excluded_loss[-1]:.3g}, test loss {prog.test_loss[-1]:.3g}, "
          f"train loss {prog.train_loss[-1]:.3g}")
    print("  excluded loss per key frequency: " + ", ".join(
        f"{k}: {v:.3g}" for k, v in zip(prog.key_freqs, prog.excluded_loss_per_freq[-1].tolist())))
    ph = prog.phases
    print(f"phases (detected): memorisation ends {ph.memorisation_end}, circuit formation ends "
          f"{ph.circuit_formation_end}, clean-up ends {ph.cleanup_end}   (paper: {PAPER['phases']})")

    # Does excluded loss rise before test loss falls?
    i_mem = int((prog.train_acc >= 0.99).nonzero()[0]) if (prog.train_acc >= 0.99).any() else 0
    i_min = i_mem + int(prog.excluded_loss[i_mem:].argmin())
    ex_min = prog.excluded_loss[i_min].item()
    i_peak = i_mem + int(prog.test_loss[i_mem:].argmax())
    s_ex = first_step(prog, prog.excluded_loss >= 2 * ex_min, i_min)
    s_test_half = first_step(prog, prog.test_loss <= prog.test_loss[i_peak] / 2, i_peak)
    s_r_half = first_step(prog, prog.restricted_loss <= prog.restricted_loss[i_mem] / 2, i_mem)
    s_acc50 = first_step(prog, prog.test_acc >= 0.5)
    s_acc99 = first_step(prog, prog.test_acc >= 0.99)
    print(f"\nexcluded loss: minimum {ex_min:.3g} at step {int(prog.steps[i_min])} (after memorisation), "
          f"doubled by step {s_ex}")
    print(f"restricted loss: halved from its end-of-memorisation value by step {s_r_half}")
    print(f"test loss: peak {prog.test_loss[i_peak]:.3g} at step {int(prog.steps[i_peak])}, halved by step "
          f"{s_test_half}; test accuracy >= 50% at step {s_acc50}, >= 99% at step {s_acc99}")
    first, last = 0, n - 1
    for name in ("gini_W_E", "gini_W_L"):
        g = getattr(prog, name)
        print(f"{name}: {g[first]:.3f} (step {int(prog.steps[first])}) -> {g[i_mem]:.3f} (end of memorisation) -> "
              f"{g[last]:.3f} (step {int(prog.steps[last])}), max {g.max():.3f}")
    i_w = int(prog.sum_sq_weights.argmax())
    print(f"sum of squared weights: {prog.sum_sq_weights[0]:.0f} -> peak {prog.sum_sq_weights[i_w]:.0f} "
          f"(step {int(prog.steps[i_w])}) -> {prog.sum_sq_weights[-1]:.0f} at the end")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--train", action="store_true", help=f"train the nanda preset there first: {FAST}")
    ap.add_argument("--every", type=int, default=1, help="use every N-th snapshot for the progress measures")
    args = ap.parse_args(argv)
    try:
        if args.train:
            res = interp.train("nanda", out=args.run_dir, progress=True, **FAST)
            print(f"trained {res.step} steps in {res.seconds:.0f} s")
        model = interp.load(args.run_dir)
        info = model.checkpoint_info
        print(f"run {args.run_dir}: step {info.step}, p={model.cfg.p}, d_model={model.cfg.d_model}, "
              f"train_frac={info.train_config.train_frac}, lr={info.train_config.lr}, wd={info.train_config.weight_decay}")
        m = info.metrics
        if m:
            print(f"final: train acc {m['train_acc']:.4f}, test acc {m['test_acc']:.4f}")
        keys = report_model(model)
        if not keys:
            print("no clear key frequencies: nothing more to measure")
            return 1
        report_progress(args.run_dir, keys, args.every)
    except InterpError as e:
        print(f"analyse_run: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
