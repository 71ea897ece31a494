"""The Clock/Pizza phase diagram (Zhong et al. 2023, REFERENCES §2) at small scale: attention rate α ×
width, several seeds, p 59, the pizza-a architecture ([a, b], no `=`, no mask, ReLU, MLP biases),
every model classified by `interp.classify`; writes docs/phase_diagram.md, .html, .png and .csv.

    # train + classify (resumable: re-run the same command to continue; one thread, one sweep at a time)
    OMP_NUM_THREADS=1 nohup python scripts/phase_diagram.py run --out runs/phase_diagram > run.log 2>&1 &
    # the table, the boundary per width and the figure, from the sweep directories
    python scripts/phase_diagram.py table --out runs/phase_diagram
    python scripts/phase_diagram.py figure --out runs/phase_diagram

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
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import interp
from interp import plots
from interp.checkpoints import atomic_write_bytes

ALPHAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
WIDTHS = (32, 64, 128, 256)
RECIPE = dict(steps=800, stop_when_clean=False, checkpoint_every=100, log_every=50)


@dataclass(frozen=True)
class Item:
    """One sweep call: six (or `alphas`) stacked models of one width and seed; lr / steps override RECIPE."""

    width: int
    seed: int
    alphas: tuple = ALPHAS
    lr: float | None = None  # None: the fast recipe's 1e-2
    steps: int | None = None  # None: RECIPE's

    @property
    def name(self) -> str:
        name = f"w{self.width}_s{self.seed}"
        if self.alphas != ALPHAS:
            name += "_a" + "-".join(f"{a:g}" for a in self.alphas)
        if self.lr is not None or self.steps is not None:
            name += f"_lr{self.lr or 1e-2:g}_steps{self.steps or RECIPE['steps']}"
        return name


# The order they train, sized to this machine (measured: docs/phase_diagram.md, wall time): widths 32-128
# at seed 0; width 32 again at lr 3e-3 x 1500 steps, because at lr 1e-2 it does not generalise (5 of 6
# runs below 99 % test accuracy at step 800: train accuracy stalls at 0.8-0.98 under weight decay 2; a
# probe at lr 3e-3 x 1500, seed 0, α 0 / 0.6 / 1 gave test accuracy 0.99-1.0 and pizza / ambiguous /
# clock); width 256 (~0.4 CPU-s per model-step, 5x width 128) only where the paper's boundary lies
# (α 0.6-1); then more seeds, cheapest first.
VARIANT_32 = dict(lr=3e-3, steps=1500)
PLAN = ([Item(32, 0), Item(64, 0), Item(128, 0), Item(32, 0, **VARIANT_32), Item(256, 0, (0.6, 0.8, 1.0)), Item(64, 1),
         Item(32, 1, **VARIANT_32), Item(128, 1), Item(64, 2), Item(32, 2, **VARIANT_32), Item(128, 2),
         Item(256, 1, (0.6, 0.8, 1.0)), Item(256, 0, (0.0, 0.2, 0.4)), Item(32, 1), Item(32, 2),
         Item(256, 1, (0.0, 0.2, 0.4)), Item(256, 2, (0.6, 0.8, 1.0)), Item(256, 2, (0.0, 0.2, 0.4))])


# The paper's boundary per width, α where runs stop being pizza-like (REFERENCES §2): about 0.3-0.5 at
# d_model 32-63 (64 sits at the band's edge), 0.4-0.6 at 128 (their run table: all GS >= 0.98 below 0.4,
# 79 % in [0.4, 0.6), 6 % in [0.6, 0.8)), 0.8-1.0 at 256-511.
PAPER = {32: (0.3, 0.5), 64: (0.3, 0.5), 128: (0.4, 0.6), 256: (0.8, 1.0)}
DOC, CSV_OUT, HTML, PNG = (Path("docs") / f"phase_diagram.{ext}" for ext in ("md", "csv", "html", "png"))
TIMING = "timing.jsonl"  # one line per sweep call: directory, seconds, load average during it


INTRO = """
Regenerate everything (the committed run used `--out /work/phase_runs/main`, outside the repository):

    OMP_NUM_THREADS=1 nohup python scripts/phase_diagram.py run --out runs/phase_diagram > run.log 2>&1 &
    python scripts/phase_diagram.py table --out runs/phase_diagram    # this file and phase_diagram.csv
    python scripts/phase_diagram.py figure --out runs/phase_diagram   # phase_diagram.html and .png

`run` trains PLAN in `scripts/phase_diagram.py` in order, one `interp.sweep` call per (width, seed),
skipping finished ones and resuming a cut one; stop it whenever and tabulate what finished. The same
models from the command line, per directory: `interp sweep --preset pizza-a --recipe fast --attn-rate
0,0.2,0.4,0.6,0.8,1 --d-model W --seed S --data-seed S --steps 800 --stop-when-clean false
--checkpoint-every 100 --log-every 50 --out OUT/wW_sS`.

Zhong et al. (2023) trained ~14,000 one-layer transformers on (a + b) mod 59 across the attention rate α
(0 = constant attention, 1 = standard) and the width, and found two phases: pizzas (gradient symmetricity
GS ≥ 0.98) at small α, clocks at large α, with the boundary moving to larger α as the width grows
(REFERENCES §2). This is that diagram at small scale: α ∈ {0, 0.2, 0.4, 0.6, 0.8, 1} × d_model ∈ {32, 64,
128, 256} (4 heads, d_head = d_model / 4, d_mlp = 4 d_model: what `--d-model` alone implies) on the
`pizza-a` architecture (p 59, [a, b] without `=`, no causal mask, ReLU, MLP biases, the authors' init),
each model classified by `interp.classify` (circle by circle, docs/calibration.md) inside `interp.sweep`.

**Recipe.** The `pizza-a` preset's `fast` recipe (AdamW lr 1e-2, weight decay 2, betas (0.9, 0.98), the
authors' 10-step warm-up whose first update has lr 0, 80 % train, full batch) for a fixed 800 steps, the
clean-circuit early stop off; model seed s with data split s. Why: the published recipe (lr 1e-3 ×
20 000 steps) is 25× the updates, out of reach on this shared 2-core machine (pilot, 6 stacked models ×
30 steps, one thread, load ~4: 0.027, 0.026, 0.085, 0.40 s per model-step at widths 32, 64, 128, 256). Why 800 steps: docs/calibration.md, at width 128, same recipe:
the step-300 snapshots are mostly not yet clocks at α 0.9 (1 of 8; the classifier's clock needs the
circles' DI near 1), the same runs at step 800 are 75 % clocks with a median GS of 0.415 (the authors':
0.544). The clean stop fires mid-transition (pizza-b preset notes), so it is off.

**What ran** (all of PLAN): widths 32, 64 and 128 × 6 α × seeds 0-2 (width 32 also at lr 3e-3 × 1500 steps,
because it does not generalise at lr 1e-2) and width 256 (~5x width 128's cost), 90 models: every (width,
α) cell has 3 seeds.
"""
BOUNDARY_DEF = """
**Boundary.** For each width, the smallest α from which on (that α and every larger one on the grid) the
cell's median GS over its generalising runs is below 0.98, the paper's own pizza criterion: the paper draws
its diagrams in GS, so this is the number that compares with theirs. "From which on" rather than "first":
with 3 seeds a cell can be noisy, and one non-pizza cell below a pizza cell should not move the boundary.
Beside it, the same rule on the labels: clock-like (clock or mixed, i.e. the model has a clock circle)
more than half of the cell's runs. On a grid of step 0.2 the boundary lies between the last pizza-side α
and that α: the table gives that interval. The paper's boundary is read off REFERENCES §2 (their phase
diagrams and run table): about 0.3-0.5 at widths 32-63 (64 sits at the band's edge), 0.4-0.6 at 128
(their table: every run at α < 0.4 has GS ≥ 0.98, 79 % in [0.4, 0.6), 6 % in [0.6, 0.8)), 0.8-1.0 at
256-511. "agrees" = the two intervals overlap (ours excludes its lower end, a pizza-side α).
"""
COMPARISON = """
What the committed run says (the tables above; 3 runs per cell, fewer generalising at width 32: a few samples, not a
distribution; these sentences were written from the committed run, the tables are regenerated):

- **Agrees: the trend.** The GS boundary moves to larger α as the width grows, as in the paper: 0.2-0.4 at
  width 32 (at lr 3e-3, below), 0.4-0.6 at 64, 0.6-0.8 at 128, 0.8-1 at 256 (three seeds, see below). Small α is
  pizza at every width where it generalises (median GS ≥ 0.99 at α ≤ 0.2 in every such cell); α 1 is
  clock-like at widths 32-128 (median GS 0.53, 0.29, 0.19; largest-wrong DI medians 0.80-0.91).
- **Agrees: widths 32 and 64** overlap the paper's band (0.3-0.5).
- **One grid step later at 128, on a knife edge.** α 0.6 has GS 0.986, 0.942, 0.980 (median 0.9804, 0.0004
  above the cut 0.98; 2 of 3 runs labelled pizza). The authors' table has 79 % of runs pizza-like in
  [0.4, 0.6) and 6 % in [0.6, 0.8); α 0.6 sits on the edge of both bins, and one more seed could move our
  boundary to 0.4-0.6, inside the paper's.
- **Agrees: width 256** (three seeds, 0.8-1 by median GS and by labels). It is the width where the boundary is
  late: every run up to α 0.6 is pizza-like (GS ≥ 0.994), at α 0.8 two of three (seed 1 leaves, GS 0.863,
  mixed), and even at α 1 seed 0 stays a pizza (GS 0.992; 0.987, 0.990, 0.990, 0.992 at steps 200-800,
  `interp.classify` on `OUT/w256_s0_a0.6-0.8-1/runs/attn_rate=1.0/checkpoints/step_000N00.safetensors`) while
  seeds 1 and 2 are mixed (GS 0.730, 0.843). The paper's 0.8-1.0 band at 256-511 says the same: wide models
  stay pizza-like up to large α. Two seeds was all the previous session had (0.6-0.8, touching the band).
- **Width 32 barely trains with these fast recipes.** At the diagram's lr 1e-2, 5 of 6 runs stay below 99 %
  accuracy on all pairs at step 800 (train accuracy 0.79-0.98): lr 1e-2 with weight decay 2 shrinks the
  weights by 2 % per update, more than a width-32 model holds against. At lr 3e-3 × 1500 steps 9 of 18
  generalise (seed 0: 6 of 6, seed 1: 3 of 6, seed 2: none, train accuracy 0.80-0.90), so the width-32 cells
  rest on 1-2 runs each. The authors' lr 1e-3 × 20 000 steps trains width 32; this is our recipe's limit.
- **The seeds disagree with each other near the boundary.** Width 64, α 0.8: GS 0.497, 0.991, 0.435 (seed 1
  with data split 1 stays pizza up to α 0.8). The label rule (clock-like > half; ambiguous counts against)
  puts the label boundary at or after the GS one.

Why ours can differ from theirs:

1. **Training.** 800 steps at lr 1e-2 (1500 at 3e-3 for width 32) instead of 20 000 at 1e-3. At width 128
   docs/calibration.md measured what this does: at step 800, α 0.7 matches the authors' median GS (0.787
   vs 0.790) but α 0.5 is 62 % pizza against their 79 % in [0.4, 0.6): the short recipe does not shift the
   whole distribution one way. Whether lr 1e-2 is what keeps width-256 seed 0 a pizza at α 1 is not measured
   here (the published recipe at width 256 would cost ~25x this sweep's updates).
2. **Seeds.** 3 runs per cell (fewer generalise at width 32) against ~90 per α bin in the authors' table at
   width 128: width 256 costs ~5x width 128 per model-step (wall time above).
3. **Filtering.** The paper's diagrams keep only runs with circularity ≥ 0.995 (about a third of their
   1-layer runs); we keep every run that generalises (accuracy ≥ 0.99 on all p² pairs); per-run
   circularity is in the CSV.
4. **Resolution.** Our α grid has step 0.2, so a boundary is located to within 0.2; the paper's bands are
   read off its figures and are ranges too.
"""


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


def run(out: Path, plan: list[Item]) -> None:
    """Train and classify every item of `plan`, one sweep at a time; finished ones are skipped."""
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    for item in plan:
        d = out / item.name
        if (d / "results.json").exists() and len(json.loads((d / "results.json").read_text())) == len(item.alphas):
            continue
        print(f"== {item} -> {d}", flush=True)
        t0 = time.time()
        with LoadSampler() as load:
            if (d / "sweep.json").exists():
                r = interp.sweep(out=d, resume=True)
            else:
                over = {k: v for k, v in (("lr", item.lr), ("steps", item.steps)) if v is not None}
                r = interp.sweep("pizza-a", "fast", out=d, attn_rate=list(item.alphas), d_model=item.width,
                                 seed=item.seed, data_seed=item.seed, **{**RECIPE, **over})
        line = dict(dir=d.name, width=item.width, seed=item.seed, models=len(r.results), seconds=round(r.seconds, 1),
                    steps=item.steps or RECIPE["steps"], started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
                    threads=torch.get_num_threads(), load_mean=round(sum(load.samples) / len(load.samples), 2),
                    load_max=round(max(load.samples), 2))
        with open(out / TIMING, "a") as f:  # append-only log: a partial line can only be the last one
            f.write(json.dumps(line) + "\n")
        print(json.dumps(line), flush=True)


# ---- the table and the figure ---------------------------------------------------------------------------
def load_rows(out: Path) -> list[dict]:
    """The finished, classified rows of every sweep directory OUT/w*_s* (unfinished models have none)."""
    rows = []
    for d in sorted(out.glob("w*_s*")):
        f = d / "results.json"
        if f.exists():
            rows += [{**r, "sweep": d.name} for r in json.loads(f.read_text())]
    if not rows:
        raise SystemExit(f"{out}: no finished sweep (no w*_s*/results.json); run `phase_diagram.py run` first")
    return rows


def load_timing(out: Path) -> list[dict]:
    f = out / TIMING
    lines = f.read_text().splitlines() if f.exists() else []
    return [json.loads(x) for x in lines if x.strip().endswith("}")]


def _f(v, fmt=".3f") -> str:
    return "–" if v is None else format(v, fmt)


def _interval(b, alphas) -> tuple[float | None, float] | None:
    """Where the boundary lies on this width's grid: between the last pizza-side α (None: not measured) and b."""
    if b is None:
        return None
    below = [a for a in alphas if a < b]
    return (below[-1] if below else None, b)


def _show(iv) -> str:
    if iv is None:
        return "not reached by α 1"
    return f"≤ {iv[1]:g} (lower α not run)" if iv[0] is None else f"{iv[0]:g}–{iv[1]:g}"


def _agrees(ours, paper) -> str:
    if ours is None:
        return "no: pizza-like up to α 1"
    lo, hi = (ours[0] if ours[0] is not None else 0.0), ours[1]  # ours: (lo, hi], lo is still pizza-side
    return "yes" if lo < paper[1] and hi >= paper[0] else ("no: earlier" if hi < paper[0] else "no: later")


def recipe_of(row: dict) -> tuple[float, int]:
    return (row["lr"], row["step"])


MAIN = (1e-2, RECIPE["steps"])  # the recipe of the diagram; other (lr, steps) are reported beside it
LETTERS = {"pizza": "P", "clock": "C", "mixed": "M", "ambiguous": "A", "non-generalizing": "N", "other": "?"}


def boundary_lines(cells: list[dict]) -> list[str]:
    by_gs, by_label = plots.phase_boundary(cells, "gs"), plots.phase_boundary(cells, "label")
    L = ["| width | runs (generalising) | ours, by median GS < 0.98 | ours, by clock-like majority | paper (REFERENCES §2) | GS boundary agrees? |",
         "|---|---|---|---|---|---|"]
    for w in sorted(by_gs):
        mine = [c for c in cells if c["d_model"] == w]
        alphas = sorted(c["attn_rate"] for c in mine)
        iv_gs = _interval(by_gs[w], alphas)
        paper = PAPER.get(w)
        L.append(f"| {w} | {sum(c['n'] for c in mine)} ({sum(c['n_generalizing'] for c in mine)}) | {_show(iv_gs)} | "
                 f"{_show(_interval(by_label[w], alphas))} | {'–' if paper is None else f'{paper[0]:g}–{paper[1]:g}'} | "
                 f"{'–' if paper is None else _agrees(iv_gs, paper)} |")
    return L


def cell_lines(cells: list[dict]) -> list[str]:
    L = ["| width | α | n | labels | clock-like share | GS q25 / median / q75 | DI q25 / median / q75 |",
         "|---|---|---|---|---|---|---|"]
    for c in cells:
        labs = " ".join(f"{LETTERS[k]}{v}" for k, v in c["counts"].items() if v)
        L.append(f"| {c['d_model']} | {c['attn_rate']:g} | {c['n']} | {labs} | {c['clock_like_share']:.2f} | "
                 f"{_f(c['gs_q25'])} / **{_f(c['gs_median'])}** / {_f(c['gs_q75'])} | "
                 f"{_f(c['di_q25'])} / {_f(c['di_median'])} / {_f(c['di_q75'])} |")
    return L


def table(out: Path) -> None:
    rows = load_rows(out)
    main = [r for r in rows if recipe_of(r) == MAIN]
    others: dict[tuple, list[dict]] = {}
    for r in rows:
        if recipe_of(r) != MAIN:
            others.setdefault(recipe_of(r), []).append(r)
    cells = plots.phase_cells(main)
    timing = load_timing(out)
    L = ["# The Clock/Pizza phase diagram at small scale", "",
         "<!-- generated by `python scripts/phase_diagram.py table`: edit the script, not this file -->", "",
         INTRO.strip(), "", "![phase diagram](phase_diagram.png)", "",
         "Interactive: [phase_diagram.html](phase_diagram.html); every run: [phase_diagram.csv](phase_diagram.csv).", "",
         "## The boundary per width", "", BOUNDARY_DEF.strip(), "", *boundary_lines(cells)]
    for (lr, steps), rs in sorted(others.items()):
        L += ["", f"Width {', '.join(str(w) for w in sorted({r['d_model'] for r in rs}))} again at lr {lr:g} × {steps} "
              f"steps (everything else the same):", "", *boundary_lines(plots.phase_cells(rs))]
    L += ["", "## Every cell", "",
          "Labels of `interp.classify` (P pizza, C clock, M mixed, A ambiguous, N non-generalizing: accuracy on all "
          "p² pairs < 0.99). GS and DI (largest-wrong-logit variant, as in the authors' table) over the "
          "generalising runs only.", "", f"The recipe of the diagram (lr 1e-2 × {RECIPE['steps']} steps):", "",
          *cell_lines(cells)]
    for (lr, steps), rs in sorted(others.items()):
        L += ["", f"lr {lr:g} × {steps} steps:", "", *cell_lines(plots.phase_cells(rs))]
    # wall time
    L += ["", "## Wall time (in-process `interp.sweep`, one thread, this shared 2-core machine)", "",
          "One line per sweep call (the stacked models of one (width, seed)), from OUT/timing.jsonl: seconds include "
          "training and classifying; the load average (1 min) was sampled every 15 s during the call. Other "
          "agents shared the two cores, so seconds are inflated; model-steps are exact.", "",
          "| sweep | started (UTC) | models | seconds | model-steps / s | load mean / max |", "|---|---|---|---|---|---|"]
    for t in timing:
        rate = t["models"] * t.get("steps", RECIPE["steps"]) / t["seconds"] if t["models"] and t["seconds"] else None
        L.append(f"| {t['dir']} | {t['started'][11:19]} | {t['models']} | {t['seconds']:.0f} | {_f(rate, '.1f')} | "
                 f"{t['load_mean']:.1f} / {t['load_max']:.1f} |")
    if timing:
        total = sum(t["seconds"] for t in timing)
        L += ["", f"Total: {sum(t['models'] for t in timing)} models in {total / 60:.1f} min of sweep calls; load "
              f"mean {sum(t['load_mean'] * t['seconds'] for t in timing) / total:.1f} (time-weighted)."]
    L += ["", "In-process vs local Ray with 2 workers, on one slice of the grid (width 64, seed 0, the six α, 800 "
          "steps; 2 groups of 3: `--group-size 3 --threads 1`, the same command with and without `--backend ray "
          "--workers 2`), measured 2026-11-29 10:30 UTC at load ~1: in-process 123.9 s wall, Ray 81.7 s wall "
          "(1.52x, Ray's local start included), final weights identical tensor for tensor. The whole grid was "
          "not re-run on Ray (95 min in-process on a loaded machine), nor on a GPU (none was lent to this session)."]
    L += ["", "## How this compares with the paper", "", COMPARISON.strip(), "",
          "Regenerate: the commands at the top of `scripts/phase_diagram.py` (`run`, then `table` and `figure`).", ""]
    atomic_write_bytes(DOC, "\n".join(L).encode())
    cols = ["sweep", "lr", "step", "d_model", "attn_rate", "seed", "data_seed", "test_acc", "classify.accuracy",
            "classify.gradient_symmetricity", "classify.distance_irrelevance", "classify.distance_irrelevance_max_wrong",
            "classify.circularity", "classify.key_frequencies", "classify.label", "classify.confidence"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([c.replace("classify.", "") for c in cols])
    for r in sorted(rows, key=lambda r: (r["lr"], r["step"], r["d_model"], r["attn_rate"], r["seed"])):
        w.writerow([round(r[c], 4) if isinstance(r.get(c), float) else r.get(c) for c in cols])
    atomic_write_bytes(CSV_OUT, buf.getvalue().encode())
    print(f"wrote {DOC} and {CSV_OUT}: {len(rows)} runs in {len(cells)} cells")


def row_name(row: dict) -> str:
    """The figure's row of a run: its width, and its recipe when not the diagram's."""
    lr, steps = recipe_of(row)
    return str(row["d_model"]) + ("" if (lr, steps) == MAIN else f" (lr {lr:g}, {steps} steps)")


def figure(out: Path) -> None:
    rows = [{**r, "row": row_name(r)} for r in load_rows(out)]
    order = [row_name(r) for r in sorted(rows, key=lambda r: (r["d_model"], recipe_of(r) != MAIN, recipe_of(r)))]
    order = list(dict.fromkeys(order))
    reference = {row_name(r): PAPER[r["d_model"]] for r in rows if r["d_model"] in PAPER}
    fig = plots.phase_diagram_cells(plots.phase_cells(rows, y="row"), reference=reference, y="row", y_order=order,
                                    title=f"Clock/Pizza phase diagram, p 59, lr 1e-2 × {RECIPE['steps']} steps unless "
                                          "marked (gold: our boundary; black bar: the paper's)")
    fig.update_yaxes(title_text="width (d_model)", row=1, col=1)
    fig.update_layout(margin=dict(l=190))
    atomic_write_bytes(HTML, fig.to_html(include_plotlyjs="cdn", full_html=True).encode())
    chromium = shutil.which("chromium")
    if chromium is None:
        print(f"wrote {HTML}; no chromium for the PNG (scripts/install_browser.sh installs it)")
        return
    with tempfile.TemporaryDirectory() as tmp:  # a self-contained page: the screenshot needs no network
        page = Path(tmp) / "fig.html"
        page.write_text(fig.to_html(include_plotlyjs=True, full_html=True, config={"displayModeBar": False}))
        shot = Path(tmp) / "fig.png"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={int(fig.layout.width) + 40},{int(fig.layout.height) + 40}",
                        f"--screenshot={shot}", page.as_uri()], check=True, capture_output=True, timeout=120)
        atomic_write_bytes(PNG, shot.read_bytes())
    print(f"wrote {HTML} and {PNG}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="train and classify the grid (resumable)")
    p.add_argument("--out", type=Path, default=Path("runs/phase_diagram"))
    p.add_argument("--plan", default=None, help="W:S,W:S,... (all six α, the recipe) instead of PLAN")
    for name, text in (("table", "write docs/phase_diagram.md and .csv"), ("figure", "write docs/phase_diagram.html and .png")):
        sub.add_parser(name, help=text).add_argument("--out", type=Path, default=Path("runs/phase_diagram"))
    args = ap.parse_args(argv)
    if args.cmd in ("table", "figure"):
        (table if args.cmd == "table" else figure)(args.out)
    elif args.cmd == "run":
        plan = [Item(*(int(x) for x in ws.split(":"))) for ws in args.plan.split(",")] if args.plan else PLAN
        run(args.out, plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
