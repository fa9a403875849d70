"""Faults injected into real training runs (subprocesses): kills, stop signals, damaged checkpoints, a full or
read-only disk. Each run must either finish with exactly the weights of an uninterrupted run, or stop with a
message saying what happened, what is intact and how to continue."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from botnet.engine import checkpoint as ckpt

# 480 images / batch 16 = 30 optimizer steps per epoch, a checkpoint after every step.
OPTS = ["--shapes-train", "480", "--shapes-val", "40", "--batch-size", "16", "--workers", "0", "--image-size", "32"]
OPTS += ["--epochs", "2", "--checkpoint-steps", "1", "--log-interval", "1000"]
STEPS = 60


def _env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != "BOTNET_TRACEBACK"}, "OMP_NUM_THREADS": "1"}


def _cmd(*args) -> list[str]:
    return [sys.executable, "-m", "botnet", *map(str, args)]


def _run(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(*args), capture_output=True, text=True, env=_env(), timeout=timeout)


def _step(run: Path, name: str = "last") -> int:
    return int(json.loads((run / name / ckpt.SUMMARY_FILE).read_text())["global_step"])


def _wait_for_step(proc: subprocess.Popen, run: Path, above: int, timeout: float = 120) -> bool:
    """Wait until the run has checkpointed a step beyond ``above``; False if it ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if _step(run) > above:
                return True
        except (OSError, ValueError, KeyError):  # not written yet, or mid-swap
            pass
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint beyond step {above} within {timeout} s")


@pytest.fixture
def in_process(monkeypatch, capsys):
    """Run ``botnet ...`` in this process (no interpreter start-up) with one thread, as the subprocesses have;
    returns (exit status, stderr)."""
    from botnet.cli.main import main

    monkeypatch.delenv("BOTNET_TRACEBACK", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def run(*args) -> tuple[int, str]:
        capsys.readouterr()
        status = main([str(a) for a in args])
        return status, capsys.readouterr().err

    yield run
    torch.set_num_threads(threads)


def _same_weights(a: Path, b: Path) -> list[str]:
    """Names of the tensors that differ (bit for bit) between two model.safetensors files."""
    x, y = load_file(a), load_file(b)
    assert x.keys() == y.keys()
    return [k for k in x if not torch.equal(x[k], y[k])]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run every faulted run must reproduce."""
    out = tmp_path_factory.mktemp("reference") / "run"
    r = _run("train", *OPTS, "--output", out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _step(out) == STEPS
    return out


def test_repeated_sigkill_at_random_points_ends_with_the_uninterrupted_weights(reference, tmp_path):
    out = tmp_path / "run"
    rng = random.Random(7)
    kills: list[int] = []
    args = ["train", *OPTS, "--output", out]
    while len(kills) < 4:
        before = _step(out) if (out / "last").exists() else 0
        proc = subprocess.Popen(_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
        if not _wait_for_step(proc, out, before):
            break  # finished before this kill
        time.sleep(rng.uniform(0.0, 0.4))  # anywhere: mid-step, mid-checkpoint write, mid-swap
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append(_step(out))
        args = ["train", "--resume", out]
    assert len(kills) >= 3, f"only {len(kills)} kills landed before the run finished (steps {kills})"
    r = _run(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _step(out) == STEPS
    assert _same_weights(reference / "last" / ckpt.MODEL_FILE, out / "last" / ckpt.MODEL_FILE) == []
    ref_rows = [json.loads(x) for x in (reference / "metrics.jsonl").read_text().splitlines()]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    for key in ("train_loss", "val_loss", "val_top1", "global_step"):
        assert [r[key] for r in rows] == [r[key] for r in ref_rows], key
    assert not list(out.glob(".*.tmp*")), "a killed writer's temporary files were not cleaned up"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_stop_signal_checkpoints_at_a_safe_point_and_exits_nonzero(reference, tmp_path, sig, in_process):
    out = tmp_path / "run"
    # Its own process group, with DataLoader workers, as a terminal or a job scheduler would signal it.
    args = ["train", *OPTS, "--workers", "2", "--output", out]
    proc = subprocess.Popen(
        _cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), start_new_session=True
    )
    assert _wait_for_step(proc, out, 3)
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err[-3000:]
    name = signal.Signals(sig).name
    assert f"stopped by {name} at epoch" in err and f"Continue with: botnet train --resume {out}" in err
    assert "Traceback" not in err
    stopped_at = _step(out)
    assert 3 < stopped_at < STEPS
    status, err = in_process("train", "--resume", out)
    assert status == 0, err[-3000:]
    assert f"(optimizer step {stopped_at})" in err  # it resumed from the step it stopped at
    assert _same_weights(reference / "last" / ckpt.MODEL_FILE, out / "last" / ckpt.MODEL_FILE) == []


def _interrupted_run(tmp_path: Path, at_step: int = 20) -> Path:
    out = tmp_path / "run"
    proc = subprocess.Popen(_cmd("train", *OPTS, "--output", out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_env())  # fmt: skip
    assert _wait_for_step(proc, out, at_step)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return out


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "bit flip in the weights": (lambda d: _flip_byte(d / ckpt.MODEL_FILE), "model.safetensors is corrupted"),
    "truncated training state": (
        lambda d: os.truncate(d / ckpt.STATE_FILE, (d / ckpt.STATE_FILE).stat().st_size // 3),
        "training_state.pt is truncated or overwritten",
    ),
    "deleted weights": (lambda d: (d / ckpt.MODEL_FILE).unlink(), "model.safetensors is missing"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_last_checkpoint_is_named_and_the_run_continues_from_the_previous(
    reference, tmp_path, damage, in_process
):
    out = _interrupted_run(tmp_path)
    last, prev = out / "last", out / "last.prev"
    prev_step = _step(out, "last.prev")
    assert prev_step == _step(out) - 1
    edit, message = DAMAGE[damage]
    edit(last)

    status, err = in_process("eval", "--checkpoint", out, "--workers", "0")
    assert status == 2 and message in err and str(last) in err, err
    assert f"the previous checkpoint is {prev}" in err

    status, err = in_process("train", "--resume", out)
    assert status == 0, err[-3000:]
    assert message in err and f"resuming from the previous checkpoint {prev} instead" in err
    assert f"(optimizer step {prev_step})" in err
    assert _same_weights(reference / "last" / ckpt.MODEL_FILE, out / "last" / ckpt.MODEL_FILE) == []
    assert (out / "last.damaged").is_dir()  # kept for inspection, not used as a fallback


# ----------------------------------------------------------------------------------------------------------------
# The output disk fills up or becomes read-only in the middle of a run: a real tmpfs in a private mount namespace.

DRIVER = textwrap.dedent(
    """
    import json, os, subprocess, sys, time, shutil
    mnt, result, fault = sys.argv[1], sys.argv[2], sys.argv[3]
    cmd = sys.argv[4:]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", mnt], check=True)
    run = os.path.join(mnt, "run")
    proc = subprocess.Popen(cmd + ["--output", run], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    summary = os.path.join(run, "last", "checkpoint.json")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.load(open(summary))["global_step"] >= 5:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    if fault == "full":
        try:  # closing the file can fail too, flushing what the full disk did not take
            with open(os.path.join(mnt, "filler"), "wb") as fh:
                while True:
                    fh.write(b"\\0" * (1 << 16))
                    fh.flush()
        except OSError:
            pass
    else:
        while subprocess.run(["mount", "-o", "remount,ro", mnt], capture_output=True).returncode != 0:
            time.sleep(0.01)  # busy while a file is open for writing
    out, err = proc.communicate(timeout=120)
    shutil.copytree(run, os.path.join(result, "run"), symlinks=True)
    json.dump({"returncode": proc.returncode, "stderr": err}, open(os.path.join(result, "result.json"), "w"))
    """
)


def _namespaces_available() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _namespaces_available(), reason="needs Linux user and mount namespaces (unshare -rm)")
@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_disk_full_or_read_only_mid_run_stops_cleanly_and_the_last_checkpoint_resumes(
    reference, tmp_path, fault, in_process
):
    mnt, result = tmp_path / "mnt", tmp_path / "result"
    mnt.mkdir()
    result.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    cmd = ["unshare", "-rm", sys.executable, str(driver), str(mnt), str(result), fault, *_cmd("train", *OPTS)]
    subprocess.run(cmd, check=True, timeout=300, env=_env())
    outcome = json.loads((result / "result.json").read_text())
    err = outcome["stderr"]
    assert outcome["returncode"] == 2, err[-3000:]
    code = "ENOSPC" if fault == "full" else "EROFS"
    assert "could not write" in err and code in err and "and is intact" in err, err[-3000:]
    assert "continue with: botnet train --resume" in err and "Traceback" not in err

    run = result / "run"  # the run directory as the fault left it
    left = list(run.glob(".*.tmp*"))
    if fault == "full":  # a full disk still deletes: the writer removes its temporary files
        assert not left, "a temporary file or checkpoint directory was left behind"
    # A read-only remount between the writer's mkdir and its rename leaves the temporary directory where nothing can
    # delete it; it is never taken for a checkpoint, and the resume removes it.
    assert ckpt.resolve_checkpoint(run) == run / "last"  # complete: every file matches its manifest
    stopped_at = _step(run)
    assert 5 <= stopped_at < STEPS
    status, err = in_process("train", "--resume", run)
    assert not list(run.glob(".*.tmp*")), f"left after the resume: {left}"
    assert status == 0, err[-3000:]
    assert f"(optimizer step {stopped_at})" in err
    assert _same_weights(reference / "last" / ckpt.MODEL_FILE, run / "last" / ckpt.MODEL_FILE) == []


# ----------------------------------------------------------------------------------------------------------------
# torchrun: one of two workers dies


def _worker_pids(root: int) -> dict[int, int]:
    """{RANK: pid} of the processes below ``root`` that torchrun started (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    ranks, todo = {}, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            env = dict(
                kv.split("=", 1) for kv in (Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")) if "=" in kv
            )
        except OSError:
            continue
        if "RANK" in env and "LOCAL_RANK" in env:
            ranks[int(env["RANK"])] = pid
    return ranks


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the workers through /proc")
def test_torchrun_job_with_a_killed_worker_exits_nonzero_in_bounded_time(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "botnet", "train", *OPTS, "--output", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    assert _wait_for_step(proc, out, 2)
    ranks = _worker_pids(proc.pid)
    assert set(ranks) == {0, 1}, ranks
    os.kill(ranks[1], signal.SIGKILL)
    killed_at = time.time()
    _, err = proc.communicate(timeout=120)  # a hang fails here
    elapsed = time.time() - killed_at
    assert proc.returncode != 0
    assert elapsed < 60, f"the job took {elapsed:.0f} s to end after a worker died"
    assert "FAILED" in err and "Signal 9 (SIGKILL)" in err, err[-3000:]
    assert ckpt.resolve_checkpoint(out) == out / "last"  # what was written is complete


# ----------------------------------------------------------------------------------------------------------------
# Files that would run code


class _Evil:
    marker: Path

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_would_run_code_is_refused_through_the_cli(tmp_path, in_process):
    out = tmp_path / "run"
    status, err = in_process("train", *OPTS[:-4], "--epochs", "1", "--output", out)
    assert status == 0, err[-2000:]
    _Evil.marker = tmp_path / "pwned"
    state = out / "last" / ckpt.STATE_FILE
    torch.save({"counters": _Evil()}, state)
    ckpt.write_manifest(out / "last")  # a consistent checkpoint, as someone who crafted it would make it
    status, err = in_process("train", "--resume", out)
    assert status == 2 and f"cannot read {state}" in err and "Weights only load failed" in err, err[-2000:]
    assert not _Evil.marker.exists()

    evil_weights = tmp_path / "backbone.pth"
    torch.save({"conv1.weight": _Evil()}, evil_weights)
    status, err = in_process("detect", "train", "--weights-backbone", evil_weights, "--output", tmp_path / "det")
    assert status == 2 and "weights_only" in err, err[-2000:]
    assert not _Evil.marker.exists()


# ----------------------------------------------------------------------------------------------------------------
# Hostile image files


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width`` x ``height`` and which holds no pixel data (a decompression bomb's
    first bytes)."""
    import struct
    import zlib

    chunk = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)))
    return path


def _hostile_files(d: Path) -> list[Path]:
    import io

    from PIL import Image

    d.mkdir(parents=True, exist_ok=True)
    png, jpeg = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (40, 40), "red").save(png, "PNG")
    Image.new("RGB", (40, 40), "red").save(jpeg, "JPEG")
    files = {
        "bomb.png": None,
        "cut.png": png.getvalue()[: len(png.getvalue()) // 2],
        "cut.jpg": jpeg.getvalue()[: len(jpeg.getvalue()) // 2],
        "empty.jpg": b"",
        "text.jpg": b"name,value\n1,2\n",
    }
    for name, data in files.items():
        if data is None:
            _png_header_only(d / name, 100_000, 100_000)
        else:
            (d / name).write_bytes(data)
    Image.new("RGB", (300, 300), "blue").save(d / "huge.png")  # a real image above --max-image-pixels
    return [d / name for name in [*files, "huge.png"]]


@contextlib.contextmanager
def _deadline(seconds: int):
    """Fail instead of hanging."""

    def expire(*_):
        raise TimeoutError(f"no result within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_hostile_images_are_skipped_with_a_count_and_refused_by_predict(tmp_path, in_process):
    from train_helpers import write_image_folder

    data = write_image_folder(tmp_path / "data", per_class=9)  # 24 train images: 6 whole batches of 4
    hostile = _hostile_files(data / "train" / "cat")
    opts = ["--data", data, "--image-size", "32", "--batch-size", "4", "--epochs", "1", "--workers", "0"]
    opts += ["--max-image-pixels", "50000", "--log-interval", "1000"]
    with _deadline(120):
        status, err = in_process("train", *opts, "--output", tmp_path / "strict")
    assert status == 2 and f"{len(hostile)} of 24 images" in err and "--max-bad-fraction" in err, err[-2000:]
    with _deadline(120):
        status, err = in_process("train", *opts, "--max-bad-fraction", "0.3", "--output", tmp_path / "run")
    assert status == 0, err[-2000:]
    assert f"skipped {len(hostile)} of 24 images" in err
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["bad_images"] == len(hostile)

    for path in hostile:
        with _deadline(60):
            status, err = in_process("predict", "--checkpoint", tmp_path / "run", path, "--max-pixels", "50000")
        assert status == 1 and f"error: {path}: " in err and "none of the 1 images" in err, err
        assert "Traceback" not in err and "BytesIO" not in err, err


def test_first_ctrl_c_requests_a_stop_and_the_second_interrupts():
    from botnet.engine.stopping import stop_requests

    with stop_requests() as received:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # handlers run between bytecodes of the main thread
        assert received == [signal.SIGTERM, signal.SIGINT]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
