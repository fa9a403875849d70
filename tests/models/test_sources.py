"""Each kind of weights SOURCE through its real cache layout, offline, and the errors of bad sources."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from timm_helpers import random_timm

import botnet
from botnet.models import WeightsSourceError, finetune_param_groups, freeze, load_pretrained, save_weights

TAG = "botnet26t_256.c1_in1k"
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def timm_net():
    return random_timm("botnet26t_256", 3)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, timm_net):
    """timm's weights where huggingface_hub keeps them: models--timm--NAME.TAG/snapshots/<sha>/ + refs/main."""
    cache = tmp_path / "hub"
    repo = cache / f"models--timm--{TAG}"
    (repo / "snapshots" / SHA).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    save_file(
        {k: v.contiguous() for k, v in timm_net.state_dict().items()}, repo / "snapshots" / SHA / "model.safetensors"
    )
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def _logits(model, size=(256, 256)):
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model.eval()(x)


def test_timm_source_from_the_hub_cache(hub_cache, timm_net, capsys):
    model = botnet.create_model("botnet26t_256", pretrained=f"timm:{TAG}")
    expected = _logits(timm_net)
    assert (_logits(model) - expected).abs().max() <= 1e-4 * expected.abs().max()
    report = model.pretrained_report
    assert report.kind == "timm" and not report.missing and not report.unexpected and not report.reinitialised
    assert f"weights timm:{TAG} (timm): loaded {len(model.state_dict())} tensors" in capsys.readouterr().err
    cfg = model.pretrained_cfg
    assert (cfg["crop_pct"], cfg["interpolation"], tuple(cfg["input_size"])) == (0.95, "bicubic", (3, 256, 256))
    assert cfg["source"] == f"timm:{TAG}"


def test_timm_hub_falls_back_to_pytorch_model_bin(tmp_path, monkeypatch, timm_net):
    snapshot = tmp_path / "hub" / f"models--timm--{TAG}" / "snapshots" / SHA
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(SHA)
    torch.save(timm_net.state_dict(), snapshot / "pytorch_model.bin")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = botnet.create_model("botnet26t_256", pretrained=f"timm:{TAG}")
    assert model.pretrained_report.kind == "timm"
    expected = _logits(timm_net)
    assert (_logits(model) - expected).abs().max() <= 1e-4 * expected.abs().max()


def test_class_count_change_reinitialises_the_head(hub_cache, timm_net):
    model = botnet.create_model("botnet26t_256", num_classes=10, pretrained=f"timm:{TAG}")
    assert sorted(model.pretrained_report.reinitialised) == ["fc.bias", "fc.weight"]
    assert "reinitialised (another class count): 2" in model.pretrained_report.summary()
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        torch.testing.assert_close(model.eval().forward_features(x), timm_net.forward_features(x), rtol=1e-4, atol=1e-4)
    assert _logits(model).shape == (1, 10)
    headless = botnet.create_model("botnet26t_256", num_classes=0, pretrained=f"timm:{TAG}")  # a detection backbone
    assert sorted(headless.pretrained_report.unused) == ["fc.bias", "fc.weight"]
    assert not headless.pretrained_report.unexpected


def test_missing_hub_cache_names_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsSourceError) as err:
        botnet.create_model("botnet26t_256", pretrained=f"timm:{TAG}")
    message = str(err.value)
    assert f"timm:{TAG}" in message and "offline" in message and "https://huggingface.co/timm/" in message
    assert str(tmp_path / "empty" / f"models--timm--{TAG}" / "snapshots") in message


def test_malformed_timm_source():
    with pytest.raises(WeightsSourceError, match="timm:NAME.TAG"):
        botnet.create_model("botnet26t_256", pretrained="timm:botnet26t_256")


def test_unknown_timm_name_or_tag(tmp_path, monkeypatch):
    with pytest.raises(WeightsSourceError, match="'resnet50' is not one of timm's networks in our zoo"):
        botnet.create_model("botnet26t_256", pretrained="timm:resnet50.a1_in1k")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsSourceError, match="published tags of botnet26t_256: c1_in1k"):
        botnet.create_model("botnet26t_256", pretrained="timm:botnet26t_256.nope")


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("BOTNET_OFFLINE", "1")
    return tmp_path / "torch"


def test_torchvision_source_from_the_torch_hub_cache(torch_home):
    torch.manual_seed(0)
    tv = torchvision.models.resnet50().eval()
    for m in tv.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)  # random BN scales: every block matters
    weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V2
    path = torch_home / "hub" / "checkpoints" / os.path.basename(weights.url)
    path.parent.mkdir(parents=True)
    torch.save(tv.state_dict(), path)
    model = botnet.create_model("resnet50", pretrained="torchvision:ResNet50_Weights.IMAGENET1K_V2")
    torch.testing.assert_close(_logits(model, (224, 224)), _logits(tv, (224, 224)), rtol=1e-4, atol=1e-4)
    assert model.pretrained_cfg["crop_pct"] == round(224 / 232, 4)
    bot = botnet.create_model("botnet50", pretrained="torchvision:ResNet50_Weights.IMAGENET1K_V2")
    report = bot.pretrained_report
    assert report.not_in_source and all(".attn." in k for k in report.not_in_source)
    assert sorted(report.unused) == [f"layer4.{i}.conv2.weight" for i in range(3)]


def test_missing_torchvision_cache_names_the_path(torch_home):
    with pytest.raises(WeightsSourceError) as err:
        botnet.create_model("resnet50", pretrained="torchvision:ResNet50_Weights.IMAGENET1K_V2")
    assert str(torch_home / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth") in str(err.value)


@pytest.mark.parametrize("spec", ["ResNet18_Weights.IMAGENET1K_V1", "ResNet50_Weights.NOPE"])
def test_unknown_torchvision_weights(spec):
    with pytest.raises(WeightsSourceError, match=f"torchvision:{spec}"):
        botnet.create_model("resnet50", pretrained=f"torchvision:{spec}")


def test_run_directory_and_preprocessing_travel(tmp_path, hub_cache):
    first = botnet.create_model("botnet26t_256", num_classes=5, pretrained=f"timm:{TAG}")
    save_weights(first, tmp_path / "run" / "best" / "model.safetensors")
    again = botnet.create_model("botnet26t_256", num_classes=5, pretrained=tmp_path / "run")
    assert again.pretrained_report.kind == "botnet" and not again.pretrained_report.reinitialised
    assert again.pretrained_cfg["crop_pct"] == 0.95 and again.pretrained_cfg["interpolation"] == "bicubic"
    torch.testing.assert_close(_logits(again), _logits(first))


def test_training_checkpoint_preprocessing_travels(tmp_path):
    """A botnet train checkpoint records its preprocessing as "preprocess" metadata; it reaches pretrained_cfg."""
    model = botnet.create_model("botnet_tiny", num_classes=4)
    pre = {"img_size": 72, "crop_pct": 0.9, "mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bicubic"}
    save_weights(model, tmp_path / "run" / "last" / "model.safetensors", metadata={"preprocess": json.dumps(pre)})
    again = botnet.create_model("botnet_tiny", num_classes=4, pretrained=tmp_path / "run" / "last")
    cfg = again.pretrained_cfg
    assert (tuple(cfg["input_size"]), cfg["crop_pct"], cfg["interpolation"]) == ((3, 72, 72), 0.9, "bicubic")
    assert list(cfg["mean"]) == [0.5] * 3 and list(cfg["std"]) == [0.25] * 3


def test_timm_file_of_each_format(tmp_path, timm_net):
    state = timm_net.state_dict()
    torch.save(state, tmp_path / "w.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "w.safetensors")
    for name in ("w.pth", "w.safetensors"):
        report = load_pretrained(botnet.create_model("botnet26t_256"), tmp_path / name)
        assert report.kind == "timm" and not report.missing


def test_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"conv1.weight": Payload()}, protocol=2))
    with pytest.raises(WeightsSourceError, match="refused"):
        botnet.create_model("resnet50", pretrained=path)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_truncated_file(tmp_path, timm_net, suffix):
    path = tmp_path / f"w{suffix}"
    state = {k: v.contiguous() for k, v in timm_net.state_dict().items()}
    save_file(state, path) if suffix == ".safetensors" else torch.save(state, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsSourceError, match="truncated"):
        botnet.create_model("botnet26t_256", pretrained=path)


def test_missing_file():
    with pytest.raises(WeightsSourceError, match="does not exist"):
        botnet.create_model("botnet26t_256", pretrained="no/such/file.safetensors")


def test_wrong_architecture_says_what_it_looks_like(timm_net):
    with pytest.raises(ValueError, match="look like botnet26t_256"):
        botnet.create_model("eca_botnext26ts_256", pretrained=timm_net.state_dict())


def test_strictness(timm_net):
    state = dict(timm_net.state_dict())
    del state["stages.3.1.conv1_1x1.conv.weight"]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"layer4\.1\.conv1\.weight") as err:
        botnet.create_model("botnet26t_256", pretrained=state)
    assert "extra.weight" in str(err.value)
    model = botnet.create_model("botnet26t_256", pretrained=state, pretrained_strict=False)
    assert model.pretrained_report.missing == ["layer4.1.conv1.weight"]
    assert model.pretrained_report.unexpected == ["extra.weight"]


def test_freeze_and_param_groups():
    model = botnet.create_model("botnet26t_256", num_classes=3).train()
    frozen = freeze(model, stages=2)
    assert frozen and all(n.startswith(("conv1.", "bn1.", "layer1.", "layer2.")) for n in frozen)
    stats = model.layer1[0].bn1.running_mean.clone()
    model.train()
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    params = dict(model.named_parameters())
    assert all(params[n].grad is None for n in frozen)
    assert all(p.grad is not None for n, p in params.items() if n not in frozen)
    torch.testing.assert_close(model.layer1[0].bn1.running_mean, stats)  # frozen BN kept its statistics
    groups = finetune_param_groups(model, lr=0.1, backbone_lr_scale=0.1, weight_decay=1e-4)
    grouped = {id(p) for g in groups for p in g["params"]}
    assert grouped == {id(p) for n, p in params.items() if n not in frozen}
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs["head"] == 0.1 and lrs["backbone"] == pytest.approx(0.01)
    optimizer = torch.optim.SGD(groups, momentum=0.9)
    optimizer.step()
    assert all(id(p) not in {id(q) for q in optimizer.state} for n, p in params.items() if n in frozen)
