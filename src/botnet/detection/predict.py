"""Run a detection checkpoint on image files: pictures with the detections drawn, and COCO-format results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from ..data.folder import DEFAULT_MAX_PIXELS, BadSample
from ..data.image_files import read_image
from ..engine.distributed import autocast, pick_device
from ..engine.outputs import check_output
from ..engine.reporting import atomic_write
from .checkpoints import load_detection_checkpoint
from .coco_eval import to_coco_results
from .export import read_onnx_metadata

RESULTS_FILE = "detections.json"


@torch.no_grad()
def predict_images(
    checkpoint: str | Path,
    images: list[str | Path],
    output: str | Path,
    *,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    ema: bool = False,
    device: str = "auto",
    amp: str = "none",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    onnx: str | Path | None = None,
) -> dict[str, Any]:
    """Detect objects in each image; write ``<output>/<name>.png`` with them drawn and ``<output>/detections.json``.

    The JSON is COCO's result format (``image_id`` is the image's position in ``images``, ``category_id`` the
    dataset's id) plus ``file_name`` and ``category`` (its name), for detections scoring at least
    ``score_threshold``. Every file is read first; one that cannot be (missing, not an image) is a
    :class:`BadSample` naming it (``"failed"``), and the others are predicted. Any type Pillow reads is taken, as
    detection training reads whatever file its annotations name. When no file can be read, neither the model is
    loaded nor anything written. With ``onnx`` (a file written by ``botnet export``, ``checkpoint`` then ``None``)
    the detector runs in onnxruntime, without PyTorch's model code, and the same pictures and JSON are written.
    """
    if not 0.0 <= score_threshold <= 1.0:
        raise ValueError(f"--score-threshold must be in [0, 1], got {score_threshold}")
    if not images:
        raise ValueError("give at least one image file")
    out = check_output(output, option="--output", kind="dir", inputs=images)
    for target in [*(picture_path(out, i, path) for i, path in enumerate(images)), out / RESULTS_FILE]:
        check_output(target, option="--output", inputs=images)  # a picture never replaces an input image
    tensors = [read_image(path, max_pixels) for path in images]  # uint8 (3, H, W) or BadSample
    failed = [t for t in tensors if isinstance(t, BadSample)]
    if len(failed) == len(images):
        return {"checkpoint": str(checkpoint), "images": [], "results": None, "detections": [], "failed": failed}
    if onnx is not None:
        meta = read_onnx_metadata(onnx)
        model, dev, ckpt_dir = OnnxDetector(meta["session"]), torch.device("cpu"), Path(onnx)
    else:
        model, meta, ckpt_dir = load_detection_checkpoint(checkpoint, ema=ema)
        dev = pick_device(device)
        model.to(dev)
    names = dict(zip(meta["category_ids"], meta["class_names"], strict=True))
    cat_ids = meta["category_ids"]
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    written = []
    for index, (path, image) in enumerate(zip(images, tensors, strict=True)):
        if isinstance(image, BadSample):
            continue
        with autocast(dev, amp):
            (pred,) = model([TF.to_dtype(image, torch.float32, scale=True).to(dev)])
        pred = {k: (v.float() if v.is_floating_point() else v).cpu() for k, v in pred.items()}
        keep = pred["scores"] >= score_threshold
        pred = {k: v[keep] for k, v in pred.items()}
        for r in to_coco_results([pred], [index], lambda label: cat_ids[label - 1], mask_threshold=mask_threshold):
            results.append({**r, "file_name": str(path), "category": names[r["category_id"]]})
        picture = draw_detections(image, pred, [names[c] for c in cat_ids], mask_threshold=mask_threshold)
        target = picture_path(out, index, path)
        Image.fromarray(picture.permute(1, 2, 0).numpy()).save(target)
        written.append(str(target))
    atomic_write(out / RESULTS_FILE, json.dumps(results, indent=1) + "\n")
    return {
        "checkpoint": str(ckpt_dir),
        "images": written,
        "results": str(out / RESULTS_FILE),
        "detections": results,
        "failed": failed,
    }


class OnnxDetector:
    """An exported detector in onnxruntime, called as the PyTorch model is: a list of one image, a list of one dict."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.names = [o.name for o in session.get_outputs()]

    def __call__(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        (image,) = images
        outputs = self.session.run(None, {"image": image.cpu().numpy()})
        return [{name: torch.from_numpy(value) for name, value in zip(self.names, outputs, strict=True)}]


def draw_detections(
    image: torch.Tensor, pred: dict[str, torch.Tensor], class_names: list[str], *, mask_threshold: float = 0.5
) -> torch.Tensor:
    """``image`` (uint8 ``(3, H, W)``) with a detector's output drawn: masks, then boxes labelled with the class
    (``class_names[label - 1]``: label 0 is the background) and the score."""
    picture = image
    if "masks" in pred and len(pred["masks"]):
        picture = draw_segmentation_masks(picture, pred["masks"][:, 0] > mask_threshold, alpha=0.45)
    if len(pred["boxes"]):
        labels = [f"{class_names[int(lab) - 1]} {s:.2f}" for lab, s in zip(pred["labels"], pred["scores"], strict=True)]
        picture = draw_bounding_boxes(picture, pred["boxes"], labels=labels, colors="yellow", width=2)
    return picture


def picture_path(out: Path, index: int, image: str | Path) -> Path:
    """Where :func:`predict_images` draws the detections of its ``index``-th image."""
    return Path(out) / f"{index:04d}_{Path(image).stem}.png"
