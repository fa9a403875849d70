"""Fitting weights to a model: loading any weights SOURCE into a model with a report, which of our models a state
dict fits, and the input size its position tables were trained at."""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import Tensor, nn

from ..botnet import BoTNet
from ..registry import get_config, list_models
from .known import TIMM_SOURCES
from .sources import Weights, read_weights
from .transfer import ATTENTION_ONLY, POSITION_TABLES, TransferReport, apply_state_dict

_PROBE = 1024  # an input size every stride divides: the feature map of each table is exactly size / reduction


def _structure(state: dict[str, Tensor]) -> frozenset:
    """Keys and shapes, without the classifier and BatchNorm step counters (a frozen BatchNorm has none), and with
    position tables by name only (their length follows the reference input size)."""
    return frozenset(
        (k, None if k.endswith(POSITION_TABLES) else tuple(v.shape))
        for k, v in state.items()
        if not k.startswith("fc.") and not k.endswith(".num_batches_tracked")
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


@functools.cache
def _table_lengths(name: str, img_size: int | tuple[int, int]) -> dict[str, int]:
    with torch.device("meta"):
        model = BoTNet(get_config(name).replace(num_classes=0, img_size=img_size))
    return {k: v.shape[0] for k, v in model.state_dict().items() if k.endswith(POSITION_TABLES)}


def _cells(key: str, length: int) -> int:
    """The feature-map side a table of ``length`` rows is for (relative tables span 2 * side - 1 offsets)."""
    return (length + 1) // 2 if ".rel_" in key else length


def trained_size(name: str, state: dict[str, Tensor]) -> tuple[int, int] | None:
    """The input size (H, W) that ``name``'s position tables of the lengths in ``state`` are made for (the size the
    weights were trained at, to a multiple of the stride of the finest attention map), or None when ``state`` has
    none of its tables or no size gives all their lengths."""
    probe = _table_lengths(name, _PROBE)
    theirs = {k: v.shape[0] for k, v in state.items() if k in probe and v.dim() == 2}
    if not probe or theirs.keys() != probe.keys():
        return None
    size = []
    for axis in ("_h", "_w"):
        finest = max((k for k in probe if k.endswith(axis)), key=lambda k: probe[k])
        size.append(_cells(finest, theirs[finest]) * (_PROBE // _cells(finest, probe[finest])))
    h, w = size
    return (h, w) if h > 0 and w > 0 and _table_lengths(name, (h, w)) == theirs else None


def _hint(weights: Weights) -> str:
    names = looks_like(weights.state_dict)
    if names:
        return f"They look like {', '.join(names)}."
    return "They match none of our models."


def source_preprocessing(weights: Weights) -> dict:
    """The preprocessing the weights were trained with: the source's own, or for a timm state dict without it, the
    published pretrained_cfg of the network it is (from the known-sources table)."""
    pre = dict(weights.pretrained_cfg)
    if not pre and weights.kind == "timm":
        name = weights.model_name or next(iter(looks_like(weights.state_dict)), None)
        pre = next((dict(r.preprocessing) for r in TIMM_SOURCES if r.model == name), {})
    return pre


def load_pretrained(
    model: nn.Module, source: str | Path | dict[str, Tensor] | Weights, *, strict: bool = True
) -> TransferReport:
    """Load weights SOURCE (see :mod:`botnet.models.weights.sources`) into ``model`` and report what happened.

    timm checkpoints are converted (keys mapped, position tables rescaled), torchvision ResNets fill every
    non-attention weight, and our own files load as they are. Position tables of another reference size are resized;
    a classifier of another class count stays as initialised (reported as reinitialised). The preprocessing of the
    source (mean, std, crop_pct, interpolation, input_size) and the source itself go into ``model.pretrained_cfg``.

    Args:
        strict: missing or unexpected keys other than the classifier (and, for torchvision sources, the attention
            weights a ResNet does not have) are an error naming them; False loads around them and reports them.

    Raises:
        WeightsSourceError: the source cannot be read (see :func:`~botnet.models.weights.read_weights`).
        ValueError: the weights belong to another architecture (the message says which model they look like).
    """
    weights = read_weights(source)
    # A source without any BatchNorm step counter had its BatchNorm frozen (a detector's backbone): ours stay at 0.
    counters = any(k.endswith(".num_batches_tracked") for k in weights.state_dict)
    optional = lambda key: not counters and key.endswith(".num_batches_tracked")  # noqa: E731
    ignorable = lambda key: False  # noqa: E731
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
    report.notes = list(weights.notes)
    pre = source_preprocessing(weights)
    if hasattr(model, "pretrained_cfg"):
        model.pretrained_cfg.update(
            {k: pre[k] for k in ("input_size", "mean", "std", "crop_pct", "interpolation") if k in pre}
        )
        model.pretrained_cfg["source"] = weights.source
    return report
