"""Turning the options of ``botnet train`` into a run: the "auto" values from the data, the model, the machine and,
with ``--pretrained``, the weights' source.

Every option left at auto gets its value from one rule over what the training data looks like (:class:`DataFacts`:
image count, image size, classes, whether the classes look alike mirrored) and prints it with its reason; the built-in
dataset goes through the same rules. Training from scratch and fine-tuning (``--pretrained``) differ in a few rules,
each stated below with the measurement it rests on (docs/defaults.md).
"""

from __future__ import annotations

from typing import Any

from ..engine.auto import (
    Auto,
    apply_rules,
    cap_batch,
    count,
    fit_image_size,
    global_batch,
    recipe_lines,
    schedule_rules,
)
from ..engine.distributed import DistInfo, auto_workers, local_world_size
from ..engine.reporting import log
from ..models.botnet import IMAGENET_MEAN, IMAGENET_STD
from ..models.registry import get_config
from .config import TrainConfig
from .data import Preprocess
from .data_facts import DataFacts, read_facts

DEFAULT_BATCH = 64  # images per process, before the small-dataset cap (engine.auto.cap_batch)
# From scratch: SGD at 0.2 per 64 images (Nesterov, label smoothing 0.1, cosine), scaled linearly with the batch.
SCRATCH_SGD_LR_PER_64 = 0.2
ADAMW_LR_PER_512 = 1e-3
# Schedule: 850 x sqrt(training images) images seen (engine.auto.sqrt_schedule): 6 epochs of 20,000, 22 of 1,438.
SCRATCH_IMAGES_PER_SQRT = 850
# Crops: a dataset this large trains long enough for ImageNet's heavy crops (8% of the area) to pay off; on smaller
# ones, with a short schedule, crops that keep most of the image did as well or better (digits 98.6 % at 0.8-1 and
# 98.3 % at 0.35-1; the built-in shapes 98 % at 0.8-1 and 95.3 % at 0.35-1 with ImageNet's aspect ratios).
HEAVY_CROPS_FROM = 100_000
HEAVY_SCALE, MILD_SCALE = (0.08, 1.0), (0.8, 1.0)
# Flips: on when the classes look alike mirrored (botnet.data.symmetry); digits measure 0.33-0.47, photos of
# clothes, faces and textures 0.78-0.95.
FLIP_MIN_MIRROR = 0.6
EVAL_CROP_PCT = 0.875  # eval centre crop of images larger than the training size (ImageNet's)

# Fine-tuning from pretrained weights (--pretrained), measured on scikit-learn's digits (1300 train / 497 val images
# at 32 px, 5 epochs, batch 64) from botnet_tiny trained on the built-in shapes (docs/models.md, "Pretrained weights and
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


def scratch_lr(batch: int, optimizer: str, images: int) -> Auto:
    """The peak learning rate from scratch, linear in the global batch."""
    if optimizer == "adamw":
        return ADAMW_LR_PER_512 * batch / 512, f"adamw {ADAMW_LR_PER_512:g} per 512 images, batch {batch}, from scratch"
    lr = SCRATCH_SGD_LR_PER_64 * batch / 64
    return lr, f"sgd {SCRATCH_SGD_LR_PER_64:g} per 64 images, batch {batch}, {count(images)} images, from scratch"


def crop_scale(images: int) -> Auto:
    """The RandomResizedCrop area range from scratch: heavy crops only for a dataset of ImageNet's order."""
    if images >= HEAVY_CROPS_FROM:
        return HEAVY_SCALE, f"{count(images)} images: a long run, where heavy crops regularise (ImageNet's)"
    return MILD_SCALE, (
        f"{count(images)} images (< {count(HEAVY_CROPS_FROM)}): a short schedule, crops keep most of the image"
    )


def aspect_range(aspect: float | None) -> Auto:
    """The RandomResizedCrop aspect-ratio range: square crops of square images (no distortion), ImageNet's range
    for others (whose crops must be allowed the images' own shape)."""
    if aspect is not None and abs(aspect - 1) < 0.01:
        return (1.0, 1.0), "square images: square crops, no distortion"
    return (3 / 4, 4 / 3), "images of other shapes: ImageNet's aspect-ratio range"


def flip(facts: DataFacts) -> Auto:
    """Horizontal flips when a mirrored image still looks like its class (:mod:`botnet.data.symmetry`)."""
    if facts.mirror is None:
        return 0.5, "the classes do not differ in layout, so a mirror cannot turn one into another"
    measured = f"mirror correlation {facts.mirror:.2f} on {count(facts.mirror_images)} images"
    if facts.mirror >= FLIP_MIN_MIRROR:
        return 0.5, f"the classes look alike mirrored ({measured})"
    return 0.0, f"off: mirrored images do not look like their class ({measured} < {FLIP_MIN_MIRROR})"


def eval_crop(side: float | None, image_size: int) -> Auto:
    """The eval centre-crop fraction: none for images no larger than the network's input (they are scaled up
    whole), ImageNet's 0.875 for larger ones."""
    if side is not None and side <= image_size:
        return 1.0, f"images ({side:g} px) are no larger than the input ({image_size} px): scaled whole"
    return EVAL_CROP_PCT, f"images larger than the input ({image_size} px): ImageNet's centre crop"


def data_rules(cfg: TrainConfig, facts: DataFacts, world_size: int) -> tuple[TrainConfig, dict[str, str]]:
    """Fill the auto options that depend on the data; ``(config, {option: reason})``.

    Fine-tuning (``cfg.pretrained``) takes its lr, schedule, warm-up and crop scale from :func:`finetune_recipe`;
    its image size, crop fraction and normalisation come from the weights (:func:`resolve`), before these rules.
    """
    model_cfg = get_config(cfg.model)
    stride = model_cfg.total_stride
    reasons: dict[str, str] = {}

    rules = [
        (
            "image_size",
            lambda c: fit_image_size(
                facts.side, stride=stride, smallest=2 * stride, largest=model_cfg.input_size[0], what="median side"
            ),
        ),
        (
            "batch_size",
            lambda c: cap_batch(DEFAULT_BATCH, facts.images, processes=world_size, accumulate=c.accumulate),
        ),
        ("hflip", lambda c: flip(facts)),
        ("crop_pct", lambda c: eval_crop(facts.side, c.image_size)),
        ("ratio", lambda c: aspect_range(facts.aspect)),
    ]
    if cfg.pretrained:
        for name in ("lr", "epochs", "warmup_epochs", "scale", "backbone_lr_scale"):
            rules.append(
                (name, lambda c, n=name: finetune_recipe(batch=global_batch(c, world_size), optimizer=c.optimizer)[n])
            )
    else:
        rules += [
            ("lr", lambda c: scratch_lr(global_batch(c, world_size), c.optimizer, facts.images)),
            *schedule_rules(facts.images, world_size, per_sqrt_image=SCRATCH_IMAGES_PER_SQRT),
            ("scale", lambda c: crop_scale(facts.images)),
            ("backbone_lr_scale", lambda c: (1.0, "from scratch: one rate for the whole network")),
        ]
    cfg = apply_rules(cfg, rules, reasons)
    return cfg, reasons


def resolve(
    cfg: TrainConfig,
    info: DistInfo,
    source_pre: dict | None = None,
    *,
    announce: bool = True,
    facts: DataFacts | None = None,
) -> tuple[TrainConfig, Preprocess, dict[str, str]]:
    """Fill the "auto" options from the data, the model, the weights' source and the machine.

    Args:
        source_pre: the preprocessing of the ``--pretrained`` weights (input_size, mean, std, crop_pct,
            interpolation); its values fill the options left at auto. ``None`` for a run from random weights (and for
            a resumed run, whose config.yaml already holds the resolved values).
        announce: print the data's summary and each value a rule chose, with its reason.
        facts: the training data's facts; read from ``cfg.data`` (:func:`read_facts`) when a rule needs them.

    Returns:
        ``(config, preprocessing, {option: reason})`` for each option a rule chose.
    """
    get_config(cfg.model)  # raises a clear error for an unknown name
    src = source_pre or {}
    reasons: dict[str, str] = {}
    if src.get("input_size") and cfg.image_size is None:
        cfg = cfg.replace(image_size=int(src["input_size"][-1]))
        reasons["image_size"] = "the pretrained weights' input size"
    if src.get("crop_pct") and cfg.crop_pct is None:
        cfg = cfg.replace(crop_pct=src["crop_pct"])
        reasons["crop_pct"] = "the pretrained weights' eval crop"
    cfg = cfg.replace(
        interpolation=cfg.interpolation or src.get("interpolation") or "bilinear",
        mean=cfg.mean or tuple(src.get("mean") or IMAGENET_MEAN),
        std=cfg.std or tuple(src.get("std") or IMAGENET_STD),
        workers=cfg.workers if cfg.workers is not None else auto_workers(info.device, local_world_size()),
    )
    data_auto = ("image_size", "batch_size", "hflip", "crop_pct", "ratio", "lr", "epochs", "warmup_epochs", "scale")
    if any(getattr(cfg, name) is None for name in (*data_auto, "backbone_lr_scale")):
        if facts is None:
            facts = read_facts(cfg, announce=announce and info.is_main)
        cfg, chosen = data_rules(cfg, facts, info.world_size)
        reasons.update(chosen)
        if announce and info.is_main:
            log("recipe (auto values; set any option to override):\n" + "\n".join(recipe_lines(cfg, reasons)))
    pre = Preprocess(cfg.image_size, cfg.crop_pct, tuple(cfg.mean), tuple(cfg.std), cfg.interpolation)
    return cfg.validate(), pre, reasons
