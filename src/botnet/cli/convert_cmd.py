"""``botnet convert SOURCE OUT.safetensors``: any weights SOURCE written as our safetensors file.

SOURCE is a file (ours, a timm state dict or a torchvision ResNet state dict), a botnet train run or checkpoint
directory, timm:NAME.TAG or torchvision:WEIGHTS. The file records the model config, its name, the preprocessing of
the weights and the source; ``botnet train --pretrained OUT.safetensors`` and ``create_model(name,
pretrained=OUT.safetensors)`` then read it with nothing else installed.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert pretrained weights to our safetensors format", description=__doc__)
    p.add_argument("source", metavar="SOURCE", help="file, run directory, timm:NAME.TAG or torchvision:WEIGHTS")
    p.add_argument("output", metavar="OUT.safetensors", help="the file to write")
    p.add_argument("--model", metavar="NAME", help="our model (default: the one the source names or looks like)")
    p.add_argument(
        "--strict",
        default="true",
        choices=("true", "false"),
        help="missing or unexpected keys other than the classifier are errors (false: reported)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if Path(args.output).exists() and not args.overwrite:
        raise ValueError(f"{args.output} exists; choose another file or pass --overwrite")
    from ..models.convert import convert_weights

    result = convert_weights(args.source, args.output, model=args.model, strict=args.strict == "true")
    print(result.summary())
    return 0
