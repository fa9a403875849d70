"""``botnet predict --checkpoint PATH IMAGE...``: top-k classes with probabilities, as a table and as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from ..engine.outputs import check_output
from ..engine.reporting import atomic_write

if TYPE_CHECKING:
    from ..data.folder import BadSample

DEFAULT_MAX_PIXELS = 89_478_485  # botnet.data.folder.DEFAULT_MAX_PIXELS (PIL's), without importing torch for the help


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify image files with a checkpoint", description=__doc__)
    add_checkpoint(p)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--topk", type=int, default=5, help="classes to show per image")
    add_image_options(p)
    p.add_argument("--json", metavar="FILE", help="also write the predictions as JSON to FILE ('-': stdout only)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"))
    p.set_defaults(run=run, bounds={"topk": dict(minimum=1), "max_pixels": dict(minimum=1)})


def add_checkpoint(p: argparse.ArgumentParser) -> None:
    """``--checkpoint`` of the commands that read a classifier."""
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="PATH",
        help="a run directory (its best/), its last/ or best/, or a weights file written by botnet convert",
    )


def add_image_options(p: argparse.ArgumentParser) -> None:
    """Options of the commands that run a checkpoint on image files: size, weights, pixel limit."""
    p.add_argument(
        "--native-size",
        action="store_true",
        help="run each image at its own size (default: the checkpoint's resize + center crop)",
    )
    p.add_argument("--ema", action="store_true", help="use the EMA weights")
    add_max_pixels(p)


def add_max_pixels(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="refuse images whose declared width*height exceeds this (decompression bombs)",
    )


def run(args: argparse.Namespace) -> int:
    if args.json and args.json != "-":
        check_output(args.json, option="--json", inputs=args.images)
    from ..classification.predict import predict

    results, failed = predict(
        args.checkpoint,
        args.images,
        topk=args.topk,
        native_size=args.native_size,
        ema=args.ema,
        device=args.device,
        amp=args.amp,
        max_pixels=args.max_pixels,
    )
    text = json.dumps(results, indent=2)
    if results and args.json == "-":
        print(text)
    elif results:
        for r in results:
            h, w = r["input_size"]
            tops = "  ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in r["top"])
            print(f"{r['image']} ({h}x{w}): {tops}")
        if args.json:
            atomic_write(args.json, text + "\n")
    return report_failed(failed, len(args.images), "botnet predict")


def report_failed(failed: list[BadSample], total: int, command: str) -> int:
    """Each image that could not be predicted on stderr (``error: PATH: REASON``), then how many; the exit status:
    0 when none failed, 1 when any did (all of them included)."""
    if not failed:
        return 0
    for bad in failed:
        print(f"error: {bad.path}: {bad.reason}", file=sys.stderr)
    if len(failed) == total:
        print(f"{command}: none of the {total} images could be predicted (see above); nothing written", file=sys.stderr)
    else:
        print(
            f"{command}: {len(failed)} of {total} images could not be predicted (see above); the results hold the "
            f"other {total - len(failed)}",
            file=sys.stderr,
        )
    return 1
