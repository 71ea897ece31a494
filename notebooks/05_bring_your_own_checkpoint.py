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
# # 5. Bring your own checkpoint
#
# Models of this task live in other projects' files. `interp.load` recognises them from their contents
# (no format flag) and never runs code from a file:
# - a **TransformerLens** `HookedTransformer` state dict, alone or inside the Grokking demo's file, which
#   also pickles its `HookedTransformerConfig` object (a class TransformerLens 4 no longer has, and
#   that a plain `torch.load(weights_only=True)` refuses);
# - a **Clock/Pizza** (and Nanda-original) layout state dict: `embed.W_E` is [d_model, d_vocab],
#   `W_O` is [d_model, n_heads·d_head], ..., saved as a `.pt` with its run's JSON config (`C` for p,
#   `attn_coeff` for the attention rate, `eqn_sign`, `diff_vocab`, ...).
#
# Here we write both kinds of file the way those projects do, from models trained by the earlier
# notebooks (reused if present, trained here if not), load them back and run the whole pipeline.

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
from pathlib import Path

import torch

import interp
from interp import checkpoints, circles, fourier, metrics, notebook, plots, probes, progress

nb = notebook.setup(MODE, OUT)  # fast or full, where runs go; plotly figures embedded in the notebook
FAST = nb.fast

# %%
FOREIGN = nb.path("foreign")
FOREIGN.mkdir(parents=True, exist_ok=True)
GROKKING_DIR = nb.run("grokking")  # notebook 1's run, notebook 3's sweep (trained here if missing)
nanda_model = interp.load(GROKKING_DIR)
rows = nb.sweep("clock_pizza")
pizza_dir = Path(next(r["run_dir"] for r in rows if r["attn_rate"] == 0.0))
pizza_model = interp.load(pizza_dir)
print(f"Nanda-style model: p={nanda_model.cfg.p}, d_model={nanda_model.cfg.d_model}; "
      f"Clock/Pizza-style model: p={pizza_model.cfg.p}, attention rate {pizza_model.cfg.attn_rate}")

# %% [markdown]
# ## A TransformerLens Grokking-demo file
#
# The demo saves `{"model": state_dict, "config": cfg, "checkpoints": [...], "checkpoint_epochs": [...],
# "train_losses": [...], ...}` with `torch.save`, where `cfg` is the `HookedTransformerConfig` object
# itself. TransformerLens 4 dropped that class, so we define a stand-in with the same name and module
# path: the file pickles exactly what the demo's does. Our parameters already have `HookedTransformer`'s
# names and shapes (with its `mask` and `IGNORE` buffers).

# %%
import dataclasses
import sys
import types


@dataclasses.dataclass
class HookedTransformerConfig:  # what TransformerLens 2.x pickled into the demo's file
    n_layers: int
    d_model: int
    n_ctx: int
    d_head: int
    n_heads: int
    d_mlp: int
    d_vocab: int
    d_vocab_out: int
    act_fn: str = "relu"
    normalization_type: str | None = None
    attention_dir: str = "causal"
    seed: int = 999


_module = types.ModuleType("transformer_lens.HookedTransformerConfig")
_module.HookedTransformerConfig = HookedTransformerConfig
HookedTransformerConfig.__module__ = _module.__name__
sys.modules[_module.__name__] = _module  # so pickle records the class under TransformerLens's own path

c = nanda_model.cfg
tl_config = HookedTransformerConfig(n_layers=c.n_layers, d_model=c.d_model, n_ctx=c.n_ctx, d_head=c.d_head,
                                    n_heads=c.n_heads, d_mlp=c.d_mlp, d_vocab=c.d_vocab, d_vocab_out=c.d_vocab_out)
history = json.loads((GROKKING_DIR / "history.json").read_text())
snaps = checkpoints.list_snapshots(GROKKING_DIR)[::10]
demo_file = FOREIGN / "grokking_demo.pth"
torch.save({
    "model": nanda_model.state_dict(),
    "config": tl_config,
    "checkpoints": [interp.load(path).state_dict() for _, path in snaps],
    "checkpoint_epochs": [step for step, _ in snaps],
    "train_losses": [r["train_loss"] for r in history],
    "test_losses": [r["test_loss"] for r in history],
    "train_indices": torch.arange(10), "test_indices": torch.arange(10, 20),
}, demo_file)
del sys.modules[_module.__name__]  # a fresh session would not have the class either
try:
    torch.load(demo_file, weights_only=True)
except Exception as e:
    print(f"torch.load(weights_only=True) refuses it: {type(e).__name__}: {str(e).splitlines()[0][:150]}")

# %% [markdown]
# `interp.load` reads it without running anything: the pickled config becomes an inert record whose fields are read as data.

# %%
tl_loaded = interp.load(demo_file)
print(f"recognised as: {tl_loaded.source_format}")
tokens = interp.all_tokens(tl_loaded.cfg)
assert torch.equal(tl_loaded.last_logits(tokens), nanda_model.last_logits(tokens))
print(f"config: p={tl_loaded.cfg.p}, '=' token {tl_loaded.cfg.eq_token}, causal {tl_loaded.cfg.causal}; "
      "the logits equal the original model's on all inputs")

# %% [markdown]
# ## A Clock/Pizza-layout file with its JSON config
#
# Zhong et al.'s code (like Nanda's original) stores the embedding as [d_model, d_vocab], the queries
# as [n_heads, d_head, d_model], $W_O$ as [d_model, n_heads·d_head] and the MLP as [out, in], and keeps the
# run's settings in a JSON file. The attention rate is not in the weights: without the JSON the
# loader says what it needs.

# %%
import einops

def clock_pizza_state_dict(model):
    """The model's weights as Zhong et al.'s code names and shapes them."""
    sd = {"embed.W_E": model.W_E.T, "pos_embed.W_pos": model.W_pos, "unembed.W_U": model.W_U}
    for l, block in enumerate(model.blocks):
        a, m = block.attn, block.mlp
        for n in "QKV":
            sd[f"blocks.{l}.attn.W_{n}"] = getattr(a, f"W_{n}").transpose(1, 2)  # [heads, d_head, d_model]
        sd[f"blocks.{l}.attn.W_O"] = einops.rearrange(a.W_O, "h e d -> d (h e)")
        sd[f"blocks.{l}.mlp.W_in"], sd[f"blocks.{l}.mlp.b_in"] = m.W_in.T, m.b_in
        sd[f"blocks.{l}.mlp.W_out"], sd[f"blocks.{l}.mlp.b_out"] = m.W_out.T, m.b_out
    return {k: v.detach().contiguous().clone() for k, v in sd.items()}

c = pizza_model.cfg
cp_dir = FOREIGN / "clock_pizza_run"
cp_dir.mkdir(exist_ok=True)
(cp_dir / "config.json").unlink(missing_ok=True)
torch.save(clock_pizza_state_dict(pizza_model), cp_dir / "model_final.pt")
try:
    interp.load(cp_dir / "model_final.pt")
except interp.CheckpointError as e:
    print(f"without its JSON: {e}")
(cp_dir / "config.json").write_text(json.dumps({
    "C": c.p, "n_layers": c.n_layers, "d_model": c.d_model, "n_heads": c.n_heads, "act_fn": "ReLU",
    "attn_coeff": c.attn_rate, "diff_vocab": c.diff_vocab, "eqn_sign": c.eq_token,
    "lr": nb.settings("clock_pizza")["lr"], "weight_decay": nb.settings("clock_pizza")["weight_decay"], "frac": 0.8}, indent=1))
cp_loaded = interp.load(cp_dir / "model_final.pt")
print(f"with config.json beside it: {cp_loaded.source_format}")
tokens = interp.all_tokens(cp_loaded.cfg)
assert torch.allclose(cp_loaded.last_logits(tokens), pizza_model.last_logits(tokens), atol=1e-5)
print(f"config: p={cp_loaded.cfg.p}, attention rate {cp_loaded.cfg.attn_rate}, causal {cp_loaded.cfg.causal}; "
      "the logits equal the original model's")


# %% [markdown]
# ## The whole pipeline on the loaded models
#
# From here on the foreign models are ordinary `interp` models: Fourier probes through hooks, progress
# measures (with the train/test split given explicitly, since a foreign file does not say how it was
# split), and the clock/pizza classification.

# %%
def pipeline(name, model, train_frac, data_seed):
    print(f"== {name}")
    emb = probes.embedding(model)
    keys = emb.key_freqs or None
    print(f"key frequencies: {emb.key_freqs}")
    neu = probes.neurons(model)
    print(f"neuron clusters: {neu.cluster_sizes}, {neu.n_unassigned} unassigned of {model.cfg.d_mlp}")
    if keys:
        lg = probes.logits(model, freqs=keys)
        print(f"logits: sum_k alpha_k cos(w_k(a+b-c)) explains {lg.fve:.1%}")
        m = progress.measure(model, train_frac=train_frac, data_seed=data_seed)
        print(f"restricted loss {m.restricted_loss:.2e}, excluded loss {m.excluded_loss:.2f}, "
              f"test accuracy {m.test_acc:.3f}, Gini(W_E) {m.gini_W_E:.2f}")
    v = interp.classify(model)
    print(f"classify: {v.label.upper()}: {v.explanation}")
    return emb, v

split = json.loads((GROKKING_DIR / "run.json").read_text())["train_config"]  # how notebook 1's run was split
pizza_split = json.loads((pizza_dir / "run.json").read_text())["train_config"]
tl_emb, tl_verdict = pipeline("TransformerLens demo file", tl_loaded, split["train_frac"], split["data_seed"])
cp_emb, cp_verdict = pipeline("Clock/Pizza file", cp_loaded, pizza_split["train_frac"], pizza_split["data_seed"])

# %%
if tl_emb.key_freqs:
    plots.circles(tl_emb).show()
if cp_emb.key_freqs:
    plots.circles(cp_emb).show()

# %% [markdown]
# The same verdicts come straight from a path (`interp.classify` loads the file itself), which is also
# what the command line does: `interp classify checkpoints/nb_foreign/grokking_demo.pth`.

# %%
for path in (demo_file, cp_dir / "model_final.pt"):
    v = interp.classify(path)
    print(f"{v.source}\n  -> {v.label}: {v.explanation}")
assert interp.classify(demo_file).label == tl_verdict.label

# %%
# The one-page HTML report of a model (interp.write_report; `interp report FILE` on the command line):
# the verdict, the scores beside the paper's values, and the figures, in one self-contained file.
page = interp.write_report(demo_file, out=FOREIGN / "grokking_demo.report.html")
print(f"report written: {page} ({page.stat().st_size / 1e6:.1f} MB)")
