"""Output paths checked before any work: a command never overwrites its own input, never writes inside a checkpoint
or a data directory, and never finds out after an hour of evaluation that its ``--output`` is a directory.

Every command that writes (``train --output``, ``eval --output``, ``predict --json``, ``attention --output``,
``detect predict --output``, ``export --output``, ``table --json``) calls :func:`check_output` on each path it is
going to write, with the paths it reads as ``inputs``, before it reads or computes anything. Nothing here imports
torch, so a refused path is reported at once.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from .layout import _CHECKPOINT_FILES


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:  # a link loop, a name too long: not a path anything can be written to
        raise ValueError(f"{path}: {err.strerror or err}") from None


def _is_checkpoint(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in _CHECKPOINT_FILES)


def _same(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: the same inode (hard and symbolic links), or the same resolved path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _within(path: Path, folder: Path) -> bool:
    real, top = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return real == top or top in real.parents


def check_output(
    path: str | os.PathLike[str],
    *,
    option: str = "--output",
    kind: str = "file",
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> Path:
    """``path`` as a :class:`~pathlib.Path` if the command may write it; else a ``ValueError`` naming ``option``.

    Refused, whatever the command:

    - a path that is, or resolves to (links, ``./``, ``..``), one of ``inputs`` (an image, a config file);
    - a path inside an input directory (a data folder) or inside a checkpoint directory;
    - an existing directory where a file is meant (``kind="file"``), an existing file where a directory is meant
      (``kind="dir"``), a FIFO, socket or device, and a path under an existing file (``FILE/x.json``).

    Args:
        path: the path the command will write (a file, or with ``kind="dir"`` a directory it creates or fills).
        option: the option as the user wrote it, for the message.
        kind: ``"file"`` or ``"dir"``.
        inputs: the files and directories the command reads (``None`` entries are ignored).
    """
    if kind not in ("file", "dir"):
        raise AssertionError(kind)
    if not str(path):
        raise ValueError(f"{option} is empty: give a {'directory' if kind == 'dir' else 'file'} name")
    path = Path(path)
    for parent in reversed(path.absolute().parents):  # "FILE/x.json": FILE cannot hold anything
        st = _stat(parent)
        if st is None:
            break
        if not stat.S_ISDIR(st.st_mode):
            raise ValueError(f"{option} {path}: {parent} is {_kind(st.st_mode)}, not a directory")
    st = _stat(path)
    if st is not None:
        if kind == "file" and stat.S_ISDIR(st.st_mode):
            raise ValueError(f"{option} {path} is an existing directory; give a file name (for example {path}/NAME)")
        if kind == "dir" and not stat.S_ISDIR(st.st_mode):
            raise ValueError(f"{option} {path} is {_kind(st.st_mode)}, not a directory; give a directory")
        if kind == "file" and not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{option} {path} is {_kind(st.st_mode)}, not a regular file; give a file name")
    for given in inputs:
        if given is None or not str(given):
            continue
        given = Path(given)
        if _stat(given) is not None and not given.is_dir() and _same(path, given):
            raise ValueError(
                f"{option} {path} is the input {given}: writing it would overwrite the input; choose another path"
            )
        if given.is_dir() and _within(path, given):
            raise ValueError(
                f"{option} {path} is inside the input directory {given}: the output would be mixed with the data it "
                "reads; choose a path outside it"
            )
    checkpoint = next((d for d in (path, *path.parents) if _is_checkpoint(d)), None)
    if checkpoint is not None:
        where = "is the checkpoint" if checkpoint == path else f"is inside the checkpoint {checkpoint}"
        raise ValueError(
            f"{option} {path} {where}: nothing is written inside a checkpoint (its manifest would no longer match); "
            "choose a path outside it"
        )
    return path
