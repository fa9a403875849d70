"""Top-1 / top-5, per-class and balanced accuracy and the confusion matrix, summed over processes so every image
counts once."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ..data.folder import BadImageTracker
from ..engine.distributed import DistInfo, all_reduce_sum, autocast
from ..engine.reporting import Progress
from .metrics import balanced_accuracy, per_class_accuracy


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    info: DistInfo,
    *,
    amp: str = "none",
    channels_last: bool = False,
    num_classes: int,
    desc: str = "eval",
    log_interval: int = 50,
    tracker: BadImageTracker | None = None,
) -> dict[str, Any]:
    """Mean cross-entropy, top-1 / top-5, per-class and balanced accuracy (in %) and the confusion matrix of
    ``model`` on ``loader``, summed over all processes.

    Returns ``loss``, ``top1``, ``top5``, ``balanced_accuracy``, ``per_class_accuracy`` (a list, ``None`` for a
    class without images), ``confusion`` (``confusion[true][predicted]`` image counts), ``images``, ``bad_images``.
    """
    model.eval()
    k5 = min(5, num_classes)
    sums = torch.zeros(4, dtype=torch.float64)  # loss sum, top-1 hits, top-5 hits, images
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64)  # (true * K + predicted,)
    bad = 0
    progress = Progress(len(loader), desc=desc, interval=log_interval, enabled=info.is_main)
    for images, targets, bad_samples in loader:
        bad += len(bad_samples)
        if tracker is not None:
            tracker.update(len(targets) + len(bad_samples), bad_samples)
        if len(targets):
            images = images.to(info.device, non_blocking=True)
            targets = targets.to(info.device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast(info.device, amp):
                logits = model(images)
            logits = logits.float()
            top = logits.topk(k5, dim=1).indices  # (B, k5)
            hits = top == targets[:, None]
            sums += torch.tensor(
                [
                    F.cross_entropy(logits, targets, reduction="sum").item(),
                    hits[:, 0].sum().item(),
                    hits.any(dim=1).sum().item(),
                    len(targets),
                ],
                dtype=torch.float64,
            )
            cells = targets.cpu() * num_classes + top[:, 0].cpu()  # (B,)
            confusion += torch.bincount(cells, minlength=num_classes * num_classes)
        progress.update()
    progress.close()
    # One all-reduce of everything; float64 holds counts exactly up to 2**53.
    total = all_reduce_sum(torch.cat([sums, torch.tensor([bad], dtype=torch.float64), confusion.double()]), info)
    loss_sum, top1, top5, count, bad_total = total[:5].tolist()
    if count == 0:
        raise ValueError("no image of the evaluation set could be read")
    matrix = total[5:].round().long().view(num_classes, num_classes).tolist()  # (true, predicted)
    return {
        "loss": loss_sum / count,
        "top1": 100.0 * top1 / count,
        "top5": 100.0 * top5 / count,
        "balanced_accuracy": balanced_accuracy(matrix),
        "per_class_accuracy": per_class_accuracy(matrix),
        "confusion": matrix,
        "images": int(count),
        "bad_images": int(bad_total),
    }
