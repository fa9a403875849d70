"""Optimizer and learning-rate schedule: SGD (Nesterov) or AdamW, linear warm-up then cosine, per step."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights with decay, and norm weights / biases (every tensor of rank <= 1) without."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: Any, lr: float, groups: list[dict] | None = None) -> torch.optim.Optimizer:
    """SGD or AdamW over ``groups`` (default: :func:`param_groups`); a group's own ``lr`` overrides ``lr``."""
    groups = groups if groups is not None else param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=lr, betas=cfg.betas)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Any, steps_per_epoch: int) -> LRScheduler:
    """Linear warm-up from ``warmup_start * lr`` over ``warmup_epochs``, then cosine to ``min_lr``; stepped per step."""
    total = cfg.epochs * steps_per_epoch
    warmup = min(round(cfg.warmup_epochs * steps_per_epoch), total - 1)
    cosine = CosineAnnealingLR(optimizer, T_max=max(total - warmup, 1), eta_min=cfg.min_lr)
    if warmup <= 0:
        return cosine
    linear = LinearLR(optimizer, start_factor=max(cfg.warmup_start, 1e-8), end_factor=1.0, total_iters=warmup)
    return SequentialLR(optimizer, [linear, cosine], milestones=[warmup])


def replan_scheduler(optimizer: torch.optim.Optimizer, cfg: Any, steps_per_epoch: int, step: int) -> LRScheduler:
    """The schedule of a run extended to ``cfg.epochs``, at optimizer step ``step``: the one a run planned for
    ``cfg.epochs`` from its start has (the same warm-up, the cosine stretched over the new length), stepped to
    ``step``. The rate moves to that plan's value at ``step`` (up, after a finished run's end at ``min_lr``: a warm
    restart) and falls along it to ``min_lr`` at the new end."""
    for group in optimizer.param_groups:  # schedulers start from the rates they were built with, not the current ones
        group["lr"] = group["initial_lr"]
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    with warnings.catch_warnings():  # stepped to catch up, without optimizer steps in between: expected here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(step):
            scheduler.step()
    return scheduler
