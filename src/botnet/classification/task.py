"""Classification as a task of the engine: its contract (:class:`botnet.engine.task.Task`) in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..engine.reporting import Curves
from ..engine.task import Task
from .config import TrainConfig


class ClassificationTask(Task):
    """Image classification with cross-entropy; top-1 accuracy decides the best checkpoint."""

    options = TrainConfig
    command = "botnet train"
    weights_options = ("pretrained",)
    weights_flag = "--pretrained"
    best_metric = "val_top1"
    curves = Curves(
        (("val_top1", "val top-1"), ("val_top5", "val top-5"), ("val_balanced_acc", "val balanced"),
         ("ema_val_top1", "EMA val top-1")),
        ylabel="accuracy (%)",
        title="validation accuracy",
    )  # fmt: skip
    eval_batch_size = 64

    # The implementations import torch: each is imported when first used.
    def trainer(self) -> type:
        from .trainer import ClassificationTrainer

        return ClassificationTrainer

    def collate(self) -> Any:
        from ..data.folder import collate_skip_bad

        return collate_skip_bad

    def load_checkpoint(self, path: str | Path, *, ema: bool = False, model: str | None = None) -> tuple:
        from .checkpoints import load_checkpoint_model

        return load_checkpoint_model(path, ema=ema, expect_model=model)

    def evaluate(self, model, meta, ckpt_dir, run_options, data, info, **kwargs: Any) -> tuple[str, dict[str, Any]]:  # noqa: ANN001
        from .checkpoints import checkpoint_metrics

        return checkpoint_metrics(model, meta, ckpt_dir, run_options, data, info, **kwargs)

    def result_file(self, output: str | Path | None, ckpt_dir: Path) -> str | Path | None:
        if output is None and ckpt_dir.is_file():  # a weights file on its own: its result beside it, named after it
            return ckpt_dir.with_name(f"{ckpt_dir.stem}_eval.json")
        return output

    def write_figures(self, result: dict[str, Any], output: Path) -> None:
        from .metrics import CONFUSION_FILE, plot_confusion

        png = output.with_name(f"{output.stem}_{CONFUSION_FILE}")
        r = result
        title = f"{r['model']} on {r['data']}: top-1 {r['top1']:.2f}%, balanced {r['balanced_accuracy']:.2f}%"
        plot_confusion(r["confusion_matrix"], list(r["per_class_accuracy"]), png, title=title)
        result["confusion_png"] = str(png)


CLASSIFICATION = ClassificationTask()
evaluate_checkpoint = CLASSIFICATION.evaluate_checkpoint  # botnet.classification.evaluate_checkpoint(path, data, ...)
