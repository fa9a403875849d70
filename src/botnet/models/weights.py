"""Weights in and out: safetensors files of our models, and torchvision ResNet state dicts.

Nothing here unpickles arbitrary objects: our weights are safetensors, and a torchvision ``.pth`` is read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import Tensor, nn

from ..files import atomic_output
from .botnet import BoTNet

# Parameters with no counterpart in a torchvision ResNet.
_ATTENTION_ONLY = (".attn.", ".se.", ".non_local.")


def save_weights(model: nn.Module, path: str | Path, *, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model``'s state dict as safetensors, atomically (temporary file + rename).

    The config and architecture name of a :class:`BoTNet` are stored in the file's metadata.
    """
    path = Path(path)
    meta = dict(metadata or {})
    if isinstance(model, BoTNet):
        meta.setdefault("botnet_config", json.dumps(model.cfg.to_dict()))
        meta.setdefault("architecture", str(model.pretrained_cfg.get("architecture", "")))
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    # Serialised in memory and written by Python, so a full or read-only disk is an OSError with its errno.
    data = save(tensors, metadata=meta)
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata dict of a safetensors file (empty if it has none)."""
    path = _existing_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from None


def load_weights(model: nn.Module, path: str | Path, *, strict: bool = True) -> nn.modules.module._IncompatibleKeys:
    """Load a safetensors file into ``model``.

    Position tables saved for another reference size are resized with the layer's policy. A shape mismatch
    elsewhere (another depth, width or class count) is a ValueError naming the tensors.
    """
    state = _load_safetensors(path)
    try:
        return model.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        raise ValueError(f"weights in {path} do not fit this model: {err}") from None


def _load_safetensors(path: str | Path) -> dict[str, Tensor]:
    path = _existing_file(path)
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from None


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    return path


@dataclass
class TransferReport:
    """What :func:`load_torchvision_weights` did."""

    loaded: list[str] = field(default_factory=list)
    not_in_source: list[str] = field(default_factory=list)  # ours, attention/SE/non-local only
    unused: list[str] = field(default_factory=list)  # torchvision's, e.g. the 3x3 convs BoT blocks replace


def load_torchvision_weights(model: BoTNet, source: str | Path | dict[str, Tensor]) -> TransferReport:
    """Copy a torchvision ResNet state dict into every non-attention weight of a matching-depth model.

    Args:
        model: a :class:`BoTNet` (any ResNet or BoTNet preset of the same depth as the source).
        source: a state dict, or a path to a ``.pth`` (read with ``weights_only=True``) or ``.safetensors`` file.

    Returns:
        A report of the loaded keys, our keys absent from the source (attention, SE, non-local) and unused
        source keys (3x3 convs replaced by attention; ``fc`` when the class count differs).

    Raises:
        ValueError: the source lacks a non-attention weight of ours or a shared key has another shape
            (typically another depth), or nothing matched at all.
    """
    state = read_state_dict(source)
    own = model.state_dict()
    report = TransferReport()
    mismatched, missing = [], []
    for key, tensor in own.items():
        if key not in state:
            (report.not_in_source if any(tag in f".{key}" for tag in _ATTENTION_ONLY) else missing).append(key)
        elif state[key].shape != tensor.shape:
            if key.startswith("fc."):
                report.unused.append(key)  # another class count: keep our freshly initialised classifier
            else:
                mismatched.append(f"{key}: ours {tuple(tensor.shape)}, source {tuple(state[key].shape)}")
        else:
            report.loaded.append(key)
    if mismatched or missing:
        details = "; ".join(mismatched[:3] + [f"{k} missing from the source" for k in missing[:3]])
        raise ValueError(
            f"the torchvision weights do not match this {type(model).__name__} "
            f"({len(mismatched)} shape mismatches, {len(missing)} missing): {details}. "
            "Use the torchvision ResNet of the same depth."
        )
    report.unused += [k for k in state if k not in own]
    with torch.no_grad():
        for key in report.loaded:
            own[key].copy_(state[key])
    return report


def read_state_dict(source: str | Path | dict[str, Tensor]) -> dict[str, Tensor]:
    """A state dict given as a dict, a .safetensors file, or a .pth file read with ``weights_only=True`` (a file
    that would run code when unpickled is refused)."""
    if isinstance(source, dict):
        return source
    path = _existing_file(source)
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure means "not a plain state dict"
        raise ValueError(f"{path} is not a plain state dict readable with weights_only=True: {err}") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return state
