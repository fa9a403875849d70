"""Turning the options of ``botnet train`` into a run: the "auto" values from the model, the data and the machine."""

from __future__ import annotations

from ..engine.distributed import DistInfo, auto_workers, local_world_size
from ..models.botnet import IMAGENET_MEAN, IMAGENET_STD
from ..models.registry import get_config
from .config import TrainConfig
from .data import Preprocess


def resolve(cfg: TrainConfig, info: DistInfo) -> tuple[TrainConfig, Preprocess]:
    """Fill the "auto" options from the model, the dataset and the machine."""
    world_size = info.world_size
    model_cfg = get_config(cfg.model)  # raises a clear error for an unknown name
    img_size = cfg.img_size or (64 if cfg.builtin_data else model_cfg.input_size[0])
    cfg = cfg.replace(
        img_size=img_size,
        scale=cfg.scale or ((0.8, 1.0) if cfg.builtin_data else (0.08, 1.0)),
        ratio=cfg.ratio or ((1.0, 1.0) if cfg.builtin_data else (3 / 4, 4 / 3)),
        crop_pct=cfg.crop_pct or (1.0 if cfg.builtin_data else 0.875),
        epochs=cfg.epochs or (6 if cfg.builtin_data else 90),
        workers=cfg.workers if cfg.workers is not None else auto_workers(info.device, local_world_size()),
    )
    cfg = cfg.replace(lr=cfg.lr or default_lr(cfg, world_size))
    pre = Preprocess(img_size, cfg.crop_pct, tuple(IMAGENET_MEAN), tuple(IMAGENET_STD), cfg.interpolation)
    return cfg.validate(), pre


def default_lr(cfg: TrainConfig, world_size: int) -> float:
    """The linear scaling rule on the global batch: 0.1 per 256 for SGD, 1e-3 per 512 for AdamW.

    The built-in shapes recipe (a small network, 6 epochs) uses SGD at 0.2 per 64.
    """
    batch = cfg.batch_size * cfg.accumulate * world_size
    if cfg.optimizer == "adamw":
        return 1e-3 * batch / 512
    return 0.2 * batch / 64 if cfg.builtin_data else 0.1 * batch / 256
