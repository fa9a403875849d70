"""Pretrained weights for the zoo: the known sources, and loading any weights SOURCE into a model with a report.

The known-sources table lists, for each preset, the published ImageNet-1k weights it can load, their top-1 and
input size with where those figures come from, and the preprocessing the weights were trained with. timm is not a
dependency, so its values are written here with their origin; torchvision's are read from its weights' metadata.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .botnet import IMAGENET_MEAN, IMAGENET_STD, BoTNet
from .registry import get_config, list_models
from .sources import TIMM_TAGS, Weights, read_weights, torchvision_preprocessing
from .transfer import ATTENTION_ONLY, TransferReport, apply_state_dict

TIMM_CFG_ORIGIN = "timm 1.0 models/byoanet.py default_cfgs (the tag's pretrained_cfg)"
TIMM_TOP1_ORIGIN = "timm results/results-imagenet.csv (ImageNet-1k val, 256x256, the tag's crop_pct)"
TORCHVISION_ORIGIN = "torchvision weights meta (_metrics ImageNet-1K acc@1) and transforms()"


@dataclass(frozen=True)
class KnownSource:
    """Published ImageNet-1k weights a preset loads."""

    model: str  # our preset
    source: str  # the SOURCE string
    top1: float  # ImageNet-1k top-1 (%) as published for these weights
    input_size: int  # the evaluation input size of that figure
    top1_origin: str
    preprocessing: dict  # input_size (C, H, W), mean, std, crop_pct, interpolation
    preprocessing_origin: str
    note: str = ""


def _timm(model: str, tag: str, top1: float, crop_pct: float) -> KnownSource:
    pre = dict(
        input_size=(3, 256, 256), mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_pct=crop_pct, interpolation="bicubic"
    )
    return KnownSource(model, f"timm:{model}.{tag}", top1, 256, TIMM_TOP1_ORIGIN, pre, TIMM_CFG_ORIGIN)


TIMM_SOURCES = (
    _timm("botnet26t_256", "c1_in1k", 79.26, 0.95),
    _timm("sebotnet33ts_256", "a1h_in1k", 81.16, 0.94),
    _timm("eca_botnext26ts_256", "c1_in1k", 79.26, 0.95),
)
assert {r.source for r in TIMM_SOURCES} == {f"timm:{m}.{t}" for m, tags in TIMM_TAGS.items() for t in tags}


@functools.cache
def _torchvision_sources() -> tuple[KnownSource, ...]:
    from torchvision.models import ResNet50_Weights, ResNet101_Weights, ResNet152_Weights

    out = []
    for depth, enum in (("50", ResNet50_Weights), ("101", ResNet101_Weights), ("152", ResNet152_Weights)):
        for weights in enum:
            pre = torchvision_preprocessing(weights)
            top1 = weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]
            source = f"torchvision:{enum.__name__}.{weights.name}"
            size = pre["input_size"][1]
            out.append(KnownSource(f"resnet{depth}", source, top1, size, TORCHVISION_ORIGIN, pre, TORCHVISION_ORIGIN))
            note = "top-1 of the torchvision ResNet; the BoT blocks' attention starts untrained"
            out.append(
                KnownSource(f"botnet{depth}", source, top1, size, TORCHVISION_ORIGIN, pre, TORCHVISION_ORIGIN, note)
            )
    return tuple(out)


def known_sources(model: str | None = None) -> list[KnownSource]:
    """Published weights per preset (all presets with ``model=None``); ``[]`` for a preset without any."""
    rows = [*TIMM_SOURCES, *_torchvision_sources()]
    if model is not None:
        get_config(model)  # an unknown name is an error listing the valid ones
    return [r for r in rows if model is None or r.model == model]


# ------------------------------------------------------------------------------------------------------------------
# Which of our models a state dict fits


def _structure(state: dict[str, Tensor]) -> frozenset:
    """Keys and shapes, without the classifier and with position tables by name only (their length follows the
    reference input size)."""
    return frozenset(
        (k, None if k.endswith((".rel_h", ".rel_w", ".abs_h", ".abs_w")) else tuple(v.shape))
        for k, v in state.items()
        if not k.startswith("fc.")
    )


@functools.cache
def _preset_structure(name: str) -> frozenset:
    with torch.device("meta"):
        model = BoTNet(get_config(name).replace(num_classes=0))
    return _structure(model.state_dict())


def looks_like(state: dict[str, Tensor]) -> list[str]:
    """Our registered models whose structure ``state`` (in our key names) matches exactly, ignoring the classifier.

    A torchvision ResNet state dict matches the ResNet of its depth (and fits the BoTNet of that depth too).
    """
    target = _structure(state)
    return [name for name in list_models() if _preset_structure(name) == target]


def _hint(weights: Weights) -> str:
    names = looks_like(weights.state_dict)
    if names:
        return f"They look like {', '.join(names)}."
    return "They match none of our models."


def load_pretrained(
    model: nn.Module, source: str | Path | dict[str, Tensor] | Weights, *, strict: bool = True
) -> TransferReport:
    """Load weights SOURCE (see :mod:`botnet.models.sources`) into ``model`` and report what happened.

    timm checkpoints are converted (keys mapped, position tables rescaled), torchvision ResNets fill every
    non-attention weight, and our own files load as they are. Position tables of another reference size are resized;
    a classifier of another class count stays as initialised (reported as reinitialised). The preprocessing of the
    source (mean, std, crop_pct, interpolation, input_size) and the source itself go into ``model.pretrained_cfg``.

    Args:
        strict: missing or unexpected keys other than the classifier (and, for torchvision sources, the attention
            weights a ResNet does not have) are an error naming them; False loads around them and reports them.

    Raises:
        WeightsSourceError: the source cannot be read (see :func:`~botnet.models.sources.read_weights`).
        ValueError: the weights belong to another architecture (the message says which model they look like).
    """
    weights = read_weights(source)
    optional, ignorable = (lambda key: False), (lambda key: False)
    if weights.kind == "torchvision":
        own = model.state_dict()
        optional = lambda key: any(tag in f".{key}" for tag in ATTENTION_ONLY)  # noqa: E731
        ignorable = lambda key: ".conv2." in key and f"{key.rsplit('.conv2.', 1)[0]}.attn.qkv.weight" in own  # noqa: E731
    report = apply_state_dict(
        model,
        weights.state_dict,
        strict=strict,
        source=weights.source,
        kind=weights.kind,
        optional=optional,
        ignorable=ignorable,
        hint=lambda: _hint(weights),
    )
    pre = dict(weights.pretrained_cfg)
    if not pre and weights.kind == "timm":
        name = weights.model_name or next(iter(looks_like(weights.state_dict)), None)
        pre = next((dict(r.preprocessing) for r in TIMM_SOURCES if r.model == name), {})
    if hasattr(model, "pretrained_cfg"):
        model.pretrained_cfg.update(
            {k: pre[k] for k in ("input_size", "mean", "std", "crop_pct", "interpolation") if k in pre}
        )
        model.pretrained_cfg["source"] = weights.source
    return report
