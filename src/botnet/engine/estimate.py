"""A run's time, estimated before its first epoch by timing one training step on a copy of the model.

The copy, its optimizer and the random state are thrown away afterwards, so the run itself (weights, batch-norm
statistics, random draws) is exactly what it would be without the estimate; exact resume is unaffected. The batch
is the first of epoch 0, read through the run's own loader (datasets are functions of (seed, epoch, index), so
reading it changes nothing either).
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..models.weights import save_weights
from . import checkpoint as ckpt
from .auto import WARMUP_MAX_SHARE
from .distributed import broadcast_object
from .optim import build_optimizer
from .reporting import log

EVAL_STEP_SHARE = 1 / 3  # a validation batch (forward only) against a training step (forward and backward)
# A validation of at most this many batches a process is timed whole on the copy (twice): its fixed costs (the
# loader, the metric, the figures) and a mask head's pasting (3x the formula on 15 batches of 320 px photos) are
# missed by a third of a step per batch. A longer one is estimated from the step.
TIMED_VALIDATION_BATCHES = 16
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


class Timing(NamedTuple):
    """What :func:`time_one_step` measured, in seconds."""

    step: float  # one optimizer step
    load: float  # loading its batch
    epoch_end: float  # writing an epoch's checkpoint (weights and optimizer state, summed and flushed)
    validation: float | None = None  # one validation, where it is short enough to time (TIMED_VALIDATION_BATCHES)


def time_checkpoint(trainer: Any, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> float:
    """Seconds to write ``model`` and ``optimizer`` as a run writes its ``last`` checkpoint each epoch, into a
    scratch folder of the run directory (removed); 0 on processes other than the main one, which write none, and
    where the disk refuses the write."""
    if not trainer.info.is_main:
        return 0.0

    def write(tmp: Path) -> None:
        save_weights(model, tmp / ckpt.MODEL_FILE)
        ckpt.save_training_state(tmp / ckpt.STATE_FILE, {"optimizer": optimizer.state_dict()})

    try:
        with tempfile.TemporaryDirectory(prefix=".time.", dir=trainer.out) as scratch:
            start = time.perf_counter()
            ckpt.write_checkpoint_dir(Path(scratch) / "last", write)
            return time.perf_counter() - start
    except OSError:  # a full or read-only disk: the run's own first checkpoint says so, and what is safe
        return 0.0


def validation_batches(trainer: Any) -> int:
    """Batches of one validation on a process (0 with no validation set)."""
    val_images = len(trainer.val_ds) if trainer.val_ds is not None else 0  # none with --val-fraction 0
    return math.ceil(val_images / trainer.info.world_size / trainer.cfg.batch_size)


def time_validation(trainer: Any, model: torch.nn.Module) -> float | None:
    """Seconds of one validation of ``model`` through the task's own :meth:`validate` (the second of two), when
    it has at most :data:`TIMED_VALIDATION_BATCHES` batches (else ``None``); its progress lines are not shown."""
    if not 0 < validation_batches(trainer) <= TIMED_VALIDATION_BATCHES:
        return None
    kept, times = trainer.model, []
    try:
        trainer.model = model
        with contextlib.redirect_stderr(io.StringIO()):
            for _ in range(2):  # the first also pays what only the run's first validation does (imports, caches)
                start = time.perf_counter()
                trainer.validate()
                times.append(time.perf_counter() - start)
    finally:
        trainer.model = kept
    return times[-1]


def time_one_step(trainer: Any, *, epoch: bool = False) -> Timing | None:
    """One optimizer step and its batch's loading, timed on a copy of ``trainer.model``; with ``epoch`` (a
    ``--time`` plan) also an epoch's checkpoint and a short validation. ``None`` when the first batch is empty
    (every image unreadable)."""
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
            epoch_end = time_checkpoint(trainer, model, optimizer) if epoch else 0.0
            validation = time_validation(trainer, model) if epoch else None
        finally:
            trainer.net = net
    return Timing(min(times[1:]), load, epoch_end, validation)


def against_bound(seconds: float, minutes: float) -> str:
    """``"within --time 10 min"``, or ``"over --time 1 min by 28 s"``: a run's wall time against its bound."""
    over = seconds - 60 * minutes
    return f"over --time {minutes:g} min by {duration(over)}" if over > 0 else f"within --time {minutes:g} min"


@dataclass(frozen=True)
class StepCost:
    """What one optimizer step, one validation and the end of an epoch cost, in seconds, from
    :func:`time_one_step`."""

    step: float  # an optimizer step, its batches' loading included when the main process loads them
    validation: float  # one validation pass
    epoch_end: float = 0.0  # the checkpoint written after every epoch

    def run_seconds(self, *, steps: int, validations: int, epochs: int = 0) -> float:
        return steps * self.step + validations * self.validation + epochs * self.epoch_end


def step_cost(trainer: Any, timed: Timing) -> StepCost:
    """The :class:`StepCost` of ``trainer``'s run from :func:`time_one_step`'s timing."""
    cfg = trainer.cfg
    step, load, epoch_end, validation = timed
    loading = load if cfg.workers == 0 else 0.0
    if validation is None:
        validation = validation_batches(trainer) * (step * EVAL_STEP_SHARE + loading)
    return StepCost(cfg.accumulate * (step + loading), validation, epoch_end)


def validations(first_epoch: int, epochs: int, eval_interval: int) -> int:
    """Validations of epochs ``first_epoch + 1 .. epochs``: every ``eval_interval``-th and the last."""
    return sum(1 for e in range(first_epoch, epochs) if e + 1 == epochs or (e + 1) % eval_interval == 0)


def epochs_within(seconds: float, cost: StepCost, *, steps_per_epoch: int, eval_interval: int, most: int) -> int:
    """The most epochs (up to ``most``, at least 0) whose steps, validations and checkpoints fit in ``seconds``."""
    fit = 0
    for epochs in range(1, most + 1):
        evals = validations(0, epochs, eval_interval)
        total = cost.run_seconds(steps=epochs * steps_per_epoch, validations=evals, epochs=epochs)
        if total > seconds:
            break
        fit = epochs
    return fit


def estimate_line(trainer: Any, timed: Timing | None) -> tuple[str, float] | None:
    """One log line with the time the rest of the run should take and that time in seconds, or ``None`` when it
    cannot be timed (``timed``: :func:`time_one_step`'s result)."""
    if timed is None:
        return None
    cfg, c = trainer.cfg, trainer.c
    cost = step_cost(trainer, timed)
    steps = (cfg.epochs - c.epoch) * trainer.steps_per_epoch - (c.global_step % trainer.steps_per_epoch)
    evals = validations(c.epoch, cfg.epochs, cfg.eval_interval) if trainer.val_ds is not None else 0
    total = cost.run_seconds(steps=steps, validations=evals, epochs=cfg.epochs - c.epoch)
    line = (
        f"time estimate: about {duration(total)} for {steps:,} optimizer steps ({cost.step:.3g} s each, timed on one "
        f"batch) and {evals} validation(s)"
    )
    return line, total


# --time plans the schedule to this share of the bound: a step timed on one batch is the fastest of two, and the
# machine's speed varies by about 10% between runs.
TIME_MARGIN = 0.9


def epochs_to_fit(trainer: Any, timed: Timing | None, elapsed: float) -> int | None:
    """The most epochs of ``trainer``'s run (up to its ``epochs``) that end within its ``--time`` minutes,
    ``elapsed`` seconds spent already, the same on every process; ``None`` when the step could not be timed."""
    if timed is None:
        return None
    cfg = trainer.cfg
    kw = dict(steps_per_epoch=trainer.steps_per_epoch, eval_interval=cfg.eval_interval, most=cfg.epochs)
    fit = epochs_within(TIME_MARGIN * 60 * cfg.time - elapsed, step_cost(trainer, timed), **kw)
    return broadcast_object(fit, trainer.info)  # every process plans the same run


def fit_time(trainer: Any, timed: Timing | None, elapsed: float) -> tuple[Any, dict[str, str]]:
    """``(config, auto reasons)`` of ``trainer``'s run with an auto-length schedule shortened to end within its
    ``--time`` minutes (``elapsed`` seconds spent already), from a timed training step (``timed``, the same on every
    process); a bound too short for one epoch is a ValueError naming the minimum. Epochs the user gave stand."""
    cfg, reasons, info = trainer.cfg, trainer.auto_reasons, trainer.info
    if timed is None:
        log("--time not applied: the first batch has no readable image to time", enabled=info.is_main)
        return cfg, reasons
    cost = step_cost(trainer, timed)
    fit = epochs_to_fit(trainer, timed, elapsed)
    one = broadcast_object(cost.run_seconds(steps=trainer.steps_per_epoch, validations=1, epochs=1) + elapsed, info)
    if fit == 0:
        raise ValueError(
            f"--time {cfg.time:g} is too short for one epoch of this run: one epoch of {trainer.steps_per_epoch:,} "
            f"steps ({cost.step:.3g} s each, timed) and its validation take about {duration(one)}; give --time "
            f"{math.ceil(one / 60)} or more, or lower --image-size"
        )
    if fit >= cfg.epochs or "epochs" not in reasons:
        return cfg, reasons  # it fits, or the user's --epochs stands (the estimate says how long it takes)
    changes: dict[str, Any] = {"epochs": fit}
    if "warmup_epochs" in reasons:  # the warm-up rule's cap, a share of the schedule, shrinks with it
        changes["warmup_epochs"] = round(min(cfg.warmup_epochs, WARMUP_MAX_SHARE * fit), 4)
    why = f"{fit} of the rule's {cfg.epochs} epochs, to end within --time {cfg.time:g} min ({cost.step:.3g} s a step, "
    log(f"--time {cfg.time:g} min: {fit} epochs instead of {cfg.epochs}", enabled=info.is_main)
    return cfg.replace(**changes), {**reasons, "epochs": f"{why}timed); the rule: {reasons['epochs']}"}
