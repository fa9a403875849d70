"""``botnet train``: train a classifier (built-in shapes data by default); works under torchrun for many processes.

Options come from the defaults, then ``--config FILE`` (YAML), then the flags below. The output directory gets
config.yaml, metrics.jsonl, curves.png, confusion.png and the checkpoints last/ and best/. An ImageFolder without
val/ holds out --val-fraction of each class to validate.

Many processes: ``torchrun --nproc_per_node 2 -m botnet train ...`` (gloo on CPU, nccl on GPU). Several machines:
``torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 -m botnet train ...``
on each machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..classification.task import CLASSIFICATION
from ..engine.config import (
    RESUMABLE_CHANGES,
    add_arguments,
    build_config,
    check_resume_changes,
    coerce,
    load_yaml,
    overrides_from_args,
)
from ..engine.data_identity import resume_data_option
from ..engine.layout import CONFIG_FILE, resolve_run_dir
from ..engine.outputs import check_output
from ..engine.task import Task


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a classifier",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_training_arguments(p, CLASSIFICATION)


def add_training_arguments(p: argparse.ArgumentParser, task: Task) -> None:
    """The arguments of a task's training command: --config, --resume, --overwrite and one flag per option."""
    p.add_argument("--config", metavar="FILE", help="YAML file of options (flags override it)")
    p.add_argument(
        "--resume", metavar="DIR", help="continue the run in DIR (or the run of DIR/last, DIR/best) where it stopped"
    )
    p.add_argument("--overwrite", action="store_true", help="replace the run already in the output directory")
    add_arguments(p.add_argument_group("options (also YAML keys, with _ for -)"), task.options)
    p.set_defaults(run=lambda args: run_training(args, task))


def run_training(args: argparse.Namespace, task: Task) -> int:
    """Train (or resume) a run of ``task``; bad options and outputs are reported before torch loads."""
    cfg = config_from_args(args, task.options, RESUMABLE_CHANGES)
    check_run_output(cfg, args, *(getattr(cfg, name) for name in task.weights_options))
    task.train(cfg, resume=bool(args.resume), overwrite=args.overwrite)
    return 0


def config_from_args(args: argparse.Namespace, cls: type, resumable: tuple[str, ...]) -> Any:
    """The run's options: defaults, then ``--config``, then flags; or, for ``--resume``, the run's own config.yaml
    with only the ``resumable`` options changeable."""
    flags = overrides_from_args(args, cls)
    if args.resume:
        if args.config:
            raise ValueError("--resume takes its options from the run's config.yaml; drop --config")
        if "output" in flags:
            raise ValueError("--resume writes to the run it continues; drop --output (or start a new run with it)")
        run = resolve_run_dir(args.resume)  # RUN/best or RUN/last: the run that owns it, never inside a checkpoint
        if run != Path(args.resume):
            print(
                f"note: {args.resume} is a checkpoint of the run {run}: continuing that run from its own last "
                "checkpoint (a resume always continues the run; nothing is written inside a checkpoint)",
                file=sys.stderr,
            )
        saved_file = run / CONFIG_FILE
        if not run.is_dir():
            raise FileNotFoundError(f"cannot resume: run directory {run} does not exist")
        if not saved_file.is_file():
            raise FileNotFoundError(f"cannot resume: {saved_file} does not exist (is {run} a run directory?)")
        saved = build_config(saved_file, config_cls=cls, run_config=True)
        if not saved.builtin_data:  # the same data at another place is no change; other data is refused
            data, note = resume_data_option(run, saved.data, flags.pop("data", None))
            if note:
                print(note, file=sys.stderr)
            if data is not None:
                flags["data"] = data
        changes = {k: coerce(k, v, cls) for k, v in flags.items() if k != "data" or saved.builtin_data}
        if "epochs" in changes and changes["epochs"] != saved.epochs:  # more epochs extend the run (re-planned)
            check_extension(run, saved.epochs, changes.pop("epochs"))
        check_resume_changes(saved, changes, resumable)
        return build_config(saved_file, config_cls=cls, run_config=True, **{**flags, "output": str(run)})
    if args.config:
        load_yaml(args.config, cls)  # errors name the file before anything else happens
    return build_config(args.config, config_cls=cls, **flags)


def check_extension(run: Path, planned: int | None, epochs: int) -> None:
    """``--resume RUN --epochs N`` extends the run when N is more than the epochs it was planned for; fewer are
    refused, with the epochs done."""
    if planned is not None and epochs > planned:
        return
    summary = run / "last" / "checkpoint.json"
    done = json.loads(summary.read_text()).get("epoch", "?") if summary.is_file() else "?"
    raise ValueError(
        f"--epochs {epochs} is not more than the {planned} epochs the run {run} was planned for ({done} done): a "
        f"resume continues its plan; --epochs N extends it (the schedule re-planned from where it stands) when N is "
        f"more than {planned}"
    )


def check_run_output(cfg: Any, args: argparse.Namespace, *inputs: str | None) -> None:
    """Refuse, before any work, an ``--output`` that is a file, a checkpoint, or inside the data it reads."""
    if cfg.output is not None:
        data = None if cfg.builtin_data else cfg.data
        check_output(cfg.output, option="--output", kind="dir", inputs=[data, args.config, *inputs])
