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
# # 1. Grokking on modular addition
#
# A one-layer transformer learns $(a + b) \bmod p$ from 30 % of all pairs. It first **memorises**
# the training pairs (train loss falls, test loss stays high), and only much later **generalises**
# (test loss collapses): *grokking*. Nanda et al. (2023) showed why: while the train loss is already
# near zero, the network builds a Fourier-based algorithm ("the clock"), then weight decay cleans
# away the memorised solution. Their **progress measures** make the three phases visible:
# memorisation, circuit formation, clean-up.
#
# This notebook trains the canonical task (or reuses the run a previous execution left), plots
# the train/test curves, finds the three phases from the progress measures (`interp.progress`:
# detected from the run, not hard-coded), and watches the embedding circles appear.
# Notebook 2 takes the same run apart.

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

# %% [markdown]
# ## Training
#
# Full batch AdamW, cross-entropy in float64, a snapshot of the weights every few steps (the
# progress measures are computed on them). The preset's published recipe needs 10k+ steps, hours
# on a CPU; this run, `RUNS["grokking"]`, takes the preset's *watch* recipe (3x the learning rate)
# with a stronger weight decay and no early stop, which keeps the memorise-then-generalise shape in
# minutes and trains on into the clean-up phase. The settings it trains with are printed below.

# %%
print(nb.settings("grokking"))
GROKKING_DIR = nb.run("grokking")  # trained here, or reused when a run with these settings is there
cfg = interp.load(GROKKING_DIR).cfg
history = json.loads((GROKKING_DIR / "history.json").read_text())
first = lambda key: next((r["step"] for r in history if r[key] >= 0.99), None)
print(f"{len(history)} log rows, last step {history[-1]['step']}: "
      f"train acc {history[-1]['train_acc']:.3f}, test acc {history[-1]['test_acc']:.3f}")
print(f"train accuracy >= 99 % at step {first('train_acc')}, test accuracy >= 99 % at step {first('test_acc')}")

# %% [markdown]
# ## Progress measures and the three phases
#
# `progress.run_progress` measures every snapshot over all $p^2$ inputs: train/test loss, the
# **restricted loss** (logits projected onto $\cos(w_k(a+b)), \sin(w_k(a+b))$ of the key frequencies
# only), the **excluded loss** (those directions removed, on the train set), the Gini coefficients
# of the Fourier norms of $W_E$ and $W_L = W_{out} W_U$, and the total sum of squared weights.
# `progress.detect_phases` then places the phase boundaries: memorisation ends when train
# accuracy reaches 99 %; circuit formation ends when the test loss starts its fall; clean-up ends
# once the weight norm and the restricted loss have settled.

# %%
prog = progress.run_progress(GROKKING_DIR)
ph = prog.phases
print(f"key frequencies (final model): {prog.key_freqs}")
print(f"memorisation      : steps 0 - {ph.memorisation_end}")
print(f"circuit formation : steps {ph.memorisation_end} - {ph.circuit_formation_end}")
print(f"clean-up          : steps {ph.circuit_formation_end} - {ph.cleanup_end}"
      + ("   (None: not settled by the end of the run)" if ph.cleanup_end is None else ""))

# %% [markdown]
# The train/test curves from the training log (log scale), with the detected phases shaded:

# %%
plots.loss_curves(history, ph, title=f"Grokking: p = {cfg.p}, "
                  f"{nb.settings('grokking').get('train_frac', 0.3):.0%} of pairs for training").show()

# %% [markdown]
# The progress measures on the snapshots. The restricted loss falls *before* the test loss (the
# circuit exists before the model generalises), the excluded loss rises while the memorised
# solution is replaced, the Gini coefficients rise as the representation becomes sparse in
# frequency, and the weight norm falls during clean-up.

# %%
plots.progress_curves(prog).show()
i_mem = int((prog.steps == ph.memorisation_end).nonzero()[0]) if ph.memorisation_end is not None else 0
print(f"at the end of memorisation (step {prog.steps[i_mem].item()}): train loss {prog.train_loss[i_mem]:.2e}, "
      f"test loss {prog.test_loss[i_mem]:.2f}, restricted loss {prog.restricted_loss[i_mem]:.2f}")
print(f"at the end of the run (step {prog.steps[-1].item()}): test loss {prog.test_loss[-1]:.2e}, "
      f"restricted loss {prog.restricted_loss[-1]:.2e}, excluded loss {prog.excluded_loss[-1]:.2f}, "
      f"Gini(W_E) {prog.gini_W_E[0]:.2f} -> {prog.gini_W_E[-1]:.2f}, "
      f"sum of squared weights {prog.sum_sq_weights.max():.0f} (peak) -> {prog.sum_sq_weights[-1]:.0f}")

# %% [markdown]
# ## The embedding circles appear over training
#
# The final model embeds each token $t$ on circles: on the (cos, sin) Fourier directions of each key
# frequency $k$, token $t$ sits at angle $2\pi k t / p$. Here are the same planes (the final model's
# key frequencies) in snapshots taken at the start, at each detected phase boundary, and at the end:
# a random cloud at initialisation, rings by the end.

# %%
snapshots = dict(checkpoints.list_snapshots(GROKKING_DIR))
wanted = [0, ph.memorisation_end, ph.circuit_formation_end, ph.cleanup_end, max(snapshots)]
steps = sorted({min(snapshots, key=lambda s: abs(s - w)) for w in wanted if w is not None})
keys = prog.key_freqs[:4]
circle_probes = [probes.embedding(interp.load(snapshots[s]), freqs=keys) for s in steps]
plots.circles_over_training(circle_probes, steps).show()

# %% [markdown]
# How circular is each snapshot? The share of the embedding's (non-constant) Fourier energy on
# the key frequencies, per snapshot:

# %%
for s, probe in zip(steps, circle_probes):
    norms = probe.freq_norms.square()
    share = norms[[k - 1 for k in prog.key_freqs]].sum() / norms.sum()
    print(f"step {s:>5}: {share:.1%} of W_E's non-constant energy on frequencies {prog.key_freqs}")

# %% [markdown]
# ### Your turn: the Gini coefficient of the embedding
#
# The progress measure `gini_W_E` is the Gini coefficient (Hurley & Rickard) of the norms of the
# Fourier components of $W_E$ (rows $0..p-1$): sort the $n = p$ norms ascending, $c_{(1)} \le \dots \le c_{(n)}$,
# then $G = 1 - 2 \sum_i \frac{c_{(i)}}{\lVert c \rVert_1} \cdot \frac{n - i + 1/2}{n}$. Compute `my_gini` for the
# final model from `W_E` and `fourier.fourier_basis(p, torch.float64)` (rows = components). It must
# equal the last point of the Gini curve above.
#
# <details><summary>Solution</summary>
#
# ```python
# W_E = interp.load(GROKKING_DIR).W_E[: cfg.p].double()
# norms = (fourier.fourier_basis(cfg.p, torch.float64) @ W_E).norm(dim=-1)  # [p], one per component
# c = norms.sort().values
# n = len(c)
# i = torch.arange(1, n + 1, dtype=torch.float64)
# my_gini = (1 - 2 * (c / c.sum() * (n - i + 0.5) / n).sum()).item()
# ```
#
# </details>

# %% tags=["exercise"]
my_gini = ...  # your code here: a number in [0, 1]

# %%
notebook.check("the Gini coefficient of W_E's Fourier norms", my_gini, prog.gini_W_E[-1])

# %% [markdown]
# ## Summary
#
# The model memorised first and generalised only later; the progress measures place the phase
# boundaries printed above without any hand-picked epochs, and the embedding turned from noise into
# circles at a handful of key frequencies. Notebook 2 reverse-engineers this model's algorithm.
# (Nanda et al.'s run, at lr 1e-3 and weight decay 1: memorisation to ≈1.4k epochs, circuit formation
# to ≈9.4k, clean-up to ≈14k. The faster recipe here compresses the same three phases into about two
# thousand steps. Key frequencies are a property of the run, not of p.)
