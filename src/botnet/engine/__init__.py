"""What every task shares: the training loop, checkpoints, options, loaders, distributed set-up, metrics files."""

from .checkpoint import CheckpointError, load_training_state, read_model_metadata, resolve_checkpoint
from .config import TrainConfig, build_config, load_yaml, save_yaml
from .loop import TrainingError

__all__ = [
    "CheckpointError",
    "TrainConfig",
    "TrainingError",
    "build_config",
    "load_training_state",
    "load_yaml",
    "read_model_metadata",
    "resolve_checkpoint",
    "save_yaml",
]
