"""Converting any weights SOURCE into our safetensors format, with what is needed to use the file elsewhere.

The written file holds the weights in our key names and, in its metadata, the model config (``botnet_config``), the
registered name (``model_name``, ``architecture``), the preprocessing the weights were trained with
(``pretrained_cfg``, ``preprocess``), the names of the classifier's classes (``class_names``, when the source has
them or they are given) and the source it came from: ``create_model(name, pretrained=FILE)`` and
``botnet train --pretrained FILE`` then read it without timm, torchvision or the hub, and a file with class names
is a checkpoint for ``botnet predict``, ``eval`` and ``export``.

The model is built at the input size its position tables were trained at (read from their lengths), so the tables
are written as they are; a source without tables gets the input size of its preprocessing.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import IMAGENET_MEAN, IMAGENET_STD
from ..factory import create_model
from ..registry import get_config
from .files import save_weights
from .fit import load_pretrained, looks_like, source_preprocessing, trained_size
from .sources import read_weights
from .transfer import TransferReport

_SHOWN = 10  # class names shown in the summary


@dataclass
class Conversion:
    """What :func:`convert_weights` did."""

    source: str
    kind: str
    model: str
    num_classes: int
    output: Path
    bytes: int
    preprocessing: dict
    report: TransferReport
    read_s: float  # reading (and converting) the source
    total_s: float
    class_names: list[str] | None = None
    trained_size: tuple[int, int] | None = None  # the input size the position tables were trained at

    def summary(self) -> str:
        pre = self.preprocessing
        size = pre.get("input_size", ["?", "?", "?"])
        tables = ""
        if self.trained_size is not None:
            th, tw = self.trained_size
            same = (th, tw) == (size[-2], size[-1])
            tables = " (the size its position tables were trained at)" if same else f"; position tables for {th}x{tw}"
        return (
            f"{self.report.summary()}\n"
            f"wrote {self.output} ({self.bytes / 1e6:.1f} MB): {self.model}, {self.num_classes or 'no'} classes, from "
            f"{self.source} ({self.kind}; read in {self.read_s:.2f} s, {self.total_s:.2f} s in all)\n"
            f"{self._classes()}\n"
            f"preprocessing: input {size[-2]}x{size[-1]}{tables}, mean {list(pre.get('mean', []))}, std "
            f"{list(pre.get('std', []))}, crop_pct {pre.get('crop_pct')}, {pre.get('interpolation')}"
        )

    def _classes(self) -> str:
        if not self.num_classes:
            return (
                "no classifier (headless weights): a start for botnet train --pretrained and botnet detect train "
                "--weights-backbone"
            )
        if self.class_names is None:
            return (
                f"classes: {self.num_classes}, unnamed: botnet predict, eval and export need their names "
                "(--class-names FILE gives them, one a line in output order)"
            )
        more = f", ... ({len(self.class_names) - _SHOWN} more)" if len(self.class_names) > _SHOWN else ""
        return (
            f"classes: {', '.join(self.class_names[:_SHOWN])}{more}; botnet predict, eval and export take "
            f"--checkpoint {self.output}"
        )


def check_class_names(names: list[str], num_classes: int, where: str) -> list[str]:
    """``names`` for a classifier of ``num_classes`` outputs: as many as outputs, distinct and not empty."""
    names = [str(n) for n in names]
    if not num_classes:
        raise ValueError(f"{where}: the weights have no classifier, so there are no classes to name")
    if len(names) != num_classes:
        raise ValueError(f"{where} has {len(names)} class names; the weights' classifier has {num_classes} outputs")
    if any(not n.strip() for n in names) or len(set(names)) != len(names):
        raise ValueError(f"{where}: class names must be distinct and not empty")
    return names


def convert_weights(
    source: str | Path,
    output: str | Path,
    *,
    model: str | None = None,
    strict: bool = True,
    class_names: list[str] | None = None,
) -> Conversion:
    """Read weights SOURCE, load them into our ``model`` (default: the one the source names or looks like) and write
    them as safetensors to ``output``.

    Args:
        class_names: the classifier's classes in output order (default: the source's, when it has them).

    Raises:
        WeightsSourceError: the source cannot be read.
        ValueError: the output is not a ``.safetensors`` path or is the source itself; the model cannot be told (give
            ``model``); the weights do not fit the model (strictness as in :func:`load_pretrained`); ``class_names``
            do not fit the classifier.
    """
    output = Path(output)
    if output.suffix != ".safetensors":
        raise ValueError(f"the output {output} must be a .safetensors file")
    t0 = time.perf_counter()
    weights = read_weights(source)
    read_s = time.perf_counter() - t0
    if weights.path is not None and output.exists() and os.path.samefile(output, weights.path):
        raise ValueError(f"the output {output} is the source itself: choose another file")
    if model is not None:
        get_config(model)  # an unknown name lists the valid ones
    name = model or weights.model_name or next(iter(looks_like(weights.state_dict)), None)
    if name is None:
        raise ValueError(f"cannot tell which model the weights {weights.source} are for: give --model NAME")
    fc = weights.state_dict.get("fc.weight")
    num_classes = int(fc.shape[0]) if fc is not None else 0
    names = weights.class_names
    if class_names is not None:
        names = check_class_names(class_names, num_classes, "--class-names")
    # The tables' own size keeps them as trained; without tables, the size of the source's preprocessing.
    size = trained_size(name, weights.state_dict)
    declared = source_preprocessing(weights).get("input_size")
    img_size = size or ((int(declared[-2]), int(declared[-1])) if declared else None)
    overrides = {} if img_size is None else {"img_size": img_size[0] if img_size[0] == img_size[1] else img_size}
    net = create_model(name, num_classes=num_classes, **overrides)
    report = load_pretrained(net, weights, strict=strict)
    pre = {
        k: v for k, v in net.pretrained_cfg.items() if k in ("input_size", "mean", "std", "crop_pct", "interpolation")
    }
    h = int(pre.get("input_size", (3, *net.cfg.input_size))[-1])
    preprocess = dict(
        img_size=h,
        crop_pct=pre.get("crop_pct", 0.875),
        mean=list(pre.get("mean", IMAGENET_MEAN)),
        std=list(pre.get("std", IMAGENET_STD)),
        interpolation=pre.get("interpolation", "bilinear"),
    )
    meta = {"model_name": name, "source": weights.source, "preprocess": json.dumps(preprocess)}
    if names is not None:
        meta["class_names"] = json.dumps(names)
    save_weights(net, output, metadata=meta)
    return Conversion(
        weights.source,
        weights.kind,
        name,
        num_classes,
        output,
        output.stat().st_size,
        pre,
        report,
        read_s,
        time.perf_counter() - t0,
        names,
        size,
    )
