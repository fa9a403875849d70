"""One writer per run directory (a real flock between real processes) and resume / output paths of checkpoints."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from botnet.engine import checkpoint as ckpt
from botnet.engine.run_dir import LOCK_FILE, RunDirBusy, RunLock, claim_output_dir, read_lock_holder, run_artifacts

HOLDER = textwrap.dedent(
    """
    import sys, time
    from botnet.engine.run_dir import claim_output_dir
    lock = claim_output_dir(sys.argv[1], resume=sys.argv[2] == "resume", overwrite=sys.argv[2] == "overwrite")
    print("locked", flush=True)
    time.sleep(120)
    """
)
CONTENDER = textwrap.dedent(
    """
    import sys
    from botnet.engine.run_dir import RunDirBusy, claim_output_dir
    try:
        claim_output_dir(sys.argv[1], resume=sys.argv[2] == "resume", overwrite=sys.argv[2] == "overwrite")
    except RunDirBusy as err:
        print(err, flush=True)
        sys.exit(3)
    print("claimed", flush=True)
    """
)


def _write(files: dict[str, bytes]):
    def write(tmp):
        for name, data in files.items():
            (tmp / name).write_bytes(data)

    return write


def _make_run(run):
    """A run directory as a trainer leaves it: config, metrics, last/ and best/."""
    run.mkdir(parents=True, exist_ok=True)
    (run / ckpt.CONFIG_FILE).write_text("model: botnet_tiny\n")
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    ckpt.write_checkpoint_dir(run / "last", _write({ckpt.MODEL_FILE: b"weights", ckpt.CONFIG_FILE: b"model: x\n"}))
    ckpt.link_checkpoint(run / "last", run / "best")
    return run


def _start_holder(out, mode):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline()  # blocks until the holder has the lock (or died)
    if line.strip() != "locked":
        proc.kill()
        raise AssertionError(f"the holder did not lock: {line!r} {proc.stderr.read()}")
    return proc


def _contend(out, mode):
    t0 = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", CONTENDER, str(out), mode], capture_output=True, text=True, timeout=60
    )
    return result, time.monotonic() - t0


@pytest.mark.parametrize("mode", ["new", "overwrite", "resume"])
def test_second_writer_is_refused_at_once_with_the_holders_pid_and_host(tmp_path, mode):
    out = tmp_path / "run"
    if mode != "new":
        _make_run(out)
    holder = _start_holder(out, mode)
    try:
        _make_run(out)  # what the holder's run has written so far
        before = {p.name: p.stat().st_ino for p in out.iterdir()}
        result, elapsed = _contend(out, mode)
        assert result.returncode == 3, result.stderr
        message = result.stdout.strip()
        assert f"process {holder.pid} on host {socket.gethostname()}" in message
        assert message.startswith(f"{out} is being written by another run")
        # refused at once: the contender's time is Python start-up, not a wait for the lock (the holder sleeps 120 s)
        assert elapsed < 30
        assert read_lock_holder(out)["pid"] == holder.pid
        assert {p.name: p.stat().st_ino for p in out.iterdir()} == before  # the refused writer changed nothing
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_never_blocks(tmp_path):
    out = _make_run(tmp_path / "run")
    holder = _start_holder(out, "resume")
    holder.send_signal(signal.SIGKILL)
    assert holder.wait() == -signal.SIGKILL
    assert read_lock_holder(out)["pid"] == holder.pid  # its record is still in the file: only the kernel lock went
    result, _ = _contend(out, "resume")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "claimed"


def test_lock_is_per_directory_and_released(tmp_path):
    out = tmp_path / "run"
    with claim_output_dir(out, resume=False, overwrite=False) as lock:
        assert lock.held
        assert read_lock_holder(out) == {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": read_lock_holder(out)["started"],
        }
        # a second open file description is a second writer, even in the same process
        with pytest.raises(RunDirBusy, match=f"process {os.getpid()} on host"):
            RunLock(out).acquire()
        with claim_output_dir(tmp_path / "other", resume=False, overwrite=False):  # other directories are free
            pass
    assert not lock.held
    assert read_lock_holder(out) == {}  # the record is cleared on release; the file stays
    assert (out / LOCK_FILE).is_file()
    with RunLock(out) as again:
        assert again.held


def test_lock_file_is_not_a_run_and_survives_overwrite(tmp_path):
    out = tmp_path / "run"
    claim_output_dir(out, resume=False, overwrite=False).release()
    assert run_artifacts(out) == []
    claim_output_dir(out, resume=False, overwrite=False).release()  # an empty directory with a lock file is not a run
    _make_run(out)
    with pytest.raises(ValueError, match="already holds a run"):
        claim_output_dir(out, resume=False, overwrite=False)
    claim_output_dir(out, resume=False, overwrite=True).release()
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]


def test_a_refused_claim_leaves_the_directory_unlocked(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(ValueError, match="cannot resume"):
        claim_output_dir(out, resume=True, overwrite=False)
    RunLock(out).acquire().release()  # not left locked by the failed claim


def test_resume_without_any_checkpoint_says_it_cannot_work(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ckpt.CONFIG_FILE).write_text("model: botnet_tiny\n")  # a run that failed before its first checkpoint
    with pytest.raises(ValueError, match=r"has no checkpoint yet .* start it again with --output .* --overwrite"):
        claim_output_dir(out, resume=True, overwrite=False)


@pytest.mark.parametrize("name", ["best", "last", "last.prev"])
def test_nothing_is_written_inside_a_checkpoint(tmp_path, name):
    run = _make_run(tmp_path / "run")
    if name == "last.prev":
        ckpt.write_checkpoint_dir(run / "last", _write({ckpt.MODEL_FILE: b"newer"}), keep_previous=True)
    before = {p.name: p.read_bytes() for p in (run / name).iterdir()}
    with pytest.raises(ValueError, match=rf"is a checkpoint of the run {run}, not a run directory: use --resume {run}"):
        claim_output_dir(run / name, resume=True, overwrite=False)
    with pytest.raises(ValueError, match="choose another --output"):
        claim_output_dir(run / name, resume=False, overwrite=True)
    assert {p.name: p.read_bytes() for p in (run / name).iterdir()} == before


def test_resume_and_checkpoint_paths_resolve_to_the_owning_run(tmp_path):
    run = _make_run(tmp_path / "run")
    for given in (run, run / "last", run / "best", run / "best" / ckpt.MODEL_FILE, run / "last.prev"):
        assert ckpt.resolve_run_dir(given) == run
    assert ckpt.checkpoint_owner(run / "best") == run
    assert ckpt.resolve_checkpoint(run) == run / "best"  # where a model is read: the weights validation chose
    assert ckpt.resolve_checkpoint(run, run_checkpoint="last") == run / "last"  # where a resume continues
    assert ckpt.resolve_checkpoint(run / "best") == run / "best"
    # a checkpoint on its own has no run to continue
    alone = tmp_path / "downloaded"
    ckpt.link_checkpoint(run / "last", alone)
    assert ckpt.checkpoint_owner(alone) is None
    with pytest.raises(ckpt.CheckpointError, match="outside any run directory"):
        ckpt.resolve_run_dir(alone)
    with pytest.raises(ValueError, match="is a checkpoint directory, not a run directory"):
        claim_output_dir(alone, resume=False, overwrite=True)
    assert ckpt.resolve_run_dir(tmp_path / "new-run") == tmp_path / "new-run"  # a plain (new) directory is itself


def test_checkpoint_without_manifest_loads_with_a_warning(tmp_path):
    run = _make_run(tmp_path / "run")
    assert ckpt.integrity_status(ckpt.resolve_checkpoint(run / "best")) == ckpt.VERIFIED
    (run / "best" / ckpt.MANIFEST_FILE).unlink()
    with pytest.warns(ckpt.UnverifiedCheckpointWarning, match=r"best has no manifest\.json: its files cannot be"):
        path = ckpt.resolve_checkpoint(run / "best")
    assert path == run / "best"
    assert ckpt.integrity_status(path) == ckpt.UNVERIFIED
    assert ckpt.verify_checkpoint(run / "last") is True
    manifest = json.loads((run / "last" / ckpt.MANIFEST_FILE).read_text())
    assert set(manifest["files"]) == {ckpt.MODEL_FILE, ckpt.CONFIG_FILE}
