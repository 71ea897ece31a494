"""Loading checkpoints written by other projects, recognised from their contents (no flag).

Supported (REFERENCES §2, §3):
- TransformerLens HookedTransformer state dicts: alone, inside the Grokking demo's file
  (`{"model", "config", "checkpoints", ...}`), or as `{"state_dict": ...}`;
- the Nanda-original / Clock-Pizza layout (`embed.W_E` [d_model, d_vocab], `W_O` [d_model,
  n_heads*d_head], ...): alone, as Nanda's `{"model": ..., ...}`, or ARENA's run file
  (`{"state_dicts": [...], ...}`, the last one is taken);
- a whole `nn.Module` pickled with torch.save (its parameters are read, its code is not);
- any of these as .safetensors.
The config comes from, in order: the `config` argument (a JSON file, a dict or a ModelConfig),
a sidecar JSON (same stem `.json`, else `config.json` in the same directory), a config stored
in the file, and the weights' shapes. Sidecars may be Clock/Pizza's (`C`, `attn_coeff`,
`eqn_sign`, ...), Nanda's, TransformerLens's or ours.

Nothing from a file is executed. `.pt` files are read with `torch.load(weights_only=True)`. When
that refuses a file because it pickles classes (the Grokking demo pickles its
HookedTransformerConfig object, a class TransformerLens 4 no longer has), the file is read again
by the same weights-only unpickler with every class it names replaced by `Opaque`, an inert
stand-in defined here that only records the state the file gives it. A file that pickles a call
(which a plain torch.load would run: `exec`, `os.system`, ...) rather than an object is refused,
and so are files naming the modules torch blocks outright (os, sys, ...).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import einops
import torch

from interp.checkpoints import model_from_state, read_checkpoint
from interp.safeio import read_safetensors
from interp.config import ModelConfig
from interp.errors import CheckpointError, ConfigError
from interp.safeio import check_torch_archive, read_json_file

SUPPORTED = ("supported: interp checkpoints (.safetensors or a run directory), TransformerLens HookedTransformer "
             "state dicts (alone, in the Grokking demo's file or ARENA's run file), and Nanda-original / "
             "Clock-Pizza state dicts with their JSON config (.pt/.pth or .safetensors)")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors")


# ---- reading a file without running it ----------------------------------------------------------
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


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]


def _torch_load(path: Path):
    """(object, note): torch.load(weights_only=True), with inert stand-ins for pickled classes."""
    check_torch_archive(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True), None
    except pickle.UnpicklingError as e:
        refused = e
    except Exception as e:  # truncated zip, bad pickle opcode, ...: torch raises many kinds
        raise CheckpointError(f"{path}: unreadable PyTorch file ({_first_line(e)})") from None
    try:
        names = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:
        raise CheckpointError(f"{path}: weights-only loading refuses this file ({_first_line(refused)}); "
                              "re-save its state_dict() with torch.save") from None
    if not names:
        raise CheckpointError(f"{path}: weights-only loading refuses this file ({_first_line(refused)})")
    calls: list[str] = []
    stand_ins = [(_opaque_class(n, calls), n) for n in names]
    try:
        with torch.serialization.safe_globals(stand_ins):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: pickles code, not just weights ({', '.join(names[:3])}): refusing it "
                              f"({_first_line(e)})") from None
    if calls:  # a pickled object is rebuilt from its state; a pickled call would run code on a plain load
        raise CheckpointError(f"{path}: pickles a call to {calls[0]}, which a plain torch.load would run: refusing "
                              "the file (nothing was run)")
    return obj, f"read without running the pickled {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"


def _sniff(path: Path) -> str:
    """What the file's first bytes say it is: 'safetensors', 'torch', or a short description."""
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        return "an empty file"
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        return "torch"
    if len(head) >= 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < 1 << 32:
        return "safetensors"
    if head.lstrip()[:1] in (b"{", b"["):
        return "a JSON/text file (a config? pass it with --config next to the checkpoint)"
    if all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        return "a text file"
    return f"an unknown binary format (starts with {head[:8]!r})"


# ---- configs -------------------------------------------------------------------------------------
_KEYS = {  # config key in one of the known projects -> ModelConfig field
    "p": "p", "C": "p", "act_fn": "act_fn", "act_type": "act_fn", "attn_rate": "attn_rate", "attn_coeff": "attn_rate",
    "diff_vocab": "diff_vocab", "eq_token": "eq_token", "eqn_sign": "eq_token", "causal": "causal", "biases": "biases",
    "d_model": "d_model", "n_heads": "n_heads", "num_heads": "n_heads", "d_head": "d_head", "d_mlp": "d_mlp",
    "n_layers": "n_layers", "num_layers": "n_layers", "d_vocab": "d_vocab", "d_vocab_out": "d_vocab_out", "n_ctx": "n_ctx",
}


def config_hints(d: Mapping, source: str) -> dict:
    """ModelConfig-like fields from a config dict of any supported project (unknown keys ignored)."""
    hints = {field: d[key] for key, field in _KEYS.items() if key in d and d[key] is not None}
    if "attention_dir" in d:
        hints["causal"] = d["attention_dir"] == "causal"
    if "act_fn" in hints:
        act = str(hints["act_fn"]).lower()
        if act not in ("relu", "gelu"):
            raise CheckpointError(f"{source}: activation {hints['act_fn']!r} is not supported (ReLU or GeLU)")
        hints["act_fn"] = act
    if d.get("normalization_type") or d.get("use_ln"):
        raise CheckpointError(f"{source}: the model has LayerNorm ({d.get('normalization_type') or 'use_ln'}); "
                              "interp models have none")
    # Clock/Pizza's code has no causal mask (REFERENCES §2): its configs are the ones with C / attn_coeff.
    if "causal" not in hints and ("attn_coeff" in d or "C" in d):
        hints["causal"] = False
    return hints


def _read_config_arg(config, path: Path) -> tuple[dict, str] | None:
    """(hints, source) from the config argument or a sidecar JSON next to the checkpoint."""
    if isinstance(config, ModelConfig):
        return config.to_dict(), "the given ModelConfig"
    if isinstance(config, Mapping):
        return config_hints(config, "the given config"), "the given config"
    if config is not None:
        file = Path(config)
    else:
        candidates = [path.with_suffix(".json"), path.parent / "config.json"]
        file = next((c for c in candidates if c.is_file() and c != path), None)
        if file is None:
            return None
    d = read_json_file(file)
    if not isinstance(d, dict):
        raise CheckpointError(f"{file}: config must be a JSON object, got {type(d).__name__}")
    if isinstance(d.get("model_config"), dict):  # one of our run.json files
        d = d["model_config"]
    return config_hints(d, str(file)), str(file)


# ---- finding the weights -------------------------------------------------------------------------
def _is_state_dict(x) -> bool:
    return isinstance(x, Mapping) and len(x) > 0 and all(isinstance(k, str) and torch.is_tensor(v) for k, v in x.items())


def _module_state(obj: Opaque, prefix: str = "") -> dict:
    """Parameters and buffers of a pickled nn.Module, read from its recorded state."""
    st = obj.state if isinstance(obj.state, dict) else {}
    skip = st.get("_non_persistent_buffers_set")  # not part of a state_dict either
    skip = skip if isinstance(skip, (set, frozenset, list, tuple)) else ()
    out = {prefix + k: v for part in ("_parameters", "_buffers") for k, v in (st.get(part) or {}).items()
           if torch.is_tensor(v) and k not in skip}
    for name, child in (st.get("_modules") or {}).items():
        if isinstance(child, Opaque):
            out.update(_module_state(child, f"{prefix}{name}."))
    return out


def _describe(obj) -> str:
    if isinstance(obj, Mapping):
        keys = list(obj)[:6]
        return f"a {type(obj).__name__} with keys {keys}{' ...' if len(obj) > 6 else ''}"
    if isinstance(obj, Opaque):
        return f"a pickled {obj.name}"
    return f"a {type(obj).__name__}"


def unwrap(obj, path: Path) -> tuple[dict, dict, str]:
    """(state_dict, config hints stored in the file, what the file was) from a loaded object."""
    if _is_state_dict(obj):
        return dict(obj), {}, "state dict"
    if isinstance(obj, Opaque) and "_parameters" in (obj.state if isinstance(obj.state, dict) else {}):
        state = _module_state(obj)
        if state:
            hints = {}
            cfg = obj.state.get("cfg") or obj.state.get("config")
            if isinstance(cfg, (Mapping, Opaque)):
                hints = config_hints(cfg if isinstance(cfg, Mapping) else cfg.state, f"{path} (its config)")
            return state, hints, f"pickled module {obj.name}"
    if isinstance(obj, Mapping):
        cfg = obj.get("config")
        cfg = cfg.state if isinstance(cfg, Opaque) else cfg
        hints = config_hints(cfg, f"{path} (its config)") if isinstance(cfg, Mapping) else {}
        if _is_state_dict(obj.get("model")):
            kind = "Grokking demo / Nanda run file" if "checkpoints" in obj or "train_losses" in obj else "{'model': ...} file"
            return dict(obj["model"]), hints, kind
        if _is_state_dict(obj.get("state_dict")):
            return dict(obj["state_dict"]), hints, "{'state_dict': ...} file"
        sds = obj.get("state_dicts")
        if isinstance(sds, (list, tuple)) and sds and _is_state_dict(sds[-1]):
            return dict(sds[-1]), hints, f"ARENA run file (last of {len(sds)} state dicts)"
    raise CheckpointError(f"{path}: found {_describe(obj)}, no model weights; {SUPPORTED}")


# ---- layouts -------------------------------------------------------------------------------------
LAYOUT_NAMES = {"hooked": "TransformerLens layout", "legacy": "Nanda-original / Clock-Pizza layout"}
_LEGACY_BLOCK = {"attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O", "attn.mask", "mlp.W_in", "mlp.b_in", "mlp.W_out", "mlp.b_out"}


_BLOCK = re.compile(r"blocks\.(\d+)\.")
_NDIM = {  # dimensions of each weight, per layout (block weights named without "blocks.{l}.")
    "hooked": {"embed.W_E": 2, "pos_embed.W_pos": 2, "unembed.W_U": 2, "unembed.b_U": 1, "attn.W_Q": 3, "attn.W_K": 3,
               "attn.W_V": 3, "attn.W_O": 3, "attn.b_Q": 2, "attn.b_K": 2, "attn.b_V": 2, "attn.b_O": 1, "mlp.W_in": 2,
               "mlp.W_out": 2, "mlp.b_in": 1, "mlp.b_out": 1},
    "legacy": {"embed.W_E": 2, "pos_embed.W_pos": 2, "unembed.W_U": 2, "attn.W_Q": 3, "attn.W_K": 3, "attn.W_V": 3,
               "attn.W_O": 2, "mlp.W_in": 2, "mlp.W_out": 2, "mlp.b_in": 1, "mlp.b_out": 1},
}


def _n_layers(state: dict, source: str) -> int:
    layers = set()
    for k in state:
        if k.startswith("blocks"):
            m = _BLOCK.match(k)
            if m is None:
                raise CheckpointError(f"{source}: unexpected weight name {k[:80]!r}")
            layers.add(int(m.group(1)))
    return max(layers) + 1


def _check_ndims(state: dict, layout: str, source: str) -> None:
    for k, v in state.items():
        want = _NDIM[layout].get(k.split(".", 2)[-1] if k.startswith("blocks.") else k)
        if want is not None and v.dim() != want:
            raise CheckpointError(f"{source}: {k} has shape {list(v.shape)}; the {LAYOUT_NAMES[layout]} needs {want} dimensions")


def detect_layout(state: dict, source: str) -> str:
    """'hooked' (TransformerLens) or 'legacy' (Nanda-original / Clock-Pizza), from names and shapes."""
    need = ["embed.W_E", "pos_embed.W_pos", "unembed.W_U", "blocks.0.attn.W_Q", "blocks.0.attn.W_O", "blocks.0.mlp.W_in"]
    missing = [k for k in need if k not in state]
    if missing:
        ln = [k for k in state if k.startswith("ln") or ".ln" in k]
        if ln:
            raise CheckpointError(f"{source}: the model has LayerNorm ({ln[0]}); interp models have none")
        raise CheckpointError(f"{source}: a state dict without {', '.join(missing[:3])} (has {list(state)[:4]} ...); {SUPPORTED}")
    W_O = state["blocks.0.attn.W_O"]
    if W_O.dim() not in (2, 3):
        raise CheckpointError(f"{source}: blocks.0.attn.W_O has shape {list(W_O.shape)}; expected 2 or 3 dimensions")
    layout = "hooked" if W_O.dim() == 3 else "legacy"  # [n_heads, d_head, d_model] vs [d_model, n_heads * d_head]
    _check_ndims(state, layout, source)
    return layout


def legacy_to_hooked(state: dict, source: str) -> dict:
    """Nanda-original / Clock-Pizza names and shapes -> HookedTransformer's (missing biases are 0)."""
    n_layers = _n_layers(state, source)
    top = {"embed.W_E", "pos_embed.W_pos", "unembed.W_U"}
    known = top | {f"blocks.{l}.{k}" for l in range(n_layers) for k in _LEGACY_BLOCK}
    extra = sorted(set(state) - known)
    if extra:
        raise CheckpointError(f"{source}: unexpected weights for the Nanda/Clock-Pizza layout: {', '.join(extra[:4])}")
    needed = top | {f"blocks.{l}.{k}" for l in range(n_layers) for k in _LEGACY_BLOCK if "W_" in k}
    missing = sorted(needed - set(state))
    if missing:
        raise CheckpointError(f"{source}: the Nanda/Clock-Pizza layout misses {', '.join(missing[:4])}")
    W_E, W_U = state["embed.W_E"], state["unembed.W_U"]
    d_model = W_U.shape[0]
    if W_E.dim() != 2 or W_E.shape[0] != d_model:
        raise CheckpointError(f"{source}: embed.W_E has shape {list(W_E.shape)}; this layout needs [d_model={d_model}, d_vocab]")
    out = {"embed.W_E": W_E.T, "pos_embed.W_pos": state["pos_embed.W_pos"], "unembed.W_U": W_U,
           "unembed.b_U": torch.zeros(W_U.shape[1])}
    for l in range(n_layers):
        g = lambda k: state[f"blocks.{l}.{k}"]  # noqa: E731
        n_heads, d_head, _ = g("attn.W_Q").shape
        if g("attn.W_O").shape[1] != n_heads * d_head:
            raise CheckpointError(f"{source}: blocks.{l}.attn.W_O has shape {list(g('attn.W_O').shape)}; "
                                  f"W_Q's {n_heads} heads of {d_head} need [d_model, {n_heads * d_head}]")
        for name in "QKV":  # [n_heads, d_head, d_model] -> [n_heads, d_model, d_head]
            out[f"blocks.{l}.attn.W_{name}"] = g(f"attn.W_{name}").transpose(1, 2)
            out[f"blocks.{l}.attn.b_{name}"] = torch.zeros(n_heads, d_head)
        # z is flattened head-major, (head, d_head), before W_O [d_model, n_heads * d_head]
        out[f"blocks.{l}.attn.W_O"] = einops.rearrange(g("attn.W_O"), "d (h e) -> h e d", h=n_heads)
        out[f"blocks.{l}.attn.b_O"] = torch.zeros(d_model)
        out[f"blocks.{l}.mlp.W_in"], out[f"blocks.{l}.mlp.W_out"] = g("mlp.W_in").T, g("mlp.W_out").T
        d_mlp = g("mlp.W_in").shape[0]
        out[f"blocks.{l}.mlp.b_in"] = state.get(f"blocks.{l}.mlp.b_in", torch.zeros(d_mlp))
        out[f"blocks.{l}.mlp.b_out"] = state.get(f"blocks.{l}.mlp.b_out", torch.zeros(d_model))
    return out


def _infer_p(d_vocab: int, d_vocab_out: int, eq: bool, diff: bool | None, source: str) -> tuple[int, bool]:
    """(p, diff_vocab) from the vocabulary sizes: d_vocab = p (2p with diff_vocab) + 1 with an `=`
    token; the output has p logits (TransformerLens demo) or one per input token (Nanda's original)."""
    base = d_vocab - int(eq)
    options = []
    for dv in ([diff] if diff is not None else [False, True]):
        p, rem = divmod(base, 2 if dv else 1)
        if rem == 0 and p >= 2 and d_vocab_out in (p, d_vocab):
            options.append((p, dv))
    if len(options) != 1:
        raise CheckpointError(f"{source}: cannot tell p from the shapes (d_vocab={d_vocab}, d_vocab_out={d_vocab_out}); "
                              "give a JSON config with p (or C) and diff_vocab")
    return options[0]


def infer_config(state: dict, hints: dict, legacy: bool, source: str) -> ModelConfig:
    """ModelConfig from HookedTransformer-layout weights plus hints (which win where weights can't tell)."""
    n_layers = _n_layers(state, source)
    d_vocab, d_model = state["embed.W_E"].shape
    n_heads, _, d_head = state["blocks.0.attn.W_Q"].shape
    shapes = {"d_model": d_model, "n_heads": n_heads, "d_head": d_head, "d_mlp": state["blocks.0.mlp.W_in"].shape[1],
              "n_layers": n_layers, "d_vocab": d_vocab, "d_vocab_out": state["unembed.W_U"].shape[1],
              "n_ctx": state["pos_embed.W_pos"].shape[0]}
    for k, v in shapes.items():
        if k in hints and hints[k] != v:
            raise CheckpointError(f"{source}: config says {k}={hints[k]} but the weights have {k}={v}")
    n_ctx = shapes["n_ctx"]
    if n_ctx not in (2, 3):
        raise CheckpointError(f"{source}: n_ctx={n_ctx}; only [a, b] (2) and [a, b, =] (3) inputs are supported")
    eq = hints.get("eq_token", n_ctx == 3)
    if eq != (n_ctx == 3):
        raise CheckpointError(f"{source}: config says eq token={eq} but the weights have n_ctx={n_ctx}")
    if "p" in hints:
        p, diff = hints["p"], hints.get("diff_vocab", False)
    else:
        p, diff = _infer_p(d_vocab, shapes["d_vocab_out"], eq, hints.get("diff_vocab"), source)
    if legacy and not eq and "attn_rate" not in hints:
        raise CheckpointError(f"{source}: a Clock/Pizza-layout state dict without its JSON config: the attention rate "
                              "(attn_coeff) is not in the weights; put the run's JSON next to it (same name .json or "
                              "config.json) or pass --config")
    if "biases" in hints:
        biases = hints["biases"]
    else:
        nonzero = {k.split(".")[-1] for k, v in state.items() if k.split(".")[-1].startswith("b_") and bool(v.ne(0).any())}
        biases = "all" if nonzero - {"b_in", "b_out"} else "mlp" if nonzero else "none"
    try:
        return ModelConfig(p=p, d_model=d_model, n_heads=n_heads, d_head=d_head, d_mlp=shapes["d_mlp"], n_layers=n_layers,
                           act_fn=hints.get("act_fn", "relu"), attn_rate=hints.get("attn_rate", 1.0), eq_token=eq,
                           diff_vocab=diff, causal=hints.get("causal", True), biases=biases)
    except ConfigError as e:
        raise CheckpointError(f"{source}: {e}") from None


def model_from_foreign_state(state: dict, hints: dict, source: str):
    """A model from a state dict in either layout: HookedTransformer's or Nanda-original's."""
    state = {k: v for k, v in state.items() if not k.endswith((".IGNORE",))}
    legacy = detect_layout(state, source) == "legacy"
    if legacy:
        state = legacy_to_hooked(state, source)
    state = {k: v for k, v in state.items() if not k.endswith(".mask")}
    state.setdefault("unembed.b_U", torch.zeros(state["unembed.W_U"].shape[1]))
    cfg = infer_config(state, hints, legacy, source)
    if state["unembed.W_U"].shape[1] < cfg.p:
        raise CheckpointError(f"{source}: unembed.W_U has {state['unembed.W_U'].shape[1]} outputs, fewer than p={cfg.p}")
    # Nanda's original unembeds to every input token (p + 1 logits): keep the p answers.
    state["unembed.W_U"], state["unembed.b_U"] = state["unembed.W_U"][:, : cfg.p], state["unembed.b_U"][: cfg.p]
    return model_from_state(cfg, state, source), LAYOUT_NAMES["legacy" if legacy else "hooked"]


# ---- entry points --------------------------------------------------------------------------------
def load_foreign(path, config=None):
    """A ready model (eval mode) from a checkpoint file that is not one of ours (see module doc).

    `model.source_format` says what the file was recognised as.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    kind = _sniff(path)
    note = None
    if kind == "safetensors" or (path.suffix == ".safetensors" and kind != "torch"):  # its reader names the fault
        tensors, meta = read_safetensors(path)
        if meta.get("format") == "interp":
            if config is not None:
                raise CheckpointError(f"{path}: an interp checkpoint carries its own config; leave out --config")
            ck = read_checkpoint(path)
            model = model_from_state(ck.model_config, ck.state_dict, str(path))
            model.checkpoint_info, model.source_format = ck, "interp checkpoint"
            return model
        state, file_hints, what = tensors, {}, "safetensors state dict"
    elif kind == "torch":
        obj, note = _torch_load(path)
        state, file_hints, what = unwrap(obj, path)
    else:
        raise CheckpointError(f"{path}: {kind}, not a checkpoint; {SUPPORTED}")
    given = _read_config_arg(config, path)
    hints = {**file_hints, **(given[0] if given else {})}
    model, layout = model_from_foreign_state(state, hints, str(path))
    parts = [what, layout] + ([f"config from {given[1]}"] if given else []) + ([note] if note else [])
    model.source_format = "; ".join(parts)
    return model


def load_foreign_dir(path, config=None):
    """A directory that is not one of our run directories: load its one checkpoint file."""
    path = Path(path)
    files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix in CHECKPOINT_SUFFIXES)
    if not files:
        raise CheckpointError(f"{path}: directory has no checkpoint (no run.json, final.safetensors or "
                              f"{'/'.join(CHECKPOINT_SUFFIXES)} file)")
    if len(files) > 1:
        names = ", ".join(f.name for f in files[:4]) + (" ..." if len(files) > 4 else "")
        raise CheckpointError(f"{path}: directory has {len(files)} checkpoint files ({names}); pass one of them")
    return load_foreign(files[0], config)
