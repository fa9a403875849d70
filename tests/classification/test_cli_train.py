"""``botnet train`` / ``botnet eval`` as a user runs them: subprocesses, a SIGKILL and resume, torchrun with 2 ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

FAST = ["--shapes-train", "96", "--shapes-val", "40", "--batch-size", "16", "--workers", "0", "--image-size", "32"]


def botnet(*args, timeout=300, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BOTNET_TRACEBACK"}
    cmd = [sys.executable, "-m", "botnet", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, **kw)


def test_train_then_eval(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("epochs: 1\nlabel_smoothing: 0.0\nlog_interval: 2\n")
    out = tmp_path / "run"
    r = botnet("train", "--config", cfg, *FAST, "--output", out)
    assert r.returncode == 0, r.stderr
    assert "val top-1" in r.stdout
    assert "epoch 1/1 2/6" in r.stderr  # not a terminal: a plain line every log_interval steps
    assert "label_smoothing: 0.0" in (out / "config.yaml").read_text()

    r = botnet("eval", "--checkpoint", out / "best", "--workers", "0", "--output", tmp_path / "e.json")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "e.json").read_text())
    metrics = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert result["top1"] == pytest.approx(metrics["val_top1"]) and result["images"] == 40
    assert f"top-1 {result['top1']:.2f}%" in r.stdout


def test_user_errors_exit_2_with_a_message(tmp_path, capsys, monkeypatch):
    """In this process (the interpreter start-up is tested above): every user error is a message and status 2."""
    from botnet.cli.main import main

    monkeypatch.delenv("BOTNET_TRACEBACK", raising=False)

    def run(*args) -> tuple[int, str]:
        capsys.readouterr()
        status = main([str(a) for a in args])
        return status, capsys.readouterr().err

    status, err = run("train", "--data", tmp_path / "nowhere", "--output", tmp_path / "o1")
    assert status == 2 and "does not exist" in err and "Traceback" not in err

    out = tmp_path / "run"
    assert run("train", *FAST, "--epochs", "1", "--output", out)[0] == 0
    status, err = run("train", *FAST, "--epochs", "1", "--output", out)
    assert status == 2 and "already holds a run" in err
    status, err = run("train", "--resume", out, "--lr", "0.5")
    assert status == 2 and "cannot change --lr when resuming" in err

    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 0.1\n")
    status, err = run("train", "--config", bad)
    assert status == 2 and "unknown option(s) learning_rate" in err
    status, err = run("eval", "--checkpoint", tmp_path / "nowhere")
    assert status == 2 and "does not exist" in err


def test_torchrun_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "botnet", "train", *FAST, "--epochs", "2", "--output", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "x 2 process(es)" in r.stderr
    assert r.stdout.count("val top-1") == 1  # only rank 0 reports and writes
    assert len(list((out / "tensorboard").iterdir())) == 1  # one event file: rank 0's
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    # 96 images / 2 ranks / batch 16 = 3 steps per epoch on each rank.
    assert rows[-1]["global_step"] == 6
    state = torch.load(out / "last" / "training_state.pt", weights_only=True)
    assert state["world_size"] == 2
    # Validation was sharded over the ranks and summed: one process on the same weights gets the same numbers.
    r = botnet("eval", "--checkpoint", out, "--workers", "0")
    assert r.returncode == 0, r.stderr
    result = json.loads((out / "eval.json").read_text())
    assert result["images"] == 40
    best = rows[json.loads((out / "best" / "checkpoint.json").read_text())["epoch"] - 1]  # a run directory: its best/
    assert result["top1"] == pytest.approx(best["val_top1"])
    assert result["loss"] == pytest.approx(best["val_loss"], rel=1e-5)
