"""``botnet detect``: Mask R-CNN / Faster R-CNN with a BoTNet-FPN backbone: train, eval, predict, list.

``botnet detect train`` with no options trains the small Mask R-CNN on the built-in COCO-format shapes dataset and
prints box and mask AP. Under torchrun it trains on many processes, like ``botnet train``.
"""

from __future__ import annotations

import argparse
import json

from ..engine.outputs import check_output
from .eval_cmd import add_eval_options, eval_options
from .predict_cmd import add_max_pixels, report_failed
from .train_cmd import add_training_arguments


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="detection and instance segmentation", description=__doc__)
    tasks = p.add_subparsers(dest="detect_command", required=True, metavar="ACTION")

    from ..detection.task import DETECTION

    t = tasks.add_parser(
        "train",
        help="train a detector (built-in shapes data by default)",
        description="Train a detector. Options come from the defaults, then --config FILE (YAML), then the flags.",
    )
    add_training_arguments(t, DETECTION)

    e = tasks.add_parser("eval", help="COCO box / mask AP of a checkpoint")
    e.add_argument("--checkpoint", required=True, metavar="PATH", help="a run directory, its last/ or best/")
    e.add_argument("--data", metavar="DIR", help="COCO-format root (default: the run's own data)")
    e.add_argument("--split", help="split to evaluate: DIR/annotations/instances_SPLIT.json (default: the run's val)")
    add_eval_options(e, batch_size=DETECTION.eval_batch_size)
    e.set_defaults(run=run_eval)

    r = tasks.add_parser("predict", help="draw a checkpoint's detections on images and write them as COCO JSON")
    model = r.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", metavar="PATH", help="a run directory, its last/ or best/")
    model.add_argument(
        "--onnx", metavar="FILE", help="a detector exported by botnet export, run with onnxruntime (on the CPU)"
    )
    r.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    r.add_argument("--output", default="predictions", metavar="DIR", help="folder for the pictures and the JSON")
    r.add_argument("--score-threshold", type=float, default=0.5, help="keep detections scoring at least this")
    r.add_argument("--ema", action="store_true", help="use the EMA weights")
    r.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    r.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"))
    add_max_pixels(r)
    r.set_defaults(
        run=run_predict, bounds={"score_threshold": dict(minimum=0, maximum=1), "max_pixels": dict(minimum=1)}
    )

    ls = tasks.add_parser("list", help="list the detection models")
    ls.set_defaults(run=run_list)


def run_eval(args: argparse.Namespace) -> int:
    from ..detection.coco_eval import format_metrics_table
    from ..detection.task import DETECTION

    r = DETECTION.evaluate_checkpoint(args.checkpoint, args.data, split=args.split, **eval_options(args))
    if "output" in r:
        table = {t: {k: float("nan") if v is None else v for k, v in r[t].items()} for t in ("bbox", "segm") if t in r}
        print(
            f"{r['model']} on {r['data']} ({r['images']} images, {r['detections']} detections; checkpoint "
            f"{r['integrity']})"
        )
        print(format_metrics_table(table))
        print(f"written to {r['output']}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    check_output(args.output, option="--output", kind="dir", inputs=args.images)
    from ..detection.predict import predict_images

    if args.onnx and (args.ema or args.device == "cuda" or args.amp != "none"):
        raise ValueError("--onnx runs the exported file as it is, in onnxruntime on the CPU: drop --ema/--device/--amp")
    r = predict_images(
        args.checkpoint,
        args.images,
        args.output,
        score_threshold=args.score_threshold,
        ema=args.ema,
        device=args.device,
        amp=args.amp,
        max_pixels=args.max_pixels,
        onnx=args.onnx,
    )
    failed = {bad.path for bad in r["failed"]}
    if r["images"]:
        for path in r["images"]:
            print(path)
        good = [p for p in args.images if p not in failed]
        counts = json.dumps({p: sum(d["file_name"] == p for d in r["detections"]) for p in good})
        print(f"{len(r['detections'])} detections {counts}; results in {r['results']}")
    return report_failed(r["failed"], len(args.images), "botnet detect predict")


def run_list(args: argparse.Namespace) -> int:
    from ..detection.models import list_detection_models

    print("\n".join(list_detection_models()))
    return 0
