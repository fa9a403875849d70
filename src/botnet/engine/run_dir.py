"""The output directory of a run: refuse to clobber another run, check it is writable before any work starts."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from .checkpoint import CONFIG_FILE
from .reporting import CURVES_FILE, METRICS_FILE

INCOMPLETE = re.compile(r"^\..+\.tmp(\.[A-Za-z0-9]+)?$")  # what atomic_output and write_checkpoint_dir write to
RUN_ARTIFACTS = (
    CONFIG_FILE,
    METRICS_FILE,
    CURVES_FILE,
    "last",
    "best",
    "last.old",
    "best.old",
    "last.prev",
    "eval.json",
)


def new_run_dir(model: str, root: str | Path = "runs") -> str:
    """A fresh ``runs/<model>-<YYYYmmdd-HHMMSS>`` (with a suffix if taken): default runs never collide."""
    base = Path(root) / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return str(path)


def run_artifacts(out: Path) -> list[str]:
    return [name for name in RUN_ARTIFACTS if (out / name).exists()]


def prepare_output_dir(out: str | Path, *, resume: bool, overwrite: bool) -> Path:
    """Create ``out`` (or check it for ``resume``) and prove it is writable; raise a clear error otherwise.

    An existing run's files are only removed with ``overwrite``; other files in the directory are left alone.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a directory; choose another --output")
    if resume:
        if not out.is_dir():
            raise FileNotFoundError(f"cannot resume: run directory {out} does not exist")
        if not run_artifacts(out):
            raise ValueError(f"cannot resume: {out} holds no run (no config.yaml or last/ checkpoint)")
    else:
        found = run_artifacts(out) if out.is_dir() else []
        if found and not overwrite:
            raise ValueError(
                f"output directory {out} already holds a run ({', '.join(found)}); pass --resume {out} to continue "
                f"it, --overwrite to replace it, or choose another --output"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(
            f"output directory {out} is not writable ({err.strerror or err}); choose another --output or fix its "
            f"permissions"
        ) from None
    if overwrite and not resume:
        for name in run_artifacts(out):
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    remove_incomplete_writes(out)
    return out


def remove_incomplete_writes(out: Path) -> list[str]:
    """Delete the temporary files and checkpoint directories (``.<name>.*.tmp``) that a killed writer left in ``out``.

    Every file of a run is written under such a name and renamed into place when complete, so these are never
    the only copy of anything.
    """
    removed = []
    for path in Path(out).iterdir():
        if INCOMPLETE.match(path.name):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed
