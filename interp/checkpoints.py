"""Checkpoints: safetensors files with JSON metadata, written atomically, loaded without pickle.

A checkpoint file holds the model's parameters plus metadata strings:
`format` ("interp"), `model_config`, `train_config`, `step`, `metrics` (JSON).
Loading any checkpoint, ours or another project's, is `interp.formats.load`; this module knows
only our own format. A run directory (see training.py) holds `run.json`, `history.json`,
`checkpoints/step_*.safetensors`, `final.safetensors` and `resume.safetensors` (weights + optimiser
+ filter state).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save_bytes

from interp.config import ModelConfig, TrainConfig
from interp.errors import CheckpointError, ConfigError
from interp.fsio import file_mode
from interp.safeio import read_safetensors

FORMAT = "interp"
FINAL, RESUME, HISTORY, RUN_JSON, SNAPSHOTS = "final.safetensors", "resume.safetensors", "history.json", "run.json", "checkpoints"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write via a temp file in the same directory + fsync + rename: readers see old or new, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(fd, file_mode())  # mkstemp's 0600 ignores the umask
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode())


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Atomic safetensors write; metadata values are JSON-encoded unless already strings."""
    meta = {"format": FORMAT, **{k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}}
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save_bytes(tensors, metadata=meta))


def _json_field(path, meta: dict[str, str], key: str):
    try:
        return json.loads(meta[key])
    except KeyError:
        raise CheckpointError(f"{path}: checkpoint metadata has no '{key}'") from None
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: checkpoint metadata '{key}' is not valid JSON") from None


@dataclass
class Checkpoint:
    """What one of our checkpoint files holds."""

    model_config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    train_config: TrainConfig | None = None
    step: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def save_checkpoint(path, model, train_config: TrainConfig | None = None, step: int | None = None,
                    metrics: dict | None = None) -> None:
    state = {k: v for k, v in model.state_dict().items() if not k.endswith((".mask", ".IGNORE"))}
    meta = {"model_config": model.cfg.to_dict(), "step": step, "metrics": metrics or {}}
    if train_config is not None:
        meta["train_config"] = train_config.to_dict()
    save_tensors(path, state, meta)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Parse one of our safetensors checkpoints (not yet a model)."""
    path = Path(path)
    return parse_checkpoint(path, *read_safetensors(path))


def parse_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Checkpoint:
    """A Checkpoint from a safetensors file's tensors and metadata, already read from `path`."""
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: a safetensors file without interp metadata (format={meta.get('format')!r}); "
            "pass its config with --config, or see README 'Loading checkpoints' for the supported formats"
        )
    try:
        mcfg = ModelConfig.from_dict(_json_field(path, meta, "model_config"))
        tcfg = TrainConfig.from_dict(_json_field(path, meta, "train_config")) if meta.get("train_config") else None
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: invalid config in metadata: {e}") from None
    step = _json_field(path, meta, "step") if "step" in meta else None
    metrics = _json_field(path, meta, "metrics") if "metrics" in meta else {}
    if not (step is None or (isinstance(step, int) and not isinstance(step, bool))) or not isinstance(metrics, dict):
        raise CheckpointError(f"{path}: checkpoint metadata 'step' must be an integer and 'metrics' an object")
    return Checkpoint(mcfg, tensors, tcfg, step, metrics, path)


def model_from_state(cfg: ModelConfig, state: dict[str, torch.Tensor], source: str):
    """Build a model and load `state` with a check of every name and shape, and of finiteness."""
    from interp.model import Transformer

    try:
        with torch.device("meta"):  # shapes only: a config that claims a huge model allocates nothing
            expected = {k: tuple(v.shape) for k, v in Transformer(cfg, seed=None).state_dict().items()
                        if not k.endswith((".mask", ".IGNORE"))}
    except (RuntimeError, ValueError, OverflowError):  # sizes past what torch can even describe
        raise CheckpointError(f"{source}: config {cfg_summary(cfg)} describes a model too large to build") from None
    got = {k: tuple(v.shape) for k, v in state.items() if not k.endswith((".mask", ".IGNORE"))}
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if missing or extra:
        parts = ([f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"] if missing else []) + (
            [f"unexpected {', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''}"] if extra else [])
        raise CheckpointError(f"{source}: weights do not match the config: {'; '.join(parts)}")
    for k, shape in expected.items():
        if got[k] != shape:
            raise CheckpointError(f"{source}: {k} has shape {list(got[k])}, config {cfg_summary(cfg)} needs {list(shape)}")
    for k in expected:
        if not state[k].is_floating_point():
            raise CheckpointError(f"{source}: {k} has dtype {state[k].dtype}; weights must be floating point")
    weights = {k: state[k].float() for k in expected}  # checked after the cast: 1e300 in float64 is Inf in float32
    for k, v in weights.items():
        if not torch.isfinite(v).all():
            raise CheckpointError(f"{source}: {k} contains NaN or Inf values")
    model = Transformer(cfg, seed=None)
    model.load_state_dict(weights, strict=True)
    model.eval()
    return model


def cfg_summary(cfg: ModelConfig) -> str:
    return f"(p={cfg.p}, d_model={cfg.d_model}, n_heads={cfg.n_heads}, d_mlp={cfg.d_mlp}, n_ctx={cfg.n_ctx})"


def find_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a run directory stands for: final, else the newest snapshot."""
    if (run_dir / FINAL).exists():
        return run_dir / FINAL
    snaps = list_snapshots(run_dir)
    if snaps:
        return snaps[-1][1]
    raise CheckpointError(f"{run_dir}: directory has no checkpoint ({FINAL} or {SNAPSHOTS}/step_*.safetensors)")


def list_snapshots(run_dir: str | Path) -> list[tuple[int, Path]]:
    """[(step, path)] of a run's analysis snapshots, by step."""
    out = []
    for f in (Path(run_dir) / SNAPSHOTS).glob("step_*.safetensors"):
        try:
            out.append((int(f.stem.split("_")[1]), f))
        except ValueError:
            continue
    return sorted(out)
