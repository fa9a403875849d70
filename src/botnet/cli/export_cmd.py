"""``botnet export --checkpoint PATH``: one ONNX or torch.export file for every batch size and input size.

The file records the model name, class names and preprocessing, and is checked against PyTorch at two input sizes
before it is put in place. A detection checkpoint (``botnet detect train``) exports the whole detector to ONNX, one
image a call at any height and width (:mod:`botnet.detection.export`).
"""

from __future__ import annotations

import argparse

from ..engine.outputs import check_output
from .predict_cmd import add_checkpoint

FORMATS = ("onnx", "pt2")  # botnet.export.FORMATS, without importing torch for the help
DEFAULT_ATOL = 1e-4  # botnet.export.DEFAULT_ATOL


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a classifier or a detector to ONNX", description=__doc__)
    add_checkpoint(p)
    p.add_argument("--format", choices=FORMATS, default=None, help="default: from --output, else onnx")
    p.add_argument(
        "--output",
        metavar="FILE",
        help="default: <run dir>/<model>-<last|best>.onnx (or .pt2); beside a weights file, its name with .onnx",
    )
    p.add_argument("--ema", action="store_true", help="export the EMA weights")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument(
        "--atol",
        type=float,
        default=None,
        help=f"largest allowed |exported - PyTorch| (default: {DEFAULT_ATOL:g} for logits; a detector's boxes, scores "
        "and masks: 1e-3)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip running the exported file against PyTorch")
    p.set_defaults(run=run, bounds={"atol": dict(minimum=0, optional=True), "opset": dict(minimum=1, optional=True)})


def run(args: argparse.Namespace) -> int:
    if args.output is not None:
        check_output(args.output, option="--output")  # never inside the checkpoint it reads (check_output)
    if _is_detector(args.checkpoint):
        return run_detector(args)
    from ..export import check_opset, export_checkpoint

    if args.format != "pt2":
        check_opset(args.opset)  # the installed exporter's range, before the checkpoint is read
    report = export_checkpoint(
        args.checkpoint,
        args.output,
        ema=args.ema,
        format=args.format,
        verify=not args.no_verify,
        atol=args.atol if args.atol is not None else DEFAULT_ATOL,
        opset=args.opset,
    )
    print(report.summary())
    return 0


def _is_detector(checkpoint: str) -> bool:
    from ..engine.checkpoint import CheckpointError, resolve_checkpoint
    from ..engine.layout import MODEL_FILE
    from ..models.weights import read_metadata

    try:
        return read_metadata(resolve_checkpoint(checkpoint, verify=False) / MODEL_FILE).get("task") == "detection"
    except (CheckpointError, ValueError, OSError):
        return False  # the classifier's export names what is wrong with it


def run_detector(args: argparse.Namespace) -> int:
    if args.format == "pt2" or (args.output and str(args.output).endswith(".pt2")):
        raise ValueError(
            "a detector exports to ONNX only: torch.export cannot trace the data-dependent shapes of torchvision's "
            "detection models (their proposals and detections); give --output FILE.onnx"
        )
    if args.no_verify or args.opset is not None:
        raise ValueError("a detector's export is always checked, at its own opset: drop --no-verify and --opset")
    from ..detection.export import DEFAULT_ATOL as DETECTOR_ATOL
    from ..detection.export import export_detector

    r = export_detector(
        args.checkpoint, args.output, ema=args.ema, atol=args.atol if args.atol is not None else DETECTOR_ATOL
    )
    print(
        f"wrote {r['output']} ({r['bytes'] / 1e6:.1f} MB): {r['model']} from {r['checkpoint']}, one image a call "
        f"(float32 3xHxW in 0..1) at any height and width, opset {r['opset']}; class names in its metadata"
    )
    for c in r["checks"]:
        diffs = ", ".join(f"{k} {v:.2g}" for k, v in c["max_diff"].items())
        print(
            f"  onnxruntime = PyTorch at {c['size'][0]}x{c['size'][1]}: {c['matched']} of {c['detections']} "
            f"detections paired (same label), max |difference| {diffs} (within {r['atol']:g}); "
            f"{1000 * c['ort_s']:.0f} ms onnxruntime, {1000 * c['torch_s']:.0f} ms PyTorch"
        )
    return 0
