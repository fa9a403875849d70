"""Turning the options of ``botnet detect train`` into a run: the "auto" values from the data, the model and the
machine.

Every option left at auto gets its value from one rule over what the training annotations say (image count and
size, object sizes), printed with its reason; the built-in dataset goes through the same rules. A run from random
weights and one with ``--weights-backbone`` differ in the learning rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..data.describe import DatasetDescription
from ..engine.auto import Auto, apply_rules, cap_batch, fit_image_size, global_batch, recipe_lines, schedule_rules
from ..engine.distributed import DistInfo, auto_workers, local_world_size
from ..engine.reporting import log
from .config import DetectConfig
from .models import default_image_size

DEFAULT_BATCH = 8  # images per process, before the small-dataset cap (engine.auto.cap_batch)
# SGD: 0.04 per 8 images from random weights (the built-in recipe's; on a few hundred photos 42.8 box AP50 against
# 15.7 at 0.0025 per 2); COCO's 0.02 per 16 for a pretrained backbone. AdamW 1e-4 per 16 either way.
SCRATCH_SGD_LR_PER_IMAGE = 0.04 / 8
PRETRAINED_SGD_LR_PER_IMAGE = 0.02 / 16
ADAMW_LR_PER_IMAGE = 1e-4 / 16
# Schedule: 219 x sqrt(training images) images seen (engine.auto.sqrt_schedule): 4 epochs of 3,000, 11 of 400.
IMAGES_PER_SQRT = 219
# Warm-up: half an epoch and at least 100 steps, at most 20% of the schedule. A detector from random weights spikes
# early: on a few hundred photos twice the rate diverged within 30 steps after a 25-step warm-up, and on 117
# microscopy tiles the default rate diverged at step 20 after a 7-step one (box AP50 89.9 with 56 steps).
WARMUP_EPOCHS = 0.5
WARMUP_MIN_STEPS = 100
SMALLEST_SIZE = 128  # the smallest training size: 4x4 cells at c5 (stride 32)
# Anchors: one size per FPN level (strides 4..64), doubling; the smallest is the largest power of two at or below the
# small objects' size (10th percentile of sqrt(box area), in pixels at the training size), at least the finest
# level's stride.
FINEST_STRIDE = 4


@dataclass(frozen=True)
class DetectFacts:
    """What the recipe reads from the training annotations.

    Attributes:
        images: training images (after any held-out share).
        side: median longer image side in pixels (``None``: no images).
        small_object: 10th percentile of the objects' size, ``sqrt(box area / image area)`` (``None``: no objects).
    """

    images: int
    side: float | None
    small_object: float | None


def facts_from(desc: DatasetDescription, train_share: float = 1.0) -> DetectFacts:
    """The facts of a described annotation file, of which ``train_share`` of the images train."""
    side = None
    if desc.widths is not None and desc.heights is not None:
        side = max(desc.widths.median, desc.heights.median)
    small = desc.object_sizes.p10 if desc.object_sizes is not None else None
    return DetectFacts(max(1, round(desc.num_images * train_share)), side, small)


def detection_lr(batch: int, optimizer: str, pretrained: bool) -> Auto:
    """The peak learning rate, linear in the global batch."""
    if optimizer == "adamw":
        return ADAMW_LR_PER_IMAGE * batch, f"adamw {ADAMW_LR_PER_IMAGE * 16:g} per 16 images, batch {batch}"
    if pretrained:
        lr = PRETRAINED_SGD_LR_PER_IMAGE * batch
        return lr, f"sgd {PRETRAINED_SGD_LR_PER_IMAGE * 16:g} per 16 images (COCO's), batch {batch}, pretrained"
    lr = SCRATCH_SGD_LR_PER_IMAGE * batch
    return lr, f"sgd {SCRATCH_SGD_LR_PER_IMAGE * 8:g} per 8 images, batch {batch}, from random weights"


def anchors(small_object: float | None, image_size: int) -> Auto:
    """Anchor sizes per FPN level from the small objects' size at the training size."""
    if small_object is None:
        return None, "no objects"
    pixels = small_object * image_size
    first = max(FINEST_STRIDE, 2 ** math.floor(math.log2(max(pixels, 1))))
    sizes = tuple(first * 2**k for k in range(5))
    return sizes, f"small objects (10th percentile) are {pixels:.3g} px at {image_size} px; doubling per FPN level"


def data_rules(cfg: DetectConfig, facts: DetectFacts, world_size: int) -> tuple[DetectConfig, dict[str, str]]:
    """Fill the auto options that depend on the data; ``(config, {option: reason})``."""
    reasons: dict[str, str] = {}

    largest = default_image_size(cfg.model)
    rules = [
        (
            "image_size",
            lambda c: fit_image_size(
                facts.side, stride=32, smallest=min(SMALLEST_SIZE, largest), largest=largest, what="median longer side"
            ),
        ),
        (
            "batch_size",
            lambda c: cap_batch(DEFAULT_BATCH, facts.images, processes=world_size, accumulate=c.accumulate, floor=1),
        ),
        ("lr", lambda c: detection_lr(global_batch(c, world_size), c.optimizer, bool(c.weights_backbone))),
        *schedule_rules(
            facts.images,
            world_size,
            per_sqrt_image=IMAGES_PER_SQRT,
            warmup_length=WARMUP_EPOCHS,
            warmup_min_steps=WARMUP_MIN_STEPS,
        ),
        ("anchor_sizes", lambda c: anchors(facts.small_object, c.image_size)),
    ]
    return apply_rules(cfg, rules, reasons), reasons


def resolve_detect(
    cfg: DetectConfig, info: DistInfo, *, facts: DetectFacts | None = None, announce: bool = True
) -> tuple[DetectConfig, dict[str, str]]:
    """Fill the "auto" options from the data, the model and the machine; ``(config, {option: reason})``.

    ``facts`` are read from ``cfg.data`` (:func:`botnet.detection.evaluate.read_detect_facts`) when a rule needs
    them and none are given.
    """
    default_image_size(cfg.model)  # unknown model: a clear error before anything else
    cfg = cfg.replace(
        workers=cfg.workers if cfg.workers is not None else auto_workers(info.device, local_world_size()),
    )
    reasons: dict[str, str] = {}
    auto = ("image_size", "batch_size", "lr", "epochs", "warmup_epochs", "anchor_sizes")
    if any(getattr(cfg, name) is None for name in auto):
        if facts is None:
            from .evaluate import read_detect_facts  # reads the annotations: only when a rule needs them

            facts = read_detect_facts(cfg, info, announce=announce and info.is_main)
        cfg, reasons = data_rules(cfg, facts, info.world_size)
        if announce and info.is_main:
            log("recipe (auto values; set any option to override):\n" + "\n".join(recipe_lines(cfg, reasons)))
    return cfg.validate(), reasons
