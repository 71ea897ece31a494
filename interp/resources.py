"""Memory a training run will need, estimated before anything is allocated, and the check that
refuses a run that cannot fit in one line naming what to change.

Training is full batch, so memory grows with p^2 (every pair is a row of the data, and the train
split is one batch): `--p 30000` asks for ~100 GB before the first step. The estimate counts, in
bytes (float32 weights, int64 tokens):

- data: all p^2 pairs, their tokens and labels, the split and its copies while they are made;
- model: weights, gradients, AdamW's two moments, the gradient filter's state (Grokfast: the EMA,
  or the MA filter's window of w gradients, w x params), and the copy a checkpoint write serialises (snapshots go to disk one at a time; none is kept in memory);
- activations: the full-batch forward pass kept for backward and its gradients (per layer: the
  residual stream, q/k/v, attention scores and pattern, z, the MLP's pre/post activations; the
  last position's logits in float32 and float64), plus the test-set forward pass of a logging step,
  which runs while the training graph is alive.

It is an upper estimate. Measured (peak RSS of `interp train ... --steps 30 --log-every 10` minus
the 441 MiB of a 1-step tiny run, i.e. of the imports): nanda fast 227 MiB (estimate 327), pizza-a
76 MiB (93), nanda at p=200 548 MiB (1089): 1.2-2x above, never below.
"""

from __future__ import annotations

import functools
import os
import resource
from dataclasses import dataclass

from interp.config import ModelConfig, TrainConfig
from interp.errors import ConfigError

GIB = 1 << 30


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one run needs on top of what the process already holds."""

    data: int
    model: int
    activations: int

    @property
    def total(self) -> int:
        return self.data + self.model + self.activations


@functools.lru_cache(maxsize=256)  # a sweep asks once per model: the same few shapes, thousands of times
def n_params(mcfg: ModelConfig) -> int:
    """Trainable parameters, from the shapes alone (nothing allocated)."""
    import torch

    from interp.model import Transformer

    with torch.device("meta"):
        return sum(p.numel() for p in Transformer(mcfg, seed=None).parameters() if p.requires_grad)


def state_floats(tcfg: TrainConfig) -> int:
    """Floats of gradient-filter state per trainable parameter (interp.gradfilters): the EMA one, the
    MA filter its window of w gradients."""
    return {"none": 0, "ema": 1, "ma": tcfg.grokfast_window}[tcfg.grad_filter]


def estimate_training(mcfg: ModelConfig, tcfg: TrainConfig) -> MemoryEstimate:
    """What `interp.train` with these configs will hold at its peak (see the module doc)."""
    pairs, ctx = mcfg.p ** 2, mcfg.n_ctx
    n_train = min(max(int(tcfg.train_frac * pairs), 1), pairs - 1)
    n_test = pairs - n_train
    data = pairs * 8 * (3 * ctx + 5)  # pairs [p^2, 2] + a, b; tokens; labels; perm; split copies
    n = n_params(mcfg)
    # weights, grads, AdamW, the gradient filter's state (EMA 1, MA w floats per parameter), and a save's
    # serialised copy (weights, AdamW and filter state; at least 4 floats per parameter, as measured)
    f = state_floats(tcfg)
    model = 4 * n * (1 + 1 + 2 + f + max(4, 3 + f))
    heads = mcfg.n_heads * mcfg.d_head
    per_layer = ctx * (6 * mcfg.d_model + 4 * heads + 2 * mcfg.d_mlp) + 2 * mcfg.n_heads * ctx * ctx  # floats
    train_act = n_train * (6 * mcfg.n_layers * per_layer + 32 * mcfg.d_vocab_out)  # forward + 1/2 for its gradients
    test_act = n_test * (4 * ctx * (2 * mcfg.d_mlp + 2 * mcfg.d_model + 2 * mcfg.n_heads * ctx) + 20 * mcfg.d_vocab_out)
    return MemoryEstimate(data, model, train_act + test_act)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
        return None if text == "max" else int(text)
    except (OSError, ValueError):
        return None


def available_memory() -> int:
    """Bytes this process can still allocate: the least of the machine's available memory, the
    cgroup's remaining limit and the address-space limit (RLIMIT_AS) left."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        limits.append(int(info["MemAvailable"].split()[0]) * 1024)
    except (OSError, KeyError, ValueError):
        limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    cap, used = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if cap is not None and used is not None:
        limits.append(cap - used)
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        try:
            with open("/proc/self/statm") as f:
                vsize = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            vsize = 0
        limits.append(soft - vsize)
    return max(0, min(limits))


def device_memory(device=None) -> int:
    """Total bytes of memory training on `device` can use: a CUDA device's own memory, else the
    machine's (the least of MemTotal, the cgroup's limit and RLIMIT_AS). A total, not what is free
    now: a sweep's groups are sized from it, and must come out the same on every run."""
    import torch

    device = torch.device(device or "cpu")
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device.index or 0).total_memory
    limits = [os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
    cap = _read_int("/sys/fs/cgroup/memory.max")
    if cap is not None:
        limits.append(cap)
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(soft)
    return min(limits)


def _gib(n: int) -> str:
    return f"{n / GIB:,.1f} GiB"


def check_memory(runs: list[tuple[ModelConfig, TrainConfig]], concurrent: int = 1, what: str = "training") -> MemoryEstimate:
    """Refuse (ConfigError, one line naming what to change) runs whose estimate exceeds the memory
    available. `runs` are held at once (the groups a sweep trains at the same time); the activations of
    `concurrent` of them coexist (stacked groups). Returns the estimate."""
    ests = [estimate_training(m, t) for m, t in runs]
    act = sorted((e.activations for e in ests), reverse=True)[:max(1, concurrent)]
    need = MemoryEstimate(sum(e.data for e in ests), sum(e.model for e in ests), sum(act))
    free = available_memory()
    if need.total <= free:
        return need
    m = max(runs, key=lambda r: r[0].p)[0]
    parts = f"data {_gib(need.data)}, activations {_gib(need.activations)}, model and optimiser {_gib(need.model)}"
    if need.model > need.data + need.activations:
        fix = "a smaller --d-model (or --p)"
    else:
        fix = f"a smaller --p (full-batch memory grows with p^2: p={m.p} has {m.p ** 2:,} pairs) or --train-frac"
    if len(runs) > 1:
        fix += ", or fewer models at once (--group-size, --workers)"
    raise ConfigError(f"{what} needs about {_gib(need.total)} of memory ({parts}), only {_gib(free)} is available; "
                      f"use {fix}")
