"""COCO-format detection / instance-segmentation dataset (the paper's COCO Mask R-CNN experiments).

The annotation file is checked before pycocotools sees it, so a malformed file fails with the entry and the key at
fault instead of a ``KeyError`` deep in training. Only regular files are read (:mod:`botnet.data.scan`): an
annotation file that is a FIFO or a device is refused, and such an image file gives a bad sample without being
opened.

Duplicates are named. One image file under several image ids is an error: its annotations would be split between
the ids, so each copy would teach (and be evaluated against) an incomplete set of objects, the missing ones as
background. Two categories with the same name are a warning: annotations and evaluation go by category id, so
training is still right (COCO-style data can legitimately reuse a name under two supercategories), but the names in
pictures and results are ambiguous. Images are decoded with :func:`~botnet.data.folder.read_rgb`; an
undecodable file gives a :class:`~botnet.data.folder.BadSample`, as in :class:`~botnet.data.folder.ImageFolderDataset`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import warnings
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from torch.utils.data import Dataset
from torchvision import tv_tensors

from .folder import DEFAULT_MAX_PIXELS, UNREADABLE_IMAGE_ERRORS, BadSample, DataError, read_rgb
from .scan import NotRegularFile, file_kind, open_regular

_REQUIRED_KEYS = {
    "images": ("id", "file_name", "width", "height"),
    "annotations": ("id", "image_id", "category_id", "bbox"),
    "categories": ("id", "name"),
}
_SINGULAR = {"images": "image", "annotations": "annotation", "categories": "category"}

# Reasons an annotation is dropped (the keys of CocoDetection.dropped), in the order they are checked, and how the
# warning words them.
NON_FINITE_BOX = "non-finite box"
NON_POSITIVE_SIZE = "non-positive width/height"
OUTSIDE_IMAGE = "outside the image"
DEGENERATE_POLYGON = "polygon with fewer than 3 points"
_PHRASES = {
    NON_FINITE_BOX: "with non-finite box values",
    NON_POSITIVE_SIZE: "with non-positive width/height",
    OUTSIDE_IMAGE: "outside the image",
    DEGENERATE_POLYGON: "with a polygon of fewer than 3 points",
}


class CocoDetection(Dataset):
    """Images and instance targets from a COCO instances JSON, for torchvision's detection models.

    Labels are contiguous ``1..K`` in the order of the sorted category ids (0 is torchvision's background). At
    construction, boxes are clipped to the image and annotations are dropped, with one counted warning, when their
    box is non-finite, has a non-positive width or height, or lies outside the image, or when their polygon has no
    part with 3 or more points (parts with fewer points are removed from the others). Dropped annotations are left
    out of :attr:`coco` too; crowd annotations stay in it, so COCOeval treats them as crowd regions.

    Args:
        root: folder the images' ``file_name`` are relative to.
        ann_file: COCO instances JSON.
        transforms: called as ``transforms(image, target)``, e.g. a ``torchvision.transforms.v2`` pipeline.
        max_image_pixels: passed to :func:`~botnet.data.folder.read_rgb`.
        masks: decode instance masks into ``target["masks"]``; every annotation then needs a ``segmentation``.
            ``None``: masks when every annotation has one (:attr:`masks` says which was chosen).
        train: leave crowd annotations out of the targets (torchvision's reference scripts). With ``False`` they
            are kept, flagged in ``target["iscrowd"]``.

    Sample ``i`` is ``(image, target)``: a ``tv_tensors.Image`` uint8 ``(3, H, W)`` and a dict with ``boxes``
    (``tv_tensors.BoundingBoxes`` XYXY float32), ``labels`` int64 ``(N,)``, ``masks`` (``tv_tensors.Mask`` uint8
    ``(N, H, W)``, with ``masks=True``), ``image_id`` (int), ``area`` float32 ``(N,)`` (COCO's area in the original
    image) and ``iscrowd`` int64 ``(N,)``. An image file that cannot be decoded gives a :class:`BadSample` instead.

    Raises:
        DataError: the JSON is malformed (missing keys, wrong types, duplicate ids, unknown category or image ids,
            RLE sizes that differ from the image's, no ``segmentation`` with ``masks=True``), ``categories`` is
            empty, a ``file_name`` leaves ``root``, image files are missing, or one image file is listed under
            several image ids. Reading a sample raises it when the image's size differs from the JSON's ``width`` /
            ``height``. Two categories of the same name give a warning.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        ann_file: str | os.PathLike[str],
        *,
        transforms: Callable[[Any, Any], Any] | None = None,
        max_image_pixels: int | None = DEFAULT_MAX_PIXELS,
        masks: bool | None = True,
        train: bool = True,
    ) -> None:
        self.root = Path(root)
        self.ann_file = Path(ann_file)
        self.transforms = transforms
        self.max_image_pixels = max_image_pixels
        self.train = train
        if not self.root.is_dir():
            raise DataError(f"COCO image folder {self.root} does not exist or is not a folder")

        data = _read_json(self.ann_file)
        images = _check_entries(data, "images", self.ann_file)
        categories = _check_entries(data, "categories", self.ann_file)
        annotations = _check_entries(data, "annotations", self.ann_file)
        if not categories:
            raise DataError(
                f"{self.ann_file} has an empty 'categories' list: a detection dataset needs at least one category "
                'to detect; add entries such as {"id": 1, "name": "cat"} and refer to their ids in the annotations'
            )
        _warn_duplicate_names(categories, self.ann_file)
        if masks is None:
            masks = bool(annotations) and all(has_segmentation(ann) for ann in annotations)
        self.masks = masks
        self.image_ids: list[int] = [img["id"] for img in images]
        self.cat_ids: list[int] = sorted(cat["id"] for cat in categories)
        names = {cat["id"]: cat["name"] for cat in categories}
        self.classes: list[str] = [names[c] for c in self.cat_ids]
        self.cat_id_to_label: dict[int, int] = {c: i + 1 for i, c in enumerate(self.cat_ids)}
        self._check_file_names(images)

        images_by_id = {img["id"]: img for img in images}
        kept, dropped = _clean_annotations(annotations, images_by_id, self.cat_id_to_label, masks, self.ann_file)
        self.dropped: dict[str, int] = {reason: len(ids) for reason, ids in dropped.items() if ids}
        if self.dropped:
            warnings.warn(_dropped_message(dropped, len(annotations), self.ann_file), stacklevel=2)

        self._index({**data, "annotations": kept})

    def _index(self, data: dict[str, Any]) -> None:
        """Set :attr:`coco` to ``data`` (images and their kept annotations) and the per-image training targets."""
        self.coco = COCO()
        self.coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco.createIndex()
        self._anns: dict[int, list[dict[str, Any]]] = {image_id: [] for image_id in self.image_ids}
        for ann in data["annotations"]:
            if not (self.train and ann["iscrowd"]):
                self._anns[ann["image_id"]].append(ann)

    def subset(
        self, image_ids: Collection[int], *, transforms: Callable[[Any, Any], Any] | None, train: bool
    ) -> CocoDetection:
        """The images of ``image_ids`` (in this dataset's order) as a dataset of their own, with their annotations
        as kept at construction, ``transforms`` and ``train``'s crowd handling; its :attr:`coco` holds only them."""
        keep = set(image_ids)
        view = copy.copy(self)
        view.transforms, view.train = transforms, train
        view.image_ids = [i for i in self.image_ids if i in keep]
        data = self.coco.dataset
        images = [img for img in data["images"] if img["id"] in keep]
        annotations = [ann for ann in data["annotations"] if ann["image_id"] in keep]
        view._index({**data, "images": images, "annotations": annotations})
        return view

    def _check_file_names(self, images: list[dict[str, Any]]) -> None:
        """Every image inside ``root``, present, and listed once (a file that is not a regular file is left to give
        a bad sample when read, never opened)."""
        root = self.root.resolve()
        missing = []
        first_id: dict[Any, int] = {}
        for img in images:
            name = img["file_name"]
            path = (self.root / name).resolve()
            if Path(name).is_absolute() or not path.is_relative_to(root):
                raise DataError(
                    f"{self.ann_file}: image id {img['id']} has file_name {name!r}, which is outside the image "
                    f"folder {self.root}; file names must be relative paths inside it"
                )
            try:
                st = os.stat(path)
            except OSError:
                missing.append(str(self.root / name))
                continue
            key = (st.st_dev, st.st_ino)  # the same file under two names (links) too
            if key in first_id:
                raise DataError(
                    f"{self.ann_file}: image ids {first_id[key]} and {img['id']} are the same image file "
                    f"{self.root / name}: its annotations would be split between two images, each missing the "
                    "other's objects; list each file once and give all its annotations that image id"
                )
            first_id[key] = img["id"]
        if missing:
            raise DataError(
                f"{len(missing)} of {len(images)} image files listed in {self.ann_file} are missing under "
                f"{self.root}, e.g. {', '.join(missing[:5])}"
            )

    def label_to_cat_id(self, label: int) -> int:
        """The COCO category id of a contiguous label ``1..K``."""
        if not 1 <= label <= len(self.cat_ids):
            raise ValueError(f"label must be in 1..{len(self.cat_ids)} (0 is the background), got {label}")
        return self.cat_ids[label - 1]

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[Any, Any] | BadSample:
        image_id = self.image_ids[index]
        info = self.coco.imgs[image_id]
        path = self.root / info["file_name"]
        try:
            pixels = read_rgb(path, max_pixels=self.max_image_pixels)  # (3, H, W) uint8
        except UNREADABLE_IMAGE_ERRORS as e:
            return BadSample(str(path), f"{type(e).__name__}: {e}")
        height, width = pixels.shape[-2:]
        if (width, height) != (info["width"], info["height"]):
            raise DataError(
                f"image {path} is {width}x{height} pixels but {self.ann_file} gives width {info['width']} "
                f"and height {info['height']} for image id {image_id}"
            )
        image = tv_tensors.Image(pixels)
        target = self._target(image_id, height, width)
        if self.transforms is not None:
            return self.transforms(image, target)
        return image, target

    def _target(self, image_id: int, height: int, width: int) -> dict[str, Any]:
        anns = self._anns[image_id]
        xywh = torch.tensor([ann["bbox"] for ann in anns], dtype=torch.float32).reshape(-1, 4)
        boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)  # (N, 4) XYXY
        target: dict[str, Any] = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
            "labels": torch.tensor([self.cat_id_to_label[ann["category_id"]] for ann in anns], dtype=torch.int64),
            "image_id": image_id,
            "area": torch.tensor([ann["area"] for ann in anns], dtype=torch.float32),
            "iscrowd": torch.tensor([int(ann["iscrowd"]) for ann in anns], dtype=torch.int64),
        }
        if self.masks:
            if anns:
                decoded = _decode([self.coco.annToRLE(ann) for ann in anns])  # (H, W, N)
                masks = torch.from_numpy(np.ascontiguousarray(decoded.transpose(2, 0, 1)))  # (N, H, W)
            else:
                masks = torch.zeros(0, height, width, dtype=torch.uint8)
            target["masks"] = tv_tensors.Mask(masks)
        return target

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, ann_file={str(self.ann_file)!r}, "
            f"{len(self)} images, {len(self.cat_ids)} classes)"
        )


def _decode(rles: list[dict[str, Any]]) -> np.ndarray:
    """pycocotools' ``decode``, without the NumPy 2 ``copy`` keyword DeprecationWarning it gives on every call."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "__array__ implementation doesn't accept", DeprecationWarning)
        return mask_utils.decode(rles)


def _warn_duplicate_names(categories: list[dict[str, Any]], ann_file: Path) -> None:
    ids: dict[str, list[int]] = {}
    for cat in categories:
        ids.setdefault(cat["name"], []).append(cat["id"])
    duplicates = {name: cat_ids for name, cat_ids in ids.items() if len(cat_ids) > 1}
    if duplicates:
        listed = "; ".join(f"{name!r}: ids {', '.join(map(str, cat_ids))}" for name, cat_ids in duplicates.items())
        warnings.warn(
            f"{ann_file} gives several categories the same name ({listed}); they are trained and evaluated as "
            "separate classes, but their names in pictures and results are ambiguous. Merge them or rename one",
            stacklevel=3,
        )


def read_coco_json(ann_file: str | os.PathLike[str]) -> dict[str, Any]:
    """A COCO instances JSON file (a regular file only), with the keys and types of its three lists checked."""
    path = Path(ann_file)
    data = _read_json(path)
    for section in _REQUIRED_KEYS:
        _check_entries(data, section, path)
    return data


def _read_json(ann_file: Path) -> dict[str, Any]:
    try:
        with open_regular(ann_file) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError(f"COCO annotation file {ann_file} does not exist") from None
    except NotRegularFile:
        kind = file_kind(os.stat(ann_file).st_mode)
        raise DataError(f"COCO annotation file {ann_file} is a {kind}, not a regular file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{ann_file} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise DataError(f"{ann_file} must hold a JSON object with 'images', 'annotations' and 'categories' lists")
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_entries(data: dict[str, Any], section: str, ann_file: Path) -> list[dict[str, Any]]:
    """The entries of one top-level list, with their required keys' types and unique ids checked."""
    entries = data.get(section)
    if not isinstance(entries, list):
        found = "no such key" if section not in data else f"a {type(entries).__name__}"
        raise DataError(f"{ann_file} needs a top-level '{section}' list, found {found}")
    seen: set[int] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DataError(f"{ann_file}: {section}[{index}] is a {type(entry).__name__}, expected an object")
        who = f"{_SINGULAR[section]} id {entry['id']}" if _is_int(entry.get("id")) else f"{section}[{index}]"
        for key in _REQUIRED_KEYS[section]:
            if key not in entry:
                raise DataError(
                    f"{ann_file}: {who} has no '{key}' key (required: {', '.join(_REQUIRED_KEYS[section])})"
                )
        for key, expected, ok in _key_checks(section, entry):
            if not ok:
                raise DataError(f"{ann_file}: {who} has {key}={entry[key]!r}, expected {expected}")
        if entry["id"] in seen:
            raise DataError(f"{ann_file}: duplicate {_SINGULAR[section]} id {entry['id']} in '{section}'")
        seen.add(entry["id"])
    return entries


def _key_checks(section: str, entry: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """``(key, expected, ok)`` for each typed key of an entry."""
    checks = [("id", "an integer", _is_int(entry["id"]))]
    if section == "images":
        name = entry["file_name"]
        checks.append(("file_name", "a non-empty string", isinstance(name, str) and bool(name)))
        for key in ("width", "height"):
            checks.append((key, "a positive integer", _is_int(entry[key]) and entry[key] > 0))
    elif section == "categories":
        checks.append(("name", "a string", isinstance(entry["name"], str)))
    else:
        bbox = entry["bbox"]
        checks.append(("image_id", "an integer", _is_int(entry["image_id"])))
        checks.append(("category_id", "an integer", _is_int(entry["category_id"])))
        bbox_ok = isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)
        checks.append(("bbox", "a list [x, y, width, height] of 4 numbers", bbox_ok))
        if "iscrowd" in entry:
            checks.append(("iscrowd", "0 or 1", entry["iscrowd"] in (0, 1)))
        if "area" in entry:
            checks.append(("area", "a number", _is_number(entry["area"])))
    return checks


def _clean_annotations(
    annotations: list[dict[str, Any]],
    images: dict[int, dict[str, Any]],
    cat_id_to_label: dict[int, int],
    masks: bool,
    ann_file: Path,
) -> tuple[list[dict[str, Any]], dict[str, list[int]]]:
    """Annotations with clipped boxes, ``area`` and ``iscrowd`` filled in, and the ids dropped for each reason."""
    dropped: dict[str, list[int]] = {reason: [] for reason in _PHRASES}
    kept = []
    for ann in annotations:
        who = f"annotation id {ann['id']}"
        if ann["category_id"] not in cat_id_to_label:
            raise DataError(
                f"{ann_file}: {who} has category_id {ann['category_id']}, which is not in 'categories' "
                f"(valid ids: {', '.join(map(str, sorted(cat_id_to_label)))})"
            )
        img = images.get(ann["image_id"])
        if img is None:
            raise DataError(f"{ann_file}: {who} has image_id {ann['image_id']}, which is not in 'images'")
        x, y, w, h = ann["bbox"]
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            dropped[NON_FINITE_BOX].append(ann["id"])
            continue
        if w <= 0 or h <= 0:
            dropped[NON_POSITIVE_SIZE].append(ann["id"])
            continue
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, img["width"]), min(y + h, img["height"])
        if x1 <= x0 or y1 <= y0:
            dropped[OUTSIDE_IMAGE].append(ann["id"])
            continue
        if masks and not has_segmentation(ann):
            raise DataError(
                f"{ann_file}: {who} has no segmentation (or an empty one); a mask head needs one per annotation. Train"
                " boxes only: leave --model out (chosen from the annotations) or give a fasterrcnn_* model"
            )
        cleaned = {**{k: v for k, v in ann.items() if k != "segmentation"}, "bbox": [x0, y0, x1 - x0, y1 - y0]}
        cleaned["iscrowd"] = int(ann.get("iscrowd", 0))  # an empty segmentation is none: left out
        if has_segmentation(ann):
            segmentation = _check_segmentation(ann["segmentation"], img, f"{ann_file}: {who}")
            if segmentation is None:
                dropped[DEGENERATE_POLYGON].append(ann["id"])
                continue
            cleaned["segmentation"] = segmentation
        if "area" not in ann:
            cleaned["area"] = _area(cleaned, img)
        kept.append(cleaned)
    return kept, dropped


def has_segmentation(ann: dict[str, Any]) -> bool:
    """Whether an annotation has a mask: not missing, ``null`` or empty (box exporters write ``[]``)."""
    return ann.get("segmentation") not in (None, [], {})


def _check_segmentation(segm: Any, img: dict[str, Any], who: str) -> Any:
    """A polygon list without parts of fewer than 3 points (``None`` if none is left) or a checked RLE."""
    if isinstance(segm, list):
        for part in segm:
            if not isinstance(part, list) or not all(_is_number(v) for v in part) or len(part) % 2:
                raise DataError(f"{who} has a segmentation polygon {str(part)[:60]}, expected a list of x, y numbers")
        parts = [part for part in segm if len(part) >= 6]
        return parts or None
    if isinstance(segm, dict):
        counts, size = segm.get("counts"), segm.get("size")
        counts_ok = isinstance(counts, str) or (isinstance(counts, list) and all(_is_int(c) for c in counts))
        if not counts_ok or size != [img["height"], img["width"]]:
            raise DataError(
                f"{who} has an RLE segmentation with size {size!r} and counts of type {type(counts).__name__}; "
                f"expected size [height, width] = [{img['height']}, {img['width']}] of its image and counts a string "
                "(compressed) or a list of integers (uncompressed)"
            )
        return segm
    raise DataError(f"{who} has segmentation of type {type(segm).__name__}, expected a polygon list or an RLE object")


def _area(ann: dict[str, Any], img: dict[str, Any]) -> float:
    """The mask area of an annotation without one, or its box area when it has no segmentation."""
    if "segmentation" not in ann:
        return float(ann["bbox"][2] * ann["bbox"][3])
    segm = ann["segmentation"]
    if isinstance(segm, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, img["height"], img["width"]))
    elif isinstance(segm["counts"], list):
        rle = mask_utils.frPyObjects(segm, img["height"], img["width"])
    else:
        rle = segm
    return float(mask_utils.area(rle))


def _dropped_message(dropped: dict[str, list[int]], total: int, ann_file: Path) -> str:
    ids = sorted(i for reason_ids in dropped.values() for i in reason_ids)
    reasons = ", ".join(f"{len(reason_ids)} {_PHRASES[reason]}" for reason, reason_ids in dropped.items() if reason_ids)
    listed = ", ".join(map(str, ids[:10])) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
    return f"dropped {len(ids)} of {total} annotations in {ann_file}: {reasons} (annotation ids {listed})"
