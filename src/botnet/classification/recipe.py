"""Turning options into a run: the "auto" values, and which options a resumed run may change."""

from __future__ import annotations

from typing import Any

from ..engine.config import TrainConfig
from ..engine.data import Preprocess
from ..engine.distributed import DistInfo, auto_workers, local_world_size
from ..engine.optim import default_lr
from ..models.botnet import IMAGENET_MEAN, IMAGENET_STD
from ..models.registry import get_config

# Options that may change when resuming: they do not alter what the run computes.
RESUMABLE_CHANGES = ("workers", "log_interval", "checkpoint_steps", "device", "output", "max_bad_fraction")


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


def check_resume_changes(saved: Any, given: dict[str, Any], resumable: tuple[str, ...] = RESUMABLE_CHANGES) -> None:
    """Refuse options that would change what a resumed run computes."""
    changed = sorted(k for k, v in given.items() if k not in resumable and getattr(saved, k) != v)
    if changed:
        raise ValueError(
            f"cannot change {', '.join(changed)} when resuming: the resumed run must compute what the interrupted "
            f"one would have; only {', '.join(resumable)} may change. Start a new run with --output instead"
        )
