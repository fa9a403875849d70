"""A classification checkpoint: loading it to predict, export or draw attention, and its metrics (top-1, balanced
and per-class accuracy) on its own validation data or an ImageFolder. The evaluation loop itself is :mod:`.evaluate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.folder import DataError
from ..data.split import image_folder_splits
from ..engine import checkpoint as ckpt
from ..engine.config import BUILTIN
from ..engine.data import eval_loader
from ..engine.distributed import DistInfo
from ..engine.reporting import log
from ..models.botnet import BoTNet
from ..models.config import BoTNetConfig
from ..models.weights import load_weights
from .config import TrainConfig
from .data import Preprocess, build_datasets
from .evaluate import evaluate


def load_checkpoint_model(path: str | Path, *, ema: bool = False, expect_model: str | None = None) -> tuple:
    """``(model, metadata, checkpoint)`` of a checkpoint written by ``botnet train`` (``checkpoint``: its directory),
    or of a weights file given on its own that has what inference needs, as ``botnet convert`` writes it
    (``checkpoint``: the file)."""
    path = Path(path)
    if path.is_file() and path.name != ckpt.MODEL_FILE:
        if ema:
            raise ckpt.CheckpointError(
                f"{path} is a weights file on its own: --ema reads a checkpoint's {ckpt.EMA_FILE}"
            )
        ckpt_dir = weights = path
        meta = ckpt.read_file_metadata(path)
    else:
        ckpt_dir = ckpt.resolve_checkpoint(path)
        meta = ckpt.read_model_metadata(ckpt_dir)
        weights = ckpt_dir / (ckpt.EMA_FILE if ema else ckpt.MODEL_FILE)
        if ema and not weights.exists():
            raise ckpt.CheckpointError(f"{ckpt_dir} has no EMA weights (the run had ema_decay 0)")
    if expect_model is not None and expect_model != meta["model"]:
        raise ValueError(f"{ckpt_dir} holds a {meta['model']} model, not {expect_model}")
    try:
        model = BoTNet(BoTNetConfig(**meta["config"]))
    except (TypeError, ValueError) as err:
        raise ckpt.CheckpointError(f"{weights} has a model config this version cannot build: {err}") from None
    model.pretrained_cfg["architecture"] = meta["model"]
    load_weights(model, weights)
    return model, meta, ckpt_dir


def _check_classes(names: list[str], expected: list[str], where: str, ckpt_dir: Path) -> None:
    if names == expected:
        return
    if len(names) != len(expected):
        raise DataError(
            f"class count mismatch: the checkpoint {ckpt_dir} has {len(expected)} classes, {where} has {len(names)} "
            f"({', '.join(names[:10])}{', ...' if len(names) > 10 else ''})"
        )
    diff = [f"{a!r} vs {b!r}" for a, b in zip(expected, names, strict=True) if a != b]
    raise DataError(
        f"class names differ between the checkpoint {ckpt_dir} and {where}: {', '.join(diff[:5])} "
        f"(checkpoint vs data, in index order)"
    )


def checkpoint_metrics(
    net: BoTNet,
    meta: dict[str, Any],
    ckpt_dir: Path,
    run_cfg: TrainConfig | None,
    data: str | None,
    info: DistInfo,
    *,
    batch_size: int,
    workers: int,
    amp: str,
) -> tuple[str, dict[str, Any]]:
    """``(where, metrics)``: top-1 / top-5, balanced and per-class accuracy and the confusion matrix of a loaded
    checkpoint on its run's validation data (``data`` None) or an ImageFolder; ``data`` without a ``val/`` folder
    is evaluated on the images a run on it would hold out (the run's ``val_fraction`` and ``seed``)."""
    p = meta["preprocess"] or {}
    pre = Preprocess(p["img_size"], p["crop_pct"], tuple(p["mean"]), tuple(p["std"]), p["interpolation"])
    if data is None or data == BUILTIN:
        if run_cfg is None:
            what = "is a weights file without a run's" if ckpt_dir.is_file() else "has no"
            raise ValueError(f"{ckpt_dir} {what} config.yaml to find its data; pass --data DIR")
        if data == BUILTIN:
            run_cfg = run_cfg.replace(data=BUILTIN)
        _, val = build_datasets(run_cfg.replace(workers=workers), pre, train=False, info=info)
        where = "the built-in dataset" if run_cfg.builtin_data else f"{run_cfg.data}/{val.split}"
    else:  # without val/, the images the run held out if it trained on this folder
        split = run_cfg or TrainConfig()
        _, val, notes = image_folder_splits(
            data,
            None,
            pre.eval_transform(),
            val_fraction=split.val_fraction,
            seed=split.seed,
            need_train=False,
            tensors=True,
            hint=" (the run's val_fraction)" if run_cfg else " (the default val_fraction: no run config)",
        )
        for note in notes:
            log(note, enabled=info.is_main)
        where = f"{data}/{val.split}"
    _check_classes(list(val.classes), meta["class_names"], where, ckpt_dir)
    loader = eval_loader(val, batch_size, workers, info)
    m = evaluate(net, loader, info, amp=amp, num_classes=len(val.classes), desc="eval")
    names = meta["class_names"]
    return where, {
        **{k: m[k] for k in ("top1", "balanced_accuracy", "top5", "loss", "images", "bad_images")},
        "per_class_accuracy": dict(zip(names, m["per_class_accuracy"], strict=True)),
        "per_class_images": {name: sum(row) for name, row in zip(names, m["confusion"], strict=True)},
        "confusion_matrix": m["confusion"],
    }
