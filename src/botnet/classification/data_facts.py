"""The facts of a training set that the recipe's rules read (:class:`DataFacts`), and how they are read.

An ImageFolder is scanned and split exactly as training will split it; its image sizes come from file headers
(:mod:`botnet.data.describe`) and the mirror correlation from a few hundred images decoded at 16 x 16
(:mod:`botnet.data.symmetry`): well under a second for the datasets of docs/validation.md. The built-in dataset is
described the same way, from images drawn by its generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.describe import describe_samples, even_sample
from ..data.shapes import ShapesDataset
from ..data.split import image_folder_splits
from ..data.symmetry import MIRROR_PER_CLASS, MIRROR_SIDE, measure_mirror_correlation, mirror_correlation
from ..engine.reporting import log
from .config import TrainConfig

SHAPES_SIDE = 64  # the built-in images' native side: the generator draws at any size, the recipe asks for this one


@dataclass(frozen=True)
class DataFacts:
    """What the recipe reads from the training data (after any held-out validation share).

    Attributes:
        images: training images.
        classes: number of classes.
        side: median image side in pixels (the smaller of the median width and the median height; ``None``: unread).
        mirror: the mirror correlation of the classes (:mod:`botnet.data.symmetry`), ``None`` when not measurable.
        mirror_images: images decoded to measure it.
        aspect: median width over median height (``None``: unread).
    """

    images: int
    classes: int
    side: float | None
    mirror: float | None = None
    mirror_images: int = 0
    aspect: float | None = 1.0


def read_facts(cfg: TrainConfig, *, announce: bool = True) -> DataFacts:
    """The facts of ``cfg.data``'s training split (the ImageFolder's, or the built-in dataset's)."""
    if cfg.builtin_data:
        return shapes_facts(cfg.shapes_train, cfg.seed, cfg.image_size or SHAPES_SIDE)
    train, _, _ = image_folder_splits(
        cfg.data, None, None, val_fraction=cfg.val_fraction, seed=cfg.seed, max_pixels=cfg.max_image_pixels
    )
    desc = describe_samples(train.samples, train.classes)
    mirror, decoded = measure_mirror_correlation(train.samples, len(train.classes))
    log(f"training data: {desc.summary()}", enabled=announce)
    side = aspect = None
    if desc.widths is not None and desc.heights is not None:
        side = min(desc.widths.median, desc.heights.median)
        aspect = desc.widths.median / desc.heights.median
    return DataFacts(len(train), len(train.classes), side, mirror, decoded, aspect)


def shapes_facts(images: int, seed: int, side: int = SHAPES_SIDE) -> DataFacts:
    """The built-in dataset's facts: its size, classes and side (it is drawn at the training size, 64 px unless
    ``--img-size`` says otherwise); the mirror correlation of drawn images."""
    ds = ShapesDataset("train", None, size=side, length=images, seed=seed)
    per_class: list[list[np.ndarray]] = [[] for _ in ds.classes]
    for i in even_sample(images, MIRROR_PER_CLASS * len(ds.classes)):
        image, target = ds[i]
        grey = image.convert("L").resize((MIRROR_SIDE, MIRROR_SIDE))
        per_class[target].append(np.asarray(grey, dtype=np.float64) / 255.0)
    decoded = sum(len(c) for c in per_class)
    return DataFacts(images, len(ds.classes), float(side), mirror_correlation(per_class), decoded)
