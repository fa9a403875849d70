"""Detection training through the shared loop: metrics, checkpoints, exact resume, bad data."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from botnet.cli.main import main
from botnet.data.folder import DataError
from botnet.detection.checkpoints import load_detection_checkpoint
from botnet.detection.config import DetectConfig
from botnet.detection.task import DETECTION
from botnet.detection.trainer import detect_train
from botnet.engine import checkpoint as ckpt
from botnet.engine.loop import Trainer

FAST = dict(image_size=64, batch_size=4, workers=0, log_interval=1)


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_train_writes_metrics_and_a_rebuildable_checkpoint(coco_root, tmp_path):
    cfg = DetectConfig(data=str(coco_root), epochs=1, output=str(tmp_path / "run"), **FAST).validate()
    summary = detect_train(cfg)
    run = tmp_path / "run"
    (row,) = rows(run)
    for key in ("train_loss", "val_bbox_AP", "val_bbox_AP50", "val_segm_AP", "val_segm_APl", "val_images"):
        assert key in row
    assert row["val_images"] == 6 and row["global_step"] == 4  # 16 images / batch 4
    assert summary["val_bbox_AP"] == row["val_bbox_AP"]
    assert (run / "curves.png").stat().st_size > 0 and (run / "best" / ckpt.MODEL_FILE).exists()
    model, meta, _ = load_detection_checkpoint(run)
    assert meta["class_names"] == ["circle", "triangle", "square", "star", "ring", "cross"]
    assert meta["category_ids"] == [1, 2, 3, 4, 5, 6]
    assert model.roi_heads.box_predictor.cls_score.out_features == 7  # 6 classes + background
    # Evaluating the saved weights on their own validation split gives the numbers logged during training.
    result = DETECTION.evaluate_checkpoint(run, workers=0)
    assert result["bbox"]["AP"] == pytest.approx(row["val_bbox_AP"])
    assert result["segm"]["AP50"] == pytest.approx(row["val_segm_AP50"])
    assert json.loads((run / "eval.json").read_text())["images"] == 6


def test_interrupted_and_resumed_run_is_bitwise_identical(coco_root, tmp_path, monkeypatch):
    opts = dict(data=str(coco_root), epochs=2, checkpoint_steps=3, **FAST)
    detect_train(DetectConfig(**opts, output=str(tmp_path / "a")).validate())

    steps = {"n": 0}
    original = Trainer._optimizer_step

    def dying_step(self):
        original(self)
        steps["n"] += 1
        if steps["n"] == 7:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_optimizer_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        detect_train(DetectConfig(**opts, output=str(tmp_path / "b")).validate())
    monkeypatch.setattr(Trainer, "_optimizer_step", original)
    state = ckpt.load_training_state(tmp_path / "b" / "last")
    assert state["counters"]["global_step"] == 6 and state["counters"]["batch_in_epoch"] == 2  # mid-epoch 2
    detect_train(DetectConfig(**opts, output=str(tmp_path / "b")).validate(), resume=True)

    a, b = load_file(tmp_path / "a/last/model.safetensors"), load_file(tmp_path / "b/last/model.safetensors")
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert a.keys() == b.keys() and not different, different[:5]
    ra, rb = rows(tmp_path / "a"), rows(tmp_path / "b")
    for key in ("train_loss", "val_bbox_AP", "val_segm_AP", "lr", "global_step"):
        assert [r[key] for r in ra] == [r[key] for r in rb], key


def test_images_without_annotations_train_and_evaluate(coco_root, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(coco_root, data)
    for split in ("train", "val"):
        ann_file = data / "annotations" / f"instances_{split}.json"
        coco = json.loads(ann_file.read_text())
        empty = {img["id"] for img in coco["images"][:3]}
        coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] not in empty]
        ann_file.write_text(json.dumps(coco))
    cfg = DetectConfig(data=str(data), epochs=1, output=str(tmp_path / "run"), **FAST).validate()
    detect_train(cfg)
    (row,) = rows(tmp_path / "run")
    assert row["val_images"] == 6 and torch.isfinite(torch.tensor(row["train_loss"]))


def test_builtin_dataset_is_written_once_into_the_cache(tmp_path, monkeypatch):
    cfg = DetectConfig(shapes_train=8, shapes_val=4, epochs=1, output=str(tmp_path / "run"), **FAST).validate()
    detect_train(cfg)
    cached = list((tmp_path / "cache" / "datasets").iterdir())
    assert len(cached) == 1 and (cached[0] / "annotations" / "instances_train.json").exists()


def _cli(capsys, *args) -> tuple[int, str]:
    code = main(["detect", *map(str, args)])
    return code, capsys.readouterr().err


def _edit(root: Path, tmp_path: Path, split: str, change) -> Path:
    data = tmp_path / "edited"
    shutil.copytree(root, data)
    ann_file = data / "annotations" / f"instances_{split}.json"
    coco = json.loads(ann_file.read_text())
    change(coco)
    ann_file.write_text(json.dumps(coco))
    return data


def test_bad_data_is_a_clear_error_before_training(coco_root, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BOTNET_TRACEBACK", raising=False)
    opts = ["--image-size", "64", "--workers", "0", "--epochs", "1", "--output", tmp_path / "run"]

    def traversal(coco):
        coco["images"][1]["file_name"] = "../../secret.png"

    code, err = _cli(capsys, "train", "--data", _edit(coco_root, tmp_path, "train", traversal), *opts)
    assert code == 2 and "../../secret.png" in err and "outside" in err
    shutil.rmtree(tmp_path / "edited")

    def unknown_category(coco):
        coco["annotations"][2]["category_id"] = 99

    code, err = _cli(capsys, "train", "--data", _edit(coco_root, tmp_path, "val", unknown_category), *opts)
    ann_id = json.loads((coco_root / "annotations/instances_val.json").read_text())["annotations"][2]["id"]
    assert code == 2 and f"annotation id {ann_id}" in err and "99" in err
    shutil.rmtree(tmp_path / "edited")

    code, err = _cli(capsys, "train", "--data", tmp_path / "nowhere", *opts)
    assert code == 2 and "does not exist" in err

    missing = tmp_path / "missing"
    shutil.copytree(coco_root, missing)
    victim = sorted((missing / "val").iterdir())[0]
    victim.unlink()
    code, err = _cli(capsys, "train", "--data", missing, *opts)
    assert code == 2 and victim.name in err
    assert not (tmp_path / "run" / "last").exists()  # nothing was trained or written

    code, err = _cli(capsys, "train", "--scale-range", "1.5", "0.5", *opts)
    assert code == 2 and "--scale-range must be given as low high with low <= high" in err


def test_eval_and_predict_refuse_what_is_not_theirs(coco_root, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BOTNET_TRACEBACK", raising=False)
    from botnet.models import botnet_tiny, save_weights

    cls_ckpt = tmp_path / "cls"
    save_weights(botnet_tiny(num_classes=3), cls_ckpt / ckpt.MODEL_FILE)
    code, err = _cli(capsys, "eval", "--checkpoint", cls_ckpt, "--data", coco_root)
    assert code == 2 and "classification checkpoint" in err

    not_image = tmp_path / "notes.png"
    not_image.write_text("this is text")
    code, err = _cli(capsys, "predict", "--checkpoint", cls_ckpt, not_image, "--output", tmp_path / "p")
    assert code == 1 and f"error: {not_image}: cannot identify image file" in err and "Traceback" not in err
    image = coco_root / "val" / sorted(os.listdir(coco_root / "val"))[0]  # a real 64x64 image, above the limit
    code, err = _cli(
        capsys, "predict", "--checkpoint", cls_ckpt, image, "--max-pixels", "1000", "--output", tmp_path / "p"
    )
    assert code == 1 and f"error: {image}: " in err and "max_pixels=1000" in err
    assert "none of the 1 images could be predicted" in err
    assert not (tmp_path / "p").exists()  # nothing written when no image could be read
    code, err = _cli(capsys, "predict", "--checkpoint", cls_ckpt, image, "--output", tmp_path / "p")
    assert code == 2 and "classification checkpoint" in err  # a readable image: the checkpoint is checked


def test_eval_refuses_data_with_other_categories(coco_root, tmp_path):
    cfg = DetectConfig(data=str(coco_root), epochs=1, output=str(tmp_path / "run"), **FAST).validate()
    detect_train(cfg)

    def rename(coco):
        coco["categories"][0]["name"] = "disc"

    with pytest.raises(DataError, match="same categories"):
        DETECTION.evaluate_checkpoint(tmp_path / "run", str(_edit(coco_root, tmp_path, "val", rename)), workers=0)


def test_bf16_autocast_and_channels_last_train(coco_root, tmp_path):
    opts = dict(FAST, amp="bf16", channels_last=True)
    cfg = DetectConfig(data=str(coco_root), epochs=1, output=str(tmp_path / "run"), **opts).validate()
    detect_train(cfg)
    (row,) = rows(tmp_path / "run")
    assert torch.isfinite(torch.tensor(row["train_loss"])) and row["val_images"] == 6
    weights = load_file(tmp_path / "run" / "last" / ckpt.MODEL_FILE)
    assert all(t.dtype != torch.bfloat16 for t in weights.values())  # autocast leaves the weights in fp32


def test_backbone_from_a_classification_run(coco_root, tmp_path, capsys):
    """--weights-backbone takes a botnet train run directory: its network fills the detector's backbone."""
    from botnet import create_model
    from botnet.models import save_weights

    torch.manual_seed(0)
    cls = create_model("botnet_tiny", num_classes=10, img_size=64)
    save_weights(cls, tmp_path / "cls" / "best" / ckpt.MODEL_FILE)
    cfg = DetectConfig(
        data=str(coco_root),
        epochs=1,
        weights_backbone=str(tmp_path / "cls"),
        trainable_backbone_layers=0,
        output=str(tmp_path / "run"),
        **FAST,
    ).validate()
    detect_train(cfg)
    err = capsys.readouterr().err
    assert f"weights {tmp_path / 'cls'} (botnet): loaded" in err and "unused by design: 2: fc.bias, fc.weight" in err
    det = load_file(tmp_path / "run" / "last" / ckpt.MODEL_FILE)
    for key in ("conv1.weight", "layer2.0.conv1.weight", "layer4.0.attn.qkv.weight"):
        assert torch.equal(det[f"backbone.body.{key}"], cls.state_dict()[key]), key  # frozen: as loaded
