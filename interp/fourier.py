"""The Fourier basis of Z_p and key-frequency detection (Nanda et al. 2023; REFERENCES §1).

Basis ordering (the paper's and ARENA's): row 0 is the constant 1/sqrt(p), row 2k-1 is
cos(2 pi k x / p), row 2k is sin(2 pi k x / p), each row unit norm, for k = 1 .. K with
K = p // 2 = `n_freqs(p)`. For even p the last row (p - 1) is the Nyquist cos(pi x) alone:
its sin is identically zero. The basis F [p, p] is orthonormal, so transforms invert with F.T.

Frequency index convention used everywhere in interp: frequencies are 1-based, k = 1 .. K,
and per-frequency tensors are indexed `t[..., k - 1]`; frequency 0 means "none / unassigned".
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from interp import tasks
from interp.errors import InterpError


class FourierError(InterpError, ValueError):
    """Bad input to a Fourier transform or frequency rule; the message says which and why."""


def _check_p(p) -> int:
    if isinstance(p, bool) or not isinstance(p, int) or p < 2:
        raise FourierError(f"p must be an integer >= 2, got {p!r}")
    return p


def n_freqs(p: int) -> int:
    """K = p // 2: the number of non-constant frequencies k = 1 .. K of Z_p."""
    return _check_p(p) // 2


@lru_cache(maxsize=32)
def _basis64(p: int) -> Tensor:
    """Built on the CPU (whatever torch's default device) and cached there; `_basis_like` moves it."""
    x = torch.arange(p, dtype=torch.float64, device="cpu")
    rows = [torch.ones(p, dtype=torch.float64, device="cpu")]
    for k in range(1, p // 2 + 1):
        rows.append(torch.cos(2 * math.pi * k * x / p))
        if 2 * k < p:  # for even p, sin(pi x) = 0 at every integer x: no Nyquist sin row
            rows.append(torch.sin(2 * math.pi * k * x / p))
    F = torch.stack(rows)
    return F / F.norm(dim=1, keepdim=True)


def fourier_basis(p: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """[p, p] orthonormal basis of functions on Z_p; row i is component `component_names(p)[i]`.
    On `device` (None: torch's default device, as its factories)."""
    p = _check_p(p)
    return torch.empty(p, p, dtype=dtype, device=device).copy_(_basis64(p))


def _basis_like(p: int, x: Tensor) -> Tensor:
    dtype = x.dtype if x.is_floating_point() else torch.float32
    return _basis64(_check_p(p)).to(device=x.device, dtype=dtype)


def component_names(p: int) -> list[str]:
    """Names of the p basis rows: "const", "cos 1", "sin 1", ..., ("cos p/2" last for even p)."""
    names = ["const"]
    for k in range(1, n_freqs(p) + 1):
        names.append(f"cos {k}")
        if 2 * k < p:
            names.append(f"sin {k}")
    return names


def freq_components(p: int, k: int) -> list[int]:
    """Basis rows of frequency k (1 .. K): [2k-1, 2k], or [2k-1] for the Nyquist k = p/2."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_freqs(p):
        raise FourierError(f"frequency must be an integer in 1..{n_freqs(p)} for p={p}, got {k!r}")
    return [2 * k - 1, 2 * k] if 2 * k < p else [2 * k - 1]


def _check_axis(x: Tensor, dim: int, what: str) -> int:
    if not isinstance(x, Tensor):
        raise FourierError(f"{what} needs a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 0 or not -x.dim() <= dim < x.dim():
        raise FourierError(f"{what}: dim {dim} out of range for a tensor of shape {list(x.shape)}")
    return _check_p(int(x.shape[dim]))


def fft1d(x: Tensor, dim: int = -1) -> Tensor:
    """Coefficients of x along axis `dim` (size p) in the Fourier basis: x @ F.T along that axis."""
    F = _basis_like(_check_axis(x, dim, "fft1d"), x)
    return (x.movedim(dim, -1).to(F.dtype) @ F.T).movedim(-1, dim)


def ifft1d(x: Tensor, dim: int = -1) -> Tensor:
    """Inverse of fft1d: x @ F along axis `dim` (F is orthonormal)."""
    F = _basis_like(_check_axis(x, dim, "ifft1d"), x)
    return (x.movedim(dim, -1).to(F.dtype) @ F).movedim(-1, dim)


def _check_square(x: Tensor, what: str) -> int:
    if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[-1] != x.shape[-2]:
        shape = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise FourierError(f"{what} needs a tensor [..., p, p] over (a, b), got {shape}")
    return _check_p(int(x.shape[-1]))


def fft2d(x: Tensor) -> Tensor:
    """[..., p_a, p_b] -> [..., p, p]: F A F.T over the two trailing (a, b) axes."""
    F = _basis_like(_check_square(x, "fft2d"), x)
    return torch.einsum("ia,...ab,jb->...ij", F, x.to(F.dtype), F)


def ifft2d(x: Tensor) -> Tensor:
    """Inverse of fft2d: F.T A_hat F."""
    F = _basis_like(_check_square(x, "ifft2d"), x)
    return torch.einsum("ia,...ij,jb->...ab", F, x.to(F.dtype), F)


def component_norms(W: Tensor) -> Tensor:
    """W [..., p, d] (rows = residues) -> [..., p]: norm of each Fourier component of W."""
    if not isinstance(W, Tensor) or W.dim() < 2:
        raise FourierError(f"component_norms needs a tensor [..., p, d], got {getattr(W, 'shape', type(W).__name__)}")
    return fft1d(W, dim=-2).norm(dim=-1)


def frequency_norms(W: Tensor) -> Tensor:
    """W [..., p, d] (rows = residues, e.g. W_E[:p]) -> [..., K]: norm of the (cos k, sin k)
    pair of Fourier components, `norms[..., k - 1]` for frequency k = 1 .. K (the constant is left
    out). The Nyquist frequency of an even p has only its cos component."""
    sq = component_norms(W).square()  # [..., p]
    p = sq.shape[-1]
    n_pairs = (p - 1) // 2  # (cos k, sin k) rows 1 .. 2 n_pairs; an even p adds the lone Nyquist cos
    paired = sq[..., 1 : 2 * n_pairs + 1].unflatten(-1, (n_pairs, 2)).sum(-1)
    return torch.cat([paired, sq[..., 2 * n_pairs + 1 :]], dim=-1).sqrt()


def _embedding(model_or_W_E, p: int | None) -> Tensor:
    if isinstance(model_or_W_E, Tensor):
        W = model_or_W_E
        if W.dim() != 2:
            raise FourierError(f"key_frequencies needs an embedding [p, d_model], got shape {list(W.shape)}")
        if p is not None:
            if W.shape[0] < p:
                raise FourierError(f"embedding has {W.shape[0]} rows, fewer than p={p}")
            W = W[:p]
        return W
    cfg = getattr(model_or_W_E, "cfg", None)
    if cfg is None or not hasattr(model_or_W_E, "W_E"):
        raise FourierError(f"key_frequencies needs a model or an embedding tensor, got {type(model_or_W_E).__name__}")
    model = tasks.group_view(model_or_W_E)  # sub/mul/div: the tokens in their task's group coordinates
    return model.W_E[: model.cfg.p]  # the a-tokens (with diff_vocab the b-tokens follow)


@torch.no_grad()
def key_frequencies(model_or_W_E, p: int | None = None, *, frac: float = 0.25, min_gap: float = 1.5,
                    min_ratio: float = 2.5, max_keys: int | None = None) -> list[int]:
    """Key frequencies of an embedding, sorted ascending (1-based).

    Input: a model (its `W_E[:p]`, the a-tokens; for sub/mul/div those of `tasks.group_view`, e.g. ordered
    by discrete log for mul) or an embedding tensor [p, d_model] (or a taller `W_E` with `p=` to take its
    first p rows).

    Rule, on the per-frequency norms (`frequency_norms`) sorted descending s_1 >= s_2 >= ... >= s_K:
    the keys are the top m, for the largest m <= max_keys (default K // 2: keys must stand above a
    bulk at least as large as themselves) such that
      - s_m >= frac * s_1 (every key carries at least `frac` of the largest norm; 1/4 as the
        TransformerLens demo),
      - s_m >= min_gap * s_{m+1} (a clear gap below the keys), and
      - s_m >= min_ratio * median(s_{m+1} .. s_K) (the keys stand well above the typical non-key).
    If no cut passes, the result is [] ("no clear key frequencies"): that is what a random
    (untrained) embedding gives, since its frequency norms are all about equal (at d_model >= 8 the
    99th percentile over random embeddings is a gap of ~1.6 and a median ratio of ~2.1 for
    p = 7, and lower for larger p or d_model). For p < 4 (K = 1) there is no bulk, so always [].
    """
    W = _embedding(model_or_W_E, p)
    if not 0 < frac <= 1 or min_gap < 1 or min_ratio < 1:
        raise FourierError(f"need 0 < frac <= 1, min_gap >= 1 and min_ratio >= 1, got {frac}, {min_gap}, {min_ratio}")
    s, order = frequency_norms(W.detach().to(torch.float64)).sort(descending=True)
    s, order = s.cpu(), order.cpu()  # K numbers in one transfer, not a device sync per comparison below
    K = s.shape[0]
    max_keys = K // 2 if max_keys is None else max_keys
    best = 0
    for m in range(1, min(max_keys, K - 1) + 1):
        if s[m - 1] < frac * s[0]:
            break
        if s[m - 1] >= min_gap * s[m] and s[m - 1] >= min_ratio * s[m:].median():
            best = m
    return sorted(int(k) + 1 for k in order[:best]) if s[0] > 0 else []


def sum_directions(p: int, freqs: list[int], device: torch.device | str | None = None) -> Tensor:
    """[len(freqs), 2, p, p]: the unit (a, b)-maps of cos(w_k (a + b)) and sin(w_k (a + b)).

    In the 2-D basis these are ucos_k = (C_k x C_k - S_k x S_k)/sqrt 2 and
    usin_k = (S_k x C_k + C_k x S_k)/sqrt 2 (REFERENCES §1). For the Nyquist frequency of an
    even p, cos(pi (a + b)) = C x C is the only (unit) direction and the sin map is zero.
    """
    p = _check_p(p)
    out = torch.zeros(len(freqs), 2, p, p, dtype=torch.float64, device=device)
    F = _basis64(p).to(out.device)
    for i, k in enumerate(freqs):
        comps = freq_components(p, k)
        C = F[comps[0]]
        if len(comps) == 1:
            out[i, 0] = torch.outer(C, C)
            continue
        S = F[comps[1]]
        out[i, 0] = (torch.outer(C, C) - torch.outer(S, S)) / math.sqrt(2)
        out[i, 1] = (torch.outer(S, C) + torch.outer(C, S)) / math.sqrt(2)
    return out


def freq_masks_2d(p: int, device: torch.device | str | None = None) -> Tensor:
    """[K, p, p] bool: mask k - 1 marks the 2-D components (i, j) in {0, 2k-1, 2k}^2 minus (0, 0),
    the terms a neuron map's variance at frequency k is made of (REFERENCES §1)."""
    masks = torch.zeros(n_freqs(p), p, p, dtype=torch.bool, device=device)
    for k in range(1, n_freqs(p) + 1):
        idx = torch.tensor([0] + freq_components(p, k), device=device)
        masks[k - 1, idx[:, None], idx[None, :]] = True
        masks[k - 1, 0, 0] = False
    return masks
