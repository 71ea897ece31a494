"""interp: mechanistic interpretability of grokking on modular addition.

    import interp
    run = interp.train("tiny", out="checkpoints/tiny")    # or preset "nanda", "pizza-a", "pizza-b"
    model = interp.load("checkpoints/tiny")               # any supported checkpoint
    logits, cache = model.run_with_cache(interp.all_tokens(model.cfg))
    cache["pattern", 0]                                   # [p*p, n_heads, pos, pos]
"""

from interp.checkpoints import load, save_checkpoint
from interp.config import ModelConfig, TrainConfig
from interp.data import all_pairs, all_tokens, make_dataset, split
from interp.errors import CheckpointError, ConfigError, InterpError, RunDirError
from interp.model import Transformer
from interp.presets import PRESETS, RECIPES
from interp.train import TrainResult, evaluate, resume, train

__version__ = "0.1.0"
from interp import fourier, probes, progress  # Fourier probes and progress measures (interp.plots: figures)
from interp.fourier import key_frequencies
from interp.sweep import SweepResult, resume_sweep, sweep
from interp import report  # one HTML page per model
from interp.report import write_report
from interp import metrics  # clock-vs-pizza metrics (Zhong et al. 2023)
from interp.classify import Classification, classify
