"""``botnet convert`` as a user meets it: class names travel with the file and decide the fine-tuning head, wrapped
state dicts and detection runs convert, position tables keep their trained size, and a converted file is a
checkpoint for ``predict``, ``eval`` and ``export``. No model is trained: the runs are written as training writes
them, and ``botnet train`` stops once its head is decided."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import botnet
import botnet.export
from botnet.classification.trainer import ClassificationTrainer
from botnet.models import read_metadata, save_weights
from train_helpers import write_image_folder

CLASSES = ["x", "y", "z"]
PRE = dict(img_size=32, crop_pct=1.0, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25], interpolation="bilinear")
QUICK = ["--workers", "0", "--batch-size", "2", "--epochs", "1"]


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return botnet.create_model("botnet_tiny", num_classes=3, img_size=32).eval()  # the preset's default is 64


@pytest.fixture(scope="module")
def run(net, tmp_path_factory):
    """A ``botnet train`` run directory of a 3-class botnet_tiny at 32 px: its best/ checkpoint's weights file."""
    root = tmp_path_factory.mktemp("convert") / "run"
    meta = {"model_name": "botnet_tiny", "class_names": json.dumps(CLASSES), "preprocess": json.dumps(PRE)}
    save_weights(net, root / "best" / "model.safetensors", metadata=meta)
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Image folders with the run's classes and with three other classes."""
    root = tmp_path_factory.mktemp("data")
    return write_image_folder(root / "xyz", classes=CLASSES, per_class=2), write_image_folder(
        root / "abc", classes=("a", "b", "c"), per_class=2
    )


def test_class_names_travel_with_the_file_and_decide_the_head(tmp_path, monkeypatch, run, net, folders, cli):
    xyz, abc = folders
    conv = tmp_path / "conv.safetensors"
    status, out, err = cli("convert", run, conv)
    assert status == 0, err
    assert "classes: x, y, z" in out and json.loads(read_metadata(conv)["class_names"]) == CLASSES
    monkeypatch.setattr(ClassificationTrainer, "fit", lambda self: {})  # the head is decided before any step
    err = cli("train", "--data", abc, "--pretrained", conv, *QUICK, "--output", tmp_path / "a")[2]
    assert "reinitialised (other class names: the weights' x, y, z; the data's a, b, c): 2: fc.weight, fc.bias" in err
    assert "head reinitialised for the data's 3 classes (other class names" in err and "class count" not in err
    err = cli("train", "--data", xyz, "--pretrained", conv, *QUICK, "--output", tmp_path / "b")[2]
    assert "head kept: the weights' classifier is for the data's 3 classes (x, y, z)" in err and "reinit" not in err
    # Weights without names (a plain state dict) keep the head by count alone, and say so.
    torch.save(net.state_dict(), tmp_path / "plain.pth")
    args = ["train", "--data", abc, "--pretrained", tmp_path / "plain.pth", *QUICK, "--output", tmp_path / "c"]
    err = cli(*args)[2]
    assert "head kept by count alone: the weights carry no class names" in err
    # --class-names names them; a list that does not fit the classifier is refused.
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    args = ["convert", tmp_path / "plain.pth", tmp_path / "named.safetensors", "--class-names", tmp_path / "names.txt"]
    status, out, err = cli(*args)
    assert status == 0 and "classes: a, b, c" in out, err
    (tmp_path / "two.txt").write_text("a\nb\n")
    status, _, err = cli(*args[:3], "--class-names", tmp_path / "two.txt", "--overwrite")
    assert status == 2 and "has 2 class names; the weights' classifier has 3 outputs" in err


def test_wrapped_state_dicts_and_detection_runs_convert(tmp_path, net, folders, cli):
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "ddp.pth")
    status, out, err = cli("convert", tmp_path / "ddp.pth", tmp_path / "ddp.safetensors")
    assert status == 0, err
    assert "key prefix 'module.' removed from every key (a DistributedDataParallel" in out
    assert "botnet_tiny, 3 classes" in out
    converted = load_file(tmp_path / "ddp.safetensors")
    assert all(torch.equal(converted[k], v) for k, v in net.state_dict().items())

    # A botnet detect train run: its backbone (frozen BatchNorm, as after --weights-backbone), as headless weights.
    from botnet.detection.checkpoints import detection_metadata
    from botnet.detection.models import create_detection_model

    torch.manual_seed(1)
    body = botnet.create_model("botnet_tiny", num_classes=0, img_size=64).state_dict()
    detector = create_detection_model("fasterrcnn_botnet_tiny_fpn", num_classes=3, image_size=64, weights_backbone=body)
    meta = detection_metadata("fasterrcnn_botnet_tiny_fpn", {"num_classes": 3, "image_size": 64}, ["p", "q"], [1, 2])
    save_weights(detector, tmp_path / "det" / "best" / "model.safetensors", metadata=meta)
    out_file = tmp_path / "backbone.safetensors"
    status, out, err = cli("convert", tmp_path / "det", out_file)
    assert status == 0, err
    assert "the backbone of the detector fasterrcnn_botnet_tiny_fpn: its 87 backbone.body.* tensors" in out
    assert "no classifier (headless weights)" in out and "input 64x64" in out
    converted, whole = load_file(out_file), detector.state_dict()
    assert "fc.weight" not in converted
    assert all(torch.equal(v, whole[f"backbone.body.{k}"]) for k, v in converted.items() if "num_batches" not in k)
    image = folders[0] / "val" / "x" / "0.png"
    status, _, err = cli("predict", "--checkpoint", out_file, image)
    assert status == 2 and "without a classifier (headless weights)" in err and "--pretrained" in err


@pytest.mark.parametrize("size", [32, (32, 96)])
def test_position_tables_keep_the_size_they_were_trained_at(tmp_path, size, cli):
    torch.manual_seed(0)
    state = botnet.create_model("botnet_tiny", num_classes=3, img_size=size).state_dict()
    torch.save(state, tmp_path / "run.pth")
    status, out, err = cli("convert", tmp_path / "run.pth", tmp_path / "c.safetensors")
    assert status == 0, err
    h, w = (size, size) if isinstance(size, int) else size
    assert f"input {h}x{w} (the size its position tables were trained at)" in out and "resized" not in out
    converted = load_file(tmp_path / "c.safetensors")
    assert all(torch.equal(converted[k], v) for k, v in state.items())
    config = json.loads(read_metadata(tmp_path / "c.safetensors")["botnet_config"])
    assert config["img_size"] == (size if isinstance(size, int) else [h, w])


class Exported:
    def summary(self) -> str:
        return "exported"


def test_a_converted_file_is_a_checkpoint_for_predict_eval_and_export(tmp_path, monkeypatch, run, net, folders, cli):
    conv = tmp_path / "conv.safetensors"
    assert cli("convert", run, conv)[0] == 0
    xyz, _ = folders
    image = xyz / "val" / "y" / "1.png"
    status, out, err = cli("predict", "--checkpoint", conv, image, "--json", "-")
    assert status == 0, err
    assert {t["class"] for t in json.loads(out)[0]["top"]} == set(CLASSES)
    status, out, err = cli("eval", "--checkpoint", conv, "--data", xyz, "--workers", "0")
    assert status == 0, err
    assert "botnet_tiny on" in out and "(6 images; checkpoint unverified: a weights file on its own" in out
    assert json.loads((tmp_path / "conv_eval.json").read_text())["images"] == 6
    # export: the model and metadata handed to the exporter (which tests/test_export.py runs for real), and the
    # default output beside the file.
    handed = {}
    monkeypatch.setattr(botnet.export, "export_model", lambda *args, **kw: handed.update(args=args) or Exported())
    status, out, err = cli("export", "--checkpoint", conv)
    assert status == 0 and "exported" in out, err
    model, output, meta = handed["args"]
    assert output == tmp_path / "conv.onnx" and (meta["class_names"], meta["preprocess"]) == (CLASSES, PRE)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in model.state_dict().items())

    # A file without what inference needs is refused, saying what it lacks and how to get it.
    save_file({k: v.contiguous() for k, v in load_file(conv).items()}, tmp_path / "foreign.safetensors")
    status, _, err = cli("export", "--checkpoint", tmp_path / "foreign.safetensors")
    assert status == 2 and "carries no model config, no class names, no preprocessing" in err
    assert "botnet convert" in err and "--class-names FILE" in err and "botnet train --data DIR --pretrained" in err
    torch.save(load_file(conv), tmp_path / "unnamed.pth")
    cli("convert", tmp_path / "unnamed.pth", tmp_path / "unnamed.safetensors")
    args = ["eval", "--checkpoint", tmp_path / "unnamed.safetensors", "--data", xyz, "--workers", "0"]
    status, _, err = cli(*args)
    assert status == 2 and "carries no class names" in err and "--class-names FILE" in err
