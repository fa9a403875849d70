"""Converting any weights SOURCE into our safetensors format, with what is needed to use the file elsewhere.

The written file holds the weights in our key names and, in its metadata, the model config (``botnet_config``), the
registered name (``model_name``, ``architecture``), the preprocessing the weights were trained with
(``pretrained_cfg``, ``preprocess``) and the source it came from: ``create_model(name, pretrained=FILE)`` and
``botnet train --pretrained FILE`` then read it without timm, torchvision or the hub.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .botnet import IMAGENET_MEAN, IMAGENET_STD
from .pretrained import load_pretrained, looks_like
from .registry import create_model, get_config
from .sources import read_weights
from .transfer import TransferReport
from .weights import save_weights


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

    def summary(self) -> str:
        pre = self.preprocessing
        size = pre.get("input_size", ["?", "?", "?"])
        return (
            f"{self.report.summary()}\n"
            f"wrote {self.output} ({self.bytes / 1e6:.1f} MB): {self.model}, {self.num_classes} classes, from "
            f"{self.source} ({self.kind}; read in {self.read_s:.2f} s, {self.total_s:.2f} s in all)\n"
            f"preprocessing: input {size[-2]}x{size[-1]}, mean {list(pre.get('mean', []))}, std "
            f"{list(pre.get('std', []))}, crop_pct {pre.get('crop_pct')}, {pre.get('interpolation')}"
        )


def convert_weights(
    source: str | Path, output: str | Path, *, model: str | None = None, strict: bool = True
) -> Conversion:
    """Read weights SOURCE, load them into our ``model`` (default: the one the source names or looks like) and write
    them as safetensors to ``output``.

    Raises:
        WeightsSourceError: the source cannot be read.
        ValueError: the output is not a ``.safetensors`` path or is the source itself; the model cannot be told (give
            ``model``); the weights do not fit the model (strictness as in :func:`load_pretrained`).
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
    overrides = {}
    size = (weights.pretrained_cfg or {}).get("input_size")
    if size:
        overrides["img_size"] = (int(size[-2]), int(size[-1]))
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
    )
