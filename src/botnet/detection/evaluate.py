"""COCO box / mask AP over processes, and the row of metrics it gives (checkpoints: :mod:`botnet.detection.checkpoints`;
the data of a run: :mod:`botnet.detection.data`).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.coco import CocoDetection
from ..engine.distributed import (
    DistInfo,
    autocast,
    broadcast_object,
)
from ..engine.reporting import Progress
from .coco_eval import COCO_MAX_DETECTIONS, IOU_TYPES, METRIC_NAMES, coco_evaluate, to_coco_results
from .models import has_masks

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
    """COCO box (and mask) AP of ``model`` on ``dataset``, every image counted once over all processes, at the
    detections per image the model keeps (COCO's 100, or more for dense images: see ``coco_evaluate``).

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
            kept = getattr(getattr(model, "roi_heads", None), "detections_per_img", COCO_MAX_DETECTIONS)
            metrics = coco_evaluate(dataset.coco, results, iou_types, image_ids=seen, max_detections=kept)
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
