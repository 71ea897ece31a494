import math

import pytest
import torch

from interp import fourier
from interp.config import ModelConfig
from interp.errors import InterpError
from interp.model import Transformer


@pytest.mark.parametrize("p", [2, 3, 4, 5, 6, 7, 12, 59, 113])
def test_basis_orthonormal_and_ordered(p):
    F = fourier.fourier_basis(p, torch.float64)
    assert torch.allclose(F @ F.T, torch.eye(p, dtype=torch.float64), atol=1e-12)
    x = torch.arange(p, dtype=torch.float64)
    assert torch.allclose(F[0], torch.full((p,), 1 / math.sqrt(p), dtype=torch.float64))
    for k in range(1, fourier.n_freqs(p) + 1):
        cos = torch.cos(2 * math.pi * k * x / p)
        assert torch.allclose(F[2 * k - 1], cos / cos.norm(), atol=1e-12)
        if 2 * k < p:
            sin = torch.sin(2 * math.pi * k * x / p)
            assert torch.allclose(F[2 * k], sin / sin.norm(), atol=1e-12)
    names = fourier.component_names(p)
    assert len(names) == p and names[0] == "const" and names[1] == "cos 1"
    assert names[-1] == (f"cos {p // 2}" if p % 2 == 0 else f"sin {p // 2}")


def test_transforms_invert_along_any_axis():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 11, 5, generator=g, dtype=torch.float64)
    for dim in (0, 1, 2, -1):
        if x.shape[dim] >= 2:
            assert torch.allclose(fourier.ifft1d(fourier.fft1d(x, dim=dim), dim=dim), x, atol=1e-12)
    A = torch.randn(4, 13, 13, generator=g, dtype=torch.float64)
    assert torch.allclose(fourier.ifft2d(fourier.fft2d(A)), A, atol=1e-12)
    assert torch.allclose(fourier.fft2d(A)[0], fourier.fft1d(fourier.fft1d(A[0], dim=0), dim=1), atol=1e-12)


def test_fft2d_puts_a_product_on_its_component():
    p, k = 13, 4
    t = torch.arange(p, dtype=torch.float64)
    A = torch.outer(torch.cos(2 * math.pi * k * t / p), torch.sin(2 * math.pi * k * t / p))
    hat = fourier.fft2d(A)
    i, j = (hat.abs() == hat.abs().max()).nonzero()[0].tolist()
    assert (i, j) == (2 * k - 1, 2 * k)
    assert hat.square().sum() == pytest.approx(A.square().sum())  # Parseval
    assert hat.square()[i, j] == pytest.approx(A.square().sum())


@pytest.mark.parametrize("p", [7, 8, 113])
def test_frequency_norms_index_and_parseval(p):
    g = torch.Generator().manual_seed(1)
    W = torch.randn(p, 6, generator=g, dtype=torch.float64)
    norms = fourier.frequency_norms(W)
    assert norms.shape == (fourier.n_freqs(p),)
    const = fourier.component_norms(W)[0]
    assert (norms.square().sum() + const**2).item() == pytest.approx(W.square().sum().item())
    t = torch.arange(p, dtype=torch.float64)
    k = fourier.n_freqs(p)  # the Nyquist frequency for even p
    planted = torch.cos(2 * math.pi * k * t / p)[:, None] * torch.ones(3, dtype=torch.float64)
    n = fourier.frequency_norms(planted)
    assert n[k - 1] == pytest.approx(planted.norm().item())
    assert n[: k - 1].abs().max() < 1e-9
    batched = fourier.frequency_norms(torch.stack([W, planted.repeat(1, 2)]))
    assert torch.allclose(batched[0], norms)


def _planted_embedding(p, freqs, d_model=64, noise=0.05, seed=0):
    """Tokens on circles of the given frequencies (random planes and amplitudes 0.4..1) plus noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(p, dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(d_model, 2 * len(freqs), generator=g, dtype=torch.float64))
    W = noise * torch.randn(p, d_model, generator=g, dtype=torch.float64)
    for i, k in enumerate(freqs):
        amp = 0.4 + 0.6 * torch.rand(1, generator=g, dtype=torch.float64)
        w = 2 * math.pi * k * t / p
        W += amp * (torch.cos(w)[:, None] * Q[:, 2 * i] + torch.sin(w)[:, None] * Q[:, 2 * i + 1])
    return W


# keys must be a minority of the K = p // 2 frequencies, so small p plants fewer
PLANTED = [(p, n) for p in (7, 11, 13, 23, 31, 59, 113) for n in range(1, 7) if n <= p // 2 // 2]


@pytest.mark.parametrize("p,n_keys", PLANTED)
def test_key_frequencies_recovers_planted(p, n_keys):
    K = fourier.n_freqs(p)
    g = torch.Generator().manual_seed(p * 10 + n_keys)
    freqs = sorted((torch.randperm(K, generator=g)[:n_keys] + 1).tolist())
    W = _planted_embedding(p, freqs, seed=p + n_keys)
    assert fourier.key_frequencies(W) == freqs
    # the same embedding inside a model (W_E has an `=` row after the p tokens)
    model = Transformer(ModelConfig(p=p, d_model=64, n_heads=4, d_head=16, d_mlp=32), seed=0)
    with torch.no_grad():
        model.embed.W_E[:p] = W.float()
    assert fourier.key_frequencies(model) == freqs
    assert fourier.key_frequencies(model.W_E.detach(), p=p) == freqs


@pytest.mark.parametrize("p,d_model", [(7, 8), (23, 32), (59, 128), (113, 128)])
def test_key_frequencies_of_random_embedding_is_empty(p, d_model):
    for seed in range(5):
        assert fourier.key_frequencies(Transformer(ModelConfig.with_width(d_model, p=p), seed=seed)) == []


def test_key_frequencies_edge_cases():
    assert fourier.key_frequencies(torch.zeros(11, 4)) == []
    assert fourier.key_frequencies(torch.randn(3, 4)) == []  # K = 1: no bulk to compare against
    # a weak but planted frequency below frac * max is not a key
    W = _planted_embedding(59, [3, 17], noise=0.0)
    W += 0.1 * _planted_embedding(59, [40], noise=0.0)
    assert fourier.key_frequencies(W) == [3, 17]


def test_sum_directions_are_unit_and_match_cos_sin_of_sum():
    p = 11
    U = fourier.sum_directions(p, [2, 5])
    assert U.shape == (2, 2, p, p)
    flat = U.reshape(4, -1)
    assert torch.allclose(flat @ flat.T, torch.eye(4, dtype=torch.float64), atol=1e-12)
    a = torch.arange(p, dtype=torch.float64)
    s = a[:, None] + a[None, :]
    cos = torch.cos(2 * math.pi * 5 * s / p)
    sin = torch.sin(2 * math.pi * 5 * s / p)
    assert torch.allclose(U[1, 0], cos / cos.norm(), atol=1e-12)
    assert torch.allclose(U[1, 1], sin / sin.norm(), atol=1e-12)
    nyq = fourier.sum_directions(8, [4])
    assert nyq[0, 0].norm() == pytest.approx(1) and nyq[0, 1].abs().max() == 0


def test_freq_masks_2d():
    masks = fourier.freq_masks_2d(7)
    assert masks.shape == (3, 7, 7)
    assert masks.sum(dim=(1, 2)).tolist() == [8, 8, 8]
    assert masks[1, 3, 4] and masks[1, 0, 3] and not masks[1, 0, 0] and not masks[1, 1, 3]
    assert fourier.freq_masks_2d(6)[2].sum() == 3  # Nyquist: {0, 5}^2 minus (0, 0)


@pytest.mark.parametrize("call", [
    lambda: fourier.fourier_basis(1),
    lambda: fourier.fourier_basis(5.0),
    lambda: fourier.fft2d(torch.zeros(3, 4)),
    lambda: fourier.fft1d(torch.zeros(3), dim=2),
    lambda: fourier.frequency_norms(torch.zeros(5)),
    lambda: fourier.key_frequencies("W_E"),
    lambda: fourier.key_frequencies(torch.zeros(5, 3, 2)),
    lambda: fourier.key_frequencies(torch.zeros(5, 3), p=7),
    lambda: fourier.freq_components(7, 4),
    lambda: fourier.sum_directions(7, [0]),
])
def test_bad_input_raises_interp_error(call):
    with pytest.raises(InterpError):
        call()
