"""Weights in and out: safetensors files of our models, and torchvision ResNet state dicts.

Nothing here unpickles arbitrary objects: our weights are safetensors, and a torchvision ``.pth`` is read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import Tensor, nn

from ..files import atomic_output
from .botnet import BoTNet

# Parameters with no counterpart in a torchvision ResNet (kept for importers; see ``transfer.ATTENTION_ONLY``).


def save_weights(model: nn.Module, path: str | Path, *, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model``'s state dict as safetensors, atomically (temporary file + rename).

    The config, architecture name and ``pretrained_cfg`` (preprocessing, weights source) of a :class:`BoTNet` are
    stored in the file's metadata.
    """
    path = Path(path)
    meta = dict(metadata or {})
    if isinstance(model, BoTNet):
        meta.setdefault("botnet_config", json.dumps(model.cfg.to_dict()))
        meta.setdefault("architecture", str(model.pretrained_cfg.get("architecture", "")))
        meta.setdefault("pretrained_cfg", json.dumps(model.pretrained_cfg))  # preprocessing travels with weights
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
