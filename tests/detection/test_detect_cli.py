"""``botnet detect`` as a user runs it: train, eval and predict in subprocesses; torchrun with 2 ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from botnet.detection.export import export_detector, read_onnx_metadata

FAST = ["--image-size", "64", "--batch-size", "4", "--workers", "0", "--log-interval", "2"]


def botnet(*args, timeout=300, env=None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "BOTNET_TRACEBACK"}
    cmd = [sys.executable, "-m", "botnet", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env={**base, **(env or {})}, timeout=timeout)


def test_train_eval_predict(coco_root, tmp_path):
    run = tmp_path / "run"
    r = botnet("detect", "train", "--data", coco_root, "--epochs", "2", *FAST, "--output", run)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "box AP" in r.stdout and "segm" in r.stdout
    assert "epoch 2/2 2/4" in r.stderr  # plain progress lines when not on a terminal
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0}).Reload()
    assert [(e.step, e.value) for e in events.Scalars("val_segm_AP")] == [
        (row["global_step"], pytest.approx(row["val_segm_AP"])) for row in rows
    ]
    assert [e.step for e in events.Images("val_detections/0")] == [row["global_step"] for row in rows]

    r = botnet("detect", "eval", "--checkpoint", run, "--data", coco_root, "--workers", "0")
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((run / "eval.json").read_text())
    assert result["images"] == 6
    best = max(rows, key=lambda row: row["val_bbox_AP"])  # the run directory means best/: the first best epoch
    assert result["bbox"]["AP50"] == pytest.approx(best["val_bbox_AP50"])
    assert result["segm"]["AP"] == pytest.approx(best["val_segm_AP"])
    assert "AP50" in r.stdout and "bbox" in r.stdout

    # A file that is not an image among them: named with the reason, the others predicted (a .gif too), exit 1.
    images = sorted((coco_root / "val").iterdir())[:2]
    Image.open(images[1]).save(tmp_path / "second.gif")
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    given = [images[0], bad, tmp_path / "second.gif"]
    out = tmp_path / "pred"
    r = botnet("detect", "predict", "--checkpoint", run / "best", *given, "--score-threshold", "0", "--output", out)
    assert r.returncode == 1, r.stderr[-3000:]
    assert f"error: {bad}: cannot identify image file (not an image, or a format Pillow cannot read)" in r.stderr
    assert "1 of 3 images could not be predicted (see above); the results hold the other 2" in r.stderr
    assert "Traceback" not in r.stderr
    pictures = sorted(out.glob("*.png"))
    assert [p.name for p in pictures] == [f"0000_{images[0].stem}.png", "0002_second.png"]
    assert [Image.open(p).size for p in pictures] == [Image.open(p).size for p in images]
    detections = json.loads((out / "detections.json").read_text())
    assert detections, "score threshold 0 keeps every detection"
    names = {"circle", "triangle", "square", "star", "ring", "cross"}
    for d in detections:
        assert {"image_id", "category_id", "bbox", "score", "segmentation", "file_name", "category"} <= set(d)
        assert d["image_id"] in (0, 2) and d["category"] in names and len(d["bbox"]) == 4
        assert isinstance(d["segmentation"]["counts"], str)
    assert {d["file_name"] for d in detections} <= {str(images[0]), str(tmp_path / "second.gif")}

    # Mask R-CNN to ONNX: masks pasted at the image's size agree with PyTorch's at two sizes it was not traced at.
    r = export_detector(run, tmp_path / "mask.onnx")
    loose = r["checks"][2:]  # the same graph with the score threshold at 0: the model's 100 best detections
    assert [c["matched"] for c in loose] == [100, 100] and all(c["max_diff"]["masks"] <= 1e-3 for c in loose)
    assert set(read_onnx_metadata(tmp_path / "mask.onnx")["class_names"]) == names


def test_torchrun_two_cpu_processes(coco_root, tmp_path):
    run = tmp_path / "ddp"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model_args: {box_score_thresh: 0.0}\n")  # every image keeps its 100 best detections
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "botnet", "detect", "train", "--config", str(cfg), "--data", str(coco_root), "--epochs", "1"]
    cmd += [*FAST, "--output", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "x 2 process(es)" in r.stderr
    assert r.stdout.count("run: ") == 1  # only rank 0 reports and writes
    assert len(list((run / "tensorboard").iterdir())) == 1  # one event file: rank 0's
    (row,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert row["global_step"] == 2  # 16 images / 2 ranks / batch 4
    assert row["val_images"] == 6  # each validation image counted once over the ranks
    state = torch.load(run / "last" / "training_state.pt", weights_only=True)
    assert state["world_size"] == 2
    # Detections gathered from both ranks give what one process gets on the same weights.
    r = botnet("detect", "eval", "--checkpoint", run, "--workers", "0")
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((run / "eval.json").read_text())
    assert result["detections"] == row["val_detections"] == 6 * 100  # both ranks' detections were gathered
    assert result["bbox"]["AP"] == pytest.approx(row["val_bbox_AP"])
    assert result["bbox"]["AP50"] == pytest.approx(row["val_bbox_AP50"])
    assert result["segm"]["AP"] == pytest.approx(row["val_segm_AP"])


def test_sigkill_then_resume_gives_the_uninterrupted_detector(coco_root, tmp_path):
    """A detection run killed at a random point and resumed ends with the weights of a run never interrupted."""
    import random
    import signal
    import time

    from safetensors.torch import load_file

    opts = ["detect", "train", "--data", coco_root, "--epochs", "2", *FAST, "--checkpoint-steps", "1"]
    env = {"OMP_NUM_THREADS": "1"}
    ref = botnet(*opts, "--output", tmp_path / "ref", env=env)
    assert ref.returncode == 0, ref.stderr[-3000:]

    out = tmp_path / "killed"
    base = {k: v for k, v in os.environ.items() if k != "BOTNET_TRACEBACK"}
    cmd = [sys.executable, "-m", "botnet", *map(str, opts), "--output", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**base, **env})
    summary = out / "last" / "checkpoint.json"
    deadline = time.time() + 240
    while time.time() < deadline and not summary.exists():
        time.sleep(0.02)
    time.sleep(random.uniform(0.0, 1.0))
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = json.loads(summary.read_text())["global_step"]
    assert 1 <= step < 8

    r = botnet("detect", "train", "--resume", out, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = load_file(tmp_path / "ref" / "last" / "model.safetensors"), load_file(out / "last" / "model.safetensors")
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    ref_rows = (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["val_bbox_AP"] for x in rows] == [json.loads(x)["val_bbox_AP"] for x in ref_rows]
