"""Published ImageNet-1k weights each preset can load, as a plain table (no torch: ``botnet list`` answers at once).

Each row gives the SOURCE string, the published top-1 and its evaluation input size, where those figures come from,
and the preprocessing the weights were trained with. timm is not a dependency, so its values are written here with
their origin; torchvision's are copied from its weights' metadata, and a test checks them against it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import IMAGENET_MEAN, IMAGENET_STD
from ..registry import get_config

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


# timm's published weights of the networks of botnet.models.timm_family: the one list of them.
TIMM_SOURCES = (
    _timm("botnet26t_256", "c1_in1k", 79.26, 0.95),
    _timm("sebotnet33ts_256", "a1h_in1k", 81.16, 0.94),
    _timm("eca_botnext26ts_256", "c1_in1k", 79.26, 0.95),
)
# The published tags of each of timm's networks that has weights: {"botnet26t_256": ("c1_in1k",), ...}.
TIMM_TAGS: dict[str, tuple[str, ...]] = {
    model: tuple(r.source.partition(".")[2] for r in TIMM_SOURCES if r.model == model)
    for model in dict.fromkeys(r.model for r in TIMM_SOURCES)
}

# (depth, weights name, top-1, crop_pct): torchvision's ResNet weights, all evaluated at 224 (bilinear).
_TORCHVISION_RESNETS = (
    (50, "IMAGENET1K_V1", 76.13, 0.875),
    (50, "IMAGENET1K_V2", 80.858, 0.9655),
    (101, "IMAGENET1K_V1", 77.374, 0.875),
    (101, "IMAGENET1K_V2", 81.886, 0.9655),
    (152, "IMAGENET1K_V1", 78.312, 0.875),
    (152, "IMAGENET1K_V2", 82.284, 0.9655),
)


def _torchvision_rows() -> tuple[KnownSource, ...]:
    rows = []
    for depth, name, top1, crop_pct in _TORCHVISION_RESNETS:
        pre = dict(
            input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_pct=crop_pct, interpolation="bilinear"
        )
        source = f"torchvision:ResNet{depth}_Weights.{name}"
        rows.append(KnownSource(f"resnet{depth}", source, top1, 224, TORCHVISION_ORIGIN, pre, TORCHVISION_ORIGIN))
        note = "top-1 of the torchvision ResNet; the BoT blocks' attention starts untrained"
        rows.append(KnownSource(f"botnet{depth}", source, top1, 224, TORCHVISION_ORIGIN, pre, TORCHVISION_ORIGIN, note))
    return tuple(rows)


TORCHVISION_SOURCES = _torchvision_rows()


def known_sources(model: str | None = None) -> list[KnownSource]:
    """Published weights per preset (all presets with ``model=None``); ``[]`` for a preset without any."""
    if model is not None:
        get_config(model)  # an unknown name is an error listing the valid ones
    return [r for r in (*TIMM_SOURCES, *TORCHVISION_SOURCES) if model is None or r.model == model]
