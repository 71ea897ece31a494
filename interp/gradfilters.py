"""Gradient filters (Grokfast, Lee et al. 2024; REFERENCES §5), applied between backward and AdamW.

Each treats every parameter element's gradient sequence as a signal and adds its slow part back in:
- "ema": mu_t = alpha * mu_{t-1} + (1 - alpha) * g_t with mu_1 = g_1; g_hat_t = g_t + lamb * mu_t.
- "ma":  g_hat_t = g_t + lamb * mean(g_{t-w+1}, ..., g_t) once w gradients exist; before that
  g_hat_t = g_t (no filtering while the window fills, as the paper's code does with its default
  warm-up: a mean of the first few gradients would weigh the noisy start w/k times too much).

Both are element-wise, so one filter over stacked parameters [n_models, ...] (interp.training's
Engine) equals one filter per model. Their state is a dict of tensors, saved in the resume state
under `prefix`; `axis` is where a stack's model index sits in those tensors (the MA buffer's first
axis is its window slot), which `stack`, `model` and `select` use to move state between a stack
and its models.
"""

from __future__ import annotations

import torch

from interp.config import TrainConfig


class GradFilter:
    """The filter state shared by both kinds: `state` (name -> tensor, model index on `axis`) and a
    count of the gradients seen (`seen`, saved as a 0-dim tensor under `prefix + "#seen"`)."""

    prefix = ""
    axis = 0
    counted = False  # whether `seen` is saved (the EMA needs only its state, and old resume files have none)

    def __init__(self, params: dict[str, torch.nn.Parameter], cfg: TrainConfig):
        self.params, self.cfg = params, cfg
        self.state: dict[str, torch.Tensor] = {}
        self.seen = 0

    def filter(self) -> None:  # pragma: no cover - each kind has its own
        raise NotImplementedError

    # ---- resume state ----------------------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        """The resume-state entries: the state by name, and the count once a gradient was seen."""
        out = {self.prefix + n: v for n, v in self.state.items()}
        if self.seen and self.counted:
            out[self.prefix + "#seen"] = torch.tensor(self.seen)
        return out

    def load(self, tensors: dict[str, torch.Tensor], device: torch.device) -> None:
        k = len(self.prefix)
        self.state = {key[k:]: v.to(device) for key, v in tensors.items()
                      if key.startswith(self.prefix) and not key.endswith("#seen")}
        seen = tensors.get(self.prefix + "#seen")
        self.seen = int(seen) if seen is not None else 0

    # ---- moving state between a stack and its models ---------------------------------------------
    def stack(self, filters: list["GradFilter"]) -> None:
        """This (stacked) filter's state from its models' filters, all at the same step."""
        if all(f.state for f in filters):
            self.state = {n: torch.stack([f.state[n] for f in filters], self.axis) for n in filters[0].state}
            self.seen = filters[0].seen

    def model(self, stacked: "GradFilter", j: int) -> None:
        """This (one model's) filter's state: model j's slice of a stacked filter."""
        self.state = {n: v.select(self.axis, j).clone() for n, v in stacked.state.items()}
        self.seen = stacked.seen

    def select(self, params: dict[str, torch.nn.Parameter], idx: torch.Tensor) -> "GradFilter":
        """A filter over `params` (the stack without its stopped models) keeping models `idx`."""
        out = type(self)(params, self.cfg)
        out.state = {n: v.index_select(self.axis, idx) for n, v in self.state.items()}
        out.seen = self.seen
        return out


class EMAFilter(GradFilter):
    # "grokfast." is the resume-state prefix the EMA filter had before grad_filter existed: old
    # resume files load and continue bit for bit (the update below is the old one, unchanged).
    prefix = "grokfast."

    @torch.no_grad()
    def filter(self) -> None:
        alpha, lamb = self.cfg.grokfast_alpha, self.cfg.grokfast_lamb
        for name, p in self.params.items():
            if p.grad is None:
                continue
            mu = self.state.get(name)
            self.state[name] = p.grad.detach().clone() if mu is None else mu.mul_(alpha).add_(p.grad, alpha=1 - alpha)
            p.grad.add_(self.state[name], alpha=lamb)
        self.seen += 1


class MAFilter(GradFilter):
    """A ring buffer [w, *param.shape] per parameter: gradient t (1-based) goes to slot (t - 1) % w."""

    prefix = "grokfast_ma."
    axis = 1  # buffer [w, n_models, ...] in a stack
    counted = True  # the slot to write next and whether the window is full

    @torch.no_grad()
    def filter(self) -> None:
        w, lamb = self.cfg.grokfast_window, self.cfg.grokfast_lamb
        slot = self.seen % w
        for name, p in self.params.items():
            if p.grad is None:
                continue
            buf = self.state.get(name)
            if buf is None:
                buf = self.state[name] = p.grad.new_zeros((w, *p.grad.shape))
            buf[slot].copy_(p.grad)
        self.seen += 1
        if self.seen < w:
            return
        for name, p in self.params.items():
            if p.grad is not None:
                p.grad.add_(self.state[name].mean(0), alpha=lamb)


KINDS: dict[str, type[GradFilter]] = {"ema": EMAFilter, "ma": MAFilter}


def make_filter(params: dict[str, torch.nn.Parameter], cfg: TrainConfig) -> GradFilter | None:
    """The filter cfg.grad_filter names over `params`, or None for "none"."""
    kind = KINDS.get(cfg.grad_filter)
    return kind(params, cfg) if kind else None
