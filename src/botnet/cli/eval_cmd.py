"""``botnet eval``: top-1, balanced and per-class accuracy of a checkpoint on its validation data or on DIR/val;
writes a JSON result and the confusion matrix as a PNG."""

from __future__ import annotations

import argparse

from ..engine.outputs import check_output
from .predict_cmd import add_checkpoint

BOUNDS = {"batch_size": dict(minimum=1), "workers": dict(minimum=0, optional=True)}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint", description=__doc__)
    add_checkpoint(p)
    p.add_argument(
        "--data",
        metavar="DIR",
        help="ImageFolder root with val/<class>/*, or without val/ the share of train/ a run holds out "
        "(default: the run's own data)",
    )
    p.add_argument("--model", help="fail unless the checkpoint holds this model")
    from ..classification.task import CLASSIFICATION  # the options, not the model code: no torch

    add_eval_options(p, batch_size=CLASSIFICATION.eval_batch_size)
    p.set_defaults(run=run)


def add_eval_options(p: argparse.ArgumentParser, *, batch_size: int) -> None:
    """The options every checkpoint evaluation takes (``botnet eval``, ``botnet detect eval``)."""
    p.add_argument("--ema", action="store_true", help="evaluate the EMA weights")
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--workers", type=int, default=None, help="data-loading processes (default: auto, as in train)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"))
    p.add_argument("--output", metavar="FILE", help="where to write the JSON result (default: RUN/eval.json)")
    p.set_defaults(bounds=BOUNDS)


def eval_options(args: argparse.Namespace) -> dict:
    """The options of :func:`add_eval_options` as keyword arguments (their bounds are checked by the CLI's main);
    an ``--output`` that cannot be written is refused here, before any work."""
    if args.output is not None:
        check_output(args.output, option="--output", inputs=[args.data])
    names = ("ema", "batch_size", "workers", "device", "amp", "output")
    return {name: getattr(args, name) for name in names}


def run(args: argparse.Namespace) -> int:
    from ..classification.task import CLASSIFICATION

    r = CLASSIFICATION.evaluate_checkpoint(args.checkpoint, args.data, model=args.model, **eval_options(args))
    if "output" in r:
        print(
            f"{r['model']} on {r['data']}: top-1 {r['top1']:.2f}%  balanced {r['balanced_accuracy']:.2f}%  "
            f"top-5 {r['top5']:.2f}%  ({r['images']} images; checkpoint {r['integrity']})"
        )
        width = max(len(name) for name in r["per_class_accuracy"])
        for name, acc in r["per_class_accuracy"].items():
            shown = "-" if acc is None else f"{acc:6.2f}%"
            print(f"  {name:<{width}}  {shown}  ({r['per_class_images'][name]} images)")
        print(f"results: {r['output']}; confusion matrix: {r['confusion_png']}")
    return 0
