"""A detection checkpoint: the metadata it stores, loading it to predict or export, and its COCO AP on a dataset (the
run's own validation split by default). The evaluation loop itself is :mod:`botnet.detection.evaluate`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from torch import nn

from ..data.det_transforms import collate_detection
from ..data.folder import DataError
from ..data.split import VAL_FOLDERS
from ..engine import checkpoint as ckpt
from ..engine.config import BUILTIN
from ..engine.data import eval_loader
from ..engine.distributed import DistInfo
from ..models.weights import load_weights, read_metadata
from .coco_eval import IOU_TYPES
from .config import DetectConfig
from .data import build_detection_datasets
from .evaluate import evaluate_detection
from .models import create_detection_model


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


def checkpoint_metrics(
    model: nn.Module,
    meta: dict[str, Any],
    ckpt_dir: Path,
    run_cfg: DetectConfig | None,
    data: str | None,
    info: DistInfo,
    *,
    batch_size: int,
    workers: int,
    amp: str,
    split: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """``(where, metrics)``: COCO box / mask AP of a loaded detection checkpoint on a COCO-format dataset (``data``
    None: the run's own validation split; ``split``: another split of it)."""
    if data is None or data == BUILTIN:  # the run's own data, or the built-in dataset
        if run_cfg is None:
            raise ValueError(f"{ckpt_dir} has no config.yaml to find its data; pass --data DIR")
        cfg = run_cfg if data is None else run_cfg.replace(data=BUILTIN)
    else:
        cfg = (run_cfg or DetectConfig(model=meta["model"])).replace(data=str(data))
    cfg = cfg.replace(val_split=split or cfg.val_split, workers=workers)
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
    return where, {
        **{t: _nan_to_none(m[t]) for t in IOU_TYPES if t in m},
        **{k: m[k] for k in ("images", "bad_images", "detections", "seconds_per_image")},
    }


def _nan_to_none(metrics: dict[str, float]) -> dict[str, float | None]:
    """JSON has no NaN: a metric without ground truth in its size range (COCOeval's -1) is written as null."""
    return {k: None if math.isnan(v) else v for k, v in metrics.items()}
