"""AdamW without torch.optim, so that a training process never imports torch._dynamo.

`torch.optim.Optimizer.step` imports `torch._dynamo` on every call (for a `graph_break()` that only
matters under `torch.compile`), and its `add_param_group` / `zero_grad` do on first use: ~1.1 s of
every fresh `interp train` on the project machine (`python -X importtime`), about a twentieth of the
nanda fast recipe's time to a clean circuit. This is the update of torch's AdamW for the settings we
use (decoupled weight decay, no amsgrad, no maximize, float step counts), as in Loshchilov & Hutter
and torch's documentation, with its state layout (`state[p] = {"step", "exp_avg", "exp_avg_sq"}`, a
float32 step tensor) so resume files are unchanged; `tests/test_train.py` checks it against
`torch.optim.AdamW` bit for bit.
"""

from __future__ import annotations

from collections import defaultdict

import torch


class AdamW:
    """AdamW over a list of parameters: `param_groups` (one group; its "lr" may be changed between
    steps), `state`, `zero_grad()`, `step()`."""

    def __init__(self, params, lr: float, weight_decay: float, betas: tuple[float, float], eps: float = 1e-8):
        self.param_groups = [dict(params=list(params), lr=lr, weight_decay=weight_decay, betas=tuple(betas), eps=eps)]
        self.state: defaultdict[torch.Tensor, dict] = defaultdict(dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, wd, (beta1, beta2), eps = group["lr"], group["weight_decay"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = torch.tensor(0.0)
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["step"] += 1
                if wd:
                    p.mul_(1 - lr * wd)  # decoupled weight decay, before the moments
                st["exp_avg"].lerp_(p.grad, 1 - beta1)
                st["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                n = st["step"].item()
                bias1, bias2 = 1 - beta1**n, 1 - beta2**n
                denom = (st["exp_avg_sq"].sqrt() / bias2**0.5).add_(eps)
                p.addcdiv_(st["exp_avg"], denom, value=-(lr / bias1))
