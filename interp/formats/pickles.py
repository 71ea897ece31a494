"""Reading `.pt` files without running them, and finding the weights inside what they hold.

Every file goes through `torch.load(weights_only=True)`: torch's own unpickler, which builds only
tensors, containers and the globals it is told are safe. We tell it about exactly two kinds:
- numpy's data constructors (`scalar`, `_reconstruct`, `dtype`, `ndarray`, the numeric dtype
  classes), under numpy 1.x and 2.x names: a TransformerLens 2.x config holds numpy float64
  fields and run files hold numpy index arrays; object and string arrays stay refused;
- `Opaque` stand-ins for every other class a file names (the Grokking demo pickles its
  `HookedTransformerConfig`, a class TransformerLens 4 no longer has). A stand-in only records the
  state the file gives it. A file that pickles a *call* (which a plain torch.load would run:
  `exec`, `os.system`, ...) rather than an object is refused, and torch blocks os/sys outright.
"""

from __future__ import annotations

import pickle
import pickletools
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from interp.errors import CheckpointError
from interp.formats.configs import Hints, brief, config_hints
from interp.safeio import check_torch_archive


class Opaque:
    """Stand-in for a class a checkpoint names: records the arguments and state the file gives it,
    runs nothing. `name` is the class's dotted name in the file; `calls` collects the names the file
    tried to call (a pickled function call rather than a pickled object)."""

    name = "?"
    calls: list[str] = []

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        self.args, self.state = args, {}
        return self

    def __init__(self, *args, **kwargs):  # reached only when the file calls the name (REDUCE)
        self.calls.append(self.name)

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f"<{self.name}, not loaded>"


def _opaque_class(name: str, calls: list[str]) -> type:
    return type("Opaque", (Opaque,), {"name": name, "calls": calls})


def _numpy_data_globals() -> list[tuple[object, str]]:
    """numpy's data reconstructors under the names numpy 1.x (`numpy.core`) and 2.x (`numpy._core`)
    pickle them with, plus the numeric dtype classes (a dtype's state is set on its class)."""
    # numpy 1.26 has a `numpy._core` stub without `multiarray` as an attribute (the TransformerLens 2 venv's numpy)
    core = getattr(getattr(np, "_core", None), "multiarray", None) or np.core.multiarray
    out = [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype")]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out += [(core.scalar, f"{mod}.scalar"), (core._reconstruct, f"{mod}._reconstruct")]
    for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
              np.float16, np.float32, np.float64, np.complex64, np.complex128):
        cls = type(np.dtype(t))
        if cls is not np.dtype:  # numpy >= 1.25 has one class per dtype
            out.append((cls, f"{cls.__module__}.{cls.__qualname__}"))
    return out


NUMPY_DATA = _numpy_data_globals()
_NUMPY_NAMES = {name for _, name in NUMPY_DATA}


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]


def _reason(e: BaseException) -> str:
    """The line of torch's weights-only refusal that says what was refused (its first line is boilerplate)."""
    text = str(e).split("WeightsUnpickler error:", 1)[-1]
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(boilerplate)]
    return lines[0][:200] if lines else first_line(e)


def _globals_in(path: Path) -> set[str]:
    """The globals a torch file's pickle names, read without unpickling anything."""
    if zipfile.is_zipfile(path):
        return set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    names = set()
    with open(path, "rb") as f:  # legacy format: magic number, protocol, sys info, then the object
        for _ in range(4):
            for op, arg, _pos in pickletools.genops(f):
                if op.name == "GLOBAL":
                    names.add(arg.replace(" ", "."))
    allowed = getattr(torch._weights_only_unpickler, "_get_allowed_globals", dict)()  # what torch builds itself
    return {n for n in names if n not in allowed}


def torch_load(path: Path):
    """(object, note): the file's contents, read by the weights-only unpickler as described above."""
    check_torch_archive(path)
    try:
        with torch.serialization.safe_globals(NUMPY_DATA):
            return torch.load(path, map_location="cpu", weights_only=True), None
    except pickle.UnpicklingError as e:
        refused = e
    except (RecursionError, MemoryError):
        raise
    except Exception as e:  # truncated zip, bad pickle opcode, ...: torch raises many kinds
        raise CheckpointError(f"{path}: unreadable PyTorch file ({first_line(e)})") from None
    try:
        names = sorted(_globals_in(path) - _NUMPY_NAMES)
    except Exception:
        raise CheckpointError(f"{path}: weights-only loading refuses this file ({_reason(refused)}); "
                              "re-save its state_dict() with torch.save") from None
    if not names:
        raise CheckpointError(f"{path}: weights-only loading refuses this file ({_reason(refused)})")
    calls: list[str] = []
    stand_ins = [(_opaque_class(n, calls), n) for n in names]
    try:
        with torch.serialization.safe_globals(NUMPY_DATA + stand_ins):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RecursionError, MemoryError):
        raise
    except Exception as e:
        raise CheckpointError(f"{path}: pickles code or data that is not weights ({_reason(e)}; it names "
                              f"{', '.join(names[:3])}{' ...' if len(names) > 3 else ''}): refusing it") from None
    if calls:  # a pickled object is rebuilt from its state; a pickled call would run code on a plain load
        raise CheckpointError(f"{path}: pickles a call to {calls[0]}, which a plain torch.load would run: refusing "
                              "the file (nothing was run)")
    return obj, f"read without running the pickled {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"


# ---- finding the weights in what a file holds ----------------------------------------------------
def is_state_dict(x) -> bool:
    return isinstance(x, Mapping) and len(x) > 0 and all(isinstance(k, str) and torch.is_tensor(v) for k, v in x.items())


def _module_state(obj: Opaque, prefix: str = "", depth: int = 0) -> dict:
    """Parameters and buffers of a pickled nn.Module, read from its recorded state."""
    st = obj.state if isinstance(obj.state, dict) else {}
    skip = st.get("_non_persistent_buffers_set")  # not part of a state_dict either
    skip = skip if isinstance(skip, (set, frozenset, list, tuple)) else ()
    out = {prefix + k: v for part in ("_parameters", "_buffers") for k, v in (st.get(part) or {}).items()
           if isinstance(k, str) and torch.is_tensor(v) and k not in skip}
    children = st.get("_modules")
    if depth < 32 and isinstance(children, Mapping):
        for name, child in children.items():
            if isinstance(name, str) and isinstance(child, Opaque):
                out.update(_module_state(child, f"{prefix}{name}.", depth + 1))
    return out


def describe(obj) -> str:
    if isinstance(obj, Mapping):
        keys = [brief(k, depth=1, width=30) for k in list(obj)[:6]]
        return f"a {type(obj).__name__} with keys [{', '.join(keys)}{', ...' if len(obj) > 6 else ''}]"
    if isinstance(obj, Opaque):
        return f"a pickled {obj.name}"
    return f"a {type(obj).__name__}"


def _stored_config(cfg, path: Path) -> Hints:
    if isinstance(cfg, Opaque):
        cfg = cfg.state
    if isinstance(cfg, Mapping):
        return config_hints(cfg, f"{path} (its config)")
    return {}


def unwrap(obj, path: Path) -> tuple[dict, Hints, str] | None:
    """(state dict, config hints stored in the file, what the file was), or None when `obj` holds no weights.

    Containers: a state dict alone; `{"model": ...}` (the Grokking demo, Nanda's runs, the
    progress-measures trainer); `{"state_dict": ...}`; ARENA's `{"state_dicts": [...]}` (the last
    is taken); a whole pickled nn.Module (its recorded parameters, its code never run).
    """
    if is_state_dict(obj):
        return dict(obj), {}, "state dict"
    if isinstance(obj, Opaque) and isinstance(obj.state, dict) and "_parameters" in obj.state:
        state = _module_state(obj)
        if state:
            cfg = obj.state.get("cfg") or obj.state.get("config")
            return state, _stored_config(cfg, path), f"pickled module {obj.name}"
    if not isinstance(obj, Mapping):
        return None
    hints = _stored_config(obj.get("config"), path)
    if is_state_dict(obj.get("model")):
        if "checkpoints" in obj or "checkpoint_epochs" in obj:
            kind = "Grokking demo file"
        elif "optimizer" in obj and "train_loss" in obj:
            kind = "progress-measures trainer file"
        elif "train_losses" in obj or "epoch" in obj:
            kind = "Nanda run file"
        else:
            kind = "{'model': ...} file"
        return dict(obj["model"]), hints, kind
    if is_state_dict(obj.get("state_dict")):
        return dict(obj["state_dict"]), hints, "{'state_dict': ...} file"
    sds = obj.get("state_dicts")
    if isinstance(sds, (list, tuple)) and sds and is_state_dict(sds[-1]):
        return dict(sds[-1]), hints, f"ARENA run file (last of {len(sds)} state dicts)"
    return None
