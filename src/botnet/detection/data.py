"""The data of a detection run: its COCO-format splits, the built-in dataset, and the train / val datasets.

A COCO-format dataset is ``DIR/annotations/instances_<split>.json`` + ``DIR/<split>/`` (COCO 2017 itself with
``--train-split train2017 --val-split val2017``). The built-in dataset is written in that layout once, into the
cache directory, so it goes through the same loading path as any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.checks import check_boxes, imbalance_message
from ..data.coco import CocoDetection
from ..data.coco_shapes import builtin_coco_shapes
from ..data.det_transforms import build_detection_eval_transform, build_detection_train_transform
from ..data.folder import DataError
from ..data.split import NO_VALIDATION, VAL_FOLDERS, coco_holdout
from ..engine.distributed import (
    DistInfo,
    barrier,
)
from ..engine.reporting import log
from .config import DetectConfig
from .models import detector_has_masks


def split_files(root: str | Path, split: str) -> tuple[Path, Path]:
    """(image folder, annotation file) of ``split`` in a COCO-format root; DataError if either is missing."""
    root = Path(root)
    images, ann = root / split, root / "annotations" / f"instances_{split}.json"
    if not root.is_dir():
        raise DataError(f"dataset root {root} does not exist or is not a directory")
    missing = [str(p) for p in (ann, images) if not p.exists()]
    if missing:
        raise DataError(
            f"{root} is not a COCO-format dataset for split {split!r}: missing {', '.join(missing)} "
            f"(expected {root}/annotations/instances_{split}.json and the images under {root}/{split}/)"
        )
    return images, ann


def val_split_of(root: Path, split: str) -> str:
    """The validation split of a COCO-format root: ``split``, or for the default ``val`` with no such annotation file,
    the other names exporters give it (``validation``, ``valid``) when one of them is there."""
    if split != "val" or (root / "annotations" / "instances_val.json").exists():
        return split
    return next((s for s in VAL_FOLDERS if (root / "annotations" / f"instances_{s}.json").exists()), split)


SHAPES_SIDE = 128  # the built-in images' native side (the generator draws at any size)


def builtin_root(cfg: DetectConfig, info: DistInfo) -> Path:
    """Write the built-in dataset once (rank 0; the others wait) and return its root."""
    kw = dict(num_train=cfg.shapes_train, num_val=cfg.shapes_val, size=cfg.image_size, seed=cfg.seed)
    root = builtin_coco_shapes(**kw) if info.is_main else None
    barrier(info)
    return Path(root) if root is not None else builtin_coco_shapes(**kw)


# What a class imbalance means for a detector's figures (the warning's last sentence).
RARE_CLASS_ADVICE = (
    "Box AP is the mean over classes: a class with few objects is learned least and weighs as much as any other; "
    "add objects of the rare classes where you can"
)


def build_detection_datasets(
    cfg: DetectConfig, info: DistInfo, *, train: bool = True, holdout: bool = True
) -> tuple[CocoDetection | None, CocoDetection | None]:
    """(train, val) datasets of a run; ``train=False`` builds val only; val is ``None`` with ``val_fraction`` 0 and
    no validation split (the run trains without validation).

    With ``holdout`` and no annotation file for ``cfg.val_split``, ``cfg.val_fraction`` of the train images are held
    out to validate (:func:`~botnet.data.split.coco_holdout`). The training set must have a valid box; a class
    imbalance above 10:1 (in objects) is a warning.
    """
    root = builtin_root(cfg, info) if cfg.builtin_data else Path(cfg.data)
    if cfg.val_split != val_split_of(root, cfg.val_split):
        cfg = cfg.replace(val_split=val_split_of(root, cfg.val_split))
        log(f"validating on the {cfg.val_split} split of {root} (there is no val split)", enabled=info.is_main)
    model_masks = None if cfg.model is None else detector_has_masks(cfg.model)  # None: not chosen yet, as the data

    def load(split: str, transforms: Any, is_train: bool) -> CocoDetection:
        images, ann = split_files(root, split)
        # Training a mask model needs every mask; validation reports mask AP only where the annotations have masks.
        masks = model_masks if is_train and train else (False if model_masks is False else None)
        return CocoDetection(
            images, ann, transforms=transforms, max_image_pixels=cfg.max_image_pixels, masks=masks, train=is_train
        )

    eval_tf = build_detection_eval_transform()
    train_tf = None  # evaluation alone needs no training transform (nor its options: runs of older versions lack some)
    if train:
        train_tf = build_detection_train_transform(
            cfg.image_size,
            scale_range=cfg.scale_range,
            hflip=cfg.hflip,
            vflip=cfg.vflip or 0.0,  # None (auto, unresolved when called directly): off
            rot90=bool(cfg.rot90),
            fixed_size=cfg.fixed_size,
        )
    no_val = not (root / "annotations" / f"instances_{cfg.val_split}.json").exists()
    val: CocoDetection | None
    has_train = (root / "annotations" / f"instances_{cfg.train_split}.json").exists()
    if holdout and no_val and has_train and cfg.val_fraction == 0:
        if not train:
            raise DataError(
                f"{root} has no {cfg.val_split} annotations and the run held none of its images out (val_fraction 0): "
                "there is nothing to evaluate on that the run did not train on; give --data and --split for "
                "annotated images it has not seen"
            )
        tr, val = load(cfg.train_split, train_tf, True), None
        log(f"no {cfg.val_split} split in {root} and --val-fraction 0: {NO_VALIDATION}", enabled=info.is_main)
    elif holdout and no_val and has_train:
        full = load(cfg.train_split, None, True)
        check_boxes(full)
        hint = " (--val-fraction sets the share)" if train else " (the run's val_fraction)"
        tr, val, note = coco_holdout(
            full, cfg.val_fraction, cfg.seed, train_transforms=train_tf, val_transforms=eval_tf, hint=hint
        )
        log(note, enabled=info.is_main)
    else:
        val = load(cfg.val_split, eval_tf, False)
        if not train:
            return None, val
        tr = load(cfg.train_split, train_tf, True)
        if tr.classes != val.classes:
            raise DataError(
                f"the train and val annotation files have different categories: {tr.classes} vs {val.classes}"
            )
    if not train:
        return None, val
    desc = check_boxes(tr)
    warning = imbalance_message(
        desc.class_counts, desc.classes, f"the training set {tr.ann_file}", unit="objects", advice=RARE_CLASS_ADVICE
    )
    if warning:
        log(warning, enabled=info.is_main)
    return tr, val
