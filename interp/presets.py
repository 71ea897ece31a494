"""Named setups. A preset fixes the task and architecture (from the references); a recipe picks
the optimisation settings. Each preset's default recipe, "published", is the paper's own.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import tokenize
from typing import Any

from interp import config
from interp.config import ModelConfig, TrainConfig
from interp.errors import ConfigError

# Nanda et al. 2023 (REFERENCES §1): p = 113, [a, b, =], causal, biases frozen at 0, 30 % train.
NANDA = (ModelConfig(), TrainConfig(steps=25_000, log_every=100, checkpoint_every=250))

# Zhong et al. 2023 (REFERENCES §2): p = 59, [a, b], no mask, MLP biases only, 80 % train, wd 2.
# Their code's choices: W_in ~ N(0, 1/d_mlp) (init "zhong") and a warm-up whose first update has lr 0.
_PIZZA_MODEL = ModelConfig(p=59, eq_token=False, causal=False, biases="mlp", init="zhong")
_PIZZA_TRAIN = TrainConfig(train_frac=0.8, steps=20_000, lr=1e-3, weight_decay=2.0, warmup_steps=10, warmup="zhong",
                           seed=0, data_seed=0, log_every=100, checkpoint_every=1000)

PRESETS: dict[str, tuple[ModelConfig, TrainConfig]] = {
    "nanda": NANDA,
    "pizza-a": (_PIZZA_MODEL.replace(attn_rate=0.0), _PIZZA_TRAIN),  # Model A: constant attention
    "pizza-b": (_PIZZA_MODEL.replace(attn_rate=1.0), _PIZZA_TRAIN),  # Model B: standard attention
    # Seconds on a CPU, for tests and demos: a small Clock/Pizza-layout model.
    "tiny": (ModelConfig.with_width(32, p=23, eq_token=False, causal=False, biases="mlp"),
             TrainConfig(train_frac=0.8, steps=1500, lr=3e-3, weight_decay=1.0, warmup_steps=10, seed=0,
                         data_seed=0, log_every=25, checkpoint_every=250, stop_at_test_acc=1.0)),
}

# Recipe overrides of TrainConfig per preset; "published" is the preset as written above.
RECIPES: dict[str, dict[str, dict]] = {name: {"published": {}} for name in PRESETS}

# "fast": the same task and architecture, optimised to generalise in a few hundred steps (learning
# rate and weight decay chosen by scripts/tune_recipes.py on 8 (model seed, data seed) pairs by the
# worst seed), and trained on until the circuit is clean (interp.stopping, thresholds from
# scripts/study_clean_stop.py), with a step cap. docs/performance.md has the measurements.
# Snapshots every 20 (nanda) / 10 (Clock/Pizza) steps: a few dozen per run, and few fsyncs.
RECIPES["nanda"]["fast"] = dict(lr=7e-3, weight_decay=5.0, warmup_steps=50, steps=1500, stop_at_test_acc=None,
                                stop_when_clean=True, log_every=10, checkpoint_every=20)
# Clock/Pizza: only the learning rate changes; weight decay, which shapes the circuit, stays 2.
_PIZZA_FAST = dict(lr=1e-2, steps=1000, stop_at_test_acc=None, stop_when_clean=True, log_every=10, checkpoint_every=10)
RECIPES["pizza-a"]["fast"] = _PIZZA_FAST
# Standard attention (α 1) turns pizza -> mixed -> clock long after W_E has settled, and its weight norm
# keeps rising at this learning rate, so its clean stop waits instead for the verdict's own measure:
# gradient symmetricity within 0.02 over 3 checks 100 steps apart (no weight criterion). Chosen by
# replaying 8 seeds (0:0-7:7, snapshots every 100 to 2000) and checked on 8 other runs (seeds 100-107)
# (docs/performance.md, "pizza-b stops on its own").
RECIPES["pizza-b"]["fast"] = dict(_PIZZA_FAST, steps=2500, log_every=100, checkpoint_every=50,
                                  stop_weight_change=None, stop_gs_change=0.02)
# "watch": grokking you can watch in a couple of minutes (the published recipe at 3x the learning
# rate): train accuracy passes 99 % by step ~70, test accuracy follows ~1200-1400 steps later;
# it trains on to a clean circuit.
RECIPES["nanda"]["watch"] = dict(lr=3e-3, steps=6000, log_every=25, checkpoint_every=50, stop_at_test_acc=None,
                                 stop_when_clean=True)
DESCRIPTIONS: dict[str, str] = {
    "nanda": "Nanda et al. 2023: p=113, [a, b, =], d_model 128, 30% train, AdamW lr 1e-3 wd 1",
    "pizza-a": "Zhong et al. 2023 Model A: p=59, constant attention (alpha 0), 80% train, wd 2 -> pizza",
    "pizza-b": "Zhong et al. 2023 Model B: p=59, standard attention (alpha 1), 80% train, wd 2 -> clock",
    "tiny": "p=23, d_model 32, Clock/Pizza layout: trains in seconds, for tests and demos",
}


OPTIONAL = ("stop_at_test_acc", "clip_grad", "stop_weight_change", "stop_gs_change")  # TrainConfig fields whose None is a setting


def resolve(preset: str | None, recipe: str | None, model_config: ModelConfig | None,
            train_config: TrainConfig | None, overrides: dict) -> tuple[ModelConfig, TrainConfig]:
    """(ModelConfig, TrainConfig) from a preset + recipe, explicit configs and field overrides."""
    if preset is None:
        mcfg, tcfg = model_config or ModelConfig(), train_config or TrainConfig()
        if recipe not in (None, "published"):
            raise ConfigError(f"recipe {recipe!r} needs a preset")
    else:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        mcfg, tcfg = PRESETS[preset]
        recipe = recipe or "published"
        if recipe not in RECIPES[preset]:
            raise ConfigError(f"unknown recipe {recipe!r} for preset {preset!r}; choose one of {', '.join(RECIPES[preset])}")
        tcfg = tcfg.replace(**RECIPES[preset][recipe])
        mcfg, tcfg = model_config or mcfg, train_config or tcfg
    if "grokfast_lambda" in overrides:  # the filter gain's old name, from scripts written before grad_filter
        overrides = config.upgrade_train_dict({k: v for k, v in overrides.items() if v is not None or k in OPTIONAL})
    m_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    t_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - m_fields - t_fields)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}")
    m_over = {k: v for k, v in overrides.items() if k in m_fields and v is not None}
    # None means "not given", except for the optional fields, where it switches the feature off.
    t_over = {k: v for k, v in overrides.items() if k in t_fields and (v is not None or k in OPTIONAL)}
    if "d_model" in m_over and not {"d_head", "d_mlp", "n_heads"} & set(m_over):
        # Changing the width alone keeps the references' proportions (4 heads, d_mlp = 4 d_model).
        base = {k: v for k, v in mcfg.to_dict().items() if k not in ("d_model", "d_head", "d_mlp", "n_heads")}
        base.update({k: v for k, v in m_over.items() if k != "d_model"})
        return ModelConfig.with_width(m_over["d_model"], **base), tcfg.replace(**t_over)
    return mcfg.replace(**m_over), tcfg.replace(**t_over)


# ---- the settings a user can give: every ModelConfig / TrainConfig field --------------------------
@dataclasses.dataclass(frozen=True)
class Setting:
    name: str  # the field's name; the command-line flag is --name-with-dashes
    kind: str  # its annotation: "int", "float", "bool", "str", "float | None", "tuple[float, float]"
    default: Any
    help: str
    owner: str  # "ModelConfig" or "TrainConfig"
    choices: tuple | None = None  # the allowed values of a field that has a fixed set


# Fields whose values form a fixed set (interp/config.py holds the sets).
_CHOICES = {"act_fn": config.ACT_FNS, "biases": config.BIASES, "normalization_type": config.NORMALIZATIONS,
            "task": config.TASKS, "grad_filter": config.GRAD_FILTERS}


def _field_comments(cls) -> dict[str, str]:
    """Field name -> the comment on its line in the class source (`p: int = 113  # modulus`)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    out, line_name = {}, {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.string in names and tok.start[1] == 4:
            line_name[tok.start[0]] = tok.string
        elif tok.type == tokenize.COMMENT and tok.start[0] in line_name:
            out[line_name[tok.start[0]]] = tok.string.lstrip("# ").strip()
    return out


def settings() -> dict[str, Setting]:
    """Every config field, typed, with its default and help: field metadata["help"], else the comment
    beside the field in interp/config.py. The CLI's training flags are generated from this, so a new
    field is a new flag."""
    out = {}
    for cls in (ModelConfig, TrainConfig):
        comments = _field_comments(cls)
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            text = f.metadata.get("help") or comments.get(f.name) or f"{cls.__name__}.{f.name}"
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            out[f.name] = Setting(f.name, kind, default, text, cls.__name__, _CHOICES.get(f.name))
    return out


def parse_value(name: str, text: str) -> Any:
    """A command-line value for config field `name`, typed like the field (e.g. '0.5' -> 0.5;
    'none' for an optional field; a pair as 'A:B')."""
    fields = settings()
    if name not in fields:
        raise ConfigError(f"unknown setting {name!r}; choose from {', '.join(sorted(fields))}")
    kind, text = fields[name].kind, text.strip()
    try:
        if kind.endswith("| None") and text.lower() == "none":
            return None
        if kind.startswith("int"):
            return int(text)
        if kind.startswith("float"):
            return float(text)
        if kind == "bool":
            return {"true": True, "false": False, "1": True, "0": False}[text.lower()]
        if kind in ("str", "str | None"):
            return text
        if kind.startswith("tuple[float"):
            return tuple(float(v) for v in text.split(":"))
    except (ValueError, KeyError):
        raise ConfigError(f"{name}: cannot read {text!r} as {kind}") from None
    raise ConfigError(f"{name} ({kind}) cannot be set from the command line")
