"""Where a run keeps its files, without torch: the checkpoint file names, which directory is a checkpoint, and the
run directory that owns one (what ``--resume`` continues and where ``eval`` writes). :mod:`.checkpoint` reads and
writes the checkpoints themselves and re-exports these names.
"""

from __future__ import annotations

from pathlib import Path

STATE_FILE = "training_state.pt"
MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "checkpoint.json"
MANIFEST_FILE = "manifest.json"
PREVIOUS_SUFFIX = ".prev"  # the checkpoint before last/, kept to fall back to
OLD_SUFFIX = ".old"  # the replaced checkpoint during a swap
DAMAGED_SUFFIX = ".damaged"  # a last/ that failed its check on resume, kept for inspection
CHECKPOINT_NAMES = tuple(
    f"{name}{suffix}" for name in ("last", "best") for suffix in ("", OLD_SUFFIX, PREVIOUS_SUFFIX, DAMAGED_SUFFIX)
)
_CHECKPOINT_FILES = (MODEL_FILE, MANIFEST_FILE, STATE_FILE, SUMMARY_FILE)
_RUN_FILES = (CONFIG_FILE, "metrics.jsonl")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read: says which file and why."""


def is_checkpoint_dir(path: str | Path) -> bool:
    """Whether ``path`` is a checkpoint directory (it holds the weights, the manifest or the training state), or the
    not yet existing ``last``/``best`` (or their ``.old``/``.prev`` copies) of a run directory."""
    path = Path(path)
    if path.is_dir():
        return any((path / name).is_file() for name in _CHECKPOINT_FILES)
    return not path.exists() and path.name in CHECKPOINT_NAMES and _holds_run(path.parent)


def _holds_run(path: Path) -> bool:
    return path.is_dir() and (
        any((path / name).is_file() for name in _RUN_FILES)
        or any((path / name / MODEL_FILE).is_file() for name in CHECKPOINT_NAMES)
    )


def checkpoint_owner(ckpt_dir: str | Path) -> Path | None:
    """The run directory that checkpoint ``ckpt_dir`` belongs to (``RUN`` for ``RUN/best``), or ``None`` for a
    checkpoint on its own (a copied or downloaded ``last/`` outside any run)."""
    ckpt_dir = Path(ckpt_dir)
    if ckpt_dir.name in CHECKPOINT_NAMES and _holds_run(ckpt_dir.parent):
        return ckpt_dir.parent
    return None


def resolve_run_dir(path: str | Path) -> Path:
    """The run directory that ``--resume PATH`` continues: ``PATH`` itself, or the run that owns the checkpoint
    ``PATH`` (``RUN/last``, ``RUN/best``, ``RUN/last.prev``, or the ``model.safetensors`` inside one).

    A resume always continues the run from its own last checkpoint; ``--resume RUN/best`` is ``--resume RUN``
    (starting again from ``best/`` would overwrite the run's later epochs). Nothing is ever written inside a
    checkpoint, so a checkpoint outside any run cannot be resumed and is a :class:`CheckpointError`.
    """
    path = Path(path)
    if path.name == MODEL_FILE and path.is_file():
        path = path.parent
    if not is_checkpoint_dir(path):
        return path
    owner = checkpoint_owner(path)
    if owner is None:
        raise CheckpointError(
            f"{path} is a checkpoint outside any run directory, and a resume writes to its run: copy it into a run "
            f"directory as last/ (with that run's config.yaml) or fine-tune from it in a new run"
        )
    return owner
