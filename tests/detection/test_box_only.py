"""Box-only COCO data (no masks, or ``"segmentation": []``), as most detection exporters write it, through the CLI
with the default model: the head follows the annotations; train, eval, predict, resume and export."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import pytest
from test_detect_cli import FAST

from botnet.cli.export_cmd import run_detector
from botnet.data.coco_shapes import write_coco_shapes
from botnet.detection.export import export_detector
from botnet.detection.models import create_detection_model
from botnet.detection.start_weights import detector_source, load_detector_weights


def strip_masks(root: Path) -> Path:
    """Remove every mask: half the annotations lose the key, half get ``"segmentation": []``; one training image
    loses all its objects (a background image)."""
    for split in ("train", "val"):
        path = root / "annotations" / f"instances_{split}.json"
        data = json.loads(path.read_text())
        for i, ann in enumerate(data["annotations"]):
            if i % 2:
                ann["segmentation"] = []
            else:
                del ann["segmentation"]
        if split == "train":
            first = data["images"][0]["id"]
            data["annotations"] = [a for a in data["annotations"] if a["image_id"] != first]
        path.write_text(json.dumps(data))
    return root


@pytest.fixture(scope="module")
def box_root(tmp_path_factory) -> Path:
    root = write_coco_shapes(tmp_path_factory.mktemp("boxes") / "data", num_train=12, num_val=4, size=64, seed=1)
    return strip_masks(root)


def test_box_only_data_trains_evaluates_predicts_resumes_with_the_default_model(box_root, tmp_path, cli):
    run = tmp_path / "run"
    r = cli("detect", "train", "--data", box_root, "--epochs", "1", *FAST, "--output", run)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "model fasterrcnn_botnet_tiny_fpn: the " in r.stderr and "have boxes and no masks: boxes only" in r.stderr
    assert re.search(r"; [1-9]\d* images without", r.stderr)  # background images train
    assert "segm" not in r.stdout and "box AP" in r.stdout and "mask AP" not in r.stdout
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert "val_bbox_AP50" in row and not any(k.startswith("val_segm") for k in row)
    assert "model: fasterrcnn_botnet_tiny_fpn  # auto: " in (run / "config.yaml").read_text()

    r = cli("detect", "eval", "--checkpoint", run, "--workers", "0")
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((run / "eval.json").read_text())
    assert "segm" not in result and result["images"] == 4
    assert result["bbox"]["AP50"] == pytest.approx(row["val_bbox_AP50"])  # a number, not "-" for every AP

    images = sorted((box_root / "val").iterdir())[:2]
    r = cli("detect", "predict", "--checkpoint", run, *images, "--score-threshold", "0", "--output", tmp_path / "p")
    assert r.returncode == 0, r.stderr[-3000:]
    detections = json.loads((tmp_path / "p" / "detections.json").read_text())
    assert detections and all("segmentation" not in d for d in detections)

    r = cli("detect", "train", "--resume", run)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "has already finished its 1 epochs" in r.stderr

    # The whole detector to ONNX, checked at two sizes it was not traced at; predict runs the file in onnxruntime.
    onnx_file = tmp_path / "det.onnx"
    r = export_detector(run, onnx_file)
    assert [c["size"] for c in r["checks"]] == [[42, 64], [64, 38], [42, 64], [64, 38]]
    assert r["checks"][2]["detections"] == 100 and max(r["checks"][2]["max_diff"].values()) <= 1e-3
    assert r["checks"][2]["matched"] == 100 and set(r["checks"][2]["max_diff"]) == {"boxes", "scores"}  # no masks
    r = cli("detect", "predict", "--onnx", onnx_file, *images, "--score-threshold", "0", "--output", tmp_path / "o")
    assert r.returncode == 0, r.stderr[-3000:]
    from_onnx = json.loads((tmp_path / "o" / "detections.json").read_text())
    assert [(d["image_id"], d["category"]) for d in from_onnx] == [(d["image_id"], d["category"]) for d in detections]
    assert [d["bbox"] for d in from_onnx] == [pytest.approx(d["bbox"], abs=1e-3) for d in detections]
    with pytest.raises(ValueError, match="a detector exports to ONNX only"):
        run_detector(argparse.Namespace(checkpoint=str(run), format="pt2", output=None, no_verify=False, opset=None))

    # A new run from the whole detector: on the same classes its class layers are kept (here in this process, on the
    # detector the run builds), on others they start fresh (through the CLI, below).
    model = create_detection_model("fasterrcnn_botnet_tiny_fpn", num_classes=7, image_size=64)
    names = [
        c["name"] for c in json.loads((box_root / "annotations" / "instances_train.json").read_text())["categories"]
    ]
    report = load_detector_weights(model, run, names)
    assert "class layers kept: the source was trained on the same 6 classes" in report.notes
    assert not report.not_in_source and not report.missing and len(report.loaded) == len(model.state_dict())
    renamed = tmp_path / "renamed"
    shutil.copytree(box_root, renamed)
    (renamed / "annotations" / "instances_val.json").unlink()  # and no validation: --val-fraction 0
    path = renamed / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    for cat in data["categories"]:
        cat["name"] = cat["name"].upper()
    path.write_text(json.dumps(data))
    x = tmp_path / "x"
    r = cli(
        "detect",
        "train",
        "--data",
        renamed,
        "--weights",
        run,
        "--val-fraction",
        "0",
        "--epochs",
        "1",
        *FAST,
        "--output",
        x,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "class layers start fresh: the source's classes [" in r.stderr and "roi_heads.box_predictor" in r.stderr
    assert "--val-fraction 0: no validation; every image trains" in r.stderr and "no validation: train loss" in r.stdout
    assert not any(k.startswith("val_") for k in json.loads((x / "metrics.jsonl").read_text().splitlines()[-1]))
    r = cli("detect", "eval", "--checkpoint", x, "--workers", "0")
    assert r.returncode == 2 and "held none of its images out (val_fraction 0)" in r.stderr
    with pytest.raises(ValueError, match="--weights .*nowhere: checkpoint .* does not exist"):
        detector_source(tmp_path / "nowhere")


def test_a_mask_model_on_box_only_data_is_refused_before_anything_is_written(box_root, tmp_path, cli):
    run = tmp_path / "run"
    r = cli("detect", "train", "--data", box_root, "--model", "maskrcnn_botnet_tiny_fpn", *FAST, "--output", run)
    assert r.returncode == 2
    assert "--model maskrcnn_botnet_tiny_fpn predicts masks, but " in r.stderr
    assert "give --model fasterrcnn_botnet_tiny_fpn" in r.stderr and "Traceback" not in r.stderr
    assert not run.exists()


def test_time_too_short_for_one_epoch_is_refused_naming_the_minimum(box_root, tmp_path, cli):
    run = tmp_path / "run"
    r = cli("detect", "train", "--data", box_root, "--time", "0.001", *FAST, "--output", run)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "--time 0.001 is too short for one epoch of this run" in r.stderr and "give --time 1 or more" in r.stderr
    assert not run.exists()  # nothing left behind
    r = cli("detect", "train", "--data", box_root, "--time", "0", "--output", run)
    assert r.returncode == 2 and "--time" in r.stderr and not run.exists()
