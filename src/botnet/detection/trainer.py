"""Detection / instance-segmentation training: the shared loop (:mod:`.loop`) with torchvision's R-CNN losses and
COCO box / mask AP as the validation metric."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.det_transforms import collate_detection
from ..data.folder import BadSample
from ..engine.data import eval_loader
from ..engine.distributed import autocast
from ..engine.loop import Trainer
from ..engine.reporting import log
from .backbone import check_backbone_weights
from .checkpoints import detection_metadata
from .config import DetectConfig
from .data import build_detection_datasets
from .evaluate import evaluate_detection, flat_metrics
from .models import DEFAULT_BACKBONE, backbone_name, create_detection_model
from .predict import draw_detections
from .recipe import anchors, resolve_detect, size_for_time
from .start_weights import detector_source, load_detector_weights
from .task import DETECTION

TARGET_KEYS = ("boxes", "labels", "masks")  # what torchvision's detection models read from a target
EVENT_IMAGES = 3  # validation images drawn with their detections in the event files, at every validation
EVENT_SCORE = 0.3  # the lowest score drawn there (early in training few detections reach 0.5)


detect_train = DETECTION.train  # detect_train(cfg, resume=False, overwrite=False): a run's final metrics


class DetectionTrainer(Trainer):
    task = DETECTION

    def __init__(self, cfg: DetectConfig, info: Any, *, resume: bool, overwrite: bool) -> None:
        self.resuming = resume
        super().__init__(cfg, info, resume=resume, overwrite=overwrite)

    def run_name(self, cfg: DetectConfig) -> str:
        return cfg.model or f"{DEFAULT_BACKBONE}_fpn"  # the head is chosen from the data later

    def resolve(self, cfg: DetectConfig) -> DetectConfig:
        backbone = DEFAULT_BACKBONE
        if cfg.weights and not self.resuming:  # an auto --model keeps the source's backbone (the head follows the data)
            backbone = backbone_name(detector_source(cfg.weights)[1]["model"])
        cfg, self.auto_reasons, self.facts = resolve_detect(cfg, self.info, resuming=self.resuming, backbone=backbone)
        self.backbone_weights = None
        if cfg.weights_backbone:  # unreadable or ill-fitting weights: refused before any data is built
            log(f"reading the backbone weights {cfg.weights_backbone}", enabled=self.info.is_main)
            body_args = {"img_size": cfg.image_size, **cfg.model_args.get("backbone_args", {})}
            self.backbone_weights, report = check_backbone_weights(
                backbone_name(cfg.model), cfg.weights_backbone, **body_args
            )
            log(report.summary(), enabled=self.info.is_main)
        return cfg

    def resize_for_time(self, steps: int) -> bool:
        """An auto size trades detail for steps when few fit ``--time`` (:func:`~.recipe.size_for_time`); the
        anchors follow it. Not with starting weights, which were fitted to the recipe's size."""
        cfg, reasons = self.cfg, self.auto_reasons
        if "image_size" not in reasons or self.facts is None or cfg.weights_backbone or cfg.weights:
            return False
        smaller = size_for_time(cfg.image_size, steps, self.facts.small_object)
        if smaller is None:
            return False
        size, why = smaller
        changes, reasons = {"image_size": size}, {**reasons, "image_size": f"{why}; the rule: {reasons['image_size']}"}
        if "anchor_sizes" in reasons:
            changes["anchor_sizes"], reasons["anchor_sizes"] = anchors(self.facts.small_object, size)
        log(f"--time {cfg.time:g} min: image size {size} instead of {cfg.image_size}", enabled=self.info.is_main)
        self.cfg, self.auto_reasons = cfg.replace(**changes), reasons
        return True

    def build_data(self) -> tuple[Dataset, Dataset]:
        return build_detection_datasets(self.cfg, self.info)

    def detector_args(self) -> dict[str, Any]:
        """The builder arguments that rebuild this run's model (stored in every checkpoint)."""
        cfg = self.cfg
        args = {"num_classes": len(self.classes) + 1, "image_size": cfg.image_size, "fixed_size": cfg.fixed_size}
        if cfg.trainable_backbone_layers is not None:
            args["trainable_backbone_layers"] = cfg.trainable_backbone_layers
        if cfg.anchor_sizes is not None:
            args["anchor_sizes"] = tuple(cfg.anchor_sizes)
        if cfg.max_detections is not None:
            args["max_detections"] = cfg.max_detections
        return {**args, **cfg.model_args}

    def build_model(self) -> nn.Module:
        args = self.detector_args()
        if self.cfg.weights_backbone:
            args["weights_backbone"] = self.backbone_weights
        model = create_detection_model(self.cfg.model, **args)
        if self.cfg.weights and not self.resuming:  # a resume loads its own checkpoint instead
            log(load_detector_weights(model, self.cfg.weights, self.classes).summary(), enabled=self.info.is_main)
        return model

    def compute_loss(self, images: list[torch.Tensor], targets: list[dict[str, Any]]) -> torch.Tensor:
        device = self.info.device
        images = [img.to(device, non_blocking=True) for img in images]
        targets = [{k: t[k].to(device, non_blocking=True) for k in TARGET_KEYS if k in t} for t in targets]
        with autocast(device, self.cfg.amp):
            losses = self.net(images, targets)
        return sum(v.float() for v in losses.values())

    def validate(self) -> dict[str, Any]:
        cfg, info = self.cfg, self.info
        loader = eval_loader(self.val_ds, cfg.batch_size, cfg.workers, info, collate_fn=collate_detection)
        kw = dict(amp=cfg.amp, log_interval=cfg.log_interval)
        m = evaluate_detection(self.model, loader, self.val_ds, info, desc="val", **kw)
        row = {**flat_metrics(m), "val_images": m["images"], "val_detections": m["detections"]}
        row["val_bad_images"] = m["bad_images"]
        row["val_seconds_per_image"] = m["seconds_per_image"]
        if m["bad_images"]:
            log(f"warning: skipped {m['bad_images']} validation images that could not be read", enabled=info.is_main)
        if self.ema is not None:
            e = evaluate_detection(self.ema.module, loader, self.val_ds, info, desc="val (EMA)", **kw)
            row.update(flat_metrics(e, prefix="ema_val_"))
        return row

    @torch.no_grad()
    def event_images(self) -> dict[str, Any]:
        """The first validation images with the model's detections (score >= :data:`EVENT_SCORE`) drawn."""
        self.model.eval()  # training mode again at the next epoch's start
        images = {}
        for i in range(min(EVENT_IMAGES, len(self.val_ds))):
            item = self.val_ds[i]
            if isinstance(item, BadSample):
                continue
            (pred,) = self.model([item[0].to(self.info.device)])
            keep = pred["scores"] >= EVENT_SCORE
            pred = {k: (v.float() if v.is_floating_point() else v)[keep].cpu() for k, v in pred.items()}
            picture = (item[0] * 255).round().to(torch.uint8)
            images[f"val_detections/{i}"] = draw_detections(picture, pred, self.classes).permute(1, 2, 0).numpy()
        return images

    def metadata(self) -> dict[str, str]:
        categories = (self.val_ds or self.train_ds).cat_ids  # the same ids: both splits are checked to agree
        return detection_metadata(self.cfg.model, self.detector_args(), self.classes, categories)

    def data_name(self) -> str:
        return "the built-in COCO-format shapes dataset" if self.cfg.builtin_data else self.cfg.data

    def epoch_line(self, row: dict[str, Any]) -> str:
        text = f"epoch {row['epoch']}/{self.cfg.epochs}: train_loss {row['train_loss']:.4f}"
        for key in ("val_bbox_AP", "val_bbox_AP50", "val_segm_AP", "val_segm_AP50"):
            if key in row:
                text += f" {key[4:]} {_pct(row[key])}"
        return text + f" lr {row['lr']:.4g} {row['epoch_time_s']:.1f}s {row['images_per_s']:.1f} img/s"

    def final_line(self, row: dict[str, Any]) -> str:
        from .coco_eval import format_metrics_table

        if self.val_ds is None:
            return super().final_line(row)
        metrics = {}
        for iou_type in ("bbox", "segm"):
            prefix = f"val_{iou_type}_"
            found = {k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix)}
            if found:
                metrics[iou_type] = found
        table = format_metrics_table(metrics)
        return (
            f"{table}\nbox AP {_pct(row.get('val_bbox_AP'))}  AP50 {_pct(row.get('val_bbox_AP50'))}"
            + (f"  mask AP {_pct(row['val_segm_AP'])}" if "val_segm_AP" in row else "")
            + f"  (best box AP {_pct(self.c.best_score)} at epoch {self.c.best_epoch})  run: {self.out}"
        )


def _pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}"
