"""When is the circuit clean? The stop that ends the fast recipes and the demo.

Accuracy alone is the wrong stop for an interpretability tool: at 99 % test accuracy a model can
still carry its memorised solution beside a half-formed circuit (Nanda et al.'s clean-up comes
after generalisation). This stop reads the progress measures at each check (every `log_every`
steps) and needs all of these over the last `stable_checks` checks:

1. generalised: test accuracy >= `min_test_acc` at every one;
2. the key frequencies of W_E (`fourier.key_frequencies`) non-empty and the same at every one;
3. now, they carry >= `min_key_share` of W_E[:p]'s non-constant squared Fourier norm (`key_share`);
4. the weights have settled: the total sum of squared weights (`progress.weight_measures`), which
   falls during clean-up (and can rise after it at a high learning rate), changed by less than
   `max_weight_change` (relative) across the window (TrainConfig.stop_weight_change; None: not asked);
5. optionally (TrainConfig.stop_gs_change), the gradient symmetricity (`metrics.gradient_symmetricity`,
   the verdict's own measure) moved by less than `max_gs_change` across the window. A clock's
   signature keeps sharpening after W_E and the weight norm have settled (standard attention,
   pizza-b): without this the stop can come while the model is still turning from pizza to clock.

Each check writes `key_freqs`, `sum_sq_weights` (and `gradient_symmetricity` when asked) into its
history row, so the stop needs no state besides the history (a resumed run stops where an
uninterrupted one does). The thresholds come from scripts/study_clean_stop.py (docs/performance.md,
"When is the circuit clean?").
"""

from __future__ import annotations

import torch
from torch import Tensor

from interp import fourier, tasks
from interp.metrics import gradient_symmetricity
from interp.progress import weight_measures

MIN_TEST_ACC = 0.99
STABLE_CHECKS = 3
MIN_KEY_SHARE = 0.9
MAX_WEIGHT_CHANGE = 0.01


def key_share(W_E: Tensor, keys: list[int]) -> float:
    """Share of W_E [p, d_model]'s non-constant squared Fourier norm on the frequencies `keys`."""
    if not keys:
        return 0.0
    sq = fourier.frequency_norms(W_E.detach().double()).square()  # [K], index k - 1
    return (sq[[k - 1 for k in keys]].sum() / sq.sum().clamp_min(1e-300)).item()


def measure_row(row: dict, state: dict[str, Tensor], p: int, task: str = "add", model=None) -> float:
    """Add this check's `key_freqs` and `sum_sq_weights` to its history row (and, given the `model`,
    its `gradient_symmetricity`); returns the key share. state: the model's parameters by name
    (HookedTransformer names). The a-tokens' embedding is read in the task's group order (mul/div:
    by discrete log, `tasks.coordinates`), else as the tokens are."""
    if model is not None:
        row["gradient_symmetricity"] = gradient_symmetricity(model)  # needs autograd: outside no_grad
    return _measure_weights(row, state, p, task)


@torch.no_grad()
def _measure_weights(row: dict, state: dict[str, Tensor], p: int, task: str) -> float:
    W_E = state["embed.W_E"][:p]
    if task not in ("add", "sub") and tasks.has_group(task):
        W_E = state["embed.W_E"][tasks.coordinates(task, p).a.to(W_E.device)]
    row["key_freqs"] = keys = fourier.key_frequencies(W_E)
    row["sum_sq_weights"] = weight_measures(state, p)["sum_sq_weights"]
    return key_share(W_E, keys)


def is_clean(history: list[dict], share: float, min_test_acc: float = MIN_TEST_ACC, stable_checks: int = STABLE_CHECKS,
             min_key_share: float = MIN_KEY_SHARE, max_weight_change: float | None = MAX_WEIGHT_CHANGE,
             max_gs_change: float | None = None) -> str | None:
    """Why the circuit is clean at the last history row (with `share` its key share), or None.
    max_weight_change / max_gs_change None: that measure is not asked."""
    recent = history[-stable_checks:]
    keys = recent[-1].get("key_freqs")
    if (not keys or len(recent) < stable_checks or share < min_key_share
            or any(r.get("key_freqs") != keys or r["test_acc"] < min_test_acc for r in recent)):
        return None
    why = [f"test acc >= {min_test_acc:g}", f"key frequencies {keys} ({share:.0%} of W_E's Fourier norm)"]
    if max_weight_change is not None:
        change = abs(recent[-1]["sum_sq_weights"] / recent[0]["sum_sq_weights"] - 1)
        if not change < max_weight_change:
            return None
        why.append(f"sum of squared weights within {change:.2%}")
    if max_gs_change is not None:
        gs = [r.get("gradient_symmetricity") for r in recent]
        if None in gs or not max(gs) - min(gs) < max_gs_change:
            return None
        why.append(f"gradient symmetricity {min(gs):.2f}-{max(gs):.2f}")
    return f"clean circuit: over the last {stable_checks} checks " + ", ".join(why)


def clean_reason(history: list[dict], state: dict[str, Tensor], p: int, task: str = "add", model=None,
                 max_weight_change: float | None = MAX_WEIGHT_CHANGE, max_gs_change: float | None = None) -> str | None:
    """Measure the model at the last history row (see `measure_row`; with max_gs_change, `model` is
    needed: gradient symmetricity is measured on it), then `is_clean`."""
    if max_gs_change is not None and model is None:
        raise ValueError("max_gs_change needs the model (gradient symmetricity is measured on it)")
    share = measure_row(history[-1], state, p, task, model)
    return is_clean(history, share, max_weight_change=max_weight_change, max_gs_change=max_gs_change)
