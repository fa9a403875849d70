"""Image classification: training, evaluation, prediction and attention figures of BoTNet classifiers."""

from .config import TrainConfig
from .evaluate import evaluate
from .evaluator import evaluate_checkpoint
from .trainer import train

__all__ = ["TrainConfig", "evaluate", "evaluate_checkpoint", "train"]
