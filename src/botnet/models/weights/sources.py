"""Weights sources: one string names weights everywhere, and is read here into a state dict in our key names.

A SOURCE is

* a local file (``.safetensors``, ``.bin``, ``.pth``, ``.pt``), or a ``botnet train`` run directory (its
  ``best/`` or else ``last/`` checkpoint) or checkpoint directory (its ``model.safetensors``). The file may hold our
  weights, a timm state dict or a torchvision ResNet state dict: which one is detected from its keys and metadata.
* ``timm:NAME.TAG`` (e.g. ``timm:botnet26t_256.c1_in1k``, a published tag of :data:`~.known.TIMM_TAGS`):
  ``model.safetensors`` (else ``pytorch_model.bin``) of timm's hub repository ``timm/NAME.TAG``, through
  huggingface_hub and its cache (``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``).
* ``torchvision:WEIGHTS`` (e.g. ``torchvision:ResNet50_Weights.IMAGENET1K_V2``): torchvision's weights API, and the
  torch.hub cache ``$TORCH_HOME/hub/checkpoints`` (``BOTNET_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``: no download).

The last two are fetched by :mod:`botnet.models.weights.hub`: from the cache when there, else in one quick attempt.

A state dict saved from a wrapped model has its wrapper's prefix (``module.`` of DistributedDataParallel,
``_orig_mod.`` of torch.compile) removed from every key, and a ``botnet detect train`` run or checkpoint gives its
detector's backbone (the ``backbone.body.*`` tensors), without the FPN and the heads; both are said in the load's
report. Our own files also give their class names, when they have a classifier trained on named classes.

Nothing is unpickled beyond tensors: ``.safetensors`` files are read as such, everything else with
``torch.load(weights_only=True)``. Every failure is a :class:`WeightsSourceError` naming the source, and for hub and
torchvision sources the exact cache path where a file fetched by hand is found.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from .files import WeightsSourceError, read_file
from .hub import fetch_timm, fetch_torchvision
from .timm import convert_timm_state_dict, is_timm_state_dict

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
SOURCE_FORMS = (
    "a .safetensors/.bin/.pth/.pt file, a botnet train run or checkpoint directory, timm:NAME.TAG "
    "(e.g. timm:botnet26t_256.c1_in1k) or torchvision:WEIGHTS (e.g. torchvision:ResNet50_Weights.IMAGENET1K_V2)"
)
# Prefixes a wrapped model puts before every key of its state dict, and the wrapper they come from.
WRAPPER_PREFIXES = {"module.": "DistributedDataParallel / DataParallel", "_orig_mod.": "torch.compile"}
DETECTOR_BACKBONE = "backbone.body."  # the BoTNet trunk inside our detectors (torchvision's BackboneWithFPN)
_DETECTOR_NAME = re.compile(r"^(?:maskrcnn|fasterrcnn)_(\w+)_fpn$")  # a registered detector -> its backbone


@dataclass
class Weights:
    """A source read into our key names."""

    source: str
    kind: str  # "botnet", "timm" or "torchvision"
    state_dict: dict[str, Tensor]
    path: Path | None = None
    model_name: str | None = None  # our registered model these weights were made for, when the source says
    config: dict | None = None  # our BoTNetConfig as a dict (our own files)
    pretrained_cfg: dict = field(default_factory=dict)  # preprocessing the source was trained with
    unmapped: list[str] = field(default_factory=list)  # timm keys without a pattern (reported as unexpected)
    class_names: list[str] | None = None  # what the classifier's outputs are, when the source says (our files)
    notes: list[str] = field(default_factory=list)  # what reading changed (a prefix removed, a detector's backbone)


def weights_file(source: str | Path) -> Path:
    """The weights file meant by a local ``source``: the file itself, or a run / checkpoint directory's weights."""
    path = Path(source).expanduser()
    if path.is_dir():
        for candidate in (path, path / "best", path / "last"):
            if (candidate / "model.safetensors").is_file():
                return candidate / "model.safetensors"
        raise WeightsSourceError(
            f"{path} is a directory without weights: expected model.safetensors in it or in its best/ or last/ "
            "(a botnet train run or checkpoint directory)"
        )
    if not path.is_file():
        raise WeightsSourceError(f"weights source {str(source)!r} does not exist; a source is {SOURCE_FORMS}")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise WeightsSourceError(f"{path}: unknown weights file type {path.suffix!r}; expected {WEIGHT_SUFFIXES}")
    return path


def _looks_torchvision(state: dict[str, Tensor]) -> bool:
    """A torchvision ResNet's keys: the 7x7 ``conv1``, bottlenecks with 3x3 ``conv2`` everywhere, no attention."""
    conv1 = state.get("conv1.weight")
    return (
        conv1 is not None
        and conv1.shape[-1] == 7
        and "layer4.0.conv2.weight" in state
        and not any(tag in k for k in state for tag in (".attn.", ".se.", ".gate.", "final_conv."))
    )


def _preprocess_from_metadata(meta: dict[str, str]) -> dict:
    """Our files: the pretrained_cfg written by save_weights, overridden by a training checkpoint's "preprocess"
    (what the weights were last trained and evaluated with)."""
    out: dict = {}
    try:
        if "pretrained_cfg" in meta:
            out.update(json.loads(meta["pretrained_cfg"]) or {})
        p = json.loads(meta.get("preprocess", "null")) or {}
        out.update({k: p[k] for k in ("mean", "std", "crop_pct", "interpolation") if k in p})
        if isinstance(p.get("img_size"), int):
            out["input_size"] = [3, p["img_size"], p["img_size"]]
    except (json.JSONDecodeError, TypeError, AttributeError):
        return {}
    return out


def _class_names(meta: dict[str, str]) -> list[str] | None:
    try:
        names = json.loads(meta.get("class_names", "null"))
    except json.JSONDecodeError:
        return None
    return names if isinstance(names, list) and all(isinstance(n, str) for n in names) else None


def _unwrap(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """``state`` without the prefix a wrapper put before every key, and what was removed."""
    notes = []
    while prefix := next((p for p in WRAPPER_PREFIXES if state and all(k.startswith(p) for k in state)), None):
        state = {k[len(prefix) :]: v for k, v in state.items()}
        notes.append(f"key prefix {prefix!r} removed from every key (a {WRAPPER_PREFIXES[prefix]} model's state dict)")
    return state, notes


def _detector_backbone(state: dict[str, Tensor], meta: dict[str, str], source: str, path: Path | None) -> Weights:
    """The backbone network of a ``botnet detect train`` checkpoint, as headless classification weights."""
    body = {k[len(DETECTOR_BACKBONE) :]: v for k, v in state.items() if k.startswith(DETECTOR_BACKBONE)}
    detector = meta.get("model_name", "")
    if not body:
        raise WeightsSourceError(f"{source}: a detection checkpoint without {DETECTOR_BACKBONE}* tensors")
    match = _DETECTOR_NAME.match(detector)
    note = (
        f"the backbone of the detector {detector or '(unnamed)'}: its {len(body)} {DETECTOR_BACKBONE}* tensors "
        f"(the FPN and the detection heads, {len(state) - len(body)} tensors, are left out)"
    )
    return Weights(source, "botnet", body, path, match.group(1) if match else None, notes=[note])


def classify(state: dict[str, Tensor], meta: dict[str, str], source: str, path: Path | None = None) -> Weights:
    """Detect the kind of a state dict and bring it into our key names."""
    state, notes = _unwrap(state)
    if meta.get("task") == "detection":
        return _detector_backbone(state, meta, source, path)
    if "botnet_config" in meta:
        try:
            config = json.loads(meta["botnet_config"])
        except json.JSONDecodeError:
            config = None
        name = meta.get("model_name") or meta.get("architecture") or None
        pre, names, fc = _preprocess_from_metadata(meta), _class_names(meta), state.get("fc.weight")
        if names is not None and (fc is None or len(names) != fc.shape[0]):
            names = None  # names of another classifier than the one stored: not these outputs' names
        return Weights(source, "botnet", state, path, name, config, pre, class_names=names, notes=notes)
    if is_timm_state_dict(state):
        converted, unmapped = convert_timm_state_dict(state)
        converted.update({k: state[k] for k in unmapped})  # kept under timm's names: reported as unexpected
        return Weights(source, "timm", converted, path, unmapped=unmapped, notes=notes)
    if _looks_torchvision(state):
        return Weights(source, "torchvision", state, path, notes=notes)
    return Weights(source, "botnet", state, path, notes=notes)


def read_weights(source: str | Path | dict[str, Tensor] | Weights) -> Weights:
    """Read any weights SOURCE (see the module docstring) into our key names.

    Raises:
        WeightsSourceError: the source does not exist, cannot be fetched, is damaged, would run code, or is not a
            state dict; the message names it and, for hub and torchvision sources, the cache path to fill by hand.
    """
    if isinstance(source, Weights):
        return source
    if isinstance(source, dict):
        if not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in source.items()):
            raise WeightsSourceError("an in-memory weights source must be a state dict of named tensors")
        return classify(source, {}, "(state dict)")
    if not isinstance(source, (str, Path)):
        raise TypeError(f"a weights source is a path, a string or a state dict, got {type(source).__name__}")
    text = str(source)
    if text.startswith("timm:"):
        spec = text[len("timm:") :]
        path = fetch_timm(spec)
        state, meta = read_file(path)
        if not is_timm_state_dict(state):
            raise WeightsSourceError(f"{text}: {path} does not hold a timm ByobNet state dict")
        weights = classify(state, meta, text, path)
        weights.model_name = spec.partition(".")[0]
        return weights
    if text.startswith("torchvision:"):
        spec = text[len("torchvision:") :]
        path, tv = fetch_torchvision(spec)
        state, _ = read_file(path)
        weights = Weights(text, "torchvision", state, path, f"resnet{spec[len('ResNet') :].split('_')[0]}")
        weights.pretrained_cfg = torchvision_preprocessing(tv)
        return weights
    path = weights_file(source)
    state, meta = read_file(path)
    return classify(state, meta, text, path)


def torchvision_preprocessing(weights) -> dict:
    """mean, std, crop_pct, interpolation and input size of torchvision weights, from their eval transforms."""
    t = weights.transforms()
    crop, resize = t.crop_size[0], t.resize_size[0]
    return dict(
        input_size=[3, crop, crop],
        mean=list(t.mean),
        std=list(t.std),
        crop_pct=round(crop / resize, 4),
        interpolation=t.interpolation.value,
    )
