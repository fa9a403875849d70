"""Starting a detector from a detection run's weights (``botnet detect train --weights RUN``).

The whole detector is loaded: backbone, FPN, RPN and the box (and mask) heads. Its class-specific layers (the box
predictor, the mask logits) are kept only when the source was trained on the same class names in the same order;
otherwise they start fresh, and the report says why. A source with masks gives its mask head to a mask model and
leaves it unused in a box model; a box-only source leaves a mask model's mask head as initialised. Position tables
of another training size are resized by their layers' policy, as everywhere else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from ..engine import checkpoint as ckpt
from ..models.weights import TransferReport, apply_state_dict, read_file, read_metadata

CLASS_LAYERS = ("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits.")  # sized by the classes
MASK_LAYERS = ("roi_heads.mask_head.", "roi_heads.mask_predictor.")  # only a Mask R-CNN has them


def detector_source(source: str | Path) -> tuple[Path, dict[str, Any]]:
    """``(weights file, {"model", "class_names"})`` of a detection run, checkpoint or weights file; ValueError for
    anything else, naming what it is and the option that takes it."""
    try:
        ckpt_dir = ckpt.resolve_checkpoint(source)
    except ckpt.CheckpointError as err:
        raise ValueError(f"--weights {source}: {err}") from None
    weights = ckpt_dir / ckpt.MODEL_FILE
    raw = read_metadata(weights)
    if raw.get("task") != "detection":
        what = "a classification run's weights" if "botnet_config" in raw else "not a botnet detector"
        raise ValueError(
            f"--weights {source}: {weights} is {what}. --weights takes a botnet detect train run (the whole "
            "detector); a classification backbone goes in --weights-backbone"
        )
    try:
        return weights, {"model": raw["model_name"], "class_names": json.loads(raw["class_names"])}
    except (KeyError, json.JSONDecodeError) as err:
        raise ValueError(
            f"--weights {source}: {weights} has detection metadata this version cannot use: {err}"
        ) from None


def load_detector_weights(model: nn.Module, source: str | Path, classes: list[str]) -> TransferReport:
    """Load a detection run's weights into ``model`` (built for ``classes``) and report on every tensor."""
    weights, meta = detector_source(source)
    state, _ = read_file(weights)
    same_classes = meta["class_names"] == list(classes)
    if not same_classes:
        state = {k: v for k, v in state.items() if not k.startswith(CLASS_LAYERS)}
    report = apply_state_dict(
        model,
        state,
        source=str(source),
        kind=f"detection run, {meta['model']}",
        optional=lambda k: k.startswith(MASK_LAYERS) or (not same_classes and k.startswith(CLASS_LAYERS)),
        ignorable=lambda k: k.startswith(MASK_LAYERS),
    )
    if same_classes:
        report.notes.append(f"class layers kept: the source was trained on the same {len(classes)} classes")
    else:
        theirs, ours = meta["class_names"], list(classes)
        report.notes.append(
            f"class layers start fresh: the source's classes {_short(theirs)} are not the data's {_short(ours)}"
        )
    return report


def _short(names: list[str]) -> str:
    return "[" + ", ".join(names[:6]) + (f", ... ({len(names)} in all)" if len(names) > 6 else "") + "]"
