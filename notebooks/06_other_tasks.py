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
# # 6. Beyond a + b: subtraction and multiplication
#
# Power et al. (2022) grokked many binary operations mod p, not only $a + b$. Two of them are addition in
# disguise, and the clock/pizza analysis applies to them once the tokens are read in the right coordinates:
#
# - **subtraction** $a - b = a + (p - b)$: the addition circuit with $b$'s embedding reflected;
# - **multiplication** $a \cdot b$ on the nonzero residues: for a prime $p$ they form a cyclic group of order
#   $p - 1$. With $g$ a generator (a primitive root) write $a = g^i$, $b = g^j$; then $a \cdot b = g^{i + j}$,
#   so multiplication *is* addition mod $p - 1$ in **discrete-log coordinates** (division is $i - j$).
#
# `interp.tasks.group_view(model)` makes that exact: an addition model mod $n$ with the same logits, the
# rows of $W_E$ and the columns of $W_U$ re-indexed by group element (for $a - b$ and $a / b$ the $b$
# position gets its own, reflected, rows: a `diff_vocab` model). Every analysis of the library
# (`classify`, `key_frequencies`, the probes, the progress measures) goes through it, so a circle of a
# multiplication model is a circle over discrete logs.
#
# The quadratic tasks ($a^2 + b^2$, $a^2 + ab + b^2$) are no group operation: `classify` says
# `not-defined` for them rather than a wrong clock or pizza.

# %% [markdown]
# ## Parameters
# `MODE = "fast"` (or `INTERP_NOTEBOOK_MODE=fast`) runs a small version in seconds (what CI runs);
# the default is `full`. The runs are `interp.notebook.RUNS["tasks"]`.

# %% tags=["parameters"]
MODE = None  # "fast": a small version in seconds (what CI runs), "full": the real analysis; None: $INTERP_NOTEBOOK_MODE, else "full"
OUT = None  # where runs go; None: $INTERP_NOTEBOOK_OUT, else the repository's checkpoints/

# %%
import plotly.graph_objects as go
import torch

import interp
from interp import fourier, metrics, notebook, plots, probes, progress, tasks

nb = notebook.setup(MODE, OUT)  # fast or full, where runs go; plotly figures embedded in the notebook
FAST = nb.fast

# %%
# RUNS["tasks"]: the Clock/Pizza architecture with standard attention, one run per task (a sweep over `task`)
print(nb.settings("tasks"))
rows = nb.sweep("tasks")
models = {r["task"]: interp.load(r["run_dir"]) for r in rows}
for r in rows:
    print(f"{r['task']}: step {r['step']}, train acc {r['train_acc']:.3f}, test acc {r['test_acc']:.3f}")
p = models["mul"].cfg.p
print(f"p = {p}")

# %% [markdown]
# ## Discrete logarithms
#
# The smallest primitive root $g$ mod $p$ generates every nonzero residue; the discrete log of $a$ is the $i$
# with $g^i = a$. Multiplying residues adds their logs mod $p - 1$.

# %%
g, log = tasks.primitive_root(p), tasks.discrete_log(p)
print(f"generator g = {g}; g^i for i = 0..{min(p - 2, 11)}: {tasks.powers(p)[:12].tolist()}")
a, b = 3, 5
assert (log[a] + log[b]) % (p - 1) == log[a * b % p]
print(f"log {a} + log {b} = {int(log[a])} + {int(log[b])} = {int(log[a * b % p])} = log {a * b % p} (mod {p - 1})")

# %% [markdown]
# ## The group view has the model's logits
#
# The view of the multiplication model is an addition model mod $p - 1$; its logit table is the original's,
# re-indexed by discrete log. The same holds for subtraction with $b$ reflected.

# %%
for task, model in models.items():
    view = tasks.group_view(model)
    co = tasks.coordinates(task, p)
    same = torch.equal(metrics.logit_table(view), metrics.logit_table(model)[co.a[:, None], co.b[None, :]][..., co.out])
    print(f"{task}: view is an addition model mod {view.cfg.p} (diff_vocab={view.cfg.diff_vocab}); same logits: {same}")
    assert same

# %% [markdown]
# ## The verdicts
#
# `interp.classify` reads the circles in each task's group coordinates and says where.

# %%
verdicts = {task: interp.classify(m) for task, m in models.items()}
for task, v in verdicts.items():
    print(f"{task}: {v.label.upper()} (confidence {v.confidence:.2f}), key frequencies {v.key_frequencies}\n"
          f"  {v.explanation}\n")

# %% [markdown]
# ## The right basis matters
#
# The Fourier spectrum of the multiplication model's embedding over the tokens in their own order
# $0, 1, \dots, p - 1$ is flat: no key frequencies. Over discrete logs it is sparse: a few key frequencies
# carry it, as for addition.

# %%
W_raw = models["mul"].W_E[1:p].detach().double()  # the nonzero tokens in their own order (p - 1 of them)
raw = fourier.frequency_norms(W_raw)
emb = probes.embedding(models["mul"])  # through the group view: tokens ordered by discrete log
fig = go.Figure([go.Bar(y=raw.tolist(), name="tokens 1..p-1 in their own order"),
                 go.Bar(y=emb.freq_norms.tolist(), name="tokens by discrete log (group view)")])
fig.update_layout(title="mul: norm of each Fourier frequency of W_E", xaxis_title="frequency k - 1",
                  yaxis_title="norm", barmode="group", height=360)
fig.show()
print(f"key frequencies, own order: {fourier.key_frequencies(W_raw)}; by discrete log: {emb.key_freqs}")

# %% [markdown]
# ## Circles in the right basis
#
# Each token on its key frequency's (cos k, sin k) plane of the group view: for multiplication the tokens
# $g^0, g^1, g^2, \dots$ go round the circle in order; for subtraction the $a$ tokens as for addition.

# %%
for task, model in models.items():
    fig = plots.circles(probes.embedding(model))
    fig.update_layout(title=f"{task}: embedding circles in group coordinates ({verdicts[task].model.get('coordinates', '')})")
    fig.show()

# %% [markdown]
# ## Progress measures of the multiplication run
#
# The restricted and excluded losses of Nanda et al., computed in discrete-log coordinates on every snapshot.

# %%
prog = progress.run_progress(rows[[r["task"] for r in rows].index("mul")]["run_dir"])
print(f"key frequencies {prog.key_freqs}; phases {prog.phases}")
plots.progress_curves(prog).show()
