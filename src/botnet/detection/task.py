"""Detection and instance segmentation as a task of the engine: its contract (:class:`botnet.engine.task.Task`) in
one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..engine.reporting import Curves
from ..engine.task import Task
from .config import DetectConfig


class DetectionTask(Task):
    """Mask R-CNN / Faster R-CNN with torchvision's losses; COCO box AP decides the best checkpoint."""

    options = DetectConfig
    command = "botnet detect train"
    weights_options = ("weights_backbone", "weights")
    weights_flag = "--weights"
    best_metric = "val_bbox_AP"
    curves = Curves(
        (("val_bbox_AP", "box AP"), ("val_bbox_AP50", "box AP50"), ("val_segm_AP", "mask AP"),
         ("val_segm_AP50", "mask AP50")),
        scale=100.0,  # AP is stored in 0..1
        ylabel="COCO AP (%)",
        title="validation AP",
    )  # fmt: skip
    eval_batch_size = 2

    # The implementations import torch: each is imported when first used.
    def trainer(self) -> type:
        from .trainer import DetectionTrainer

        return DetectionTrainer

    def collate(self) -> Any:
        from ..data.det_transforms import collate_detection

        return collate_detection

    def load_checkpoint(self, path: str | Path, *, ema: bool = False, model: str | None = None) -> tuple:
        from .checkpoints import load_detection_checkpoint

        net, meta, ckpt_dir = load_detection_checkpoint(path, ema=ema)
        if model is not None and model != meta["model"]:
            raise ValueError(f"{ckpt_dir} holds a {meta['model']} model, not {model}")
        return net, meta, ckpt_dir

    def evaluate(self, model, meta, ckpt_dir, run_options, data, info, **kwargs: Any) -> tuple[str, dict[str, Any]]:  # noqa: ANN001
        from .checkpoints import checkpoint_metrics

        return checkpoint_metrics(model, meta, ckpt_dir, run_options, data, info, **kwargs)


DETECTION = DetectionTask()
