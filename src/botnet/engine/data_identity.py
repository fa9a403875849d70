"""What identifies a run's data, without torch: its absolute place and a fingerprint of its files.

A run writes ``data.json`` beside its config: the data's absolute path and the listing of the files a task reads
(images by name and size, annotation files by the SHA-256 of their contents), under the data root, hidden files and
folders left out. ``--resume`` compares the data with it before anything trains: the same listing at another place
(the data moved, or the run is resumed from another working directory) is the same data; a listing that differs is
refused, naming what changed, because the schedule, the split and the classes were planned on the files there were.
The listing is cheap next to reading the images (one ``stat`` per file) and catches images removed or added, an
annotation file edited, and an image replaced by one of another size.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .reporting import atomic_write

DATA_FILE = "data.json"

# Every image suffix a reader of ours takes (PIL through torchvision's list, and the COCO loader), and annotations.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif"}
)  # fmt: skip
HASHED_SUFFIXES = frozenset({".json"})  # small text files whose contents, not just size, define the data
MAX_NAMED = 5  # changed files named in a message, then a count


def data_listing(root: str | Path) -> dict[str, str]:
    """``relative path -> "size"`` for images, ``-> "sha256:..."`` for annotation files, under ``root``, sorted.

    Symbolic links are followed (a data folder of links to the files is common); a folder reached twice is walked
    once."""
    root = Path(root)
    listing: dict[str, str] = {}
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            suffix = os.path.splitext(name)[1].lower()
            if name.startswith(".") or (suffix not in IMAGE_SUFFIXES and suffix not in HASHED_SUFFIXES):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            try:
                if suffix in HASHED_SUFFIXES:
                    listing[rel] = "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()
                else:
                    listing[rel] = str(os.stat(path).st_size)
            except OSError as err:  # a broken link or an unreadable file is part of what the data is
                listing[rel] = f"unreadable: {err.strerror}"
    return dict(sorted(listing.items()))


def data_identity(root: str | Path) -> dict[str, Any]:
    """The record a run keeps of its data: absolute path, file count, fingerprint, and the listing itself."""
    listing = data_listing(root)
    digest = hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()
    return {"path": str(Path(root).resolve()), "files": len(listing), "fingerprint": digest, "listing": listing}


def write_data_identity(run_dir: str | Path, identity: dict[str, Any]) -> None:
    """Write ``data.json`` in ``run_dir``."""
    atomic_write(Path(run_dir) / DATA_FILE, json.dumps(identity, indent=1) + "\n")


def read_data_identity(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's ``data.json``, or ``None`` for a run that has none (built-in data, or an older run)."""
    path = Path(run_dir) / DATA_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def describe_changes(saved: dict[str, Any], now: dict[str, Any]) -> str:
    """What differs between two identities' listings, in words ("12 images removed (train/a/1.png, ...)")."""
    old, new = saved["listing"], now["listing"]
    removed = [k for k in old if k not in new]
    added = [k for k in new if k not in old]
    changed = [k for k in old if k in new and old[k] != new[k]]
    parts = []
    for what, names in (("removed", removed), ("added", added), ("changed", changed)):
        if names:
            more = f", and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
            shown = ", ".join(names[:MAX_NAMED]) + more
            parts.append(f"{len(names)} file(s) {what} ({shown})")
    return "; ".join(parts) or "the same files"


def same_data(saved: dict[str, Any], now: dict[str, Any]) -> bool:
    return saved["fingerprint"] == now["fingerprint"]


class DataChanged(ValueError):
    """The data of a run to resume is not the data it was planned on."""


def check_resumed_data(run_dir: str | Path, data: str, new_run: str) -> dict[str, Any]:
    """The identity of ``data``, checked against the run's ``data.json`` (when it has one); ``new_run`` is the
    command that starts a new run from the run's weights, named as the way on when the data changed."""
    now = data_identity(data)
    saved = read_data_identity(run_dir)
    if saved is not None and not same_data(saved, now):
        raise DataChanged(
            f"cannot resume: the data in {now['path']} is not the data the run {run_dir} started on "
            f"({saved['files']} files then, {now['files']} now): {describe_changes(saved, now)}. The run's schedule, "
            f"split and classes were planned on the files there were: restore them to resume, or go on with the data "
            f"as it is in a new run that starts from this run's weights: {new_run}"
        )
    return now


def resume_data_option(run_dir: str | Path, saved_data: str, given: str | None) -> tuple[str | None, str]:
    """Check ``--data`` on ``--resume``: ``(data to use, note)``. ``given`` is taken when it is the run's data at its
    own place or at another (the same files: the data moved, or the run is resumed from another working directory);
    with no ``--data``, the run's own place must still be there."""
    saved_place = Path(saved_data).resolve()
    if given is None:
        if saved_place.is_dir():
            return None, ""
        raise FileNotFoundError(
            f"cannot resume: the run's data {saved_data} is not there ({saved_place} does not exist); if it moved, "
            "pass --data with its new place: it is taken when it holds the same files"
        )
    if Path(given).resolve() == saved_place:
        return given, ""
    saved = read_data_identity(run_dir)
    if saved is None:
        return given, (
            f"note: the run keeps no listing of its data (written by an older version): taking --data {given} in "
            f"place of {saved_data} without checking that it holds the same files"
        )
    now = data_identity(given)
    if not same_data(saved, now):
        raise DataChanged(
            f"cannot resume with --data {given}: it does not hold the run's data ({saved['path']}, {saved['files']} "
            f"files): {describe_changes(saved, now)}. Give the place the same files are now, or start a new run"
        )
    return given, f"note: the run's data moved from {saved['path']} to {now['path']} (the same {now['files']} files)"
