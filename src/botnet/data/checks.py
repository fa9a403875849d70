"""Checks of a training set before any training: enough images per class, at least one box, and class imbalance.

Errors are :class:`~botnet.data.folder.DataError` (a ``ValueError``) saying what is wrong and what would fix it;
class imbalance above :data:`IMBALANCE_WARNING` to 1 is only worth a warning (the caller logs the message).
"""

from __future__ import annotations

from collections.abc import Sequence

from .coco import CocoDetection
from .describe import DatasetDescription, describe_coco
from .folder import DataError

MIN_IMAGES_PER_CLASS = 2  # with a held-out split: 1 to validate and 1 to train
MIN_TRAINING_IMAGES = 1  # a class is learned from its training images: at least one, however the split was made
IMBALANCE_WARNING = 10.0  # largest over smallest class count above which a run is warned


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n != 1 else f"a single {unit[:-1]}"


def _listed(items: Sequence[tuple[str, int]], unit: str, limit: int = 10) -> str:
    text = ", ".join(f"{name!r} has {_plural(n, unit)}" for name, n in items[:limit])
    return text + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_class_counts(
    counts: Sequence[int], classes: Sequence[str], where: str, *, holdout_fraction: float | None = None
) -> None:
    """Every class has an image to train on (and, when a split is about to be held out, one more to validate),
    else a :class:`DataError` naming them. One rule for both ways of splitting: a class keeps at least
    :data:`MIN_TRAINING_IMAGES` training images; a class with a single one is a warning
    (:func:`single_image_warning`), not an error.

    Args:
        counts: images per class, in class order.
        classes: class names.
        where: the folder the counts are of, for the message.
        holdout_fraction: the images are about to be split into train and val (no val folder was given).
    """
    need = MIN_IMAGES_PER_CLASS if holdout_fraction is not None else MIN_TRAINING_IMAGES
    few = [(name, n) for name, n in zip(classes, counts, strict=True) if n < need]
    if not few:
        return
    if holdout_fraction is not None:
        raise DataError(
            f"{where} is too small to hold out a validation set: {_listed(few, 'images')}. With no val/ folder each "
            f"class needs at least {MIN_IMAGES_PER_CLASS} images: --val-fraction {holdout_fraction:g} holds out that "
            "share of each class, at least 1 image, and keeps at least 1 to train on. Add images to these classes, "
            "or give a val/ folder"
        )
    raise DataError(
        f"{where}: {_listed(few, 'images')} to train on. A class needs at least {MIN_TRAINING_IMAGES} training "
        "image; add images to it, or remove its folder from every split"
    )


def single_image_warning(counts: Sequence[int], classes: Sequence[str], where: str) -> str | None:
    """A warning naming the classes that have a single training image, else ``None``."""
    ones = [(name, n) for name, n in zip(classes, counts, strict=True) if n == 1]
    if not ones:
        return None
    return (
        f"warning: {where}: {_listed(ones, 'images')} to train on; a class learned from one example is rarely "
        "recognised: add images to it where you can"
    )


# The warning's last sentence for a classifier: what to read instead of top-1.
ACCURACY_ADVICE = (
    "Top-1 accuracy can look good while small classes are missed: read the per-class and balanced accuracy"
)


def imbalance_message(
    counts: Sequence[int], classes: Sequence[str], where: str, unit: str = "images", advice: str = ACCURACY_ADVICE
) -> str | None:
    """A warning when the largest class count is more than :data:`IMBALANCE_WARNING` times the smallest, else
    ``None``. The message gives the counts (all of them for up to 20 classes, else the 5 largest and 5 smallest),
    then ``advice``: what the imbalance means for the task's figures."""
    if len(counts) < 2:
        return None
    order = sorted(range(len(counts)), key=lambda i: (-counts[i], i))
    most, least = order[0], order[-1]
    if counts[least] and counts[most] <= IMBALANCE_WARNING * counts[least]:
        return None
    ratio = f"{counts[most] / counts[least]:.3g}:1" if counts[least] else f"{classes[least]!r} has no {unit}"

    def join(indices: Sequence[int]) -> str:
        return ", ".join(f"{classes[i]} {counts[i]}" for i in indices)

    listed = join(order) if len(order) <= 20 else f"{join(order[:5])}, ..., {join(order[-5:])}"
    return (
        f"warning: class imbalance in {where} ({ratio}, above {IMBALANCE_WARNING:g}:1): {classes[most]!r} has "
        f"{counts[most]} {unit}, {classes[least]!r} {counts[least]}. {unit.capitalize()} per class: {listed}. "
        f"{advice}"
    )


def check_boxes(ds: CocoDetection) -> DatasetDescription:
    """The description of a detection training set that has at least one valid box, else a :class:`DataError`."""
    desc = describe_coco(ds.coco.dataset)
    if sum(desc.class_counts):
        return desc
    kept = ds.coco.dataset["annotations"]
    crowd = sum(1 for ann in kept if ann["iscrowd"])
    dropped = sum(ds.dropped.values())
    reasons = "; ".join(f"{n} {reason}" for reason, n in ds.dropped.items())
    raise DataError(
        f"{ds.ann_file} has no valid box to train on: {len(ds)} images, {len(kept) + dropped} annotations, of which "
        f"{dropped} were dropped as invalid{f' ({reasons})' if reasons else ''} and {crowd} are crowd regions. A "
        "detector needs at least one box with a positive width and height inside its image: check the 'bbox' "
        "values ([x, y, width, height] in pixels) and the images' 'width' and 'height'"
    )
