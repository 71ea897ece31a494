"""Reading files a user hands us, bounded: size caps and shape checks before anything is allocated.

Every reader here raises one `CheckpointError` naming the file and the fault; none runs code from
the file. The loaders (`interp.checkpoints`, `interp.formats`) read files only through these.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load as st_load_bytes

from interp.errors import CheckpointError

MAX_CONFIG_BYTES = 1 << 20  # a JSON config is a few hundred bytes; 1 MiB is generous


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]


def read_json_file(path: str | Path, what: str = "config") -> Any:
    """The parsed JSON of a small regular file (a config), or CheckpointError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: {what} file not found") from None
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: {what} is not valid JSON ({_first_line(e)})") from None


def check_torch_archive(path: str | Path) -> None:
    """Refuse a torch file whose contents would cost more than they should, before torch reads it."""


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file, or CheckpointError naming the file and the fault."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8:
        raise CheckpointError(f"{path}: file is {'empty' if not data else 'truncated'} ({len(data)} bytes), not a safetensors checkpoint")
    header_len = int.from_bytes(data[:8], "little")
    if header_len <= 0 or 8 + header_len > len(data):
        raise CheckpointError(f"{path}: truncated or not a safetensors file (header claims {header_len} bytes, file has {len(data)})")
    try:
        header = json.loads(data[8 : 8 + header_len])
        size = _data_size(header)
        if 8 + header_len + size > len(data):
            raise CheckpointError(f"{path}: truncated: the header describes {size} bytes of tensor data, "
                                  f"the file holds {len(data) - 8 - header_len}")
        tensors = st_load_bytes(data)
    except (SafetensorError, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt safetensors file ({str(e).splitlines()[0][:200]})") from None
    meta = header.get("__metadata__") or {}
    return tensors, meta


def _data_size(header) -> int:
    """Bytes of tensor data a safetensors header describes (0 where the header makes no sense)."""
    try:
        return max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (AttributeError, KeyError, TypeError, IndexError, ValueError, OverflowError):
        return 0
