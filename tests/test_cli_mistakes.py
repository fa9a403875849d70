"""Mistakes users make in their first week, each through the ``botnet`` command: none loses a result, mixes two
runs, hangs, or answers with a traceback. In this process (``botnet.cli.main``) unless start-up or a second
process is what is tested."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY = ["--shapes-train", "32", "--shapes-val", "16", "--epochs", "1", "--batch-size", "16", "--workers", "0"]
FAST = [*TINY, "--image-size", "32"]


def run_main(*args) -> tuple[int, str, str]:
    """``botnet ARGS`` in this process: (exit status, stdout, stderr); argparse's exits become statuses."""
    import contextlib
    import io

    from botnet.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def botnet(*args, timeout=300) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "BOTNET_TRACEBACK"}
    cmd = [sys.executable, "-m", "botnet", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(autouse=True)
def _no_traceback_env(monkeypatch):
    monkeypatch.delenv("BOTNET_TRACEBACK", raising=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished one-epoch run of the built-in data."""
    out = tmp_path_factory.mktemp("run") / "run"
    code, _, err = run_main("train", *FAST, "--output", out)
    assert code == 0, err
    return out


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
    return path


# 1. --resume RUN/best -----------------------------------------------------------------------------------------------


def test_resume_from_best_continues_the_owning_run_and_writes_nothing_inside_best(tmp_path, monkeypatch):
    from botnet.engine.loop import Trainer

    out = tmp_path / "run"
    stops = iter([True])  # a stop request after epoch 1 of 2: an unfinished run with a checkpoint
    monkeypatch.setattr(Trainer, "_stop_agreed", lambda self: next(stops, False))
    code, _, err = run_main("train", *FAST, "--epochs", "2", "--output", out)
    assert code == 128 + signal.SIGTERM and "--resume" in err, err
    best_before = digest(out / "best")

    code, _, err = run_main("train", "--resume", out / "best")
    assert code == 0, err
    assert f"is a checkpoint of the run {out}: continuing that run from its own last checkpoint" in err
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]  # the run itself went on
    assert sorted(p.name for p in (out / "best").iterdir()) == sorted(best_before)  # no last/, metrics, curves
    assert digest(out / "best")["config.yaml"] == best_before["config.yaml"]
    code, _, err = run_main("eval", "--checkpoint", out / "best", "--workers", "0")
    assert code == 0, err
    result = json.loads((out / "eval.json").read_text())
    assert result["integrity"] == "verified"
    best_row = max(rows, key=lambda r: r["val_top1"])
    assert result["top1"] == pytest.approx(best_row["val_top1"])


# 2. Two trainings into one --output ---------------------------------------------------------------------------------


def test_a_second_training_into_a_busy_output_is_refused_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "X"
    first = botnet("train", *TINY, "--seed", "1", "--output", out)
    try:
        deadline = time.monotonic() + 240
        while not (out / ".botnet-run.lock").is_file() or not (out / ".botnet-run.lock").read_text().strip():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run never took its lock"
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGSTOP)  # it holds the lock for as long as the test needs
        try:
            for extra in ([], ["--overwrite"]):
                second = botnet("train", *TINY, "--seed", "2", "--output", out, *extra)
                t0 = time.monotonic()
                _, err = second.communicate(timeout=240)
                assert second.returncode == 2, err
                assert f"process {first.pid} on host {socket.gethostname()}" in err and "Traceback" not in err
                assert time.monotonic() - t0 < 60  # refused at once, not after waiting for the lock
        finally:
            os.kill(first.pid, signal.SIGCONT)
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
    assert "seed: 1" in (out / "config.yaml").read_text()  # every file is the first run's
    code, _, err = run_main("eval", "--checkpoint", out / "best", "--workers", "0")
    assert code == 0, err
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert json.loads((out / "eval.json").read_text())["top1"] == pytest.approx(row["val_top1"])


def test_the_lock_is_released_on_every_exit_so_the_next_run_can_start(tmp_path):
    out = tmp_path / "run"
    code, _, err = run_main("train", *FAST, "--model", "no_such_model", "--output", out)
    assert code == 2 and "no_such_model" in err
    code, _, err = run_main("train", *FAST, "--lr", "1e30", "--output", out)  # fails inside the run
    assert code == 2 and "non-finite" in err, err
    code, _, err = run_main("train", *FAST, "--output", out, "--overwrite")
    assert code == 0, err


# 3. and 4. A symbolic-link loop and a FIFO in an ImageFolder --------------------------------------------------------


def write_folder(root: Path, per_class: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c, name in enumerate(("a", "b")):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(per_class):
                arr = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
                arr[..., c] = 255
                Image.fromarray(arr).save(d / f"{i}.png")
    return root


def test_a_symlink_loop_in_the_data_gives_the_exact_images(tmp_path):
    data = write_folder(tmp_path / "data")
    (data / "train" / "a" / "loop").symlink_to("..")  # train/a/loop/b/*.png would be class b's images under a
    code, _, err = run_main("train", "--data", data, "--epochs", "1", "--batch-size", "2", "--workers", "0",
                            "--image-size", "32", "--output", tmp_path / "run")  # fmt: skip
    assert code == 0, err
    assert "6 train / 6 val images, 2 classes" in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_png_in_the_data_is_counted_not_opened_within_a_deadline(tmp_path):
    data = write_folder(tmp_path / "data")
    os.mkfifo(data / "train" / "a" / "pipe.png")
    proc = botnet("train", "--data", data, "--epochs", "1", "--batch-size", "7", "--workers", "0", "--image-size", "32",
                  "--max-bad-fraction", "0.5", "--output", tmp_path / "run")  # fmt: skip
    try:
        _, err = proc.communicate(timeout=180)  # the deadline: a FIFO that is opened blocks for good
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "skipped 1 of 7 images" in err and "pipe.png" in err and "FIFO" in err


# 6. --opset -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", ["7", "999"])
def test_an_unsupported_opset_is_refused_with_the_range_and_writes_nothing(run_dir, tmp_path, opset):
    target = tmp_path / "m.onnx"
    code, _, err = run_main("export", "--checkpoint", run_dir, "--opset", opset, "--output", target)
    assert code == 2 and f"--opset {opset} is not supported" in err and "18 to" in err and "Traceback" not in err
    assert not target.exists()


# 7. and 8. Outputs: never an input, never a directory where a file is meant, no traceback -----------------------------


def test_sizes_beyond_memory_are_refused_by_name(run_dir, image):
    code, _, err = run_main("train", *TINY, "--image-size", "100000")
    assert code == 2 and err.startswith("botnet train: error: --image-size 100000 is too large") and "GiB" in err
    code, _, err = run_main("attention", "--checkpoint", run_dir, image, "--panel", "100000")
    assert code == 2 and "--panel 100000 is too large" in err and "Traceback" not in err
    code, _, err = run_main("attention", "--checkpoint", run_dir, image, "--panel", "20000", "--output",
                            image.with_name("fig.png"))  # fmt: skip
    assert code == 2 and "--panel 20000 is too large for this figure" in err  # 5 panels side by side: > 2**16 px
    assert not image.with_name("fig.png").exists()


def test_eval_output_that_is_a_directory_is_refused_before_evaluating(run_dir, tmp_path, monkeypatch):
    import botnet.classification.checkpoints as checkpoints

    monkeypatch.setattr(checkpoints, "evaluate", lambda *a, **k: pytest.fail("the evaluation ran"))
    code, _, err = run_main("eval", "--checkpoint", run_dir, "--output", tmp_path)
    assert code == 2 and f"--output {tmp_path} is an existing directory" in err and "Traceback" not in err
    code, _, err = run_main("eval", "--checkpoint", run_dir, "--output", run_dir / "best" / "e.json")
    assert code == 2 and "inside the checkpoint" in err


def test_predict_json_that_is_a_directory_or_an_input_is_refused(run_dir, image, tmp_path):
    original = image.read_bytes()
    code, _, err = run_main("predict", "--checkpoint", run_dir, image, "--json", tmp_path)
    assert code == 2 and f"--json {tmp_path} is an existing directory" in err and "Traceback" not in err
    code, _, err = run_main("predict", "--checkpoint", run_dir, image, "--json", image.parent / "." / image.name)
    assert code == 2 and "writing it would overwrite the input" in err
    assert image.read_bytes() == original


def test_attention_output_naming_the_input_image_is_refused_and_the_image_kept(run_dir, image, tmp_path):
    original = image.read_bytes()
    link = tmp_path / "link.png"
    link.symlink_to(image)
    for output in (image, link):
        code, _, err = run_main("attention", "--checkpoint", run_dir, image, "--output", output)
        assert code == 2 and "writing it would overwrite the input" in err, err
    assert image.read_bytes() == original


def test_detect_predict_output_that_is_a_file_is_refused(tmp_path, image):
    existing = tmp_path / "existing"
    existing.write_text("keep me")
    code, _, err = run_main("detect", "predict", "--checkpoint", tmp_path / "nowhere", image, "--output", existing)
    assert code == 2 and f"--output {existing} is a file, not a directory" in err and "Traceback" not in err
    assert existing.read_text() == "keep me"
    # the picture of image 0 is DIR/0000_<name>.png: here that is the second input image itself
    second = image.with_name(f"0000_{image.stem}.png")
    second.write_bytes(image.read_bytes())
    code, _, err = run_main("detect", "predict", "--checkpoint", tmp_path / "x", image, second, "--output", tmp_path)
    assert code == 2 and f"{second} is the input {second}: writing it would overwrite the input" in err, err
    assert second.read_bytes() == image.read_bytes()


def test_training_output_that_is_a_file_or_inside_the_data_is_refused(tmp_path):
    data = write_folder(tmp_path / "data")
    code, _, err = run_main("train", *FAST, "--data", data, "--output", data / "train" / "runs")
    assert code == 2 and "inside the input directory" in err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 1\n")
    code, _, err = run_main("train", "--config", cfg, *FAST, "--output", cfg)
    assert code == 2 and "is a file, not a directory" in err
    assert cfg.read_text() == "epochs: 1\n"


# 9. Silent or misleading ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--momentum", "nan"], "--momentum must be a finite number in [0, 1), got nan"),
        (["--lr", "inf"], "--lr must be a finite number > 0, got inf"),
        (["--warmup-epochs", "nan"], "--warmup-epochs must be a finite number >= 0, got nan"),
    ],
)
def test_non_finite_options_are_refused_up_front(args, message, tmp_path):
    code, _, err = run_main("train", *FAST, *args, "--output", tmp_path / "run")
    assert (code, message in err) == (2, True), err
    assert not (tmp_path / "run").exists()  # before any work


def test_config_files_that_are_binary_directories_or_repeat_a_key_are_named(tmp_path):
    binary = tmp_path / "model.safetensors"
    binary.write_bytes(b"\x80\x00\xff\xfe" * 8)
    code, _, err = run_main("train", "--config", binary)
    assert code == 2 and f"config file {binary} is not a text (UTF-8) YAML file" in err
    code, _, err = run_main("train", "--config", tmp_path)
    assert code == 2 and f"config file {tmp_path} is a directory" in err and "does not exist" not in err
    twice = tmp_path / "twice.yaml"
    twice.write_text("lr: 0.1\nepochs: 3\nlr: 0.4\n")
    code, _, err = run_main("train", "--config", twice)
    assert code == 2 and "option lr is given twice (lines 1 and 3); the last one would silently win" in err


def test_predict_on_a_directory_or_a_url_says_what_it_is(run_dir, tmp_path):
    code, _, err = run_main("predict", "--checkpoint", run_dir, tmp_path)
    assert code == 1 and f"error: {tmp_path}: is a directory; give the image files in it" in err
    assert "does not exist" not in err and "Traceback" not in err
    url = "https://example.com/cat.jpg"
    code, _, err = run_main("predict", "--checkpoint", run_dir, url)
    assert code == 1 and f"error: {url}: is a URL: only local image files are read" in err


def test_a_run_that_failed_before_its_first_checkpoint_never_suggests_resume(tmp_path, monkeypatch):
    import errno

    from botnet.engine import checkpoint

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(checkpoint, "write_checkpoint_dir", full)
        code, _, err = run_main("train", *FAST, "--output", out)
    assert code == 2 and "before the run's first checkpoint" in err and "--overwrite" in err
    assert "--resume" not in err
    code, _, err = run_main("train", *FAST, "--output", out)
    assert code == 2 and "has no checkpoint" in err and "--overwrite" in err and "--resume" not in err
    code, _, err = run_main("train", "--resume", out)
    assert code == 2 and "no checkpoint yet" in err and "--overwrite" in err
    code, _, err = run_main("train", *FAST, "--output", out, "--overwrite")
    assert code == 0, err


def test_a_checkpoint_without_its_manifest_is_evaluated_with_a_warning_and_reported(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "best" / "manifest.json").unlink()
    code, out, err = run_main("eval", "--checkpoint", copy / "best", "--workers", "0")
    assert code == 0, err
    assert f"warning: {copy / 'best'} has no manifest.json: its files cannot be verified" in err
    assert "checkpoint unverified: no manifest.json" in out
    assert json.loads((copy / "eval.json").read_text())["integrity"] == "unverified: no manifest.json"


def test_an_internal_error_keeps_its_traceback_and_adds_a_summary(monkeypatch):
    from botnet.cli import list_cmd

    def broken(args):
        raise RuntimeError("index out of range in the registry")

    monkeypatch.setattr(list_cmd, "run", broken)
    code, _, err = run_main("list")
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert (
        err.rstrip()
        .splitlines()[-1]
        .startswith("botnet list: internal error: RuntimeError: index out of range in the registry")
    )
