"""Training options as one dataclass: defaults, then a YAML file, then command-line flags.

Every field is a YAML key (``lr: 0.2``) and a flag (``--lr 0.2``); ``botnet train --help`` lists them all. A field left
at ``None`` where the help says "auto" is resolved from the model and the dataset (:func:`resolve_auto`), and the
resolved values are what ``config.yaml`` in the output directory records.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .reporting import atomic_write

BUILTIN = "shapes"  # data: the built-in generated dataset


def option(default: Any, help: str, choices: tuple[str, ...] | None = None, yaml_only: bool = False) -> Any:
    meta = {"help": help, "choices": choices, "yaml_only": yaml_only}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


class ConfigBase:
    """What every options dataclass shares: plain-dict export and functional update."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    def replace(self, **changes: Any) -> Any:
        return dataclasses.replace(self, **changes)

    @property
    def builtin_data(self) -> bool:
        """Whether the run uses the built-in generated dataset (``data: shapes``)."""
        return self.data == BUILTIN


@dataclass
class TrainConfig(ConfigBase):
    """All options of ``botnet train``; see each field's help (``botnet train --help``)."""

    # model
    model: str = option("botnet_tiny", "registered model name (botnet list)")
    model_args: dict = option({}, "BoTNetConfig overrides, e.g. {drop_rate: 0.1} (YAML only)", yaml_only=True)
    img_size: int | None = option(None, "training and evaluation input size (auto: the model's default; 64 for shapes)")
    # data
    data: str = option(BUILTIN, "ImageFolder root with train/<class>/* and val/<class>/*, or 'shapes' (built in)")
    shapes_train: int = option(20000, "images in the built-in dataset's train split")
    shapes_val: int = option(1000, "images in the built-in dataset's val split")
    workers: int | None = option(
        None, "data-loading processes per training process (0: in the main process; auto: 0 on a CPU of <= 4 cores)"
    )
    max_bad_fraction: float = option(0.01, "stop when more than this fraction of images cannot be read")
    max_image_pixels: int = option(89_478_485, "refuse images whose declared width*height exceeds this")
    # augmentation
    scale: tuple[float, float] | None = option(None, "RandomResizedCrop area range (auto: 0.08 1; 0.8 1 for shapes)")
    ratio: tuple[float, float] | None = option(
        None, "RandomResizedCrop aspect-ratio range (auto: 0.75 1.333; 1 1 for shapes)"
    )
    hflip: float = option(0.5, "horizontal flip probability")
    randaugment: str | None = option(None, "RandAugment policy such as rand-m9-n2 (none: off)")
    mixup_alpha: float = option(0.0, "mixup Beta alpha (0: off)")
    cutmix_alpha: float = option(0.0, "cutmix Beta alpha (0: off)")
    mix_prob: float = option(1.0, "probability of applying mixup/cutmix to a batch")
    crop_pct: float | None = option(None, "eval center-crop fraction (auto: the model's, 0.875; 1.0 for shapes)")
    interpolation: str = option("bilinear", "resize interpolation", ("bilinear", "bicubic", "nearest"))
    # optimisation
    epochs: int | None = option(None, "training epochs (auto: 90; 6 for shapes)")
    batch_size: int = option(64, "images per optimizer step and process, before accumulation")
    accumulate: int = option(1, "batches accumulated per optimizer step")
    optimizer: str = option("sgd", "optimizer", ("sgd", "adamw"))
    lr: float | None = option(
        None,
        "peak learning rate (auto: 0.1 x batch/256 for sgd, 1e-3 x batch/512 for adamw; 0.2 x batch/64 for shapes)",
    )
    momentum: float = option(0.9, "SGD momentum")
    nesterov: bool = option(True, "SGD Nesterov momentum")
    betas: tuple[float, float] = option((0.9, 0.999), "AdamW betas")
    weight_decay: float = option(5e-5, "weight decay (never applied to norm weights and biases)")
    warmup_epochs: float = option(1.0, "linear warm-up length in epochs")
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
    log_interval: int = option(50, "steps between log lines when not on a terminal")
    checkpoint_steps: int = option(0, "also checkpoint every this many optimizer steps within an epoch (0: epoch ends)")
    eval_interval: int = option(1, "validate every this many epochs (and always after the last)")

    # ----------------------------------------------------------------------------------------------------------
    def validate(self) -> TrainConfig:
        """Check types and ranges; raise ValueError naming the option and what is allowed."""

        def fail(name: str, msg: str) -> None:
            raise ValueError(f"invalid option {name}: {msg}")

        for f in fields(self):
            value = getattr(self, f.name)
            choices = f.metadata.get("choices")
            if choices and value not in choices:
                fail(f.name, f"{value!r} is not one of {', '.join(choices)}")
        if self.epochs is not None and (not isinstance(self.epochs, int) or self.epochs < 1):
            fail("epochs", f"must be a positive integer, got {self.epochs!r}")
        positive = ("batch_size", "accumulate", "shapes_train", "shapes_val", "log_interval", "eval_interval")
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                fail(name, f"must be a positive integer, got {getattr(self, name)!r}")
        for name in ("workers", "checkpoint_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                fail(name, f"must be >= 0, got {getattr(self, name)}")
        for name in ("hflip", "mix_prob", "max_bad_fraction", "label_smoothing", "warmup_start"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                fail(name, f"must be in [0, 1], got {getattr(self, name)}")
        if self.lr is not None and not self.lr > 0:
            fail("lr", f"must be > 0, got {self.lr}")
        if self.ema_decay and not 0.0 < self.ema_decay < 1.0:
            fail("ema_decay", f"must be in (0, 1) or 0 to disable, got {self.ema_decay}")
        if self.crop_pct is not None and not 0.0 < self.crop_pct <= 1.0:
            fail("crop_pct", f"must be in (0, 1], got {self.crop_pct}")
        if self.scale is not None and not 0.0 < self.scale[0] <= self.scale[1] <= 1.0:
            fail("scale", f"must satisfy 0 < min <= max <= 1, got {self.scale}")
        if self.img_size is not None and self.img_size < 8:
            fail("img_size", f"must be at least 8 pixels, got {self.img_size}")
        for name in ("weight_decay", "min_lr", "warmup_epochs", "mixup_alpha", "cutmix_alpha"):
            if getattr(self, name) < 0:
                fail(name, f"must be >= 0, got {getattr(self, name)}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            fail("clip_grad", f"must be > 0 (or none to disable), got {self.clip_grad}")
        if not isinstance(self.model_args, dict):
            fail("model_args", f"must be a mapping of BoTNetConfig fields, got {self.model_args!r}")
        return self


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# ------------------------------------------------------------------------------------------------------------------
# Parsing values from YAML and flags


def _field_kind(f: dataclasses.Field, cls: type) -> tuple[type, bool, bool]:
    """(scalar type, optional?, pair?) of a field of the config class ``cls``, from its annotation."""
    hint = typing.get_type_hints(cls)[f.name]
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    origin = typing.get_origin(hint)
    if origin is tuple:
        return typing.get_args(hint)[0], optional, True
    if origin is types.UnionType or origin is typing.Union:  # pragma: no cover - not used by the fields
        raise AssertionError(hint)
    return (hint if isinstance(hint, type) else dict), optional, False


def coerce(name: str, value: Any, cls: type = TrainConfig) -> Any:
    """Convert a YAML or flag value to the type of field ``name`` of ``cls``; ValueError says what was expected."""
    f = {f.name: f for f in fields(cls)}[name]
    scalar, optional, pair = _field_kind(f, cls)
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("none", "null", "off"))):
        return None

    def one(v: Any) -> Any:
        if scalar is bool:
            if isinstance(v, bool):
                return v
            if isinstance(v, str) and v.lower() in ("true", "yes", "1", "false", "no", "0"):
                return v.lower() in ("true", "yes", "1")
            raise ValueError
        if scalar is int:
            if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
                raise ValueError
            return int(v)
        if scalar is float:
            if isinstance(v, bool):
                raise ValueError
            return float(v)
        if scalar is dict:
            if not isinstance(v, dict):
                raise ValueError
            return dict(v)
        return str(v)

    expected = f"two {scalar.__name__} values" if pair else f"a {scalar.__name__}"
    try:
        if pair:
            if isinstance(value, str):
                value = value.replace(",", " ").split()
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise ValueError
            return (one(value[0]), one(value[1]))
        return one(value)
    except (TypeError, ValueError):
        hint = " (or none)" if optional else ""
        raise ValueError(f"invalid option {name}: expected {expected}{hint}, got {value!r}") from None


def load_yaml(path: str | Path, cls: type = TrainConfig) -> dict[str, Any]:
    """Read a YAML config file into ``{field: value}``; unknown keys are an error listing the valid ones."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"config file {path} must hold a mapping of option: value, got {type(raw).__name__}")
    names = [f.name for f in fields(cls)]
    unknown = sorted(k for k in raw if k not in names)
    if unknown:
        raise ValueError(
            f"config file {path}: unknown option(s) {', '.join(map(str, unknown))}; valid: {', '.join(names)}"
        )
    return {k: coerce(k, v, cls) for k, v in raw.items()}


def build_config(file: str | Path | None = None, *, config_cls: type = TrainConfig, **overrides: Any) -> Any:
    """Defaults of ``config_cls``, then the YAML ``file``, then ``overrides`` (already typed, or strings from flags)."""
    values = load_yaml(file, config_cls) if file else {}
    values.update({k: coerce(k, v, config_cls) for k, v in overrides.items()})
    return config_cls(**values).validate()


def save_yaml(cfg: Any, path: str | Path) -> None:
    """Write a config (or a plain dict) as YAML atomically."""
    data = cfg if isinstance(cfg, dict) else cfg.to_dict()
    atomic_write(path, yaml.safe_dump(data, sort_keys=False))


def add_arguments(parser: argparse.ArgumentParser, cls: type = TrainConfig) -> None:
    """One flag per field (``--batch-size``), defaulting to "not given" so the YAML file's value stands."""
    for f in fields(cls):
        if f.metadata.get("yaml_only"):
            continue
        scalar, optional, pair = _field_kind(f, cls)
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        text = f"{f.metadata['help']} [{_plain(default) if default is not None else 'auto'}]"
        kw: dict[str, Any] = {"default": argparse.SUPPRESS, "help": text, "dest": f.name}
        if scalar is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif pair:
            parser.add_argument(flag, nargs=2, metavar=("MIN", "MAX"), **kw)
        else:
            if f.metadata.get("choices"):
                kw["choices"] = f.metadata["choices"]
            parser.add_argument(flag, metavar=f.name.upper() if not kw.get("choices") else None, **kw)


def overrides_from_args(args: argparse.Namespace, cls: type = TrainConfig) -> dict[str, Any]:
    """The options given on the command line, by field name."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}
