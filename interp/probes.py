"""Hook-based probes of a modular-addition model over all p^2 inputs (Nanda et al. 2023, REFERENCES §1).

Each activation probe runs the model once over `all_tokens(cfg)` (row a*p + b) with
`run_with_cache` and a names filter holding only the hooks it reads, and returns a small
dataclass. Maps over the inputs are laid out [..., p_a, p_b]; 2-D spectra index the basis
rows of `interp.fourier` on both axes; per-frequency tensors are indexed k - 1 (frequency k,
1-based, 0 = unassigned). Works for both token layouts ([a, b, =] and Clock/Pizza's [a, b],
with or without diff_vocab): the last position is read in either case. A sub/mul/div model is probed
through `tasks.group_view` (an addition model mod n in the task's group coordinates), so p is that n.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from einops import rearrange
from fancy_einsum import einsum
from torch import Tensor

from interp import fourier, tasks
from interp.data import all_tokens
from interp.device import device_of
from interp.display import HTMLRepr
from interp.errors import InterpError


class ProbeError(InterpError, ValueError):
    """A probe asked for something the model does not have (a layer, a frequency)."""


def _check_layer(model, layer: int) -> int:
    n = model.cfg.n_layers
    if isinstance(layer, bool) or not isinstance(layer, int) or not -n <= layer < n:
        raise ProbeError(f"layer must be an integer in [{-n}, {n - 1}] for this {n}-layer model, got {layer!r}")
    return layer % n


def _check_mlp(model, what: str) -> None:
    if model.cfg.attn_only:
        raise ProbeError(f"{what} needs the MLP; this is an attention-only model (attn_only): it has none")


def _check_freqs(p: int, freqs) -> list[int]:
    freqs = sorted({int(k) for k in freqs})
    bad = [k for k in freqs if not 1 <= k <= fourier.n_freqs(p)]
    if bad:
        raise ProbeError(f"frequencies must lie in 1..{fourier.n_freqs(p)} for p={p}, got {bad}")
    return freqs


@torch.no_grad()
def run_all_inputs(model, hooks: list[str]) -> tuple[Tensor, dict[str, Tensor]]:
    """One forward pass over all p^2 inputs caching only `hooks`: (last logits [p*p, p], {hook: act})."""
    tokens = all_tokens(model.cfg, device_of(model))
    logits, cache = model.run_with_cache(tokens, names_filter=lambda name: name in hooks)
    return logits[:, -1], {name: cache[name] for name in hooks}


def by_pair(x: Tensor, p: int) -> Tensor:
    """[p*p, ...] rows a*p + b -> [..., p_a, p_b]."""
    return rearrange(x, "(a b) ... -> ... a b", a=p, b=p)


# ---- embedding -------------------------------------------------------------------------------
@dataclass
class EmbeddingProbe(HTMLRepr):
    fourier: Tensor  # [p, d_model] W_E[:p] in the Fourier basis, row i = component_names(p)[i]
    component_norms: Tensor  # [p] norm of each Fourier component
    freq_norms: Tensor  # [K] norm of the (cos k, sin k) pair, index k - 1
    key_freqs: list[int]  # sorted, 1-based
    circles: Tensor  # [n_keys, p, 2] token t projected on the unit (cos k, sin k) directions


@torch.no_grad()
def embedding(model, freqs: list[int] | None = None, **key_kw) -> EmbeddingProbe:
    """Fourier view of the a-token embedding W_E[:p] (read from the weights: no forward pass needed).

    `freqs` overrides the key frequencies; otherwise `fourier.key_frequencies(model, **key_kw)`.
    """
    model = tasks.group_view(model)  # sub/mul/div: probed in their group coordinates
    p = model.cfg.p
    W = model.W_E[:p].detach().double()
    coef = fourier.fft1d(W, dim=0)  # [p, d_model]
    keys = fourier.key_frequencies(W, **key_kw) if freqs is None else _check_freqs(p, freqs)
    circles = torch.zeros(len(keys), p, 2, dtype=torch.float64, device=W.device)
    for i, k in enumerate(keys):
        for j, comp in enumerate(fourier.freq_components(p, k)):  # Nyquist: the sin axis stays 0
            direction = coef[comp] / coef[comp].norm().clamp_min(1e-30)
            circles[i, :, j] = W @ direction
    return EmbeddingProbe(coef, coef.norm(dim=1), fourier.frequency_norms(W), keys, circles)


# ---- attention -------------------------------------------------------------------------------
@dataclass
class AttentionProbe(HTMLRepr):
    to_a: Tensor  # [n_heads, p_a, p_b] attention from the last position to a (position 0)
    to_b: Tensor  # [n_heads, p_a, p_b] attention from the last position to b (position 1)
    spectrum_a: Tensor  # [n_heads, p, p] 2-D Fourier transform of to_a
    spectrum_b: Tensor  # [n_heads, p, p]


@torch.no_grad()
def attention(model, layer: int = 0) -> AttentionProbe:
    """Per head of block `layer`, the attention paid by the last position to a and to b, as maps over (a, b)."""
    model = tasks.group_view(model)  # sub/mul/div: probed in their group coordinates
    hook = f"blocks.{_check_layer(model, layer)}.attn.hook_pattern"
    _, cache = run_all_inputs(model, [hook])
    last = cache[hook][:, :, -1]  # [p*p, n_heads, k_pos]
    to_a, to_b = (by_pair(last[:, :, pos], model.cfg.p).double() for pos in (0, 1))
    return AttentionProbe(to_a, to_b, fourier.fft2d(to_a), fourier.fft2d(to_b))


# ---- neurons ---------------------------------------------------------------------------------
def neuron_fve(maps: Tensor) -> Tensor:
    """maps [..., p_a, p_b] -> [..., K]: fraction of each map's variance explained by frequency k.

    Centre the map, take its 2-D spectrum A_hat, and sum A_hat^2 over (i, j) in {0, 2k-1, 2k}^2
    minus (0, 0), divided by the sum of all A_hat^2 (REFERENCES §1). A constant map gives 0.
    """
    maps = maps.double()
    centred = maps - maps.mean(dim=(-2, -1), keepdim=True)
    power = fourier.fft2d(centred).square()
    total = power.sum(dim=(-2, -1))
    masks = fourier.freq_masks_2d(maps.shape[-1], power.device).to(power.dtype)
    per_freq = einsum("... i j, freq i j -> ... freq", power, masks)
    return torch.where(total[..., None] > 0, per_freq / total.clamp_min(1e-300)[..., None], 0.0)


def assign_frequencies(fve: Tensor, threshold: float = 0.85) -> Tensor:
    """fve [n, K] -> [n] long: each neuron's best frequency (1-based), 0 where its FVE < threshold."""
    best, idx = fve.max(dim=-1)
    return torch.where(best >= threshold, idx + 1, 0)


def clusters_of(freq: Tensor) -> dict[int, Tensor]:
    """{frequency: neuron indices [n_k]} for every assigned frequency, ascending."""
    return {int(k): (freq == k).nonzero().flatten() for k in freq.unique().tolist() if k > 0}


@dataclass
class NeuronProbe(HTMLRepr):
    maps: Tensor  # [d_mlp, p_a, p_b] blocks.L.mlp.hook_post at the last position
    spectra: Tensor  # [d_mlp, p, p] 2-D Fourier transform of the centred maps
    fve: Tensor  # [d_mlp, K] fraction of variance explained by frequency k (index k - 1)
    freq: Tensor  # [d_mlp] long: the neuron's frequency, 0 = below threshold
    threshold: float
    clusters: dict[int, Tensor] = field(default_factory=dict)  # {k: neuron indices}

    @property
    def cluster_sizes(self) -> dict[int, int]:
        return {k: len(v) for k, v in self.clusters.items()}

    @property
    def n_unassigned(self) -> int:
        return int((self.freq == 0).sum())


@torch.no_grad()
def neurons(model, layer: int = 0, threshold: float = 0.85) -> NeuronProbe:
    """MLP neurons of block `layer` as maps over (a, b), their spectra, FVE per frequency and frequency
    clusters. Refused (ProbeError) on an attention-only model."""
    _check_mlp(model, "probes.neurons")
    model = tasks.group_view(model)  # sub/mul/div: probed in their group coordinates
    if not 0 < threshold <= 1:
        raise ProbeError(f"threshold must be in (0, 1], got {threshold!r}")
    hook = f"blocks.{_check_layer(model, layer)}.mlp.hook_post"
    _, cache = run_all_inputs(model, [hook])
    maps = by_pair(cache[hook][:, -1], model.cfg.p).double()  # [d_mlp, p, p]
    spectra = fourier.fft2d(maps - maps.mean(dim=(-2, -1), keepdim=True))
    fve = neuron_fve(maps)
    freq = assign_frequencies(fve, threshold)
    return NeuronProbe(maps, spectra, fve, freq, threshold, clusters_of(freq))


# ---- logits ----------------------------------------------------------------------------------
def clock_templates(p: int, freqs: list[int], device: torch.device | str | None = None) -> Tensor:
    """[n_freqs, p_a, p_b, p_c]: cos(w_k (a + b - c)), w_k = 2 pi k / p."""
    r = torch.arange(p, dtype=torch.float64, device=device)
    s = r[:, None, None] + r[None, :, None] - r[None, None, :]
    w = 2 * torch.pi * torch.tensor(freqs, dtype=torch.float64, device=device) / p
    return torch.cos(w[:, None, None, None] * s)


def clock_fit(logits: Tensor, freqs: list[int]) -> tuple[Tensor, Tensor]:
    """Least-squares fit of logits [p_a, p_b, p_c] by sum_k alpha_k cos(w_k (a + b - c)).

    Logits are centred over c for each (a, b) first (softmax ignores that shift; the templates
    have zero mean over c). The templates of distinct frequencies are orthogonal, so the fit is
    per frequency. Returns (alpha [n_freqs], fve [n_freqs]): fve_k is the fraction of the
    centred logits' sum of squares explained by term k; their sum is the fit's FVE.
    """
    p = logits.shape[-1]
    L = logits.double()
    L = L - L.mean(dim=-1, keepdim=True)
    T = clock_templates(p, freqs, L.device)
    dot = einsum("k a b c, a b c -> k", T, L)
    tt = T.square().sum(dim=(1, 2, 3))
    total = L.square().sum().clamp_min(1e-300)
    return dot / tt, dot.square() / tt / total


@dataclass
class LogitProbe(HTMLRepr):
    logits: Tensor  # [p_a, p_b, p_c] last-position logits
    fourier: Tensor  # [p, p, p_c] 2-D Fourier transform over (a, b), per output c
    # W_L = W_out[layer] @ W_U, the neuron -> logit map (ln_final's scale left out, as TransformerLens's folded
    # view); None on an attention-only model, which has no neurons
    W_L: Tensor | None  # [d_mlp, p_c]
    W_L_fourier: Tensor | None  # [d_mlp, p] W_L in the Fourier basis of the output c
    W_L_freq_norms: Tensor | None  # [K] norm of W_L's (cos k, sin k) output components, index k - 1
    key_freqs: list[int]
    alpha: Tensor  # [n_keys] coefficients of cos(w_k (a + b - c))
    fve_per_freq: Tensor  # [n_keys] fraction of centred-logit variance each term explains
    fve: float  # all key terms together


@torch.no_grad()
def logits(model, freqs: list[int] | None = None, layer: int = -1) -> LogitProbe:
    """The logits over all inputs in the Fourier basis, W_L, and the fit by the clock terms
    cos(w_k (a + b - c)) of the key frequencies (default: `fourier.key_frequencies(model)`); W_L of block
    `layer` (None without an MLP)."""
    model = tasks.group_view(model)  # sub/mul/div: probed in their group coordinates
    p = model.cfg.p
    keys = fourier.key_frequencies(model) if freqs is None else _check_freqs(p, freqs)
    layer = _check_layer(model, layer)
    last, _ = run_all_inputs(model, [])
    L = rearrange(last.double(), "(a b) c -> a b c", a=p, b=p)
    W_L = None if model.cfg.attn_only else (model.W_out[layer] @ model.W_U).detach().double()
    alpha, fve = clock_fit(L, keys)
    return LogitProbe(
        logits=L,
        fourier=rearrange(fourier.fft2d(rearrange(L, "a b c -> c a b")), "c i j -> i j c"),
        W_L=W_L,
        W_L_fourier=None if W_L is None else fourier.fft1d(W_L, dim=-1),
        W_L_freq_norms=None if W_L is None else fourier.frequency_norms(W_L.T),
        key_freqs=keys,
        alpha=alpha,
        fve_per_freq=fve,
        fve=float(fve.sum()),
    )
