"""Config values as other projects write them, and where their config files sit.

A foreign config (Clock/Pizza's JSON, Nanda's, a TransformerLens config, TransformerBridgeConfig
fields, one of our run.json files) becomes `Hints`: the ModelConfig fields it states, each with
the key as the file spells it and the file, so that an error names what the user can find in
their file (`eqn_sign`, not our `eq_token`). Values are read as people write them: flags as
true/false, 0/1 or "True"; numbers as 23, 23.0, "23" or numpy scalars. Unknown keys are ignored.
Anything that does not say one thing is refused in one line.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from interp.config import ModelConfig
from interp.errors import CheckpointError
from interp.safeio import read_json_file

# config key in one of the known projects -> (ModelConfig field, kind)
KEYS = {
    "p": ("p", "int"), "C": ("p", "int"),
    "d_model": ("d_model", "int"), "n_heads": ("n_heads", "int"), "num_heads": ("n_heads", "int"),
    "d_head": ("d_head", "int"), "d_mlp": ("d_mlp", "int"), "n_layers": ("n_layers", "int"),
    "num_layers": ("n_layers", "int"), "d_vocab": ("d_vocab", "int"), "d_vocab_out": ("d_vocab_out", "int"),
    "n_ctx": ("n_ctx", "int"),
    "act_fn": ("act_fn", "act"), "act_type": ("act_fn", "act"),
    "attn_rate": ("attn_rate", "float"), "attn_coeff": ("attn_rate", "float"),
    "eq_token": ("eq_token", "bool"), "eqn_sign": ("eq_token", "bool"), "diff_vocab": ("diff_vocab", "bool"),
    "causal": ("causal", "bool"), "biases": ("biases", "str"),
    # HookedTransformerConfig / TransformerBridgeConfig names, which are also ours
    "normalization_type": ("normalization_type", "norm"), "eps": ("eps", "float"), "attn_only": ("attn_only", "bool"),
}
# TransformerLens writes -1 for "not set" in these (e.g. TransformerBridgeConfig's n_heads default)
UNSET_IF_NEGATIVE = {"n_heads", "d_vocab", "d_vocab_out", "d_mlp", "d_head"}
_TRUE, _FALSE = {"true", "1"}, {"false", "0"}
# TransformerLens config fields that change what the model computes; `check_tl_options` refuses
# the values interp's model does not compute.
TL_OPTIONS = ("positional_embedding_type", "gated_mlp", "final_rms", "parallel_attn_mlp", "scale_attn_by_inverse_layer_idx", "use_attn_scale", "attn_scale",
              "attn_scores_soft_cap", "output_logits_soft_cap")


def brief(x, depth: int = 2, width: int = 60) -> str:
    """A short, bounded description of any value from a file (never an unbounded repr: a 5,000-deep
    nested tuple or a huge int must not raise or flood a one-line error)."""
    if isinstance(x, str):
        return repr(x[:width]) + ("..." if len(x) > width else "")
    if x is None or isinstance(x, (bool, float, np.generic)):
        return repr(x)[:width]
    if isinstance(x, int):
        return str(x) if x.bit_length() < 200 else f"<int of {x.bit_length()} bits>"
    if isinstance(x, (tuple, list, set, frozenset)):
        if depth <= 0:
            return f"<{type(x).__name__} of {len(x)}>"
        items = [brief(v, depth - 1, 20) for v in list(x)[:4]]
        more = ", ..." if len(x) > 4 else ""
        return ("(%s)" if isinstance(x, tuple) else "[%s]") % (", ".join(items) + more)
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"<{type(x).__name__} {list(x.shape)} {x.dtype}>"
    return f"<{getattr(x, 'name', None) or type(x).__name__}>"[:width]


@dataclass(frozen=True)
class Hint:
    value: object
    key: str  # the key as the file spells it
    source: str  # the file (or "the given config")

    def where(self) -> str:
        """How an error cites it: the key and value as written, and the file."""
        return f"config says {self.key}={brief(self.value)} ({self.source})"


Hints = dict  # ModelConfig field (or a TransformerLens-only field such as attn_scale) -> Hint


def _refuse(source: str, key: str, value, want: str):
    raise CheckpointError(f"{source}: config key {key!r} must be {want}, got {brief(value)}")


def parse_value(value, kind: str, key: str, source: str):
    """One config value as `kind` (bool, int, float, act, str), read the way people write it."""
    if kind == "bool":
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, numbers.Real) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        _refuse(source, key, value, "true or false (or 1 / 0)")
    if kind in ("int", "float"):
        v = value
        if isinstance(v, str):
            try:
                v = float(v.strip())
            except ValueError:
                _refuse(source, key, value, "a number")
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            _refuse(source, key, value, "a number")
        if isinstance(v, numbers.Integral):
            v = int(v)
        elif not math.isfinite(v):
            _refuse(source, key, value, "a finite number")
        if kind == "float":
            return float(v)
        if isinstance(v, float):
            if not v.is_integer():
                _refuse(source, key, value, "a whole number")
            v = int(v)
        return v
    if kind == "norm":  # TransformerLens writes None (or, through str(), "None") for no LayerNorm
        if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
            return None
        if value not in ("LN", "LNPre"):
            _refuse(source, key, value, "None, 'LN' or 'LNPre' (RMS and other normalisations are not supported)")
        return value
    if kind == "act":
        act = str(value).strip().lower() if isinstance(value, str) else None
        if act not in ("relu", "gelu"):  # TransformerLens's "gelu" is the exact GELU, as F.gelu
            _refuse(source, key, value, "ReLU or GeLU (other activations are not supported)")
        return act
    if not isinstance(value, str):
        _refuse(source, key, value, "a string")
    return value


def config_hints(d: Mapping, source: str) -> Hints:
    """Hints from a config dict of any supported project (unknown keys ignored)."""
    hints: Hints = {}
    for key, (field, kind) in KEYS.items():
        if key in d and d[key] is not None:
            value = parse_value(d[key], kind, key, source)
            if field in UNSET_IF_NEGATIVE and value == -1:
                continue
            hints[field] = Hint(value, key, source)
    clock_pizza = "attn_coeff" in d or "C" in d
    if "attention_dir" in d and not clock_pizza and "causal" not in hints:
        value = d["attention_dir"]
        if value not in ("causal", "bidirectional"):
            _refuse(source, "attention_dir", value, "'causal' or 'bidirectional'")
        hints["causal"] = Hint(value == "causal", "attention_dir", source)
    if clock_pizza and "causal" not in hints:
        # The Clock/Pizza code never applies its mask, whatever `attention_dir` ("casual") says.
        hints["causal"] = Hint(False, "attention_dir" if "attention_dir" in d else "C", source)
    for key in TL_OPTIONS:
        if key in d and d[key] is not None:
            hints[key] = Hint(d[key], key, source)
    return hints


def check_tl_options(hints: Hints, source: str) -> None:
    """Refuse TransformerLens options our model does not compute."""
    def bad(field, want):
        raise CheckpointError(f"{source}: {hints[field].where()}; interp models need {want}")

    if "positional_embedding_type" in hints and hints["positional_embedding_type"].value != "standard":
        bad("positional_embedding_type", "learned positional embeddings ('standard')")
    for field in ("gated_mlp", "final_rms", "parallel_attn_mlp", "scale_attn_by_inverse_layer_idx"):
        if field in hints and parse_value(hints[field].value, "bool", hints[field].key, hints[field].source):
            bad(field, f"{field} false")
    for field in ("attn_scores_soft_cap", "output_logits_soft_cap"):  # TransformerLens: -1 = off
        if field in hints and parse_value(hints[field].value, "float", hints[field].key, hints[field].source) > 0:
            bad(field, f"no {field.replace('_', ' ')} (-1)")
    if "use_attn_scale" in hints and not parse_value(hints["use_attn_scale"].value, "bool", "use_attn_scale",
                                                     hints["use_attn_scale"].source):
        bad("use_attn_scale", "attention scores scaled by 1/sqrt(d_head)")


def check_attn_scale(hints: Hints, d_head: int, source: str) -> None:
    h = hints.get("attn_scale")
    if h is None:
        return
    scale = parse_value(h.value, "float", h.key, h.source)
    if scale > 0 and not math.isclose(scale, math.sqrt(d_head), rel_tol=1e-6):  # TransformerLens: -1 = default
        raise CheckpointError(f"{source}: {h.where()}; interp models scale attention by sqrt(d_head) = "
                              f"{math.sqrt(d_head):.6g}")


def sidecar_candidates(path: Path) -> list[Path]:
    """Where each project puts a checkpoint's JSON config: the same stem (`run.pt` + `run.json`),
    Clock/Pizza's `config_<run>.json` beside `model_<run>.pt`, then `config.json` in the directory."""
    out = [path.with_suffix(".json")]
    if path.stem.startswith("model_"):
        out.append(path.parent / f"config_{path.stem[len('model_'):]}.json")
    out.append(path.parent / "config.json")
    return [c for c in out if c != path]


def given_hints(config, path: Path) -> Hints | None:
    """Hints from the `config` argument (a JSON path, a dict or a ModelConfig), else from a sidecar
    JSON beside the checkpoint; None when there is neither."""
    if isinstance(config, ModelConfig):
        # every field, defaults too (to_dict leaves some out): a given config says all of them
        return {k: Hint(getattr(config, k), k, "the given ModelConfig") for k in config.__dataclass_fields__}
    if isinstance(config, Mapping):
        return _hints_for(path, config, "the given config")
    if config is not None:
        file = Path(config)
    else:
        file = next((c for c in sidecar_candidates(path) if c.is_file()), None)
        if file is None:
            return None
    d = read_json_file(file)
    if not isinstance(d, dict):
        raise CheckpointError(f"{file}: config must be a JSON object, got {type(d).__name__}")
    if isinstance(d.get("model_config"), dict):  # one of our run.json files
        d = d["model_config"]
    return _hints_for(path, d, str(file))


def _hints_for(path: Path, d: Mapping, source: str) -> Hints:
    try:
        return config_hints(d, source)
    except CheckpointError as e:  # name the checkpoint too: the config is refused on its behalf
        raise CheckpointError(f"{path}: {e}") from None


def describe_source(hints: Hints | None) -> str | None:
    sources = sorted({h.source for h in (hints or {}).values()})
    return f"config from {', '.join(sources)}" if sources else None
