"""Progress measures for grokking (Nanda et al. 2023, REFERENCES §1), for one model or a whole run.

All measures come from the last-position logits over the p^2 inputs [p_a, p_b, p_c] (one
forward pass, no hooks) and from the weights:
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
import torch.nn.functional as F
from einops import rearrange
from fancy_einsum import einsum
from torch import Tensor

from interp import checkpoints as ck
from interp import fourier
from interp.config import TrainConfig
from interp.data import all_pairs, all_tokens, labels_for, split
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
    i = torch.arange(1, n + 1, dtype=torch.float64)
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
    excluded_loss_per_freq: Tensor  # [n_keys]
    train_loss: float
    test_loss: float
    train_acc: float
    test_acc: float


@torch.no_grad()
def logit_measures(logits: Tensor, freqs: list[int], train_idx: Tensor, test_idx: Tensor) -> LogitMeasures:
    """Restricted / excluded / train / test loss from logits [p_a, p_b, p_c] (or [p*p, p_c]).

    train_idx / test_idx index the pairs a*p + b.
    """
    p = logits.shape[-1]
    L = rearrange(logits.double(), "... c -> (...) c")
    if L.shape[0] != p * p:
        raise ProgressError(f"logits must cover all p^2 = {p * p} inputs, got {L.shape[0]} rows")
    if not freqs:
        raise ProgressError("no key frequencies: restricted/excluded loss need at least one")
    labels = labels_for(all_pairs(p), p)
    U = rearrange(fourier.sum_directions(p, freqs), "k s a b -> k s (a b)")  # [n_keys, 2, p*p]
    coef = einsum("k s r, r c -> k s c", U, L)  # projection of each output's (a, b)-map
    restricted = einsum("k s c, k s r -> r c", coef, U) + L.mean(0)
    proj_train = einsum("k s c, k s r -> k r c", coef, U[:, :, train_idx])  # [n_keys, n_train, p]
    y_train, y_test = labels[train_idx], labels[test_idx]
    L_train, L_test = L[train_idx], L[test_idx]
    return LogitMeasures(
        restricted_loss=_xent(restricted, labels).item(),
        excluded_loss=_xent(L_train - proj_train.sum(0), y_train).item(),
        excluded_loss_per_freq=_xent(L_train - proj_train, y_train),
        train_loss=_xent(L_train, y_train).item(),
        test_loss=_xent(L_test, y_test).item(),
        train_acc=(L_train.argmax(-1) == y_train).double().mean().item(),
        test_acc=(L_test.argmax(-1) == y_test).double().mean().item(),
    )


def weight_measures(state: dict[str, Tensor], p: int) -> dict[str, float]:
    """Gini of the Fourier component norms of W_E[:p] and of W_L, and the sum of squared weights."""
    W_E = state["embed.W_E"][:p].double()
    n_layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    W_L = state[f"blocks.{n_layers - 1}.mlp.W_out"].double() @ state["unembed.W_U"].double()  # [d_mlp, p]
    return {
        "gini_W_E": gini(fourier.component_norms(W_E)).item(),
        "gini_W_L": gini(fourier.component_norms(W_L.T)).item(),
        "sum_sq_weights": sum(v.double().square().sum().item() for v in state.values() if v.is_floating_point()),
    }


@torch.no_grad()
def all_logits(model, chunk: int = 4096) -> Tensor:
    """Last-position logits over all p^2 inputs [p*p, p], in chunks: ~1.5x faster on a CPU than one
    p^2 batch, whose activations overflow the cache."""
    tokens = all_tokens(model.cfg)
    return torch.cat([model.last_logits(tokens[i : i + chunk]) for i in range(0, len(tokens), chunk)])


def _state(model) -> dict[str, Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.endswith((".mask", ".IGNORE"))}


def resolve_split(p: int, train_config: TrainConfig | None, train_frac: float | None,
                  data_seed: int | None, source: str) -> tuple[Tensor, Tensor]:
    """(train_idx, test_idx) from explicit values, else from the run's TrainConfig."""
    if train_frac is None or data_seed is None:
        if train_config is None:
            raise ProgressError(f"{source}: no training config to take the train/test split from; "
                                "pass train_frac= and data_seed=")
        train_frac = train_config.train_frac if train_frac is None else train_frac
        data_seed = train_config.data_seed if data_seed is None else data_seed
    return split(p, train_frac, data_seed)


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
    cfg = model.cfg
    info = getattr(model, "checkpoint_info", None)
    train_idx, test_idx = resolve_split(cfg.p, getattr(info, "train_config", None), train_frac, data_seed, "model")
    freqs = fourier.key_frequencies(model) if freqs is None else freqs
    if not freqs:
        raise ProgressError("the model has no clear key frequencies (see fourier.key_frequencies); pass freqs=")
    lm = logit_measures(all_logits(model), freqs, train_idx, test_idx)
    return Measures(key_freqs=list(freqs), **lm.__dict__, **weight_measures(_state(model), cfg.p))


# ---- a whole run ---------------------------------------------------------------------------------
@dataclass
class Phases:
    """Steps where each phase ends (None: not reached within the run); see `detect_phases`."""

    memorisation_end: int | None
    circuit_formation_end: int | None
    cleanup_end: int | None


@dataclass
class Progress:
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


@torch.no_grad()
def run_progress(run_dir: str | Path, freqs: list[int] | None = None, every: int = 1,
                 train_frac: float | None = None, data_seed: int | None = None, **phase_kw) -> Progress:
    """Progress measures over every `every`-th snapshot of a run (the last one always included).

    Key frequencies default to those of the final snapshot's embedding. The train/test split is
    the run's own (snapshot train_config, else run.json) unless train_frac/data_seed are given.
    """
    run_dir = Path(run_dir)
    snaps = ck.list_snapshots(run_dir)
    if not snaps:
        raise ProgressError(f"{run_dir}: no snapshots ({ck.SNAPSHOTS}/step_*.safetensors) to measure")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ProgressError(f"every must be a positive integer, got {every!r}")
    snaps = snaps[::every] if (len(snaps) - 1) % every == 0 else snaps[::every] + [snaps[-1]]
    last = ck.read_checkpoint(snaps[-1][1])
    cfg = last.model_config
    model = ck.model_from_state(cfg, last.state_dict, str(snaps[-1][1]))
    if freqs is None:
        freqs = fourier.key_frequencies(model)
        if not freqs:
            raise ProgressError(f"{snaps[-1][1]}: the final model has no clear key frequencies; pass freqs=")
    train_idx, test_idx = resolve_split(cfg.p, last.train_config or _run_train_config(run_dir), train_frac,
                                        data_seed, str(run_dir))
    rows = []
    for step, path in snaps:
        c = last if path == snaps[-1][1] else ck.read_checkpoint(path)
        if c.model_config != cfg:
            raise ProgressError(f"{path}: model config differs from the final snapshot's")
        model.load_state_dict({k: v.float() for k, v in c.state_dict.items()})
        lm = logit_measures(all_logits(model), freqs, train_idx, test_idx)
        rows.append({"step": step, **lm.__dict__, **weight_measures(c.state_dict, cfg.p)})
    col = lambda name: torch.tensor([r[name] for r in rows], dtype=torch.float64)  # noqa: E731
    out = Progress(
        steps=torch.tensor([r["step"] for r in rows]),
        key_freqs=list(freqs),
        excluded_loss_per_freq=torch.stack([r["excluded_loss_per_freq"] for r in rows]),
        **{name: col(name) for name in MEASURES},
    )
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
