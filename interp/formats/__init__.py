"""Loading every supported checkpoint: `load(path, config=None)` -> a ready model.

The file's format is recognised from its contents, never from a flag; one reader per format turns
it into weights in our layout plus what the file says about the config (`build.Weights`), and
`build.build_model` is the one place those become a model. Imports point one way: this package
uses `interp.checkpoints` (our format), which knows nothing of the others.

Formats (README "Loading checkpoints"):
- `ours`: our safetensors checkpoints and run directories;
- `hooked`: TransformerLens HookedTransformer state dicts (LayerNorm and attn_only included), alone, in the Grokking demo's file (with
  its pickled HookedTransformerConfig, numpy fields and all) or as `{"state_dict": ...}`;
- `legacy`: Nanda's original and the Clock/Pizza authors' layout, alone (`model_<run>.pt`), in
  Nanda's, the progress-measures trainer's or ARENA's run files;
- `bridge`: TransformerLens 4 TransformerBridge state dicts (both key spellings, LayerNorm included);
each as `.pt`/`.pth` or `.safetensors` (`pickles` reads `.pt` files without running them). The
config comes from, in order: the `config` argument (a JSON file, a dict or a ModelConfig), a
sidecar JSON (`configs.sidecar_candidates`), a config stored in the file, and the weights' shapes.
"""

from __future__ import annotations

from pathlib import Path

from interp import checkpoints as ck
from interp.errors import CheckpointError
from interp.formats import bridge, hooked, legacy, ours
from interp.formats.build import Weights, build_model
from interp.formats.configs import brief, describe_source, given_hints
from interp.formats.pickles import describe, torch_load, unwrap
from interp.safeio import read_safetensors

SUPPORTED = ("supported: interp checkpoints (.safetensors or a run directory), TransformerLens HookedTransformer "
             "state dicts (alone, in the Grokking demo's file or ARENA's run file), Nanda-original / Clock-Pizza "
             "state dicts with their JSON config, and TransformerLens 4 TransformerBridge state dicts with their "
             "TransformerBridgeConfig JSON (.pt/.pth or .safetensors)")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors")
READERS = (bridge, hooked, legacy)  # foreign state-dict layouts, told apart by `detect`

__all__ = ["load", "SUPPORTED", "Weights", "build_model"]


def sniff(path: Path) -> str:
    """What the file's first bytes say it is: 'safetensors', 'torch', or a short description."""
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        return "an empty file"
    # safetensors first: its 8-byte header length may well start with 0x80 (a header of 128 + 256 n
    # bytes), which a bare check for a pickle's PROTO opcode would take for a torch file.
    if len(head) >= 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < 1 << 32:
        return "safetensors"
    if head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):  # zip; PROTO 2-5
        return "torch"
    if head.lstrip()[:1] in (b"{", b"["):
        return "a JSON/text file (a config? pass it with --config next to the checkpoint)"
    if all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        return "a text file"
    return f"an unknown binary format (starts with {head[:8]!r})"


def load(path, config=None, device=None):
    """A ready model (eval mode) from a checkpoint file or a directory (see module doc).

    `model.source_format` says what the file was recognised as; `model.checkpoint_info` holds our
    checkpoint's step, metrics and train config. Nothing from the file is run; any failure is one
    CheckpointError naming the file. `device` (cpu, cuda, mps): where the model's weights go (an
    unavailable one is a ConfigError line, before the file is read); default torch's default device, the CPU.
    """
    from interp.device import resolve_device

    path, dev = Path(path), None if device is None else resolve_device(device)
    try:
        model = _load(path, config)
        return model if dev is None else model.to(dev)
    except (RecursionError, MemoryError, OverflowError) as e:  # e.g. deeply nested pickles, absurd sizes
        raise CheckpointError(f"{path}: cannot be loaded ({type(e).__name__} while reading it: nested or sized "
                              "beyond what a checkpoint holds)") from None


def _load(path: Path, config):
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    if path.is_dir():
        path = _checkpoint_in(path)
    kind = sniff(path)
    note = None
    if kind == "safetensors" or (path.suffix == ".safetensors" and kind != "torch"):  # its reader names the fault
        tensors, meta = read_safetensors(path)
        if ours.detect(meta):
            if config is not None:
                raise CheckpointError(f"{path}: an interp checkpoint carries its own config; leave out --config")
            return build_model(ours.read(path, tensors, meta), str(path))
        found = (tensors, {}, "safetensors state dict")
    elif kind == "torch":
        obj, note = torch_load(path)
        found = unwrap(obj, path)
        if found is None:
            raise CheckpointError(f"{path}: found {describe(obj)}, no model weights; {SUPPORTED}")
    else:
        raise CheckpointError(f"{path}: {kind}, not a checkpoint; {SUPPORTED}")
    state, file_hints, what = found
    given = given_hints(config, path)
    reader = _reader(state, str(path))
    w = reader.read(state, {**file_hints, **(given or {})}, what, str(path))
    w.what = "; ".join(x for x in (w.what, describe_source(given), note) if x)
    return build_model(w, str(path))


def _reader(state: dict, source: str):
    for reader in READERS:
        if reader.detect(state):
            return reader
    keys = ", ".join(brief(k, width=40) for k in list(state)[:4])
    raise CheckpointError(f"{source}: a state dict in no known layout (keys {keys}{' ...' if len(state) > 4 else ''}); "
                          f"{SUPPORTED}")


def _checkpoint_in(path: Path) -> Path:
    """The checkpoint a directory stands for: a run directory's, else its one checkpoint file."""
    if (path / ck.RUN_JSON).exists() or (path / ck.FINAL).exists() or ck.list_snapshots(path):
        return ck.find_checkpoint(path)
    files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix in CHECKPOINT_SUFFIXES)
    if not files:
        raise CheckpointError(f"{path}: directory has no checkpoint (no run.json, final.safetensors or "
                              f"{'/'.join(CHECKPOINT_SUFFIXES)} file)")
    if len(files) > 1:
        names = ", ".join(f.name for f in files[:4]) + (" ..." if len(files) > 4 else "")
        raise CheckpointError(f"{path}: directory has {len(files)} checkpoint files ({names}); pass one of them")
    return files[0]
