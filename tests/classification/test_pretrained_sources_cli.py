"""``botnet train --pretrained``, ``botnet convert`` and ``botnet detect train --weights-backbone`` through the real
hub and torch.hub cache layouts, offline: timm's and torchvision's own state dicts, placed where their loaders look."""

from __future__ import annotations

import json
import os

import pytest
import timm
import torch
import torchvision
import yaml
from safetensors.torch import load_file, save_file

import botnet
from botnet.models import convert_timm_state_dict, read_metadata
from train_helpers import write_image_folder

TAG = "botnet26t_256.c1_in1k"
SHA = "0123456789abcdef0123456789abcdef01234567"
TINY = ["--image-size", "32", "--batch-size", "4", "--epochs", "1", "--workers", "0", "--log-interval", "1000"]


@pytest.fixture(scope="module")
def timm_state():
    torch.manual_seed(0)
    return {k: v.contiguous() for k, v in timm.create_model("botnet26t_256").eval().state_dict().items()}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, timm_state):
    """timm's file where huggingface_hub keeps it: models--timm--NAME.TAG/snapshots/<sha>/ and refs/main."""
    repo = tmp_path / "hub" / f"models--timm--{TAG}"
    (repo / "snapshots" / SHA).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    save_file(timm_state, repo / "snapshots" / SHA / "model.safetensors")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hub"


@pytest.fixture
def data(tmp_path):
    return write_image_folder(tmp_path / "data", classes=("a", "b", "c"), per_class=4)


def test_train_from_timm_through_the_hub_cache(tmp_path, hub_cache, data, timm_state, cli):
    out = tmp_path / "ft"
    args = ["train", "--data", data, "--model", "botnet26t_256", "--pretrained", f"timm:{TAG}", "--freeze-stages", "4"]
    status, _, err = cli(*args, *TINY, "--output", out)
    assert status == 0, err
    assert f"weights timm:{TAG} (timm): loaded" in err and "head reinitialised for the data's 3 classes" in err
    # The source's preprocessing (timm's pretrained_cfg) at the size asked for: config.yaml and the checkpoint.
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert (saved["image_size"], saved["crop_pct"], saved["interpolation"]) == (32, 0.95, "bicubic")
    pre = json.loads(read_metadata(out / "last" / "model.safetensors")["preprocess"])
    assert (pre["img_size"], pre["crop_pct"], pre["interpolation"]) == (32, 0.95, "bicubic")
    # Frozen stem and stages: timm's weights as converted, untouched by training.
    ours, _ = convert_timm_state_dict(timm_state)
    ft = load_file(out / "last" / "model.safetensors")
    for key in ("conv1.0.weight", "layer3.1.attn.qkv.weight", "layer4.1.conv3.weight", "layer2.0.bn1.running_var"):
        assert torch.equal(ft[key], ours[key]), key


def test_train_from_torchvision_through_the_torch_hub_cache(tmp_path, monkeypatch, data, cli):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("BOTNET_OFFLINE", "1")
    torch.manual_seed(0)
    tv = torchvision.models.resnet50()
    weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V2
    path = tmp_path / "torch" / "hub" / "checkpoints" / os.path.basename(weights.url)
    path.parent.mkdir(parents=True)
    torch.save(tv.state_dict(), path)
    out = tmp_path / "ft"
    args = ["train", "--data", data, "--model", "resnet50", "--pretrained", f"torchvision:{weights}", "--freeze-stages"]
    status, _, err = cli(*args, "3", *TINY, "--output", out)
    assert status == 0, err
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert (saved["crop_pct"], saved["interpolation"]) == (0.9655, "bilinear")
    ft = load_file(out / "last" / "model.safetensors")
    assert torch.equal(ft["layer3.5.conv2.weight"], tv.state_dict()["layer3.5.conv2.weight"])  # frozen
    assert not torch.equal(ft["layer4.0.conv2.weight"], tv.state_dict()["layer4.0.conv2.weight"])  # trained


def test_convert_timm_gives_a_file_that_loads_without_timm(tmp_path, hub_cache, timm_state, cli):
    out = tmp_path / "b26t.safetensors"
    status, stdout, err = cli("convert", f"timm:{TAG}", out)
    assert status == 0, err
    assert f"wrote {out}" in stdout and "botnet26t_256, 1000 classes" in stdout and "crop_pct 0.95, bicubic" in stdout
    meta = read_metadata(out)
    assert (meta["model_name"], meta["source"]) == ("botnet26t_256", f"timm:{TAG}")
    assert json.loads(meta["preprocess"])["crop_pct"] == 0.95
    model = botnet.create_model("botnet26t_256", pretrained=out)
    assert model.pretrained_report.kind == "botnet" and model.pretrained_cfg["interpolation"] == "bicubic"
    net = timm.create_model("botnet26t_256").eval()
    net.load_state_dict(timm_state)
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = net(x), model.eval()(x)
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()
    # A local timm file: the model is recognised from its structure. The output is never the input, nor replaced.
    save_file(timm_state, tmp_path / "timm_file.safetensors")
    status, stdout, _ = cli("convert", tmp_path / "timm_file.safetensors", tmp_path / "c.safetensors")
    assert status == 0 and "botnet26t_256, 1000 classes" in stdout
    status, _, err = cli("convert", f"timm:{TAG}", out)
    assert status == 2 and "exists" in err


def test_convert_errors(tmp_path, cli):
    save_file({"w": torch.zeros(2, 2)}, tmp_path / "odd.safetensors")
    status, _, err = cli("convert", tmp_path / "odd.safetensors", tmp_path / "o.safetensors")
    assert status == 2 and "give --model NAME" in err
    status, _, err = cli("convert", tmp_path / "odd.safetensors", tmp_path / "o.pth")
    assert status == 2 and "must be a .safetensors file" in err
    assert not (tmp_path / "o.safetensors").exists()


def test_detection_backbone_from_timm(tmp_path, hub_cache, timm_state, cli):
    from botnet.detection.models import create_detection_model

    model = create_detection_model(
        "fasterrcnn_botnet26t_256_fpn", num_classes=3, image_size=128, weights_backbone=f"timm:{TAG}"
    )
    ours, _ = convert_timm_state_dict(timm_state)
    body = model.backbone.body
    assert torch.equal(body.layer3[1].attn.qkv.weight, ours["layer3.1.attn.qkv.weight"])
    assert sorted(model.backbone.pretrained_report.unused) == ["fc.bias", "fc.weight"]
    # Through the command: a source that does not fit the backbone is refused before any data or output exists.
    out = tmp_path / "det"
    args = ["detect", "train", "--weights-backbone", f"timm:{TAG}", "--output", out, "--epochs", "1"]
    status, _, err = cli(*args)
    assert status == 2 and "do not fit botnet_tiny" in err and not out.exists()
    status, _, err = cli(*args[:3], tmp_path / "none.pth", *args[4:])
    assert status == 2 and "does not exist" in err and not out.exists()
