"""What every task shares: the training loop, checkpoints, options, loaders, distributed set-up, metrics files."""

from .checkpoint import CheckpointError, load_training_state, read_model_metadata, resolve_checkpoint
from .config import build_config, load_yaml, save_yaml
from .loop import Trainer
from .stopping import TrainingError, TrainingInterrupted

__all__ = [
    "CheckpointError",
    "Trainer",
    "TrainingError",
    "TrainingInterrupted",
    "build_config",
    "load_training_state",
    "load_yaml",
    "read_model_metadata",
    "resolve_checkpoint",
    "save_yaml",
]
