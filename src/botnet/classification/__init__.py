"""Image classification: the options, training, evaluation, prediction and attention figures of BoTNet classifiers.

Names are imported on first use: the options of ``botnet train`` (:mod:`.config`) load without torch.
"""

from .._lazy import lazy_exports

__all__ = lazy_exports(
    __name__,
    {
        "config": ("TrainConfig",),
        "evaluate": ("evaluate",),
        "task": ("CLASSIFICATION", "ClassificationTask", "evaluate_checkpoint"),
        "trainer": ("train",),
    },
)
