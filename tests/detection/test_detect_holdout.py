"""A COCO dataset with only a train split holds out a validation share by image; a dataset without a valid box is a
message before training."""

from __future__ import annotations

import json
import shutil

import pytest

from botnet.cli.main import main
from botnet.data.folder import DataError
from botnet.detection.coco_eval import coco_evaluate
from botnet.detection.config import DetectConfig
from botnet.detection.data import build_detection_datasets
from botnet.engine.distributed import DistInfo


@pytest.fixture
def train_only(coco_root, tmp_path):
    root = shutil.copytree(coco_root, tmp_path / "train_only")
    (root / "annotations" / "instances_val.json").unlink()
    shutil.rmtree(root / "val")
    return root


def test_train_split_only_holds_out_images(train_only, capsys):
    cfg = DetectConfig(data=str(train_only), image_size=64, workers=0, val_fraction=0.25, seed=2).validate()
    tr, val = build_detection_datasets(cfg, DistInfo())
    err = capsys.readouterr().err
    assert "no validation split: holding out 25% of the images of" in err and "seed 2" in err
    assert set(tr.image_ids).isdisjoint(val.image_ids) and len(tr) + len(val) == 16 and len(val) >= 3
    assert tr.train and not val.train and val.transforms is not None
    assert build_detection_datasets(cfg, DistInfo(), train=False)[1].image_ids == val.image_ids  # what eval reads
    # The held-out view is a ground truth of its own: its annotations given back as detections score AP 1.
    gt = [a for a in val.coco.dataset["annotations"] if not a["iscrowd"]]
    results = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0} for a in gt
    ]
    assert coco_evaluate(val.coco, results, ("bbox",), image_ids=val.image_ids)["bbox"]["AP"] == pytest.approx(1.0)
    with pytest.raises(DataError, match="instances_val.json"):  # an explicit split (detect eval --split) must exist
        build_detection_datasets(cfg, DistInfo(), train=False, holdout=False)


def test_no_valid_box_is_a_message_before_training(train_only, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BOTNET_TRACEBACK", raising=False)
    ann_file = train_only / "annotations" / "instances_train.json"
    data = json.loads(ann_file.read_text())
    for ann in data["annotations"]:
        ann["bbox"][2] = 0
    ann_file.write_text(json.dumps(data))
    args = ["--data", train_only, "--image-size", "64", "--workers", "0", "--output", tmp_path / "run"]
    code = main(["detect", "train", *map(str, args)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "warning: dropped 36 of 36 annotations" in err and "non-positive width/height" in err
    assert f"{ann_file} has no valid box to train on" in err and "were dropped as invalid" in err
    assert not (tmp_path / "run" / "last").exists()


def test_object_imbalance_is_a_warning(coco_root, tmp_path, capsys):
    root = shutil.copytree(coco_root, tmp_path / "imbalanced")
    ann_file = root / "annotations" / "instances_train.json"
    data = json.loads(ann_file.read_text())
    cats = sorted(c["id"] for c in data["categories"])
    for i, ann in enumerate(data["annotations"]):
        ann["category_id"] = cats[1] if i == 0 else cats[0]  # one object of the second category, none of the rest
    ann_file.write_text(json.dumps(data))
    cfg = DetectConfig(data=str(root), image_size=64, workers=0).validate()
    tr, _ = build_detection_datasets(cfg, DistInfo())
    err = capsys.readouterr().err
    names = {c["id"]: c["name"] for c in data["categories"]}
    n = len(tr.coco.dataset["annotations"])
    assert f"warning: class imbalance in the training set {ann_file}" in err
    assert f"{names[cats[0]]!r} has {n - 1} objects" in err and f"{names[cats[2]]} 0" in err


def test_a_valid_split_is_the_validation_split(coco_root, tmp_path, capsys):
    root = shutil.copytree(coco_root, tmp_path / "exported")
    (root / "annotations" / "instances_val.json").rename(root / "annotations" / "instances_valid.json")
    (root / "val").rename(root / "valid")  # the name Roboflow's and other exporters' COCO sets use
    cfg = DetectConfig(data=str(root), image_size=64, workers=0).validate()
    tr, val = build_detection_datasets(cfg, DistInfo())
    assert "validating on the valid split of" in capsys.readouterr().err
    assert (len(tr), len(val)) == (16, 6) and val.ann_file.name == "instances_valid.json"
