"""A detection checkpoint as one ONNX file: the whole detector, checked against PyTorch before it is put in place.

The graph holds everything between an image and its detections: torchvision's resize and normalisation (and the
padding to ``image_size`` x ``image_size`` of a ``fixed_size`` run), the BoTNet-FPN backbone, the RPN, the box (and
mask) heads and their post-processing with NMS; Mask R-CNN's masks come out pasted at the image's size, as
probabilities. One image a call (batch 1), any height and width: input ``image``, float32 ``(3, H, W)`` in 0..1;
outputs ``boxes`` ``(N, 4)`` (x1, y1, x2, y2 in the image's pixels), ``labels`` ``(N,)`` (1-based indices into the
class names, 0 being the background), ``scores`` ``(N,)`` and for Mask R-CNN ``masks`` ``(N, 1, H, W)``. The class
names, the dataset's category ids and the model are JSON values of the file's metadata.

It is exported with the TorchScript-based exporter (``dynamo=False``), which follows torchvision's own ONNX support
for these models (opset 11 and above): torch.export cannot trace their data-dependent shapes. The file is then run
by onnxruntime at two image sizes it was not traced at, twice each: as written, and once more as the same graph with
the score threshold at 0 and NMS off (in the RPN and the box head), so that every image gives the model's
best-scoring boxes to compare, whatever the weights detect on a synthetic image, and no near-tie of overlap decides
which survive. Detections are paired one to one (the same label, box and score within ``atol``) and the pairs'
masks must agree within ``atol``; a detection without a partner is allowed only where a near-tie among the
lowest-scoring proposals decides what survives NMS and the top-k cut (:data:`TIE_SHARE`).
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..engine.reporting import atomic_output
from .checkpoints import load_detection_checkpoint

OPSET = 17  # torchvision's detection models export from opset 11; 17 is what onnxruntime runs everywhere
DEFAULT_ATOL = 1e-3  # pixels for boxes, probability for scores and masks
OUTPUTS = ("boxes", "labels", "scores", "masks")


class DetectorExportError(ValueError):
    """A detector that cannot be exported, or an exported file that does not match PyTorch; says why."""


def check_sizes(image_size: int) -> list[tuple[int, int]]:
    """Two ``(H, W)`` image sizes to check at (one landscape, one portrait, neither the traced one)."""
    return [(max(32, image_size * 2 // 3), image_size), (image_size, max(32, image_size * 3 // 5))]


def _export(model: torch.nn.Module, path: Path, masks: bool, trace_size: tuple[int, int]) -> None:
    names = list(OUTPUTS if masks else OUTPUTS[:3])
    dynamic = {"image": {1: "height", 2: "width"}, **{n: {0: "detections"} for n in names}}
    if masks:
        dynamic["masks"] = {0: "detections", 2: "height", 3: "width"}
    sample = torch.rand(3, *trace_size, generator=torch.Generator().manual_seed(0))
    try:
        with warnings.catch_warnings():  # the tracer's notes on constants: checked by running the file, below
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, ([sample],), str(path), dynamo=False, opset_version=OPSET, input_names=["image"],
                output_names=names, dynamic_axes=dynamic,
            )  # fmt: skip
    except Exception as err:  # noqa: BLE001 - any exporter failure is reported with its cause
        raise DetectorExportError(f"the ONNX export of the detector failed: {type(err).__name__}: {err}") from err


# Which of a barely-separated set of low-scoring proposals survive NMS and the top-k cut can flip on the last bits of
# a float: a detection of one output without its partner in the other is allowed among the lowest-scoring tenth, for
# at most this share of the detections.
TIE_SHARE = 0.05


def _match(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray], atol: float) -> list[tuple[int, int]]:
    """Pairs ``(our index, their index)``, one to one, of detections with the same label whose box and score agree
    within ``atol``; greedy in their score order."""
    free = set(range(len(theirs["scores"])))
    pairs = []
    for i in np.argsort(-ours["scores"], kind="stable"):
        close = [
            j for j in free
            if theirs["labels"][j] == ours["labels"][i]
            and abs(float(theirs["scores"][j]) - float(ours["scores"][i])) <= atol
            and np.abs(theirs["boxes"][j].astype(np.float64) - ours["boxes"][i]).max() <= atol
        ]  # fmt: skip
        if close:
            j = min(close, key=lambda j: np.abs(theirs["boxes"][j].astype(np.float64) - ours["boxes"][i]).max())
            free.discard(j)
            pairs.append((int(i), j))
    return pairs


def _compare(model: torch.nn.Module, session: Any, size: tuple[int, int], atol: float) -> dict[str, Any]:
    image = torch.rand(3, *size, generator=torch.Generator().manual_seed(size[0] * 7919 + size[1]))
    with torch.no_grad():
        t0 = time.perf_counter()
        (ref,) = model([image])
        torch_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": image.numpy()}), strict=True))
    ort_s = time.perf_counter() - t0
    theirs = {k: v.numpy() for k, v in ref.items()}
    pairs = _match(got, theirs, atol)
    n = max(len(got["scores"]), len(theirs["scores"]))
    tail = float(np.quantile(theirs["scores"], 0.1)) if len(theirs["scores"]) else 0.0
    lone = [float(got["scores"][i]) for i in set(range(len(got["scores"]))) - {i for i, _ in pairs}]
    lone += [float(theirs["scores"][j]) for j in set(range(len(theirs["scores"]))) - {j for _, j in pairs}]
    worst = {"boxes": 0.0, "scores": 0.0}
    if pairs:
        ours_i, theirs_j = (list(t) for t in zip(*pairs, strict=True))
        for name in ("boxes", "scores", "masks") if "masks" in got else ("boxes", "scores"):
            diff = got[name][ours_i].astype(np.float64) - theirs[name][theirs_j]
            worst[name] = float(np.abs(diff).max())
    if len(lone) > max(1, TIE_SHARE * n) or any(score > tail + atol for score in lone) or worst.get("masks", 0) > atol:
        raise DetectorExportError(
            f"the exported detector differs from PyTorch at {size[0]}x{size[1]}: {len(pairs)} of {n} detections agree "
            f"(label, and box and score within {atol:g}; the masks of those by {worst.get('masks', 0):.3g}), "
            f"{len(lone)} have no partner (scores {sorted(lone, reverse=True)[:5]}); the file was not written"
        )
    return {"size": list(size), "detections": n, "matched": len(pairs), "max_diff": worst, "ort_s": ort_s,
            "torch_s": torch_s}  # fmt: skip


def export_detector(
    checkpoint: str | Path, output: str | Path | None = None, *, ema: bool = False, atol: float = DEFAULT_ATOL
) -> dict[str, Any]:
    """Export a ``botnet detect train`` checkpoint to ONNX (default ``<run dir>/<model>-<checkpoint>.onnx``),
    checked as the module doc says; returns what was written and measured."""
    try:
        import onnx
        import onnxruntime  # noqa: F401 - the check runs the file with it
    except ImportError:
        raise DetectorExportError("ONNX export needs onnx and onnxruntime: pip install 'botnet[export]'") from None
    model, meta, ckpt_dir = load_detection_checkpoint(checkpoint, ema=ema)
    args = meta["detector_args"]
    masks = meta["model"].startswith("maskrcnn_")
    out = Path(output) if output is not None else ckpt_dir.parent / f"{meta['model']}-{ckpt_dir.name}.onnx"
    image_size = int(args.get("image_size") or 512)
    loose = copy.deepcopy(model)
    loose.roi_heads.score_thresh = 0.0  # the check's copy: every image keeps its best-scoring boxes, and no NMS
    loose.roi_heads.nms_thresh = loose.rpn.nms_thresh = 1.0  # decides what is kept on a near-tie of overlap
    checks = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant, name in ((model, "file.onnx"), (loose, "loose.onnx")):
            _export(variant, Path(tmp) / name, masks, (image_size * 3 // 4, image_size * 9 // 10))
        for variant, name in ((model, "file.onnx"), (loose, "loose.onnx")):
            session = onnx_session(Path(tmp) / name)
            checks += [_compare(variant, session, size, atol) for size in check_sizes(image_size)]
        proto = onnx.load(str(Path(tmp) / "file.onnx"))
    metadata = {"task": "detection", "model": meta["model"], "class_names": meta["class_names"],
                "category_ids": meta["category_ids"], "image_size": image_size}  # fmt: skip
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    proto.doc_string = f"botnet {meta['model']} detector; metadata values are JSON"
    with atomic_output(out, suffix=".onnx") as tmp_path:
        onnx.save(proto, str(tmp_path))
    return {"output": str(out), "bytes": out.stat().st_size, "model": meta["model"], "checkpoint": str(ckpt_dir),
            "atol": atol, "checks": checks, "opset": OPSET}  # fmt: skip


def onnx_session(path: str | Path) -> Any:
    """An onnxruntime session on the CPU that logs errors only (not its notes on the detections' varying count)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a detector file written by :func:`export_detector`; ValueError for any other file."""
    try:
        session = onnx_session(path)
    except Exception as err:  # noqa: BLE001 - onnxruntime's own error types: a file it cannot read
        raise DetectorExportError(f"{path} is not an ONNX file onnxruntime can run: {err}") from None
    raw = session.get_modelmeta().custom_metadata_map
    if json.loads(raw.get("task", "null")) != "detection":
        raise DetectorExportError(f"{path} is not a detector exported by botnet export (no detection metadata)")
    return {"session": session, **{k: json.loads(v) for k, v in raw.items()}}
