"""``botnet attention --checkpoint PATH IMAGE``: a PNG of where chosen query positions of an attention layer look,
one heat map per head."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.outputs import check_output
from .predict_cmd import add_checkpoint, add_image_options

# --panel: a side of at least 32 px, and one 8-bit RGB panel must fit in memory (the whole figure is checked again
# once the number of heads and queries is known)
BOUNDS = {"panel": dict(side=True, minimum=32, bytes_per_pixel=3), "max_pixels": dict(minimum=1)}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attention", help="draw the attention maps of a checkpoint on an image", description=__doc__)
    add_checkpoint(p)
    p.add_argument("image", metavar="IMAGE", help="an image file")
    p.add_argument("--layer", help="an attention layer, e.g. layer4.0.attn (default: the last one)")
    p.add_argument(
        "--query",
        action="append",
        metavar="ROW,COL",
        help="a query position in the layer's feature-map cells, repeatable (default: the centre cell)",
    )
    p.add_argument("--output", metavar="FILE", help="PNG to write (default: <image name>-attention.png here)")
    add_image_options(p)
    p.add_argument("--panel", type=int, default=192, help="height of each panel in pixels")
    p.add_argument("--interpolation", choices=("bilinear", "nearest"), default="bilinear", help="heat map upsampling")
    p.set_defaults(run=run, bounds=BOUNDS)


def run(args: argparse.Namespace) -> int:
    from ..classification.attention_figure import parse_query

    queries = [parse_query(q) for q in args.query or ()]
    output = args.output or f"{Path(args.image).stem}-attention.png"
    if not output.lower().endswith(".png"):
        raise ValueError(f"--output must be a .png file, got {output!r}")
    check_output(output, option="--output", inputs=[args.image])
    from ..classification.attention_figure import attention_figure

    figure = attention_figure(
        args.checkpoint,
        args.image,
        output,
        layer=args.layer,
        queries=queries,
        native_size=args.native_size,
        ema=args.ema,
        panel=args.panel,
        interpolation=args.interpolation,
        max_pixels=args.max_pixels,
    )
    print(figure.summary())
    return 0
