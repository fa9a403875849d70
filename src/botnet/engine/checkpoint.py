"""Training checkpoints: a directory per checkpoint, replaced atomically, read without unpickling code.

A checkpoint directory (``OUT/last``, ``OUT/best``) holds

    model.safetensors     the weights, with the model config, name and class names in the metadata
    ema.safetensors       the EMA weights (when EMA is on)
    training_state.pt     optimizer, scheduler, grad scaler, epoch/step counters and RNG states: tensors and
                          plain Python values only, read with ``torch.load(weights_only=True)``
    config.yaml           the resolved training options
    checkpoint.json       a human-readable summary (epoch, step, metrics)
    manifest.json         size and SHA-256 of each file above: damage on disk is found before anything is loaded

It is written to a temporary sibling directory, flushed to disk, then swapped in with renames: a kill at any moment
leaves either the old or the new checkpoint complete (``last.old`` is the old one during the swap, and readers fall
back to it). ``last.prev`` keeps the checkpoint before ``last``: a resumed run whose ``last`` turns out damaged
continues from it.

``--resume`` and ``--checkpoint`` take a run directory or a checkpoint inside it: :func:`resolve_run_dir` gives the
run that owns a checkpoint (a resume always continues that run, and nothing is written inside a checkpoint), and
:func:`resolve_checkpoint` the checkpoint to read. Integrity is never silently off: a checkpoint without its
manifest still loads (a hand-made or older one), with an :class:`UnverifiedCheckpointWarning`, and
:func:`integrity_status` says so for reports such as ``eval``'s.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..files import default_mode, fsync_dir
from ..models.weights import read_metadata
from .layout import (  # noqa: F401 - the file names and path rules are part of this module's API
    CHECKPOINT_NAMES,
    CONFIG_FILE,
    DAMAGED_SUFFIX,
    EMA_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    OLD_SUFFIX,
    PREVIOUS_SUFFIX,
    STATE_FILE,
    SUMMARY_FILE,
    CheckpointError,
    checkpoint_owner,
    is_checkpoint_dir,
    resolve_run_dir,
)

VERIFIED = "verified"
UNVERIFIED = "unverified: no manifest.json"
WEIGHTS_FILE = "unverified: a weights file on its own, without a manifest"


class UnverifiedCheckpointWarning(UserWarning):
    """A checkpoint loaded without an integrity check because it has no ``manifest.json``."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(ckpt_dir: Path) -> None:
    """Record the size and SHA-256 of every file of ``ckpt_dir`` in its manifest (see :func:`verify_checkpoint`)."""
    files = {
        f.name: {"bytes": f.stat().st_size, "sha256": _sha256(f)}
        for f in sorted(Path(ckpt_dir).iterdir())
        if f.is_file() and f.name != MANIFEST_FILE
    }
    path = Path(ckpt_dir) / MANIFEST_FILE
    path.unlink(missing_ok=True)  # it may be a hard link shared with another checkpoint: never edit it
    path.write_text(json.dumps({"files": files}, indent=1) + "\n")


def verify_checkpoint(ckpt_dir: Path) -> bool:
    """Check every file against the manifest written with the checkpoint: missing, truncated or altered files are a
    :class:`CheckpointError` that names the file and what is wrong. Returns ``True`` when every file was checked.

    A checkpoint without a manifest (written by hand, by an older version, or with its manifest deleted) cannot be
    checked: it gives an :class:`UnverifiedCheckpointWarning` that says so, and ``False``; its loaders still report
    unreadable files.
    """
    ckpt_dir = Path(ckpt_dir)
    manifest = ckpt_dir / MANIFEST_FILE
    if not manifest.exists():
        warnings.warn(
            f"{ckpt_dir} has no {MANIFEST_FILE}: its files cannot be verified (damage on disk or an edited file would "
            "go unnoticed); it is loaded as it is",
            UnverifiedCheckpointWarning,
            stacklevel=2,
        )
        return False
    try:
        files = json.loads(manifest.read_text())["files"]
        expected = {name: (int(v["bytes"]), str(v["sha256"])) for name, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(
            f"{manifest} is unreadable ({type(err).__name__}: {err}){_previous_hint(ckpt_dir)}"
        ) from None
    for name, (size, digest) in expected.items():
        path = ckpt_dir / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing from the checkpoint{_previous_hint(ckpt_dir)}")
        actual = path.stat().st_size
        if actual != size:
            raise CheckpointError(
                f"{path} is truncated or overwritten: {actual} bytes, {size} when the checkpoint was written"
                f"{_previous_hint(ckpt_dir)}"
            )
        if _sha256(path) != digest:
            raise CheckpointError(
                f"{path} is corrupted: its SHA-256 differs from the one recorded when the checkpoint was written"
                f"{_previous_hint(ckpt_dir)}"
            )
    return True


def integrity_status(ckpt_dir: Path) -> str:
    """:data:`VERIFIED` or :data:`UNVERIFIED`, for a checkpoint that :func:`resolve_checkpoint` returned (which has
    verified it when it has a manifest), :data:`WEIGHTS_FILE` for a weights file given on its own: what ``eval``
    reports next to its metrics."""
    if Path(ckpt_dir).is_file():
        return WEIGHTS_FILE
    return VERIFIED if (Path(ckpt_dir) / MANIFEST_FILE).is_file() else UNVERIFIED


def _previous_hint(ckpt_dir: Path) -> str:
    prev = ckpt_dir.with_name(ckpt_dir.name + PREVIOUS_SUFFIX)
    return f"; the previous checkpoint is {prev}" if (prev / MODEL_FILE).exists() else ""


def write_checkpoint_dir(target: Path, write: Callable[[Path], None], *, keep_previous: bool = False) -> Path:
    """Create ``target`` atomically: ``write(tmpdir)`` fills a temporary directory, which then replaces ``target``.

    The files get a manifest of sizes and SHA-256 sums (unless ``write`` put one there) and are flushed to disk
    before the swap. With ``keep_previous`` the replaced checkpoint stays as ``<target>.prev`` (and the one before
    it is removed), so a checkpoint damaged on disk later still has a complete predecessor; otherwise it is removed
    after the swap.
    A failure while writing (disk full, read-only) removes the temporary directory and leaves ``target`` as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        write(tmp)
        if not (tmp / MANIFEST_FILE).exists():  # link_checkpoint brings the source's: same files, same sums
            write_manifest(tmp)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        tmp.chmod(default_mode(directory=True))  # mkdtemp's 0700 -> what mkdir would give
        aside = target.with_name(target.name + (PREVIOUS_SUFFIX if keep_previous else OLD_SUFFIX))
        if target.exists():
            # Until the rename below, target is complete; after it, aside is: a kill leaves one to read.
            if aside.exists():
                shutil.rmtree(aside)
            os.replace(target, aside)
        os.replace(tmp, target)
        fsync_dir(target.parent)
        if not keep_previous and aside.exists():
            shutil.rmtree(aside)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def link_checkpoint(source: Path, target: Path) -> Path:
    """Make ``target`` a complete copy of checkpoint ``source`` (hard links where possible; files are never edited)."""

    def fill(tmp: Path) -> None:
        for f in Path(source).iterdir():
            try:
                os.link(f, tmp / f.name)
            except OSError:
                shutil.copy2(f, tmp / f.name)

    return write_checkpoint_dir(target, fill)


def resolve_checkpoint(path: str | Path, *, verify: bool = True, run_checkpoint: str = "best") -> Path:
    """The checkpoint directory meant by ``path``: a checkpoint dir, its ``model.safetensors``, or a run dir.

    A run directory means its ``best/`` (the weights its validation chose) wherever a model is read: ``eval``,
    ``predict``, ``export``, ``--pretrained``, ``--weights``; its ``last/`` when it has no ``best/`` yet, and for
    ``--resume`` (``run_checkpoint="last"``), which continues where the run stopped.

    Falls back to ``<dir>.old`` (a kill interrupted the swap of ``<dir>``), then to ``<dir>.prev``, when ``<dir>``
    does not exist. With ``verify``, the files are checked against the checkpoint's manifest; a checkpoint without
    one gives an :class:`UnverifiedCheckpointWarning` (see :func:`integrity_status`).
    """
    path = Path(path)
    if path.is_file() and path.name == MODEL_FILE:
        path = path.parent
    is_run_dir = any((path / f"last{suffix}").exists() for suffix in ("", OLD_SUFFIX, PREVIOUS_SUFFIX))
    if path.is_dir() and not (path / MODEL_FILE).exists() and is_run_dir:
        chosen = path / run_checkpoint
        has_chosen = any((chosen.with_name(chosen.name + s) / MODEL_FILE).exists() for s in ("", OLD_SUFFIX))
        path = chosen if has_chosen else path / "last"
    if not path.exists():
        for suffix in (OLD_SUFFIX, PREVIOUS_SUFFIX):
            aside = path.with_name(path.name + suffix)
            if (aside / MODEL_FILE).exists():
                path = aside
                break
        else:
            raise CheckpointError(f"checkpoint {path} does not exist")
    if not (path / MODEL_FILE).is_file():
        if verify and (path / MANIFEST_FILE).is_file():
            verify_checkpoint(path)  # names the missing file and the previous checkpoint
        raise CheckpointError(
            f"{path} is not a botnet checkpoint: expected {MODEL_FILE} inside it (give a run directory that has a "
            "checkpoint, or its last/ or best/)"
        )
    if verify:
        verify_checkpoint(path)
    return path


def save_training_state(path: Path, state: dict[str, Any]) -> None:
    # Serialised in memory and written by Python, so a full or read-only disk is an OSError with its errno
    # (torch.save's own writer reports it as an unspecific RuntimeError).
    buffer = io.BytesIO()
    torch.save(state, buffer)
    Path(path).write_bytes(buffer.getbuffer())


def load_training_state(ckpt_dir: Path) -> dict[str, Any]:
    """Read ``training_state.pt`` with ``weights_only=True``: a file that would run code is refused."""
    path = Path(ckpt_dir) / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: {ckpt_dir} holds weights only and cannot be resumed")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to read is reported with the file name
        raise CheckpointError(f"cannot read {path}: {type(err).__name__}: {str(err).splitlines()[0]}") from None


def read_summary(ckpt_dir: Path) -> dict[str, Any]:
    path = Path(ckpt_dir) / SUMMARY_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def read_model_metadata(ckpt_dir: Path) -> dict[str, Any]:
    """Model name, config dict and class names stored in ``model.safetensors``."""
    path = Path(ckpt_dir) / MODEL_FILE
    meta = _file_metadata(path)
    if meta.get("task") == "detection":
        raise CheckpointError(f"{path} is a detection checkpoint: use botnet detect eval / botnet detect predict")
    if "botnet_config" not in meta:
        raise CheckpointError(f"{path} was not written by botnet: its metadata has no model config")
    return _model_metadata(path, meta)


# What a classification weights file needs for inference: metadata key, and what it is in a message.
_INFERENCE_NEEDS = (("botnet_config", "model config"), ("class_names", "class names"), ("preprocess", "preprocessing"))


def read_file_metadata(path: str | Path) -> dict[str, Any]:
    """:func:`read_model_metadata` of a classification weights file given on its own (one written by ``botnet
    convert``): a :class:`CheckpointError` says what the file lacks for inference and how to get a file that has it.
    """
    path = Path(path)
    fine_tune = f"fine-tune the weights on your data: botnet train --data DIR --pretrained {path}"
    if path.suffix != ".safetensors":
        raise CheckpointError(
            f"{path} is not a .safetensors file: write one that botnet predict, eval and export can use with "
            f"botnet convert {path} OUT.safetensors --class-names FILE, or {fine_tune}"
        )
    meta = _file_metadata(path)
    if meta.get("task") == "detection":
        raise CheckpointError(
            f"{path} holds a detector: botnet detect eval / botnet detect predict take its run directory "
            f"(botnet convert {path} OUT.safetensors writes its backbone, a start for botnet train --pretrained)"
        )
    found = _model_metadata(path, meta) if "botnet_config" in meta else None
    if found is not None and not found["config"].get("num_classes"):
        raise CheckpointError(
            f"{path} holds a network without a classifier (headless weights), so it cannot classify: {fine_tune}"
        )
    missing = [label for key, label in _INFERENCE_NEEDS if key not in meta]
    if missing:
        names = "" if "class_names" in meta else " --class-names FILE"
        raise CheckpointError(
            f"{path} carries no {', no '.join(missing)}, which botnet predict, eval and export need: write a file "
            f"that has them with botnet convert {path} OUT.safetensors{names}"
            f"{' (FILE: the class names, one a line in output order)' if names else ''}, or {fine_tune}"
        )
    names = found["class_names"]
    if not isinstance(names, list) or len(names) != found["config"]["num_classes"]:
        raise CheckpointError(
            f"{path} has class names that do not fit its classifier of {found['config']['num_classes']} outputs: "
            f"write them again with botnet convert {path} OUT.safetensors --class-names FILE"
        )
    return found


def _file_metadata(path: Path) -> dict[str, str]:
    try:
        return read_metadata(path)
    except (ValueError, FileNotFoundError) as err:
        raise CheckpointError(str(err)) from None


def _model_metadata(path: Path, meta: dict[str, str]) -> dict[str, Any]:
    try:
        return {
            "model": meta.get("model_name", meta.get("architecture", "")),
            "config": json.loads(meta["botnet_config"]),
            "class_names": json.loads(meta.get("class_names", "null")),
            "preprocess": json.loads(meta.get("preprocess", "null")),
        }
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} has malformed metadata: {err}") from None


def read_class_names(ckpt_dir: Path) -> list[str]:
    """The class names a checkpoint of any task was trained on."""
    path = Path(ckpt_dir) / MODEL_FILE
    try:
        return json.loads(read_metadata(path)["class_names"])
    except ValueError as err:  # unreadable file or malformed JSON
        raise CheckpointError(f"{path}: {err}") from None
    except KeyError:
        raise CheckpointError(f"{path} was not written by botnet: its metadata has no class names") from None


# ------------------------------------------------------------------------------------------------------------------
# RNG states as tensors and plain values (so weights_only loading accepts them)


def rng_state() -> dict[str, Any]:
    import random

    import numpy as np

    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype("int64")), *np_state[2:]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype("uint32"), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
