"""The source of notebooks/*.ipynb: each notebook is a list of markdown and code cells here, written
out with nbformat WITHOUT outputs (reviewable diffs, small files). Edit this file, then run

    .venv/bin/python scripts/build_notebooks.py          # rewrite notebooks/*.ipynb
    .venv/bin/python scripts/build_notebooks.py --check  # exit 1 if a notebook differs from this source

Every notebook starts with a parameters cell: MODE comes from the environment variable
INTERP_NOTEBOOK_MODE ("full", the default, or "fast", what CI runs in seconds), and runs are written
under INTERP_NOTEBOOK_OUT (default: the repository's git-ignored checkpoints/ folder). A run that
an earlier notebook (or an earlier execution) left there with the same settings is reused.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def md(text: str) -> tuple[str, str]:
    return "markdown", textwrap.dedent(text).strip("\n")


def code(text: str) -> tuple[str, str]:
    return "code", textwrap.dedent(text).strip("\n")


# ---- shared cells --------------------------------------------------------------------------------
SETUP = code('''
    import json
    import os
    import warnings
    from pathlib import Path

    warnings.filterwarnings("ignore", message="IProgress not found")  # no ipywidgets: progress bars print as text
    import plotly.io as pio
    import torch

    import interp
    from interp import checkpoints, circles, fourier, metrics, plots, probes, progress

    MODE = os.environ.get("INTERP_NOTEBOOK_MODE", "full")  # "full": the real analysis; "fast": a small run in seconds (CI)
    assert MODE in ("fast", "full"), f"INTERP_NOTEBOOK_MODE must be 'fast' or 'full', got {MODE!r}"
    FAST = MODE == "fast"
    # Runs are written under INTERP_NOTEBOOK_OUT, else the repository's git-ignored checkpoints/ folder.
    _repo = Path(interp.__file__).resolve().parent.parent
    OUT = Path(os.environ.get("INTERP_NOTEBOOK_OUT") or (_repo / "checkpoints" if (_repo / "pyproject.toml").exists()
                                                           else "checkpoints"))
    pio.renderers.default = "plotly_mimetype+notebook"  # figures are embedded in the notebook: no network needed
    print(f"MODE = {MODE!r}, runs under {OUT}")
''')

# Reuse a run left by an earlier notebook (or execution) when its settings are the same.
TRAINED_RUN = code('''
    def trained_run(run_dir, preset, recipe=None, **overrides):
        """The run in `run_dir`: reused if it finished with these settings, resumed if it was interrupted,
        else trained from scratch (replacing whatever is there)."""
        run_dir = Path(run_dir)
        mcfg, tcfg = interp.presets.resolve(preset, recipe, None, None, overrides)
        try:
            saved = json.loads((run_dir / "run.json").read_text())
            same = (interp.ModelConfig.from_dict(saved["model_config"]) == mcfg
                    and interp.TrainConfig.from_dict(saved["train_config"]) == tcfg)
        except (OSError, ValueError, KeyError, interp.InterpError):
            same = False
        if same and (run_dir / "final.safetensors").exists():
            print(f"reusing the finished run in {run_dir}")
        elif same and (run_dir / "resume.safetensors").exists():
            print(f"resuming the interrupted run in {run_dir}")
            interp.resume(run_dir, progress=False)
        else:
            print(f"training {preset} ({recipe or 'published'} recipe with {overrides}) into {run_dir}")
            interp.train(preset, recipe, run_dir, overwrite=True, progress=False, **overrides)
        return run_dir
''')

SWEPT = code('''
    from interp.sweeps import read_spec


    def swept(sweep_dir, preset, recipe=None, **settings):
        """The sweep in `sweep_dir`: finished models are reused (and interrupted ones resumed) if it was
        started with these settings, else it is trained from scratch. Returns the result table's rows."""
        sweep_dir = Path(sweep_dir)
        try:
            spec = read_spec(sweep_dir)
            asked = json.loads(json.dumps({"preset": preset, "recipe": recipe, "settings": settings}))
            same = {"preset": spec["preset"], "recipe": spec["recipe"], "settings": {**spec["fixed"], **spec["grid"]}} == asked
        except (interp.InterpError, KeyError):
            same = False
        if same:
            print(f"reusing the sweep in {sweep_dir} (models not finished yet are trained now)")
            result = interp.resume_sweep(sweep_dir, progress=False)
        else:
            print(f"sweeping {preset} over {settings} into {sweep_dir}")
            result = interp.sweep(preset, recipe, sweep_dir, overwrite=True, progress=False, **settings)
        return result.rows
''')

# ---- settings shared by several notebooks ----------------------------------------------------------
# Notebook 1's run; notebooks 2 and 5 analyse the same run (reused when notebook 1 ran first).
GROKKING_SETTINGS = code('''
    # The canonical task (Nanda et al.: p = 113, [a, b, =], 30 % train, d_model 128) with the optimiser
    # settings of the "watch" recipe (AdamW lr 3e-3, weight decay 3: memorises in ~100 steps, generalises
    # a few hundred steps later), trained on past generalisation (no early stop) so that the clean-up
    # phase shows; a snapshot every 50 steps for the progress measures.
    # Fast mode: the same optimiser on a small task (p = 23, d_model 64, half the pairs for training).
    GROKKING = dict(preset="nanda", lr=3e-3, weight_decay=3.0, log_every=25, checkpoint_every=50, steps=2500)
    if FAST:
        GROKKING.update(p=23, d_model=64, train_frac=0.5, steps=600, log_every=10, checkpoint_every=25)
    GROKKING_DIR = OUT / ("nb_grokking_fast" if FAST else "nb_grokking")
''')

# Notebook 3's Model A and Model B; notebook 5 reuses Model A.
CLOCK_PIZZA_SETTINGS = code('''
    # Model A (attention rate 0) and Model B (attention rate 1) of Zhong et al. differ only in the
    # attention rate, so one stacked sweep trains both at once (interp.sweep).
    # Full: the paper's task and architecture (p = 59, d_model 128, 80 % train) with the optimiser
    # settings of the preset's "fast" recipe (AdamW lr 5e-3, weight decay 5), 1000 steps, a snapshot
    # every 50. Fast mode: p = 23, d_model 32, lr 1e-2, weight decay 1, 600 steps.
    CLOCK_PIZZA = dict(preset="pizza-a", attn_rate=[0.0, 1.0], lr=5e-3, weight_decay=5.0, steps=1000,
                       log_every=50, checkpoint_every=50)
    if FAST:
        CLOCK_PIZZA.update(p=23, d_model=32, lr=1e-2, weight_decay=1.0, steps=600)
    CLOCK_PIZZA_DIR = OUT / ("nb_clock_pizza_fast" if FAST else "nb_clock_pizza")
''')


# ---- 01 grokking -----------------------------------------------------------------------------------
NB1 = [
    md('''
        # 1. Grokking on modular addition

        A one-layer transformer learns $(a + b) \\bmod p$ from 30 % of all pairs. It first **memorises**
        the training pairs (train loss falls, test loss stays high), and only much later **generalises**
        (test loss collapses): *grokking*. Nanda et al. (2023) showed why: while the train loss is already
        near zero, the network builds a Fourier-based algorithm ("the clock"), then weight decay cleans
        away the memorised solution. Their **progress measures** make the three phases visible:
        memorisation, circuit formation, clean-up.

        This notebook trains the canonical task (or reuses the run a previous execution left), plots
        the train/test curves, finds the three phases from the progress measures (`interp.progress`:
        detected from the run, not hard-coded), and watches the embedding circles appear.
        Notebook 2 takes the same run apart.
    '''),
    md("## Parameters\n`INTERP_NOTEBOOK_MODE=fast` runs a small version in seconds (what CI runs); the default is `full`."),
    SETUP,
    GROKKING_SETTINGS,
    md('''
        ## Training

        Full batch AdamW, cross-entropy in float64, a snapshot of the weights every few steps (the
        progress measures are computed on them). The published recipe (lr 1e-3, weight decay 1) needs
        10k+ steps, hours on a CPU; the *watch* recipe (lr 3e-3, weight decay 3) keeps the
        memorise-then-generalise shape in minutes.
    '''),
    TRAINED_RUN,
    code('''
        trained_run(GROKKING_DIR, **GROKKING)
        history = json.loads((GROKKING_DIR / "history.json").read_text())
        first = lambda key: next((r["step"] for r in history if r[key] >= 0.99), None)
        print(f"{len(history)} log rows, last step {history[-1]['step']}: "
              f"train acc {history[-1]['train_acc']:.3f}, test acc {history[-1]['test_acc']:.3f}")
        print(f"train accuracy >= 99 % at step {first('train_acc')}, test accuracy >= 99 % at step {first('test_acc')}")
    '''),
    md('''
        ## Progress measures and the three phases

        `progress.run_progress` measures every snapshot over all $p^2$ inputs: train/test loss, the
        **restricted loss** (logits projected onto $\\cos(w_k(a+b)), \\sin(w_k(a+b))$ of the key frequencies
        only), the **excluded loss** (those directions removed, on the train set), the Gini coefficients
        of the Fourier norms of $W_E$ and $W_L = W_{out} W_U$, and the total sum of squared weights.
        `progress.detect_phases` then places the phase boundaries: memorisation ends when train
        accuracy reaches 99 %; circuit formation ends when the test loss starts its fall; clean-up ends
        once the weight norm and the restricted loss have settled.
    '''),
    code('''
        prog = progress.run_progress(GROKKING_DIR)
        ph = prog.phases
        print(f"key frequencies (final model): {prog.key_freqs}")
        print(f"memorisation      : steps 0 - {ph.memorisation_end}")
        print(f"circuit formation : steps {ph.memorisation_end} - {ph.circuit_formation_end}")
        print(f"clean-up          : steps {ph.circuit_formation_end} - {ph.cleanup_end}"
              + ("   (None: not settled by the end of the run)" if ph.cleanup_end is None else ""))
    '''),
    md("The train/test curves from the training log (log scale), with the detected phases shaded:"),
    code('''
        plots.loss_curves(history, ph, title=f"Grokking: p = {GROKKING.get('p', 113)}, "
                          f"{GROKKING.get('train_frac', 0.3):.0%} of pairs for training").show()
    '''),
    md('''
        The progress measures on the snapshots. The restricted loss falls *before* the test loss (the
        circuit exists before the model generalises), the excluded loss rises while the memorised
        solution is replaced, the Gini coefficients rise as the representation becomes sparse in
        frequency, and the weight norm falls during clean-up.
    '''),
    code('''
        plots.progress_curves(prog).show()
        i_mem = int((prog.steps == ph.memorisation_end).nonzero()[0]) if ph.memorisation_end is not None else 0
        print(f"at the end of memorisation (step {prog.steps[i_mem].item()}): train loss {prog.train_loss[i_mem]:.2e}, "
              f"test loss {prog.test_loss[i_mem]:.2f}, restricted loss {prog.restricted_loss[i_mem]:.2f}")
        print(f"at the end of the run (step {prog.steps[-1].item()}): test loss {prog.test_loss[-1]:.2e}, "
              f"restricted loss {prog.restricted_loss[-1]:.2e}, excluded loss {prog.excluded_loss[-1]:.2f}, "
              f"Gini(W_E) {prog.gini_W_E[0]:.2f} -> {prog.gini_W_E[-1]:.2f}, "
              f"sum of squared weights {prog.sum_sq_weights.max():.0f} (peak) -> {prog.sum_sq_weights[-1]:.0f}")
    '''),
    md('''
        ## The embedding circles appear over training

        The final model embeds each token $t$ on circles: on the (cos, sin) Fourier directions of each key
        frequency $k$, token $t$ sits at angle $2\\pi k t / p$. Here are the same planes (the final model's
        key frequencies) in snapshots taken at the start, at each detected phase boundary, and at the end:
        a random cloud at initialisation, rings by the end.
    '''),
    code('''
        snapshots = dict(checkpoints.list_snapshots(GROKKING_DIR))
        wanted = [0, ph.memorisation_end, ph.circuit_formation_end, ph.cleanup_end, max(snapshots)]
        steps = sorted({min(snapshots, key=lambda s: abs(s - w)) for w in wanted if w is not None})
        keys = prog.key_freqs[:4]
        circle_probes = [probes.embedding(interp.load(snapshots[s]), freqs=keys) for s in steps]
        plots.circles_over_training(circle_probes, steps).show()
    '''),
    md('''
        How circular is each snapshot? The share of the embedding's (non-constant) Fourier energy on
        the key frequencies, per snapshot:
    '''),
    code('''
        for s, probe in zip(steps, circle_probes):
            norms = probe.freq_norms.square()
            share = norms[[k - 1 for k in prog.key_freqs]].sum() / norms.sum()
            print(f"step {s:>5}: {share:.1%} of W_E's non-constant energy on frequencies {prog.key_freqs}")
    '''),
    md('''
        ## Summary

        The model memorised first and generalised only later; the progress measures place the phase
        boundaries printed above without any hand-picked epochs, and the embedding turned from noise into
        circles at a handful of key frequencies. Notebook 2 reverse-engineers this model's algorithm.
        (Nanda et al.'s run, at lr 1e-3 and weight decay 1: memorisation to ≈1.4k epochs, circuit formation
        to ≈9.4k, clean-up to ≈14k. The faster recipe here compresses the same three phases into about two
        thousand steps. Key frequencies are a property of the run, not of p.)
    '''),
]

# ---- 02 reverse-engineering the clock --------------------------------------------------------------
NB2 = [
    md('''
        # 2. Reverse-engineering the clock

        Nanda et al. (2023) read the algorithm of a grokked modular-addition transformer off its weights
        and activations. The model
        1. embeds each token $a$ as $\\cos(w_k a), \\sin(w_k a)$ for a few **key frequencies** $w_k = 2\\pi k/p$;
        2. uses attention and the MLP to compute $\\cos(w_k(a+b))$ and $\\sin(w_k(a+b))$ (trigonometric
           identities, through the ReLU neurons);
        3. reads off logits $\\approx \\sum_k \\alpha_k \\cos(w_k(a+b-c))$, largest at $c = (a+b) \\bmod p$.

        This notebook checks each step on **your** model: the run of notebook 1 (same folder, trained
        here if it is missing). Every number is printed from the library calls (`interp.probes`,
        `interp.progress`, `interp.classify`), and assert cells recompute some of them by hand, through
        TransformerLens hooks.
    '''),
    md("## Parameters"),
    SETUP,
    GROKKING_SETTINGS,
    TRAINED_RUN,
    code('''
        trained_run(GROKKING_DIR, **GROKKING)
        model = interp.load(GROKKING_DIR)
        cfg, p = model.cfg, model.cfg.p
        history = json.loads((GROKKING_DIR / "history.json").read_text())
        print(f"{GROKKING_DIR}: p={p}, d_model={cfg.d_model}, d_mlp={cfg.d_mlp}, step {history[-1]['step']}, "
              f"test accuracy {history[-1]['test_acc']:.4f}")
    '''),
    md('''
        ## 1. The embedding in the Fourier basis and the key frequencies

        Write $W_E$ (rows = tokens $0..p-1$) in the Fourier basis of $\\mathbb{Z}_p$: a trained model puts
        nearly all its weight on the cos/sin pairs of a few frequencies. `fourier.key_frequencies` picks
        those that stand clearly above the rest.
    '''),
    code('''
        emb = probes.embedding(model)
        KEYS = emb.key_freqs
        print(f"key frequencies: {KEYS}")
        print("norm of each (cos k, sin k) pair, largest first: "
              + ", ".join(f"{int(i) + 1}: {emb.freq_norms[i]:.2f}" for i in emb.freq_norms.argsort(descending=True)[:len(KEYS) + 3]))
        plots.embedding_norms(emb).show()
    '''),
    md('''
        The check: recompute the Fourier norms by hand from the embedding the model actually uses, read
        through the `hook_embed` hook (the token embedding of $a$ at position 0, for the inputs with
        $b = 0$), with the basis matrix $F$: $\\hat W = F W_E$. The key frequencies must be the library's.
    '''),
    code('''
        _, cache = model.run_with_cache(interp.all_tokens(cfg), names_filter="hook_embed")
        W_seen = cache["hook_embed"][0::p, 0].double()  # rows a*p + 0: token a at position 0 -> [p, d_model]
        F = fourier.fourier_basis(p, torch.float64)
        coef = F @ W_seen  # [p components, d_model]
        by_hand = (coef[1::2][: p // 2].square().sum(-1) + coef[2::2][: p // 2].square().sum(-1)).sqrt()  # (cos k, sin k)
        assert torch.allclose(by_hand, emb.freq_norms, rtol=1e-6), "Fourier norms by hand differ from probes.embedding"
        assert interp.key_frequencies(W_seen) == interp.key_frequencies(model) == KEYS
        print(f"by hand, through hook_embed: the same norms and the same key frequencies {KEYS}")
    '''),
    md("Each token on the (cos $k$, sin $k$) plane of each key frequency: circles, in the order $t \\mapsto 2\\pi k t/p$."),
    code("plots.circles(emb).show()"),
    md('''
        ## 2. Attention

        The attention paid by the last position (`=`) to $a$ and to $b$, per head, as a $p \\times p$ map over
        $(a, b)$ (from `blocks.0.attn.hook_pattern`), and its 2-D Fourier spectrum: the patterns are periodic
        in $a$ and $b$ at the key frequencies.
    '''),
    code('''
        att = probes.attention(model)
        plots.attention_maps(att, to="a").show()
        plots.attention_maps(att, to="a", spectrum=True).show()
    '''),
    code('''
        # Share of each head's (centred) attention-map variance at the key frequencies, from the probe's spectra.
        masks = fourier.freq_masks_2d(p)[[k - 1 for k in KEYS]].any(0)
        power = att.spectrum_a.square()
        power[:, 0, 0] = 0
        for h, share in enumerate((power * masks).sum((1, 2)) / power.sum((1, 2))):
            print(f"head {h}: {share:.1%} of the attention-to-a variance at the key frequencies")
    '''),
    md('''
        ## 3. Neurons and their clusters

        Each MLP neuron's activation at the last position (`blocks.0.mlp.hook_post`) is a $p \\times p$ map over
        $(a, b)$. Its 2-D spectrum sits on one frequency: the neuron computes a product of $\\cos/\\sin(w_k a)$
        and $\\cos/\\sin(w_k b)$ terms. Neurons are assigned to the frequency that explains most of their
        variance (unassigned below 85 %): clusters, one per key frequency.
    '''),
    code('''
        neu = probes.neurons(model)
        print("neuron clusters: " + ", ".join(f"frequency {k}: {n}" for k, n in neu.cluster_sizes.items())
              + f"; {neu.n_unassigned} of {cfg.d_mlp} neurons below the {neu.threshold} threshold")
        print(f"clusters outside the key frequencies: {sorted(set(neu.cluster_sizes) - set(KEYS)) or 'none'}")
        plots.neuron_maps(neu).show()
        plots.neuron_maps(neu, spectrum=True).show()
        plots.neuron_clusters(neu).show()
    '''),
    md("The check: the neuron maps straight from a `run_with_cache` cache, with TransformerLens's `cache[\"post\", 0]` shorthand."),
    code('''
        _, cache = model.run_with_cache(interp.all_tokens(cfg))
        post = cache["post", 0][:, -1]  # [p*p, d_mlp], row a*p + b
        assert torch.allclose(post.T.reshape(cfg.d_mlp, p, p).double(), neu.maps, atol=1e-6)
        print("neuron maps from the cache match probes.neurons")
    '''),
    md('''
        ## 4. Logits as $\\sum_k \\alpha_k \\cos(w_k(a+b-c))$

        The neuron-to-logit map $W_L = W_{out} W_U$ is sparse in the Fourier basis of $c$, and the logits over
        all $(a, b, c)$ are close to a sum of one cosine per key frequency. `probes.logits` fits the
        coefficients $\\alpha_k$ and reports the fraction of the (per-input centred) logit variance explained.
    '''),
    code('''
        lg = probes.logits(model, freqs=KEYS)
        print(f"sum_k alpha_k cos(w_k(a+b-c)) explains {lg.fve:.1%} of the logit variance")
        for k, a, f in zip(KEYS, lg.alpha.tolist(), lg.fve_per_freq.tolist()):
            print(f"  frequency {k:>3}: alpha = {a:6.2f}, {f:.1%}")
        wl = lg.W_L_freq_norms
        print(f"W_L: {(wl[[k - 1 for k in KEYS]].square().sum() / wl.square().sum()):.1%} of its non-constant "
              "output energy on the key frequencies")
        plots.logit_spectrum(lg).show()
    '''),
    md("The check: the same fit by ordinary least squares on the centred logits, by hand."),
    code('''
        L = lg.logits - lg.logits.mean(-1, keepdim=True)  # [a, b, c], centred over c (softmax ignores a shift)
        r = torch.arange(p, dtype=torch.float64)
        s = r[:, None, None] + r[None, :, None] - r[None, None, :]
        X = torch.stack([torch.cos(2 * torch.pi * k / p * s).flatten() for k in KEYS], 1)  # [p^3, n_keys]
        alpha = torch.linalg.lstsq(X, L.flatten()[:, None]).solution[:, 0]
        fve = 1 - (L.flatten() - X @ alpha).square().sum() / L.square().sum()
        assert torch.allclose(alpha, lg.alpha, rtol=1e-6) and abs(fve - lg.fve) < 1e-6
        print(f"least squares by hand: FVE {fve:.4f} (probes.logits: {lg.fve:.4f})")
    '''),
    md('''
        ## 5. Restricted and excluded loss, Gini: the progress measures of this run

        The **restricted loss** keeps only the key-frequency directions $\\cos(w_k(a+b)), \\sin(w_k(a+b))$ of the
        logits; the **excluded loss** removes them (on the train set). If the model runs the clock, the
        restricted loss is low and the excluded loss high. Over training (notebook 1) they show when the
        circuit forms; the Gini coefficients of the Fourier norms of $W_E$ and $W_L$ show the
        representation becoming sparse.
    '''),
    code('''
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
    '''),
    md("The check: the run's last snapshot is the final model, so its row of `run_progress` equals `progress.measure` of the model."),
    code('''
        assert prog.key_freqs == now.key_freqs == KEYS
        for name in ("test_loss", "restricted_loss", "excluded_loss", "gini_W_E", "gini_W_L", "sum_sq_weights"):
            assert abs(getattr(prog, name)[-1].item() - getattr(now, name)) <= 1e-6 * max(1.0, abs(getattr(now, name))), name
        print("run_progress (last snapshot) == measure(final model)")
    '''),
    md('''
        ## 6. Clock or pizza?

        Zhong et al. (2023) found a second algorithm, the pizza (notebook 3). `interp.classify` weighs the
        evidence; a Nanda-style model (standard attention) should come out a clock.
    '''),
    code('''
        verdict = interp.classify(model)
        print(verdict.label.upper())
        print(verdict.explanation)
        assert verdict.key_frequencies == KEYS
    '''),
    md("## Summary: your model"),
    code('''
        print(f"run                : {GROKKING_DIR}")
        print(f"key frequencies    : {KEYS}")
        print(f"neuron clusters    : {neu.cluster_sizes}, {neu.n_unassigned} unassigned")
        print(f"logit fit          : {lg.fve:.1%} of the logit variance from {len(KEYS)} cosines")
        print(f"phases             : memorisation to {ph.memorisation_end}, circuit formation to "
              f"{ph.circuit_formation_end}, clean-up to {ph.cleanup_end}")
        print(f"restricted/excluded: {now.restricted_loss:.2e} / {now.excluded_loss:.2f}")
        print(f"classification     : {verdict.label} ({verdict.explanation})")
        print("paper (Nanda et al., their seed): key frequencies [14, 35, 41, 42, 52]; another seed learns others")
    '''),
]

# ---- 03 clock vs pizza -----------------------------------------------------------------------------
NB3 = [
    md('''
        # 3. Clock versus pizza

        Zhong et al. (2023) trained the same modular-addition transformer with two attention settings and
        found two different algorithms. With standard attention (**Model B**, attention rate $\\alpha = 1$)
        the model runs Nanda's **clock**: it adds angles, and the logit of $c$ depends on $a + b$ only. With
        constant attention (**Model A**, $\\alpha = 0$) it runs the **pizza**: it adds the two embedding
        vectors, and $E_a + E_b$ points at the middle of the two angles, with a length that depends on
        $a - b$ (long when $a$ and $b$ are close on the circle, short when they are opposite); the logits
        inherit a factor $|\\cos(w(a-b)/2)|$.

        Their evidence, reproduced here on both models side by side:
        - **gradient symmetricity** (GS): the logit's gradients with respect to the embeddings of $a$ and $b$
          point the same way for a pizza (≈ 1), not for a clock;
        - **distance irrelevance** (DI): the correct logit does not depend on $a - b$ for a clock (≈ 1);
        - **circularity** of the embedding's principal components;
        - **logit templates**: clock $\\cos(w(a+b-c))$ against pizza $|\\cos(w(a-b)/2)| \\cos(w(a+b-c))$;
        - **circle isolation**: keep one pair of principal components of the embedding, re-run the model,
          and ask the same questions of that circle alone;
        - and `interp.classify`, which combines them into a label with an explanation.

        Paper, Table 1: Model A GS 0.99, DI 0.17; Model B GS 0.33, DI 0.85.
    '''),
    md("## Parameters"),
    SETUP,
    CLOCK_PIZZA_SETTINGS,
    SWEPT,
    code('''
        rows = swept(CLOCK_PIZZA_DIR, **CLOCK_PIZZA)
        by_rate = {r["attn_rate"]: r for r in rows}
        models = {"Model A (alpha 0)": interp.load(by_rate[0.0]["run_dir"]),
                  "Model B (alpha 1)": interp.load(by_rate[1.0]["run_dir"])}
        for name, r in zip(models, (by_rate[0.0], by_rate[1.0])):
            print(f"{name}: step {r['step']}, train acc {r['train_acc']:.3f}, test acc {r['test_acc']:.3f}")
        cfg = next(iter(models.values())).cfg
        print(f"p={cfg.p}, d_model={cfg.d_model}, inputs [a, b] (no '=' token), no causal mask")
    '''),
    md('''
        ## The verdicts

        `interp.classify` computes every metric below and votes with two independent lines of evidence
        (GS + DI, and the logit templates). It says *clock* or *pizza* only when both agree, and
        *ambiguous* otherwise: the two circuits can be close to each other, and a model can mix them.
    '''),
    code('''
        verdicts = {name: interp.classify(m) for name, m in models.items()}
        for name, v in verdicts.items():
            print(f"{name}: {v.label.upper()} (confidence {v.confidence:.2f})\\n  {v.explanation}\\n")
    '''),
    code('''
        rows_ = [("accuracy (all pairs)", "accuracy"), ("gradient symmetricity", "gradient_symmetricity"),
                 ("distance irrelevance", "distance_irrelevance"),
                 ("distance irrelevance (max wrong logit)", "distance_irrelevance_max_wrong"),
                 ("circularity", "circularity"), ("clock template FVE", "clock_template_fve"),
                 ("pizza template FVE", "pizza_template_fve"), ("exact pizza template FVE", "pizza_exact_template_fve")]
        names = list(verdicts)
        print(f"{'':40}" + "".join(f"{n:>20}" for n in names))
        for label, attr in rows_:
            print(f"{label:40}" + "".join(f"{getattr(verdicts[n], attr):20.3f}" for n in names))
        print(f"{'key frequencies':40}" + "".join(f"{str(verdicts[n].key_frequencies):>20}" for n in names))
    '''),
    md('''
        ## Gradient symmetricity

        For 100 random triples $(a, b, c)$, back-propagate the logit of $c$ to the token embeddings of $a$ and $b$
        (the output of `hook_embed`) and take the cosine of the two gradients. A pizza's output depends on
        $E_a + E_b$, so both gradients are the same vector (GS ≈ 1).
    '''),
    code('''
        for name, m in models.items():
            gs = metrics.gradient_symmetricity(m)
            assert gs == verdicts[name].gradient_symmetricity
            print(f"{name}: GS = {gs:.3f}")
    '''),
    md('''
        ## Distance irrelevance

        Arrange the correct logit by $s = (a + b) \\bmod p$ (rows) and $d = (a - b) \\bmod p$ (columns). A clock
        ignores $d$: each row is flat. A pizza's correct logit is large when $a$ and $b$ are close on the
        circle and small when they are opposite: the columns show bands. DI is the mean over $d$ of the
        standard deviation over $s$, divided by the overall standard deviation.
    '''),
    code('''
        tables = {name: metrics.logit_table(m) for name, m in models.items()}
        maps = {name: circles.sum_difference_table(t) for name, t in tables.items()}
        plots.sum_difference_maps({f"{n}: DI {metrics.distance_irrelevance(tables[n]):.2f}": M for n, M in maps.items()}).show()
    '''),
    md('''
        ## Circularity and the principal components of the embedding

        The first principal components of a trained embedding come in pairs, each pair a circle of one
        frequency. Circularity scores how cleanly each of the first four components is one cosine wave
        (1 = a perfect circle); Zhong et al. keep only runs with circularity ≥ 0.995 in their phase diagrams.
    '''),
    code('''
        for name, m in models.items():
            mean, V, var = circles.embedding_pca(m)
            share = (var / var.sum())[:6]
            print(f"{name}: circularity {metrics.circularity(m):.3f}; variance share of PCs 1-6: "
                  + ", ".join(f"{x:.1%}" for x in share.tolist()))
    '''),
    md('''
        ## Logit templates

        At each key frequency $k$ ($w = 2\\pi k/p$), fit the standardised logits over all $(a, b, c)$ with the
        clock template $\\cos(w(a+b-c))$, the pizza template $|\\cos(w(a-b)/2)|\\cos(w(a+b-c))$ and the exact pizza
        form. The two templates overlap a lot (an exact pizza is still 81 % explained by the clock template),
        so the evidence is which one fits *better*, overall and per frequency.
    '''),
    code('''
        for name, v in verdicts.items():
            print(f"{name}: clock {v.clock_template_fve:.3f}, pizza {v.pizza_template_fve:.3f}, "
                  f"exact pizza {v.pizza_exact_template_fve:.3f} (key frequencies {v.key_frequencies})")
            for f in v.frequencies:
                print(f"    frequency {f.frequency:>3}: {f.logit_share:5.1%} of the logits; in band clock {f.clock_fve:.3f}, "
                      f"pizza {f.pizza_fve:.3f} -> {f.label}")
            if v.mixed:
                print("    mixed: some frequencies are clocks, others pizzas")
    '''),
    md('''
        ## Circle isolation, one frequency at a time

        Zhong et al. isolate one circle at a time and re-run the model, to separate circuits when a model
        mixes them (one frequency a clock, another a pizza) and to expose "accompanying pizzas" (a
        frequency $2k$ beside $k$). `circles.isolate_circles(model, frequencies=[...])` keeps the embedding's
        Fourier component of one frequency (its circle, plus the mean embedding), re-runs the model on all
        inputs, and measures that circle alone: GS, DI and the two templates at that frequency. One circle
        cannot solve the task by itself (accuracy stays low); the question is what *kind* of computation it
        feeds. Below: each frequency that carries at least 5 % of the model's logits.
    '''),
    code('''
        def describe(name, c):
            if max(c.pizza_fve, c.clock_fve) < 0.5:
                kind = "neither template fits"
            else:
                kind = "pizza-like" if c.pizza_fve > c.clock_fve else "clock-like"
            where = f"frequency {c.frequency}"
            if c.components:
                where = (f"PCs {c.components[0] + 1}-{c.components[1] + 1} (frequency {c.frequency}, "
                         f"{c.frequency_share:.0%} of the pair at that frequency)")
            print(f"{name}, {where}: {c.variance_share:.0%} of the embedding variance; alone: accuracy {c.accuracy:.2f}, "
                  f"GS {c.gradient_symmetricity:.2f}, DI {c.distance_irrelevance:.2f}, templates pizza {c.pizza_fve:.2f} / "
                  f"clock {c.clock_fve:.2f}: {kind}")


        isolated = {}
        for name, m in models.items():
            freqs = [f.frequency for f in verdicts[name].frequencies if f.logit_share >= 0.05]
            isolated[name] = circles.isolate_circles(m, frequencies=freqs)
            plots.isolated_circles(isolated[name], title=f"{name}: each key frequency's circle alone").show()
            for c in isolated[name]:
                describe(name, c)
    '''),
    md('''
        The paper's own procedure keeps a pair of **principal components** of the embedding instead
        (`circles.isolate_circles(model, n_pairs=...)`). When a model's circles have clearly different sizes,
        each pair of components is one circle and the two procedures agree; when several circles are about
        the same size, the principal components mix them (the share of each pair at its main frequency,
        printed below, drops well under 100 %), and isolating by frequency is the cleaner cut.
    '''),
    code('''
        for name, m in models.items():
            for c in circles.isolate_circles(m, n_pairs=2 if FAST else 3):
                describe(name, c)
    '''),
    md('''
        ## The verdict over training

        The verdicts above are for the final weights. Classifying every snapshot shows how each model got
        there: a run's algorithm is not fixed the moment it generalises.
    '''),
    code('''
        over_training = {}
        for name, r in zip(models, (by_rate[0.0], by_rate[1.0])):
            snaps = checkpoints.list_snapshots(r["run_dir"])[1:]  # every snapshot after the initial weights
            over_training[name] = ([s for s, _ in snaps], [interp.classify(interp.load(path)) for _, path in snaps])
        plots.verdicts_over_training(over_training).show()
        for name, (steps, cls) in over_training.items():
            changes = [(s, c.label) for i, (s, c) in enumerate(zip(steps, cls)) if i == 0 or c.label != cls[i - 1].label]
            print(f"{name}: " + " -> ".join(f"{label} (from step {s})" for s, label in changes))
    '''),
    md('''
        ## Summary

        The same architecture and data, with one setting changed, learn different algorithms. What the full
        run documented in `docs/notebooks.md` (the settings above) shows: Model B becomes a clock within a few
        hundred steps and stays one (GS ≈ 0.4, DI ≈ 0.8; the paper's Model B: 0.33, 0.85), and its strongest
        circle, isolated, is a clock. Model A keeps perfectly symmetric gradients (GS 0.99, as in the paper)
        and each of its circles, isolated, follows the pizza template rather than the clock template; but
        the model as a whole drifts as training goes on: its distance irrelevance rises towards 0.5 (the
        paper's Model A: 0.17, after 20k steps at a lower learning rate) and the two templates draw level. So
        the classifier calls it a pizza right after it generalises and *ambiguous* later, instead of forcing
        a label. A later paper (arXiv 2512.25060) argues the two circuits can even be geometrically
        equivalent. Notebook 4 maps where in (attention rate, width) each algorithm appears.
    '''),
    code('''
        for name, v in verdicts.items():
            print(f"{name}: {v.label} | GS {v.gradient_symmetricity:.2f} (paper {'0.99' if 'A' in name else '0.33'}), "
                  f"DI {v.distance_irrelevance:.2f} (paper {'0.17' if 'A' in name else '0.85'})")
    '''),
]

# ---- 04 phase diagram ------------------------------------------------------------------------------
NB4 = [
    md('''
        # 4. A phase diagram: attention rate × width

        Zhong et al. (2023) swept the attention rate $\\alpha$ (0 = constant attention, 1 = standard) and the
        model width, and classified every run: at width 128, runs with $\\alpha < 0.4$ are all pizzas
        (GS ≥ 0.98) and runs with $\\alpha \\ge 0.6$ none; the boundary moves to larger $\\alpha$ as the width
        grows. This notebook runs such a sweep with `interp.sweep` (models that share a shape train as one
        stacked batch with `torch.func.vmap`), classifies each run with `interp.classify`, and draws the
        diagram.
    '''),
    md("## Parameters"),
    SETUP,
    code('''
        # The Clock/Pizza task (p = 59, 80 % train), AdamW lr 1e-2, weight decay 1 and a fixed budget of
        # 600 steps (no early stop): every width here generalises within a few hundred steps (with the
        # "fast" recipe's weight decay 5, the narrow ones had not generalised after 1500 steps). 15 models in three
        # stacked groups, one per width: minutes on a CPU. The paper trains 20k steps at lr 1e-3 over many
        # seeds; widen the grid here for a sharper picture.
        # Fast mode: p = 23, two attention rates, one width, 500 steps.
        PHASE = dict(preset="pizza-a", lr=1e-2, weight_decay=1.0, log_every=100, steps=600, checkpoint_every=600,
                     attn_rate=[0.0, 0.25, 0.5, 0.75, 1.0], d_model=[32, 64, 128], seed=[0])
        if FAST:
            PHASE.update(p=23, attn_rate=[0.0, 1.0], d_model=[32], steps=500, checkpoint_every=500)
        PHASE_DIR = OUT / ("nb_phase_fast" if FAST else "nb_phase")
    '''),
    SWEPT,
    code('''
        rows = swept(PHASE_DIR, **PHASE)
        print(f"{len(rows)} runs")
        cols = ["attn_rate", "d_model", "seed", "test_acc", "classify.label", "classify.gradient_symmetricity",
                "classify.distance_irrelevance", "classify.circularity"]
        print("".join(f"{c.split('.')[-1][:14]:>16}" for c in cols))
        for r in rows:
            print("".join(f"{r.get(c):>16.3f}" if isinstance(r.get(c), float) else f"{str(r.get(c)):>16}" for c in cols))
    '''),
    md('''
        ## The diagram

        Each marker is one run, at its attention rate (x) and width (y); runs of different seeds in one cell
        sit side by side. First coloured by the classifier's label, then by gradient symmetricity (the
        paper's colour scale: pizza ≈ 1).
    '''),
    code('''
        plots.phase_diagram(rows, color="classify.label").show()
        plots.phase_diagram(rows, color="classify.gradient_symmetricity").show()
    '''),
    md('''
        Zhong et al. keep only runs whose embedding is clean (circularity ≥ 0.995) in their diagrams; small,
        short runs rarely reach that. How many of ours do, and where does the label change along $\\alpha$
        at each width?
    '''),
    code('''
        clean = [r for r in rows if r.get("classify.circularity", 0) >= 0.995]
        print(f"{len(clean)} of {len(rows)} runs have circularity >= 0.995")
        for width in sorted({r["d_model"] for r in rows}):
            line = sorted((r["attn_rate"], r["classify.label"]) for r in rows if r["d_model"] == width)
            print(f"width {width:>4}: " + ", ".join(f"alpha {a:g}: {lab}" for a, lab in line))
    '''),
    md('''
        ## Summary

        The sweep table (`results.csv` / `results.json` in the sweep folder) holds every run's settings, final
        metrics and full classification; each run folder is an ordinary run (`interp.load`, `interp classify`
        work on it).

        What the full run documented in `docs/notebooks.md` shows: every run with $\\alpha \\le 0.5$ keeps
        pizza-like, symmetric gradients (GS ≥ 0.96) and every run with $\\alpha = 1$ is a clock; at
        $\\alpha = 0.75$ the narrow models (width 32, 64) are already clocks while width 128 still has GS 0.97:
        the boundary moves to larger $\\alpha$ as the width grows, as in the paper (there: width 128, pizza
        below $\\alpha \\approx 0.4$, none above 0.6, from 20k-step runs at lr 1e-3 over many seeds). No run is
        *labelled* pizza: their distance irrelevance stays between 0.3 and 0.8 and the logit templates do not
        clearly favour the pizza, so the classifier calls them ambiguous rather than forcing a class (notebook 3
        follows such a model over training). This grid is small and short: read it as a sketch, and widen it
        (more $\\alpha$ values, widths, seeds, steps) in the parameters cell for a sharper picture.
    '''),
]

# ---- 05 bring your own checkpoint ------------------------------------------------------------------
NB5 = [
    md('''
        # 5. Bring your own checkpoint

        Models of this task live in other projects' files. `interp.load` recognises them from their contents
        (no format flag) and never runs code from a file:
        - a **TransformerLens** `HookedTransformer` state dict, alone or inside the Grokking demo's file, which
          also pickles its `HookedTransformerConfig` object (a class TransformerLens 4 no longer has, and
          that a plain `torch.load(weights_only=True)` refuses);
        - a **Clock/Pizza** (and Nanda-original) layout state dict: `embed.W_E` is [d_model, d_vocab],
          `W_O` is [d_model, n_heads·d_head], ..., saved as a `.pt` with its run's JSON config (`C` for p,
          `attn_coeff` for the attention rate, `eqn_sign`, `diff_vocab`, ...).

        Here we write both kinds of file the way those projects do, from models trained by the earlier
        notebooks (reused if present, trained here if not), load them back and run the whole pipeline.
    '''),
    md("## Parameters"),
    SETUP,
    GROKKING_SETTINGS,
    CLOCK_PIZZA_SETTINGS,
    TRAINED_RUN,
    SWEPT,
    code('''
        FOREIGN = OUT / ("nb_foreign_fast" if FAST else "nb_foreign")
        FOREIGN.mkdir(parents=True, exist_ok=True)
        nanda_model = interp.load(trained_run(GROKKING_DIR, **GROKKING))
        rows = swept(CLOCK_PIZZA_DIR, **CLOCK_PIZZA)
        pizza_model = interp.load(next(r["run_dir"] for r in rows if r["attn_rate"] == 0.0))
        print(f"Nanda-style model: p={nanda_model.cfg.p}, d_model={nanda_model.cfg.d_model}; "
              f"Clock/Pizza-style model: p={pizza_model.cfg.p}, attention rate {pizza_model.cfg.attn_rate}")
    '''),
    md('''
        ## A TransformerLens Grokking-demo file

        The demo saves `{"model": state_dict, "config": cfg, "checkpoints": [...], "checkpoint_epochs": [...],
        "train_losses": [...], ...}` with `torch.save`, where `cfg` is the `HookedTransformerConfig` object
        itself. TransformerLens 4 dropped that class, so we define a stand-in with the same name and module
        path: the file pickles exactly what the demo's does. Our parameters already have `HookedTransformer`'s
        names and shapes (with its `mask` and `IGNORE` buffers).
    '''),
    code('''
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
    '''),
    md("`interp.load` reads it without running anything: the pickled config becomes an inert record whose fields are read as data."),
    code('''
        tl_loaded = interp.load(demo_file)
        print(f"recognised as: {tl_loaded.source_format}")
        tokens = interp.all_tokens(tl_loaded.cfg)
        assert torch.equal(tl_loaded.last_logits(tokens), nanda_model.last_logits(tokens))
        print(f"config: p={tl_loaded.cfg.p}, '=' token {tl_loaded.cfg.eq_token}, causal {tl_loaded.cfg.causal}; "
              "the logits equal the original model's on all inputs")
    '''),
    md('''
        ## A Clock/Pizza-layout file with its JSON config

        Zhong et al.'s code (like Nanda's original) stores the embedding as [d_model, d_vocab], the queries
        as [n_heads, d_head, d_model], $W_O$ as [d_model, n_heads·d_head] and the MLP as [out, in], and keeps the
        run's settings in a JSON file. The attention rate is not in the weights: without the JSON the
        loader says what it needs.
    '''),
    code('''
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
            "lr": CLOCK_PIZZA["lr"], "weight_decay": CLOCK_PIZZA["weight_decay"], "frac": 0.8}, indent=1))
        cp_loaded = interp.load(cp_dir / "model_final.pt")
        print(f"with config.json beside it: {cp_loaded.source_format}")
        tokens = interp.all_tokens(cp_loaded.cfg)
        assert torch.allclose(cp_loaded.last_logits(tokens), pizza_model.last_logits(tokens), atol=1e-5)
        print(f"config: p={cp_loaded.cfg.p}, attention rate {cp_loaded.cfg.attn_rate}, causal {cp_loaded.cfg.causal}; "
              "the logits equal the original model's")
    '''),
    md('''
        ## The whole pipeline on the loaded models

        From here on the foreign models are ordinary `interp` models: Fourier probes through hooks, progress
        measures (with the train/test split given explicitly, since a foreign file does not say how it was
        split), and the clock/pizza classification.
    '''),
    code('''
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

        g = GROKKING
        tl_emb, tl_verdict = pipeline("TransformerLens demo file", tl_loaded, g.get("train_frac", 0.3), 598)
        cp_emb, cp_verdict = pipeline("Clock/Pizza file", cp_loaded, 0.8, 0)
    '''),
    code('''
        if tl_emb.key_freqs:
            plots.circles(tl_emb).show()
        if cp_emb.key_freqs:
            plots.circles(cp_emb).show()
    '''),
    md('''
        The same verdicts come straight from a path (`interp.classify` loads the file itself), which is also
        what the command line does: `interp classify checkpoints/nb_foreign/grokking_demo.pth`.
    '''),
    code('''
        for path in (demo_file, cp_dir / "model_final.pt"):
            v = interp.classify(path)
            print(f"{v.source}\\n  -> {v.label}: {v.explanation}")
        assert interp.classify(demo_file).label == tl_verdict.label
    '''),
    code('''
        # The one-page HTML report of a model (interp.write_report; `interp report FILE` on the command line):
        # the verdict, the scores beside the paper's values, and the figures, in one self-contained file.
        page = interp.write_report(demo_file, out=FOREIGN / "grokking_demo.report.html")
        print(f"report written: {page} ({page.stat().st_size / 1e6:.1f} MB)")
    '''),
]

NOTEBOOK_SOURCES = {
    "01_grokking.ipynb": NB1,
    "02_reverse_engineering_clock.ipynb": NB2,
    "03_clock_vs_pizza.ipynb": NB3,
    "04_phase_diagram.ipynb": NB4,
    "05_bring_your_own_checkpoint.ipynb": NB5,
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
                   "language_info": {"name": "python"}}
    for i, (kind, text) in enumerate(cells):
        cell = nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(text)
        cell["id"] = f"cell-{i:02d}"  # stable ids: rebuilding gives the same file
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(cells: list[tuple[str, str]]) -> str:
    return nbformat.writes(build(cells)) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a notebook differs from this source")
    args = ap.parse_args(argv)
    stale = []
    for name, cells in NOTEBOOK_SOURCES.items():
        path, text = NOTEBOOKS / name, render(cells)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"out of date (run scripts/build_notebooks.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
