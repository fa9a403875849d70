"""Detection data of a run, COCO evaluation over processes, and detection checkpoints.

A COCO-format dataset is ``DIR/annotations/instances_<split>.json`` + ``DIR/<split>/`` (COCO 2017 itself with
``--train-split train2017 --val-split val2017``). The built-in dataset is written in that layout once, into the
cache directory, so it goes through the same loading path as any other.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.checks import check_boxes, imbalance_message
from ..data.coco import CocoDetection, read_coco_json
from ..data.coco_shapes import builtin_coco_shapes
from ..data.describe import describe_coco, even_sample
from ..data.det_transforms import build_detection_eval_transform, build_detection_train_transform, collate_detection
from ..data.folder import DataError
from ..data.split import NO_VALIDATION, VAL_FOLDERS, coco_holdout
from ..data.symmetry import LAYOUT_SAMPLE, measure_layout_asymmetry
from ..engine import checkpoint as ckpt
from ..engine.config import BUILTIN, build_config
from ..engine.data import eval_loader
from ..engine.distributed import (
    DistInfo,
    auto_workers,
    autocast,
    barrier,
    broadcast_object,
    cleanup,
    local_world_size,
    setup,
)
from ..engine.reporting import Progress, log, result_path, write_result
from ..models.weights import load_weights, read_metadata
from .coco_eval import IOU_TYPES, METRIC_NAMES, coco_evaluate, to_coco_results
from .config import DetectConfig
from .models import create_detection_model, detector_has_masks, has_masks
from .recipe import DetectFacts, facts_from


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


# ----------------------------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def evaluate_detection(
    model: nn.Module,
    loader: DataLoader,
    dataset: CocoDetection,
    info: DistInfo,
    *,
    amp: str = "none",
    desc: str = "eval",
    log_interval: int = 20,
) -> dict[str, Any]:
    """COCO box (and mask) AP of ``model`` on ``dataset``, every image counted once over all processes.

    Returns ``{"bbox": {AP, AP50, ...}, "segm": {...}, "images": n, "bad_images": k, "seconds_per_image": s}``
    on every process.
    """
    model.eval()
    results: list[dict[str, Any]] = []
    seen: list[int] = []
    bad = 0
    progress = Progress(len(loader), desc=desc, interval=log_interval, enabled=info.is_main)
    t0 = time.perf_counter()
    for images, targets, bad_samples in loader:
        bad += len(bad_samples)
        if images:
            with autocast(info.device, amp):
                outputs = model([img.to(info.device, non_blocking=True) for img in images])
            outputs = [{k: (v.float() if v.is_floating_point() else v).cpu() for k, v in o.items()} for o in outputs]
            ids = [int(t["image_id"]) for t in targets]
            results += to_coco_results(outputs, ids, dataset.label_to_cat_id)
            seen += ids
        progress.update()
    progress.close()
    elapsed = time.perf_counter() - t0
    if info.distributed:
        gathered: list[Any] = [None] * info.world_size
        torch.distributed.all_gather_object(gathered, (results, seen, bad, elapsed))
        results = [r for part in gathered for r in part[0]]
        seen = [i for part in gathered for i in part[1]]
        bad = sum(part[2] for part in gathered)
        elapsed = max(part[3] for part in gathered)
    metrics = None
    if info.is_main:
        iou_types = IOU_TYPES if has_masks(model) and dataset.masks else ("bbox",)
        if seen:
            metrics = coco_evaluate(dataset.coco, results, iou_types, image_ids=seen)
        else:
            metrics = {t: dict.fromkeys(METRIC_NAMES, float("nan")) for t in iou_types}
    metrics = broadcast_object(metrics, info)
    return {
        **metrics,
        "images": len(seen),
        "bad_images": bad,
        "detections": len(results),
        "seconds_per_image": elapsed * info.world_size / max(len(seen), 1),
    }


def flat_metrics(metrics: dict[str, Any], prefix: str = "val_") -> dict[str, float]:
    """``{"bbox": {"AP": x}}`` -> ``{"val_bbox_AP": x}``."""
    return {f"{prefix}{t}_{k}": v for t in IOU_TYPES if t in metrics for k, v in metrics[t].items()}


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints


def detection_metadata(
    model_name: str, detector_args: dict[str, Any], classes: list[str], cat_ids: list[int]
) -> dict[str, str]:
    """What a detection weights file carries to be rebuilt and used without the run's files."""
    return {
        "task": "detection",
        "model_name": model_name,
        "detector_args": json.dumps(detector_args),
        "class_names": json.dumps(classes),
        "category_ids": json.dumps(cat_ids),
    }


def load_detection_checkpoint(path: str | Path, *, ema: bool = False) -> tuple[nn.Module, dict[str, Any], Path]:
    """``(model, metadata, checkpoint dir)`` of a checkpoint written by ``botnet detect train``."""
    ckpt_dir = ckpt.resolve_checkpoint(path)
    weights = ckpt_dir / (ckpt.EMA_FILE if ema else ckpt.MODEL_FILE)
    if ema and not weights.exists():
        raise ckpt.CheckpointError(f"{ckpt_dir} has no EMA weights (the run had ema_decay 0)")
    try:
        raw = read_metadata(weights)
    except ValueError as err:
        raise ckpt.CheckpointError(str(err)) from None
    if raw.get("task") != "detection":
        kind = "a classification checkpoint (use botnet eval)" if "botnet_config" in raw else "not a botnet checkpoint"
        raise ckpt.CheckpointError(f"{weights} is {kind}: it has no detection model metadata")
    try:
        meta = {
            "model": raw["model_name"],
            "detector_args": json.loads(raw["detector_args"]),
            "class_names": json.loads(raw["class_names"]),
            "category_ids": json.loads(raw["category_ids"]),
        }
        model = create_detection_model(meta["model"], **meta["detector_args"])
    except (KeyError, json.JSONDecodeError, TypeError, ValueError) as err:
        raise ckpt.CheckpointError(f"{weights} has detection metadata this version cannot use: {err}") from None
    load_weights(model, weights)
    return model.eval(), meta, ckpt_dir


def evaluate_detection_checkpoint(
    path: str | Path,
    data: str | None = None,
    *,
    split: str | None = None,
    ema: bool = False,
    batch_size: int = 2,
    workers: int | None = None,
    device: str = "auto",
    amp: str = "none",
    output: str | Path | None = None,
) -> dict[str, Any]:
    """COCO box / mask AP of a detection checkpoint on a COCO-format dataset (default: the run's own val split).

    Writes the result as JSON to ``output`` (default ``<run dir>/eval.json``) and returns it.
    """
    info = setup(device)
    try:
        model, meta, ckpt_dir = load_detection_checkpoint(path, ema=ema)
        output = result_path(output, ckpt_dir)  # refused now, not after the evaluation
        model.to(info.device)
        cfg_file = ckpt_dir / ckpt.CONFIG_FILE
        run_cfg = build_config(cfg_file, config_cls=DetectConfig) if cfg_file.exists() else None
        if data is None or data == BUILTIN:  # the run's own data, or the built-in dataset
            if run_cfg is None:
                raise ValueError(f"{ckpt_dir} has no config.yaml to find its data; pass --data DIR")
            cfg = run_cfg if data is None else run_cfg.replace(data=BUILTIN)
        else:
            cfg = (run_cfg or DetectConfig(model=meta["model"])).replace(data=str(data))
        cfg = cfg.replace(
            val_split=split or cfg.val_split,
            workers=workers if workers is not None else auto_workers(info.device, local_world_size()),
        )
        _, val = build_detection_datasets(cfg, info, train=False, holdout=split is None)
        if val.classes != meta["class_names"] or val.cat_ids != meta["category_ids"]:
            raise DataError(
                f"the checkpoint {ckpt_dir} detects {len(meta['class_names'])} categories "
                f"{list(zip(meta['category_ids'], meta['class_names'], strict=True))[:8]}, the annotation file "
                f"{val.ann_file} has {len(val.classes)}: {list(zip(val.cat_ids, val.classes, strict=True))[:8]} "
                "(id, name); evaluate on data with the same categories"
            )
        loader = eval_loader(val, batch_size, cfg.workers, info, collate_fn=collate_detection)
        m = evaluate_detection(model, loader, val, info, amp=amp, desc="eval")
        where = "the built-in dataset" if cfg.builtin_data else str(val.ann_file)
        if val.ann_file.name not in {f"instances_{s}.json" for s in (cfg.val_split, *VAL_FOLDERS)}:
            where += f" ({100 * cfg.val_fraction:.3g}% of its images held out, seed {cfg.seed})"
        result = {
            "checkpoint": str(ckpt_dir),
            "model": meta["model"],
            "weights": "ema" if ema else "model",
            "data": where,
            "integrity": ckpt.integrity_status(ckpt_dir),
            **{t: _nan_to_none(m[t]) for t in IOU_TYPES if t in m},
            **{k: m[k] for k in ("images", "bad_images", "detections", "seconds_per_image")},
        }
        if info.is_main:
            result["output"] = write_result(result, output, ckpt_dir)
        return result
    finally:
        cleanup()


def _nan_to_none(metrics: dict[str, float]) -> dict[str, float | None]:
    """JSON has no NaN: a metric without ground truth in its size range (COCOeval's -1) is written as null."""
    return {k: None if math.isnan(v) else v for k, v in metrics.items()}
