"""Classify image files with a checkpoint of ``botnet train``: top-k classes and probabilities per image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..data.folder import DEFAULT_MAX_PIXELS, BadSample
from ..data.image_files import TRAINING_EXTENSIONS, read_image
from ..engine.distributed import autocast, pick_device
from .checkpoints import load_checkpoint_model
from .data import Preprocess


@torch.no_grad()
def predict(
    checkpoint: str | Path,
    images: list[str | Path],
    *,
    topk: int = 5,
    native_size: bool = False,
    ema: bool = False,
    device: str = "auto",
    amp: str = "none",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[list[dict[str, Any]], list[BadSample]]:
    """Top-``topk`` classes of each image, with softmax probabilities, and the images that could not be predicted.

    By default each image gets the checkpoint's evaluation preprocessing (resize, center crop to the training size,
    normalise). ``native_size=True`` only normalises, so the network sees the image at its own size (any size of at
    least the network's total stride).

    Every file is read first: one that cannot be (missing, not an image, of a type training does not read,
    :data:`~botnet.data.image_files.TRAINING_EXTENSIONS`), or is smaller than the total stride with
    ``native_size``, is a :class:`BadSample` naming it, and the others are predicted. When no file can be read the
    model is not loaded.

    Returns:
        ``(results, failed)``: one result per predicted image and one :class:`BadSample` per other image, each in
        the order of ``images``.
    """
    if not images:
        raise ValueError("give at least one image file")
    if topk < 1:
        raise ValueError(f"--topk must be >= 1, got {topk}")
    pictures = [read_image(path, max_pixels, TRAINING_EXTENSIONS) for path in images]  # uint8 (3, H, W) or BadSample
    failed = [p for p in pictures if isinstance(p, BadSample)]
    if len(failed) == len(images):
        return [], failed
    model, meta, _ = load_checkpoint_model(checkpoint, ema=ema)
    transform = Preprocess.from_dict(meta["preprocess"]).inference_transform(native_size)
    dev = pick_device(device)
    model.to(dev).eval()
    names = meta["class_names"]
    k = min(topk, len(names))
    stride = model.cfg.total_stride
    results, failed = [], []
    for path, picture in zip(images, pictures, strict=True):
        if isinstance(picture, BadSample):
            failed.append(picture)
            continue
        x = transform(picture)[None].to(dev)  # (1, 3, H, W)
        h, w = x.shape[-2:]
        if min(h, w) < stride:  # only at the native size: the checkpoint's preprocessing resizes to at least this
            failed.append(BadSample(str(path), _too_small(h, w, stride)))
            continue
        with autocast(dev, amp):
            logits = model(x)
        probs = logits.float().softmax(dim=-1)[0]
        top = probs.topk(k)
        results.append(
            {
                "image": str(path),
                "input_size": [h, w],
                "top": [
                    {"class": names[i], "index": int(i), "probability": float(v)}
                    for v, i in zip(top.values, top.indices, strict=True)
                ],
            }
        )
    return results, failed


def _too_small(h: int, w: int, stride: int) -> str:
    return (
        f"the image is {h}x{w}, smaller than the network's total stride {stride}, which --native-size needs on each "
        f"side; leave out --native-size to resize it, or give an image of at least {stride}x{stride}"
    )
