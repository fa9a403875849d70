"""The training loop shared by every task: one process or many (torchrun), exact resume, atomic checkpoints.

Randomness is a function of position, not of history: the data order of epoch ``e`` comes from a sampler seeded by
``(seed, e)``, the augmentation of sample ``i`` from ``(seed, e, i)``, and everything random in the step of batch
``b`` (mixing, dropout, detection sampling) from ``(seed, rank, b)``. A run resumed from any checkpoint therefore
draws exactly what the uninterrupted run would have drawn, and on CPU ends with bitwise-identical weights.

A task (classification, detection) subclasses :class:`Trainer` and supplies its data, model, loss and validation;
the rest of what the loop knows of it is its :class:`~botnet.engine.task.Task` (``Trainer.task``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset

from ..data.folder import BadImageTracker, DataError
from . import checkpoint as ckpt
from .config import read_yaml_comments, save_yaml
from .data import TrainLoader, batches_per_epoch
from .data_identity import check_resumed_data, data_identity, write_data_identity
from .distributed import DistInfo, all_reduce_sum, broadcast_object
from .estimate import Timing, against_bound, duration, epochs_to_fit, estimate_line, fit_time, time_one_step
from .events import EventLog
from .guards import TrainerGuards
from .heap import keep_freed_memory
from .optim import build_optimizer, build_scheduler
from .reporting import CURVES_FILE, Progress, log, plot_curves, write_metrics
from .run_dir import LOCK_FILE, RunLock, claim_output_dir, new_run_dir
from .stopping import stop_requests
from .task import Task
from .trainer_state import Counters, TrainerCheckpoints

# curves.png and the validation images of the event files are drawn after an epoch when this many seconds have
# passed since they last were (and after the last epoch or a stop request): the curves alone take about 0.15 s, as
# long as a whole epoch of a few small images, and the images a forward pass over some of them.
FIGURES_INTERVAL = 10.0


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (the run seed, the rank, the batch number)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little") >> 1


class Trainer(TrainerCheckpoints, TrainerGuards):
    """One training run of a task. Subclasses implement the hooks marked "task hook".

    Attributes set by the hooks: ``cfg`` (resolved), ``train_ds``, ``val_ds``, ``classes``, ``model``.

    The main process holds the run directory's lock (:func:`~botnet.engine.run_dir.claim_output_dir`) from the
    start of ``__init__`` to the end of :meth:`fit`, whatever ends them; use the trainer as a context manager
    (``with Trainer(...) as t: t.fit()``) or call :meth:`close` to release it without fitting.
    """

    task: Task  # the task's contract: its metrics, curves, collation and the commands named in messages
    auto_reasons: dict[str, str] = {}  # noqa: RUF012 - set per run by resolve(): {option: why the recipe chose it}

    def __init__(self, cfg: Any, info: DistInfo, *, resume: bool, overwrite: bool) -> None:
        if cfg.output is None:
            cfg = cfg.replace(output=broadcast_object(new_run_dir(self.run_name(cfg)), info))
        self.info, self.out = info, Path(cfg.output)
        self._started = time.perf_counter()  # --time counts from here
        self._timed: Timing | None = None  # a timed step (time_one_step), once measured
        self._drawn = -math.inf  # when curves.png and the event images were last drawn (FIGURES_INTERVAL)
        self.cfg = cfg = self.resolve(cfg)  # unknown model etc.: fail before touching the disk
        if cfg.amp == "fp16" and info.device.type != "cuda":
            raise ValueError("--amp fp16 needs a CUDA device (it uses a grad scaler); use --amp bf16 on CPU")
        if cfg.sync_bn and info.device.type != "cuda":
            raise ValueError("--sync-bn needs CUDA devices; drop it for CPU runs")
        self._run_lock: RunLock | None = None
        self.events = EventLog(self.out, enabled=False, purge_step=None, options=cfg)  # opened by fit()
        self._train_loader: TrainLoader | None = None
        error = None
        created = not self.out.exists()
        if info.is_main:  # one writer per run directory: only the main process writes, and it holds the lock
            try:
                self._run_lock = claim_output_dir(self.out, resume=resume, overwrite=overwrite)
            except (ValueError, OSError) as err:
                error = err
        error = broadcast_object(error, info)
        if error is not None:
            raise error
        try:
            self._setup(resume)
        except BaseException:
            self.close()
            if created and info.is_main:  # a run refused while it set up leaves no directory behind
                with contextlib.suppress(OSError):
                    if [p.name for p in self.out.iterdir()] == [LOCK_FILE]:
                        (self.out / LOCK_FILE).unlink()
                    self.out.rmdir()
            raise

    def _setup(self, resume: bool) -> None:
        cfg, info = self.cfg, self.info
        keep_freed_memory()  # steps reuse the heap instead of faulting in fresh pages (engine/heap.py)
        log(
            f"{'resuming' if resume else 'starting'} {cfg.model} on {self.data_name()} for {cfg.epochs} epochs, "
            f"{info.world_size} process(es) on {info.device}, output {self.out}; preparing the data",
            enabled=info.is_main,
        )
        identity = None
        if not cfg.builtin_data:  # the data's place and files: a resume refuses other data (engine/data_identity.py)
            new_run = f"{self.task.command} --data {cfg.data} {self.task.weights_flag} {self.out}"
            identity = check_resumed_data(self.out, cfg.data, new_run) if resume else data_identity(cfg.data)
            self.cfg = cfg = cfg.replace(data=identity["path"])
        self._build()
        self.batches = batches_per_epoch(self.train_ds, cfg, info)
        if self.batches == 0:
            raise DataError(
                f"the training set has {len(self.train_ds)} images: fewer than one batch of {cfg.batch_size} per "
                f"process ({info.world_size} process(es)); lower --batch-size or add images"
            )
        self.steps_per_epoch = math.ceil(self.batches / cfg.accumulate)
        if cfg.time is not None and not resume:
            self.cfg = cfg = self._fit_time()
        self.optimizer = build_optimizer(self.model, cfg, cfg.lr, self.param_groups())
        self.scheduler = build_scheduler(self.optimizer, cfg, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
        self.c = Counters()
        self.rows: list[dict[str, Any]] = []
        self._signals: list[int] = []
        self._stopping = False
        self._damaged_last = False  # resumed from last.prev: the next save moves last aside instead of rotating it
        self.extension: str | None = None  # set by a resume that extends the run (more --epochs)
        if resume:
            self._resume()
        if info.is_main:  # the recipe's reasons stay beside its values, also after a resume
            path = self.out / ckpt.CONFIG_FILE
            reasons = self.auto_reasons or (read_yaml_comments(path) if resume else {})
            if self.extension:  # where the plan changed, after what the epochs were before (earlier extensions too)
                reasons = {**reasons, "epochs": "; ".join(r for r in (reasons.get("epochs"), self.extension) if r)}
            save_yaml(cfg, path, comments=reasons)
            if identity is not None:
                write_data_identity(self.out, identity)

    def _build(self) -> None:
        """The datasets, the model and the network that trains it (wrapped for DDP and compiled as asked)."""
        cfg, info = self.cfg, self.info
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

    def _fit_time(self) -> Any:
        """The run's config planned to end within ``--time`` (:func:`~botnet.engine.estimate.fit_time`), from a step
        timed at the recipe's size; where the task trades that size for more steps (:meth:`resize_for_time`), the
        run is rebuilt at the new size and timed again."""
        info = self.info
        # rank 0's timing plans every process's run
        self._timed = broadcast_object(time_one_step(self, epoch=True), info)
        fit = epochs_to_fit(self, self._timed, time.perf_counter() - self._started)
        bounded = fit is not None and fit < self.cfg.epochs and "epochs" in self.auto_reasons  # not a given --epochs
        if bounded and self.resize_for_time(fit * self.steps_per_epoch):
            with contextlib.redirect_stderr(io.StringIO()):  # the same data: its notes were printed already
                self._build()
            self._timed = broadcast_object(time_one_step(self, epoch=True), info)
        cfg, self.auto_reasons = fit_time(self, self._timed, time.perf_counter() - self._started)
        return cfg

    def resize_for_time(self, steps: int) -> bool:
        """Task hook: under ``--time``, when only ``steps`` optimizer steps fit at the recipe's size, change
        ``self.cfg``'s auto size (and what the recipe derived from it, with their reasons in ``auto_reasons``) to
        one that fits more of the run; ``True`` when it did, and the run is then rebuilt. The default keeps it."""
        return False

    def close(self) -> None:
        """Stop the data loader's workers and release the run directory (idempotent); :meth:`fit` does it when it
        ends."""
        if self._train_loader is not None:
            self._train_loader.close()
        self.events.close()
        if self._run_lock is not None:
            self._run_lock.release()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

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

    def param_groups(self) -> list[dict] | None:
        """The optimizer's parameter groups (``None``: weights with decay, norm weights and biases without)."""
        return None

    def train_loader(self, epoch: int, skip_batches: int) -> DataLoader:
        """Batches ``(images, targets, bad samples)`` of ``epoch`` for this process, after ``skip_batches``: from the
        run's one :class:`~botnet.engine.data.TrainLoader`, collated by the task's ``collate()``."""
        if self._train_loader is None:
            self._train_loader = TrainLoader(self.train_ds, self.cfg, self.info, collate_fn=self.task.collate())
        return self._train_loader.epoch(epoch, skip_batches)

    def compute_loss(self, images: Any, targets: Any) -> torch.Tensor:
        """The scalar training loss of a batch (called under autocast, with the step's seed set)."""
        raise NotImplementedError

    def validate(self) -> dict[str, Any]:
        """Validation metrics of ``self.model`` (and ``self.ema``), as row entries, on every process."""
        raise NotImplementedError

    def metadata(self) -> dict[str, str]:
        """String metadata stored in each weights file: what is needed to rebuild and use the model."""
        raise NotImplementedError

    def event_images(self) -> dict[str, Any]:
        """Images of the last validation for the event files (``HWC`` uint8 arrays by tag), on the main process."""
        return {}

    def epoch_line(self, row: dict[str, Any]) -> str:
        return f"epoch {row['epoch']}/{self.cfg.epochs}: train_loss {row['train_loss']:.4f}"

    def final_line(self, row: dict[str, Any]) -> str:
        """The run's last line (a task adds its validation figures); this one serves runs without validation."""
        return (
            f"no validation: train loss {row['train_loss']:.4f} (best/ at epoch {self.c.best_epoch}, train loss "
            f"{-self.c.best_score:.4f})  run: {self.out}"
        )

    def data_name(self) -> str:
        return str(self.cfg.data)

    # --------------------------------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        cfg, info = self.cfg, self.info
        n_params = sum(p.numel() for p in self.model.parameters())
        log(
            f"training {cfg.model} ({n_params / 1e6:.2f}M params) on {self.data_name()}: {len(self.train_ds)} train / "
            f"{len(self.val_ds) if self.val_ds is not None else 'no'} val images, {len(self.classes)} classes, "
            f"{cfg.epochs} epochs of {self.batches} "
            f"batches x {cfg.batch_size} x {info.world_size} process(es), {info.device}, output {self.out}",
            enabled=info.is_main,
        )
        planned = None
        if self.c.epoch >= cfg.epochs:
            log(f"{self.out} has already finished its {cfg.epochs} epochs", enabled=info.is_main)
        else:  # a resumed run's events continue after its checkpoint's step (later ones a kill left are dropped)
            purge = self.c.global_step + 1 if self.c.global_step else None
            self.events = EventLog(self.out, enabled=cfg.tensorboard and info.is_main, purge_step=purge, options=cfg)
            estimate = estimate_line(self, self._timed or time_one_step(self))
            if estimate is not None:
                line, planned = estimate
                planned += time.perf_counter() - self._started
            log(line if estimate else "no time estimate: the first batch has no readable image", enabled=info.is_main)
        try:
            with stop_requests() as self._signals:
                summary = self._fit_epochs()
        finally:
            self.close()
        took = time.perf_counter() - self._started
        if planned is not None:
            bound = f", {against_bound(took, cfg.time)}" if cfg.time is not None else ""
            log(f"wall time {duration(took)}; planned {duration(planned)}{bound}", enabled=info.is_main)
        return {**summary, "wall_time_s": took, "planned_time_s": planned}

    def _fit_epochs(self) -> dict[str, Any]:
        cfg, info = self.cfg, self.info
        for epoch in range(self.c.epoch, cfg.epochs):
            train_stats = self._train_epoch(epoch)
            row: dict[str, Any] = {"epoch": epoch + 1, **train_stats}
            last = epoch + 1 == cfg.epochs
            if self.val_ds is not None and (last or (epoch + 1) % cfg.eval_interval == 0):
                if info.distributed:
                    # BN running statistics drift apart per rank; evaluate (and save) rank 0's, on every rank.
                    modules = [self.model] + ([self.ema] if self.ema is not None else [])
                    for buf in (b for m in modules for b in m.buffers()):
                        torch.distributed.broadcast(buf, src=0)
                row.update(self.validate())
            self.c.epoch, self.c.batch_in_epoch, self.c.loss_sum, self.c.loss_count = epoch + 1, 0, 0.0, 0.0
            score = (
                row.get(self.task.best_metric) if self.val_ds is not None else -row["train_loss"]
            )  # lowest loss best
            is_best = score is not None and (score > self.c.best_score or not self.c.best_epoch)
            if is_best:
                self.c.best_score, self.c.best_epoch = score, epoch + 1
            self.rows.append(row)
            self._check_weights_finite()
            draw = last or bool(self._signals) or time.perf_counter() - self._drawn >= FIGURES_INTERVAL
            validated = any(k.startswith("val_") for k in row)
            self.events.epoch(row, self.event_images() if draw and validated and self.events.writing else None)
            if info.is_main:
                with self._writing("the metrics and curves"):
                    write_metrics(self.out, self.rows)
                    if draw:
                        plot_curves(self.rows, self.out / CURVES_FILE, self.task.curves)
            if draw:
                self._drawn = time.perf_counter()
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
            **({"best_" + self.task.best_metric: self.c.best_score} if self.val_ds is not None else {}),
            **({"best_train_loss": -self.c.best_score} if self.val_ds is None and self.c.best_epoch else {}),
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
            lr = self.optimizer.param_groups[0]["lr"]
            progress.update(loss=c.loss_sum / max(c.loss_count, 1), lr=lr)
            if boundary and c.global_step % cfg.log_interval == 0:
                self.events.step(c.global_step, c.loss_sum / max(c.loss_count, 1), lr)
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
