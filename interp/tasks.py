"""The tasks: what each computes mod p, which pairs (a, b) are valid, and its group coordinates.

    task     answer mod p          valid pairs          group coordinates (an addition mod n)
    add      a + b                 all p^2              n = p, the tokens themselves
    sub      a - b                 all p^2              n = p; b's token read as -b (a - b = a + (p - b))
    mul      a * b                 a, b != 0            n = p - 1, i = log_g a (discrete log, g the
    div      a / b = a * b^(p-2)   a, b != 0            smallest primitive root mod p); div: j = -log_g b
    sq_sum   a^2 + b^2             all p^2              none
    quad     a^2 + ab + b^2        all p^2              none

mul and div need a prime p: then the nonzero residues form a cyclic group of order p - 1 under
multiplication (REFERENCES §5), so a * b is g^(i + j): addition mod p - 1 in discrete-log coordinates.
Division excludes a = 0 too (not only b = 0) so that it is that group's operation, a * b^-1 on the
nonzero residues, and it has the same valid pairs as mul. The quadratic tasks (Power et al. 2022's
x^2 + y^2 and x^2 + xy + y^2) are no group operation on the tokens: they have no group view, so the
clock/pizza classification is not defined for them.

`group_view(model)` is the one place the coordinates are applied: an addition model mod n with the
same logits, re-indexed, so every analysis written for a + b runs unchanged on sub/mul/div models.

Definitions only: this module imports nothing from interp but its errors (config validates the task
name against TASKS, data computes labels and splits from here), and torch only inside the functions
that compute, so that config, and with it `interp --help`, stays free of torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from interp.errors import InterpError

if TYPE_CHECKING:
    from torch import Tensor

TASKS = ("add", "sub", "mul", "div", "sq_sum", "quad")
FORMULAS = {"add": "a + b", "sub": "a - b", "mul": "a * b", "div": "a / b", "sq_sum": "a^2 + b^2",
            "quad": "a^2 + ab + b^2"}
# The group each task is an operation of, in coordinates: "add" (Z_p itself) or "mul" (Z_p^*, order p - 1).
GROUPS = {"add": "add", "sub": "add", "mul": "mul", "div": "mul"}
PRIME_TASKS = ("mul", "div")  # need a prime p (the nonzero residues a group under multiplication)


class TaskError(InterpError, ValueError):
    """A task asked of something it is not defined for; the message says which and why."""


def _check(task: str) -> str:
    if task not in TASKS:
        raise TaskError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return task


def task_of(cfg) -> str:
    """The task of a config (configs written before tasks existed have none: "add")."""
    return getattr(cfg, "task", "add")


def has_group(task: str) -> bool:
    """Whether the task is a group operation, so its model has a group view (clock/pizza defined)."""
    return _check(task) in GROUPS


def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin (exact for n < 3.3e24, beyond every p a config allows)."""
    if n < 2:
        return False
    small = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)
    if n in small:
        return True
    if any(n % q == 0 for q in small):
        return False
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for a in small:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


@lru_cache(maxsize=64)
def primitive_root(p: int) -> int:
    """The smallest generator g of the multiplicative group mod a prime p (its powers g^0 .. g^(p-2)
    are every nonzero residue): g^((p-1)/q) != 1 for every prime q dividing p - 1."""
    if not is_prime(p):
        raise TaskError(f"a primitive root needs a prime p, got {p}")
    n, qs, m, q = p - 1, [], p - 1, 2
    while q * q <= m:
        if m % q == 0:
            qs.append(q)
            while m % q == 0:
                m //= q
        q += 1
    if m > 1:
        qs.append(m)
    return next(g for g in range(1, p) if all(pow(g, n // q, p) != 1 for q in qs))


def powers(p: int) -> Tensor:
    """[p - 1] long: g^i mod p for i = 0 .. p - 2 (g = primitive_root(p))."""
    import torch

    g = primitive_root(p)
    return torch.tensor([pow(g, i, p) for i in range(p - 1)], dtype=torch.long)


def discrete_log(p: int) -> Tensor:
    """[p] long: log_g a for a = 1 .. p - 1 (so powers(p)[discrete_log(p)[a]] = a); -1 at a = 0."""
    import torch

    out = torch.full((p,), -1, dtype=torch.long)
    out[powers(p)] = torch.arange(p - 1)
    return out


def labels(task: str, pairs: Tensor, p: int) -> Tensor:
    """[n, 2] pairs (a, b) -> [n] the answers mod p. Pairs outside the task's valid set get some residue
    (div by 0 gives 0); they are never trained on nor scored."""
    import torch

    a, b = pairs[:, 0], pairs[:, 1]
    if _check(task) == "add":
        return (a + b) % p
    if task == "sub":
        return (a - b) % p  # torch's % takes the divisor's sign: a residue in 0 .. p - 1
    if task == "mul":
        return (a * b) % p
    if task == "div":
        inverse = torch.tensor([pow(x, -1, p) if x else 0 for x in range(p)], dtype=pairs.dtype, device=pairs.device)
        return (a * inverse[b]) % p
    if task == "sq_sum":
        return (a * a + b * b) % p
    return (a * a + a * b + b * b) % p


def valid_pairs(task: str, p: int) -> Tensor | None:
    """[m] long: the pair indices a * p + b of the task's valid pairs, ascending; None when every pair
    is valid (so the split of an addition run stays exactly what it was before tasks existed)."""
    import torch

    if _check(task) not in PRIME_TASKS:
        return None
    r = torch.arange(1, p)
    return (r[:, None] * p + r[None, :]).flatten()


@dataclass(frozen=True)
class Coordinates:
    """A group task as an addition mod n: group element i is the residue a[i] at position a, b[i] at
    position b, and the answer i + j mod n is the residue out[(i + j) % n]."""

    task: str
    p: int
    n: int
    a: Tensor  # [n] long
    b: Tensor  # [n] long
    out: Tensor  # [n] long
    generator: int | None  # g of the discrete logs (mul, div)

    def describe(self) -> str:
        """Where the circles of this task's analyses live, in words."""
        if self.generator is not None:
            b = "i - j" if self.task == "div" else "i + j"
            return (f"circles in discrete-log coordinates (generator g={self.generator}): token a = g^i, "
                    f"answer g^({b}) mod {self.p}, read as addition mod n={self.n}")
        if self.task == "sub":
            return f"circles in additive coordinates with b's token reflected (a - b = a + ({self.p} - b) mod {self.p})"
        return f"circles in additive coordinates mod {self.p}"


def coordinates(task: str, p: int) -> Coordinates:
    """The group coordinates of a group task (TaskError for the quadratic tasks)."""
    import torch

    if not has_group(task):
        raise TaskError(f"task {task!r} ({FORMULAS[task]}) is not a group operation: it has no group coordinates")
    r = torch.arange(p)
    if task == "add":
        return Coordinates(task, p, p, r, r, r, None)
    if task == "sub":
        return Coordinates(task, p, p, r, (-r) % p, r, None)
    g, pw = primitive_root(p), powers(p)
    n = p - 1
    b = pw if task == "mul" else pw[(-torch.arange(n)) % n]  # div: b = g^(-j), so a / b = g^(i + j)
    return Coordinates(task, p, n, pw, b, pw, g)


def view_index(cfg, idx: Tensor) -> Tensor:
    """Pair indices a * p + b of a group task's valid pairs -> the group view's pair indices i * n + j."""
    import torch

    task = task_of(cfg)
    if task == "add":
        return idx
    co = coordinates(task, cfg.p)
    pos_a = torch.full((cfg.p,), -1, dtype=torch.long, device=idx.device)
    pos_b = pos_a.clone()
    pos_a[co.a.to(idx.device)] = torch.arange(co.n, device=idx.device)
    pos_b[co.b.to(idx.device)] = torch.arange(co.n, device=idx.device)
    i, j = pos_a[idx // cfg.p], pos_b[idx % cfg.p]
    if (i < 0).any() or (j < 0).any():
        raise TaskError(f"pairs outside the valid pairs of task {task!r} have no place in its group view")
    return i * co.n + j


def group_state(cfg, state: dict[str, Tensor]):
    """(view config, view state dict) of a group task's model: an addition model mod n whose logits
    on (i, j) are the original's on (a[i], b[j]) at the outputs out[.] (`Coordinates`).

    W_E's a-rows are reordered to a[.]; where b's residues differ from a's (sub, div) or the model has
    separate b tokens, the view has diff_vocab=True with b-rows b[.]; the `=` row is kept. W_U's columns
    and b_U are reordered to out[.] (mul, div drop class 0, never an answer). Every other weight is shared."""
    import torch

    co = coordinates(task_of(cfg), cfg.p)
    off = cfg.p if cfg.diff_vocab else 0
    diff_vocab = cfg.diff_vocab or not torch.equal(co.a, co.b)
    W_E = state["embed.W_E"]
    rows = [W_E[co.a.to(W_E.device)]]
    if diff_vocab:
        rows.append(W_E[(co.b + off).to(W_E.device)])
    if cfg.eq_token:
        rows.append(W_E[cfg.d_vocab - 1 :])
    out = dict(state)
    out["embed.W_E"] = torch.cat(rows)
    out["unembed.W_U"] = state["unembed.W_U"][:, co.out.to(W_E.device)]
    out["unembed.b_U"] = state["unembed.b_U"][co.out.to(W_E.device)]
    return cfg.replace(p=co.n, diff_vocab=diff_vocab, task="add"), out


def group_view(model):
    """The model as an addition model mod n in its task's group coordinates, with the same logits
    re-indexed (see `group_state`): every a + b analysis applies to it. The model itself for add, and
    for the quadratic tasks (which have no group: their analyses read the tokens as they are)."""
    task = task_of(model.cfg)
    if task == "add" or not has_group(task):
        return model
    # cloned: the view owns its weights (an analysis that edits them, e.g. circle isolation, leaves the model be)
    cfg, state = group_state(model.cfg, {k: v.detach().clone() for k, v in model.state_dict().items()})
    device = next(model.parameters()).device
    view = type(model)(cfg, seed=None).to(device)
    view.load_state_dict(state, assign=True)  # assign: keep the weights' dtype
    view.source_format, view.checkpoint_info = model.source_format, model.checkpoint_info
    return view.train(model.training)
