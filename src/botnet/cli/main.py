"""The ``botnet`` command: one thin module per subcommand; user errors print a message, not a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..engine.stopping import TrainingError, TrainingInterrupted
from . import (
    attention_cmd,
    convert_cmd,
    detect_cmd,
    eval_cmd,
    export_cmd,
    info_cmd,
    list_cmd,
    predict_cmd,
    table_cmd,
    train_cmd,
)

SUBCOMMANDS = (
    train_cmd,
    eval_cmd,
    predict_cmd,
    attention_cmd,
    detect_cmd,
    export_cmd,
    convert_cmd,
    table_cmd,
    list_cmd,
    info_cmd,
)
# Errors a command reports as a message. CheckpointError is a ValueError; ExportError is added by user_errors() once
# botnet.export has been imported (an error of that class can only come from a command that imported it).
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, PermissionError, TrainingError)


def user_errors() -> tuple[type[BaseException], ...]:
    export = sys.modules.get("botnet.export")
    return USER_ERRORS + ((export.ExportError,) if export is not None else ())


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
    except Exception as err:
        if not isinstance(err, user_errors()) or os.environ.get("BOTNET_TRACEBACK"):
            raise
        print(f"botnet {args.command}: error: {err}", file=sys.stderr)
        return 2
