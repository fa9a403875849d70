"""Whether a dataset's classes look the same mirrored: the evidence for (or against) horizontal-flip augmentation.

A flip is a free extra training image only if a mirrored image is still an image of its class. Where that holds
(photos of objects in any pose, faces, textures), what tells one class from the others, the class's mean image minus
the mean of all classes, is itself close to mirror-symmetric; where it fails (digits, letters, text), it is not.

:func:`mirror_correlation` measures that on a small sample, decoded to ``side`` x ``side`` grey. The sample of each
class is split in two halves and only products *across* the halves enter, so the sampling noise of the mean images
(which is not symmetric) averages out instead of counting as asymmetry::

    d_c^A, d_c^B = class c's mean image minus the mean over classes, in halves A and B
    mirror correlation = sum_c <d_c^A, mirror(d_c^B)> / sum_c <d_c^A, d_c^B>

1 for classes that look the same mirrored, near 0 (or below) for classes that a mirror turns into something else.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from .describe import even_sample
from .folder import UNREADABLE_IMAGE_ERRORS
from .scan import open_regular

MIRROR_SIDE = 16  # the measurement's resolution: enough for the layout of a class, cheap to decode
MIRROR_PER_CLASS = 40  # images decoded per class (at most), split into two halves
MIN_CLASS_SIGNAL = 0.2  # split-half correlation of the class mean images below which there is nothing to measure
LAYOUT_SAMPLE = 80  # images decoded for a dataset's common layout (layout_asymmetry)


def small_grey(path: str | os.PathLike[str], side: int = MIRROR_SIDE) -> np.ndarray:
    """An image file as a ``side`` x ``side`` float grey array in [0, 1] (JPEGs decoded at a reduced scale)."""
    with open_regular(path) as fh, Image.open(fh) as img:
        img.draft("L", (side * 2, side * 2))  # a JPEG decodes at 1/2..1/8 scale; other formats ignore it
        grey = img.convert("L").resize((side, side), Image.Resampling.BILINEAR)
        return np.asarray(grey, dtype=np.float64) / 255.0


def mirror_correlation(class_images: Sequence[Sequence[np.ndarray]]) -> float | None:
    """The mirror correlation (module docstring) of per-class lists of equally sized grey images.

    Returns ``None`` when it cannot be measured: fewer than 2 classes with at least 2 images, or class mean images
    that do not agree between the halves (split-half correlation below ``MIN_CLASS_SIGNAL``: the classes do not differ
    in layout, so there is no class signal to compare with its mirror).
    """
    halves = []
    for images in class_images:
        if len(images) >= 2:
            stack = np.stack(images)
            halves.append((stack[0::2].mean(axis=0), stack[1::2].mean(axis=0)))
    if len(halves) < 2:
        return None
    mean_a = np.mean([a for a, _ in halves], axis=0)
    mean_b = np.mean([b for _, b in halves], axis=0)
    same = mirrored = power_a = power_b = 0.0
    for a, b in halves:
        da, db = a - mean_a, b - mean_b
        same += float((da * db).sum())
        mirrored += float((da * db[:, ::-1]).sum())
        power_a += float((da * da).sum())
        power_b += float((db * db).sum())
    if same <= MIN_CLASS_SIGNAL * np.sqrt(power_a * power_b):
        return None
    return mirrored / same


def layout_asymmetry(images: Sequence[np.ndarray]) -> tuple[float, float] | None:
    """How much of a set of images' common layout differs between top and bottom, and between left and right.

    Split-half, as :func:`mirror_correlation`: with ``A``, ``B`` the two halves' mean images minus their mean value,
    the layout the halves agree on is ``<A, B>``, and its up-down asymmetric part ``<a, b>`` with
    ``a = (A - flipud(A)) / 2`` (left-right: ``fliplr``). Returns ``(up-down share, left-right share)`` of the
    layout: each near 0 for a layout the same flipped that way, about 0.5 for a layout without a direction (the
    same content anywhere), near 1 for one that is all top-vs-bottom (sky above, ground below) or left-vs-right.
    ``None`` when the halves agree on no layout (split-half correlation below ``MIN_CLASS_SIGNAL``).
    """
    if len(images) < 4:
        return None
    stack = np.stack(images)
    a, b = (h - h.mean() for h in (stack[0::2].mean(axis=0), stack[1::2].mean(axis=0)))
    same = float((a * b).sum())
    if same <= MIN_CLASS_SIGNAL * np.sqrt(float((a * a).sum()) * float((b * b).sum())):
        return None
    updown = float(((a - a[::-1]) * (b - b[::-1])).sum()) / 4
    leftright = float(((a - a[:, ::-1]) * (b - b[:, ::-1])).sum()) / 4
    return updown / same, leftright / same


def small_grey_sample(paths: Sequence[str | os.PathLike[str]], count: int) -> list[np.ndarray]:
    """:func:`small_grey` of ``count`` files spread evenly over ``paths``; unreadable files are skipped."""
    images = []
    for i in even_sample(len(paths), count):
        try:
            images.append(small_grey(paths[i]))
        except UNREADABLE_IMAGE_ERRORS:
            continue
    return images


def measure_layout_asymmetry(
    paths: Sequence[str | os.PathLike[str]], *, sample: int = LAYOUT_SAMPLE
) -> tuple[float, float] | None:
    """:func:`layout_asymmetry` of ``sample`` image files spread evenly over ``paths`` (unreadable ones skipped)."""
    return layout_asymmetry(small_grey_sample(paths, sample))


def measure_mirror_correlation(
    samples: Sequence[tuple[str, int]], num_classes: int, *, per_class: int = MIRROR_PER_CLASS
) -> tuple[float | None, int]:
    """:func:`mirror_correlation` of ``(path, class index)`` samples: ``per_class`` files of each class, spread evenly
    over the class's files. Unreadable files are skipped. Returns ``(correlation or None, images decoded)``."""
    by_class: list[list[str]] = [[] for _ in range(num_classes)]
    for path, target in samples:
        by_class[target].append(path)
    class_images = [small_grey_sample(paths, per_class) for paths in by_class]
    return mirror_correlation(class_images), sum(len(images) for images in class_images)
