"""What a dataset is, read cheaply: images, classes and their balance, image sizes, objects and their sizes.

Nothing is decoded. An ImageFolder's image sizes come from the file headers (``PIL.Image.open`` reads only the
header until pixels are asked for), of every file or, for a large set, of ``max_headers`` files spread evenly over
the (class-ordered) file list; :attr:`DatasetDescription.sizes_read` says how many. A COCO dataset's image sizes are
its annotation file's ``width`` and ``height`` (checked against each image when it is loaded for training), so
describing it reads no image at all.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from PIL import Image

from .coco import has_segmentation, read_coco_json
from .folder import UNREADABLE_IMAGE_ERRORS, ImageFolderDataset
from .scan import open_regular

DEFAULT_MAX_HEADERS = 1000  # image headers read per dataset; above this, an even sample


@dataclass(frozen=True)
class Spread:
    """How a list of numbers spreads: count, minimum, 10th percentile, median, 90th percentile, maximum, mean."""

    count: int
    min: float
    p10: float
    median: float
    p90: float
    max: float
    mean: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread | None:
        """The spread of ``values`` (percentiles by linear interpolation, as NumPy's default); ``None`` if empty."""
        xs = sorted(float(v) for v in values)
        if not xs:
            return None
        p10, median, p90 = (_quantile(xs, q) for q in (0.1, 0.5, 0.9))
        return cls(len(xs), xs[0], p10, median, p90, xs[-1], sum(xs) / len(xs))

    def __str__(self) -> str:
        return f"{_g(self.min)}..{_g(self.max)} (median {_g(self.median)}, 10-90% {_g(self.p10)}..{_g(self.p90)})"


def _quantile(sorted_xs: list[float], q: float) -> float:
    pos = q * (len(sorted_xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def _g(x: float) -> str:
    return f"{x:.3g}"


@dataclass(frozen=True)
class DatasetDescription:
    """A dataset summarised for choosing a training recipe and for checking it before training.

    Attributes:
        task: ``"classification"`` or ``"detection"``.
        num_images: images in the dataset (or split).
        classes: class (category) names, in label order.
        class_counts: per class, images (classification) or objects (detection).
        widths, heights: image sizes in pixels, of the ``sizes_read`` images whose size was read.
        sizes_read: images whose size was read (all, or an even sample of a large ImageFolder).
        unreadable: of those, files whose header could not be read (left out of ``widths`` / ``heights``).
        objects_per_image: detection: objects (valid, non-crowd boxes) per image, images without objects included.
        object_sizes: detection: each object's size relative to its image, ``sqrt(box area / image area)``.
        object_sides: detection: each object's side relative to its image's longer side,
            ``sqrt(box area) / max(width, height)``: its size in pixels once the longer side is resized to ``S`` is
            this times ``S``.
        images_without_objects: detection: images with no valid box.
        objects_with_masks: detection: of the objects, those with a segmentation (a mask).
        box_orientation: detection: how one-way the boxes of each class are, ``|2 * wider share - 1|`` averaged
            over the objects (the share of a class's objects wider than tall, a square counting half): 0 when each
            class is as often wider as taller, as a quarter turn leaves data that looks alike turned; 1 when every
            class is all one way, as upright people (``None``: no objects).
    """

    task: str
    num_images: int
    classes: tuple[str, ...]
    class_counts: tuple[int, ...]
    widths: Spread | None
    heights: Spread | None
    sizes_read: int
    unreadable: int = 0
    objects_per_image: Spread | None = None
    object_sizes: Spread | None = None
    object_sides: Spread | None = None
    images_without_objects: int = 0
    objects_with_masks: int = 0
    box_orientation: float | None = None

    @property
    def num_objects(self) -> int:
        """Objects (detection) or images (classification) over all classes."""
        return sum(self.class_counts)

    @property
    def imbalance(self) -> float:
        """Largest class count over smallest (``inf`` when a class has none, 1.0 for one class)."""
        if not self.class_counts:
            return 1.0
        low, high = min(self.class_counts), max(self.class_counts)
        return high / low if low else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "classes": list(self.classes), "class_counts": list(self.class_counts)}

    def summary(self) -> str:
        """A few lines for a log: counts, balance, sizes (and objects for detection)."""
        unit = "objects" if self.task == "detection" else "images"
        counts = ", ".join(f"{name} {n}" for name, n in zip(self.classes[:12], self.class_counts[:12], strict=False))
        more = f", ... ({len(self.classes) - 12} more)" if len(self.classes) > 12 else ""
        plural = "es" if len(self.classes) != 1 else ""
        lines = [
            f"{self.num_images} images, {len(self.classes)} class{plural}; {unit} per class: {counts}{more} "
            f"(imbalance {self.imbalance:.3g}:1)"
        ]
        if self.widths is not None and self.heights is not None:
            sample = f"from {self.sizes_read} of {self.num_images} images" if self.sizes_read < self.num_images else ""
            lines.append(f"image width {self.widths}, height {self.heights} {sample}".rstrip())
        if self.unreadable:
            lines.append(f"{self.unreadable} of {self.sizes_read} image headers could not be read")
        if self.objects_per_image is not None:
            lines.append(
                f"{self.num_objects} objects, {self.objects_with_masks} of them with masks; objects per image "
                f"{self.objects_per_image}; {self.images_without_objects} images without"
            )
        if self.object_sizes is not None:
            lines.append(f"object size (sqrt of box area / image area) {self.object_sizes}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------------
# Classification


def read_image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(width, height)`` from an image file's header, without decoding it (regular files only)."""
    with open_regular(path) as fh, Image.open(fh) as img:
        return img.size


def even_sample(n: int, k: int) -> list[int]:
    """``min(n, k)`` indices spread evenly over ``range(n)``, first and last included (deterministic)."""
    if k >= n:
        return list(range(n))
    if k <= 1:
        return [0][:k]
    return [round(i * (n - 1) / (k - 1)) for i in range(k)]


def describe_samples(
    samples: Sequence[tuple[str, int]], classes: Sequence[str], *, max_headers: int = DEFAULT_MAX_HEADERS
) -> DatasetDescription:
    """Describe ``(path, class index)`` samples (an :class:`~botnet.data.folder.ImageFolderDataset`'s ``samples``).

    Reads the headers of all files, or of ``max_headers`` of them spread evenly over the list when there are more.
    """
    counts = [0] * len(classes)
    for _, target in samples:
        counts[target] += 1
    widths, heights, unreadable = [], [], 0
    chosen = even_sample(len(samples), max_headers)
    for i in chosen:
        try:
            w, h = read_image_size(samples[i][0])
        except UNREADABLE_IMAGE_ERRORS:
            unreadable += 1
            continue
        widths.append(w)
        heights.append(h)
    return DatasetDescription(
        task="classification",
        num_images=len(samples),
        classes=tuple(classes),
        class_counts=tuple(counts),
        widths=Spread.of(widths),
        heights=Spread.of(heights),
        sizes_read=len(chosen),
        unreadable=unreadable,
    )


def describe_image_folder(
    root: str | os.PathLike[str], split: str = "train", *, max_headers: int = DEFAULT_MAX_HEADERS
) -> DatasetDescription:
    """Describe ``root/split/<class>/*`` (scanned as :class:`~botnet.data.folder.ImageFolderDataset` does)."""
    ds = ImageFolderDataset(root, split)
    return describe_samples(ds.samples, ds.classes, max_headers=max_headers)


# ------------------------------------------------------------------------------------------------------------------
# Detection


def is_valid_box(ann: dict[str, Any], image: dict[str, Any]) -> bool:
    """A non-crowd annotation whose box is finite, of positive size, and overlaps its image."""
    if ann.get("iscrowd", 0):
        return False
    x, y, w, h = ann["bbox"]
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        return False
    return min(x + w, image["width"]) > max(x, 0) and min(y + h, image["height"]) > max(y, 0)


def describe_coco(data: dict[str, Any]) -> DatasetDescription:
    """Describe a COCO instances dict (``images``, ``annotations``, ``categories``; its structure already checked,
    e.g. :attr:`CocoDetection.coco.dataset <botnet.data.coco.CocoDetection>`). Only valid boxes
    (:func:`is_valid_box`) count as objects; classes are the categories in sorted id order."""
    images = {img["id"]: img for img in data["images"]}
    cat_ids = sorted(cat["id"] for cat in data["categories"])
    names = {cat["id"]: cat["name"] for cat in data["categories"]}
    per_class = dict.fromkeys(cat_ids, 0)
    per_image = dict.fromkeys(images, 0)
    sizes, sides = [], []
    with_masks = 0
    wider = dict.fromkeys(cat_ids, 0.0)
    for ann in data["annotations"]:
        img = images.get(ann["image_id"])
        if img is None or ann["category_id"] not in per_class or not is_valid_box(ann, img):
            continue
        per_class[ann["category_id"]] += 1
        per_image[ann["image_id"]] += 1
        with_masks += has_segmentation(ann)
        w, h = ann["bbox"][2:]
        wider[ann["category_id"]] += 1.0 if w > h else 0.5 if w == h else 0.0
        side = math.sqrt(ann["bbox"][2] * ann["bbox"][3])
        sizes.append(side / math.sqrt(img["width"] * img["height"]))
        sides.append(side / max(img["width"], img["height"]))
    return DatasetDescription(
        task="detection",
        num_images=len(images),
        classes=tuple(names[c] for c in cat_ids),
        class_counts=tuple(per_class[c] for c in cat_ids),
        widths=Spread.of(img["width"] for img in images.values()),
        heights=Spread.of(img["height"] for img in images.values()),
        sizes_read=len(images),
        objects_per_image=Spread.of(per_image.values()),
        object_sizes=Spread.of(sizes),
        object_sides=Spread.of(sides),
        images_without_objects=sum(1 for n in per_image.values() if n == 0),
        objects_with_masks=with_masks,
        box_orientation=(sum(abs(2 * wider[c] - per_class[c]) for c in cat_ids) / len(sizes) if sizes else None),
    )


def describe_coco_file(ann_file: str | os.PathLike[str]) -> DatasetDescription:
    """Describe a COCO instances JSON file (read as a regular file; its structure checked as
    :class:`~botnet.data.coco.CocoDetection` does, without looking at the images)."""
    return describe_coco(read_coco_json(ann_file))
