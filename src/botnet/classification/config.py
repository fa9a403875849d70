"""The options of ``botnet train``: one dataclass, each field a YAML key and a flag (see :mod:`botnet.engine.config`).

Importing this module does not import torch: ``botnet train --help`` and option errors answer at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.config import BUILTIN, TRAINING_BOUNDS, ConfigBase, option


@dataclass
class TrainConfig(ConfigBase):
    """All options of ``botnet train``; see each field's help (``botnet train --help``)."""

    # model
    model: str = option("botnet_tiny", "registered model name (botnet list)")
    model_args: dict = option({}, "BoTNetConfig overrides, e.g. {drop_rate: 0.1} (YAML only)", yaml_only=True)
    img_size: int | None = option(
        None,
        "training and evaluation input size (auto: the weights' with --pretrained, else the data's median side rounded "
        "up to the network's stride, between 2 strides and the model's size)",
    )
    pretrained: str | None = option(
        None,
        "start from these weights: a file, a botnet train run or checkpoint dir, timm:NAME.TAG or torchvision:WEIGHTS "
        "(none: random); the head is new for the data's classes",
    )
    pretrained_strict: bool = option(
        True, "missing or unexpected keys of --pretrained (other than the head) are errors"
    )
    freeze_stages: int | None = option(
        None, "with --pretrained: freeze the stem and the first N stages, 0..4 (none: nothing frozen)"
    )
    backbone_lr_scale: float | None = option(
        None, "the backbone's learning rate relative to the head's, in (0, 1] (auto: 1)"
    )
    # data
    data: str = option(BUILTIN, "ImageFolder root with train/<class>/* and val/<class>/* (val optional), or 'shapes'")
    val_fraction: float = option(0.2, "with no val/ folder: the share of each class held out to validate, by --seed")
    shapes_train: int = option(20000, "images in the built-in dataset's train split")
    shapes_val: int = option(1000, "images in the built-in dataset's val split")
    workers: int | None = option(
        None, "data-loading processes per training process (0: in the main process; auto: 0 on a CPU of <= 4 cores)"
    )
    max_bad_fraction: float = option(0.01, "stop when more than this fraction of images cannot be read")
    max_image_pixels: int = option(89_478_485, "refuse images whose declared width*height exceeds this")
    # augmentation
    scale: tuple[float, float] | None = option(
        None, "RandomResizedCrop area range (auto: 0.8 1; 0.08 1 from 100,000 images; 0.5 1 with --pretrained)"
    )
    ratio: tuple[float, float] | None = option(
        None, "RandomResizedCrop aspect-ratio range (auto: 1 1 for square images, else 0.75 1.333)"
    )
    hflip: float | None = option(
        None,
        "horizontal flip probability (auto: 0.5 when the classes look alike mirrored, measured on the data, else 0)",
    )
    randaugment: str | None = option(None, "RandAugment policy such as rand-m9-n2 (none: off)")
    mixup_alpha: float = option(0.0, "mixup Beta alpha (0: off)")
    cutmix_alpha: float = option(0.0, "cutmix Beta alpha (0: off)")
    mix_prob: float = option(1.0, "probability of applying mixup/cutmix to a batch")
    crop_pct: float | None = option(
        None,
        "eval center-crop fraction (auto: the weights' with --pretrained, else 1 for images no larger than img_size, "
        "0.875 for larger ones)",
    )
    interpolation: str | None = option(
        None,
        "resize interpolation (auto: the weights' with --pretrained, else bilinear)",
        ("bilinear", "bicubic", "nearest"),
    )
    mean: tuple[float, float, float] | None = option(
        None, "normalisation mean per channel (auto: the weights' with --pretrained, else ImageNet's)"
    )
    std: tuple[float, float, float] | None = option(
        None, "normalisation std per channel (auto: the weights' with --pretrained, else ImageNet's)"
    )
    # optimisation
    epochs: int | None = option(
        None, "training epochs (auto: 850 x sqrt(training images) images seen, in whole epochs; 10 with --pretrained)"
    )
    time: float | None = option(
        None,
        "upper bound on the run's wall time in minutes: an auto --epochs is shortened to fit, from a timed step "
        "(none: no bound; a given --epochs stands)",
    )
    batch_size: int | None = option(
        None,
        "images per optimizer step and process, before accumulation (auto: 64, halved until an epoch has 10 steps)",
    )
    accumulate: int = option(1, "batches accumulated per optimizer step")
    optimizer: str = option("sgd", "optimizer", ("sgd", "adamw"))
    lr: float | None = option(
        None,
        "peak learning rate (auto: sgd 0.2 x batch/64, adamw 1e-3 x batch/512; sgd 0.16 x batch/256 with --pretrained; "
        "batch is the global batch)",
    )
    momentum: float = option(0.9, "SGD momentum")
    nesterov: bool = option(True, "SGD Nesterov momentum")
    betas: tuple[float, float] = option((0.9, 0.999), "AdamW betas")
    weight_decay: float = option(5e-5, "weight decay (never applied to norm weights and biases)")
    warmup_epochs: float | None = option(
        None, "linear warm-up length in epochs (auto: 1, at most 20%% of the schedule; 0 with --pretrained)"
    )
    warmup_start: float = option(0.01, "warm-up starts at this fraction of the peak learning rate")
    min_lr: float = option(0.0, "learning rate at the end of the cosine schedule")
    label_smoothing: float = option(0.1, "label smoothing of the cross-entropy loss")
    clip_grad: float | None = option(None, "clip the gradient norm to this value (none: off)")
    ema_decay: float = option(0.0, "keep an exponential moving average of the weights with this decay (0: off)")
    # execution
    device: str = option("auto", "auto picks cuda when available", ("auto", "cpu", "cuda"))
    amp: str = option(
        "none", "mixed precision: bf16 (CPU or GPU) or fp16 (GPU, with a grad scaler)", ("none", "bf16", "fp16")
    )
    channels_last: bool = option(False, "channels_last memory format for the model and inputs")
    compile: bool = option(False, "torch.compile the model")
    sync_bn: bool = option(False, "SyncBatchNorm across processes (GPU only)")
    seed: int = option(0, "seed of weights, data order, augmentation and mixing")
    # output
    output: str | None = option(None, "output directory (auto: a new runs/<model>-<date>-<time>)")
    log_interval: int = option(50, "steps between log lines when not on a terminal (and TensorBoard's step scalars)")
    tensorboard: bool = option(True, "write TensorBoard event files in RUN/tensorboard (tensorboard --logdir runs)")
    checkpoint_steps: int = option(0, "also checkpoint every this many optimizer steps within an epoch (0: epoch ends)")
    eval_interval: int = option(1, "validate every this many epochs (and always after the last)")

    # The bounds of every numeric option (botnet.engine.validate.check_option; integer and optional come from the
    # annotations), checked first by validate(): a bad value is refused with its flag before any work.
    BOUNDS = {
        **TRAINING_BOUNDS,
        "freeze_stages": dict(minimum=0, maximum=4),
        "backbone_lr_scale": dict(minimum=0, min_inclusive=False, maximum=1),
        "mean": dict(minimum=0, maximum=1),
        "std": dict(minimum=0, min_inclusive=False, maximum=1),
        "img_size": dict(side=True, minimum=8),  # and at most the side of one 4 GiB float32 image
        "scale": dict(minimum=0, min_inclusive=False, maximum=1),
        "ratio": dict(minimum=0, min_inclusive=False),
        "mixup_alpha": dict(minimum=0),
        "cutmix_alpha": dict(minimum=0),
        "mix_prob": dict(minimum=0, maximum=1),
        "crop_pct": dict(minimum=0, min_inclusive=False, maximum=1),
        "label_smoothing": dict(minimum=0, maximum=1),
    }

    # ----------------------------------------------------------------------------------------------------------
    def validate(self) -> TrainConfig:
        """Check types and ranges; raise ValueError naming the option and what is allowed."""

        def fail(name: str, msg: str) -> None:
            raise ValueError(f"invalid option {name}: {msg}")

        self.check_choices()
        self.check_bounds()
        if self.freeze_stages is not None and not self.pretrained:
            fail("freeze_stages", "freezes pretrained weights: give --pretrained SOURCE too")
        if self.backbone_lr_scale not in (None, 1.0) and not self.pretrained:  # one rule for the fine-tuning options
            fail("backbone_lr_scale", "slows pretrained weights down: give --pretrained SOURCE too")
        if not isinstance(self.model_args, dict):
            fail("model_args", f"must be a mapping of BoTNetConfig fields, got {self.model_args!r}")
        return self
