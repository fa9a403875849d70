"""Detection transforms (``torchvision.transforms.v2`` on image, boxes and masks together) and batch collation.

Training uses the multi-scale jitter of the paper's COCO recipe ([0.8, 1.25] by default at 1024 x 1024; wider ranges
up to [0.1, 2.0] for long schedules): flip, resize the longer side to ``size`` times a random scale, crop or pad to
``size x size``, drop the boxes the crop cut away. Evaluation only converts the image to float: torchvision's
``GeneralizedRCNNTransform`` inside the model resizes, and its predictions come back in original-image coordinates.
Both resizes keep each side at least 1 px, so an image of extreme aspect ratio (5000 x 20) is resized, not a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

from .folder import BadSample

_MAX_SCALE = 4.0
_MIN_SIZE = 32
_PER_INSTANCE_KEYS = ("labels", "area", "iscrowd")  # target fields removed together with their box


def _image_to_float() -> v2.ToDtype:
    """uint8 0..255 image -> float32 0..1; boxes, masks and labels untouched."""
    return v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True)


def _per_instance_fields(sample: Any) -> tuple[Tensor, ...]:
    """The ``labels``, ``area`` and ``iscrowd`` of an ``(image, target)`` sample, for ``SanitizeBoundingBoxes``."""
    target = sample[1]
    return tuple(target[key] for key in _PER_INSTANCE_KEYS if key in target)


class FlooredScaleJitter(v2.ScaleJitter):
    """torchvision's ``ScaleJitter`` with each side at least 1 px: scaling a 5000 x 20 image so its long side fits
    ``size`` would round the short side down to 0 px, which no resize accepts."""

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = super().make_params(flat_inputs)["size"]
        return {"size": (max(1, height), max(1, width))}


class RandomRot90(v2.Transform):
    """Turn the image, its boxes and masks by a random multiple of 90 degrees (each of 0, 90, 180, 270 equally
    likely), exactly: pixels are moved, never interpolated, and a turned box is the same box."""

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"k": int(torch.randint(4, ()))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        k = params["k"]
        if k == 0:
            return inpt
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            if inpt.format != tv_tensors.BoundingBoxFormat.XYXY:
                raise ValueError(f"RandomRot90 takes XYXY boxes, got {inpt.format}")
            height, width = inpt.canvas_size
            x0, y0, x1, y1 = inpt.as_subclass(Tensor).unbind(-1)
            for _ in range(k):  # a quarter turn counter-clockwise (torch.rot90): (x, y) -> (y, width - x)
                x0, y0, x1, y1 = y0, width - x1, y1, width - x0
                height, width = width, height
            return tv_tensors.wrap(torch.stack([x0, y0, x1, y1], -1), like=inpt, canvas_size=(height, width))
        if isinstance(inpt, (tv_tensors.Image, tv_tensors.Mask)):
            return tv_tensors.wrap(torch.rot90(inpt.as_subclass(Tensor), k, dims=(-2, -1)), like=inpt)
        return inpt


def build_detection_train_transform(
    size: int,
    *,
    scale_range: tuple[float, float] = (0.8, 1.25),
    hflip: float = 0.5,
    vflip: float = 0.0,
    rot90: bool = False,
    fixed_size: bool = True,
) -> v2.Compose:
    """Multi-scale jitter for ``(image, target)`` samples of :class:`~botnet.data.coco.CocoDetection`.

    Args:
        size: target size; the longer image side is resized to ``size * s`` with ``s`` drawn from ``scale_range``.
        scale_range: ``(min, max)`` of the jitter scale, ``0 < min <= max <= 4``.
        hflip: probability of a horizontal flip; 0 leaves it out.
        vflip: probability of a vertical flip; 0 leaves it out.
        rot90: turn by a random multiple of 90 degrees (:class:`RandomRot90`).
        fixed_size: crop (or pad with zeros, masks too) to ``size x size`` after the jitter, so every image in a
            batch has the same size. Without it the jittered image keeps its aspect ratio.

    Returns:
        A transform giving a float32 0..1 image and the target with boxes, masks, labels, area and iscrowd of the
        boxes cropped away (or smaller than 1 px) removed. ``area`` stays COCO's area in the original image.
    """
    if not isinstance(size, int) or size < _MIN_SIZE:
        raise ValueError(f"size must be an integer >= {_MIN_SIZE}, got {size!r}")
    if len(scale_range) != 2 or not 0.0 < scale_range[0] <= scale_range[1] <= _MAX_SCALE:
        raise ValueError(
            f"scale_range must be (min, max) with 0 < min <= max <= {_MAX_SCALE:g}, e.g. (0.8, 1.25) or (0.1, 2.0); "
            f"got {tuple(scale_range)}"
        )
    for name, p in (("hflip", hflip), ("vflip", vflip)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} is a probability in [0, 1], got {p}")

    steps: list[v2.Transform] = []
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(hflip))
    if vflip > 0:
        steps.append(v2.RandomVerticalFlip(vflip))
    if rot90:
        steps.append(RandomRot90())
    steps.append(FlooredScaleJitter(target_size=(size, size), scale_range=tuple(scale_range), antialias=True))
    if fixed_size:
        steps.append(v2.RandomCrop(size, pad_if_needed=True, fill=0))  # fill 0 for the image and the masks
    steps.append(v2.SanitizeBoundingBoxes(min_size=1, labels_getter=_per_instance_fields))
    steps.append(_image_to_float())
    return v2.Compose(steps)


def build_detection_eval_transform() -> v2.Compose:
    """uint8 image -> float32 0..1, target unchanged; the detection model resizes the image itself."""
    return v2.Compose([_image_to_float()])


def collate_detection(
    batch: Sequence[tuple[Any, dict[str, Any]] | BadSample],
) -> tuple[list[Any], list[dict[str, Any]], list[BadSample]]:
    """Collate detection samples into the lists torchvision's detection models take, dropping :class:`BadSample`.

    Returns:
        ``(images, targets, bad)``: the good samples' images and targets, and the dropped samples.
    """
    bad = [item for item in batch if isinstance(item, BadSample)]
    good = [item for item in batch if not isinstance(item, BadSample)]
    return [image for image, _ in good], [target for _, target in good], bad
