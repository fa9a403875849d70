"""Classify image files with a checkpoint of ``botnet train``: top-k classes and probabilities per image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..data.folder import DEFAULT_MAX_PIXELS, read_images
from ..engine.distributed import autocast, pick_device
from .data import Preprocess
from .evaluator import load_checkpoint_model


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
) -> list[dict[str, Any]]:
    """Top-``topk`` classes of each image, with softmax probabilities.

    By default each image gets the checkpoint's evaluation preprocessing (resize, center crop to the training size,
    normalise). ``native_size=True`` only normalises, so the network sees the image at its own size (any size of at
    least the network's total stride).
    """
    if not images:
        raise ValueError("give at least one image file")
    if topk < 1:
        raise ValueError(f"--topk must be >= 1, got {topk}")
    pictures = read_images(images, max_pixels)  # uint8 (3, H, W); a bad file fails before the model is loaded
    model, meta, _ = load_checkpoint_model(checkpoint, ema=ema)
    transform = Preprocess.from_dict(meta["preprocess"]).inference_transform(native_size)
    dev = pick_device(device)
    model.to(dev).eval()
    names = meta["class_names"]
    k = min(topk, len(names))
    results = []
    for path, picture in zip(images, pictures, strict=True):
        x = transform(picture)[None].to(dev)  # (1, 3, H, W)
        with autocast(dev, amp):
            logits = model(x)
        probs = logits.float().softmax(dim=-1)[0]
        top = probs.topk(k)
        results.append(
            {
                "image": str(path),
                "input_size": list(x.shape[-2:]),
                "top": [
                    {"class": names[i], "index": int(i), "probability": float(v)}
                    for v, i in zip(top.values, top.indices, strict=True)
                ],
            }
        )
    return results
