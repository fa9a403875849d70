"""What every task shares: the training loop, checkpoints, options, loaders, distributed set-up, metrics files.

Names are imported on first use: the option machinery (:mod:`.config`) and :mod:`.stopping` load without torch.
"""

from .._lazy import lazy_exports

__all__ = lazy_exports(
    __name__,
    {
        "checkpoint": ("CheckpointError", "load_training_state", "read_model_metadata", "resolve_checkpoint"),
        "config": ("build_config", "load_yaml", "save_yaml"),
        "loop": ("Trainer",),
        "stopping": ("TrainingError", "TrainingInterrupted"),
    },
)
