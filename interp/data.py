"""The data: all p^2 pairs (a, b), their labels under the model's task (interp.tasks; (a + b) mod p by
default), and a seeded train/test split of the task's valid pairs.

Pair index i = a * p + b, the order of the Nanda et al. demo, so `split(p, 0.3, seed=598)`
reproduces its split (`torch.manual_seed(598); torch.randperm(p * p)`, first 30 % train).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from interp import tasks
from interp.config import ModelConfig


def all_pairs(p: int, device: torch.device | str | None = None) -> Tensor:
    """[p*p, 2] rows (a, b), row a*p + b, on `device` (None: torch's default device, as its factories)."""
    a = torch.arange(p, device=device).repeat_interleave(p)
    b = torch.arange(p, device=device).repeat(p)
    return torch.stack([a, b], dim=1)


def tokens_for(pairs: Tensor, cfg: ModelConfig) -> Tensor:
    """[n, 2] pairs -> [n, n_ctx] tokens: a, b (offset by p with diff_vocab), then `=` if any."""
    cols = [pairs[:, 0], pairs[:, 1] + (cfg.p if cfg.diff_vocab else 0)]
    if cfg.eq_token:
        cols.append(torch.full_like(pairs[:, 0], cfg.eq_id))
    return torch.stack(cols, dim=1)


def all_tokens(cfg: ModelConfig, device: torch.device | str | None = None) -> Tensor:
    """[p*p, n_ctx] tokens of every pair, row a*p + b: the input of every probe, on `device` (as `all_pairs`)."""
    return tokens_for(all_pairs(cfg.p, device), cfg)


def labels_for(pairs: Tensor, p: int, task: str = "add") -> Tensor:
    """[n, 2] pairs (a, b) -> [n] answers mod p of `task` (interp.tasks.labels)."""
    return tasks.labels(task, pairs, p)


def split(p: int, train_frac: float, seed: int, task: str = "add") -> tuple[Tensor, Tensor]:
    """Seeded split of the task's valid pairs into (train, test) pair indices a*p + b; at least one
    pair in each. For a task whose every pair is valid (add) the permutation is of all p*p indices,
    as it always was; otherwise of the m valid ones (`tasks.valid_pairs`), mapped back to indices."""
    valid = tasks.valid_pairs(task, p)
    m = p * p if valid is None else len(valid)
    # on the CPU whatever the default device: the same split everywhere
    perm = torch.randperm(m, generator=torch.Generator().manual_seed(seed), device="cpu")
    n_train = min(max(int(train_frac * m), 1), m - 1)
    train, test = perm[:n_train], perm[n_train:]
    return (train, test) if valid is None else (valid[train], valid[test])


@dataclass
class Dataset:
    train_idx: Tensor  # [n_train] pair indices
    test_idx: Tensor  # [n_test]
    train_tokens: Tensor  # [n_train, n_ctx]
    train_labels: Tensor  # [n_train]
    test_tokens: Tensor  # [n_test, n_ctx]
    test_labels: Tensor  # [n_test]


def make_dataset(cfg: ModelConfig, train_frac: float, seed: int) -> Dataset:
    pairs = all_pairs(cfg.p)
    tokens, labels = tokens_for(pairs, cfg), labels_for(pairs, cfg.p, cfg.task)
    tr, te = split(cfg.p, train_frac, seed, cfg.task)
    return Dataset(tr, te, tokens[tr], labels[tr], tokens[te], labels[te])
