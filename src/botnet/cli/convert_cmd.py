"""``botnet convert SOURCE OUT.safetensors``: any weights SOURCE written as our safetensors file.

SOURCE is a file (ours, a timm state dict or a torchvision ResNet state dict, also one saved from a
DistributedDataParallel or torch.compile model), a botnet train run or checkpoint directory, a botnet detect train
run (its backbone, written as headless weights), timm:NAME.TAG or torchvision:WEIGHTS. The file records the model
config, its name, the preprocessing of the weights, the names of the classifier's classes and the source;
``botnet train --pretrained OUT.safetensors`` and ``create_model(name, pretrained=OUT.safetensors)`` then read it with
nothing else installed, and a file with class names is a checkpoint for botnet predict, eval and export.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert pretrained weights to our safetensors format", description=__doc__)
    p.add_argument("source", metavar="SOURCE", help="file, run directory, timm:NAME.TAG or torchvision:WEIGHTS")
    p.add_argument("output", metavar="OUT.safetensors", help="the file to write")
    p.add_argument("--model", metavar="NAME", help="our model (default: the one the source names or looks like)")
    p.add_argument(
        "--class-names",
        metavar="FILE",
        help="a text file of the classifier's class names, one a line in output order (default: the source's; "
        "botnet predict, eval and export need them)",
    )
    p.add_argument(
        "--strict",
        default="true",
        choices=("true", "false"),
        help="missing or unexpected keys other than the classifier are errors (false: reported)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(run=run)


def read_names(path: str) -> list[str]:
    """The non-blank lines of a class-names file, stripped."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return [line.strip() for line in fh if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"--class-names {path}: cannot read it ({type(err).__name__}: {err})") from None


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if Path(args.output).exists() and not args.overwrite:
        raise ValueError(f"{args.output} exists; choose another file or pass --overwrite")
    names = read_names(args.class_names) if args.class_names else None
    from ..models.weights import convert_weights

    strict = args.strict == "true"
    result = convert_weights(args.source, args.output, model=args.model, strict=strict, class_names=names)
    print(result.summary())
    return 0
