"""interp: mechanistic interpretability of grokking on modular addition.

    import interp
    run = interp.train("tiny", out="checkpoints/tiny")    # or preset "nanda", "pizza-a", "pizza-b"
    model = interp.load("checkpoints/tiny")               # any supported checkpoint
    logits, cache = model.run_with_cache(interp.all_tokens(model.cfg))
    cache["pattern", 0]                                   # [p*p, n_heads, pos, pos]

Modules are named for what they hold (`interp.training`, `interp.classifier`, `interp.sweeps`);
the functions `interp.train`, `interp.classify`, `interp.sweep` are re-exported from them.
Names are imported on first use (PEP 562), so `import interp` and `interp --help` stay fast:
torch and TransformerLens load only when something needs them.
"""

import importlib
import importlib.util

__version__ = "0.1.0"

# name -> the module that defines it (a submodule of interp re-exported by name maps to itself)
_EXPORTS = {
    # configs and errors
    "ModelConfig": "config", "TrainConfig": "config",
    "CheckpointError": "errors", "ConfigError": "errors", "InterpError": "errors", "RunDirError": "errors",
    # model, data, checkpoints
    "Transformer": "model", "all_pairs": "data", "all_tokens": "data", "make_dataset": "data", "split": "data",
    "load": "formats", "save_checkpoint": "checkpoints",
    # training
    "PRESETS": "presets", "RECIPES": "presets", "TrainResult": "training", "evaluate": "training",
    "resume": "training", "train": "training", "SweepResult": "sweeps", "resume_sweep": "sweeps", "sweep": "sweeps",
    # analyses (Fourier probes, progress measures, clock/pizza metrics)
    "fourier": "fourier", "metrics": "metrics", "probes": "probes", "progress": "progress",
    "key_frequencies": "fourier", "Classification": "classifier", "classify": "classifier",
    # report (interp.plots: the figures)
    "report": "report", "write_report": "report",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        if name.startswith("_") or importlib.util.find_spec(f"interp.{name}") is None:
            raise AttributeError(f"module 'interp' has no attribute {name!r}")
        return importlib.import_module(f"interp.{name}")  # any submodule: interp.presets, interp.data, ...
    module = importlib.import_module(f"interp.{_EXPORTS[name]}")
    value = module if _EXPORTS[name] == name else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
