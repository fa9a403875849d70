"""Turning the options of ``botnet detect train`` into a run: the "auto" values from the model, the data and the
machine, and the built-in recipe."""

from __future__ import annotations

from ..engine.distributed import DistInfo, auto_workers, local_world_size
from .config import DetectConfig
from .models import default_image_size

# The built-in recipe: the small Mask R-CNN on the generated shapes dataset, sized to finish on a laptop CPU.
SHAPES_RECIPE = {"epochs": 4, "batch_size": 8, "lr": 0.04}


def resolve_detect(cfg: DetectConfig, info: DistInfo) -> DetectConfig:
    """Fill the "auto" options from the model, the dataset and the machine."""
    default_image_size(cfg.model)  # unknown model: a clear error before anything else
    shapes = cfg.builtin_data
    batch = cfg.batch_size or (SHAPES_RECIPE["batch_size"] if shapes else 2)
    global_batch = batch * cfg.accumulate * info.world_size
    if cfg.lr is not None:
        lr = cfg.lr
    elif cfg.optimizer == "adamw":
        lr = 1e-4 * global_batch / 16
    else:
        lr = (SHAPES_RECIPE["lr"] / SHAPES_RECIPE["batch_size"] if shapes else 0.02 / 16) * global_batch
    cfg = cfg.replace(
        image_size=cfg.image_size or default_image_size(cfg.model),
        epochs=cfg.epochs or (SHAPES_RECIPE["epochs"] if shapes else 12),
        batch_size=batch,
        lr=lr,
        workers=cfg.workers if cfg.workers is not None else auto_workers(info.device, local_world_size()),
    )
    return cfg.validate()
