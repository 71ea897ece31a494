"""Validated configs: the model's shape and the training recipe.

Every field is checked at construction, so a bad value fails where it is written with
a message that names the field, never deep inside training.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from interp.errors import ConfigError
from interp.tasks import FORMULAS, PRIME_TASKS, TASKS, is_prime

ACT_FNS = ("relu", "gelu")
BIASES = ("none", "mlp", "all")
# Weight initialisation (REFERENCES §2): "nanda" every matrix N(0, 1/d_model), W_U N(0, 1/d_vocab)
# (Nanda et al.'s code); "zhong" the same but W_in N(0, 1/d_mlp) (Zhong et al.'s training script).
INITS = ("nanda", "zhong")
# Warm-up schedule: "nanda" lr * min(1, (s + 1) / warmup_steps) on update s + 1 (the first update
# already moves); "zhong" Zhong et al.'s LambdaLR(min(s / warmup_steps, 1)): update 1 has lr 0
# (it only fills AdamW's moments), the full rate is reached on update warmup_steps + 1.
WARMUPS = ("nanda", "zhong")
# The Engine's training forward: "model" (the model's own forward, last position only) or "tables"
# (interp.batched.pair_logits: the same function from token tables, ~1.4x cheaper steps on nanda, other
# float rounding; one-layer models only, others use the model's forward).
FORWARDS = ("model", "tables")
# LayerNorm as TransformerLens computes it (REFERENCES §5): None (no LayerNorm: Nanda's and Clock/Pizza's
# models), "LN" (centre, divide by sqrt(var + eps), times w plus b) or "LNPre" (the same without w, b).
NORMALIZATIONS = (None, "LN", "LNPre")
# Fields added after checkpoints were first written: to_dict leaves them out at their default, so a model
# without them serialises (checkpoint metadata, run.json, sweep tables) exactly as before.
_OMIT_AT_DEFAULT = {"normalization_type": None, "eps": 1e-5, "attn_only": False, "task": "add"}
# Gradient filter between backward and AdamW (Grokfast, Lee et al. 2024; REFERENCES §5), per element:
# "ema" g + lamb * mu, mu <- alpha mu + (1 - alpha) g, mu starting at the first gradient; "ma" g + lamb *
# (mean of the last w gradients, this one included), no filtering until w gradients exist (as the
# paper's code). interp/gradfilters.py has both.
GRAD_FILTERS = ("none", "ema", "ma")


def _show(v) -> str:
    """repr(v) cut to one short line, whatever the value (even an int too long to print)."""
    try:
        r = repr(v)
    except ValueError:  # beyond Python's int-to-str digit limit
        r = f"<{type(v).__name__} too long to print>"
    return r if len(r) <= 60 else r[:57] + "..."


def _int(obj, name: str, lo: int | None = None) -> None:
    v = getattr(obj, name)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{type(obj).__name__}.{name} must be an integer, got {_show(v)}")
    if lo is not None and v < lo:
        raise ConfigError(f"{type(obj).__name__}.{name} must be >= {lo}, got {_show(v)}")
    if v >= 2**63:  # torch sizes and seeds are 64-bit
        raise ConfigError(f"{type(obj).__name__}.{name} must be < 2**63, got {_show(v)}")


def _float(obj, name: str, lo: float, hi: float, lo_open=False, hi_open=False) -> None:
    v = getattr(obj, name)
    try:
        finite = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise ConfigError(f"{type(obj).__name__}.{name} must be a finite number, got {_show(v)}")
    bad_lo = v <= lo if lo_open else v < lo
    bad_hi = v >= hi if hi_open else v > hi
    if bad_lo or bad_hi:
        rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ConfigError(f"{type(obj).__name__}.{name} must be in {rng}, got {_show(v)}")


def _bool(obj, name: str) -> None:
    if not isinstance(getattr(obj, name), bool):
        raise ConfigError(f"{type(obj).__name__}.{name} must be true or false, got {_show(getattr(obj, name))}")


class _Config:
    """Shared (de)serialisation: configs travel as JSON inside checkpoint metadata."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        if not isinstance(d, dict):
            raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(_show(k) for k in set(d) - known)
        if unknown:
            raise ConfigError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ModelConfig(_Config):
    """Shape of a one-layer (or deeper) modular-arithmetic transformer, and its task (interp.tasks).

    Covers Nanda et al. (`[a, b, =]`, causal) and Clock/Pizza (`[a, b]`, no mask, attention
    rate alpha), and models trained with TransformerLens's defaults (LayerNorm, attention-only).
    The output vocabulary is always the p residues.
    """

    p: int = 113  # modulus: the answers (see task) are residues mod p
    d_model: int = 128  # width of the residual stream
    n_heads: int = 4  # attention heads
    d_head: int = 32  # width of each head (d_head * n_heads = d_model)
    d_mlp: int = 512  # MLP neurons
    n_layers: int = 1  # transformer blocks
    act_fn: str = "relu"  # MLP activation: relu or gelu
    attn_rate: float = 1.0  # alpha: pattern = alpha*softmax(QK^T/sqrt(d_head)) + (1-alpha)*J
    eq_token: bool = True  # append an `=` token (Nanda); False gives Clock/Pizza's [a, b]
    diff_vocab: bool = False  # b tokens offset by p (Clock/Pizza option)
    causal: bool = True  # causal attention mask (Nanda); Clock/Pizza has none
    biases: str = "none"  # which biases are trained: none (frozen at 0), mlp, all
    init: str = "nanda"  # weight initialisation, see INITS
    normalization_type: str | None = None  # LayerNorm before attention, MLP and unembedding, see NORMALIZATIONS
    eps: float = 1e-5  # LayerNorm's epsilon (TransformerLens's name and default)
    attn_only: bool = False  # no MLP (TransformerLens's attn_only); d_mlp and act_fn are then unused
    task: str = "add"  # the answer mod p: add a+b, sub a-b, mul a*b, div a/b (mul, div: a, b != 0, prime p), sq_sum a^2+b^2, quad a^2+ab+b^2

    def __post_init__(self):
        _int(self, "p", 2)
        for name in ("d_model", "n_heads", "d_head", "d_mlp", "n_layers"):
            _int(self, name, 1)
        # n_heads * d_head may differ from d_model, as TransformerLens allows and the Clock/Pizza code
        # produces (d_head = d_model // n_heads: d_model 86, 4 heads -> d_head 21, W_O [86, 84]).
        if self.act_fn not in ACT_FNS:
            raise ConfigError(f"ModelConfig.act_fn must be one of {ACT_FNS}, got {_show(self.act_fn)}")
        _float(self, "attn_rate", 0.0, 1.0)
        for name in ("eq_token", "diff_vocab", "causal"):
            _bool(self, name)
        if self.biases not in BIASES:
            raise ConfigError(f"ModelConfig.biases must be one of {BIASES}, got {_show(self.biases)}")
        if self.init not in INITS:
            raise ConfigError(f"ModelConfig.init must be one of {INITS}, got {_show(self.init)}")
        if self.normalization_type not in NORMALIZATIONS:
            raise ConfigError(f"ModelConfig.normalization_type must be one of {NORMALIZATIONS}, "
                              f"got {_show(self.normalization_type)}")
        _float(self, "eps", 0.0, 1.0, lo_open=True)
        _bool(self, "attn_only")
        if self.task not in TASKS:
            raise ConfigError(f"ModelConfig.task must be one of {TASKS}, got {_show(self.task)}")
        if self.task in PRIME_TASKS and (self.p < 3 or not is_prime(self.p)):
            # only mod a prime are the nonzero residues a group under multiplication (interp.tasks); p = 2
            # leaves a group of one element
            raise ConfigError(f"ModelConfig.task {self.task!r} ({FORMULAS[self.task]}) needs a prime p >= 3, "
                              f"got p={_show(self.p)}")

    def to_dict(self) -> dict[str, Any]:
        # fields added later are left out at their defaults: files of models without them stay byte for byte
        # as before (fixtures regenerate exactly, older readers read them); read back as the default
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if k not in _OMIT_AT_DEFAULT or v != _OMIT_AT_DEFAULT[k]}

    @classmethod
    def with_width(cls, d_model: int, **kw) -> "ModelConfig":
        """Config of width d_model with the references' proportions (4 heads, d_mlp = 4 d_model)."""
        n_heads = kw.pop("n_heads", 4 if d_model % 4 == 0 else 1)
        return cls(d_model=d_model, n_heads=n_heads, d_head=d_model // n_heads, d_mlp=4 * d_model, **kw)

    @property
    def n_ctx(self) -> int:
        return 3 if self.eq_token else 2

    @property
    def d_vocab(self) -> int:
        return self.p * (2 if self.diff_vocab else 1) + (1 if self.eq_token else 0)

    @property
    def d_vocab_out(self) -> int:
        return self.p

    @property
    def eq_id(self) -> int | None:
        return self.d_vocab - 1 if self.eq_token else None


@dataclass(frozen=True)
class TrainConfig(_Config):
    """Full-batch AdamW on (a + b) mod p. Defaults: Nanda et al.'s published recipe."""

    train_frac: float = 0.3  # fraction of the p^2 pairs to train on
    steps: int = 25_000  # optimiser updates (full batch): the step cap
    lr: float = 1e-3  # AdamW learning rate
    weight_decay: float = 1.0  # AdamW (decoupled) weight decay
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW betas, as B1:B2 on the command line
    warmup_steps: int = 10  # linear learning-rate warm-up (updates)
    warmup: str = "nanda"  # warm-up schedule, see WARMUPS
    grad_filter: str = "none"  # gradient filter before AdamW (Grokfast), see GRAD_FILTERS
    grokfast_alpha: float = 0.98  # EMA filter's decay alpha (grad_filter "ema")
    grokfast_lamb: float = 2.0  # filter gain lamb: g + lamb * (EMA or window mean)
    grokfast_window: int = 100  # MA filter's window w (grad_filter "ma"; w x params of memory)
    seed: int = 999  # model initialisation seed
    data_seed: int = 598  # train/test split seed
    log_every: int = 100  # steps between history rows (train/test loss and accuracy, stop checks)
    checkpoint_every: int = 1000  # analysis snapshots (and the resume point)
    stop_at_test_acc: float | None = None  # early stop once test accuracy reaches this
    clip_grad: float | None = None  # clip the gradient norm to this (none = off)
    stop_when_clean: bool = False  # stop once the circuit is clean (interp.stopping)
    # with stop_when_clean, what "settled" means over the stop's window (interp.stopping):
    stop_weight_change: float | None = 0.01  # sum of squared weights moved by less than this (relative); none = not asked
    stop_gs_change: float | None = None  # gradient symmetricity moved by less than this; none = not measured
    forward: str = "model"  # training forward, see FORWARDS: "tables" is faster, rounds differently

    def __post_init__(self):
        _float(self, "train_frac", 0.0, 1.0, lo_open=True, hi_open=True)
        _int(self, "steps", 1)
        _float(self, "lr", 0.0, 10.0, lo_open=True)
        _float(self, "weight_decay", 0.0, 1e3)
        if not (isinstance(self.betas, tuple) and len(self.betas) == 2):
            raise ConfigError(f"TrainConfig.betas must be a pair of numbers, got {_show(self.betas)}")
        for b in self.betas:
            if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 <= b < 1:
                raise ConfigError(f"TrainConfig.betas must be in [0, 1), got {_show(self.betas)}")
        _int(self, "warmup_steps", 0)
        if self.warmup not in WARMUPS:
            raise ConfigError(f"TrainConfig.warmup must be one of {WARMUPS}, got {_show(self.warmup)}")
        if self.grad_filter not in GRAD_FILTERS:
            raise ConfigError(f"TrainConfig.grad_filter must be one of {GRAD_FILTERS}, got {_show(self.grad_filter)}")
        _float(self, "grokfast_alpha", 0.0, 1.0, hi_open=True)
        _float(self, "grokfast_lamb", 0.0, 100.0)
        if self.grad_filter != "none" and self.grokfast_lamb == 0:
            raise ConfigError(f"TrainConfig.grokfast_lamb must be > 0 with grad_filter {self.grad_filter!r} "
                              "(a filter of gain 0 changes nothing: use grad_filter 'none')")
        _int(self, "grokfast_window", 1)
        _int(self, "seed", 0)
        _int(self, "data_seed", 0)
        _int(self, "log_every", 1)
        _int(self, "checkpoint_every", 1)
        if self.stop_at_test_acc is not None:
            _float(self, "stop_at_test_acc", 0.0, 1.0, lo_open=True)
        if self.clip_grad is not None:
            _float(self, "clip_grad", 0.0, 1e6, lo_open=True)
        _bool(self, "stop_when_clean")
        for name in ("stop_weight_change", "stop_gs_change"):
            if getattr(self, name) is not None:
                _float(self, name, 0.0, 10.0, lo_open=True)
        if self.forward not in FORWARDS:
            raise ConfigError(f"TrainConfig.forward must be one of {FORWARDS}, got {_show(self.forward)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return super().from_dict(upgrade_train_dict(d))


def upgrade_train_dict(d: Any) -> Any:
    """A TrainConfig dict in today's field names. Run directories and checkpoints written before
    grad_filter carry `grokfast_lambda` (the EMA filter's gain, 0 = off): it becomes `grokfast_lamb`,
    with grad_filter "ema" when it is > 0 and "none" otherwise, so an old run loads, resumes and
    trains exactly as it did. A dict giving both the old name and a new one is refused (which wins
    would be a guess). Anything not a dict is returned as it is, for from_dict to refuse."""
    if not isinstance(d, dict) or "grokfast_lambda" not in d:
        return d
    clash = sorted({"grad_filter", "grokfast_lamb"} & set(d))
    if clash:
        raise ConfigError(f"TrainConfig.grokfast_lambda is the old name of grokfast_lamb; give one of them, "
                          f"not grokfast_lambda with {', '.join(clash)}")
    d = dict(d)
    lamb = d.pop("grokfast_lambda")
    on = isinstance(lamb, (int, float)) and not isinstance(lamb, bool) and lamb > 0
    return {**d, "grokfast_lamb": lamb, "grad_filter": "ema" if on else "none"}
