"""Model registry: names -> configs, and ``create_model`` / ``list_models`` in timm's style."""

from __future__ import annotations

import difflib
import fnmatch
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .config import BoTNetConfig

if TYPE_CHECKING:  # the registry imports no torch: ``botnet list`` answers at once
    from .botnet import BoTNet

_CONFIGS: dict[str, BoTNetConfig] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_model(name: str, cfg: BoTNetConfig, description: str = "") -> None:
    """Register ``cfg`` under ``name`` (lowercase id). Re-registering a name is an error."""
    if name in _CONFIGS:
        raise ValueError(f"model {name!r} is already registered")
    _CONFIGS[name] = cfg
    _DESCRIPTIONS[name] = description


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern`` (e.g. ``"botnet_t?"``), sorted."""
    return sorted(n for n in _CONFIGS if fnmatch.fnmatch(n, pattern))


def describe_model(name: str) -> str:
    """One-line description of a registered model."""
    get_config(name)
    return _DESCRIPTIONS[name]


def get_config(name: str) -> BoTNetConfig:
    """The preset config of ``name``; an unknown name is a ValueError listing close and valid names."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    try:
        return _CONFIGS[name]
    except KeyError:
        raise unknown_name("model", name, list_models()) from None


def unknown_name(kind: str, name: str, names: list[str]) -> ValueError:
    """The error for a name that is not registered: the closest registered ones, then all of them."""
    close = difflib.get_close_matches(name.lower(), names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ValueError(f"unknown {kind} {name!r}.{hint} Available: {', '.join(names)}")


def create_model(
    name: str,
    *,
    num_classes: int = 1000,
    checkpoint_path: str | Path | None = None,
    pretrained: str | Path | dict | None = None,
    pretrained_strict: bool = True,
    **overrides: object,
) -> BoTNet:
    """Build a registered model.

    Args:
        name: a name from :func:`list_models`.
        num_classes: classifier outputs; 0 for a headless backbone.
        checkpoint_path: optional safetensors weights to load (position tables of another reference size are
            resized with the layer's policy).
        pretrained: a weights SOURCE (a file, a run or checkpoint directory, ``timm:NAME.TAG``,
            ``torchvision:WEIGHTS``, a state dict; see :mod:`botnet.models.sources`). The load's
            :class:`~botnet.models.TransferReport` is printed to stderr and kept as ``model.pretrained_report``; the
            source's preprocessing goes into ``model.pretrained_cfg``.
        pretrained_strict: with False, missing / unexpected keys beyond the classifier are loaded around and reported
            instead of raising.
        **overrides: any :class:`BoTNetConfig` field, e.g. ``img_size=1024``, ``pos_enc="absolute"``. An unknown
            field is a TypeError naming the valid ones.
    """
    from .botnet import BoTNet
    from .weights import load_weights

    cfg = get_config(name).replace(num_classes=num_classes, **overrides)
    model = BoTNet(cfg)
    model.pretrained_cfg["architecture"] = name
    if checkpoint_path is not None:
        load_weights(model, checkpoint_path)
    if pretrained is not None:
        from .pretrained import load_pretrained  # imports the registry

        model.pretrained_report = load_pretrained(model, pretrained, strict=pretrained_strict)
        print(model.pretrained_report.summary(), file=sys.stderr)
    return model
