"""The training loop shared by every task: one process or many (torchrun), exact resume, atomic checkpoints.

Randomness is a function of position, not of history: the data order of epoch ``e`` comes from a sampler seeded by
``(seed, e)``, the augmentation of sample ``i`` from ``(seed, e, i)``, and everything random in the step of batch
``b`` (mixing, dropout, detection sampling) from ``(seed, rank, b)``. A run resumed from any checkpoint therefore
draws exactly what the uninterrupted run would have drawn, and on CPU ends with bitwise-identical weights.

A task (classification, detection) subclasses :class:`Trainer` and supplies its data, model, loss and validation.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset

from ..data.folder import BadImageTracker, DataError
from ..models.weights import load_weights, save_weights
from . import checkpoint as ckpt
from .config import save_yaml
from .data import batches_per_epoch
from .distributed import DistInfo, all_reduce_sum, broadcast_object
from .optim import build_optimizer, build_scheduler
from .reporting import CURVES_FILE, Progress, log, plot_curves, read_metrics, write_metrics
from .run_dir import new_run_dir, prepare_output_dir


class TrainingError(RuntimeError):
    """Training cannot go on (for example a non-finite loss); the message says where and what to do."""


class TrainingInterrupted(TrainingError):
    """The run stopped at a safe point on SIGTERM or Ctrl-C, after writing a checkpoint; ``signum`` says which."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


@contextlib.contextmanager
def stop_requests() -> Iterator[list[int]]:
    """While active, SIGTERM and the first Ctrl-C only record their number in the yielded list (the loop stops at its
    next safe point); a second Ctrl-C interrupts at once. Outside the main thread nothing is installed."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT and signal.SIGINT in received:
            raise KeyboardInterrupt
        received.append(signum)
        log(
            f"\n{signal.Signals(signum).name} received: stopping after this step, with a checkpoint "
            "(Ctrl-C again to stop at once, without one)"
        )

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass
class Counters:
    """Where the run stands; saved in every checkpoint."""

    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches of the current epoch consumed (this process)
    global_batch: int = 0  # batches consumed since the start (this process)
    global_step: int = 0  # optimizer steps
    loss_sum: float = 0.0  # current epoch's train loss sum and sample count, over all processes at a checkpoint
    loss_count: float = 0.0
    best_score: float = -1.0  # best value of the task's main validation metric (Trainer.best_metric)
    best_epoch: int = 0


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (the run seed, the rank, the batch number)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little") >> 1


class Trainer:
    """One training run of a task. Subclasses implement the hooks marked "task hook".

    Attributes set by the hooks: ``cfg`` (resolved), ``train_ds``, ``val_ds``, ``classes``, ``model``.
    """

    best_metric = "val_top1"  # the row key that decides best/ (higher is better)
    command = "botnet train"  # the command that resumes a run of this task

    def __init__(self, cfg: Any, info: DistInfo, *, resume: bool, overwrite: bool) -> None:
        if cfg.output is None:
            cfg = cfg.replace(output=broadcast_object(new_run_dir(self.run_name(cfg)), info))
        self.info, self.out = info, Path(cfg.output)
        self.cfg = cfg = self.resolve(cfg)  # unknown model etc.: fail before touching the disk
        if cfg.amp == "fp16" and info.device.type != "cuda":
            raise ValueError("--amp fp16 needs a CUDA device (it uses a grad scaler); use --amp bf16 on CPU")
        if cfg.sync_bn and info.device.type != "cuda":
            raise ValueError("--sync-bn needs CUDA devices; drop it for CPU runs")
        error = None
        if info.is_main:
            try:
                prepare_output_dir(self.out, resume=resume, overwrite=overwrite)
            except (ValueError, OSError) as err:
                error = err
        error = broadcast_object(error, info)
        if error is not None:
            raise error

        torch.manual_seed(cfg.seed)
        self.train_ds, self.val_ds = self.build_data()
        self.classes = list(self.train_ds.classes)
        self.model = self.build_model()
        self.model.to(info.device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if cfg.sync_bn:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.ema = None
        if cfg.ema_decay:
            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        self.net: nn.Module = self.model
        if info.distributed:
            device_ids = [info.device] if info.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=device_ids)
        if cfg.compile:
            self.net = torch.compile(self.net)

        self.batches = batches_per_epoch(self.train_ds, cfg, info)
        if self.batches == 0:
            raise DataError(
                f"the training set has {len(self.train_ds)} images: fewer than one batch of {cfg.batch_size} per "
                f"process ({info.world_size} process(es)); lower --batch-size or add images"
            )
        self.steps_per_epoch = math.ceil(self.batches / cfg.accumulate)
        self.optimizer = build_optimizer(self.model, cfg, cfg.lr)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
        self.c = Counters()
        self.rows: list[dict[str, Any]] = []
        self._signals: list[int] = []
        self._stopping = False
        self._damaged_last = False  # resumed from last.prev: the next save moves last aside instead of rotating it
        if resume:
            self._resume()
        if info.is_main:
            save_yaml(cfg, self.out / ckpt.CONFIG_FILE)

    # --------------------------------------------------------------------------------------------------------------
    # Task hooks

    def run_name(self, cfg: Any) -> str:
        """Prefix of the default run directory."""
        return cfg.model

    def resolve(self, cfg: Any) -> Any:
        """Fill the "auto" options; return the validated config."""
        raise NotImplementedError

    def build_data(self) -> tuple[Dataset, Dataset]:
        """(train, val) datasets; the train set has ``classes``."""
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def train_loader(self, epoch: int, skip_batches: int) -> DataLoader:
        """Batches ``(images, targets, bad samples)`` of ``epoch`` for this process, after ``skip_batches``."""
        raise NotImplementedError

    def compute_loss(self, images: Any, targets: Any) -> torch.Tensor:
        """The scalar training loss of a batch (called under autocast, with the step's seed set)."""
        raise NotImplementedError

    def validate(self) -> dict[str, Any]:
        """Validation metrics of ``self.model`` (and ``self.ema``), as row entries, on every process."""
        raise NotImplementedError

    def metadata(self) -> dict[str, str]:
        """String metadata stored in each weights file: what is needed to rebuild and use the model."""
        raise NotImplementedError

    def epoch_line(self, row: dict[str, Any]) -> str:
        return f"epoch {row['epoch']}/{self.cfg.epochs}: train_loss {row['train_loss']:.4f}"

    def final_line(self, row: dict[str, Any]) -> str:
        return f"run: {self.out}"

    def data_name(self) -> str:
        return str(self.cfg.data)

    # --------------------------------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        cfg, info = self.cfg, self.info
        n_params = sum(p.numel() for p in self.model.parameters())
        log(
            f"training {cfg.model} ({n_params / 1e6:.2f}M params) on {self.data_name()}: {len(self.train_ds)} train / "
            f"{len(self.val_ds)} val images, {len(self.classes)} classes, {cfg.epochs} epochs of {self.batches} "
            f"batches x {cfg.batch_size} x {info.world_size} process(es), {info.device}, output {self.out}",
            enabled=info.is_main,
        )
        if self.c.epoch >= cfg.epochs:
            log(f"{self.out} has already finished its {cfg.epochs} epochs", enabled=info.is_main)
        with stop_requests() as self._signals:
            return self._fit_epochs()

    def _fit_epochs(self) -> dict[str, Any]:
        cfg, info = self.cfg, self.info
        for epoch in range(self.c.epoch, cfg.epochs):
            train_stats = self._train_epoch(epoch)
            row: dict[str, Any] = {"epoch": epoch + 1, **train_stats}
            last = epoch + 1 == cfg.epochs
            if last or (epoch + 1) % cfg.eval_interval == 0:
                if info.distributed:
                    # BN running statistics drift apart per rank; evaluate (and save) rank 0's, on every rank.
                    modules = [self.model] + ([self.ema] if self.ema is not None else [])
                    for buf in (b for m in modules for b in m.buffers()):
                        torch.distributed.broadcast(buf, src=0)
                row.update(self.validate())
            self.c.epoch, self.c.batch_in_epoch, self.c.loss_sum, self.c.loss_count = epoch + 1, 0, 0.0, 0.0
            score = row.get(self.best_metric)
            is_best = score is not None and score > self.c.best_score
            if is_best:
                self.c.best_score, self.c.best_epoch = score, epoch + 1
            self.rows.append(row)
            self._check_weights_finite()
            if info.is_main:
                with self._writing("the metrics and curves"):
                    write_metrics(self.out, self.rows)
                    plot_curves(self.rows, self.out / CURVES_FILE)
                self._save("last", row)
                if is_best:
                    with self._writing(f"the best checkpoint {self.out / 'best'}"):
                        ckpt.link_checkpoint(self.out / "last", self.out / "best")
            log(self.epoch_line(row), enabled=info.is_main)
            if epoch + 1 < cfg.epochs and self._stop_agreed():
                self._stop()
        final = self.rows[-1] if self.rows else {}
        summary = {
            **{k: v for k, v in final.items() if k.startswith("val_")},
            "best_" + self.best_metric: self.c.best_score,
            "best_epoch": self.c.best_epoch,
            "output": str(self.out),
        }
        if info.is_main and final:
            print(self.final_line(final), flush=True)
        return summary

    def _train_epoch(self, epoch: int) -> dict[str, Any]:
        cfg, info, c = self.cfg, self.info, self.c
        skip = c.batch_in_epoch
        loader = self.train_loader(epoch, skip)
        self.net.train()
        tracker = BadImageTracker()
        progress = Progress(
            self.batches,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            interval=cfg.log_interval,
            enabled=info.is_main,
            start=skip,
        )
        images_done, wait, t0 = 0, 0.0, time.perf_counter()
        t_ready = t0
        for images, targets, bad in loader:
            wait += time.perf_counter() - t_ready
            tracker.update(len(targets) + len(bad), bad)
            c.batch_in_epoch += 1
            c.global_batch += 1
            boundary = c.batch_in_epoch % cfg.accumulate == 0 or c.batch_in_epoch == self.batches
            flags = all_reduce_sum([float(len(targets) == 0), float(bool(self._signals))], info)
            empty = flags[0].item() > 0
            self._stopping = self._stopping or flags[1].item() > 0  # every process sees the same sums
            if not empty:
                loss = self._forward_backward(images, targets, sync=boundary)
                self._check_finite(loss, epoch)
                c.loss_sum += loss * len(targets)
                c.loss_count += len(targets)
                images_done += len(targets)
            if boundary:
                self._optimizer_step()
                mid_epoch = c.batch_in_epoch < self.batches  # the epoch's end has its own checkpoint
                periodic = cfg.checkpoint_steps and c.global_step % cfg.checkpoint_steps == 0
                if mid_epoch and (periodic or self._stopping):
                    self._save_mid_epoch()
                if mid_epoch and self._stopping:
                    progress.close()
                    self._stop()
            progress.update(loss=c.loss_sum / max(c.loss_count, 1), lr=self.optimizer.param_groups[0]["lr"])
            t_ready = time.perf_counter()
        progress.close()
        elapsed = time.perf_counter() - t0
        loss_sum, count, imgs, wait_sum, seen, n_bad = all_reduce_sum(
            [c.loss_sum, c.loss_count, images_done, wait, tracker.seen, tracker.num_bad], info
        ).tolist()
        if n_bad:
            tracker.seen, tracker.num_bad = int(seen), int(n_bad)
            log(f"warning: {tracker.summary()}", enabled=info.is_main)
            tracker.check(cfg.max_bad_fraction)
        return {
            "train_loss": loss_sum / max(count, 1),
            "lr": self.optimizer.param_groups[0]["lr"],
            "epoch_time_s": elapsed,
            "images_per_s": imgs / elapsed,
            "data_wait_s": wait_sum / info.world_size,
            "bad_images": int(n_bad),
            "global_step": c.global_step,
        }

    def _forward_backward(self, images: Any, targets: Any, *, sync: bool) -> float:
        cfg, info = self.cfg, self.info
        torch.manual_seed(mix_seed(cfg.seed, info.rank, self.c.global_batch))  # everything random in this step
        no_sync = self.net.no_sync if info.distributed and not sync and hasattr(self.net, "no_sync") else None
        with no_sync() if no_sync else contextlib.nullcontext():
            loss = self.compute_loss(images, targets)
            scaled = loss / cfg.accumulate
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
        return loss.item()

    def _check_finite(self, loss: float, epoch: int) -> None:
        bad = all_reduce_sum([float(not math.isfinite(loss))], self.info).item() > 0
        if not bad:
            return
        where = f"epoch {epoch + 1}, batch {self.c.batch_in_epoch}/{self.batches} (optimizer step {self.c.global_step})"
        kept = self._last_checkpoint("the last good checkpoint is")
        raise TrainingError(
            f"the loss became non-finite ({loss}) at {where}; stopped, {kept}. Lower --lr, set --clip-grad, or "
            f"check the data"
        )

    def _check_weights_finite(self) -> None:
        """Refuse to checkpoint non-finite weights (a step can overflow them while its loss was still finite)."""
        bad = [k for k, t in self.model.state_dict().items() if t.is_floating_point() and not t.isfinite().all()]
        if bad:
            last = self.out / "last"
            kept = f"{last} is kept as it was" if (last / ckpt.MODEL_FILE).exists() else "no checkpoint was written"
            raise TrainingError(
                f"the weights became non-finite ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}) after "
                f"optimizer step {self.c.global_step} (epoch {self.c.epoch + 1}); stopped without saving them, "
                f"{kept}. Lower --lr or set --clip-grad"
            )

    def _optimizer_step(self) -> None:
        cfg = self.cfg
        if self.scaler is not None:
            if cfg.clip_grad:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            if cfg.clip_grad:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.c.global_step += 1

    # --------------------------------------------------------------------------------------------------------------
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
            raise TrainingError(
                f"could not write {what} ({reason}{code}); {self._last_checkpoint('the last complete checkpoint is')}"
                f" and is intact. Free space or make {self.out} writable, then continue with: "
                f"{self.command} --resume {self.out}"
            ) from err

    def _stop_agreed(self) -> bool:
        self._stopping = self._stopping or all_reduce_sum([float(bool(self._signals))], self.info).item() > 0
        return self._stopping

    def _stop(self) -> None:
        """End the run at a safe point after a stop request; the checkpoint of this point is already written."""
        c = self.c
        name = signal.Signals(self._signals[0]).name if self._signals else "a stop request on another process"
        where = (
            f"epoch {c.epoch + 1}, batch {c.batch_in_epoch}/{self.batches}"
            if c.batch_in_epoch
            else (f"the end of epoch {c.epoch}")
        )
        raise TrainingInterrupted(
            f"stopped by {name} at {where} (optimizer step {c.global_step}); the checkpoint {self.out / 'last'} holds "
            f"this point. Continue with: {self.command} --resume {self.out}",
            self._signals[0] if self._signals else signal.SIGTERM,
        )

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
            self._load(ckpt.resolve_checkpoint(self.out))
        except ckpt.CheckpointError as err:
            prev = self.out / f"last{ckpt.PREVIOUS_SUFFIX}"
            if not (prev / ckpt.MODEL_FILE).exists() or not (self.out / "last").exists():
                raise
            log(f"warning: {err}", enabled=self.info.is_main)
            log(f"warning: resuming from the previous checkpoint {prev} instead", enabled=self.info.is_main)
            self._load(ckpt.resolve_checkpoint(prev))
            self._damaged_last = True

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
        ckpt.set_rng_state(state["rng"])
        self.rows = [r for r in read_metrics(self.out) if r["epoch"] <= self.c.epoch]
        if not self.info.is_main:  # rank 0 carries the epoch's partial sums over all processes
            self.c.loss_sum, self.c.loss_count = 0.0, 0.0
        log(
            f"resuming {path} at epoch {self.c.epoch + 1}, batch {self.c.batch_in_epoch} "
            f"(optimizer step {self.c.global_step})",
            enabled=self.info.is_main,
        )
