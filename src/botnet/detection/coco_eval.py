"""COCO box and mask AP with pycocotools, the metrics of the paper's COCO tables (AP, AP50, AP75, APs, APm, APl).

:func:`to_coco_results` turns torchvision detection outputs into COCO result entries, :func:`coco_evaluate` runs
pycocotools' ``COCOeval`` on them against the ground truth (:attr:`botnet.data.coco.CocoDetection.coco`), and
:func:`format_metrics_table` prints the six AP numbers per IoU type.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # COCOeval.stats[0:6]
COCO_MAX_DETECTIONS = 100  # the detections per image COCO's AP counts
IOU_TYPES = ("bbox", "segm")


def to_coco_results(
    outputs: Sequence[Mapping[str, torch.Tensor]],
    image_ids: Sequence[int],
    label_to_cat_id: Callable[[int], int],
    *,
    mask_threshold: float = 0.5,
) -> list[dict[str, Any]]:
    """COCO result entries from torchvision detection outputs.

    Args:
        outputs: one dict per image as torchvision's detection models return them in eval mode: ``boxes`` ``(N, 4)``
            XYXY in original-image pixels, ``labels`` ``(N,)``, ``scores`` ``(N,)`` and optionally ``masks``
            ``(N, 1, H, W)`` (or ``(N, H, W)``) probabilities.
        image_ids: the COCO image id of each output.
        label_to_cat_id: contiguous label -> COCO category id, e.g. ``CocoDetection.label_to_cat_id``.
        mask_threshold: a mask pixel belongs to the instance where its probability is above this.

    Returns:
        Dicts with ``image_id``, ``category_id``, ``bbox`` ``[x, y, width, height]`` and ``score`` as Python numbers,
        and, when the outputs have masks, ``segmentation`` as a compressed RLE whose ``counts`` is a ``str`` (JSON
        serialisable).
    """
    if len(outputs) != len(image_ids):
        raise ValueError(f"got {len(outputs)} outputs but {len(image_ids)} image ids; give one image id per output")
    results = []
    for output, image_id in zip(outputs, image_ids, strict=True):
        boxes = output["boxes"].detach().cpu().double().reshape(-1, 4)  # (N, 4) XYXY
        xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
        labels = output["labels"].detach().cpu().tolist()
        scores = output["scores"].detach().cpu().tolist()
        rles = _encode_masks(output["masks"], mask_threshold) if "masks" in output else None
        for k, (box, label, score) in enumerate(zip(xywh, labels, scores, strict=True)):
            result = {
                "image_id": int(image_id),
                "category_id": int(label_to_cat_id(int(label))),
                "bbox": box,
                "score": score,
            }
            if rles is not None:
                result["segmentation"] = rles[k]
            results.append(result)
    return results


def _encode_masks(masks: torch.Tensor, threshold: float) -> list[dict[str, Any]]:
    """Compressed RLEs (``counts`` as str) of ``(N, 1, H, W)`` or ``(N, H, W)`` mask probabilities."""
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]  # (N, H, W)
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape (N, 1, H, W) or (N, H, W), got {tuple(masks.shape)}")
    binary = (masks.detach().cpu().float() > threshold).numpy().astype(np.uint8)  # (N, H, W)
    if binary.shape[0] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0)))  # pycocotools wants (H, W, N) Fortran
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def coco_evaluate(
    coco_gt: COCO,
    results: Sequence[Mapping[str, Any]],
    iou_types: Iterable[str] = IOU_TYPES,
    *,
    image_ids: Iterable[int] | None = None,
    max_detections: int = COCO_MAX_DETECTIONS,
    verbose: bool = False,
) -> dict[str, dict[str, float]]:
    """COCO AP of result entries (see :func:`to_coco_results`) against a ground truth, per IoU type.

    Neither ``coco_gt`` nor ``results`` is modified (pycocotools would convert the ground-truth polygons to RLE in
    place and add keys to the results).

    Args:
        coco_gt: the ground truth, e.g. ``CocoDetection.coco``; its crowd annotations count as crowd regions.
        results: detections; with ``"segm"`` in ``iou_types`` every one needs a ``segmentation``.
        iou_types: ``"bbox"`` and / or ``"segm"``.
        image_ids: evaluate on these images only (their detections and ground truth); default every ground-truth
            image. An image without detections counts as one where everything was missed.
        max_detections: the detections per image that count, by score (COCO's 100). A model that keeps more for
            images with more objects than that is measured at its own number: at 100, an image of 190 objects could
            reach a recall of 53% at most.
        verbose: let pycocotools print its progress (and, at 100 detections, its summary).

    Returns:
        ``{iou_type: {name: value}}`` for the names of :data:`METRIC_NAMES`, values in 0..1. A metric whose area range
        has no ground-truth object (COCOeval's -1) is ``nan``. Empty ``results`` give 0.0 for every other metric.
    """
    iou_types = tuple(iou_types)
    for iou_type in iou_types:
        if iou_type not in IOU_TYPES:
            raise ValueError(f"unknown iou type {iou_type!r}; choose from {', '.join(IOU_TYPES)}")
    gt_ids = set(coco_gt.getImgIds())
    eval_ids = sorted(gt_ids) if image_ids is None else sorted({int(i) for i in image_ids})
    if not eval_ids:
        raise ValueError("no images to evaluate: the ground truth has no images or image_ids is empty")
    _check_ids("image_ids", eval_ids, gt_ids)
    _check_ids("results' image_id", sorted({r["image_id"] for r in results}), gt_ids)
    if "segm" in iou_types:
        if any("segmentation" not in r for r in results):
            raise ValueError("segm evaluation needs a 'segmentation' in every result; use iou_types=('bbox',)")
        if any("segmentation" not in ann for ann in coco_gt.anns.values()):
            raise ValueError("segm evaluation needs a 'segmentation' in every ground-truth annotation")

    printing = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    metrics = {}
    with printing:
        gt = _copy_coco(coco_gt)
        dt = gt.loadRes([dict(r) for r in results]) if results else _empty_results(gt)
        for iou_type in iou_types:
            evaluator = COCOeval(gt, dt, iouType=iou_type)
            evaluator.params.imgIds = eval_ids
            evaluator.params.maxDets = [1, 10, max(max_detections, COCO_MAX_DETECTIONS)]
            evaluator.evaluate()
            evaluator.accumulate()
            if verbose and max_detections <= COCO_MAX_DETECTIONS:
                evaluator.summarize()  # its own table; the numbers below are the same
            metrics[iou_type] = _average_precisions(evaluator)
    return metrics


def _average_precisions(evaluator: COCOeval) -> dict[str, float]:
    """:data:`METRIC_NAMES` from an accumulated COCOeval at its largest ``maxDets``, as ``COCOeval.summarize``
    computes its first six numbers (which it takes at 100 detections whatever ``maxDets`` says): the mean precision
    over the recall thresholds, classes and IoU thresholds (or one of them), in an area range; ``nan`` where no
    ground truth is in the range."""
    p, precision = evaluator.params, evaluator.eval["precision"]  # precision: [iou, recall, class, area, maxDets]
    last = len(p.maxDets) - 1

    def mean(iou: float | None = None, area: str = "all") -> float:
        values = precision[:, :, :, p.areaRngLbl.index(area), last]
        if iou is not None:
            values = values[np.isclose(p.iouThrs, iou)]
        values = values[values > -1]
        return float(values.mean()) if values.size else math.nan

    values = (mean(), mean(0.5), mean(0.75), mean(area="small"), mean(area="medium"), mean(area="large"))
    return dict(zip(METRIC_NAMES, values, strict=True))


def _check_ids(what: str, ids: Sequence[int], gt_ids: set[int]) -> None:
    unknown = [i for i in ids if i not in gt_ids]
    if unknown:
        listed = ", ".join(map(str, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
        raise ValueError(f"{len(unknown)} {what} are not images of the ground truth: {listed}")


def _copy_coco(coco: COCO) -> COCO:
    """A COCO with copies of the annotation dicts, which COCOeval may then modify."""
    copy = COCO()
    copy.dataset = {**coco.dataset, "annotations": [dict(ann) for ann in coco.dataset.get("annotations", [])]}
    copy.createIndex()
    return copy


def _empty_results(coco_gt: COCO) -> COCO:
    """A result set without detections (pycocotools' ``loadRes`` fails on an empty list)."""
    empty = COCO()
    empty.dataset = {"images": list(coco_gt.dataset["images"]), "categories": coco_gt.dataset["categories"]}
    empty.dataset["annotations"] = []
    empty.createIndex()
    return empty


def format_metrics_table(metrics: Mapping[str, Mapping[str, float]]) -> str:
    """An aligned text table: one row per IoU type, columns :data:`METRIC_NAMES`, values x100 with one decimal.

    A ``nan`` value (no ground truth in that area range) is printed as ``-``.
    """
    label_width = max([len("iou"), *(len(name) for name in metrics)])
    lines = [" ".join([f"{'iou':<{label_width}}", *(f"{name:>6}" for name in METRIC_NAMES)])]
    for iou_type, values in metrics.items():
        cells = ["-" if math.isnan(values[name]) else f"{100 * values[name]:.1f}" for name in METRIC_NAMES]
        lines.append(" ".join([f"{iou_type:<{label_width}}", *(f"{cell:>6}" for cell in cells)]))
    return "\n".join(lines)
