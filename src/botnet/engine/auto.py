"""The rules every training command uses to turn what a dataset looks like into "auto" option values.

Each rule is a pure function of a few numbers (image count, image size, batch) that returns ``(value, reason)``; the
tasks' recipes (:mod:`botnet.classification.recipe`, :mod:`botnet.detection.recipe`) combine them with their own
rules and constants. The reasons are printed before training and written beside the values in ``config.yaml``.
Nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Auto = tuple[Any, str]  # (value, reason)

MIN_STEPS_PER_EPOCH = 10  # the batch is halved until an epoch has this many optimizer steps
WARMUP_MAX_SHARE = 0.2  # warm-up: one epoch, at most this share of the schedule


def count(n: float) -> str:
    """``1437`` -> ``"1,437"``; non-integers with 3 significant digits."""
    return f"{int(n):,}" if float(n).is_integer() else f"{n:.3g}"


def fit_image_size(side: float | None, *, stride: int, smallest: int, largest: int, what: str) -> Auto:
    """The training and evaluation size from the data's typical image side.

    Upsampling past the data's resolution adds compute and no detail, and a network needs its input to be a multiple
    of its total stride; so: the median side rounded up to a multiple of ``stride``, within
    ``[smallest, largest]`` (the model's floor, e.g. 2 strides so the last attention map is at least 2x2, and the
    model's own size, which downscales larger images).

    Args:
        side: the data's median image side in pixels (``None``: unknown, the model's size is used).
        what: how the side was measured, for the reason (e.g. "median shorter side").
    """
    if side is None:
        return largest, "the model's size (the image sizes could not be read)"
    rounded = max(stride, math.ceil(side / stride) * stride)
    size = min(max(rounded, smallest), largest)
    if rounded > largest:
        cost = (rounded / size) ** 2
        return size, (
            f"the model's size; the images ({what} {side:g} px) are scaled down {side / size:.3g}x: --image-size "
            f"{rounded} keeps their detail at about {cost:.3g}x the compute per image"
        )
    if rounded < smallest:
        return size, f"images of {what} {side:g} px, raised to the model's smallest useful size"
    return size, f"images of {what} {side:g} px, rounded up to a multiple of the network's stride {stride}"


def cap_batch(default: int, images: int, *, processes: int, accumulate: int, floor: int = 2) -> Auto:
    """``default`` images per process, halved (down to ``floor``) until an epoch of ``images`` has at least
    :data:`MIN_STEPS_PER_EPOCH` optimizer steps: a small dataset still gets a schedule, warm-up and enough updates."""
    batch = default
    while batch > floor and images // (batch * processes * accumulate) < MIN_STEPS_PER_EPOCH:
        batch //= 2
    if batch == default:
        return batch, f"{default} per process"
    return batch, (
        f"{default} halved to {batch} so that an epoch of {count(images)} images has at least "
        f"{MIN_STEPS_PER_EPOCH} optimizer steps"
    )


def steps_to_epochs(steps: float, steps_per_epoch: int) -> int:
    """Whole epochs (at least 1) closest to ``steps`` optimizer steps."""
    return max(1, round(steps / max(steps_per_epoch, 1)))


def sqrt_schedule(
    images: int, *, per_sqrt_image: float, global_batch: int, steps_per_epoch: int, unit: str = "images"
) -> Auto:
    """The schedule length: ``per_sqrt_image * sqrt(images)`` images seen, as whole epochs.

    More data needs more optimizer steps but fewer passes over each image; the square root sits between a fixed
    number of epochs (too short for a few hundred images) and a fixed number of steps (too many passes over them).
    ``images`` may count another unit of supervision (``unit``: detection counts objects).
    """
    seen = per_sqrt_image * math.sqrt(max(images, 1))
    steps_per_epoch = max(1, steps_per_epoch)
    epochs = steps_to_epochs(seen / global_batch, steps_per_epoch)
    of = "" if unit == "images" else f" {unit}"
    return epochs, (
        f"{count(epochs * steps_per_epoch)} optimizer steps ({count(round(per_sqrt_image))} x sqrt({count(images)}"
        f"{of}) images seen, at {count(global_batch)} per step)"
    )


def global_batch(cfg: Any, processes: int) -> int:
    """Images per optimizer step over all processes."""
    return cfg.batch_size * cfg.accumulate * processes


def steps_per_epoch(cfg: Any, images: int, processes: int) -> int:
    """Optimizer steps in an epoch of ``images`` (whole batches per process, then accumulation)."""
    return math.ceil(max(1, images // (cfg.batch_size * processes)) / cfg.accumulate)


def schedule_rules(
    images: int,
    processes: int,
    *,
    per_sqrt_image: float,
    warmup_length: float = 1.0,
    warmup_min_steps: int = 0,
    supervision: tuple[int, str] | None = None,
) -> list[tuple[str, Callable[[Any], Auto]]]:
    """The ``epochs`` (:func:`sqrt_schedule`) and ``warmup_epochs`` (:func:`warmup`) rules of a run on ``images``;
    ``supervision = (count, unit)`` sizes the schedule by another count than the images (detection: objects)."""
    units, unit = supervision or (images, "images")
    return [
        (
            "epochs",
            lambda c: sqrt_schedule(
                units,
                per_sqrt_image=per_sqrt_image,
                global_batch=global_batch(c, processes),
                steps_per_epoch=steps_per_epoch(c, images, processes),
                unit=unit,
            ),
        ),
        (
            "warmup_epochs",
            lambda c: warmup(
                c.epochs, steps_per_epoch(c, images, processes), length=warmup_length, min_steps=warmup_min_steps
            ),
        ),
    ]


def warmup(epochs: int, steps_per_epoch: int, *, length: float = 1.0, min_steps: int = 0) -> Auto:
    """Linear warm-up of ``length`` epochs and at least ``min_steps`` optimizer steps (the batch-norm statistics and
    the heads settle before the peak rate), at most :data:`WARMUP_MAX_SHARE` of the schedule."""
    steps_per_epoch = max(1, steps_per_epoch)
    wanted = max(length, min_steps / steps_per_epoch)
    if wanted <= WARMUP_MAX_SHARE * epochs:
        steps = count(round(wanted * steps_per_epoch))
        if wanted > length:
            return round(wanted, 4), f"{steps} steps ({wanted:.3g} epochs), the least a warm-up gets"
        return length, f"{'one epoch' if length == 1 else f'{length:g} epoch'} ({steps} steps)"
    return round(WARMUP_MAX_SHARE * epochs, 4), f"{WARMUP_MAX_SHARE:.0%} of the {epochs}-epoch schedule"


def apply_rules(cfg: Any, rules: list[tuple[str, Callable[[Any], Auto]]], reasons: dict[str, str]) -> Any:
    """Fill each option of ``cfg`` left at ``None`` from its rule, in order (a rule may read the values filled before
    it); record each chosen value's reason in ``reasons``. Options the user set are kept and not explained."""
    for name, rule in rules:
        if getattr(cfg, name) is None:
            value, reason = rule(cfg)
            cfg = cfg.replace(**{name: value})
            reasons[name] = reason
    return cfg


def shown(value: Any) -> str:
    """An option value as the recipe lines show it."""
    if isinstance(value, (tuple, list)):
        return " ".join(shown(v) for v in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def recipe_lines(cfg: Any, reasons: dict[str, str]) -> list[str]:
    """``["lr 0.2: batch 64, ...", ...]`` for the options a recipe chose."""
    return [f"  {name} {shown(getattr(cfg, name))}: {reason}" for name, reason in reasons.items()]
