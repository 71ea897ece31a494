"""Progress measures for grokking (Nanda et al. 2023, REFERENCES §1), for one model or a whole run.

All measures come from the last-position logits over the p^2 inputs [p_a, p_b, p_c] and from
the weights. They are computed for a stack of models at once (`stacked_measures`: a run's
snapshots, `interp.batched.all_logits` for the logits); one model is a stack of one (`measure`).
- restricted loss: the logits projected onto cos(w_k(a+b)), sin(w_k(a+b)) (the unit maps
  `fourier.sum_directions`) of the key frequencies, plus the per-output mean over (a, b) that the
  projection removes; cross-entropy over all p^2 inputs;
- excluded loss: the logits minus those projections (all key frequencies together, and one
  frequency at a time); cross-entropy over the TRAIN inputs;
- Gini coefficient (Hurley & Rickard) of the norms of the p Fourier components of W_E[:p]
  (over tokens) and of W_L = W_out @ W_U (over the output c);
- total sum of squared weights; train and test loss / accuracy on the run's own split.
Key frequencies come from the final model, as in the paper.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from fancy_einsum import einsum
from torch import Tensor

from interp.display import HTMLRepr, tqdm
from interp import batched
from interp import checkpoints as ck
from interp import fourier, tasks
from interp.config import ModelConfig, TrainConfig
from interp.data import all_pairs, labels_for, split
from interp.device import analysis_device
from interp.errors import InterpError

MEASURES = ("train_loss", "test_loss", "train_acc", "test_acc", "restricted_loss", "excluded_loss",
            "gini_W_E", "gini_W_L", "sum_sq_weights")


class ProgressError(InterpError, ValueError):
    """Progress measures cannot be computed as asked (no snapshots, unknown split, ...)."""


def gini(x: Tensor) -> Tensor:
    """Gini coefficient (Hurley & Rickard 2009) of non-negative x [..., n] -> [...].

    Sort ascending c_(1) <= ... <= c_(n): G = 1 - 2 sum_i c_(i)/|c|_1 * (n - i + 1/2)/n.
    0 for a constant vector, 1 - 1/n for a single non-zero entry; all-zero input gives 0.
    """
    c = x.double().sort(dim=-1).values
    n = c.shape[-1]
    i = torch.arange(1, n + 1, dtype=torch.float64, device=c.device)
    l1 = c.sum(-1, keepdim=True)
    g = 1 - 2 * ((c / l1.clamp_min(1e-300)) * (n - i + 0.5) / n).sum(-1)
    return torch.where(l1.squeeze(-1) > 0, g, 0.0)


def _xent(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy in float64 of logits [..., n, p] with labels [n] -> [...]."""
    logp = logits.double().log_softmax(-1)
    return -logp.gather(-1, labels.expand(*logp.shape[:-1]).unsqueeze(-1)).squeeze(-1).mean(-1)


@dataclass
class LogitMeasures:
    restricted_loss: float
    excluded_loss: float
    excluded_loss_per_freq: Tensor  # [n_keys], on the CPU
    train_loss: float
    test_loss: float
    train_acc: float
    test_acc: float


def _by_sum(p: int, device: torch.device) -> Tensor:
    """[p*p] pair indices in (s, a) order: entry s*p + a is the pair (a, b = s - a mod p), whose label is s."""
    r = torch.arange(p, device=device)
    s, a = r[:, None], r[None, :]
    return (a * p + (s - a) % p).flatten()


@torch.no_grad()
def stacked_logit_measures(logits: Tensor, freqs: list[int], train_idx: Tensor, test_idx: Tensor) -> dict[str, Tensor]:
    """The logit measures of S models at once: logits [S, p*p, p] (rows a*p + b) -> {name: [S]}
    (`excluded_loss_per_freq`: [S, n_keys]), float64 on the logits' device. train_idx / test_idx index
    the pairs a*p + b (on any device).

    The key directions cos/sin(w_k(a + b)) depend on (a, b) only through s = a + b mod p, and so do
    the projections: each is a table P[s, c]. With the pairs grouped by s (whose label is s), the
    cross-entropy of a row r with the projection taken away is
        log sum_c exp(d_c) = log1p(sum_{c != s} exp(L[r, c] - L[r, s]) * exp(P[s, s] - P[s, c])),
    one exp of the logits shared by all projections and a matrix product with a table per s; the
    label's own term, exactly 1, is left out and added by log1p, so a loss of 1e-9 keeps its digits
    (log of a sum minus the label's logit would cancel them). The work runs in the logits' precision
    (float32 from `batched.all_logits`: half the memory traffic of float64, twice the exps per
    instruction); sums whose terms matter are float64: the sum over a behind the projections and the
    means over pairs. A row whose sum might have lost a term that matters to under- or overflow (its
    terms span more than the precision's range: logits far apart, or non-finite) is recomputed
    directly in float64. float32 logits give their float64 values to ~1e-6 relative (tests).
    """
    S, n, p = logits.shape
    if n != p * p:
        raise ProgressError(f"logits must cover all p^2 = {p * p} inputs, got {n} rows")
    if not freqs:
        raise ProgressError("no key frequencies: restricted/excluded loss need at least one")
    dev, dt, fi = logits.device, logits.dtype, torch.finfo(logits.dtype)
    train_idx, test_idx, order = train_idx.to(dev), test_idx.to(dev), _by_sum(p, dev)
    L = logits.index_select(1, order).view(S, p, p, p)  # [S, s, a, c] (index_select: ~5x faster than [:, order])
    # Blocks of a few s at a time (~1 MB): the passes over each block run in cache.
    blocks = [slice(i, i + max(1, (1 << 18) // (S * p * p))) for i in range(0, p, max(1, (1 << 18) // (S * p * p)))]
    f = fourier.sum_directions(p, freqs, dev)[:, :, 0]  # [n_keys, 2, s]: the unit maps at a = 0, b = s
    by_s = torch.cat([L[:, k].sum(2).double() for k in blocks], 1)  # [S, s, c]: sum over a
    coef = einsum("k t s, batch s c -> batch k t c", f, by_s)  # projection of each output's (a, b)-map
    P = einsum("k t s, batch k t c -> batch k s c", f, coef)  # [S, n_keys, s, c]
    restricted = P.sum(1) + by_s.sum(1)[:, None] / (p * p)  # [S, s, c]: one row per s (each stands for p pairs)
    # projections taken away: none (the logits), each key alone, all keys together -> [S, J, s, c]
    P = torch.cat([torch.zeros_like(P[:, :1]), P, P.sum(1, keepdim=True)], 1)
    E = (P.diagonal(dim1=2, dim2=3)[..., None] - P).exp_()  # [S, J, s, c]: exp(P[s, s] - P[s, c])
    e_max = E.amax(-1).clamp_min(1).transpose(1, 2)[:, :, None]  # [S, s, 1, J]
    E = E.to(dt).permute(0, 2, 3, 1)  # [S, s, c, J]
    label = L.diagonal(dim1=1, dim2=3)  # [S, a, s]: L[r, s], a view
    L_s = label.transpose(1, 2).clone()  # [S, s, a]
    label.fill_(-math.inf)  # L keeps the other outputs only: the label's own term is the 1 in log1p
    top, rest = L.new_empty(S, p, p), L.new_empty(S, p, p, P.shape[1])
    shift = L.new_zeros(S, p, 1)
    for k in blocks:
        top[:, k] = L[:, k].amax(-1)  # [S, s, a]: max over c != s
        # exp(L[r, c]) * exp(P[s, s] - P[s, c]) summed over c: exp(L) as it is where it cannot overflow (one pass
        # fewer); a block whose logits reach the exp's limit is shifted by its (model, s) maximum first.
        if top[:, k].max() < math.log(fi.max) - 8:
            X = L[:, k].exp()
        else:
            shift[:, k] = top[:, k].amax(-1, keepdim=True).clamp_min(0)
            X = (L[:, k] - shift[:, k, :, None]).exp_()
        torch.matmul(X, E[:, k], out=rest[:, k])  # [S, s, a, J]: sum over c != s of exp(L - shift) * E
    # rest * exp(shift - L_s) is the sum over c != s of exp(L[r, c] - L[r, s]) * E. A term is lost when a factor
    # underflows (each lost one below tiny * that scale * max(1, e_max, exp(top - shift))): a row is kept if all
    # of them together are below eps of its sum, else (and if NaN or inf: logits non-finite or far apart)
    # recomputed directly in float64.
    scale = (shift.double() - L_s.double()).exp_()  # [S, s, a]
    room = torch.maximum(e_max, (top.double() - shift.double()).exp()[..., None])  # >= 1 (e_max is)
    rest = rest.double().mul_(scale[..., None])
    redo = ~(rest >= (p - 1) * fi.tiny / fi.eps * scale[..., None] * room) | rest.isinf()
    nll = rest.log1p_()
    if redo.any():
        m, s, a, j = redo.nonzero(as_tuple=True)
        d = logits[m, order[s * p + a]].double() - P[m, j, s]  # [rows, c]
        d = d - d.gather(1, s[:, None])
        d[torch.arange(len(s), device=dev), s] = -math.inf
        big = d.amax(1).clamp_min(0)  # log sum exp over c != s plus the label's 1, without overflow
        nll[redo] = big + torch.log1p(torch.expm1(-big) + (d - big[:, None]).exp().sum(1))
    pairs = torch.zeros(2, p * p, dtype=torch.float64, device=dev)
    pairs[0, train_idx], pairs[1, test_idx] = 1 / len(train_idx), 1 / len(test_idx)
    mean = einsum("batch r j, split r -> batch split j", nll.flatten(1, 2), pairs[:, order])  # [S, train/test, J]
    # Accuracy as argmax: the label is the only maximum (top < L_s); ties and NaNs (top - L_s 0 or NaN) by argmax.
    top = top - L_s
    correct = (top < 0).flatten(1).double()  # [S, p*p] in (s, a) order
    unsure = (top == 0) | top.isnan()
    if unsure.any():
        m, s, a = unsure.nonzero(as_tuple=True)
        correct.view(S, p, p)[m, s, a] = (logits[m, order[s * p + a]].argmax(-1) == s).double()
    correct = torch.empty_like(correct).index_copy_(1, order, correct)  # back to rows a*p + b
    return dict(
        restricted_loss=_xent(restricted, torch.arange(p, device=dev)),
        excluded_loss=mean[:, 0, -1],
        excluded_loss_per_freq=mean[:, 0, 1:-1],
        train_loss=mean[:, 0, 0],
        test_loss=mean[:, 1, 0],
        train_acc=correct[:, train_idx].mean(-1),
        test_acc=correct[:, test_idx].mean(-1),
    )


def _first_model(m: dict[str, Tensor]) -> dict:
    """Model 0's measures of a stack as Python floats (`excluded_loss_per_freq`: a CPU tensor [n_keys])."""
    return {k: v[0].cpu() if k == "excluded_loss_per_freq" else v[0].item() for k, v in m.items()}


def logit_measures(logits: Tensor, freqs: list[int], train_idx: Tensor, test_idx: Tensor) -> LogitMeasures:
    """Restricted / excluded / train / test loss of one model's logits [p_a, p_b, p_c] (or [p*p, p_c])."""
    p = logits.shape[-1]
    m = stacked_logit_measures(logits.reshape(1, -1, p), freqs, train_idx, test_idx)
    return LogitMeasures(**_first_model(m))


def stacked_weight_measures(params: dict[str, Tensor], p: int) -> dict[str, Tensor]:
    """Gini of the Fourier component norms of W_E[:p] and of W_L (NaN without an MLP), and the sum of squared
    weights, of stacked models: params {name: [S, ...]} (`batched.stack_states`) -> {name: [S]}."""
    W_E = params["embed.W_E"][:, :p].double()
    n_layers = 1 + max(int(k.split(".")[1]) for k in params if k.startswith("blocks."))
    W_out = params.get(f"blocks.{n_layers - 1}.mlp.W_out")
    if W_out is None:  # attention-only: no neurons, so no W_L; NaN (a gap in the plot), the other measures stand
        gini_W_L = torch.full((W_E.shape[0],), float("nan"), dtype=torch.float64, device=W_E.device)
    else:
        W_L = W_out.double() @ params["unembed.W_U"].double()  # [S, d_mlp, p]
        gini_W_L = gini(fourier.component_norms(W_L.transpose(1, 2)))
    return {
        "gini_W_E": gini(fourier.component_norms(W_E)),
        "gini_W_L": gini_W_L,
        "sum_sq_weights": sum(v.double().square().flatten(1).sum(1) for v in params.values() if v.is_floating_point()),
    }


def weight_measures(state: dict[str, Tensor], p: int) -> dict[str, float]:
    """`stacked_weight_measures` of one model's state dict."""
    return {k: v.item() for k, v in stacked_weight_measures(batched.stack_states([state]), p).items()}


@torch.no_grad()
def stacked_measures(cfg: ModelConfig, params: dict[str, Tensor], freqs: list[int], train_idx: Tensor,
                     test_idx: Tensor) -> dict[str, Tensor]:
    """Every progress measure of stacked models of one config: params {name: [S, ...]} -> {name: [S]}.
    The logits are computed `batched.batch_size(cfg)` models at a time."""
    S, bs = params["embed.W_E"].shape[0], batched.batch_size(cfg)
    parts = []
    for i in range(0, S, bs):
        chunk = {k: v[i : i + bs] for k, v in params.items()}
        parts.append(stacked_logit_measures(batched.all_logits(cfg, chunk), freqs, train_idx, test_idx))
    out = {k: torch.cat([m[k] for m in parts]) for k in parts[0]}
    return {**out, **stacked_weight_measures(params, cfg.p)}


def resolve_split(p: int, train_config: TrainConfig | None, train_frac: float | None,
                  data_seed: int | None, source: str, task: str = "add") -> tuple[Tensor, Tensor]:
    """(train_idx, test_idx) of the task's valid pairs (indices a*p + b) from explicit values, else from
    the run's TrainConfig."""
    if train_frac is None or data_seed is None:
        if train_config is None:
            raise ProgressError(f"{source}: no training config to take the train/test split from; "
                                "pass train_frac= and data_seed=")
        train_frac = train_config.train_frac if train_frac is None else train_frac
        data_seed = train_config.data_seed if data_seed is None else data_seed
    return split(p, train_frac, data_seed, task)


def _require_group(cfg: ModelConfig, source: str) -> None:
    """The restricted and excluded losses read a + b structure: a task without a group has no measures."""
    if not tasks.has_group(cfg.task):
        raise ProgressError(f"{source}: progress measures need a group task (add, sub, mul, div); "
                            f"task {cfg.task!r} ({tasks.FORMULAS[cfg.task]}) has none")


def group_split(cfg: ModelConfig, train_config: TrainConfig | None, train_frac: float | None,
                data_seed: int | None, source: str) -> tuple[Tensor, Tensor]:
    """`resolve_split` of a model's task, in its group view's pair indices (`tasks.view_index`). The measures
    of a mul/div model are those of its view: accuracies as training logged them, losses over the p - 1
    classes of the group (class 0, never an answer, is not one of them)."""
    _require_group(cfg, source)
    task = cfg.task
    split_ = resolve_split(cfg.p, train_config, train_frac, data_seed, source, task)
    return tuple(tasks.view_index(cfg, idx) for idx in split_)


@dataclass
class Measures(LogitMeasures):
    """All progress measures of one model: the logit measures plus the weight measures."""

    key_freqs: list[int]
    gini_W_E: float
    gini_W_L: float
    sum_sq_weights: float


@torch.no_grad()
def measure(model, freqs: list[int] | None = None, train_frac: float | None = None,
            data_seed: int | None = None) -> Measures:
    """Progress measures of one model. The split comes from `train_frac`/`data_seed`, else from the
    checkpoint the model was loaded from (`interp.load`); key frequencies default to the model's own."""
    info = model.checkpoint_info
    train_idx, test_idx = group_split(model.cfg, getattr(info, "train_config", None), train_frac, data_seed, "model")
    model = tasks.group_view(model)  # sub/mul/div: measured as the addition they are in group coordinates
    cfg = model.cfg
    freqs = fourier.key_frequencies(model) if freqs is None else freqs
    if not freqs:
        raise ProgressError("the model has no clear key frequencies (see fourier.key_frequencies); pass freqs=")
    m = stacked_measures(cfg, batched.stack_states([model.state_dict()]), freqs, train_idx, test_idx)
    return Measures(key_freqs=list(freqs), **_first_model(m))


# ---- a whole run ---------------------------------------------------------------------------------
@dataclass
class Phases:
    """Steps where each phase ends (None: not reached within the run); see `detect_phases`."""

    memorisation_end: int | None
    circuit_formation_end: int | None
    cleanup_end: int | None


@dataclass
class Progress(HTMLRepr):
    """Progress measures over a run's snapshots; every array is [n_snapshots] unless noted."""

    steps: Tensor  # [S] long
    key_freqs: list[int]
    train_loss: Tensor
    test_loss: Tensor
    train_acc: Tensor
    test_acc: Tensor
    restricted_loss: Tensor
    excluded_loss: Tensor
    excluded_loss_per_freq: Tensor  # [S, n_keys]
    gini_W_E: Tensor
    gini_W_L: Tensor
    sum_sq_weights: Tensor
    phases: Phases = field(default_factory=lambda: Phases(None, None, None))


def _run_train_config(run_dir: Path) -> TrainConfig | None:
    try:
        return TrainConfig.from_dict(json.loads((run_dir / ck.RUN_JSON).read_text())["train_config"])
    except (OSError, KeyError, ValueError, InterpError):
        return None


def _shapes(state: dict[str, Tensor]) -> dict[str, tuple]:
    return {k: (tuple(v.shape), v.is_floating_point()) for k, v in state.items() if not k.endswith(batched.BUFFERS)}


@torch.no_grad()
def run_progress(run_dir: str | Path, freqs: list[int] | None = None, every: int = 1,
                 train_frac: float | None = None, data_seed: int | None = None, progress: bool = False,
                 device: str | torch.device | None = None, **phase_kw) -> Progress:
    """Progress measures over every `every`-th snapshot of a run (the last one always included).

    Key frequencies default to those of the final snapshot's embedding. The train/test split is
    the run's own (snapshot train_config, else run.json) unless train_frac/data_seed are given.
    Snapshots are measured `batched.batch_size` at a time, stacked (`stacked_measures`), on `device`
    (cpu, cuda, mps; default the CPU); the result's tensors are on the CPU.
    """
    dev = analysis_device(device)
    run_dir = Path(run_dir)
    snaps = ck.list_snapshots(run_dir)
    if not snaps:
        raise ProgressError(f"{run_dir}: no snapshots ({ck.SNAPSHOTS}/step_*.safetensors) to measure")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ProgressError(f"every must be a positive integer, got {every!r}")
    snaps = snaps[::every] if (len(snaps) - 1) % every == 0 else snaps[::every] + [snaps[-1]]
    last = ck.read_checkpoint(snaps[-1][1])
    run_cfg = last.model_config
    _require_group(run_cfg, str(run_dir))  # before the snapshots are read
    with torch.device("cpu"):  # beside the snapshot's CPU tensors, whatever torch's default device
        model = ck.model_from_state(run_cfg, last.state_dict, str(snaps[-1][1]))  # checks names, shapes, values
        model = tasks.group_view(model)  # sub/mul/div: every snapshot is measured in group coordinates
    cfg = model.cfg
    if freqs is None:
        freqs = fourier.key_frequencies(model)
        if not freqs:
            raise ProgressError(f"{snaps[-1][1]}: the final model has no clear key frequencies; pass freqs=")
    train_idx, test_idx = group_split(run_cfg, last.train_config or _run_train_config(run_dir), train_frac,
                                      data_seed, str(run_dir))
    shapes = _shapes(last.state_dict)
    bs, parts = batched.batch_size(cfg), []
    with tqdm(total=len(snaps), desc="progress measures", unit="snapshot", disable=not progress) as bar:
        for i in range(0, len(snaps), bs):
            states = []
            for step, path in snaps[i : i + bs]:
                c = last if path == snaps[-1][1] else ck.read_checkpoint(path)
                if c.model_config != run_cfg:
                    raise ProgressError(f"{path}: model config differs from the final snapshot's")
                if _shapes(c.state_dict) != shapes:
                    raise ProgressError(f"{path}: weights differ from the final snapshot's in names or shapes")
                states.append(c.state_dict if run_cfg.task == "add" else tasks.group_state(run_cfg, c.state_dict)[1])
            params = {k: v.to(dev) for k, v in batched.stack_states(states).items()}
            parts.append(stacked_measures(cfg, params, freqs, train_idx, test_idx))
            bar.update(len(states))
    cols = {k: torch.cat([m[k] for m in parts]).cpu() for k in parts[0]}
    out = Progress(steps=torch.tensor([s for s, _ in snaps], device="cpu"), key_freqs=list(freqs), **cols)
    out.phases = detect_phases(out, **phase_kw)
    return out


def _first(mask: Tensor, start: int = 0) -> int | None:
    hits = mask[start:].nonzero()
    return start + int(hits[0]) if len(hits) else None


def _settled(x: Tensor, start: int, tol: float) -> int | None:
    """First index i >= start after which x stays within tol * (its range over [start:]) of its
    final value; None if that happens only at the last point (still moving at the end)."""
    y = x[start:]
    span = (y.max() - y.min()).item()
    near = (y - y[-1]).abs() <= tol * span
    # the last index where x is NOT near its final value, plus one
    far = (~near).nonzero()
    i = start + (int(far[-1]) + 1 if len(far) else 0)
    return i if i < len(x) - 1 else None


def detect_phases(prog: Progress, acc: float = 0.99, onset: float = 0.1, min_fall: float = 10.0,
                  tol: float = 0.1) -> Phases:
    """The three phases of Nanda et al., found from the measures (not from fixed epochs):

    - memorisation ends at the first step with train accuracy >= `acc`;
    - circuit formation ends (clean-up starts) when the test loss starts its fall: the first
      step after memorisation where log(test loss) has come down by `onset` of its total fall,
      from its post-memorisation peak to its final value; only a real fall counts (the test loss
      ends at least `min_fall` times below its peak);
    - clean-up ends once both the total sum of squared weights and log(restricted loss) have
      settled: from that step on they stay within `tol` of their final value, as a fraction of
      their range since the start of clean-up. None when a phase is not reached within the run
      (e.g. the weights are still shrinking at the last snapshot).
    """
    steps = prog.steps.tolist()
    i_mem = _first(prog.train_acc >= acc)
    if i_mem is None:
        return Phases(None, None, None)
    log_test = prog.test_loss.clamp_min(1e-300).log()
    i_peak = i_mem + int(log_test[i_mem:].argmax())
    fall = (log_test[i_peak] - log_test[-1]).item()
    i_circ = _first(log_test <= log_test[i_peak] - onset * fall, i_peak) if fall >= math.log(min_fall) else None
    if i_circ is None:
        return Phases(steps[i_mem], None, None)
    settle = [_settled(prog.sum_sq_weights, i_circ, tol),
              _settled(prog.restricted_loss.clamp_min(1e-300).log(), i_circ, tol)]
    i_clean = None if None in settle else max(settle)
    return Phases(steps[i_mem], steps[i_circ], None if i_clean is None else steps[i_clean])
