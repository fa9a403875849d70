"""Evaluating a checkpoint of any task: load it, measure the task's metrics on its data, write the result.

The task supplies the loading and the metrics (:class:`~botnet.engine.task.Task`); this module does what every
task's evaluation shares: the device and process group, refusing an unwritable result before the work, the run's
own options (its data, split and hold-out), the result's common fields, and writing it on the main process.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import checkpoint as ckpt
from .config import build_config
from .distributed import auto_workers, cleanup, local_world_size, setup
from .options import TrainingOptions
from .reporting import result_path, write_result

if TYPE_CHECKING:  # the task calls this module, with itself
    from .task import Task


def run_options(task: Task, ckpt_dir: Path) -> TrainingOptions | None:
    """The options of the run that wrote ``ckpt_dir`` (its config.yaml), or None for a weights file on its own."""
    path = ckpt_dir / ckpt.CONFIG_FILE
    if not (ckpt_dir.is_dir() and path.exists()):
        return None
    return build_config(path, config_cls=task.options, run_config=True)


def evaluate_checkpoint(
    task: Task,
    path: str | Path,
    data: str | None = None,
    *,
    model: str | None = None,
    ema: bool = False,
    batch_size: int | None = None,
    workers: int | None = None,
    device: str = "auto",
    amp: str = "none",
    output: str | Path | None = None,
    **task_args: Any,
) -> dict[str, Any]:
    """The task's metrics of a checkpoint on ``data`` (default: the run's own validation data), as a dict written
    as JSON to ``output`` (default: ``eval.json`` in the run that owns the checkpoint).

    The result's ``integrity`` says whether the checkpoint's files were verified against its manifest
    (:func:`botnet.engine.checkpoint.integrity_status`); ``task_args`` are the task's own (detection's ``split``).
    """
    info = setup(device)
    if workers is None:
        workers = auto_workers(info.device, local_world_size())
    try:
        net, meta, ckpt_dir = task.load_checkpoint(path, ema=ema, model=model)
        output = result_path(task.result_file(output, ckpt_dir), ckpt_dir)  # refused now, not after the work
        net.to(info.device)
        where, metrics = task.evaluate(
            net,
            meta,
            ckpt_dir,
            run_options(task, ckpt_dir),
            data,
            info,
            batch_size=batch_size or task.eval_batch_size,
            workers=workers,
            amp=amp,
            **task_args,
        )
        result = {
            "checkpoint": str(ckpt_dir),
            "model": meta["model"],
            "weights": "ema" if ema else "model",
            "data": where,
            "integrity": ckpt.integrity_status(ckpt_dir),
            **metrics,
        }
        if info.is_main:
            task.write_figures(result, output)
            result["output"] = write_result(result, output, ckpt_dir)
        return result
    finally:
        cleanup()
