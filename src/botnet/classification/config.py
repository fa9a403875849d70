"""The options of ``botnet train``: the shared training options and the classifier's own, each a YAML key and a flag.

Importing this module does not import torch: ``botnet train --help`` and option errors answer at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.config import BUILTIN, option, retune
from ..engine.options import TrainingOptions

_T = TrainingOptions


@dataclass
class TrainConfig(TrainingOptions):
    """All options of ``botnet train``; see each field's help (``botnet train --help``)."""

    # model
    model: str = retune(_T, "model", "botnet_tiny")
    model_args: dict = retune(_T, "model_args", {}, "BoTNetConfig overrides, e.g. {drop_rate: 0.1} (YAML only)")
    image_size: int | None = retune(
        _T,
        "image_size",
        None,
        "training and evaluation input size (auto: the weights' with --pretrained, else the data's median side rounded "
        "up to the network's stride, between 2 strides and the model's size)",
    )
    pretrained: str | None = option(
        None,
        "start from these weights: a file, a botnet train run or checkpoint dir, timm:NAME.TAG or torchvision:WEIGHTS "
        "(none: random); the head is new for the data's classes",
        group="model",
    )
    pretrained_strict: bool = option(
        True, "missing or unexpected keys of --pretrained (other than the head) are errors", group="model"
    )
    freeze_stages: int | None = option(
        None,
        "with --pretrained: freeze the stem and the first N stages, 0..4 (none: nothing frozen)",
        bounds=dict(minimum=0, maximum=4),
        group="model",
    )
    backbone_lr_scale: float | None = option(
        None,
        "the backbone's learning rate relative to the head's, in (0, 1] (auto: 1)",
        bounds=dict(minimum=0, min_inclusive=False, maximum=1),
        group="model",
    )
    # data
    data: str = retune(
        _T, "data", BUILTIN, "ImageFolder root with train/<class>/* and val/<class>/* (val optional), or 'shapes'"
    )
    val_fraction: float = retune(
        _T, "val_fraction", 0.2, "with no val/ folder: the share of each class held out to validate, by --seed"
    )
    # augmentation
    scale: tuple[float, float] | None = option(
        None,
        "RandomResizedCrop area range (auto: 0.8 1; 0.08 1 from 100,000 images; 0.5 1 with --pretrained)",
        bounds=dict(minimum=0, min_inclusive=False, maximum=1),
        group="augmentation",
    )
    ratio: tuple[float, float] | None = option(
        None,
        "RandomResizedCrop aspect-ratio range (auto: 1 1 for square images, else 0.75 1.333)",
        bounds=dict(minimum=0, min_inclusive=False),
        group="augmentation",
    )
    hflip: float | None = option(
        None,
        "horizontal flip probability (auto: 0.5 when the classes look alike mirrored, measured on the data, else 0)",
        bounds=dict(minimum=0, maximum=1),
        group="augmentation",
    )
    randaugment: str | None = option(None, "RandAugment policy such as rand-m9-n2 (none: off)", group="augmentation")
    mixup_alpha: float = option(0.0, "mixup Beta alpha (0: off)", bounds=dict(minimum=0), group="augmentation")
    cutmix_alpha: float = option(0.0, "cutmix Beta alpha (0: off)", bounds=dict(minimum=0), group="augmentation")
    mix_prob: float = option(
        1.0, "probability of applying mixup/cutmix to a batch", bounds=dict(minimum=0, maximum=1), group="augmentation"
    )
    crop_pct: float | None = option(
        None,
        "eval center-crop fraction (auto: the weights' with --pretrained, else 1 for images no larger than "
        "image_size, 0.875 for larger ones)",
        bounds=dict(minimum=0, min_inclusive=False, maximum=1),
        group="augmentation",
    )
    interpolation: str | None = option(
        None,
        "resize interpolation (auto: the weights' with --pretrained, else bilinear)",
        ("bilinear", "bicubic", "nearest"),
        group="augmentation",
    )
    mean: tuple[float, float, float] | None = option(
        None,
        "normalisation mean per channel (auto: the weights' with --pretrained, else ImageNet's)",
        bounds=dict(minimum=0, maximum=1),
        group="augmentation",
    )
    std: tuple[float, float, float] | None = option(
        None,
        "normalisation std per channel (auto: the weights' with --pretrained, else ImageNet's)",
        bounds=dict(minimum=0, min_inclusive=False, maximum=1),
        group="augmentation",
    )
    # optimisation
    epochs: int | None = retune(
        _T,
        "epochs",
        None,
        "training epochs (auto: 850 x sqrt(training images) images seen, in whole epochs; 10 with --pretrained)",
    )
    batch_size: int | None = retune(
        _T,
        "batch_size",
        None,
        "images per optimizer step and process, before accumulation (auto: 64, halved until an epoch has 10 steps)",
    )
    lr: float | None = retune(
        _T,
        "lr",
        None,
        "peak learning rate (auto: sgd 0.2 x batch/64, adamw 1e-3 x batch/512; sgd 0.16 x batch/256 with --pretrained; "
        "batch is the global batch)",
    )
    warmup_epochs: float | None = retune(
        _T,
        "warmup_epochs",
        None,
        "linear warm-up length in epochs (auto: 1, at most 20%% of the schedule; 0 with --pretrained)",
    )
    label_smoothing: float = option(
        0.1, "label smoothing of the cross-entropy loss", bounds=dict(minimum=0, maximum=1), group="optimisation"
    )

    def validate(self) -> TrainConfig:
        """Check types and ranges; raise ValueError naming the option and what is allowed."""
        super().validate()
        if self.freeze_stages is not None and not self.pretrained:
            raise ValueError("invalid option freeze_stages: freezes pretrained weights: give --pretrained SOURCE too")
        if self.backbone_lr_scale not in (None, 1.0) and not self.pretrained:  # one rule for the fine-tuning options
            raise ValueError(
                "invalid option backbone_lr_scale: slows pretrained weights down: give --pretrained SOURCE too"
            )
        return self
