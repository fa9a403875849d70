"""Reading data files safely: regular files only, symlinks followed once, no folder walked twice.

A FIFO, socket or device named ``pipe.png`` must never be opened: opening a FIFO for reading blocks until a writer
comes, which no signal handler of a training loop can interrupt, and a device may never end. :func:`open_regular`
refuses everything but regular files, by ``stat`` before any ``open`` and again by ``fstat`` on the descriptor it
opened without blocking (the file may have been swapped in between). A regular file has a size, so every read of
it ends.

:func:`scan_class_folders` walks ``<split>/<class>/**`` like torchvision's ``make_dataset`` (same file order) but
follows each symbolic link to a folder once and never enters a folder it has already walked, so a link loop such as
``train/a/loop -> ..`` cannot recurse or pull other classes' images in. A file reached twice (through links or hard
links) is kept once, under the first class in class order that reaches it: counting it twice would weigh it double,
and under two classes it would teach two labels for one image. Entries that are not regular files but have an image
extension (FIFOs, sockets, devices, broken links) are kept as samples so that loading them gives a counted bad
sample, as an undecodable image does, without ever opening them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

_KINDS = {
    stat.S_IFIFO: "FIFO (named pipe)",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFDIR: "directory",
}


class NotRegularFile(OSError):
    """A data path that exists but is not a regular file (a FIFO, socket, device or directory); never opened."""


def file_kind(mode: int) -> str:
    """``"regular file"``, ``"FIFO (named pipe)"``, ``"socket"``, ... for an ``st_mode``."""
    return "regular file" if stat.S_ISREG(mode) else _KINDS.get(stat.S_IFMT(mode), "special file")


def check_regular(path: str | os.PathLike[str]) -> os.stat_result:
    """``os.stat(path)`` (links followed) if ``path`` is a regular file, else :class:`NotRegularFile` naming its kind.

    Raises:
        FileNotFoundError: nothing is there (or a link points nowhere).
        NotRegularFile: a FIFO, socket, device or directory.
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(f"{path} is a {file_kind(st.st_mode)}, not a regular file")
    return st


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a regular file for binary reading; anything else is refused before it is opened (see the module doc)."""
    check_regular(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped for a FIFO after the check: O_NONBLOCK made the open return
            raise NotRegularFile(f"{path} is a {file_kind(st.st_mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_bytes(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The content of a regular file of at most ``max_bytes`` bytes; a larger file is a ``ValueError`` naming it."""
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            raise ValueError(f"{path} is {size} bytes, more than the {max_bytes} allowed")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while being read
        raise ValueError(f"{path} is more than the {max_bytes} bytes allowed")
    return data


def _dir_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _walk_once(top: str, seen_dirs: set[tuple[int, int]]) -> list[tuple[str, list[str]]]:
    """``(folder, sorted file names)`` of every folder under ``top`` not walked before; hidden entries skipped."""
    found: list[tuple[str, list[str]]] = []
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue  # unreadable folder: as os.walk, which skips it
        files, subdirs = [], []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if not is_dir:
                files.append(entry.name)
                continue
            key = _dir_key(entry.path)
            if key is not None and key not in seen_dirs:
                seen_dirs.add(key)
                subdirs.append(entry.path)
        found.append((folder, files))
        stack.extend(reversed(subdirs))
    return found


def scan_class_folders(
    split_dir: str | os.PathLike[str],
    class_to_idx: dict[str, int],
    is_valid_file: Callable[[str], bool],
) -> list[tuple[str, int]]:
    """``(path, class index)`` of the image files under ``split_dir/<class>/``, in torchvision's order (classes in
    index order, folders in sorted path order, files sorted), each file once (see the module doc for links)."""
    split_dir = Path(split_dir)
    seen_dirs = {key for key in (_dir_key(str(split_dir)),) if key is not None}
    class_dirs = {name: str(split_dir / name) for name in class_to_idx}
    for path in class_dirs.values():  # a link from one class into another's folder is not followed
        key = _dir_key(path)
        if key is not None:
            seen_dirs.add(key)
    seen_files: set[tuple[int, int] | str] = set()
    samples: list[tuple[str, int]] = []
    for name, index in sorted(class_to_idx.items(), key=lambda item: item[1]):
        for folder, files in sorted(_walk_once(class_dirs[name], seen_dirs)):
            for path in _new_files(folder, files, is_valid_file, seen_files):
                samples.append((path, index))
    return samples


def _new_files(
    folder: str, names: Iterable[str], is_valid_file: Callable[[str], bool], seen: set[tuple[int, int] | str]
) -> Iterable[str]:
    for name in names:
        path = os.path.join(folder, name)
        if not is_valid_file(path):
            continue
        try:
            st = os.stat(path)  # follows links; never opens
            key: tuple[int, int] | str = (st.st_dev, st.st_ino)
        except OSError:
            key = path  # a broken link: kept, so that loading it counts as a bad sample
        if key in seen:
            continue
        seen.add(key)
        yield path
