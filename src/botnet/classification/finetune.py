"""Fine-tuning runs of ``botnet train --pretrained SOURCE``: the weights read and loaded before anything is written,
a new head for the data's classes, frozen stages, and the head / backbone learning rates."""

from __future__ import annotations

import torch
from torch import nn

from ..engine.reporting import log
from ..models.factory import create_model
from ..models.finetune import finetune_param_groups, freeze
from ..models.weights import TransferReport, Weights, load_pretrained, read_weights
from .config import TrainConfig


def read_source(cfg: TrainConfig, *, verbose: bool = True) -> Weights:
    """The ``--pretrained`` weights, read (and fetched into their cache if need be); WeightsSourceError if not."""
    log(f"reading the weights {cfg.pretrained}", enabled=verbose)
    return read_weights(cfg.pretrained)


def source_classes(weights: Weights) -> tuple[int, list[str] | None]:
    """The class count of the source's classifier (0: headless) and the names of its classes, when the source has
    them (a ``botnet train`` run or checkpoint, a file written by ``botnet convert``)."""
    fc = weights.state_dict.get("fc.weight")
    return (int(fc.shape[0]) if fc is not None else 0), weights.class_names


def load_source(cfg: TrainConfig, weights: Weights) -> tuple[nn.Module, TransferReport]:
    """``cfg.model`` with the source's classifier, the weights loaded into it (errors name keys and models)."""
    torch.manual_seed(cfg.seed)  # what the source lacks (e.g. attention for a torchvision ResNet) starts seeded
    n, _ = source_classes(weights)
    model = create_model(cfg.model, num_classes=n, img_size=cfg.image_size, **cfg.model_args)
    report = load_pretrained(model, weights, strict=cfg.pretrained_strict)
    return model, report


def _few(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (f", ... ({len(names) - shown} more)" if len(names) > shown else "")


def fit_head(model: nn.Module, report: TransferReport, weights: Weights, classes: list[str]) -> str:
    """Give ``model`` a new classifier for ``classes`` unless the source's is for the same classes (the same names in
    the same order, or, for a source without names, as many); say which."""
    n, names = source_classes(weights)
    classes = list(classes)
    if n == len(classes) and names == classes:
        return f"head kept: the weights' classifier is for the data's {n} classes ({_few(classes)})"
    if n == len(classes) and names is None:
        return (
            f"head kept by count alone: the weights carry no class names; their classifier's {n} outputs are taken "
            f"as the data's classes in order ({_few(classes)}). To have them checked, convert the weights with their "
            "names: botnet convert SOURCE OUT.safetensors --class-names FILE"
        )
    model.reset_classifier(len(classes))
    fresh = [k for k in model.state_dict() if k.startswith("fc.")]
    report.loaded = [k for k in report.loaded if not k.startswith("fc.")]
    report.reinitialised = fresh
    if n != len(classes):
        report.reinitialised_why = "another class count" if n else "no classifier in the weights"
        why = f"the weights have {n} classes" if n else "the weights have no classifier"
    else:
        report.reinitialised_why = why = f"other class names: the weights' {_few(names)}; the data's {_few(classes)}"
    return f"head reinitialised for the data's {len(classes)} classes ({why})"


def apply_freeze(model: nn.Module, cfg: TrainConfig, *, verbose: bool = True) -> None:
    if cfg.freeze_stages is None:
        return
    names = freeze(model, cfg.freeze_stages)
    stages = f"the stem and the first {cfg.freeze_stages} stages" if cfg.freeze_stages else "the stem"
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    log(f"frozen: {stages} ({len(names)} tensors, {frozen} parameters)", enabled=verbose)


def optimizer_groups(model: nn.Module, cfg: TrainConfig) -> list[dict] | None:
    """The head at ``lr``, the backbone at ``lr * backbone_lr_scale``, frozen parameters left out; no decay on norm
    weights and biases. ``None`` for a run from random weights at one rate (the default groups)."""
    if not cfg.pretrained and cfg.backbone_lr_scale == 1.0:
        return None
    groups = finetune_param_groups(
        model, lr=cfg.lr, backbone_lr_scale=cfg.backbone_lr_scale, weight_decay=cfg.weight_decay
    )
    return sorted(groups, key=lambda g: not g["name"].startswith("head"))  # the logged lr is the head's
