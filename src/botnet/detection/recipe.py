"""Turning the options of ``botnet detect train`` into a run: the "auto" values from the data, the model and the
machine.

Every option left at auto gets its value from one rule over what the training annotations say (image count and
size, objects, their sizes and whether they have masks), printed with its reason; the built-in dataset goes through
the same rules. A run from random weights and one with ``--weights-backbone`` differ in the learning rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..data.coco import read_coco_json
from ..data.describe import DatasetDescription, describe_coco, even_sample
from ..data.symmetry import LAYOUT_SAMPLE, measure_layout_asymmetry
from ..engine.auto import (
    WARMUP_MAX_SHARE,
    Auto,
    apply_rules,
    cap_batch,
    count,
    global_batch,
    recipe_lines,
    schedule_rules,
)
from ..engine.distributed import DistInfo, auto_workers, device_memory, local_world_size
from ..engine.reporting import log
from .config import DetectConfig
from .data import SHAPES_SIDE, builtin_root, split_files, val_split_of
from .models import (
    DEFAULT_BACKBONE,
    PROPOSALS_PER_DETECTION,
    backbone_name,
    default_image_size,
    detector_has_masks,
    detector_name,
)

DEFAULT_BATCH = 8  # images per process, before the small-dataset cap (engine.auto.cap_batch)
# ... which stops at 4: batch norm trained from scratch on 1 or 2 images a step normalises each image by itself, and
# its running statistics then fit no image at evaluation (on 18 aerial tiles, batch 1: box AP50 under 12 in 936 steps).
MIN_BATCH = 4
# SGD from random weights: 0.08 per 8 images, the rate the hand searches found best on every tuning set once the
# warm-up lasts 100 steps and the gradient norm is clipped (docs/validation.md); COCO's 0.02 per 16 for a pretrained
# backbone. AdamW 1e-4 per 16 either way.
SCRATCH_SGD_LR_PER_IMAGE = 0.08 / 8
PRETRAINED_SGD_LR_PER_IMAGE = 0.02 / 16
ADAMW_LR_PER_IMAGE = 1e-4 / 16
# Schedule from the supervision: 264 x sqrt(training objects) images seen (engine.auto.sqrt_schedule). Twice the
# length that kept the built-in dataset's former 4 epochs: on 480 pasted-object photos that length gave box AP50 50.2
# and twice it 66+ (still rising at its end), on 16 microscopy frames both saturate (99.9); the built-in gets 8 epochs.
IMAGES_PER_SQRT_OBJECT = 264
# Warm-up: half an epoch and at least 100 steps, at most 20% of the schedule. A detector from random weights spikes
# early: on a few hundred photos twice the rate diverged within 30 steps after a 25-step warm-up, and on 117
# microscopy tiles the default rate diverged at step 20 after a 7-step one (box AP50 89.9 with 56 steps).
WARMUP_EPOCHS = 0.5
WARMUP_MIN_STEPS = 100
# Training size: the small objects (10th percentile) at least this many pixels across: COCO's boundary between
# small and medium objects, below which detectors lose about half their AP (8 cells of the finest FPN level).
SMALL_OBJECT_PX = 32
SMALLEST_SIZE = 128  # the smallest training size: 4x4 cells at c5 (stride 32)
# Under --time, a run that fits fewer steps than a warm-up of WARMUP_MIN_STEPS needs (it is at most a fifth of the
# run) trains at a smaller size, down to where the small objects are TIME_SMALL_OBJECT_PX (4 cells of the finest FPN
# level): on 1100x700 nucleus frames bounded to 10 minutes, 1120 px fits 36 steps (a 7-step warm-up) and reaches box
# AP50 51 (AP 20), 768 px fits 132 and reaches 93 (AP 63).
TIME_MIN_STEPS = round(WARMUP_MIN_STEPS / WARMUP_MAX_SHARE)
TIME_SMALL_OBJECT_PX = SMALL_OBJECT_PX // 2
STRIDE = 32  # the total stride: sizes are multiples of it
# Memory ceiling: a training batch may take this share of the device's memory (the rest: the loader, validation, the
# time estimate's model copy, other processes), at the peak bytes per input pixel of a training step, measured on
# CPU with 15 boxes an image: 620-750 for the small detector (Faster / Mask R-CNN, 512-1024 px), 3,840 for botnet50.
MEMORY_SHARE = 0.25
TRAIN_BYTES_PER_PIXEL = {"botnet_tiny": 1024}
WIDE_BYTES_PER_PIXEL = 4096  # every other backbone
# Detections per image: torchvision's 100, or this many times the densest training image's objects, in hundreds.
DEFAULT_DETECTIONS = 100
DETECTION_HEADROOM = 1.5
# Turns (vertical flips and quarter turns) when the data looks alike turned: each class's boxes at most this one-way
# (0.4: 30-70% of a class's boxes wider than tall), and the images' common layout at most this much more up-down
# asymmetric than left-right (a photo's sky above and ground below; a layout without a direction has both near 0.5).
TURN_ORIENTATION = 0.4
TURN_LAYOUT = 0.4
# Anchors: one size per FPN level (strides 4..64), doubling; the smallest is the largest power of two at or below the
# small objects' size (in pixels at the training size), at least the finest level's stride.
FINEST_STRIDE = 4


@dataclass(frozen=True)
class DetectFacts:
    """What the recipe reads from the training annotations.

    Attributes:
        images: training images (after any held-out share).
        side: median longer image side in pixels (``None``: no images).
        small_object: 10th percentile of the objects' side relative to their image's longer side,
            ``sqrt(box area) / max(width, height)`` (``None``: no objects).
        objects: training objects (valid, non-crowd boxes; after any held-out share).
        masked_objects: of those, the objects with a segmentation.
        most_objects: the most objects one training image has.
        box_orientation: how one-way each class's boxes are (:class:`~botnet.data.describe.DatasetDescription`).
        layout: ``(up-down, left-right)`` asymmetry of the images' common layout
            (:func:`~botnet.data.symmetry.layout_asymmetry`; ``None``: no common layout, or not measured).
    """

    images: int
    side: float | None
    small_object: float | None
    objects: int
    masked_objects: int
    most_objects: int = 0
    box_orientation: float | None = None
    layout: tuple[float, float] | None = None


def facts_from(
    desc: DatasetDescription, train_share: float = 1.0, layout: tuple[float, float] | None = None
) -> DetectFacts:
    """The facts of a described annotation file, of which ``train_share`` of the images train (``layout``: measured
    on its images)."""
    side = None
    if desc.widths is not None and desc.heights is not None:
        side = max(desc.widths.median, desc.heights.median)
    small = desc.object_sides.p10 if desc.object_sides is not None else None
    return DetectFacts(
        images=max(1, round(desc.num_images * train_share)),
        side=side,
        small_object=small,
        objects=round(desc.num_objects * train_share),
        masked_objects=round(desc.objects_with_masks * train_share),
        most_objects=round(desc.objects_per_image.max) if desc.objects_per_image is not None else 0,
        box_orientation=desc.box_orientation,
        layout=layout,
    )


def detector(facts: DetectFacts, backbone: str = DEFAULT_BACKBONE) -> Auto:
    """The detector on ``backbone`` with the head the annotations can teach: masks only when every object has one."""
    n, m = count(facts.objects), count(facts.masked_objects)
    if facts.objects and facts.masked_objects == facts.objects:
        return detector_name(True, backbone), f"every one of the {n} training objects has a mask: boxes and masks"
    if facts.masked_objects == 0:
        return detector_name(False, backbone), f"the {n} training objects have boxes and no masks: boxes only"
    return detector_name(False, backbone), (
        f"{count(facts.objects - facts.masked_objects)} of the {n} training objects have no mask ({m} have one): "
        "boxes only, for all (give every object a segmentation to train masks)"
    )


def check_head(model: str, facts: DetectFacts) -> None:
    """Refuse a mask model for annotations that do not all have masks, naming the way out."""
    if detector_has_masks(model) and facts.masked_objects < facts.objects:
        box_model = model.replace("maskrcnn_", "fasterrcnn_", 1)
        raise ValueError(
            f"--model {model} predicts masks, but {count(facts.objects - facts.masked_objects)} of the "
            f"{count(facts.objects)} training objects have no segmentation; leave --model out (a box detector is "
            f"chosen from the annotations) or give --model {box_model}"
        )


def train_bytes_per_pixel(model: str) -> int:
    """Peak memory of a training step per input pixel, for the memory ceiling of the image size."""
    return TRAIN_BYTES_PER_PIXEL.get(backbone_name(model), WIDE_BYTES_PER_PIXEL)


def memory_ceiling(memory: int, batch: int, bytes_per_pixel: int) -> int:
    """The largest square side (a multiple of the stride) whose batch fits :data:`MEMORY_SHARE` of ``memory``."""
    side = math.sqrt(MEMORY_SHARE * memory / (batch * bytes_per_pixel))
    return max(STRIDE, math.floor(side / STRIDE) * STRIDE)


def size_where(small_object: float, pixels: int) -> int:
    """The smallest size (a multiple of the stride) at which objects of ``small_object`` times the longer image side
    are ``pixels`` across."""
    return math.ceil(pixels / small_object / STRIDE) * STRIDE


def detection_image_size(side: float | None, small_object: float | None, *, ceiling: int, fallback: int) -> Auto:
    """The training and evaluation size (longer side) from the images and their small objects.

    The small objects (10th percentile) should be :data:`SMALL_OBJECT_PX` across; larger images are scaled down to
    that, never below :data:`SMALLEST_SIZE` (or the images' own size if smaller), and never above the images' own
    size (upscaling adds no detail). ``ceiling`` (from memory) caps the result.

    Args:
        side: median longer image side in pixels (``None``: unknown, ``fallback`` is used).
        small_object: the small objects' side relative to the longer image side (``None``: no objects).
    """
    if side is None:
        size, reason = fallback, "the model's size (the image sizes could not be read)"
    else:
        native = max(STRIDE, math.ceil(side / STRIDE) * STRIDE)
        if small_object is None:
            size, reason = native, f"the images' own size (median longer side {side:g} px); no objects to size by"
        else:
            at_native = small_object * side
            needed = size_where(small_object, SMALL_OBJECT_PX)
            size = min(native, max(needed, SMALLEST_SIZE))
            if needed >= native:
                reason = (
                    f"the images' own size (median longer side {side:g} px), where the small objects (10th "
                    f"percentile) are {at_native:.3g} px"
                    + (f", below {SMALL_OBJECT_PX} px (upscaling adds no detail)" if needed > native else "")
                )
            else:
                reason = (
                    f"images of median longer side {side:g} px scaled down to where the small objects (10th "
                    f"percentile, {at_native:.3g} px) are {small_object * size:.3g} px"
                    + (f" (at least {SMALLEST_SIZE} px)" if needed < SMALLEST_SIZE else f", {SMALL_OBJECT_PX} or more")
                )
    if size > ceiling:
        return ceiling, f"{reason}; capped at {ceiling} px by memory (a batch within {MEMORY_SHARE:.0%} of it)"
    return size, reason


def size_for_time(size: int, steps: int, small_object: float | None) -> Auto | None:
    """A smaller training size when only ``steps`` optimizer steps fit ``--time`` at ``size``, fewer than
    :data:`TIME_MIN_STEPS` (``None``: keep ``size``). A step's time grows with the pixels, so the size shrinks by the
    square root of the missing share, down to where the small objects are :data:`TIME_SMALL_OBJECT_PX` across (at
    least :data:`SMALLEST_SIZE`): a run that short gains more from steps than from detail."""
    if small_object is None or steps >= TIME_MIN_STEPS:
        return None
    floor = max(SMALLEST_SIZE, size_where(small_object, TIME_SMALL_OBJECT_PX))
    new = max(floor, math.floor(size * math.sqrt(steps / TIME_MIN_STEPS) / STRIDE) * STRIDE)
    if new >= size:
        return None
    return new, (
        f"--time fits {count(steps)} optimizer steps at {size} px, fewer than the {TIME_MIN_STEPS} a run needs for "
        f"its {WARMUP_MIN_STEPS}-step warm-up to stay within {WARMUP_MAX_SHARE:.0%} of it: scaled down toward that, "
        f"no further than where the small objects (10th percentile) are {small_object * new:.3g} px, "
        f"{TIME_SMALL_OBJECT_PX} or more"
    )


def max_detections(most_objects: int) -> Auto:
    """Detections kept per image: torchvision's 100, or room for half again the densest training image."""
    wanted = max(DEFAULT_DETECTIONS, math.ceil(DETECTION_HEADROOM * most_objects / 100) * 100)
    if wanted == DEFAULT_DETECTIONS:
        return (
            wanted,
            f"torchvision's {DEFAULT_DETECTIONS} (a training image has at most {count(most_objects)} objects)",
        )
    return wanted, (
        f"a training image has up to {count(most_objects)} objects: {DETECTION_HEADROOM:g} x that, in hundreds "
        f"(the RPN keeps {PROPOSALS_PER_DETECTION} proposals per detection)"
    )


def turns(facts: DetectFacts) -> Auto:
    """Whether the data looks alike turned by 90 degrees (overhead and microscope images): then random quarter turns
    (and flips) are free extra training images."""
    orientation, layout = facts.box_orientation, facts.layout
    if orientation is None:
        return False, "no objects to judge by"
    if orientation > TURN_ORIENTATION:
        return False, (
            f"the boxes of a class are mostly one way (orientation {orientation:.2f} > {TURN_ORIENTATION:g}: "
            "upright objects)"
        )
    if layout is not None and layout[0] - layout[1] > TURN_LAYOUT:
        return False, (
            f"the images have a top and a bottom (their common layout {layout[0]:.2f} up-down asymmetric, "
            f"{layout[1]:.2f} left-right)"
        )
    where = "no common layout" if layout is None else f"layout {layout[0]:.2f} up-down, {layout[1]:.2f} left-right"
    return True, (
        f"the data looks alike turned, as overhead and microscope images do: each class's boxes as often wider as "
        f"taller (orientation {orientation:.2f}), images without a top and bottom ({where})"
    )


def vertical_flip(rot90: bool, rot90_reason: str, hflip: float) -> Auto:
    """Vertical flips when the data looks alike turned, unless turns and horizontal flips give them already."""
    if not rot90:
        return 0.0, "off: " + rot90_reason if rot90_reason else "off: --rot90 false"
    if hflip > 0:
        return 0.0, "quarter turns and horizontal flips give every flip already"
    return 0.5, "the data looks alike turned, and --hflip is 0"


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


def data_rules(
    cfg: DetectConfig,
    facts: DetectFacts,
    world_size: int,
    *,
    memory: int = 16 * 2**30,
    backbone: str = DEFAULT_BACKBONE,
) -> tuple[DetectConfig, dict[str, str]]:
    """Fill the auto options that depend on the data; ``(config, {option: reason})``. ``memory``: bytes of memory
    per process on the training device; ``backbone``: the network under an auto ``model``."""
    reasons: dict[str, str] = {}

    def image_size(c: DetectConfig) -> Auto:
        ceiling = memory_ceiling(memory, c.batch_size, train_bytes_per_pixel(c.model))  # accumulation adds none
        return detection_image_size(
            facts.side, facts.small_object, ceiling=ceiling, fallback=default_image_size(c.model)
        )

    rules = [
        ("model", lambda c: detector(facts, backbone)),
        (
            "batch_size",
            lambda c: cap_batch(
                DEFAULT_BATCH, facts.images, processes=world_size, accumulate=c.accumulate, floor=MIN_BATCH
            ),
        ),
        ("image_size", image_size),
        ("lr", lambda c: detection_lr(global_batch(c, world_size), c.optimizer, bool(c.weights_backbone or c.weights))),
        *schedule_rules(
            facts.images,
            world_size,
            per_sqrt_image=IMAGES_PER_SQRT_OBJECT,
            warmup_length=WARMUP_EPOCHS,
            warmup_min_steps=WARMUP_MIN_STEPS,
            supervision=(max(facts.objects, 1), "objects"),
        ),
        ("anchor_sizes", lambda c: anchors(facts.small_object, c.image_size)),
        ("max_detections", lambda c: max_detections(facts.most_objects)),
        ("rot90", lambda c: turns(facts)),
        ("vflip", lambda c: vertical_flip(c.rot90, reasons.get("rot90", ""), c.hflip)),
    ]
    cfg = apply_rules(cfg, rules, reasons)
    check_head(cfg.model, facts)
    return cfg, reasons


AUTO_OPTIONS = (
    "model",
    "image_size",
    "batch_size",
    "lr",
    "epochs",
    "warmup_epochs",
    "anchor_sizes",
    "max_detections",
    "rot90",
    "vflip",
)


# What a run resumed from an older version's config.yaml, which lacks these options, had instead of them.
OLDER_RUNS = {"vflip": 0.0, "rot90": False}  # max_detections: None, the model's own


def resolve_detect(
    cfg: DetectConfig,
    info: DistInfo,
    *,
    facts: DetectFacts | None = None,
    announce: bool = True,
    resuming: bool = False,
    backbone: str = DEFAULT_BACKBONE,
) -> tuple[DetectConfig, dict[str, str], DetectFacts | None]:
    """Fill the "auto" options from the data, the model and the machine; ``(config, {option: reason}, facts)``
    (``facts``: ``None`` where no rule needed them).

    ``facts`` are read from ``cfg.data`` (:func:`read_detect_facts`) when a rule needs
    them (or a mask model must be checked against the annotations) and none are given. A resumed run's options were
    resolved when it started: no rule runs again, and options its version did not have get :data:`OLDER_RUNS` (a
    resumed config never resolved, as the Python API can pass, is resolved by the same rules).
    """
    if cfg.model is not None:
        default_image_size(cfg.model)  # unknown model: a clear error before anything else
    cfg = cfg.replace(
        workers=cfg.workers if cfg.workers is not None else auto_workers(info.device, local_world_size()),
    )
    if resuming and cfg.model is not None:  # a config.yaml (every version's has its model): resolved already
        return cfg.replace(**{k: v for k, v in OLDER_RUNS.items() if getattr(cfg, k) is None}).validate(), {}, None
    reasons: dict[str, str] = {}
    needs_facts = cfg.model is None or detector_has_masks(cfg.model)  # a mask model is checked against the data
    needs_facts = needs_facts or any(getattr(cfg, name) is None for name in AUTO_OPTIONS)
    if needs_facts:
        if facts is None:
            facts = read_detect_facts(cfg, info, announce=announce and info.is_main)
        memory = device_memory(info.device) // (local_world_size() if info.device.type == "cpu" else 1)
        cfg, reasons = data_rules(cfg, facts, info.world_size, memory=memory, backbone=backbone)
        if announce and info.is_main and reasons:
            log("recipe (auto values; set any option to override):\n" + "\n".join(recipe_lines(cfg, reasons)))
    if announce and info.is_main and not (cfg.weights_backbone or cfg.weights):
        log(pretrained_hint(cfg.model))
    return cfg.validate(), reasons, facts


def pretrained_hint(model: str) -> str:
    """What to give for a pretrained backbone when none was: a detector learns most from a few images when its
    backbone already knows images."""
    kind = "maskrcnn" if detector_has_masks(model) else "fasterrcnn"
    return (
        "no --weights-backbone: the backbone starts from random weights. With few images a pretrained one helps most: "
        f"--model {kind}_botnet26t_256_fpn --weights-backbone timm:botnet26t_256.c1_in1k (timm's ImageNet "
        f"weights, 79.3% top-1; a larger network than the small one), --model {kind}_resnet50_fpn "
        "--weights-backbone torchvision:ResNet50_Weights.IMAGENET1K_V2, or a botnet train run of your own "
        "(--weights-backbone RUN, the same network as the detector's backbone)"
    )


def read_detect_facts(cfg: DetectConfig, info: DistInfo, *, announce: bool = True) -> DetectFacts:
    """The recipe's facts of a run's training annotations (the built-in dataset's too, written first at its native
    size when ``image_size`` is auto); with no val split, the held-out share is taken off the image count."""
    if cfg.builtin_data:
        root = builtin_root(cfg.replace(image_size=cfg.image_size or SHAPES_SIDE), info)
    else:
        root = Path(cfg.data)
    images, ann = split_files(root, cfg.train_split)
    cfg = cfg.replace(val_split=val_split_of(root, cfg.val_split))
    data = read_coco_json(ann)
    desc = describe_coco(data)
    no_val = not (root / "annotations" / f"instances_{cfg.val_split}.json").exists()
    log(f"training annotations: {desc.summary()}", enabled=announce)
    layout = None
    if cfg.rot90 is None:  # the turn rule looks at the images: a sample decoded small
        inside = images.resolve()  # file names that leave the image folder are refused later, and never read here
        sample = [images / data["images"][i]["file_name"] for i in even_sample(len(data["images"]), LAYOUT_SAMPLE)]
        layout = measure_layout_asymmetry([p for p in sample if p.resolve().is_relative_to(inside)])
    return facts_from(desc, 1 - cfg.val_fraction if no_val else 1.0, layout)
