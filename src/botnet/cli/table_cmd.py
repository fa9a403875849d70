"""``botnet table``: the paper's parameter and multiply-add table, recomputed from our models, figures side by side."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..models.paper import TableEntry


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("table", help="reproduce the paper's params / GMACs table", description=__doc__)
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the rows as JSON")
    p.add_argument("--check", action="store_true", help="exit 1 if any figure is outside the tolerance")
    p.set_defaults(run=run)


def _fmt(value: float | None, spec: str) -> str:
    width = int(spec.lstrip("+").split(".")[0])
    return "-".rjust(width) if value is None else format(value, spec)


def format_table(entries: list[TableEntry]) -> str:
    header = (
        f"{'model':14s} {'input':>5s} | {'params':>7s} {'paper-conv':>10s} {'paper':>6s} {'diff':>6s} | "
        f"{'GMACs':>8s} {'paper':>7s} {'diff%':>6s} | {'top-1':>5s}"
    )
    lines = [header, "-" * len(header)]
    for e in entries:
        r = e.row
        dp = None if r.params_m is None else e.params_paper_m - r.params_m
        dg = None if r.gmacs is None else 100 * (e.gmacs / r.gmacs - 1)
        flag = "" if e.params_ok and e.gmacs_ok else "  <-- outside tolerance"
        lines.append(
            f"{r.label:14s} {r.size:5d} | {e.params_numel_m:7.2f} {e.params_paper_m:10.2f} {_fmt(r.params_m, '6.1f')} "
            f"{_fmt(dp, '+6.2f')} | {e.gmacs:8.2f} {_fmt(r.gmacs, '7.2f')} {_fmt(dg, '+6.2f')} | "
            f"{_fmt(r.top1, '5.1f')}{flag}"
        )
    lines.append(
        "params in millions: true numel, and the paper's convention (conv + FC weights; no BN, biases or position "
        "tables). GMACs: torch.utils.flop_counter multiply-adds. top-1: the paper's ImageNet figure."
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..engine.outputs import check_output
    from ..models.paper import GMACS_TOLERANCE, PARAMS_TOLERANCE_M, paper_table

    if args.json is not None:
        check_output(args.json, option="--json")

    entries = paper_table()
    print(format_table(entries))
    bad = [e for e in entries if not (e.params_ok and e.gmacs_ok)]
    print(
        f"{len(entries) - len(bad)}/{len(entries)} rows within tolerance "
        f"(params +-{PARAMS_TOLERANCE_M}M, GMACs +-{GMACS_TOLERANCE:.0%})"
    )
    if args.json is not None:
        rows = [
            {
                **asdict(e.row),
                "params_numel_m": e.params_numel_m,
                "params_paper_m": e.params_paper_m,
                "ours_gmacs": e.gmacs,
            }
            for e in entries
        ]
        args.json.write_text(json.dumps(rows, indent=2))
    return 1 if (args.check and bad) else 0
