"""The ``botnet`` command: one thin module per subcommand; user errors print a message, not a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..engine import CheckpointError, TrainingError
from ..engine.loop import TrainingInterrupted
from ..export import ExportError
from . import attention_cmd, detect_cmd, eval_cmd, export_cmd, info_cmd, list_cmd, predict_cmd, table_cmd, train_cmd

SUBCOMMANDS = (train_cmd, eval_cmd, predict_cmd, attention_cmd, detect_cmd, export_cmd, table_cmd, list_cmd, info_cmd)
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, PermissionError, CheckpointError, TrainingError, ExportError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="botnet", description="Bottleneck Transformers (BoTNet) at any input size.")
    parser.add_argument("--version", action="version", version=f"botnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except TrainingInterrupted as err:  # a requested stop: exit like the signal did, after the message
        print(f"botnet {args.command}: {err}", file=sys.stderr)
        return 128 + err.signum
    except USER_ERRORS as err:
        if os.environ.get("BOTNET_TRACEBACK"):
            raise
        print(f"botnet {args.command}: error: {err}", file=sys.stderr)
        return 2
