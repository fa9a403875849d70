"""Turning the options of ``botnet train`` into a run: the "auto" values from the model, the data, the machine and,
with ``--pretrained``, the weights' source and the fine-tuning recipe."""

from __future__ import annotations

from typing import Any

from ..engine.distributed import DistInfo, auto_workers, local_world_size
from ..engine.reporting import log
from ..models.botnet import IMAGENET_MEAN, IMAGENET_STD
from ..models.registry import get_config
from .config import TrainConfig
from .data import Preprocess

# Fine-tuning from pretrained weights (--pretrained), measured on scikit-learn's digits (1300 train / 497 val images
# at 32 px, 5 epochs, batch 64) from botnet_tiny trained on the built-in shapes (README, "Pretrained weights and
# fine-tuning"): SGD at 0.16 per 256 images reached 61.0 % top-1, at 0.04 per 256 35.8 %. AdamW keeps its
# from-scratch rule (not measured). Learning rates scale linearly with the global batch.
FINETUNE_SGD_LR_PER_256 = 0.16
FINETUNE_ADAMW_LR_PER_512 = 1e-3
FINETUNE_EPOCHS = 10
FINETUNE_WARMUP_EPOCHS = 0.0
FINETUNE_SCALE = (0.5, 1.0)
FINETUNE_BACKBONE_LR_SCALE = 1.0


def finetune_recipe(*, batch: int, optimizer: str) -> dict[str, tuple[Any, str]]:
    """The "auto" values of a fine-tuning run: ``{option: (value, reason)}``.

    Args:
        batch: the global batch (images per optimizer step over all processes).
        optimizer: "sgd" or "adamw".
    """
    if optimizer == "adamw":
        lr = FINETUNE_ADAMW_LR_PER_512 * batch / 512
        lr_reason = f"fine-tuning, adamw {FINETUNE_ADAMW_LR_PER_512:g} per 512 images, batch {batch}"
    else:
        lr = FINETUNE_SGD_LR_PER_256 * batch / 256
        lr_reason = f"fine-tuning, sgd {FINETUNE_SGD_LR_PER_256:g} per 256 images, batch {batch}"
    return {
        "lr": (lr, lr_reason),
        "warmup_epochs": (FINETUNE_WARMUP_EPOCHS, "fine-tuning: pretrained weights need no warm-up"),
        "epochs": (FINETUNE_EPOCHS, "fine-tuning"),
        "scale": (FINETUNE_SCALE, "fine-tuning: milder crops than training from scratch"),
        "backbone_lr_scale": (FINETUNE_BACKBONE_LR_SCALE, "fine-tuning: the backbone at the head's rate"),
    }


def resolve(
    cfg: TrainConfig, info: DistInfo, source_pre: dict | None = None, *, announce: bool = True
) -> tuple[TrainConfig, Preprocess]:
    """Fill the "auto" options from the model, the dataset and the machine.

    Args:
        source_pre: the preprocessing of the ``--pretrained`` weights (input_size, mean, std, crop_pct,
            interpolation); its values fill the options left at auto. ``None`` for a run from random weights (and for
            a resumed run, whose config.yaml already holds the resolved values).
        announce: print each value the fine-tuning recipe chose, with its reason.
    """
    world_size = info.world_size
    model_cfg = get_config(cfg.model)  # raises a clear error for an unknown name
    src = source_pre or {}
    src_size = src.get("input_size")
    img_size = cfg.img_size or (
        int(src_size[-1]) if src_size else (64 if cfg.builtin_data else model_cfg.input_size[0])
    )
    cfg = cfg.replace(
        img_size=img_size,
        ratio=cfg.ratio or ((1.0, 1.0) if cfg.builtin_data else (3 / 4, 4 / 3)),
        crop_pct=cfg.crop_pct or src.get("crop_pct") or (1.0 if cfg.builtin_data else 0.875),
        interpolation=cfg.interpolation or src.get("interpolation") or "bilinear",
        mean=cfg.mean or tuple(src.get("mean") or IMAGENET_MEAN),
        std=cfg.std or tuple(src.get("std") or IMAGENET_STD),
        workers=cfg.workers if cfg.workers is not None else auto_workers(info.device, local_world_size()),
    )
    if cfg.pretrained:
        batch = cfg.batch_size * cfg.accumulate * world_size
        for name, (value, reason) in finetune_recipe(batch=batch, optimizer=cfg.optimizer).items():
            if getattr(cfg, name) is None:
                cfg = cfg.replace(**{name: value})
                shown = " ".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value:g}"
                log(f"{name} {shown}: {reason}", enabled=announce and info.is_main)
    cfg = cfg.replace(
        scale=cfg.scale or ((0.8, 1.0) if cfg.builtin_data else (0.08, 1.0)),
        epochs=cfg.epochs or (6 if cfg.builtin_data else 90),
        warmup_epochs=1.0 if cfg.warmup_epochs is None else cfg.warmup_epochs,
        backbone_lr_scale=cfg.backbone_lr_scale or 1.0,
    )
    cfg = cfg.replace(lr=cfg.lr or default_lr(cfg, world_size))
    pre = Preprocess(img_size, cfg.crop_pct, tuple(cfg.mean), tuple(cfg.std), cfg.interpolation)
    return cfg.validate(), pre


def default_lr(cfg: TrainConfig, world_size: int) -> float:
    """The linear scaling rule on the global batch: 0.1 per 256 for SGD, 1e-3 per 512 for AdamW.

    The built-in shapes recipe (a small network, 6 epochs) uses SGD at 0.2 per 64.
    """
    batch = cfg.batch_size * cfg.accumulate * world_size
    if cfg.optimizer == "adamw":
        return 1e-3 * batch / 512
    return 0.2 * batch / 64 if cfg.builtin_data else 0.1 * batch / 256
