"""The options every training command has, with each bound beside its field; a task's options class adds its own.

``botnet train`` and ``botnet detect train`` share these fields: the model, the data and its loading, the schedule
and optimizer, precision and devices, the output and checkpoints, and logging. A task's class (a dataclass
subclass) declares only its own fields and, with :func:`~botnet.engine.config.retune`, its own default for a
shared one; the order of ``--help`` and ``config.yaml`` follows :data:`GROUPS`. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import BUILTIN, ConfigBase, option

GROUPS = ("model", "data", "augmentation", "optimisation", "execution", "output")  # in --help and config.yaml


@dataclass
class TrainingOptions(ConfigBase):
    """The options of every training command; see each field's help (``botnet train --help``)."""

    GROUPS = GROUPS

    # model
    model: str | None = option(None, "registered model name (botnet list)", group="model")
    model_args: dict = option({}, "model overrides (YAML only)", yaml_only=True, group="model")
    image_size: int | None = option(
        None, "training and evaluation input size", bounds=dict(side=True, minimum=8), group="model"
    )  # the side bound: at most the side of one 4 GiB float32 image
    # data
    data: str = option(BUILTIN, "the data's root directory, or 'shapes' for the built-in dataset", group="data")
    val_fraction: float = option(
        0.2,
        "with no validation split: the share held out to validate, by --seed (0: no validation)",
        bounds=dict(minimum=0, maximum=1, max_inclusive=False),
        group="data",
    )
    shapes_train: int = option(
        20000, "images in the built-in dataset's train split", bounds=dict(minimum=1), group="data"
    )
    shapes_val: int = option(1000, "images in the built-in dataset's val split", bounds=dict(minimum=1), group="data")
    workers: int | None = option(
        None,
        "data-loading processes per training process (0: in the main process; auto: 0 on a CPU of <= 4 cores)",
        bounds=dict(minimum=0),
        group="data",
    )
    max_bad_fraction: float = option(
        0.01,
        "stop when more than this fraction of images cannot be read",
        bounds=dict(minimum=0, maximum=1),
        group="data",
    )
    max_image_pixels: int = option(
        89_478_485, "refuse images whose declared width*height exceeds this", bounds=dict(minimum=1), group="data"
    )
    # optimisation
    epochs: int | None = option(
        None, "training epochs (auto: from the data)", bounds=dict(minimum=1), group="optimisation"
    )
    time: float | None = option(
        None,
        "upper bound on the run's wall time in minutes: an auto --epochs is shortened to fit, from a timed step "
        "(none: no bound; a given --epochs stands)",
        bounds=dict(minimum=0, min_inclusive=False),
        group="optimisation",
    )
    batch_size: int | None = option(
        None,
        "images per optimizer step and process (auto: from the data)",
        bounds=dict(minimum=1),
        group="optimisation",
    )
    accumulate: int = option(1, "batches accumulated per optimizer step", bounds=dict(minimum=1), group="optimisation")
    optimizer: str = option("sgd", "optimizer", ("sgd", "adamw"), group="optimisation")
    lr: float | None = option(
        None,
        "peak learning rate (auto: from the batch)",
        bounds=dict(minimum=0, min_inclusive=False),
        group="optimisation",
    )
    momentum: float = option(
        0.9, "SGD momentum", bounds=dict(minimum=0, maximum=1, max_inclusive=False), group="optimisation"
    )
    nesterov: bool = option(True, "SGD Nesterov momentum", group="optimisation")
    betas: tuple[float, float] = option(
        (0.9, 0.999),
        "AdamW betas",
        bounds=dict(minimum=0, maximum=1, max_inclusive=False, ordered=False),
        group="optimisation",
    )
    weight_decay: float = option(
        5e-5, "weight decay (never applied to norm weights and biases)", bounds=dict(minimum=0), group="optimisation"
    )
    warmup_epochs: float | None = option(
        None, "linear warm-up length in epochs (auto: from the schedule)", bounds=dict(minimum=0), group="optimisation"
    )
    warmup_start: float = option(
        0.01,
        "warm-up starts at this fraction of the peak learning rate",
        bounds=dict(minimum=0, maximum=1),
        group="optimisation",
    )
    min_lr: float = option(
        0.0, "learning rate at the end of the cosine schedule", bounds=dict(minimum=0), group="optimisation"
    )
    clip_grad: float | None = option(
        None,
        "clip the gradient norm to this value (none: off)",
        bounds=dict(minimum=0, min_inclusive=False),
        group="optimisation",
    )
    ema_decay: float = option(
        0.0,
        "keep an exponential moving average of the weights with this decay (0: off)",
        bounds=dict(minimum=0, maximum=1, max_inclusive=False),
        group="optimisation",
    )
    # execution
    device: str = option("auto", "auto picks cuda when available", ("auto", "cpu", "cuda"), group="execution")
    amp: str = option(
        "none",
        "mixed precision: bf16 (CPU or GPU) or fp16 (GPU, with a grad scaler)",
        ("none", "bf16", "fp16"),
        group="execution",
    )
    channels_last: bool = option(False, "channels_last memory format for the model and inputs", group="execution")
    compile: bool = option(False, "torch.compile the model", group="execution")
    sync_bn: bool = option(False, "SyncBatchNorm across processes (GPU only)", group="execution")
    seed: int = option(
        0,
        "seed of weights, data order, augmentation and every random draw of a step",
        bounds=dict(minimum=0, maximum=2**63 - 1),
        group="execution",
    )
    # output
    output: str | None = option(None, "output directory (auto: a new runs/<model>-<date>-<time>)", group="output")
    log_interval: int = option(
        50,
        "steps between log lines when not on a terminal (and TensorBoard's step scalars)",
        bounds=dict(minimum=1),
        group="output",
    )
    tensorboard: bool = option(
        True, "write TensorBoard event files in RUN/tensorboard (tensorboard --logdir runs)", group="output"
    )
    checkpoint_steps: int = option(
        0,
        "also checkpoint every this many optimizer steps within an epoch (0: epoch ends)",
        bounds=dict(minimum=0),
        group="output",
    )
    eval_interval: int = option(
        1, "validate every this many epochs (and always after the last)", bounds=dict(minimum=1), group="output"
    )

    def validate(self) -> Any:
        """Check choices, types and ranges (a bad value is refused with its flag before any work); a task's class
        adds the rules between its own fields."""
        self.check_choices()
        self.check_bounds()
        if not isinstance(self.model_args, dict):
            raise ValueError(f"invalid option model_args: must be a mapping, got {self.model_args!r}")
        return self
