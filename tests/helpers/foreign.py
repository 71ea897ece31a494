"""Files written the way other projects write them (REFERENCES §2, §3), from one of our models.

Each generator reproduces a project's file layout and its quirks, not its code:
- Clock/Pizza (Zhong et al.): `save/model_<run>.pt` (a state dict in Nanda's original layout,
  d_head = d_model // n_heads, 1-4 layers, unembedding to the whole vocabulary) beside
  `save/config_<run>.json` with flags as 0/1 or true/false and `attention_dir: "casual"`;
- the TransformerLens 2.x Grokking demo: `{"model", "config", "checkpoints", ...}` with the
  `HookedTransformerConfig` object pickled (numpy float64 fields) and numpy index arrays;
- a model trained with HookedTransformerConfig's defaults (normalization_type "LN", every bias trained,
  d_vocab_out = d_vocab = p + 1 with the `=` token), in the demo's file, as `{"state_dict", "config"}`
  or as a plain state dict;
- ARENA's run file `{"state_dicts", "train_losses", "test_losses", "epochs"}`;
- the progress-measures paper's trainer: `{"model", "train_loss", ..., "optimizer", "scheduler"}`
  with real AdamW / LambdaLR state dicts;
- TransformerLens 4 `TransformerBridge.state_dict()` (or the wrapped module's `_original_component`
  names), `.pt` or `.safetensors`, with the `TransformerBridgeConfig` fields as JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import sys
import types
from pathlib import Path

import einops
import numpy as np
import torch
from safetensors.torch import save_file

from interp.config import ModelConfig
from interp.model import Transformer


# ---- models -------------------------------------------------------------------------------------
def clock_pizza_model(p: int = 59, d_model: int = 128, n_heads: int = 4, n_layers: int = 1, attn_rate: float = 1.0,
                      eq_token: bool = False, diff_vocab: bool = False, act_fn: str = "relu", seed: int = 0) -> Transformer:
    """A model shaped as the Clock/Pizza code builds it: d_head = d_model // n_heads, d_mlp = 4 d_model,
    MLP biases, no causal mask. MLP biases get random values so a dropped bias shows in the logits."""
    cfg = ModelConfig(p=p, d_model=d_model, n_heads=n_heads, d_head=d_model // n_heads, d_mlp=4 * d_model,
                      n_layers=n_layers, attn_rate=attn_rate, eq_token=eq_token, diff_vocab=diff_vocab, causal=False,
                      act_fn=act_fn, biases="mlp")
    model = Transformer(cfg, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for block in model.blocks:
            block.mlp.b_in.copy_(torch.randn(block.mlp.b_in.shape, generator=g) * 0.3)
            block.mlp.b_out.copy_(torch.randn(block.mlp.b_out.shape, generator=g) * 0.3)
    return model.eval()


def legacy_state(model: Transformer, extra_outputs: int = 0) -> dict:
    """Our weights in the Nanda-original / Clock-Pizza layout (REFERENCES §2), as their code names them.
    `extra_outputs`: more unembedding columns (their models unembed to every input token)."""
    cfg = model.cfg
    W_U = model.W_U.detach()
    if extra_outputs:
        W_U = torch.cat([W_U, torch.randn(cfg.d_model, extra_outputs, generator=torch.Generator().manual_seed(7))], 1)
    sd = {"embed.W_E": model.W_E.detach().T.contiguous(), "pos_embed.W_pos": model.W_pos.detach().contiguous(),
          "unembed.W_U": W_U.contiguous()}
    for l, b in enumerate(model.blocks):
        for name in "QKV":
            sd[f"blocks.{l}.attn.W_{name}"] = getattr(b.attn, f"W_{name}").detach().transpose(1, 2).contiguous()
        sd[f"blocks.{l}.attn.W_O"] = einops.rearrange(b.attn.W_O.detach(), "h e d -> d (h e)").contiguous()
        sd[f"blocks.{l}.attn.mask"] = torch.tril(torch.ones(cfg.n_ctx, cfg.n_ctx))  # registered, never applied
        sd[f"blocks.{l}.mlp.W_in"] = b.mlp.W_in.detach().T.contiguous()
        sd[f"blocks.{l}.mlp.b_in"] = b.mlp.b_in.detach().contiguous()
        sd[f"blocks.{l}.mlp.W_out"] = b.mlp.W_out.detach().T.contiguous()
        sd[f"blocks.{l}.mlp.b_out"] = b.mlp.b_out.detach().contiguous()
    return sd


# ---- Clock/Pizza ---------------------------------------------------------------------------------
def clock_pizza_json(cfg: ModelConfig, flags: str = "int", run_id: str = "run") -> dict:
    """Their config JSON: every key their script writes, flags as 0/1 ("int") or true/false ("bool")."""
    flag = (lambda b: int(b)) if flags == "int" else bool
    return {"name": f"modadd_{cfg.p}", "funcs": f"lambda x: (x[0]+x[1])%{cfg.p}", "C": cfg.p, "n_heads": cfg.n_heads,
            "d_model": cfg.d_model, "n_layers": cfg.n_layers, "attention_dir": "casual",
            "act_fn": {"relu": "ReLU", "gelu": "GeLU"}[cfg.act_fn], "epoch": 20000, "batch_size": cfg.p**2,
            "lr": 0.001, "weight_decay": 2.0, "frac": 0.8, "attn_coeff": cfg.attn_rate, "runid": run_id,
            "diff_vocab": flag(cfg.diff_vocab), "eqn_sign": flag(cfg.eq_token), "func": None}


def write_clock_pizza_run(save_dir: Path, model: Transformer, run_id: str, flags: str = "int") -> Path:
    """`save_dir/model_<run>.pt` beside `save_dir/config_<run>.json`, as their training script saves."""
    save_dir.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    torch.save(legacy_state(model, extra_outputs=cfg.d_vocab - cfg.p), save_dir / f"model_{run_id}.pt")
    (save_dir / f"config_{run_id}.json").write_text(json.dumps(clock_pizza_json(cfg, flags, run_id)))
    return save_dir / f"model_{run_id}.pt"


# The released runs' shapes (REFERENCES §2: 0/1 and true/false flags, d_model 86 with 4 heads,
# multi-layer runs), small p where the label does not matter.
RELEASED = {
    "alpha0_intflags": dict(attn_rate=0.0, flags="int"),
    "alpha1_intflags": dict(attn_rate=1.0, flags="int"),
    "alpha_small_boolflags": dict(attn_rate=0.004, flags="bool"),
    "diff_vocab": dict(attn_rate=0.5, diff_vocab=True, flags="int"),
    "d_model86": dict(attn_rate=0.3, d_model=86, flags="int"),
    "two_layers": dict(attn_rate=1.0, n_layers=2, flags="int"),
    "three_layers": dict(attn_rate=0.0, n_layers=3, flags="bool"),
    "four_layers": dict(attn_rate=0.003, n_layers=4, flags="bool"),
}


def write_released_run(save_dir: Path, name: str, p: int = 59) -> tuple[Path, Transformer]:
    kw = dict(RELEASED[name])
    flags = kw.pop("flags")
    model = clock_pizza_model(p=p, **kw)
    return write_clock_pizza_run(save_dir, model, name, flags), model


# ---- TransformerLens 2.x Grokking demo -------------------------------------------------------------
@dataclasses.dataclass
class HookedTransformerConfig:
    """The fields a TransformerLens 2.x HookedTransformerConfig pickles (after its __post_init__):
    `attn_scale` and `initializer_range` are numpy float64, as np.sqrt makes them."""

    n_layers: int
    d_model: int
    n_ctx: int
    d_head: int
    n_heads: int
    d_mlp: int
    d_vocab: int
    d_vocab_out: int
    act_fn: str = "relu"
    normalization_type: str | None = "LN"  # TransformerLens's default
    attention_dir: str = "causal"
    attn_only: bool = False
    eps: float = 1e-5
    seed: int = 999
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    positional_embedding_type: str = "standard"
    use_attn_scale: bool = True
    attn_scale: float = -1.0
    initializer_range: float = -1.0
    init_mode: str = "gpt2"
    gated_mlp: bool = False
    n_params: int | None = None

    def __post_init__(self):
        self.attn_scale = np.sqrt(self.d_head)  # numpy float64
        self.initializer_range = 0.8 / np.sqrt(self.d_model)
        self.n_params = self.n_layers * (4 * self.d_model * self.n_heads * self.d_head + 2 * self.d_model * self.d_mlp)


@contextlib.contextmanager
def as_transformer_lens_class():
    """Pickle HookedTransformerConfig as transformer_lens.HookedTransformerConfig.HookedTransformerConfig,
    the name a real demo file records (TransformerLens 4 no longer has that module)."""
    name = "transformer_lens.HookedTransformerConfig"
    mod = types.ModuleType(name)
    mod.HookedTransformerConfig = HookedTransformerConfig
    old_module, old = HookedTransformerConfig.__module__, sys.modules.get(name)
    HookedTransformerConfig.__module__ = name
    sys.modules[name] = mod
    try:
        yield
    finally:
        HookedTransformerConfig.__module__ = old_module
        if old is None:
            del sys.modules[name]
        else:
            sys.modules[name] = old


def demo_config(model: Transformer, d_vocab_out: int | None = None) -> HookedTransformerConfig:
    """The config the demo pickles for `model` (the demo itself sets normalization_type=None; a model trained
    with the defaults has "LN"). `d_vocab_out`: TransformerLens's default is d_vocab."""
    c = model.cfg
    return HookedTransformerConfig(n_layers=c.n_layers, d_model=c.d_model, n_ctx=c.n_ctx, d_head=c.d_head,
                                   n_heads=c.n_heads, d_mlp=c.d_mlp, d_vocab=c.d_vocab,
                                   d_vocab_out=d_vocab_out or c.d_vocab_out, act_fn=c.act_fn,
                                   attention_dir="causal" if c.causal else "bidirectional",
                                   normalization_type=c.normalization_type, attn_only=c.attn_only, eps=c.eps)


def tl_default_model(p: int = 13, n_layers: int = 1, attn_only: bool = False, normalization_type: str = "LN",
                     seed: int = 0) -> Transformer:
    """A model shaped as HookedTransformerConfig's defaults build one for the Grokking task ([a, b, =]: d_vocab
    p + 1, causal, LayerNorm, all biases trained), with random biases and LayerNorm weights, as training
    leaves them (so a LayerNorm w or b dropped or swapped shows in the logits)."""
    cfg = ModelConfig(p=p, d_model=32, n_heads=4, d_head=8, d_mlp=64, n_layers=n_layers, biases="all",
                      normalization_type=normalization_type, attn_only=attn_only)
    model = Transformer(cfg, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, prm in model.named_parameters():
            last = name.rsplit(".", 1)[-1]
            if last.startswith("b_") or last == "b":
                prm.copy_(torch.randn(prm.shape, generator=g) * 0.2)
            elif last == "w":
                prm.copy_(1 + torch.randn(prm.shape, generator=g) * 0.2)
    return model.eval()


def tl_default_state(model: Transformer) -> dict:
    """`model.state_dict()` as HookedTransformer holds it with d_vocab_out = d_vocab (the default): the
    unembedding has one more output per extra input token (the `=`), random ones."""
    sd = dict(model.state_dict())
    extra = model.cfg.d_vocab - model.cfg.d_vocab_out
    g = torch.Generator().manual_seed(11)
    sd["unembed.W_U"] = torch.cat([sd["unembed.W_U"], torch.randn(model.cfg.d_model, extra, generator=g)], 1)
    sd["unembed.b_U"] = torch.cat([sd["unembed.b_U"], torch.randn(extra, generator=g)])
    return sd


def write_tl_default_file(path: Path, model: Transformer, layout: str = "demo") -> Path:
    """A model trained with HookedTransformerConfig's defaults, saved as the demo does ("demo"), as
    `{"state_dict", "config"}` ("state_dict+config", the config object pickled) or alone ("plain")."""
    sd = tl_default_state(model)
    cfg = demo_config(model, d_vocab_out=model.cfg.d_vocab)
    if layout == "plain":
        torch.save(sd, path)
        return path
    obj = ({"model": sd, "config": cfg, "checkpoints": [sd], "checkpoint_epochs": [0], "train_losses": [4.7],
            "test_losses": [4.7]} if layout == "demo" else {"state_dict": sd, "config": cfg})
    with as_transformer_lens_class():
        torch.save(obj, path)
    return path


def write_demo_file(path: Path, model: Transformer, numpy1: bool = False, extra: dict | None = None) -> Path:
    """The Grokking demo's save: state dict (with mask / IGNORE buffers), the pickled config object, the
    checkpoint list, losses and numpy index arrays. `numpy1`: numpy 1.x's module names for its
    reconstructors (`numpy.core.multiarray`), as files written before numpy 2 carry them."""
    sd = model.state_dict()
    n = model.cfg.p ** 2
    perm = np.random.default_rng(598).permutation(n)
    obj = {"model": sd, "config": demo_config(model), "checkpoints": [sd, sd], "checkpoint_epochs": [0, 100],
           "train_losses": [4.7, 0.01], "test_losses": [4.7, 3.2], "train_indices": perm[: int(0.3 * n)],
           "test_indices": perm[int(0.3 * n):], **(extra or {})}
    with as_transformer_lens_class():
        if not numpy1:
            torch.save(obj, path)
            return path
        buf = io.BytesIO()
        torch.save(obj, buf, _use_new_zipfile_serialization=False)  # a plain pickle stream: names are text
    data = buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    path.write_bytes(data)
    return path


# ---- ARENA and the progress-measures trainer --------------------------------------------------------
def write_arena_run(path: Path, models: list[Transformer]) -> Path:
    """ARENA's run file (Nanda's own runs): Nanda-original state dicts with p + 1 outputs."""
    torch.save({"state_dicts": [legacy_state(m, 1) for m in models], "train_losses": [4.7, 0.1],
                "test_losses": [4.7, 2.0], "epochs": list(range(0, 100 * len(models), 100))}, path)
    return path


def write_progress_measures_file(path: Path, model: Transformer, steps: int = 3) -> Path:
    """`post_training_save` of the progress-measures trainer: Nanda-original weights (p + 1 outputs), real
    AdamW and LambdaLR state dicts after a few updates, `epoch` the configured number."""
    sd = legacy_state(model, extra_outputs=1)
    params = [torch.nn.Parameter(v.clone()) for k, v in sd.items() if not k.endswith(".mask")]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(step / 10, 1))
    for _ in range(steps):
        for q in params:
            q.grad = torch.zeros_like(q)
        opt.step()
        sched.step()
    torch.save({"model": sd, "train_loss": 0.01, "test_loss": 0.02, "train_losses": [4.7, 0.01],
                "test_losses": [4.7, 0.02], "epoch": 40000, "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict()}, path)
    return path


# ---- TransformerLens 4 TransformerBridge ------------------------------------------------------------
BRIDGE_FIELDS = ("d_model", "d_head", "n_layers", "n_ctx", "n_heads", "d_mlp", "d_vocab", "d_vocab_out", "act_fn",
                 "normalization_type", "positional_embedding_type", "attention_dir")


def bridge_config_json(bridge, fields=BRIDGE_FIELDS, drop=()) -> dict:
    """The TransformerBridgeConfig fields a user keeps beside the weights (`fields="all"`: every field
    JSON can hold, the others as strings, as json.dump(vars(cfg), default=str) writes them)."""
    d = vars(bridge.cfg)
    keys = list(d) if fields == "all" else fields
    out = json.loads(json.dumps({k: d[k] for k in keys}, default=str))
    return {k: v for k, v in out.items() if k not in drop}


def write_bridge(path: Path, bridge, spelling: str = "bridge", config: dict | None = None,
                 config_path: Path | None = None) -> Path:
    """`bridge.state_dict()` ("bridge") or the wrapped modules' own names ("original": torch.nn.Module's
    state_dict, with `_original_component` in every path), saved by suffix: torch.save or safetensors.
    `config`: JSON written to `config_path` (default: the same stem .json)."""
    sd = bridge.state_dict() if spelling == "bridge" else torch.nn.Module.state_dict(bridge)
    if path.suffix == ".safetensors":
        save_file({k: v.detach().clone().contiguous() for k, v in sd.items()}, path)  # no shared storage there
    else:
        torch.save(sd, path)
    if config is not None:
        (config_path or path.with_suffix(".json")).write_text(json.dumps(config))
    return path
