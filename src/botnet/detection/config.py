"""Options of ``botnet detect train``: one dataclass, YAML file then flags, "auto" values resolved per run."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.config import BUILTIN, TRAINING_BOUNDS, ConfigBase, option


@dataclass
class DetectConfig(ConfigBase):
    """All options of ``botnet detect train``; see each field's help (``botnet detect train --help``)."""

    # model
    model: str | None = option(
        None,
        "detection model (botnet detect list) (auto: the small BoTNet detector, maskrcnn_botnet_tiny_fpn when every "
        "training object has a segmentation, else fasterrcnn_botnet_tiny_fpn for boxes only)",
    )
    model_args: dict = option(
        {},
        "builder arguments, e.g. {fpn_channels: 128, backbone_args: {attn_backend: chunked}}",
        yaml_only=True,
    )
    weights_backbone: str | None = option(
        None,
        "classification weights for the backbone: a file, a botnet train run or checkpoint dir, timm:NAME.TAG or "
        "torchvision:WEIGHTS (the matching network: timm's for the *_botnet26t_256_fpn models, ResNet-50 for *50_fpn)",
    )
    weights: str | None = option(
        None,
        "start the whole detector from a botnet detect train run (RUN means its best/, or a checkpoint dir); its class "
        "layers are kept when the classes match, and --model defaults to its backbone",
    )
    trainable_backbone_layers: int | None = option(
        None, "backbone stages trained, counted from c5, 0..5 (auto: 3 with --weights-backbone, else 5)"
    )
    image_size: int | None = option(
        None,
        "training crop and evaluation size (longer side) (auto: where the small objects, the 10th percentile, are 32 "
        "px, between 128 and the images' median longer side, rounded up to 32; capped by memory)",
    )
    fixed_size: bool = option(True, "pad every batch to image_size x image_size, the paper's setting")
    # data
    data: str = option(BUILTIN, "COCO-format root (DIR/annotations/instances_<split>.json, DIR/<split>/) or 'shapes'")
    train_split: str = option("train", "split name of the training images and annotations (COCO 2017: train2017)")
    val_split: str = option("val", "split name of the validation images and annotations (COCO 2017: val2017)")
    val_fraction: float = option(0.2, "with no val split: the share of train images held out to validate, by --seed")
    shapes_train: int = option(3000, "images in the built-in dataset's train split")
    shapes_val: int = option(300, "images in the built-in dataset's val split")
    workers: int | None = option(None, "data-loading processes per training process (auto: 0 on <= 4 CPU cores)")
    max_bad_fraction: float = option(0.01, "stop when more than this fraction of images cannot be read")
    max_image_pixels: int = option(89_478_485, "refuse images whose declared width*height exceeds this")
    # augmentation
    scale_range: tuple[float, float] = option((0.8, 1.25), "multi-scale jitter range of the longer side (up to 0.1 2)")
    anchor_sizes: tuple[int, int, int, int, int] | None = option(
        None,
        "RPN anchor size per FPN level, 5 values (auto: from the data's small objects, doubling per level; none: the "
        "model's)",
    )
    max_detections: int | None = option(
        None, "detections kept per image (auto: 100, or 1.5 x the most objects of a training image, in hundreds)"
    )
    hflip: float = option(0.5, "horizontal flip probability")
    vflip: float | None = option(
        None,
        "vertical flip probability (auto: 0.5 when the data looks alike turned, as overhead imagery does, and "
        "--hflip is 0; else 0: turns and horizontal flips give every flip already)",
    )
    rot90: bool | None = option(
        None, "turn images by random multiples of 90 degrees (auto: when the data looks alike turned)"
    )
    # optimisation
    epochs: int | None = option(
        None, "training epochs (auto: 219 x sqrt(training images) images seen, in whole epochs)"
    )
    time: float | None = option(
        None,
        "upper bound on the run's wall time in minutes: an auto --epochs is shortened to fit, from a timed step "
        "(none: no bound; a given --epochs stands)",
    )
    batch_size: int | None = option(
        None, "images per optimizer step and process (auto: 8, halved until an epoch has 10 steps)"
    )
    accumulate: int = option(1, "batches accumulated per optimizer step")
    optimizer: str = option("sgd", "optimizer", ("sgd", "adamw"))
    lr: float | None = option(
        None,
        "peak learning rate (auto: sgd 0.04 per 8 images from random weights, 0.02 per 16 with --weights-backbone; "
        "adamw 1e-4 per 16)",
    )
    momentum: float = option(0.9, "SGD momentum")
    nesterov: bool = option(False, "SGD Nesterov momentum")
    betas: tuple[float, float] = option((0.9, 0.999), "AdamW betas")
    weight_decay: float = option(1e-4, "weight decay (never applied to norm weights and biases)")
    warmup_epochs: float | None = option(
        None, "linear warm-up length in epochs (auto: 0.5 and at least 100 steps, at most 20%% of the schedule)"
    )
    warmup_start: float = option(0.001, "warm-up starts at this fraction of the peak learning rate")
    min_lr: float = option(0.0, "learning rate at the end of the cosine schedule")
    clip_grad: float | None = option(
        10.0,
        "clip the gradient norm to this value (none: off); 10 cuts only spikes: healthy steps of a detector trained "
        "from scratch measure 1-5",
    )
    ema_decay: float = option(0.0, "keep an exponential moving average of the weights with this decay (0: off)")
    # execution
    device: str = option("auto", "auto picks cuda when available", ("auto", "cpu", "cuda"))
    amp: str = option("none", "mixed precision: bf16 (CPU or GPU) or fp16 (GPU)", ("none", "bf16", "fp16"))
    channels_last: bool = option(False, "channels_last memory format for the model")
    compile: bool = option(False, "torch.compile the backbone")
    sync_bn: bool = option(False, "SyncBatchNorm across processes (GPU only)")
    seed: int = option(0, "seed of weights, data order, augmentation and sampling")
    # output
    output: str | None = option(None, "output directory (auto: a new runs/<model>-<date>-<time>)")
    log_interval: int = option(20, "steps between log lines when not on a terminal (and TensorBoard's step scalars)")
    tensorboard: bool = option(True, "write TensorBoard event files in RUN/tensorboard (tensorboard --logdir runs)")
    checkpoint_steps: int = option(0, "also checkpoint every this many optimizer steps within an epoch (0: epoch ends)")
    eval_interval: int = option(1, "validate every this many epochs (and always after the last)")

    # The bounds of every numeric option (botnet.engine.validate.check_option; integer and optional come from the
    # annotations), checked first by validate(): a bad value is refused with its flag before any work.
    BOUNDS = {
        **TRAINING_BOUNDS,
        "trainable_backbone_layers": dict(minimum=0, maximum=5),
        "image_size": dict(side=True, minimum=32),  # and at most the side of one 4 GiB float32 image
        "scale_range": dict(minimum=0, min_inclusive=False, maximum=4),  # the paper: 0.8 1.25 up to 0.1 2
        "anchor_sizes": dict(minimum=1),
        "vflip": dict(minimum=0, maximum=1),
        "max_detections": dict(minimum=1),
    }

    def validate(self) -> DetectConfig:
        """Check types and ranges; raise ValueError naming the option and what is allowed."""

        def fail(name: str, msg: str) -> None:
            raise ValueError(f"invalid option {name}: {msg}")

        self.check_choices()
        self.check_bounds()
        if not isinstance(self.model_args, dict):
            fail("model_args", f"must be a mapping of builder arguments, got {self.model_args!r}")
        if self.weights and self.weights_backbone:
            fail("weights", "sets the whole detector, backbone included: drop --weights-backbone")
        return self
