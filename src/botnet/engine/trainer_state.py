"""A training run's state on disk: the counters, and how :class:`~botnet.engine.loop.Trainer` writes its checkpoints
(atomically, the previous one kept) and resumes from them, falling back to the previous one when the last is damaged.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..data.folder import DataError
from ..models.weights import load_weights, save_weights
from . import checkpoint as ckpt
from .config import save_yaml
from .distributed import all_reduce_sum
from .optim import replan_scheduler
from .reporting import log, read_metrics
from .stopping import TrainingError


@dataclass
class Counters:
    """Where the run stands; saved in every checkpoint."""

    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches of the current epoch consumed (this process)
    global_batch: int = 0  # batches consumed since the start (this process)
    global_step: int = 0  # optimizer steps
    loss_sum: float = 0.0  # current epoch's train loss sum and sample count, over all processes at a checkpoint
    loss_count: float = 0.0
    best_score: float = -1.0  # best value of the task's main validation metric (the task's best_metric)
    best_epoch: int = 0
    first_loss: float = 0.0  # the training loss of the first step (mean over processes): the loss's range (0: none yet)


class TrainerCheckpoints:
    """The checkpoint half of :class:`~botnet.engine.loop.Trainer`.

    It reads the trainer's ``cfg``, ``info``, ``out``, ``c`` (:class:`Counters`), ``model``, ``ema``, ``optimizer``,
    ``scheduler``, ``scaler``, ``classes`` and ``rows``.
    """

    def _last_checkpoint(self, prefix: str) -> str:
        last = self.out / "last"
        if not (last / ckpt.MODEL_FILE).exists():
            return "no checkpoint had been written yet"
        return f"{prefix} {last} (optimizer step {ckpt.read_summary(last).get('global_step', '?')})"

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turn a failed write (disk full, read-only, quota) into a TrainingError that says what is safe."""
        try:
            yield
        except OSError as err:
            reason = err.strerror or str(err)
            code = f", {errno.errorcode[err.errno]}" if err.errno in errno.errorcode else ""
            if not (self.out / "last" / ckpt.MODEL_FILE).exists():  # nothing to resume from: --resume cannot work
                raise TrainingError(
                    f"could not write {what} ({reason}{code}) before the run's first checkpoint. Free space or make "
                    f"{self.out} writable, then start the run again: {self.task.command} ... --output {self.out} "
                    "--overwrite"
                ) from err
            raise TrainingError(
                f"could not write {what} ({reason}{code}); {self._last_checkpoint('the last complete checkpoint is')}"
                f" and is intact. Free space or make {self.out} writable, then continue with: "
                f"{self.task.command} --resume {self.out}"
            ) from err

    def _save_mid_epoch(self) -> None:
        # Partial sums of the epoch so far, over all processes, so the resumed epoch reports the same train loss.
        loss_sum, count = all_reduce_sum([self.c.loss_sum, self.c.loss_count], self.info).tolist()
        self._check_weights_finite()
        if self.info.is_main:
            saved = (self.c.loss_sum, self.c.loss_count)
            self.c.loss_sum, self.c.loss_count = loss_sum, count
            self._save("last", {"epoch": self.c.epoch, "mid_epoch_batch": self.c.batch_in_epoch})
            self.c.loss_sum, self.c.loss_count = saved

    def _save(self, name: str, summary: dict[str, Any]) -> None:
        state = {
            "counters": asdict(self.c),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "ema_n_averaged": int(self.ema.n_averaged.item()) if self.ema is not None else None,
            "rng": ckpt.rng_state(),
            "world_size": self.info.world_size,
        }

        def write(tmp: Path) -> None:
            meta = self.metadata()
            save_weights(self.model, tmp / ckpt.MODEL_FILE, metadata=meta)
            if self.ema is not None:
                save_weights(self.ema.module, tmp / ckpt.EMA_FILE, metadata=meta)
            ckpt.save_training_state(tmp / ckpt.STATE_FILE, state)
            save_yaml(self.cfg, tmp / ckpt.CONFIG_FILE)
            info = {**summary, "global_step": self.c.global_step, "classes": len(self.classes), "model": self.cfg.model}
            (tmp / ckpt.SUMMARY_FILE).write_text(json.dumps(info, indent=2) + "\n")

        target = self.out / name
        with self._writing(f"the checkpoint {target}"):
            if self._damaged_last and name == "last":
                # last/ failed its check on resume: keep it for inspection, not as the fallback last.prev
                damaged = target.with_name("last.damaged")
                if damaged.exists():
                    shutil.rmtree(damaged)
                if target.exists():
                    os.replace(target, damaged)
                self._damaged_last = False
            ckpt.write_checkpoint_dir(target, write, keep_previous=name == "last")

    def _resume(self) -> None:
        """Load the run's last checkpoint; if it is damaged, say so and continue from the one before it."""
        try:
            self._load(ckpt.resolve_checkpoint(self.out, run_checkpoint="last"))
        except ckpt.CheckpointError as err:
            prev = self.out / f"last{ckpt.PREVIOUS_SUFFIX}"
            if not (prev / ckpt.MODEL_FILE).exists() or not (self.out / "last").exists():
                raise
            log(f"warning: {err}", enabled=self.info.is_main)
            log(f"warning: resuming from the previous checkpoint {prev} instead", enabled=self.info.is_main)
            self._load(ckpt.resolve_checkpoint(prev, run_checkpoint="last"))
            self._damaged_last = True

    def _extend(self, planned: int) -> None:
        """Re-plan the schedule of a run extended from ``planned`` to ``cfg.epochs`` epochs at its current step
        (:func:`~botnet.engine.optim.replan_scheduler`); the optimizer state stays, and config.yaml says where the
        plan changed."""
        cfg, c = self.cfg, self.c
        if cfg.epochs < planned:
            raise ValueError(
                f"--epochs {cfg.epochs} is fewer than the {planned} epochs the run {self.out} was planned for "
                f"({c.epoch} done): a resume continues its plan; --epochs N extends it when N is more than {planned}"
            )
        before = self.optimizer.param_groups[0]["lr"]
        self.scheduler = replan_scheduler(self.optimizer, cfg, self.steps_per_epoch, c.global_step)
        now = self.optimizer.param_groups[0]["lr"]
        self.extension = (
            f"extended from {planned} epochs at epoch {c.epoch} (optimizer step {c.global_step}): the schedule was "
            "re-planned there"
        )
        log(
            f"extending the run from {planned} to {cfg.epochs} epochs at epoch {c.epoch} (optimizer step "
            f"{c.global_step}): the learning rate follows the schedule of a run planned for {cfg.epochs} epochs, at "
            f"this step {now:.4g} (was {before:.4g}), down to {cfg.min_lr:g} at the end; the optimizer state is kept. "
            f"Not identical to a run planned for {cfg.epochs} epochs from its start: its first {c.epoch} epochs "
            f"followed the {planned}-epoch schedule",
            enabled=self.info.is_main,
        )

    def _load(self, path: Path) -> None:
        classes = ckpt.read_class_names(path)
        if classes != self.classes:
            raise DataError(f"the checkpoint {path} was trained on classes {classes}, the data has {self.classes}")
        state = ckpt.load_training_state(path)
        if state.get("world_size", 1) != self.info.world_size:
            raise ValueError(
                f"{path} was written by a run of {state['world_size']} process(es); resume it with the same number "
                f"(now {self.info.world_size}) so that it continues exactly"
            )
        try:
            load_weights(self.model, path / ckpt.MODEL_FILE)
            if self.ema is not None:
                load_weights(self.ema.module, path / ckpt.EMA_FILE)
        except ValueError as err:  # an unreadable file or weights of another shape
            raise ckpt.CheckpointError(str(err)) from None
        if self.ema is not None:
            self.ema.n_averaged.fill_(state["ema_n_averaged"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.c = Counters(**state["counters"])
        planned = _planned_epochs(path)
        if planned is not None and planned != self.cfg.epochs:
            self._extend(planned)
        ckpt.set_rng_state(state["rng"])
        self.rows = [r for r in read_metrics(self.out) if r["epoch"] <= self.c.epoch]
        if not self.info.is_main:  # rank 0 carries the epoch's partial sums over all processes
            self.c.loss_sum, self.c.loss_count = 0.0, 0.0
        log(
            f"resuming {path} at epoch {self.c.epoch + 1}, batch {self.c.batch_in_epoch} "
            f"(optimizer step {self.c.global_step})",
            enabled=self.info.is_main,
        )


def _planned_epochs(ckpt_dir: Path) -> int | None:
    """The epochs the run was planned for when it wrote the checkpoint ``ckpt_dir`` (its config.yaml)."""
    import yaml

    path = ckpt_dir / ckpt.CONFIG_FILE
    if not path.is_file():
        return None
    epochs = (yaml.safe_load(path.read_text()) or {}).get("epochs")
    return epochs if isinstance(epochs, int) else None
