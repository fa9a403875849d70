"""``botnet list [PATTERN]``: the registered models with their default input size."""

from __future__ import annotations

import argparse

from ..models import describe_model, get_config, list_models


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list the registered models", description=__doc__)
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'botnet_t?'")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    names = list_models(args.pattern)
    if not names:
        raise ValueError(f"no model matches {args.pattern!r}; run 'botnet list' for all")
    for name in names:
        h, w = get_config(name).input_size
        print(f"{name:16s} {h}x{w:<6d} {describe_model(name)}")
    return 0
