"""Loading checkpoints written by other projects (placeholder until the classify issue fills it in)."""

from interp.errors import CheckpointError


def load_foreign(path, config=None):
    raise CheckpointError(f"{path}: not an interp checkpoint, and other formats are not supported yet")


def load_foreign_dir(path, config=None):
    raise CheckpointError(f"{path}: directory has no checkpoint")
