"""Output files that appear complete or not at all: written under a temporary name beside the target, flushed to
disk, given the permissions of a plainly created file, then renamed over the target."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def default_mode(directory: bool = False) -> int:
    """The mode ``open()`` / ``mkdir()`` would give under the current umask (mkstemp and mkdtemp use 0600 / 0700)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory file descriptors
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; when the block ends without an error it replaces ``path``.

    On an error the temporary file is removed and ``path`` keeps its old content. ``suffix`` is for writers that
    pick the format from the file name (matplotlib, torch.export).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix == ".tmp" else f".tmp{suffix}"  # the temporary name always has a ".tmp" part
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        tmp.chmod(default_mode())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
