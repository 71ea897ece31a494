"""Metrics on planted models and synthetic logit tables whose values follow from the definitions."""

import math

import pytest
import torch

from interp import metrics as M
from interp.config import ModelConfig
from interp.data import all_tokens
from interp.model import Transformer

P = 23


def small_cfg(**kw) -> ModelConfig:
    base = dict(p=P, d_model=16, n_heads=2, d_head=8, d_mlp=32, biases="mlp")
    return ModelConfig(**{**base, **kw})


def grid(p=P):
    r = torch.arange(p)
    return r[:, None], r[None, :]


# ---- logit table, accuracy ---------------------------------------------------------------------
def test_logit_table_is_last_position_logits_in_a_b_c_order():
    model = Transformer(small_cfg(), seed=1)
    table = M.logit_table(model)
    assert table.shape == (P, P, P)
    full = model(all_tokens(model.cfg))[:, -1]  # row a*p + b
    assert torch.allclose(table[3, 5], full[3 * P + 5], atol=1e-5)


def test_accuracy_counts_pairs_whose_top_logit_is_the_sum():
    a, b = grid()
    table = torch.zeros(P, P, P)
    table.scatter_(-1, ((a + b) % P)[..., None], 1.0)
    assert M.accuracy(table) == 1.0
    table[0, :, :] = 0
    table[0, torch.arange(P), (torch.arange(P) + 1) % P] = 5.0  # answer b + 1 for a = 0
    assert M.accuracy(table) == pytest.approx(1 - 1 / P)


# ---- gradient symmetricity ---------------------------------------------------------------------
def test_gs_is_one_for_constant_attention_with_an_equals_token():
    # With alpha = 0 the last position (=) sees E_a + E_b through the same W_V W_O: g_a == g_b exactly.
    model = Transformer(small_cfg(attn_rate=0.0, eq_token=True), seed=3)
    assert M.gradient_symmetricity(model) == pytest.approx(1.0, abs=1e-5)


def test_gs_is_zero_when_a_cannot_reach_the_output():
    # [a, b] inputs, constant attention, W_V = 0: the logits depend on b's own residual only, g_a = 0.
    model = Transformer(small_cfg(attn_rate=0.0, eq_token=False, causal=False), seed=3)
    with torch.no_grad():
        model.blocks[0].attn.W_V.zero_()
    assert M.gradient_symmetricity(model) == pytest.approx(0.0, abs=1e-6)


def test_gs_matches_hand_derived_gradients_for_constant_attention():
    # alpha = 0, [a, b]: resid_mid(last) = E_b + pos_1 + sum_j (E_j + pos_j) W_VO, so with g the
    # gradient at resid_mid: g_a = W_VO g, g_b = (I + W_VO) g (W_VO = sum_h W_V[h] W_O[h]).
    model = Transformer(small_cfg(attn_rate=0.0, eq_token=False, causal=False), seed=5)
    abc = torch.randint(0, P, (100, 3), generator=torch.Generator().manual_seed(0))  # the metric's triples
    tokens = torch.stack([abc[:, 0], abc[:, 1]], 1)
    store = {}

    def keep(x, hook):
        x.retain_grad()
        store["mid"] = x
        return x

    with model.hooks(fwd_hooks=[("blocks.0.hook_resid_mid", keep)]):
        logits = model(tokens)[:, -1]
        logits.gather(1, abc[:, 2:]).sum().backward()
    g = store["mid"].grad[:, -1]  # [n, d_model]
    attn = model.blocks[0].attn
    W_VO = torch.einsum("hde,hef->df", attn.W_V, attn.W_O).detach()
    g_a, g_b = g @ W_VO.T, g + g @ W_VO.T
    expected = torch.nn.functional.cosine_similarity(g_a, g_b, dim=-1).mean().item()
    assert M.gradient_symmetricity(model) == pytest.approx(expected, abs=1e-5)


def test_gs_is_seeded():
    model = Transformer(small_cfg(), seed=2)
    assert M.gradient_symmetricity(model, seed=7) == M.gradient_symmetricity(model, seed=7)
    assert M.gradient_symmetricity(model, seed=7) != M.gradient_symmetricity(model, seed=8)


# ---- distance irrelevance ----------------------------------------------------------------------
def correct_logit_table(values: torch.Tensor) -> torch.Tensor:
    """A table whose correct logit for (a, b) is values[a, b] + 10 and every other logit 0."""
    a, b = grid()
    table = torch.zeros(P, P, P, dtype=torch.float64)
    table.scatter_(-1, ((a + b) % P)[..., None], (values + 10)[..., None])
    return table


def test_di_of_a_logit_that_is_a_sum_of_s_and_d_parts():
    # M[s, d] = g(s) + h(d): std over s is std(g) for every d, total std sqrt(var g + var h).
    gen = torch.Generator().manual_seed(0)
    g, h = torch.randn(P, generator=gen, dtype=torch.float64), 2 * torch.randn(P, generator=gen, dtype=torch.float64)
    a, b = grid()
    table = correct_logit_table(g[(a + b) % P] + h[(a - b) % P])
    expected = g.std(correction=0) / (g.var(correction=0) + h.var(correction=0)).sqrt()
    assert M.distance_irrelevance(table) == pytest.approx(expected.item(), rel=1e-9)


def test_di_is_one_for_sum_only_and_zero_for_difference_only():
    a, b = grid()
    wave = torch.cos(2 * math.pi * 3 * torch.arange(P, dtype=torch.float64) / P)
    assert M.distance_irrelevance(correct_logit_table(wave[(a + b) % P])) == pytest.approx(1.0)
    assert M.distance_irrelevance(correct_logit_table(wave[(a - b) % P])) == pytest.approx(0.0, abs=1e-12)


def test_di_max_wrong_reads_the_largest_wrong_logit():
    a, b = grid()
    wave = torch.cos(2 * math.pi * 2 * torch.arange(P, dtype=torch.float64) / P)
    table = correct_logit_table(wave[(a + b) % P])  # correct logit depends on s only
    table.scatter_(-1, ((a + b + 1) % P)[..., None], (5 + wave[(a - b) % P])[..., None])  # best wrong: d only
    assert M.distance_irrelevance(table) == pytest.approx(1.0)
    assert M.distance_irrelevance(table, "max_wrong") == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(M.MetricError):
        M.distance_irrelevance(table, "largest")


def test_pizza_and_clock_templates_give_extreme_di():
    pizza = M.templates(P, 4)["pizza"] + 0.7 * M.templates(P, 9)["pizza"]
    assert M.distance_irrelevance(pizza) == pytest.approx(0.0, abs=1e-9)


# ---- circularity -------------------------------------------------------------------------------
def test_circularity_of_clean_circles_is_one_and_of_noise_is_low():
    t = torch.arange(P, dtype=torch.float64)
    waves = [torch.cos(2 * math.pi * 3 * t / P), torch.sin(2 * math.pi * 3 * t / P),
             torch.cos(2 * math.pi * 7 * t / P), torch.sin(2 * math.pi * 7 * t / P)]
    Q = torch.linalg.qr(torch.randn(16, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)).Q
    # two circles in orthogonal planes of a 16-dim embedding; within a plane any rotation is one wave
    W = torch.stack([4 * waves[0], 4 * waves[1], 2 * waves[2], 2 * waves[3]], 1) @ Q.T
    assert M.circularity(W, p=P) == pytest.approx(1.0, abs=1e-9)
    noise = torch.randn(P, 16, generator=torch.Generator().manual_seed(0))
    assert M.circularity(noise, p=P) < 0.6


def test_circularity_equals_the_dft_power_of_the_top_components():
    # sum_t v[t k mod p] e^{2 pi i t / p} is the DFT of v at frequency k^-1 (p prime): the max over
    # k is the max DFT power over all non-zero frequencies.
    W = torch.randn(P, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    X = W - W.mean(0)
    U = torch.linalg.svd(X, full_matrices=False).U[:, :4]
    power = (2 / P) * torch.fft.fft(U, dim=0)[1:].abs().square()
    assert M.circularity(W, p=P) == pytest.approx(power.amax(0).clamp(max=1).mean().item(), abs=1e-9)


def test_circularity_reads_the_first_p_rows_of_a_model_embedding():
    model = Transformer(small_cfg(eq_token=True), seed=0)
    assert M.circularity(model) == pytest.approx(M.circularity(model.W_E.detach()[:P], p=P))


# ---- logit templates ---------------------------------------------------------------------------
def brute_force_fve(table: torch.Tensor, freqs: list[int], name: str) -> float:
    z = table.double() - table.double().mean(-1, keepdim=True)
    T = torch.stack([M.templates(P, k)[name] for k in freqs])
    T = (T - T.mean(-1, keepdim=True)).reshape(len(freqs), -1)
    coef = torch.linalg.lstsq(T.T, z.reshape(-1, 1)).solution
    return 1 - ((z.reshape(-1, 1) - T.T @ coef).square().sum() / z.square().sum()).item()


@pytest.mark.parametrize("name", M.TEMPLATES)
def test_fast_template_fit_equals_least_squares_on_written_out_templates(name):
    gen = torch.Generator().manual_seed(0)
    table = (M.templates(P, 3)["pizza_exact"] + 0.5 * M.templates(P, 8)["clock"]
             + 0.8 * torch.randn(P, P, P, generator=gen, dtype=torch.float64))
    fits = M.template_fits(table, [3, 8])
    assert getattr(fits, name) == pytest.approx(brute_force_fve(table, [3, 8], name), abs=1e-9)


def test_templates_recognise_planted_clock_and_pizza():
    clock = M.templates(P, 5)["clock"] + 0.6 * M.templates(P, 9)["clock"]
    pizza = M.templates(P, 5)["pizza"] + 0.6 * M.templates(P, 9)["pizza"]
    fc, fp = M.template_fits(clock, [5, 9]), M.template_fits(pizza, [5, 9])
    assert fc.clock == pytest.approx(1.0) and fp.pizza == pytest.approx(1.0)
    # corr(|cos|-modulated wave, wave)^2 -> (2/pi)^2 / (1/2) = 8/pi^2 as p grows
    assert fc.pizza == pytest.approx(8 / math.pi**2, abs=0.01)
    assert fp.clock == pytest.approx(8 / math.pi**2, abs=0.01)
    assert [f.frequency for f in fp.per_frequency] == [5, 9]
    assert all(f.pizza_fve == pytest.approx(1.0) and f.clock_fve < 0.85 for f in fp.per_frequency)
    assert sum(f.logit_share for f in fp.per_frequency) == pytest.approx(1.0)


def test_per_frequency_fit_ignores_other_frequencies():
    table = M.templates(P, 5)["clock"] + 3 * M.templates(P, 9)["pizza"]
    f5, f9 = M.template_fits(table, [5, 9]).per_frequency
    assert f5.clock_fve == pytest.approx(1.0) and f5.pizza_fve < 0.85
    assert f9.pizza_fve == pytest.approx(1.0) and f9.clock_fve < 0.85
    assert f9.logit_share > f5.logit_share


def test_templates_without_key_frequencies_explain_nothing():
    fits = M.template_fits(torch.randn(P, P, P), [])
    assert (fits.clock, fits.pizza, fits.pizza_exact, fits.per_frequency) == (0.0, 0.0, 0.0, [])


def test_bad_table_shape_is_a_clear_error():
    with pytest.raises(M.MetricError, match=r"\[p, p, p\]"):
        M.accuracy(torch.zeros(5, 5))


# ---- circles: isolation of diff_vocab models, where a circle's output sits -------------------------
def test_isolating_a_frequency_cuts_the_a_and_b_embeddings_of_a_diff_vocab_model_alike():
    from interp import circles
    from interp.fourier import frequency_norms

    model = Transformer(small_cfg(eq_token=False, causal=False, diff_vocab=True), seed=4)
    iso = circles.isolated_model(model, frequency=5)
    for start in (0, P):  # a-tokens W_E[:p], b-tokens W_E[p:2p]: each keeps only frequency 5 and its mean
        X, Y = model.W_E[start:start + P].detach().double(), iso.W_E[start:start + P].detach().double()
        assert torch.allclose(Y.mean(0), X.mean(0), atol=1e-6)
        norms = frequency_norms(Y - Y.mean(0))
        assert norms[4] == pytest.approx(frequency_norms(X - X.mean(0))[4].item(), rel=1e-5)
        assert norms[torch.arange(len(norms)) != 4].max() < 1e-5
    assert torch.equal(iso.W_pos, model.W_pos) and torch.equal(iso.W_U, model.W_U)
    with pytest.raises(M.MetricError, match="isolate by frequency"):
        circles.isolated_model(model, (0, 1))


def test_output_spectrum_finds_the_frequency_the_logits_sit_at():
    from interp import circles

    a, b = grid()
    c = torch.arange(P)[None, None, :]
    table = torch.cos(2 * math.pi * 4 * (a[..., None] + b[..., None] - c) / P) + 0.1 * torch.cos(2 * math.pi * 9 * c / P)
    spectrum = circles.output_spectrum(table)
    assert spectrum.shape == (P // 2,) and spectrum.sum().item() == pytest.approx(1.0)
    assert int(spectrum.argmax()) + 1 == 4 and spectrum[3] > 0.99
    assert spectrum[8].item() == pytest.approx(0.01 / 1.01, rel=1e-6)  # energy 0.1^2 against 1 of the clock term
