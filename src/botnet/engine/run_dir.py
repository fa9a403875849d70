"""The output directory of a run: one writer at a time, never another run clobbered, writable before any work starts.

A run directory has one writer. :func:`claim_output_dir` takes an advisory ``fcntl.flock`` on ``DIR/.botnet-run.lock``
before it looks at or changes anything in ``DIR`` and returns the :class:`RunLock`, which the trainer holds for the
whole run (``--overwrite`` and ``--resume`` included) and releases at its end. A second writer is refused at once
with the process id and host of the holder (written into the lock file). The kernel drops the lock with the
process that held it, so a run killed by any signal, SIGKILL included, never leaves a lock that blocks the next one.
The lock file itself stays in the directory (removing it would let two processes lock two different files).

On network file systems the lock is as good as the file system's locking: Linux (2.6.12 and later) emulates
``flock`` on NFS with POSIX byte-range locks, which the NFS server arbitrates between hosts (with NFSv3 only when
the ``lockd`` service runs; mounted with ``nolock`` or ``local_lock=flock`` the lock only excludes writers on the
same host). Some network and FUSE file systems (older CIFS/SMB mounts, sshfs) keep locks local to one host. Runs
started from two hosts into one shared directory are only kept apart where the file system arbitrates locks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from .layout import CONFIG_FILE, MODEL_FILE, OLD_SUFFIX, PREVIOUS_SUFFIX, checkpoint_owner, is_checkpoint_dir
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


def has_checkpoint(out: Path) -> bool:
    """Whether the run in ``out`` has a checkpoint to resume from (``last/``, or its copy during a swap)."""
    return any((out / f"last{suffix}" / MODEL_FILE).is_file() for suffix in ("", OLD_SUFFIX, PREVIOUS_SUFFIX))


def _check_not_checkpoint(out: Path, resume: bool) -> None:
    """Nothing is ever written inside a checkpoint directory: ``RUN/best`` given as the output is refused."""
    if not is_checkpoint_dir(out):
        return
    owner = checkpoint_owner(out)
    if owner is not None:
        hint = f"use --resume {owner} to continue the run it belongs to" if resume else "choose another --output"
        raise ValueError(f"{out} is a checkpoint of the run {owner}, not a run directory: {hint}")
    raise ValueError(f"{out} is a checkpoint directory, not a run directory: choose another --output")


def claim_output_dir(out: str | Path, *, resume: bool, overwrite: bool) -> RunLock:
    """Lock ``out`` for this run, then prepare it (:func:`prepare_output_dir`) under the lock; return the lock.

    The caller holds the returned :class:`RunLock` until the run ends (``with claim_output_dir(...):`` or
    ``lock.release()``). Everything that decides whether ``out`` may be written (an existing run, ``--overwrite``,
    ``--resume``) is looked at only once the lock is held, so two runs started at the same moment cannot both
    pass the checks.

    Raises:
        RunDirBusy: another process holds the lock (its pid and host are in the message).
        ValueError, OSError: what :func:`prepare_output_dir` raises.
    """
    out = Path(out)
    _check_not_checkpoint(out, resume)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a directory; choose another --output")
    if resume and not out.is_dir():
        raise FileNotFoundError(f"cannot resume: run directory {out} does not exist")
    if not resume:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise PermissionError(_not_writable(out, err)) from None
    lock = RunLock(out).acquire()
    try:
        prepare_output_dir(out, resume=resume, overwrite=overwrite)
    except BaseException:
        lock.release()
        raise
    return lock


def prepare_output_dir(out: str | Path, *, resume: bool, overwrite: bool) -> Path:
    """Create ``out`` (or check it for ``resume``) and prove it is writable; raise a clear error otherwise.

    An existing run's files are only removed with ``overwrite``; other files in the directory are left alone.
    Call it through :func:`claim_output_dir`, which holds the run's lock while it runs.
    """
    out = Path(out)
    _check_not_checkpoint(out, resume)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a directory; choose another --output")
    if resume:
        if not out.is_dir():
            raise FileNotFoundError(f"cannot resume: run directory {out} does not exist")
        if not run_artifacts(out):
            raise ValueError(f"cannot resume: {out} holds no run (no config.yaml or last/ checkpoint)")
        if not has_checkpoint(out):
            raise ValueError(
                f"cannot resume: the run in {out} has no checkpoint yet (it stopped before writing its first one); "
                f"start it again with --output {out} --overwrite"
            )
    else:
        found = run_artifacts(out) if out.is_dir() else []
        if found and not overwrite and not has_checkpoint(out):  # --resume cannot work: say what can
            raise ValueError(
                f"output directory {out} already holds a run that has no checkpoint ({', '.join(found)}; it stopped "
                f"before writing its first one): pass --overwrite to start it again, or choose another --output"
            )
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
        raise PermissionError(_not_writable(out, err)) from None
    if overwrite and not resume:
        for name in run_artifacts(out):
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    remove_incomplete_writes(out)
    return out


def _not_writable(out: Path, err: OSError) -> str:
    reason = err.strerror or err
    return f"output directory {out} is not writable ({reason}); choose another --output or fix its permissions"


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


# ------------------------------------------------------------------------------------------------------------------
# One writer per run directory


LOCK_FILE = ".botnet-run.lock"


class RunDirBusy(ValueError):
    """Another process is writing the run directory; ``holder`` is what it recorded (pid, host, started)."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


class RunLock:
    """The exclusive advisory lock (``fcntl.flock``) of one run directory, held from :meth:`acquire` to :meth:`release`.

    A context manager (``with RunLock(out): ...``), re-entrant in the sense that :meth:`acquire` on a held lock is an
    error rather than a deadlock. The holder writes ``{"pid", "host", "started"}`` into the lock file, so a refused
    writer can say who is writing. Closing the descriptor releases the lock, so a lock object that is garbage
    collected, or a process that dies, frees the directory.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock without waiting; raise :class:`RunDirBusy` naming the holder when another process has it."""
        if self._fd is not None:
            raise RuntimeError(f"the lock of {self.run_dir} is already held by this object")
        # The descriptor that holds the lock is read-only where the file system allows it (flock needs no write
        # access locally), so a held lock never keeps the disk from being remounted read-only; NFS emulates flock with
        # a write lock, which needs a descriptor open for writing (EBADF otherwise): there it is opened read-write.
        mode = os.O_RDONLY
        while True:
            try:
                fd = os.open(self.path, mode | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            except OSError as err:
                if err.errno == errno.ELOOP:
                    raise ValueError(f"{self.path} is a symbolic link; remove it (it is only a lock file)") from None
                raise PermissionError(_not_writable(self.run_dir, err)) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno == errno.EBADF and mode == os.O_RDONLY:
                    os.close(fd)
                    mode = os.O_RDWR
                    continue
                holder = _read_holder(fd)
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise PermissionError(
                        f"cannot lock {self.path} ({err.strerror or err}): the file system of {self.run_dir} may not "
                        "support locks; choose an --output on a local disk"
                    ) from None
                raise RunDirBusy(_busy_message(self.run_dir, holder), holder) from None
            try:
                same_file = os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False))
            except FileNotFoundError:
                same_file = False
            if same_file:
                break
            os.close(fd)  # the lock file was replaced between open and flock: lock the one that is there now
        self._fd = fd
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            self._write_record((json.dumps(record) + "\n").encode())
        except OSError as err:
            self.release()
            raise PermissionError(_not_writable(self.run_dir, err)) from None
        return self

    def _write_record(self, data: bytes) -> None:
        """Replace the holder record through a descriptor of its own, closed at once (see :meth:`acquire`)."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        finally:
            os.close(fd)

    def release(self) -> None:
        """Give the lock up (idempotent). The holder record is cleared first; the file stays."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):  # a read-only disk must not keep the lock: closing releases it anyway
                self._write_record(b"")
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self if self.held else self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None):
        self.release()

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)

    def __repr__(self) -> str:
        return f"RunLock({str(self.run_dir)!r}, held={self.held})"


def read_lock_holder(run_dir: str | Path) -> dict[str, Any]:
    """What the current (or last) holder of ``run_dir``'s lock recorded; ``{}`` when nothing is recorded."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return {}
    try:
        return _read_holder(fd)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _busy_message(run_dir: Path, holder: dict[str, Any]) -> str:
    if "pid" in holder:
        since = f", since {holder['started']}" if holder.get("started") else ""
        who = f"process {holder['pid']} on host {holder.get('host', '?')}{since}"
    else:
        who = "another process (it has not recorded its id yet)"
    return (
        f"{run_dir} is being written by another run: {who}. One run directory has one writer: wait for that run to "
        f"end (or stop it), or choose another --output"
    )
