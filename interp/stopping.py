"""When is the circuit clean? The stop that ends the fast recipes and the demo.

Accuracy alone is the wrong stop for an interpretability tool: a model at 99 % test accuracy can
still carry its memorised solution beside a half-formed circuit (Nanda et al.'s clean-up phase
comes after generalisation). The stop here reads the progress measures instead, cheapest first:

1. generalised: test accuracy >= `min_test_acc`;
2. the key frequencies of W_E (`fourier.key_frequencies`) are non-empty and the same at
   `stable_checks` consecutive checks;
3. they carry >= `min_key_share` of W_E[:p]'s non-constant squared Fourier norm (`key_share`).

The checks are the history rows (every `log_every` steps); the thresholds come from
scripts/study_clean_stop.py (docs/performance.md, "When is the circuit clean?").
"""

from __future__ import annotations

import torch
from torch import Tensor

from interp import fourier


def key_share(W_E: Tensor, keys: list[int]) -> float:
    """Share of W_E [p, d_model]'s non-constant squared Fourier norm on the frequencies `keys`."""
    if not keys:
        return 0.0
    sq = fourier.frequency_norms(W_E.detach().double()).square()  # [K], index k - 1
    return (sq[[k - 1 for k in keys]].sum() / sq.sum().clamp_min(1e-300)).item()


# Thresholds of the clean-circuit stop: chosen from scripts/study_clean_stop.py's runs (docs/performance.md).
MIN_TEST_ACC = 0.99
STABLE_CHECKS = 3
MIN_KEY_SHARE = 0.8


@torch.no_grad()
def clean_reason(history: list[dict], W_E: Tensor, min_test_acc: float = MIN_TEST_ACC,
                 stable_checks: int = STABLE_CHECKS, min_key_share: float = MIN_KEY_SHARE) -> str | None:
    """Why the circuit is clean now, or None. `history` ends with the row of this check, which
    gets the key frequencies of W_E [p, d_model] (`key_freqs`); the rows before it hold those of
    the earlier checks, so the stop needs no state besides the history (and resumes exactly)."""
    row = history[-1]
    row["key_freqs"] = keys = fourier.key_frequencies(W_E)
    recent = history[-stable_checks:]
    if (not keys or len(recent) < stable_checks
            or any(r.get("key_freqs") != keys or r["test_acc"] < min_test_acc for r in recent)):
        return None
    share = key_share(W_E, keys)
    if share < min_key_share:
        return None
    return (f"clean circuit: test acc >= {min_test_acc:g} and key frequencies {keys} over the last "
            f"{stable_checks} checks, carrying {share:.0%} of W_E's non-constant Fourier norm")
