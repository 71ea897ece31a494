"""Our own checkpoints: safetensors with the config in the metadata (`interp.checkpoints`)."""

from __future__ import annotations

from pathlib import Path

from interp import checkpoints as ck
from interp.formats.build import Weights

NAME = "interp checkpoint"


def detect(meta: dict) -> bool:
    return meta.get("format") == ck.FORMAT


def read(path: Path, tensors: dict, meta: dict) -> Weights:
    c = ck.parse_checkpoint(path, tensors, meta)
    return Weights(c.state_dict, what=NAME, config=c.model_config, info=c)
