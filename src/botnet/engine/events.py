"""TensorBoard event files of a run (``RUN/tensorboard/``), through ``torch.utils.tensorboard``.

What is written, all on the optimizer-step axis so that per-step and per-epoch curves line up:

- every ``log_interval`` steps: ``step/loss`` (the running mean of the epoch's training loss, as the progress line
  shows it) and ``step/lr``;
- at each epoch's end: every number of the epoch's metrics.jsonl row under the same name (``train_loss``,
  ``val_top1``, ``val_bbox_AP``, ``images_per_s``, ``data_wait_s``, ...), and the task's images (the confusion
  matrix, detections drawn on validation images);
- once, at the start: the resolved options as a text table.

Only the main process writes. A resumed run opens the same folder with ``purge_step`` at its checkpoint's step, so
the events a killed run wrote after its last checkpoint are dropped by TensorBoard's readers and the steps stay in
order. Without the ``tensorboard`` package training runs as before, after one warning.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .reporting import log

EVENTS_DIR = "tensorboard"
SKIPPED_KEYS = ("epoch", "global_step")  # the axis itself


class EventLog:
    """The run's event writer, or nothing (``enabled`` false, not the main process, or no tensorboard package)."""

    def __init__(self, out: Path, *, enabled: bool, purge_step: int | None, options: Any) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # a plain install without it: the run goes on, said once
            log(
                "warning: the tensorboard package is not installed: no event files for this run (install it, e.g. "
                "pip install tensorboard, or pass --tensorboard false)"
            )
            return
        self.writer = SummaryWriter(log_dir=str(out / EVENTS_DIR), purge_step=purge_step)
        if purge_step is None:
            rows = "\n".join(f"| {k} | {v} |" for k, v in options.to_dict().items())
            self.writer.add_text("options", "| option | value |\n|---|---|\n" + rows, 0)

    def step(self, step: int, loss: float, lr: float) -> None:
        if self.writer is not None:
            self.writer.add_scalar("step/loss", loss, step)
            self.writer.add_scalar("step/lr", lr, step)

    @property
    def writing(self) -> bool:
        """Whether events are written (TensorBoard on, its package installed, the main process)."""
        return self.writer is not None

    def epoch(self, row: dict[str, Any], images: dict[str, np.ndarray] | None = None) -> None:
        """The numbers of a metrics row at its ``global_step``, and ``images`` (``HWC`` uint8 arrays by tag)."""
        if self.writer is None:
            return
        step = row["global_step"]
        for key, value in row.items():
            if key not in SKIPPED_KEYS and isinstance(value, int | float) and math.isfinite(value):
                self.writer.add_scalar(key, value, step)
        for tag, image in (images or {}).items():
            self.writer.add_image(tag, image, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def figure_image(fig: Any) -> np.ndarray:
    """A matplotlib figure as an ``HWC`` uint8 RGB array (for :meth:`EventLog.epoch`)."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
