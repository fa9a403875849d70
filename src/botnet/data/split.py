"""A validation set held out of a single training split: stratified, deterministic, the same on every process.

Which items are held out is a pure function of the items' keys (file paths relative to the split folder, or COCO
``file_name``), their groups (classes), the fraction and the seed: within each group the items are ranked by a hash
of ``(seed, key)`` and the first ``round(fraction * n)`` of them, at least 1 and at most ``n - 1``, are held out. No
random-number generator is drawn from, so every process of a run, a resumed run and a later ``botnet eval`` compute
the same split, wherever the dataset folder is. Adding an image to a class moves at most one other image of that
class between the splits.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .checks import check_class_counts, imbalance_message, single_image_warning
from .coco import CocoDetection
from .folder import DEFAULT_MAX_PIXELS, DataError, ImageFolderDataset

VAL_FRACTION = 0.2  # the default share of each class held out when a dataset has no validation split
VAL_FOLDERS = ("val", "validation", "valid")  # names a validation folder beside train/ is given (Roboflow: valid/)
NO_VALIDATION = (
    "no validation; every image trains, and best/ follows the training loss (the epoch with the lowest), which says "
    "nothing about images the model has not seen"
)


def holdout_count(n: int, fraction: float, *, at_least: int = 1) -> int:
    """Items held out of a group of ``n``: ``fraction * n`` rounded half up, at least ``at_least``, at most ``n - 1``
    (0 for a group of one)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")
    return max(0, min(n - 1, max(at_least, math.floor(fraction * n + 0.5))))


def _rank(seed: int, key: str) -> bytes:
    return hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=16).digest()


def stratified_holdout(
    keys: Sequence[str], groups: Sequence[int], fraction: float, seed: int, *, at_least: int = 1
) -> tuple[list[int], list[int]]:
    """``(train indices, val indices)``, each ascending, disjoint, together ``range(len(keys))``.

    Args:
        keys: one stable name per item (a relative file path); the same keys give the same split.
        groups: the stratum of each item (its class); each is split separately, by :func:`holdout_count`.
        fraction: share of each group held out.
        seed: which items are held out, for the same keys.
        at_least: items held out of every group of two or more.
    """
    if len(keys) != len(groups):
        raise ValueError(f"got {len(keys)} keys but {len(groups)} groups; give one group per item")
    members: dict[int, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    val: set[int] = set()
    for indices in members.values():
        ranked = sorted(indices, key=lambda i: (_rank(seed, keys[i]), keys[i], i))
        val.update(ranked[: holdout_count(len(indices), fraction, at_least=at_least)])
    return [i for i in range(len(keys)) if i not in val], sorted(val)


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.3g}%"


def _share(held: int, total: int, fraction: float) -> str:
    """``"200 of 400 images"``, with the share it really is when rounding per class (at least 1 image of a class of
    two or more) moved it away from ``fraction``."""
    text = f"{held} of {total} images"
    if total and abs(held / total - fraction) > 0.05:
        text += f" ({_percent(held / total)}: at least 1 image of each class, the classes are small)"
    return text


def image_folder_splits(
    root: str | os.PathLike[str],
    train_transform: Callable[[Any], Any] | None,
    val_transform: Callable[[Any], Any] | None,
    *,
    val_fraction: float = VAL_FRACTION,
    seed: int = 0,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    need_train: bool = True,
    tensors: bool = False,
    hint: str = " (--val-fraction sets the share)",
) -> tuple[ImageFolderDataset | None, ImageFolderDataset | None, list[str]]:
    """``(train, val, notes)`` of an ImageFolder root: ``root/train`` and ``root/val``, or, with no ``val/`` folder,
    ``val_fraction`` of each class of ``root/train`` held out (:func:`stratified_holdout`, ``seed``); none with
    ``val_fraction`` 0 (val is then ``None``: the run trains without validation).

    The training classes are checked (:func:`~botnet.data.checks.check_class_counts`); ``notes`` are the lines to
    log: the held-out split and a class-imbalance warning. ``need_train=False`` with a ``val/`` folder reads only it
    (``train`` is then ``None``). ``tensors``: the datasets decode to uint8 tensors (:class:`ImageFolderDataset`).
    ``hint`` ends the note on the held-out split (how the share is set, where the command has an option for it).

    Raises:
        DataError: a missing or badly laid-out folder, a class with fewer than 2 images, val classes that differ
            from train's.
    """
    root, decoding = Path(root), dict(max_pixels=max_pixels, tensors=tensors)
    val_dir = val_folder(root)
    if val_dir and not need_train:
        return None, ImageFolderDataset(root, val_dir, val_transform, **decoding), []
    if val_fraction == 0 and not val_dir and not need_train:
        raise DataError(
            f"{root} has no val/ folder and the run held none of its images out (val_fraction 0): there is nothing "
            "to evaluate on that the run did not train on; give --data a folder of labelled images it has not seen"
        )
    train = ImageFolderDataset(root, "train", train_transform, **decoding)
    notes = [note for note in (train.skipped_note(),) if note]
    val: ImageFolderDataset | None
    if val_dir:
        val = ImageFolderDataset(root, val_dir, val_transform, classes=train.classes, **decoding)
        check_class_counts(_counts(train), train.classes, str(root / "train"))
        notes += [note for note in (val.skipped_note(),) if note]
        if val_dir != "val":
            notes.append(f"validating on {root / val_dir} (the folder beside train/)")
    elif val_fraction == 0:
        check_class_counts(_counts(train), train.classes, str(root / "train"))
        val = None
        notes.append(f"no val/ folder in {root} and --val-fraction 0: {NO_VALIDATION}")
    else:
        check_class_counts(_counts(train), train.classes, str(root / "train"), holdout_fraction=val_fraction)
        split_dir = root / "train"
        keys = [Path(os.path.relpath(path, split_dir)).as_posix() for path, _ in train.samples]
        train_idx, val_idx = stratified_holdout(keys, train.targets, val_fraction, seed)
        held = f"{_percent(val_fraction)} held out, seed {seed}"
        notes.append(
            f"no val/ folder in {root}: holding out {_percent(val_fraction)} of each class, seed {seed}: "
            f"{_share(len(val_idx), len(train), val_fraction)} to validate{hint}"
        )
        full = train
        train = full.subset(train_idx, train_transform, "train")
        val = full.subset(val_idx, val_transform, f"train ({held})")
    where = f"the training set {root / 'train'}"
    single = single_image_warning(_counts(train), train.classes, where)
    warning = imbalance_message(_counts(train), train.classes, where)
    return train, val, notes + [w for w in (single, warning) if w]


def val_folder(root: Path) -> str | None:
    """The validation folder beside ``train/``: ``val/``, or the other names exporters give it (``validation/``,
    ``valid/``); ``None`` when there is none. Two of them at once are a :class:`DataError`: which one is meant?"""
    found = [name for name in VAL_FOLDERS if (root / name).is_dir()]
    if len(found) > 1:
        raise DataError(
            f"{root} has {' and '.join(n + '/' for n in found)} beside train/: keep one validation folder (rename or "
            "move the others) so that it is clear which images validate"
        )
    return found[0] if found else None


def _counts(ds: ImageFolderDataset) -> list[int]:
    counts = [0] * len(ds.classes)
    for target in ds.targets:
        counts[target] += 1
    return counts


def coco_holdout(
    ds: CocoDetection,
    fraction: float,
    seed: int,
    *,
    train_transforms: Callable[[Any, Any], Any] | None,
    val_transforms: Callable[[Any, Any], Any] | None,
    hint: str = " (--val-fraction sets the share)",
) -> tuple[CocoDetection, CocoDetection, str]:
    """``(train, val, note)``: ``fraction`` of the images of ``ds`` held out, by image.

    Images are stratified by the rarest category among their (non-crowd) objects, so every category seen on two or
    more images gets validation images; images without objects are a stratum of their own, and an image that is
    alone in its stratum stays in train. Keys are the images' ``file_name``.
    """
    objects = {
        image_id: [a["category_id"] for a in ds.coco.imgToAnns.get(image_id, []) if not a["iscrowd"]]
        for image_id in ds.image_ids
    }
    frequency: dict[int, int] = {}
    for cats in objects.values():
        for cat in cats:
            frequency[cat] = frequency.get(cat, 0) + 1
    groups = [min(objects[i], key=lambda c: (frequency[c], c)) if objects[i] else -1 for i in ds.image_ids]
    keys = [ds.coco.imgs[i]["file_name"] for i in ds.image_ids]
    train_idx, val_idx = stratified_holdout(keys, groups, fraction, seed)
    if not val_idx:
        raise DataError(
            f"{ds.ann_file} is too small to hold out a validation set: its {len(ds)} images each have a different "
            "rarest category, and an image alone in its category stays in train. Add images (at least 2 per "
            "category), or give a validation split"
        )
    note = (
        f"no validation split: holding out {_percent(fraction)} of the images of {ds.ann_file} (stratified by their "
        f"rarest category), seed {seed}: {_share(len(val_idx), len(ds), fraction)} to validate{hint}"
    )
    train = ds.subset([ds.image_ids[i] for i in train_idx], transforms=train_transforms, train=True)
    val = ds.subset([ds.image_ids[i] for i in val_idx], transforms=val_transforms, train=False)
    return train, val, note
