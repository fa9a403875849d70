"""Weights files: the one reader of any weights file, and our models' safetensors files written and loaded.

Nothing here unpickles arbitrary objects: ``.safetensors`` files are read as such, everything else with
``torch.load(weights_only=True)``. A file that cannot be read is a :class:`WeightsSourceError` naming it.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import Tensor, nn

from ...files import atomic_output
from ..botnet import BoTNet


class WeightsSourceError(ValueError):
    """A weights source that cannot be read: names the source, what is wrong, and what to do (raised by every reader
    of weights: files, hub and torchvision sources, :func:`~botnet.models.weights.read_weights`)."""


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    return path


def _unreadable_safetensors(path: Path, err: Exception) -> WeightsSourceError:
    return WeightsSourceError(f"{path} is truncated or not a readable safetensors file ({err})")


def read_file(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and (safetensors) metadata of a weights file, never unpickling anything but tensors.

    A ``.pth`` / ``.bin`` / ``.pt`` file holding ``{"state_dict": ...}`` or ``{"model": ...}`` gives that state dict.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        WeightsSourceError: the file is damaged, would run code or build other objects when unpickled, or holds no
            state dict of tensors.
    """
    path = _existing_file(path)
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118
        except (SafetensorError, OSError) as err:
            raise _unreadable_safetensors(path, err) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).splitlines()[0]
        raise WeightsSourceError(
            f"{path} was refused: unpickling it would run code or build objects other than tensors ({first}). "
            "Only plain state dicts are read (torch.load weights_only=True)"
        ) from None
    except Exception as err:  # noqa: BLE001 - a damaged zip, an unknown format: any failure to read
        raise WeightsSourceError(
            f"{path} is truncated or not a PyTorch weights file ({type(err).__name__}: {err})"
        ) from None
    if isinstance(obj, dict) and not all(isinstance(v, Tensor) for v in obj.values()):
        for key in ("state_dict", "model"):  # common wrappers of a state dict
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsSourceError(f"{path} does not hold a state dict of tensors")
    return obj, {}


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata dict of a safetensors file (empty if it has none), without reading its tensors."""
    path = _existing_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError) as err:
        raise _unreadable_safetensors(path, err) from None


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


def load_weights(model: nn.Module, path: str | Path, *, strict: bool = True) -> nn.modules.module._IncompatibleKeys:
    """Load a weights file (our safetensors) into ``model`` as it is.

    Position tables saved for another reference size are resized with the layer's policy. A shape mismatch
    elsewhere (another depth, width or class count) is a ValueError naming the tensors.
    """
    state, _ = read_file(path)
    try:
        return model.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        raise ValueError(f"weights in {path} do not fit this model: {err}") from None
