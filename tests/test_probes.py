"""Probes against a hand-built model whose weights implement the clock algorithm exactly."""

import math

import pytest
import torch

from interp import fourier, probes
from interp.config import ModelConfig
from interp.data import all_pairs, all_tokens, labels_for
from interp.errors import InterpError
from interp.model import Transformer


def planted_clock(p, freqs, eq_token=True, diff_vocab=False, n_phases=8):
    """A one-layer model computing logits ~ sum_k cos(w_k (a + b - c)) for the given frequencies.

    Residual layout (F = len(freqs)): token (cos w_k t, sin w_k t) in dims [0, 2F); head 0 copies
    the token at position 0 (a) into [2F, 4F), head 1 the token at position 1 (b) into [4F, 6F):
    the last query attends by one-hot positions with a score gap of 60. Neuron (k, theta, phi) is
    ReLU(cos(w_k a - theta) + cos(w_k b - phi)) on an n_phases^2 grid of phases, writing
    (cos, sin)(theta + phi) into [6F, 8F); W_U reads those as cos / sin(w_k c). Summed over the
    phase grid, the product terms give cos(w_k (a + b - c)) up to a positive constant.
    """
    F = len(freqs)
    d_model = 2 * math.ceil((8 * F + 3) / 2)
    cfg = ModelConfig(p=p, d_model=d_model, n_heads=2, d_head=d_model // 2, d_mlp=F * n_phases**2,
                      eq_token=eq_token, diff_vocab=diff_vocab, causal=eq_token)
    model = Transformer(cfg, seed=None)
    emb, A, B, out, pos = 0, 2 * F, 4 * F, 6 * F, 8 * F
    S = {k: torch.zeros(v.shape, dtype=torch.float64) for k, v in model.state_dict().items()}
    t = torch.arange(p, dtype=torch.float64)
    grid = 2 * math.pi * torch.arange(n_phases, dtype=torch.float64) / n_phases
    theta, phi = grid.repeat_interleave(n_phases), grid.repeat(n_phases)
    for i, k in enumerate(freqs):
        w = 2 * math.pi * k * t / p
        for first in (0, p) if diff_vocab else (0,):
            S["embed.W_E"][first:first + p, emb + 2 * i] = torch.cos(w)
            S["embed.W_E"][first:first + p, emb + 2 * i + 1] = torch.sin(w)
        n = slice(i * n_phases**2, (i + 1) * n_phases**2)
        W_in, W_out = S["blocks.0.mlp.W_in"], S["blocks.0.mlp.W_out"]
        W_in[A + 2 * i, n], W_in[A + 2 * i + 1, n] = torch.cos(theta), torch.sin(theta)
        W_in[B + 2 * i, n], W_in[B + 2 * i + 1, n] = torch.cos(phi), torch.sin(phi)
        W_out[n, out + 2 * i], W_out[n, out + 2 * i + 1] = torch.cos(theta + phi), torch.sin(theta + phi)
        S["unembed.W_U"][out + 2 * i], S["unembed.W_U"][out + 2 * i + 1] = torch.cos(w), torch.sin(w)
    S["pos_embed.W_pos"][:, pos:pos + cfg.n_ctx] = torch.eye(cfg.n_ctx)
    for h, dst in ((0, A), (1, B)):
        S["blocks.0.attn.W_Q"][h, pos + cfg.n_ctx - 1, 0] = 1.0
        S["blocks.0.attn.W_K"][h, pos + h, 0] = 60.0 * math.sqrt(cfg.d_head)
        S["blocks.0.attn.W_V"][h, emb:emb + 2 * F, : 2 * F] = torch.eye(2 * F)
        S["blocks.0.attn.W_O"][h, : 2 * F, dst:dst + 2 * F] = torch.eye(2 * F)
    model.load_state_dict({k: v.float() for k, v in S.items()})
    return model.eval()


LAYOUTS = {"nanda": dict(eq_token=True), "clock-pizza": dict(eq_token=False, diff_vocab=True)}
FREQS = [2, 5, 9]
P = 23


@pytest.fixture(scope="module", params=list(LAYOUTS))
def planted(request):
    return planted_clock(P, FREQS, **LAYOUTS[request.param])


def test_planted_model_solves_the_task(planted):
    logits = planted.last_logits(all_tokens(planted.cfg))
    assert (logits.argmax(-1) == labels_for(all_pairs(P), P)).all()


def test_embedding_probe_recovers_frequencies_and_circles(planted):
    e = probes.embedding(planted)
    assert e.key_freqs == FREQS
    assert e.fourier.shape == (P, planted.cfg.d_model) and e.freq_norms.shape == (P // 2,)
    off = [k - 1 for k in range(1, P // 2 + 1) if k not in FREQS]
    assert e.freq_norms[off].max() < 1e-5 * e.freq_norms.max()
    # each token sits on a circle of radius sqrt(...) at angle w_k t
    assert e.circles.shape == (3, P, 2)
    radius = e.circles.norm(dim=-1)
    assert torch.allclose(radius, radius[:, :1].expand_as(radius), rtol=1e-5)
    angle = torch.atan2(e.circles[..., 1], e.circles[..., 0])
    t = torch.arange(P, dtype=torch.float64)
    for i, k in enumerate(FREQS):
        step = torch.remainder(angle[i] - angle[i, 0] - 2 * math.pi * k * t / P + math.pi, 2 * math.pi) - math.pi
        # the circle's orientation (the sign of the sin direction) is arbitrary
        flipped = torch.remainder(angle[i] - angle[i, 0] + 2 * math.pi * k * t / P + math.pi, 2 * math.pi) - math.pi
        assert min(step.abs().max(), flipped.abs().max()) < 1e-4


def test_attention_probe_sees_the_position_heads(planted):
    a = probes.attention(planted)
    n_heads = planted.cfg.n_heads
    assert a.to_a.shape == a.to_b.shape == a.spectrum_a.shape == (n_heads, P, P)
    assert torch.allclose(a.to_a[0], torch.ones(P, P, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(a.to_b[1], torch.ones(P, P, dtype=torch.float64), atol=1e-6)
    assert a.to_a[1].abs().max() < 1e-6
    # a constant map: all of its spectrum is the (const, const) component, = p
    assert a.spectrum_a[0, 0, 0] == pytest.approx(P, rel=1e-5)
    assert a.spectrum_a[0].square().sum() == pytest.approx(P**2, rel=1e-5)


def test_neuron_probe_clusters_are_the_planted_frequencies(planted):
    n = probes.neurons(planted)
    d_mlp = planted.cfg.d_mlp
    assert n.maps.shape == n.spectra.shape == (d_mlp, P, P) and n.fve.shape == (d_mlp, P // 2)
    planted_freq = torch.tensor(FREQS).repeat_interleave(d_mlp // len(FREQS))
    assert torch.equal(n.freq, planted_freq)
    assert n.cluster_sizes == {k: d_mlp // len(FREQS) for k in FREQS} and n.n_unassigned == 0
    strict = probes.neurons(planted, threshold=1.0)
    assert strict.n_unassigned == d_mlp and strict.clusters == {}


def test_logit_probe_fits_the_clock_terms(planted):
    lp = probes.logits(planted)
    assert lp.key_freqs == FREQS
    assert lp.logits.shape == (P, P, P) and lp.fourier.shape == (P, P, P)
    assert lp.W_L.shape == (planted.cfg.d_mlp, P)
    assert lp.fve > 0.999
    assert torch.allclose(lp.alpha, lp.alpha[:1].expand(3), rtol=1e-4) and (lp.alpha > 0).all()
    off = [k - 1 for k in range(1, P // 2 + 1) if k not in FREQS]
    assert lp.W_L_freq_norms[off].max() < 1e-5 * lp.W_L_freq_norms.max()
    wrong = probes.logits(planted, freqs=[1, 3])
    assert wrong.fve < 1e-3


def test_neuron_fve_on_planted_maps():
    p = 11
    t = torch.arange(p, dtype=torch.float64)
    w = lambda k: 2 * math.pi * k * t / p  # noqa: E731
    maps = torch.stack([
        torch.cos(w(3))[:, None] * torch.cos(w(3))[None, :],  # pure (cos 3, cos 3)
        torch.sin(w(2))[:, None] + 0 * t[None, :] + 7.0,  # (sin 2, const) plus a constant offset
        torch.cos(w(1))[:, None] * torch.cos(w(4))[None, :],  # mixed frequencies: counted in neither
        torch.cos(w(1))[:, None] + 3 * torch.cos(w(4))[None, :],  # 1 : 9 variance split
        torch.zeros(p, p),
    ])
    fve = probes.neuron_fve(maps)
    assert fve.shape == (5, p // 2)
    expect = torch.zeros(5, p // 2, dtype=torch.float64)
    expect[0, 2] = expect[1, 1] = 1.0
    expect[3, 0], expect[3, 3] = 0.1, 0.9
    assert torch.allclose(fve, expect, atol=1e-12)
    assert probes.assign_frequencies(fve, 0.85).tolist() == [3, 2, 0, 4, 0]
    assert probes.assign_frequencies(fve, 0.95).tolist() == [3, 2, 0, 0, 0]
    clusters = probes.clusters_of(torch.tensor([3, 2, 0, 3]))
    assert list(clusters) == [2, 3] and clusters[3].tolist() == [0, 3]


def test_probes_on_a_random_pizza_layout_model():
    cfg = ModelConfig.with_width(16, p=7, eq_token=False, causal=False, attn_rate=0.0, biases="mlp")
    model = Transformer(cfg, seed=3)
    a = probes.attention(model)
    assert torch.allclose(a.to_a, torch.ones_like(a.to_a))  # constant attention: weight 1 on each position
    n = probes.neurons(model)
    assert (n.fve >= 0).all() and (n.fve.sum(-1) <= 1 + 1e-9).all()
    lp = probes.logits(model, freqs=[1])
    assert 0 <= lp.fve <= 1
    assert probes.embedding(model).key_freqs == []


@pytest.mark.parametrize("call", [
    lambda m: probes.attention(m, layer=1),
    lambda m: probes.neurons(m, threshold=0.0),
    lambda m: probes.logits(m, freqs=[12]),
    lambda m: probes.embedding(m, freqs=[0]),
])
def test_bad_probe_arguments_raise(call):
    with pytest.raises(InterpError):
        call(Transformer(ModelConfig.with_width(16, p=7), seed=0))


def test_probes_on_a_two_layer_model():
    model = Transformer(ModelConfig.with_width(16, p=7, n_layers=2), seed=1)
    assert probes.attention(model, layer=1).to_a.shape == (4, 7, 7)
    assert probes.neurons(model, layer=-1).maps.shape == (64, 7, 7)
    assert probes.logits(model, freqs=[2], layer=1).W_L.shape == (64, 7)
