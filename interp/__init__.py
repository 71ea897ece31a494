"""interp: mechanistic interpretability of grokking on modular addition.

    import interp
    run = interp.train("tiny", out="checkpoints/tiny")    # or preset "nanda", "pizza-a", "pizza-b"
    model = interp.load("checkpoints/tiny")               # any supported checkpoint
    logits, cache = model.run_with_cache(interp.all_tokens(model.cfg))
    cache["pattern", 0]                                   # [p*p, n_heads, pos, pos]

Modules are named for what they hold (`interp.training`, `interp.classifier`, `interp.sweeps`);
the functions `interp.train`, `interp.classify`, `interp.sweep` are re-exported from them.
"""

__version__ = "0.1.0"

from interp.config import ModelConfig, TrainConfig
from interp.errors import CheckpointError, ConfigError, InterpError, RunDirError
from interp.model import Transformer
from interp.data import all_pairs, all_tokens, make_dataset, split
from interp.checkpoints import save_checkpoint
from interp.formats import load
from interp.presets import PRESETS, RECIPES
from interp.training import TrainResult, evaluate, resume, train
from interp.sweeps import SweepResult, resume_sweep, sweep
from interp import fourier, metrics, probes, progress  # Fourier probes, progress measures, clock/pizza metrics
from interp.fourier import key_frequencies
from interp.classifier import Classification, classify
from interp import report  # one HTML page per model (interp.plots: the figures)
from interp.report import write_report

__all__ = [
    "__version__",
    # configs and errors
    "ModelConfig", "TrainConfig", "CheckpointError", "ConfigError", "InterpError", "RunDirError",
    # model, data, checkpoints
    "Transformer", "all_pairs", "all_tokens", "make_dataset", "split", "load", "save_checkpoint",
    # training
    "PRESETS", "RECIPES", "TrainResult", "evaluate", "resume", "train", "SweepResult", "resume_sweep", "sweep",
    # analyses
    "fourier", "metrics", "probes", "progress", "key_frequencies", "Classification", "classify",
    # report
    "report", "write_report",
]
