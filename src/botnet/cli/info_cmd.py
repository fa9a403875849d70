"""``botnet info NAME``: a registered model's config, parameters, multiply-adds at an input size, stages, defaults."""

from __future__ import annotations

import argparse
import json

from ..engine.validate import check_side


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a registered model", description=__doc__)
    p.add_argument("name", help="a model name from 'botnet list'")
    p.add_argument("--size", metavar="H[xW]", help="input size for the GMACs (default: the model's own)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(run=run)


def _parse_size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    try:
        size = (int(h), int(w or h))
    except ValueError:
        raise ValueError(f"--size must be H or HxW in pixels, e.g. 224 or 512x768; got {text!r}") from None
    for side in size:  # at least 1 px, and one float32 image of the size must fit in memory
        check_side("--size", side, minimum=1)
    return size


def describe(name: str, size: tuple[int, int] | None = None) -> dict:
    """Everything ``botnet info`` prints, as a dict (the model is built on the meta device: no memory, no weights)."""
    import torch

    from ..models import count_macs, count_params, create_model, describe_model, get_config
    from ..models.weights import known_sources

    cfg = get_config(name)  # an unknown name is a ValueError with suggestions
    size = size or cfg.input_size
    if min(size) < cfg.total_stride:
        raise ValueError(
            f"input {size[0]}x{size[1]} is smaller than {name}'s total stride {cfg.total_stride}; give --size of at "
            f"least {cfg.total_stride}"
        )
    with torch.device("meta"):
        model = create_model(name, img_size=size)
    return {
        "name": name,
        "description": describe_model(name),
        "default_input_size": list(cfg.input_size),
        "preprocessing": {k: list(v) if isinstance(v, tuple) else v for k, v in model.pretrained_cfg.items()},
        "params": count_params(model),
        "params_paper_convention": count_params(model, convention="paper"),
        "gmacs": {"input_size": list(size), "value": round(count_macs(model, size) / 1e9, 3)},
        "feature_info": model.feature_info,
        "pretrained_sources": [
            {
                "source": r.source,
                "imagenet_top1": r.top1,
                "input_size": r.input_size,
                "top1_origin": r.top1_origin,
                "preprocessing": {k: list(v) if isinstance(v, tuple) else v for k, v in r.preprocessing.items()},
                "preprocessing_origin": r.preprocessing_origin,
                "note": r.note,
            }
            for r in known_sources(name)
        ],
        "config": cfg.to_dict(),  # as registered (the GMACs use img_size = the counted size)
    }


def run(args: argparse.Namespace) -> int:
    info = describe(args.name, _parse_size(args.size) if args.size is not None else None)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    h, w = info["gmacs"]["input_size"]
    dh, dw = info["default_input_size"]
    pre = info["preprocessing"]
    print(f"{info['name']}: {info['description']}")
    print(f"default input {dh}x{dw}, mean {pre['mean']}, std {pre['std']}, crop_pct {pre['crop_pct']}")
    paper = info["params_paper_convention"] / 1e6
    print(f"params {info['params'] / 1e6:.2f}M ({paper:.2f}M in the paper's convention)")
    print(f"GMACs at {h}x{w}: {info['gmacs']['value']:.2f}")
    print("feature_info:")
    for f in info["feature_info"]:
        print(f"  {f['module']:8s} {f['num_chs']:5d} channels, stride {f['reduction']}")
    print(
        "pretrained weights (botnet train --pretrained SOURCE):"
        if info["pretrained_sources"]
        else "pretrained weights: none published for this preset"
    )
    for r in info["pretrained_sources"]:
        pre = r["preprocessing"]
        print(f"  {r['source']}: ImageNet-1k top-1 {r['imagenet_top1']:g}% at {r['input_size']} ({r['top1_origin']})")
        print(f"    preprocessing crop_pct {pre['crop_pct']}, {pre['interpolation']} ({r['preprocessing_origin']})")
        if r["note"]:
            print(f"    {r['note']}")
    print("config:")
    for key, value in info["config"].items():
        print(f"  {key}: {value}")
    return 0
