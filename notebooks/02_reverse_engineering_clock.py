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
# # 2. Reverse-engineering the clock
#
# Nanda et al. (2023) read the algorithm of a grokked modular-addition transformer off its weights
# and activations. The model
# 1. embeds each token $a$ as $\cos(w_k a), \sin(w_k a)$ for a few **key frequencies** $w_k = 2\pi k/p$;
# 2. uses attention and the MLP to compute $\cos(w_k(a+b))$ and $\sin(w_k(a+b))$ (trigonometric
#    identities, through the ReLU neurons);
# 3. reads off logits $\approx \sum_k \alpha_k \cos(w_k(a+b-c))$, largest at $c = (a+b) \bmod p$.
#
# This notebook checks each step on **your** model: the run of notebook 1 (same folder, trained
# here if it is missing). Every number is printed from the library calls (`interp.probes`,
# `interp.progress`, `interp.classify`), and assert cells recompute some of them by hand, through
# TransformerLens hooks.

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
GROKKING_DIR = nb.run("grokking")  # notebook 1's run (trained here if it is missing)
model = interp.load(GROKKING_DIR)
cfg, p = model.cfg, model.cfg.p
history = json.loads((GROKKING_DIR / "history.json").read_text())
print(f"{GROKKING_DIR}: p={p}, d_model={cfg.d_model}, d_mlp={cfg.d_mlp}, step {history[-1]['step']}, "
      f"test accuracy {history[-1]['test_acc']:.4f}")

# %% [markdown]
# ## 1. The embedding in the Fourier basis and the key frequencies
#
# Write $W_E$ (rows = tokens $0..p-1$) in the Fourier basis of $\mathbb{Z}_p$: a trained model puts
# nearly all its weight on the cos/sin pairs of a few frequencies. `fourier.key_frequencies` picks
# those that stand clearly above the rest.

# %%
emb = probes.embedding(model)
KEYS = emb.key_freqs
print(f"key frequencies: {KEYS}")
print("norm of each (cos k, sin k) pair, largest first: "
      + ", ".join(f"{int(i) + 1}: {emb.freq_norms[i]:.2f}" for i in emb.freq_norms.argsort(descending=True)[:len(KEYS) + 3]))
plots.embedding_norms(emb).show()

# %% [markdown]
# ### Your turn: the Fourier norms, by hand
#
# Recompute the norms from the embedding the model actually uses, read through the `hook_embed` hook
# (the token embedding of $a$ at position 0, for the inputs with $b = 0$), with the basis matrix
# $F$ = `fourier.fourier_basis(p, torch.float64)` (rows: constant, cos 1, sin 1, cos 2, ...):
# $\hat W = F W_E$. `my_norms[k - 1]` is the norm of frequency $k$'s (cos, sin) pair of rows, for
# $k = 1 \dots (p-1)/2$. Their largest entries are the key frequencies.
#
# <details><summary>Solution</summary>
#
# ```python
# _, cache = model.run_with_cache(interp.all_tokens(cfg), names_filter="hook_embed")
# W_seen = cache["hook_embed"][0::p, 0].double()  # rows a*p + 0: token a at position 0 -> [p, d_model]
# coef = fourier.fourier_basis(p, torch.float64) @ W_seen  # [p components, d_model]
# my_norms = (coef[1::2].square().sum(-1) + coef[2::2].square().sum(-1)).sqrt()  # (cos k, sin k) pairs
# ```
#
# </details>

# %% tags=["exercise"]
my_norms = ...  # your code here: [p // 2]

# %%
notebook.check("the Fourier norms of the embedding", my_norms, emb.freq_norms)

# %% [markdown]
# Each token on the (cos $k$, sin $k$) plane of each key frequency: circles, in the order $t \mapsto 2\pi k t/p$.

# %%
plots.circles(emb).show()

# %% [markdown]
# ## 2. Attention
#
# The attention paid by the last position (`=`) to $a$ and to $b$, per head, as a $p \times p$ map over
# $(a, b)$ (from `blocks.0.attn.hook_pattern`), and its 2-D Fourier spectrum: the patterns are periodic
# in $a$ and $b$ at the key frequencies.

# %%
att = probes.attention(model)
plots.attention_maps(att, to="a").show()
plots.attention_maps(att, to="a", spectrum=True).show()

# %%
# Share of each head's (centred) attention-map variance at the key frequencies, from the probe's spectra.
masks = fourier.freq_masks_2d(p)[[k - 1 for k in KEYS]].any(0)
power = att.spectrum_a.square()
power[:, 0, 0] = 0
for h, share in enumerate((power * masks).sum((1, 2)) / power.sum((1, 2))):
    print(f"head {h}: {share:.1%} of the attention-to-a variance at the key frequencies")

# %% [markdown]
# ## 3. Neurons and their clusters
#
# Each MLP neuron's activation at the last position (`blocks.0.mlp.hook_post`) is a $p \times p$ map over
# $(a, b)$. Its 2-D spectrum sits on one frequency: the neuron computes a product of $\cos/\sin(w_k a)$
# and $\cos/\sin(w_k b)$ terms. Neurons are assigned to the frequency that explains most of their
# variance (unassigned below 85 %): clusters, one per key frequency.

# %%
neu = probes.neurons(model)
print("neuron clusters: " + ", ".join(f"frequency {k}: {n}" for k, n in neu.cluster_sizes.items())
      + f"; {neu.n_unassigned} of {cfg.d_mlp} neurons below the {neu.threshold} threshold")
print(f"clusters outside the key frequencies: {sorted(set(neu.cluster_sizes) - set(KEYS)) or 'none'}")
plots.neuron_maps(neu).show()
plots.neuron_maps(neu, spectrum=True).show()
plots.neuron_clusters(neu).show()

# %% [markdown]
# The check: the neuron maps straight from a `run_with_cache` cache, with TransformerLens's `cache["post", 0]` shorthand.

# %%
_, cache = model.run_with_cache(interp.all_tokens(cfg))
post = cache["post", 0][:, -1]  # [p*p, d_mlp], row a*p + b
assert torch.allclose(post.T.reshape(cfg.d_mlp, p, p).double(), neu.maps, atol=1e-6)
print("neuron maps from the cache match probes.neurons")

# %% [markdown]
# ### Your turn: one neuron's fraction of variance explained
#
# Take neuron `n` below (the most clearly assigned one) from `post`: its activation at the last position
# over all $(a, b)$ as a $p \times p$ map $A$ (row $a$, column $b$). Centre it, take its 2-D Fourier
# transform $\hat A = F A F^\top$, and compute `my_fve[k - 1]`: the share of $\sum \hat A^2$ on the
# entries $(i, j) \in \{0, 2k-1, 2k\}^2 \setminus \{(0, 0)\}$, for every frequency $k$.

# %%
n = int(neu.fve.max(-1).values.argmax())
print(f"neuron {n}")

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# A = post[:, n].reshape(p, p).double()
# A = A - A.mean()
# F = fourier.fourier_basis(p, torch.float64)
# power = (F @ A @ F.T).square()
# my_fve = []
# for k in range(1, p // 2 + 1):
#     rows = [0, 2 * k - 1, 2 * k]
#     my_fve.append(((power[rows][:, rows]).sum() - power[0, 0]) / power.sum())
# my_fve = torch.stack(my_fve)
# ```
#
# </details>

# %% tags=["exercise"]
my_fve = ...  # your code here: [p // 2]

# %%
notebook.check(f"neuron {n}'s fraction of variance per frequency", my_fve, neu.fve[n])

# %% [markdown]
# ## 4. Logits as $\sum_k \alpha_k \cos(w_k(a+b-c))$
#
# The neuron-to-logit map $W_L = W_{out} W_U$ is sparse in the Fourier basis of $c$, and the logits over
# all $(a, b, c)$ are close to a sum of one cosine per key frequency. `probes.logits` fits the
# coefficients $\alpha_k$ and reports the fraction of the (per-input centred) logit variance explained.

# %%
lg = probes.logits(model, freqs=KEYS)
print(f"sum_k alpha_k cos(w_k(a+b-c)) explains {lg.fve:.1%} of the logit variance")
for k, a, f in zip(KEYS, lg.alpha.tolist(), lg.fve_per_freq.tolist()):
    print(f"  frequency {k:>3}: alpha = {a:6.2f}, {f:.1%}")
wl = lg.W_L_freq_norms
print(f"W_L: {(wl[[k - 1 for k in KEYS]].square().sum() / wl.square().sum()):.1%} of its non-constant "
      "output energy on the key frequencies")
plots.logit_spectrum(lg).show()

# %% [markdown]
# The check: the same fit by ordinary least squares on the centred logits, by hand.

# %%
L = lg.logits - lg.logits.mean(-1, keepdim=True)  # [a, b, c], centred over c (softmax ignores a shift)
r = torch.arange(p, dtype=torch.float64)
s = r[:, None, None] + r[None, :, None] - r[None, None, :]
X = torch.stack([torch.cos(2 * torch.pi * k / p * s).flatten() for k in KEYS], 1)  # [p^3, n_keys]
alpha = torch.linalg.lstsq(X, L.flatten()[:, None]).solution[:, 0]
fve = 1 - (L.flatten() - X @ alpha).square().sum() / L.square().sum()
assert torch.allclose(alpha, lg.alpha, rtol=1e-6) and abs(fve - lg.fve) < 1e-6
print(f"least squares by hand: FVE {fve:.4f} (probes.logits: {lg.fve:.4f})")

# %% [markdown]
# ## 5. Restricted and excluded loss, Gini: the progress measures of this run
#
# The **restricted loss** keeps only the key-frequency directions $\cos(w_k(a+b)), \sin(w_k(a+b))$ of the
# logits; the **excluded loss** removes them (on the train set). If the model runs the clock, the
# restricted loss is low and the excluded loss high. Over training (notebook 1) they show when the
# circuit forms; the Gini coefficients of the Fourier norms of $W_E$ and $W_L$ show the
# representation becoming sparse.

# %%
prog = progress.run_progress(GROKKING_DIR)
now = progress.measure(model)
print(f"final model: test loss {now.test_loss:.2e}, restricted loss {now.restricted_loss:.2e}, "
      f"excluded loss {now.excluded_loss:.2f} (train loss {now.train_loss:.2e})")
print("excluded loss with one key frequency removed: "
      + ", ".join(f"{k}: {v:.2f}" for k, v in zip(now.key_freqs, now.excluded_loss_per_freq.tolist())))
print(f"Gini of W_E's Fourier norms {now.gini_W_E:.3f}, of W_L's {now.gini_W_L:.3f}; "
      f"sum of squared weights {now.sum_sq_weights:.1f}")
ph = prog.phases
print(f"phases: memorisation to step {ph.memorisation_end}, circuit formation to {ph.circuit_formation_end}, "
      f"clean-up to {ph.cleanup_end}")
plots.progress_curves(prog).show()

# %% [markdown]
# The check: the run's last snapshot is the final model, so its row of `run_progress` equals `progress.measure` of the model.

# %%
assert prog.key_freqs == now.key_freqs == KEYS
for name in ("test_loss", "restricted_loss", "excluded_loss", "gini_W_E", "gini_W_L", "sum_sq_weights"):
    assert abs(getattr(prog, name)[-1].item() - getattr(now, name)) <= 1e-6 * max(1.0, abs(getattr(now, name))), name
print("run_progress (last snapshot) == measure(final model)")

# %% [markdown]
# ## 6. Clock or pizza?
#
# Zhong et al. (2023) found a second algorithm, the pizza (notebook 3). `interp.classify` weighs the
# evidence; a Nanda-style model (standard attention) should come out a clock.

# %%
verdict = interp.classify(model)
print(verdict.label.upper())
print(verdict.explanation)
assert verdict.key_frequencies == KEYS

# %% [markdown]
# ## Summary: your model

# %%
print(f"run                : {GROKKING_DIR}")
print(f"key frequencies    : {KEYS}")
print(f"neuron clusters    : {neu.cluster_sizes}, {neu.n_unassigned} unassigned")
print(f"logit fit          : {lg.fve:.1%} of the logit variance from {len(KEYS)} cosines")
print(f"phases             : memorisation to {ph.memorisation_end}, circuit formation to "
      f"{ph.circuit_formation_end}, clean-up to {ph.cleanup_end}")
print(f"restricted/excluded: {now.restricted_loss:.2e} / {now.excluded_loss:.2f}")
print(f"classification     : {verdict.label} ({verdict.explanation})")
print("paper (Nanda et al., their seed): key frequencies [14, 35, 41, 42, 52]; another seed learns others")
