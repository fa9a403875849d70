"""The task contract: what the engine, reporting, evaluation and the CLI know of a task, and nothing more.

A task (classification, detection) is one folder with a subclass of :class:`Task` and one instance of it. The
engine's loop, its checkpoints and stop messages, the curves, ``eval`` and the training commands drive a task only
through these names; none of them guesses a task from a metric or a model name. A new task implements:

- ``options``: its options class, a subclass of :class:`~botnet.engine.options.TrainingOptions` with its own fields;
- ``trainer()``: its :class:`~botnet.engine.loop.Trainer` subclass, whose ``resolve`` applies the task's recipe
  (auto options from the data) and whose hooks build the datasets and the model, compute the loss and validate
  (optional: ``resize_for_time``, a smaller auto size when few steps fit ``--time``);
- ``best_metric`` and ``curves``: the validation row key that decides ``best/`` (higher is better), and the panel
  of ``curves.png``;
- ``collate``: how its samples are batched; ``command`` and ``weights_flag``: how a user resumes a run and starts a
  new one from a run's weights, named in messages; ``weights_options``: its options that name weights it reads;
- ``load_checkpoint`` and ``evaluate``: a checkpoint's model and metadata, and the task's metrics of a loaded model
  on its data (the shared part of evaluating a checkpoint is :func:`botnet.engine.evaluation.evaluate_checkpoint`).

Importing this module does not import torch: a task's options and names answer ``--help`` at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .reporting import Curves

if TYPE_CHECKING:  # for the annotations only: the contract itself imports no torch
    from .distributed import DistInfo
    from .loop import Trainer
    from .options import TrainingOptions


class Task:
    """One task's implementation of the contract (see the module docstring); subclasses fill every name."""

    options: ClassVar[type[TrainingOptions]]
    command: ClassVar[str]  # the command that trains and resumes its runs: "botnet train"
    weights_flag: ClassVar[str]  # its option that starts a new run from a run's weights: "--pretrained"
    weights_options: ClassVar[tuple[str, ...]]  # its options naming weights to read (never written over)
    best_metric: ClassVar[str]  # the validation row key that decides best/ (higher is better)
    curves: ClassVar[Curves]  # the validation panel of curves.png
    eval_batch_size: ClassVar[int]  # the default batch of its eval command

    def trainer(self) -> type[Trainer]:
        """The task's Trainer subclass (imported on first use: it imports torch)."""
        raise NotImplementedError

    def collate(self) -> Callable[[list], Any]:
        """How the task's samples are batched by the training and evaluation loaders."""
        raise NotImplementedError

    def load_checkpoint(self, path: str | Path, *, ema: bool = False, model: str | None = None) -> tuple:
        """``(model, metadata, checkpoint)`` of a checkpoint of this task (a directory, or a weights file where the
        task reads one); ``model``: refuse a checkpoint that holds another model."""
        raise NotImplementedError

    def evaluate(
        self,
        model: Any,
        meta: dict[str, Any],
        ckpt_dir: Path,
        run_options: TrainingOptions | None,
        data: str | None,
        info: DistInfo,
        *,
        batch_size: int,
        workers: int,
        amp: str,
        **task_args: Any,
    ) -> tuple[str, dict[str, Any]]:
        """``(where, metrics)``: the task's metrics of the loaded ``model`` on ``data`` (None: the run's own
        validation data, from ``run_options``), and where they were measured, in words."""
        raise NotImplementedError

    def result_file(self, output: str | Path | None, ckpt_dir: Path) -> str | Path | None:
        """Where an evaluation's JSON goes when ``output`` is not given (None: ``eval.json`` in the run)."""
        return output

    def write_figures(self, result: dict[str, Any], output: Path) -> None:
        """Figures an evaluation writes beside its JSON result (their paths go into ``result``)."""

    def evaluate_checkpoint(self, path: str | Path, data: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """The task's metrics of a checkpoint, written as JSON: :func:`botnet.engine.evaluation.evaluate_checkpoint`."""
        from .evaluation import evaluate_checkpoint  # torch: imported when an evaluation starts

        return evaluate_checkpoint(self, path, data, **kwargs)

    def train(self, cfg: TrainingOptions, *, resume: bool = False, overwrite: bool = False, **kw: Any) -> dict:
        """Train a run as ``cfg`` says and return its final metrics; joins torchrun's process group if any."""
        from .distributed import cleanup, setup  # torch: imported when a run starts

        info = setup(cfg.device)
        try:
            with self.trainer()(cfg, info, resume=resume, overwrite=overwrite, **kw) as trainer:
                return trainer.fit()
        finally:
            cleanup()
