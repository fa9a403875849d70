"""``botnet list [PATTERN]``: the registered models with their default input size, and the published pretrained
weights each can load (SOURCE, ImageNet-1k top-1 and its input size, where the figures come from)."""

from __future__ import annotations

import argparse

from ..models import describe_model, get_config, known_sources, list_models


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list the registered models", description=__doc__)
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'botnet_t?'")
    p.add_argument("--pretrained", action="store_true", help="only the models with known pretrained weights")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    names = list_models(args.pattern, task="classification")
    if args.pretrained:
        names = [n for n in names if known_sources(n)]
    if not names:
        raise ValueError(f"no model matches {args.pattern!r}; run 'botnet list' for all")
    origins: dict[str, str] = {}
    for name in names:
        h, w = get_config(name).input_size
        print(f"{name:20s} {h}x{w:<6d} {describe_model(name)}")
        for row in known_sources(name):
            mark = origins.setdefault(row.top1_origin, f"[{len(origins) + 1}]")
            note = f"; {row.note}" if row.note else ""
            print(f"{'':20s} pretrained {row.source}: ImageNet top-1 {row.top1:g}% at {row.input_size} {mark}{note}")
    for origin, mark in origins.items():
        print(f"{mark} {origin}")
    return 0
