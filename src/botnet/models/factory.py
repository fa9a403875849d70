"""``create_model``: a registered classification network built from its config, with weights loaded when asked."""

from __future__ import annotations

import sys
from pathlib import Path

from .botnet import BoTNet
from .registry import get_config
from .weights.files import load_weights
from .weights.fit import load_pretrained
from .weights.sources import Weights


def create_model(
    name: str,
    *,
    num_classes: int = 1000,
    checkpoint_path: str | Path | None = None,
    pretrained: str | Path | dict | Weights | None = None,
    pretrained_strict: bool = True,
    **overrides: object,
) -> BoTNet:
    """Build a registered model.

    Args:
        name: a name from :func:`~botnet.models.list_models`.
        num_classes: classifier outputs; 0 for a headless backbone.
        checkpoint_path: optional safetensors weights to load (position tables of another reference size are
            resized with the layer's policy).
        pretrained: a weights SOURCE (a file, a run or checkpoint directory, ``timm:NAME.TAG``,
            ``torchvision:WEIGHTS``, a state dict; see :mod:`botnet.models.weights.sources`). The load's
            :class:`~botnet.models.TransferReport` is printed to stderr and kept as ``model.pretrained_report``; the
            source's preprocessing goes into ``model.pretrained_cfg``.
        pretrained_strict: with False, missing / unexpected keys beyond the classifier are loaded around and reported
            instead of raising.
        **overrides: any :class:`BoTNetConfig` field, e.g. ``img_size=1024``, ``pos_enc="absolute"``. An unknown
            field is a TypeError naming the valid ones.
    """
    cfg = get_config(name).replace(num_classes=num_classes, **overrides)
    model = BoTNet(cfg)
    model.pretrained_cfg["architecture"] = name
    if checkpoint_path is not None:
        load_weights(model, checkpoint_path)
    if pretrained is not None:
        model.pretrained_report = load_pretrained(model, pretrained, strict=pretrained_strict)
        print(model.pretrained_report.summary(), file=sys.stderr)
    return model
