"""Which torch device to run on: `--device cpu|cuda|mps`, default the best one available."""

from __future__ import annotations

import torch

from interp.errors import ConfigError

DEVICES = ("cpu", "cuda", "mps")


def _available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    return True


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """A usable torch.device from 'cpu', 'cuda', 'cuda:1', 'mps' or None (cuda, else mps, else cpu);
    an unknown or unavailable device is one ConfigError line."""
    if name is None:
        return torch.device(next(k for k in DEVICES[1:] + ("cpu",) if _available(k)))
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device {name!r} is not one of {', '.join(DEVICES)}") from None
    if dev.type not in DEVICES:
        raise ConfigError(f"device {name!r} is not one of {', '.join(DEVICES)}")
    if not _available(dev.type):
        raise ConfigError(f"device {name!r} is not available on this machine "
                          f"(torch {torch.__version__} sees no {dev.type.upper()} device); use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s)")
    return dev


def analysis_device(name: str | torch.device | None = None) -> torch.device:
    """Where `classify`, `report` and `run_progress` compute: the device asked for (`resolve_device`, so
    an unavailable one is the same ConfigError line as for training), else the CPU, wherever the model
    is. Not "the best available" as for training: verdicts were calibrated on the CPU, marginal ones
    flip with last-bit numerics, and a sweep's GPU-trained model must get the verdict that
    `interp classify` later gives its saved checkpoint."""
    return torch.device("cpu") if name is None else resolve_device(name)


def device_of(model_or_tensor) -> torch.device:
    """The device a model's weights (its W_E) or a tensor are on: where an analysis of it computes."""
    return model_or_tensor.device if isinstance(model_or_tensor, torch.Tensor) else model_or_tensor.W_E.device


def to_device(model, device: str | torch.device):
    """`model` itself when it is on `device` already, else a copy moved there (the caller's model
    stays where it is)."""
    dev, here = resolve_device(device), device_of(model)
    if here.type == dev.type and dev.index in (None, here.index):  # "cuda" is wherever CUDA holds it
        return model
    import copy

    return copy.deepcopy(model).to(dev)
