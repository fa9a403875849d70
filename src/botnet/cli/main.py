"""The ``botnet`` command: one thin module per subcommand; user errors print a message, not a traceback.

Each subcommand's numeric options are checked against its table of bounds (``p.set_defaults(bounds={...})``, the
keywords of :func:`botnet.engine.validate.check_option`) right after parsing, before the command imports its task;
the options of ``train`` and ``detect train`` are checked by their options class. A user error (a bad option, a
missing file, a refused path) is one line and exit status 2; anything else is an internal error and keeps its
traceback, followed by a one-line summary.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from .. import __version__
from ..engine.stopping import TrainingError, TrainingInterrupted
from ..engine.validate import check_options
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
# Errors a command reports as a message. CheckpointError is a ValueError; OSError covers a full disk, a path that is a
# directory and the like (its message names the file); ExportError is added by user_errors() once botnet.export has
# been imported (an error of that class can only come from a command that imported it).
USER_ERRORS = (ValueError, TypeError, OSError, TrainingError)
PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


def user_errors() -> tuple[type[BaseException], ...]:
    export = sys.modules.get("botnet.export")
    return USER_ERRORS + ((export.ExportError,) if export is not None else ())


# Options of one command that users give to another: the hint names the option that does it there.
OTHER_SPELLINGS = {
    ("detect", "train"): {
        "--pretrained": "--weights-backbone SOURCE (classification weights for the backbone) or --weights RUN (a "
        "detection run, the whole detector)",
    },
    ("train",): {
        "--weights-backbone": "--pretrained SOURCE",
        "--weights": "--pretrained SOURCE",
    },
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="botnet", description="Bottleneck Transformers (BoTNet) at any input size.")
    parser.add_argument("--version", action="version", version=f"botnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    _mark_leaves(parser)
    return parser


def _mark_leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> None:
    """Let every command's own parser report the arguments it does not know, with its own usage."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        parser.set_defaults(leaf_parser=parser, leaf_path=path)
    for action in subs:
        for name, child in action.choices.items():
            _mark_leaves(child, (*path, name))


def refuse_unknown(args: argparse.Namespace, extra: list[str]) -> None:
    """Exit 2 with the command's usage, naming each unknown option and the nearest one the command has."""
    import difflib

    parser: argparse.ArgumentParser = args.leaf_parser
    known = [s for a in parser._actions for s in a.option_strings]
    hints = []
    for word in extra:
        name = word.split("=", 1)[0]
        if not name.startswith("-"):
            continue
        other = OTHER_SPELLINGS.get(args.leaf_path, {}).get(name)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        if other or close:
            hints.append(f"{name}: did you mean {other or close[0]}?")
    parser.error(f"unrecognized arguments: {' '.join(extra)}" + ("; " + "; ".join(hints) if hints else ""))


def check_args(args: argparse.Namespace) -> None:
    """Refuse, naming the option, every numeric option outside its command's table of bounds."""
    table = getattr(args, "bounds", None) or {}
    for name, value in check_options(vars(args), table).items():
        setattr(args, name, value)


@contextlib.contextmanager
def plain_warnings() -> Iterator[None]:
    """Show the package's own warnings (an unverified checkpoint, duplicate category names) as ``warning: ...``."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if category.__module__.startswith("botnet") or str(filename).startswith(PACKAGE_DIR):
            print(f"warning: {message}", file=sys.stderr, flush=True)
        else:
            original(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    if extra:
        refuse_unknown(args, extra)
    name = f"botnet {args.command}" + (f" {args.detect_command}" if getattr(args, "detect_command", None) else "")
    try:
        with plain_warnings():
            check_args(args)
            return int(args.run(args) or 0)
    except TrainingInterrupted as err:  # a requested stop: exit like the signal did, after the message
        print(f"{name}: {err}", file=sys.stderr)
        return 128 + err.signum
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if os.environ.get("BOTNET_TRACEBACK"):
            raise
        if isinstance(err, user_errors()):
            print(f"{name}: error: {err}", file=sys.stderr)
            return 2
        traceback.print_exc()
        summary = str(err).strip().splitlines()[0] if str(err).strip() else "(no message)"
        print(
            f"{name}: internal error: {type(err).__name__}: {summary} (a bug, not a mistake in the command: the "
            "traceback above says where)",
            file=sys.stderr,
        )
        return 1
