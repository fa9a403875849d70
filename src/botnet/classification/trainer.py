"""Classification training: the shared loop (:mod:`.loop`) with cross-entropy, batch mixing and top-1/top-5."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from ..data.tensor_augment import normalize_batch
from ..data.transforms import BatchMix
from ..engine.data import eval_loader
from ..engine.distributed import DistInfo, autocast
from ..engine.loop import Trainer
from ..engine.reporting import log
from ..models.factory import create_model
from ..models.weights import source_preprocessing
from . import finetune
from .config import TrainConfig
from .data import build_datasets
from .evaluate import evaluate
from .metrics import CONFUSION_FILE, plot_confusion
from .recipe import resolve
from .task import CLASSIFICATION

__all__ = ["ClassificationTrainer", "train"]

train = CLASSIFICATION.train  # train(cfg, resume=False, overwrite=False, model_fn=None): a run's final metrics


class ClassificationTrainer(Trainer):
    task = CLASSIFICATION

    def __init__(
        self, cfg: TrainConfig, info: DistInfo, *, resume: bool, overwrite: bool, model_fn: Callable | None = None
    ) -> None:
        self.model_fn = model_fn
        self.resuming = resume
        self.source = self.source_model = None
        super().__init__(cfg, info, resume=resume, overwrite=overwrite)

    def resolve(self, cfg: TrainConfig) -> TrainConfig:
        # A new run reads the source and loads it here, before anything is written to the output directory. A resumed
        # run takes its weights from its checkpoint, and its preprocessing from config.yaml (the source is read again
        # only for preprocessing options left at auto, as when the library is called with the original options).
        preprocessing_auto = any(
            getattr(cfg, k) is None for k in ("image_size", "crop_pct", "interpolation", "mean", "std")
        )
        if cfg.pretrained and (not self.resuming or preprocessing_auto):
            self.source = finetune.read_source(cfg, verbose=self.info.is_main)
        cfg, self.pre, self.auto_reasons = resolve(
            cfg, self.info, source_preprocessing(self.source) if self.source else None, announce=not self.resuming
        )
        if self.source is not None and not self.resuming:
            self.source_model, self.report = finetune.load_source(cfg, self.source)
        return cfg

    def build_data(self) -> tuple[Dataset, Dataset]:
        return build_datasets(self.cfg, self.pre, info=self.info)

    def build_model(self) -> nn.Module:
        cfg = self.cfg
        self.mix = BatchMix(
            len(self.classes), mixup_alpha=cfg.mixup_alpha, cutmix_alpha=cfg.cutmix_alpha, prob=cfg.mix_prob
        )
        if self.model_fn is not None:
            return self.model_fn(len(self.classes))
        if self.source_model is not None:
            model, self.source_model = self.source_model, None
            head = finetune.fit_head(model, self.report, self.source, self.classes)
            log(f"{self.report.summary()}\n  {head}", enabled=self.info.is_main)
        else:
            model = create_model(cfg.model, num_classes=len(self.classes), img_size=cfg.image_size, **cfg.model_args)
        finetune.apply_freeze(model, cfg, verbose=self.info.is_main)
        return model

    def param_groups(self) -> list[dict] | None:
        return finetune.optimizer_groups(self.model, self.cfg)

    def compute_loss(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        cfg, device = self.cfg, self.info.device
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        if images.dtype == torch.uint8:  # crops of the tensor augmentation, normalised here as one batch
            images = normalize_batch(images, self.pre.mean, self.pre.std)
        if self.mix.enabled:
            images, targets = self.mix(images, targets)
        if cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, cfg.amp):
            logits = self.net(images)
        return F.cross_entropy(logits.float(), targets, label_smoothing=cfg.label_smoothing)

    def validate(self) -> dict[str, Any]:
        cfg, info = self.cfg, self.info
        loader = eval_loader(self.val_ds, cfg.batch_size, cfg.workers, info)
        kw = dict(amp=cfg.amp, channels_last=cfg.channels_last, num_classes=len(self.classes))
        m = evaluate(self.model, loader, info, desc="val", log_interval=cfg.log_interval, **kw)
        row = {"val_loss": m["loss"], "val_top1": m["top1"], "val_top5": m["top5"], "val_bad_images": m["bad_images"]}
        row["val_balanced_acc"] = m["balanced_accuracy"]
        if info.is_main:  # the last validation's stays: the matrix at the end of training
            title = f"val top-1 {m['top1']:.2f}%, balanced {m['balanced_accuracy']:.2f}% ({m['images']} images)"
            plot_confusion(m["confusion"], self.classes, self.out / CONFUSION_FILE, title=title)
        if m["bad_images"]:
            log(f"warning: skipped {m['bad_images']} validation images that could not be read", enabled=info.is_main)
        if self.ema is not None:
            e = evaluate(self.ema.module, loader, info, desc="val (EMA)", log_interval=cfg.log_interval, **kw)
            row.update(ema_val_loss=e["loss"], ema_val_top1=e["top1"], ema_val_top5=e["top5"])
            row["ema_val_balanced_acc"] = e["balanced_accuracy"]
        return row

    def event_images(self) -> dict[str, Any]:
        """The confusion matrix of the last validation, as drawn into the run directory."""
        path = self.out / CONFUSION_FILE
        return {"confusion_matrix": np.asarray(Image.open(path).convert("RGB"))} if path.is_file() else {}

    def metadata(self) -> dict[str, str]:
        return {
            "model_name": self.cfg.model,
            "class_names": json.dumps(self.classes),
            "preprocess": json.dumps(self.pre.to_dict()),
        }

    def data_name(self) -> str:
        return "the built-in shapes dataset" if self.cfg.builtin_data else self.cfg.data

    def epoch_line(self, row: dict[str, Any]) -> str:
        text = f"epoch {row['epoch']}/{self.cfg.epochs}: train_loss {row['train_loss']:.4f}"
        if "val_top1" in row:
            text += f" val_loss {row['val_loss']:.4f} val_top1 {row['val_top1']:.2f} val_top5 {row['val_top5']:.2f}"
            text += f" val_balanced {row['val_balanced_acc']:.2f}"
        if "ema_val_top1" in row:
            text += f" ema_val_top1 {row['ema_val_top1']:.2f}"
        return text + f" lr {row['lr']:.4g} {row['epoch_time_s']:.1f}s {row['images_per_s']:.0f} img/s"

    def final_line(self, row: dict[str, Any]) -> str:
        if self.val_ds is None:
            return super().final_line(row)
        return (
            f"val top-1 {row['val_top1']:.2f}%  balanced {row['val_balanced_acc']:.2f}%  top-5 {row['val_top5']:.2f}%"
            f"  (best {self.c.best_score:.2f}% "
            f"at epoch {self.c.best_epoch})  run: {self.out}"
        )
