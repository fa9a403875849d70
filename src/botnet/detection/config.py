"""Options of ``botnet detect train``: the shared training options and the detector's own, YAML file then flags."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.config import BUILTIN, option, retune
from ..engine.options import TrainingOptions

_T = TrainingOptions


@dataclass
class DetectConfig(TrainingOptions):
    """All options of ``botnet detect train``; see each field's help (``botnet detect train --help``)."""

    # model
    model: str | None = retune(
        _T,
        "model",
        None,
        "detection model (botnet detect list) (auto: the small BoTNet detector, maskrcnn_botnet_tiny_fpn when every "
        "training object has a segmentation, else fasterrcnn_botnet_tiny_fpn for boxes only)",
    )
    model_args: dict = retune(
        _T, "model_args", {}, "builder arguments, e.g. {fpn_channels: 128, backbone_args: {attn_backend: chunked}}"
    )
    image_size: int | None = retune(
        _T,
        "image_size",
        None,
        "training crop and evaluation size (longer side) (auto: where the small objects, the 10th percentile, are 32 "
        "px, between 128 and the images' median longer side, rounded up to 32; capped by memory)",
        bounds=dict(side=True, minimum=32),
    )
    weights_backbone: str | None = option(
        None,
        "classification weights for the backbone: a file, a botnet train run or checkpoint dir, timm:NAME.TAG or "
        "torchvision:WEIGHTS (the matching network: timm's for the *_botnet26t_256_fpn models, ResNet-50 for *50_fpn)",
        group="model",
    )
    weights: str | None = option(
        None,
        "start the whole detector from a botnet detect train run (RUN means its best/, or a checkpoint dir); its class "
        "layers are kept when the classes match, and --model defaults to its backbone",
        group="model",
    )
    trainable_backbone_layers: int | None = option(
        None,
        "backbone stages trained, counted from c5, 0..5 (auto: 3 with --weights-backbone, else 5)",
        bounds=dict(minimum=0, maximum=5),
        group="model",
    )
    fixed_size: bool = option(True, "pad every batch to image_size x image_size, the paper's setting", group="model")
    # data
    data: str = retune(
        _T, "data", BUILTIN, "COCO-format root (DIR/annotations/instances_<split>.json, DIR/<split>/) or 'shapes'"
    )
    train_split: str = option(
        "train", "split name of the training images and annotations (COCO 2017: train2017)", group="data"
    )
    val_split: str = option(
        "val", "split name of the validation images and annotations (COCO 2017: val2017)", group="data"
    )
    val_fraction: float = retune(
        _T, "val_fraction", 0.2, "with no val split: the share of train images held out to validate, by --seed"
    )
    shapes_train: int = retune(_T, "shapes_train", 3000)
    shapes_val: int = retune(_T, "shapes_val", 300)
    # augmentation
    scale_range: tuple[float, float] = option(
        (0.8, 1.25),
        "multi-scale jitter range of the longer side (up to 0.1 2)",
        bounds=dict(minimum=0, min_inclusive=False, maximum=4),  # the paper: 0.8 1.25 up to 0.1 2
        group="augmentation",
    )
    anchor_sizes: tuple[int, int, int, int, int] | None = option(
        None,
        "RPN anchor size per FPN level, 5 values (auto: from the data's small objects, doubling per level; none: the "
        "model's)",
        bounds=dict(minimum=1),
        group="augmentation",
    )
    max_detections: int | None = option(
        None,
        "detections kept per image (auto: 100, or 1.5 x the most objects of a training image, in hundreds)",
        bounds=dict(minimum=1),
        group="augmentation",
    )
    hflip: float = option(0.5, "horizontal flip probability", bounds=dict(minimum=0, maximum=1), group="augmentation")
    vflip: float | None = option(
        None,
        "vertical flip probability (auto: 0.5 when the data looks alike turned, as overhead imagery does, and "
        "--hflip is 0; else 0: turns and horizontal flips give every flip already)",
        bounds=dict(minimum=0, maximum=1),
        group="augmentation",
    )
    rot90: bool | None = option(
        None,
        "turn images by random multiples of 90 degrees (auto: when the data looks alike turned)",
        group="augmentation",
    )
    # optimisation
    epochs: int | None = retune(
        _T, "epochs", None, "training epochs (auto: 219 x sqrt(training images) images seen, in whole epochs)"
    )
    batch_size: int | None = retune(
        _T, "batch_size", None, "images per optimizer step and process (auto: 8, halved until an epoch has 10 steps)"
    )
    lr: float | None = retune(
        _T,
        "lr",
        None,
        "peak learning rate (auto: sgd 0.08 per 8 images from random weights, 0.02 per 16 with --weights-backbone; "
        "adamw 1e-4 per 16)",
    )
    nesterov: bool = retune(_T, "nesterov", False)
    weight_decay: float = retune(_T, "weight_decay", 1e-4)
    warmup_epochs: float | None = retune(
        _T,
        "warmup_epochs",
        None,
        "linear warm-up length in epochs (auto: 0.5 and at least 100 steps, at most 20%% of the schedule)",
    )
    warmup_start: float = retune(_T, "warmup_start", 0.001)
    clip_grad: float | None = retune(
        _T,
        "clip_grad",
        10.0,
        "clip the gradient norm to this value (none: off); 10 cuts only spikes: healthy steps of a detector trained "
        "from scratch measure 1-5",
    )
    # execution
    channels_last: bool = retune(_T, "channels_last", False, "channels_last memory format for the model")
    compile: bool = retune(_T, "compile", False, "torch.compile the backbone")
    # output
    log_interval: int = retune(_T, "log_interval", 20)

    def validate(self) -> DetectConfig:
        """Check types and ranges; raise ValueError naming the option and what is allowed."""
        super().validate()
        if self.weights and self.weights_backbone:
            raise ValueError(
                "invalid option weights: sets the whole detector, backbone included: drop --weights-backbone"
            )
        return self
