"""Training and evaluation: the loop, checkpoints, distributed set-up, metrics files."""

from .checkpoint import CheckpointError, load_training_state, read_model_metadata, resolve_checkpoint
from .config import TrainConfig, build_config, load_yaml, save_yaml
from .evaluate import evaluate
from .evaluator import evaluate_checkpoint
from .trainer import TrainingError, train

__all__ = [
    "CheckpointError",
    "TrainConfig",
    "TrainingError",
    "build_config",
    "evaluate",
    "evaluate_checkpoint",
    "load_training_state",
    "load_yaml",
    "read_model_metadata",
    "resolve_checkpoint",
    "save_yaml",
    "train",
]
