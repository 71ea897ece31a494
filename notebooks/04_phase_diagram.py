# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. A phase diagram: attention rate × width
#
# Zhong et al. (2023) swept the attention rate $\alpha$ (0 = constant attention, 1 = standard) and the
# model width, and classified every run: at width 128, runs with $\alpha < 0.4$ are all pizzas
# (GS ≥ 0.98) and runs with $\alpha \ge 0.6$ none; the boundary moves to larger $\alpha$ as the width
# grows. This notebook runs such a sweep with `interp.sweep` (models that share a shape train as one
# stacked batch with `torch.func.vmap`), classifies each run with `interp.classify`, and draws the
# diagram.

# %% [markdown]
# ## Parameters
# `MODE = "fast"` (or `INTERP_NOTEBOOK_MODE=fast`) runs a small version in seconds (what CI runs);
# the default is `full`. The runs are `interp.notebook.RUNS`: a preset and a recipe of
# `interp.presets`, with the few overrides that make them notebook runs.

# %% tags=["parameters"]
MODE = None  # "fast": a small version in seconds (what CI runs), "full": the real analysis; None: $INTERP_NOTEBOOK_MODE, else "full"
OUT = None  # where runs go; None: $INTERP_NOTEBOOK_OUT, else the repository's checkpoints/

# %%
import json

import torch

import interp
from interp import checkpoints, circles, fourier, metrics, notebook, plots, probes, progress

nb = notebook.setup(MODE, OUT)  # fast or full, where runs go; plotly figures embedded in the notebook
FAST = nb.fast

# %%
print(nb.settings("phase"))
rows = nb.sweep("phase")  # every (attention rate, width) model, classified: trained here, or reused
print(f"{len(rows)} runs")
cols = ["attn_rate", "d_model", "seed", "test_acc", "classify.label", "classify.gradient_symmetricity",
        "classify.distance_irrelevance", "classify.circularity"]
print("".join(f"{c.split('.')[-1][:14]:>16}" for c in cols))
for r in rows:
    print("".join(f"{r.get(c):>16.3f}" if isinstance(r.get(c), float) else f"{str(r.get(c)):>16}" for c in cols))

# %% [markdown]
# ## The diagram
#
# Each marker is one run, at its attention rate (x) and width (y); runs of different seeds in one cell
# sit side by side. First coloured by the classifier's label, then by gradient symmetricity (the
# paper's colour scale: pizza ≈ 1).

# %%
plots.phase_diagram(rows, color="classify.label").show()
plots.phase_diagram(rows, color="classify.gradient_symmetricity").show()

# %% [markdown]
# Zhong et al. keep only runs whose embedding is clean (circularity ≥ 0.995) in their diagrams; small,
# short runs rarely reach that. How many of ours do, and where does the label change along $\alpha$
# at each width?

# %%
clean = [r for r in rows if r.get("classify.circularity", 0) >= 0.995]
print(f"{len(clean)} of {len(rows)} runs have circularity >= 0.995")
for width in sorted({r["d_model"] for r in rows}):
    line = sorted((r["attn_rate"], r["classify.label"]) for r in rows if r["d_model"] == width)
    print(f"width {width:>4}: " + ", ".join(f"alpha {a:g}: {lab}" for a, lab in line))

# %% [markdown]
# ## Summary
#
# The sweep table (`results.csv` / `results.json` in the sweep folder) holds every run's settings, final
# metrics and full classification; each run folder is an ordinary run (`interp.load`, `interp classify`
# work on it).
#
# What the full run documented in `docs/notebooks.md` shows: every run with $\alpha \le 0.5$ keeps
# pizza-like, symmetric gradients (GS ≥ 0.96) and every run with $\alpha = 1$ is a clock; at
# $\alpha = 0.75$ the narrow models (width 32, 64) are already clocks while width 128 still has GS 0.97:
# the boundary moves to larger $\alpha$ as the width grows, as in the paper (there: width 128, pizza
# below $\alpha \approx 0.4$, none above 0.6, from 20k-step runs at lr 1e-3 over many seeds). No run is
# *labelled* pizza: their distance irrelevance stays between 0.3 and 0.8 and the logit templates do not
# clearly favour the pizza, so the classifier calls them ambiguous rather than forcing a class (notebook 3
# follows such a model over training). This grid is small and short: read it as a sketch, and widen it
# (more $\alpha$ values, widths, seeds, steps) in the parameters cell for a sharper picture.
