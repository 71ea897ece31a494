"""Looking at one circle at a time (Zhong et al. 2023, REFERENCES §2): the principal components of
the token embedding, a model re-run with one pair of them kept ("circle isolation"), and the
correct-logit table by (a + b, a - b) that distance irrelevance summarises.

A circle's own contribution is measured against a baseline: the isolated model's logits minus
those of the model with no circle at all (every token embedding cut to the mean, `baseline_model`).
The baseline's logits depend on the answer c alone (every input looks the same to it): what the
biases, the mean embedding and the positional embedding put at each c. Left in, that term is the
same for every circle, so it sets the "output frequency" of every circle to the model's strongest
frequency, and, being flat along a - b, pulls every circle's distance irrelevance towards 1 (the
authors' Model B: circles 16, 17, 21 all "output at 13" with DI 0.99 before; with the baseline
removed 16 outputs at 16, 21 at 21 and 17 at 21, its accompanying pizza).

    M = sum_difference_table(metrics.logit_table(model))   # [p_s, p_d]: a clock is flat along d
    for c in isolate_circles(model, n_pairs=3):             # PCs (1, 2), (3, 4), (5, 6)
        print(c.frequency, c.gradient_symmetricity, c.distance_irrelevance, c.pizza_fve, c.clock_fve)
    isolate_circles(model, frequencies=[4, 10])             # or one Fourier frequency of W_E at a time
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from interp import metrics as M
from interp.device import device_of
from interp.fourier import frequency_norms


def sum_difference_table(table: Tensor, variant: str = "correct") -> Tensor:
    """[p_s, p_d]: the M[s, d] of `metrics.distance_irrelevance`, rows ordered by s = (a + b) mod p and
    columns by d = (a - b) mod p, for plotting. A clock's M is constant along d; a pizza's is not.

    variant: "correct" (the logit of the answer) or "max_wrong" (the largest wrong logit). Needs an
    odd p (for even p, s and d have the same parity and half the (s, d) cells have no pair).
    """
    p = M._check_table(table)
    if p % 2 == 0:
        raise M.MetricError(f"sum_difference_table needs an odd p (every (s, d) a pair), got p={p}")
    r = torch.arange(p, device=table.device)
    half = pow(2, -1, p)  # (s + d) / 2 mod p
    a = ((r[:, None] + r[None, :]) * half) % p  # [s, d]
    b = ((r[:, None] - r[None, :]) * half) % p
    t = table.double()[a, b]  # [s, d, c]
    answer = ((a + b) % p)[..., None]
    if variant == "correct":
        return t.gather(-1, answer)[..., 0]
    if variant == "max_wrong":
        return t.scatter(-1, answer, -math.inf).amax(-1)
    raise M.MetricError(f"sum_difference_table variant must be 'correct' or 'max_wrong', got {variant!r}")


def embedding_pca(model_or_W_E, p: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """PCA of the token embeddings W_E[:p] (the a-tokens), float64.

    Returns (mean [d_model], directions [n, d_model] with unit rows, largest variance first,
    variance [n] along each direction), n = min(p, d_model).
    """
    W = model_or_W_E if isinstance(model_or_W_E, Tensor) else model_or_W_E.W_E
    p = p or model_or_W_E.cfg.p
    X = W[:p].detach().double()
    mean = X.mean(0)
    _, S, Vh = torch.linalg.svd(X - mean, full_matrices=False)
    return mean, Vh, S.square() / p


def _frequency_rows(p: int, k: int, device: torch.device) -> Tensor:
    """[n, p]: the orthonormal Fourier basis rows (over tokens) of frequency k (cos, sin; cos alone at Nyquist)."""
    from interp.fourier import fourier_basis, freq_components

    return fourier_basis(p, torch.float64, device)[freq_components(p, k)]


def _frequency_projector(p: int, frequencies, device: torch.device) -> Tensor:
    """[n, p]: the Fourier basis rows of the given frequencies (each once), or one clear MetricError."""
    try:
        ks = sorted({int(k) for k in frequencies})
        if not ks:
            raise ValueError("needs at least one frequency, got none")
        return torch.cat([_frequency_rows(p, k, device) for k in ks])
    except Exception as e:
        raise M.MetricError(str(e)) from None


@torch.no_grad()
def _with_embeddings(model, cut):
    """A copy of `model` (eval mode) whose token embeddings W_E[:p] (and a diff_vocab model's
    b-embeddings W_E[p:2p], each block with its own mean) are cut(X, mean), X the block in float64 [p,
    d_model]. The `=` token, the positional embedding and every other weight are unchanged."""
    cfg = model.cfg
    out = copy.deepcopy(model)
    for start in (0, cfg.p) if getattr(cfg, "diff_vocab", False) else (0,):
        X = model.W_E[start:start + cfg.p].detach().double()
        out.embed.W_E[start:start + cfg.p] = cut(X, X.mean(0)).to(out.embed.W_E.dtype)
    return out.eval()


def isolated_model(model, components: tuple[int, ...] | None = None, *, frequency: int | None = None):
    """A copy of `model` whose token embeddings W_E[:p] keep one circle and their mean:

    - `components`: only the given principal components (0-based) of the embedding; each token's
      embedding is projected onto those directions (Zhong et al.'s circle isolation);
    - `frequency`: only the embedding's Fourier component of frequency k over the tokens,
      W_E[:p] -> mean + F_k^T F_k (W_E[:p] - mean), F_k the (cos k, sin k) basis rows: the circle of
      frequency k exactly, also when several circles share principal components. A diff_vocab
      model's b-embeddings W_E[p:2p] are cut the same way (their own mean, the same frequency).

    The `=` token, the positional embedding and every other weight are unchanged."""
    cfg = model.cfg
    if (components is None) == (frequency is None):
        raise M.MetricError("isolated_model needs either components= or frequency=")
    if frequency is not None:
        Fk = _frequency_projector(cfg.p, [frequency], device_of(model))
        return _with_embeddings(model, lambda X, mean: mean + Fk.T @ (Fk @ (X - mean)))
    if getattr(cfg, "diff_vocab", False):
        raise M.MetricError("isolating principal components needs one embedding for a and b (diff_vocab=False); "
                            "isolate by frequency instead")
    _, V, _ = embedding_pca(model)
    idx = sorted({int(i) for i in components})
    if not idx or not all(0 <= i < V.shape[0] for i in idx):
        raise M.MetricError(f"components must be principal component indices in 0..{V.shape[0] - 1}, "
                            f"got {list(components)}")
    return _with_embeddings(model, lambda X, mean: mean + ((X - mean) @ V[idx].T) @ V[idx])


def ablated_model(model, frequencies: list[int]):
    """A copy of `model` with the embedding's Fourier components of the given frequencies removed
    (W_E[:p] -> W_E[:p] - sum_k F_k^T F_k (W_E[:p] - mean), and the same for a diff_vocab model's
    b-embeddings): the complement of `isolated_model(frequency=k)`. full logits - ablated logits is a
    circle's contribution measured inside the whole model, with no baseline: a cross-check of the
    isolated one (the two agree on the authors' Model A and B)."""
    F = _frequency_projector(model.cfg.p, frequencies, device_of(model))
    return _with_embeddings(model, lambda X, mean: X - F.T @ (F @ (X - mean)))


def baseline_model(model):
    """A copy of `model` whose token embeddings W_E[:p] (and a diff_vocab model's W_E[p:2p]) are all
    their mean: no circle at all. Its logits depend on the answer c alone; `isolate_circles`
    subtracts them from each isolated circle's logits. The `=` token, the positional embedding and
    every other weight are unchanged."""
    return _with_embeddings(model, lambda X, mean: mean.expand_as(X))


def correct_margin(table: Tensor) -> float:
    """Mean over the p^2 pairs of (logit of the answer) - (mean logit over c): how much a logit table
    [p_a, p_b, p_c] (a model's, or one circle's contribution) pushes the right answer up. Additive
    over contributions, so circles' margins can be compared and summed. How well the circles' shares add
    up to 1 is the model's: 0.97 / 0.99 on the authors' Model A / B; a LayerNorm rescales each re-run
    input, so there they need not (a sub model with LN trained here: 1.5)."""
    p = M._check_table(table)
    r = torch.arange(p, device=table.device)
    t = table.double()
    return (t.gather(-1, ((r[:, None] + r[None, :]) % p)[..., None])[..., 0] - t.mean(-1)).mean().item()


def output_spectrum(table: Tensor) -> Tensor:
    """[K]: share of the logits' variance over the answer c (centred per input) at each frequency
    k = 1..K of c, from a logit table [p_a, p_b, p_c]. Where a circle's output lives."""
    from interp.fourier import fft1d, n_freqs

    p = M._check_table(table)
    z = table.double() - table.double().mean(-1, keepdim=True)
    power = fft1d(z, dim=-1).square().sum((0, 1))  # [p] per basis row over c
    K = n_freqs(p)
    per_k = torch.stack([power[2 * k - 1] + (power[2 * k] if 2 * k < p else 0) for k in range(1, K + 1)])
    return per_k / power.sum().clamp_min(1e-300)


@dataclass
class IsolatedCircle:
    """One circle of the embedding, kept alone, and the re-run model's metrics."""

    components: tuple[int, int] | None  # 0-based principal components kept (None: isolated by frequency)
    points: Tensor  # [p, 2] each token's (centred) embedding on the circle's plane
    variance_share: float  # share of the embedding's (centred) variance kept
    frequency: int  # the circle's frequency (1-based); for components, the largest Fourier norm of `points`
    frequency_share: float  # share of the points' squared norm at that frequency: 1 = a clean circle
    accuracy: float  # of the re-run model, on all p^2 pairs
    gradient_symmetricity: float  # of the re-run model
    # The rest are measured on the circle's own contribution: the re-run model's logits minus the
    # baseline's (`baseline_model`, no circle at all), see the module doc.
    distance_irrelevance: float  # correct-logit variant (Table 1 of the paper)
    distance_irrelevance_max_wrong: float  # largest-wrong-logit variant (their training script)
    clock_fve: float  # template fits at `frequency` (metrics.template_fits)
    pizza_fve: float
    output_frequency: int  # the frequency over the answer c holding most of the contribution
    output_share: float  # share of its variance over c at output_frequency
    frequency_output_share: float  # ... and at `frequency` itself
    margin: float = 0.0  # its push on the right answer (`correct_margin`)
    margin_share: float = 0.0  # margin / the whole model's margin over the same baseline
    table: Tensor | None = None  # [p, p, p] the circle's own contribution (re-run logits - baseline)


def _measure(iso, pair, points: Tensor, variance_share: float, k: int | None, base: Tensor,
             whole_margin: float) -> IsolatedCircle:
    norms = frequency_norms(points).square()  # [K]
    k = int(norms.argmax()) + 1 if k is None else k
    rerun = M.logit_table(iso)
    own = rerun - base  # the circle's own contribution
    fits = M.template_fits(own, [k])
    spectrum = output_spectrum(own)
    out_k = int(spectrum.argmax()) + 1
    margin = correct_margin(own)
    return IsolatedCircle(
        components=pair, points=points, variance_share=variance_share, frequency=k,
        frequency_share=(norms[k - 1] / points.square().sum().clamp_min(1e-300)).item(),
        accuracy=M.accuracy(rerun), gradient_symmetricity=M.gradient_symmetricity(iso),
        distance_irrelevance=M.distance_irrelevance(own),
        distance_irrelevance_max_wrong=M.distance_irrelevance(own, "max_wrong"), clock_fve=fits.clock,
        pizza_fve=fits.pizza, output_frequency=out_k, output_share=spectrum[out_k - 1].item(),
        frequency_output_share=spectrum[k - 1].item(), margin=margin,
        margin_share=margin / whole_margin if whole_margin > 0 else 0.0, table=own)


def isolate_circles(model, n_pairs: int = 3, pairs: list[tuple[int, int]] | None = None, *,
                    frequencies: list[int] | None = None, table: Tensor | None = None) -> list[IsolatedCircle]:
    """Isolate each circle of the embedding, re-run the model on all p^2 inputs and measure it.

    By principal components (Zhong et al.): the pairs (0, 1), (2, 3), ... (the first `n_pairs`, or
    the given `pairs`). By frequency: `frequencies=[k, ...]` keeps the embedding's Fourier component
    of each k in turn (see `isolated_model`). A clock circle gives a low GS and a DI near 1 and its
    logits follow the clock template; a pizza circle the reverse. Everything but accuracy and GS is
    measured on the circle's own contribution (re-run logits minus `baseline_model`'s). `table`: the
    model's own logit table [p, p, p] if the caller has it (else computed here)."""
    p = model.cfg.p
    base = M.logit_table(baseline_model(model))  # [p, p, p], constant over (a, b)
    whole_margin = correct_margin((M.logit_table(model) if table is None else table) - base)
    mean, V, var = embedding_pca(model)
    X = model.W_E[:p].detach().double() - mean
    total = X.square().sum().clamp_min(1e-300)
    out = []
    if frequencies is not None:
        for k in frequencies:
            iso = isolated_model(model, frequency=int(k))
            Xk = iso.W_E[:p].detach().double() - mean
            U, S, _ = torch.linalg.svd(Xk, full_matrices=False)
            points = U[:, :2] * S[:2]  # token coordinates on the circle's plane
            out.append(_measure(iso, None, points, (Xk.square().sum() / total).item(), int(k), base, whole_margin))
        return out
    if pairs is None:
        pairs = [(2 * i, 2 * i + 1) for i in range(min(n_pairs, V.shape[0] // 2))]
    for pair in pairs:
        pair = (int(pair[0]), int(pair[1]))
        iso = isolated_model(model, pair)
        points = X @ V[list(pair)].T  # [p, 2]
        out.append(_measure(iso, pair, points, (var[list(pair)].sum() / var.sum()).item(), None, base, whole_margin))
    return out
