"""Clock-vs-pizza metrics of Zhong et al. 2023 (REFERENCES §2), on all p^2 inputs.

Most metrics read the logit table `logit_table(model)` [p_a, p_b, p_c]: the last-position
logits of input (a, b), computed once and shared. Gradient symmetricity needs the model (it
back-propagates), circularity only the embedding.

    table = logit_table(model)                        # [p, p, p]
    gradient_symmetricity(model)                      # pizza ~ 1, clock clearly lower
    distance_irrelevance(table)                       # clock ~ 1, pizza clearly lower
    circularity(model)                                # 1 = every top PC is one clean circle
    template_fits(table, key_frequencies(model))      # clock / pizza logit templates
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from interp import tasks
from interp.data import all_pairs, all_tokens, tokens_for
from interp.device import device_of
from interp.errors import InterpError


class MetricError(InterpError, ValueError):
    """A metric asked of input it is not defined on; the message says which and why."""


@torch.no_grad()
def logit_table(model) -> Tensor:
    """[p_a, p_b, p_c]: logit of answer c for input (a, b), at the last position (on the model's device)."""
    p = model.cfg.p
    return model.last_logits(all_tokens(model.cfg, device_of(model))).reshape(p, p, p)


def _check_table(table: Tensor) -> int:
    if not isinstance(table, Tensor) or table.dim() != 3 or len(set(table.shape)) != 1:
        raise MetricError(f"need a logit table [p, p, p] over (a, b, c), got {getattr(table, 'shape', type(table).__name__)}")
    return table.shape[0]


def accuracy(table: Tensor, task: str = "add") -> float:
    """Fraction of all p^2 pairs whose top logit is (a + b) mod p; for another `task` (interp.tasks),
    of its valid pairs whose top logit is its answer."""
    p = _check_table(table)
    r = torch.arange(p, device=table.device)
    if task == "add":
        return (table.argmax(-1) == (r[:, None] + r[None, :]) % p).double().mean().item()
    correct = table.argmax(-1).flatten() == tasks.labels(task, all_pairs(p, table.device), p)
    valid = tasks.valid_pairs(task, p)
    return correct[valid.to(table.device) if valid is not None else slice(None)].double().mean().item()


# ---- gradient symmetricity -------------------------------------------------------------------------
def gradient_symmetricity(model, n_triples: int = 100, seed: int = 0) -> float:
    """Mean cos(g_a, g_b) over `n_triples` random (a, b, c) in Z_p^3 (seeded).

    g_a, g_b: gradient of the logit of c at the last position w.r.t. the token embeddings of a
    and b, i.e. the output of `hook_embed` (before W_pos is added). The triples go through in one
    batch: inputs do not interact, so d(sum of logits)/d(embedding of input i) = d(logit_i)/d(...).
    """
    cfg = model.cfg
    # drawn on the CPU (the same triples on every device), then moved to the model
    abc = torch.randint(0, cfg.p, (n_triples, 3), generator=torch.Generator().manual_seed(seed), device="cpu")
    abc = abc.to(device_of(model))
    tokens = tokens_for(abc[:, :2], cfg)  # [n, n_ctx]
    leaf = {}

    def make_leaf(x, hook):  # x: [n, pos, d_model]; a fresh leaf so autograd stops here
        leaf["embed"] = x.detach().requires_grad_(True)
        return leaf["embed"]

    with torch.enable_grad(), model.hooks(fwd_hooks=[("hook_embed", make_leaf)]):
        logits = model.last_logits(tokens)  # [n, p]
        picked = logits.gather(1, abc[:, 2:]).sum()
        (grad,) = torch.autograd.grad(picked, leaf["embed"])  # [n, pos, d_model]
    return F.cosine_similarity(grad[:, 0], grad[:, 1], dim=-1).mean().item()


# ---- distance irrelevance --------------------------------------------------------------------------
def _by_difference(values: Tensor) -> Tensor:
    """values [p_a, p_b] -> [p_d, p]: row d holds the p pairs with (a - b) mod p = d, ordered by b.

    For odd p the pairs of row d have p distinct sums s = (a + b) mod p, so row d is M[:, d] of the
    paper's (s, d) table up to the order of s, which the std over s does not see.
    """
    p = values.shape[0]
    r = torch.arange(p, device=values.device)
    b = r[None, :]
    a = (b + r[:, None]) % p
    return values[a, b.expand(p, p)]


def distance_irrelevance(table: Tensor, variant: str = "correct") -> float:
    """mean over d of std over s of M[s, d], over std of all of M (population std, as numpy).

    M[s, d]: the logit of the correct answer (variant "correct", the paper's definition) or the
    largest wrong logit (variant "max_wrong", what their training script logs) of the pair with
    (a + b) mod p = s, (a - b) mod p = d. Clock ~ 1 (the logit ignores a - b), pizza clearly lower.
    For even p only the cells with s = d mod 2 exist, two pairs each: M is their mean there, and the
    stds run over those p/2 cells per d.
    A table whose M is constant gets 1.0 (nothing depends on a - b) rather than 0/0.
    """
    p = _check_table(table)
    r = torch.arange(p, device=table.device)
    answer = ((r[:, None] + r[None, :]) % p)[..., None]  # [p, p, 1]
    t = table.double()
    if variant == "correct":
        values = t.gather(-1, answer)[..., 0]
    elif variant == "max_wrong":
        values = t.scatter(-1, answer, -math.inf).amax(-1)
    else:
        raise MetricError(f"distance_irrelevance variant must be 'correct' or 'max_wrong', got {variant!r}")
    M = _by_difference(values)  # [d, s]
    if p % 2 == 0:
        # Even p (the group view of mul/div: n = p - 1): a + b and a - b have the same parity, so only the
        # cells (s, d) with s = d mod 2 exist, each holding two pairs, b and b + p/2 of row d. M[s, d] is
        # their mean: p/2 cells per d (the odd-p path, one pair per cell, is unchanged).
        M = (M[:, : p // 2] + M[:, p // 2 :]) / 2  # [d, p/2]: cell s = 2b + d mod p
    total = M.std(correction=0)
    if total == 0:  # the logit is the same for every pair: it ignores a - b entirely
        return 1.0
    return (M.std(dim=1, correction=0).mean() / total).item()


# ---- circularity -----------------------------------------------------------------------------------
def circularity(model_or_W_E, p: int | None = None, n_components: int = 4) -> float:
    """Mean over the first `n_components` principal components v of the centred token
    embeddings W_E[:p] of  min(1, max_{k=1..p-1} (2/p) |sum_t v[t k mod p] e^{2 pi i t / p}|^2).

    Takes a model or an embedding [p, d_model] (or a taller W_E with `p=`: its first p rows).
    v is a component's scores over the p tokens, unit norm. A score of 1 means the tokens sit on
    that component as one cosine wave of some frequency: a clean circle.
    """
    if isinstance(model_or_W_E, Tensor):
        W, p = model_or_W_E, p or model_or_W_E.shape[0]
    else:
        W, p = model_or_W_E.W_E, p or model_or_W_E.cfg.p
    X = W[:p].detach().double()
    X = X - X.mean(0)
    U, S, _ = torch.linalg.svd(X, full_matrices=False)
    n = min(n_components, int((S > S[0] * 1e-9).sum()) if S.numel() and S[0] > 0 else 0)
    if n == 0:
        raise MetricError("circularity: the token embeddings are constant (no principal components)")
    v = U[:, :n]  # [t, n] unit-norm scores of the top components
    t, k = torch.arange(p, device=X.device), torch.arange(1, p, device=X.device)
    permuted = v[(t[None, :] * k[:, None]) % p]  # [k, t, n]: v[t k mod p]
    phase = torch.exp(2j * math.pi * t.double() / p)  # [t], complex128
    power = (2 / p) * torch.einsum("ktn,t->kn", permuted.to(phase.dtype), phase).abs().square()
    return power.amax(0).clamp(max=1.0).mean().item()


# ---- logit templates -------------------------------------------------------------------------------
TEMPLATES = ("clock", "pizza", "pizza_exact")


def templates(p: int, k: int, device: torch.device | str | None = None) -> dict[str, Tensor]:
    """The three logit templates of frequency k as [p_a, p_b, p_c] tables, w = 2 pi k / p:
    clock cos(w(a+b-c)); pizza |cos(w(a-b)/2)| cos(w(a+b-c)); and the exact pizza form
    |cos(wa - wc/2) + cos(wb - wc/2)| - |sin(wa - wc/2) + sin(wb - wc/2)|.

    Written out literally; `template_fits` uses the factored form of `_factored`."""
    w = 2 * math.pi * k / p
    r = torch.arange(p, dtype=torch.float64, device=device)
    a, b, c = r[:, None, None], r[None, :, None], r[None, None, :]
    clock = torch.cos(w * (a + b - c))
    xa, xb = w * a - w * c / 2, w * b - w * c / 2
    return {
        "clock": clock,
        "pizza": torch.cos(w * (a - b) / 2).abs() * clock,
        "pizza_exact": (torch.cos(xa) + torch.cos(xb)).abs() - (torch.sin(xa) + torch.sin(xb)).abs(),
    }


def _factored(p: int, k: int, name: str, device: torch.device) -> tuple[Tensor, Tensor]:
    """Template `name` of frequency k as A[a, b] * H[(a + b - c) mod p]: (A [p, p], H [p]).

    All three factor so: with theta = w(a+b-c), cos x + cos y = 2 cos((x+y)/2) cos((x-y)/2) (and
    likewise for sin) turn the exact pizza form into 2 |cos(w(a-b)/2)| (|cos(theta/2)| - |sin(theta/2)|);
    |cos|, |sin| of theta/2 = pi k (a+b-c) / p do not change when a+b-c moves by a multiple of p.
    """
    r = torch.arange(p, dtype=torch.float64, device=device)
    w = 2 * math.pi * k / p
    spread = torch.cos(w * (r[:, None] - r[None, :]) / 2).abs()  # |cos(w(a-b)/2)| [p, p]
    if name == "clock":
        return torch.ones(p, p, dtype=torch.float64, device=device), torch.cos(w * r)
    if name == "pizza":
        return spread, torch.cos(w * r)
    return 2 * spread, torch.cos(w * r / 2).abs() - torch.sin(w * r / 2).abs()


def _standardised(table: Tensor) -> Tensor:
    """Logits centred over c per input (softmax ignores that offset), then divided by their std."""
    z = table.double()
    z = z - z.mean(-1, keepdim=True)
    std = z.std()
    return z / std if std > 0 else z


def _by_sum_distance(z: Tensor) -> Tensor:
    """z [p_a, p_b, p_c] -> [p_a * p_b, p_u] with u = (a + b - c) mod p, so a template A[a,b] H[u]
    meets the logits through one matrix product over u."""
    p = z.shape[0]
    r = torch.arange(p, device=z.device)
    s = (r[:, None] + r[None, :]) % p
    return z.gather(-1, (s[..., None] - r) % p).reshape(p * p, p)


def _joint_fve(zu: Tensor, zz: Tensor, A: Tensor, H: Tensor) -> float:
    """FVE of least squares on the templates A[k] (x) H[k] jointly (A [K, p, p], H [K, p])."""
    H = H - H.mean(-1, keepdim=True)  # = centring each template over c
    inner = (A.flatten(1) * (zu @ H.T).T).sum(1)  # [K]: <template_k, z>
    gram = (A.flatten(1) @ A.flatten(1).T) * (H @ H.T)  # <template_k, template_j>
    # not lstsq: its default CPU driver (gelsy, MKL) returned other last bits for bit-equal inputs
    # from call to call (tests/test_devices.py); the pseudo-inverse of the symmetric Gram matrix does not
    beta = torch.linalg.pinv(gram, hermitian=True) @ inner
    return (inner @ beta / zz).item()


@dataclass
class FrequencyFit:
    """Template fits at one key frequency, within that frequency's part of the logits."""

    frequency: int
    logit_share: float  # fraction of the standardised logits' variance at output frequency k
    clock_fve: float  # in-band: fraction of the frequency-k part explained by the clock template
    pizza_fve: float  # in-band, pizza template (within the band the exact form is the same)


@dataclass
class TemplateFits:
    """Fractions of variance of the standardised logits explained by each template family.

    `clock`, `pizza`, `pizza_exact`: least squares on that template at every key frequency jointly,
    over all (a, b, c). For an exact pizza the clock template still explains 8/pi^2 = 0.81 of it
    (and vice versa): the evidence is which of the two is larger.
    """

    key_frequencies: list[int]
    clock: float
    pizza: float
    pizza_exact: float
    per_frequency: list[FrequencyFit] = field(default_factory=list)


def template_fits(table: Tensor, key_frequencies: list[int]) -> TemplateFits:
    """Fit the clock and pizza templates of the key frequencies to a logit table [p, p, p].

    The logits are centred over c per input and standardised; templates are centred the same
    way. Per frequency k the fit is in-band: against the logits' projection onto cos(w c), sin(w c)
    (the clock and pizza templates are pure frequency k in c).
    """
    p = _check_table(table)
    freqs = [int(k) for k in key_frequencies]
    z = _standardised(table)
    zz = z.square().sum()
    if not freqs or zz == 0:
        return TemplateFits(freqs, 0.0, 0.0, 0.0, [])
    zu = _by_sum_distance(z)  # [a*b, u]
    factors = {name: [torch.stack(f) for f in zip(*(_factored(p, k, name, z.device) for k in freqs))]
               for name in TEMPLATES}
    fits = {name: _joint_fve(zu, zz, A, H) for name, (A, H) in factors.items()}
    # In-band, per frequency. Clock and pizza share H = cos(w u); the band's energy is
    # (2/p) sum_ab |sum_u z e^{i w u}|^2 (rolling c by a + b does not change it).
    (A_clock, cos_wu), A_pizza = factors["clock"], factors["pizza"][0]
    u = torch.arange(p, dtype=torch.float64, device=z.device)
    sin_wu = torch.sin(2 * math.pi * torch.tensor(freqs, dtype=torch.float64, device=z.device)[:, None] * u / p)
    zc, zs = (zu @ cos_wu.T).T, (zu @ sin_wu.T).T  # [K, a*b]
    # 2/p: the (cos, sin) pair of frequency k has squared norm p/2 each; the Nyquist cos (k = p/2, even p)
    # has norm^2 p and no sin, so 1/p there
    scale = torch.tensor([1 / p if 2 * k == p else 2 / p for k in freqs], dtype=torch.float64, device=z.device)
    band = scale * (zc.square() + zs.square()).sum(1)  # [K]
    per_freq = []
    for i, k in enumerate(freqs):
        fve = {}
        for name, A in (("clock", A_clock[i].flatten()), ("pizza", A_pizza[i].flatten())):
            inner = A @ zc[i]
            norm = A.square().sum() * cos_wu[i].square().sum()
            fve[name] = (inner.square() / (band[i] * norm)).item() if band[i] > 0 else 0.0
        per_freq.append(FrequencyFit(k, (band[i] / zz).item(), fve["clock"], fve["pizza"]))
    return TemplateFits(freqs, fits["clock"], fits["pizza"], fits["pizza_exact"], per_freq)
