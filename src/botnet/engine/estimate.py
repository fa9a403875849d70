"""A run's time, estimated before its first epoch by timing one training step on a copy of the model.

The copy, its optimizer and the random state are thrown away afterwards, so the run itself (weights, batch-norm
statistics, random draws) is exactly what it would be without the estimate; exact resume is unaffected. The batch
is the first of epoch 0, read through the run's own loader (datasets are functions of (seed, epoch, index), so
reading it changes nothing either).
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch

from .optim import build_optimizer

EVAL_STEP_SHARE = 1 / 3  # a validation batch (forward only) against a training step (forward and backward)
TIMED_STEPS = 3  # the first warms up; the fastest of the others is the estimate


def duration(seconds: float) -> str:
    """``95`` -> ``"1 min 35 s"``, ``4000`` -> ``"1 h 7 min"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_one_step(trainer: Any) -> tuple[float, float] | None:
    """``(seconds of one optimizer step, seconds to load its batch)`` on a copy of ``trainer.model``; ``None`` when
    the first batch is empty (every image unreadable)."""
    device = trainer.info.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # the loader draws a seed too
        t0 = time.perf_counter()
        images, targets, _ = next(iter(trainer.train_loader(0, 0)))
        load = time.perf_counter() - t0
        if len(targets) == 0:
            return None
        net, model = trainer.net, copy.deepcopy(trainer.model)
        model.train()
        optimizer = build_optimizer(model, trainer.cfg, trainer.cfg.lr, None)
        times = []
        try:
            trainer.net = model
            for _ in range(TIMED_STEPS):  # the first step also warms up the allocator and kernels
                _sync(device)
                start = time.perf_counter()
                trainer.compute_loss(images, targets).backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                _sync(device)
                times.append(time.perf_counter() - start)
        finally:
            trainer.net = net
    return min(times[1:]), load


def estimate_line(trainer: Any) -> str | None:
    """One log line with the time the rest of the run should take, or ``None`` when it cannot be timed."""
    cfg, c = trainer.cfg, trainer.c
    timed = time_one_step(trainer)
    if timed is None:
        return None
    step, load = timed
    per_step = step * cfg.accumulate + (load * cfg.accumulate if cfg.workers == 0 else 0.0)
    steps = (cfg.epochs - c.epoch) * trainer.steps_per_epoch - (c.global_step % trainer.steps_per_epoch)
    epochs_left = range(c.epoch, cfg.epochs)
    evals = sum(1 for e in epochs_left if e + 1 == cfg.epochs or (e + 1) % cfg.eval_interval == 0)
    val_batches = math.ceil(len(trainer.val_ds) / trainer.info.world_size / cfg.batch_size)
    val_time = evals * val_batches * (step * EVAL_STEP_SHARE + (load if cfg.workers == 0 else 0.0))
    total = steps * per_step + val_time
    return (
        f"time estimate: about {duration(total)} for {steps:,} optimizer steps ({per_step:.3g} s each, timed on one "
        f"batch) and {evals} validation(s)"
    )
