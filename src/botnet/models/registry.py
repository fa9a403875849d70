"""The model registry: every buildable model by name, tagged with its task, in timm's and torchvision's style.

A classification network is registered as its :class:`BoTNetConfig` and built by :func:`botnet.models.create_model`;
a model of another task as its builder function (the detectors, by :mod:`botnet.detection.models`). The registry
imports no torch: ``botnet list`` answers at once.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import BoTNetConfig

TASKS = ("classification", "detection")


@dataclass(frozen=True)
class ModelEntry:
    """One registered model."""

    name: str
    task: str  # one of TASKS
    description: str  # one line
    cfg: BoTNetConfig | None = None  # a classification network's config
    builder: Callable[..., Any] | None = None  # a model of another task: the function that builds it


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    cfg: BoTNetConfig | None = None,
    description: str = "",
    *,
    task: str = "classification",
    builder: Callable[..., Any] | None = None,
) -> None:
    """Register a model under ``name`` (lowercase id) for ``task``: a classification network by its ``cfg``, a model
    of another task by its ``builder``. Re-registering a name is an error."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    classification = task == "classification"
    if classification and (cfg is None or builder is not None):
        raise TypeError(f"a classification model is registered by its BoTNetConfig (cfg=...), not a builder: {name!r}")
    if not classification and (builder is None or cfg is not None):
        raise TypeError(f"a {task} model is registered by its builder function (builder=...): {name!r}")
    _MODELS[name] = ModelEntry(name, task, description, cfg, builder)


def list_models(pattern: str = "*", task: str | None = "classification") -> list[str]:
    """Registered names of ``task`` (of every task with ``task=None``) matching a shell-style ``pattern`` (e.g.
    ``"botnet_t?"``), sorted. Detectors are registered when :mod:`botnet.detection` builds its models."""
    return sorted(
        n for n, entry in _MODELS.items() if (task is None or entry.task == task) and fnmatch.fnmatch(n, pattern)
    )


def model_entry(name: str, task: str = "classification") -> ModelEntry:
    """The registration of ``name`` among the models of ``task``; an unknown name is a ValueError listing close and
    valid names."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    entry = _MODELS.get(name)
    if entry is None or entry.task != task:
        raise unknown_name("model" if task == "classification" else f"{task} model", name, list_models(task=task))
    return entry


def get_config(name: str) -> BoTNetConfig:
    """The preset config of the classification network ``name``; an unknown name is a ValueError listing close and
    valid names."""
    return model_entry(name).cfg


def describe_model(name: str) -> str:
    """One-line description of a registered classification network."""
    return model_entry(name).description


def unknown_name(kind: str, name: str, names: list[str]) -> ValueError:
    """The error for a name that is not registered: the closest registered ones, then all of them."""
    close = difflib.get_close_matches(name.lower(), names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ValueError(f"unknown {kind} {name!r}.{hint} Available: {', '.join(names)}")
